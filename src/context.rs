//! The model's context for one answer: the system prompt, then as many of the patient's most recent
//! exchanges as fit the model's window after reserving room for the answer.
//!
//! Tokens are counted with the model's own tokenizer (through [`TokenCounter`]). An exchange (the
//! patient's message and the replies to it) is kept whole or dropped whole: a model shown half an
//! exchange answers a question nobody asked. The newest exchanges win; older ones are dropped. The
//! history itself is never touched.

use crate::domain::Role;

/// Who says a message in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptRole {
    System,
    User,
    Assistant,
}

/// One message of the prompt, before the model's chat template is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptMessage {
    pub role: PromptRole,
    pub content: String,
}

impl PromptMessage {
    pub fn new(role: PromptRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// Counts tokens the way the model will see them.
pub trait TokenCounter {
    /// Tokens in `text` on its own.
    fn count(&self, text: &str) -> usize;
    /// Tokens the chat template adds around one message (role markers, separators).
    fn message_overhead(&self) -> usize;
    /// Tokens the template adds once per prompt (the opening of the assistant's turn, a BOS).
    fn prompt_overhead(&self) -> usize;
}

/// How much of the model's window a prompt may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextBudget {
    /// The model's whole window.
    pub context_tokens: usize,
    /// Kept free for the answer.
    pub answer_tokens: usize,
}

impl ContextBudget {
    pub fn prompt_tokens(&self) -> usize {
        self.context_tokens.saturating_sub(self.answer_tokens)
    }
}

/// One stored message of the conversation, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    pub role: Role,
    pub text: String,
}

/// A prompt that fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltContext {
    pub messages: Vec<PromptMessage>,
    /// The prompt's size as counted.
    pub tokens: usize,
    /// Exchanges of the current topic that did not fit.
    pub dropped_exchanges: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("there is no patient message to answer")]
    NothingToAnswer,
    #[error(
        "the newest message needs {needed} tokens with the instructions, more than the {available} the model has room for"
    )]
    MessageTooLong { needed: usize, available: usize },
}

/// Builds the prompt for answering the last patient message in `history`.
///
/// # Errors
/// [`ContextError::NothingToAnswer`] when `history` has no patient message;
/// [`ContextError::MessageTooLong`] when the system prompt and the newest exchange alone do not fit.
pub fn build(
    system_prompt: &str,
    history: &[HistoryMessage],
    counter: &dyn TokenCounter,
    budget: ContextBudget,
) -> Result<BuiltContext, ContextError> {
    let exchanges = exchanges(history);
    if exchanges.is_empty() {
        return Err(ContextError::NothingToAnswer);
    }
    let available = budget.prompt_tokens();
    let cost = |m: &HistoryMessage| counter.count(&m.text) + counter.message_overhead();
    let mut used =
        counter.prompt_overhead() + counter.count(system_prompt) + counter.message_overhead();

    let mut kept = 0;
    for exchange in exchanges.iter().rev() {
        let needed: usize = exchange.iter().map(cost).sum();
        if used + needed > available {
            if kept == 0 {
                return Err(ContextError::MessageTooLong {
                    needed: used + needed,
                    available,
                });
            }
            break;
        }
        used += needed;
        kept += 1;
    }

    let mut messages = Vec::with_capacity(1 + history.len());
    messages.push(PromptMessage::new(PromptRole::System, system_prompt));
    for exchange in &exchanges[exchanges.len() - kept..] {
        messages.extend(exchange.iter().map(|m| {
            let role = match m.role {
                Role::Patient => PromptRole::User,
                Role::Assistant | Role::Doctor | Role::System => PromptRole::Assistant,
            };
            PromptMessage::new(role, m.text.clone())
        }));
    }
    Ok(BuiltContext {
        messages,
        tokens: used,
        dropped_exchanges: exchanges.len() - kept,
    })
}

