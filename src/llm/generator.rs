//! The consultation service's `Generator` port on the in-process engine.

use tokio::sync::mpsc;

use super::SamplingParams;
use super::{ChatMessage, Engine, FinishReason, GenerateError, GenerationEvent, GenerationRequest};
use crate::consult::{Draft, DraftEvent, DraftStream, Generator, GeneratorError};
use crate::context::{PromptMessage, PromptRole, TokenCounter};

/// The engine as a [`Generator`]: renders prompts with the model's chat template and counts tokens
/// with the model's tokenizer.
#[derive(Debug, Clone)]
pub struct EngineGenerator {
    engine: Engine,
    params: SamplingParams,
    message_overhead: usize,
    prompt_overhead: usize,
}

impl EngineGenerator {
    /// Measures what the model's chat template adds around messages, so that the context builder
    /// can count a prompt from its parts.
    pub fn new(engine: Engine, params: SamplingParams) -> Self {
        let count = |messages: &[ChatMessage]| {
            engine
                .render_prompt(messages)
                .map(|text| engine.tokenizer().count(&text))
                .unwrap_or(0)
        };
        let one = count(&[ChatMessage::system("x")]);
        let two = count(&[ChatMessage::system("x"), ChatMessage::user("x")]);
        let three = count(&[
            ChatMessage::system("x"),
            ChatMessage::user("x"),
            ChatMessage::assistant("x"),
        ]);
        // One message costs its markers plus the one token of "x". Keep two tokens of slack for
        // merges across the boundary between a message and its markers.
        let per_message = two.saturating_sub(one).max(three.saturating_sub(two));
        Self {
            engine,
            params,
            message_overhead: per_message + 1,
            prompt_overhead: one.saturating_sub(per_message) + 4,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl TokenCounter for EngineGenerator {
    fn count(&self, text: &str) -> usize {
        self.engine.tokenizer().count(text)
    }

    fn message_overhead(&self) -> usize {
        self.message_overhead
    }

    fn prompt_overhead(&self) -> usize {
        self.prompt_overhead
    }
}

fn port_error(error: GenerateError) -> GeneratorError {
    match error {
        GenerateError::Busy(_) => GeneratorError::Busy,
        GenerateError::PromptTooLong { prompt, limit } => GeneratorError::PromptTooLong {
            tokens: prompt,
            limit,
        },
        other => GeneratorError::Failed(other.to_string()),
    }
}

impl Generator for EngineGenerator {
    fn context_tokens(&self) -> usize {
        self.engine.context_length()
    }

    fn health(&self) -> Result<(), String> {
        if self.engine.is_running() {
            Ok(())
        } else {
            Err("the model's thread has stopped".into())
        }
    }

    async fn generate(
        &self,
        prompt: Vec<PromptMessage>,
        max_new_tokens: usize,
    ) -> Result<DraftStream, GeneratorError> {
        let messages = prompt
            .into_iter()
            .map(|m| match m.role {
                PromptRole::System => ChatMessage::system(m.content),
                PromptRole::User => ChatMessage::user(m.content),
                PromptRole::Assistant => ChatMessage::assistant(m.content),
            })
            .collect();
        let mut stream = self
            .engine
            .submit(GenerationRequest {
                messages,
                params: self.params.clone(),
                max_new_tokens,
            })
            .map_err(port_error)?;
        let (tx, rx) = mpsc::channel(64);
        // Forwards until the service drops its receiver; dropping `stream` then cancels the request
        // in the engine.
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(GenerationEvent::Piece { text, logprobs }) => {
                        Ok(DraftEvent::Piece { text, logprobs })
                    }
                    Ok(GenerationEvent::Finished(generation)) => Ok(DraftEvent::Finished(Draft {
                        text: generation.text,
                        logprobs: generation.logprobs,
                        hit_length_limit: generation.finish != FinishReason::EndOfTurn,
                    })),
                    Err(e) => Err(port_error(e)),
                };
                if tx.send(event).await.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }
}