/// Cuts the history into exchanges, each starting at a patient message. Replies before the first
/// patient message of the topic answer nothing the model can see, so they are left out.
fn exchanges(history: &[HistoryMessage]) -> Vec<&[HistoryMessage]> {
    let starts: Vec<usize> = history
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::Patient)
        .map(|(i, _)| i)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| {
            let end = starts.get(n + 1).copied().unwrap_or(history.len());
            &history[start..end]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One token per whitespace-separated word; three per message, two per prompt.
    struct Words;

    impl TokenCounter for Words {
        fn count(&self, text: &str) -> usize {
            text.split_whitespace().count()
        }
        fn message_overhead(&self) -> usize {
            3
        }
        fn prompt_overhead(&self) -> usize {
            2
        }
    }

    fn rendered_size(messages: &[PromptMessage]) -> usize {
        Words.prompt_overhead()
            + messages
                .iter()
                .map(|m| Words.count(&m.content) + Words.message_overhead())
                .sum::<usize>()
    }

    fn message(role: Role, words: usize, tag: usize) -> HistoryMessage {
        let text = (0..words)
            .map(|w| format!("m{tag}w{w}"))
            .collect::<Vec<_>>();
        HistoryMessage {
            role,
            text: text.join(" "),
        }
    }

    /// A history of exchanges: a patient message followed by zero to two replies.
    fn history() -> impl Strategy<Value = Vec<HistoryMessage>> {
        prop::collection::vec((1usize..60, prop::collection::vec(0usize..80, 0..3)), 1..12)
            .prop_map(|exchanges| {
                let mut tag = 0;
                let mut out = Vec::new();
                for (question, replies) in exchanges {
                    out.push(message(Role::Patient, question, tag));
                    tag += 1;
                    for (i, words) in replies.into_iter().enumerate() {
                        let role = if i == 0 {
                            Role::Assistant
                        } else {
                            Role::Doctor
                        };
                        out.push(message(role, words, tag));
                        tag += 1;
                    }
                }
                out
            })
    }

    proptest! {
        #[test]
        fn never_over_budget_never_half_an_exchange_newest_kept(
            history in history(),
            context in 20usize..600,
            answer in 0usize..100,
        ) {
            let budget = ContextBudget { context_tokens: context, answer_tokens: answer };
            let system = "You are a careful assistant";
            let all = exchanges(&history);
            match build(system, &history, &Words, budget) {
                Ok(built) => {
                    // Never over budget, and the count the builder reports is the real size.
                    prop_assert_eq!(rendered_size(&built.messages), built.tokens);
                    prop_assert!(built.tokens <= budget.prompt_tokens());
                    prop_assert_eq!(&built.messages[0].content, system);
                    // What follows the system prompt is exactly the newest exchanges, whole.
                    let kept = all.len() - built.dropped_exchanges;
                    let expected: Vec<&str> = all[all.len() - kept..]
                        .iter()
                        .flat_map(|e| e.iter().map(|m| m.text.as_str()))
                        .collect();
                    let got: Vec<&str> =
                        built.messages[1..].iter().map(|m| m.content.as_str()).collect();
                    prop_assert_eq!(got, expected);
                    prop_assert!(kept >= 1);
                    // The next older exchange would not have fitted.
                    if built.dropped_exchanges > 0 {
                        let older = all[all.len() - kept - 1];
                        let extra: usize = older
                            .iter()
                            .map(|m| Words.count(&m.text) + Words.message_overhead())
                            .sum();
                        prop_assert!(built.tokens + extra > budget.prompt_tokens());
                    }
                }
                Err(ContextError::MessageTooLong { needed, available }) => {
                    prop_assert!(needed > available);
                    prop_assert_eq!(available, budget.prompt_tokens());
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }

    #[test]
    fn replies_before_the_first_question_are_left_out() {
        let history = vec![
            message(Role::Assistant, 3, 0),
            message(Role::Patient, 2, 1),
            message(Role::Assistant, 2, 2),
            message(Role::Patient, 2, 3),
        ];
        let built = build(
            "sys",
            &history,
            &Words,
            ContextBudget {
                context_tokens: 1000,
                answer_tokens: 100,
            },
        )
        .unwrap();
        let roles: Vec<PromptRole> = built.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                PromptRole::System,
                PromptRole::User,
                PromptRole::Assistant,
                PromptRole::User
            ]
        );
        assert_eq!(
            build(
                "sys",
                &history[..1],
                &Words,
                ContextBudget {
                    context_tokens: 1000,
                    answer_tokens: 0
                }
            ),
            Err(ContextError::NothingToAnswer)
        );
    }
}
