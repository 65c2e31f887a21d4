//! Deterministic doubles for the ports that are not storage: a generator that says what it is told
//! and a clock that moves when it is told. Used by the service tests and the bot's end-to-end tests;
//! storage is always the real PostgreSQL.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::ports::{Clock, Draft, DraftEvent, DraftStream, Generator, GeneratorError};
use crate::context::{PromptMessage, TokenCounter};
use crate::domain::is_han;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Script {
    /// Answer with this text, every token at the given log-probability.
    Say { text: String, logprob: f32 },
    /// Answer with this text, cut off at the length limit.
    SayCutOff(String),
    /// Answer with these passages, each written at its own log-probability: a draft that is sure
    /// of some sentences and not of others.
    Passages(Vec<(String, f32)>),
    /// Fail to start.
    Fail(ScriptedFailure),
    /// Answer with this text only once `release` gives a permit: a model that is slow for as
    /// long as the test wants. A stream dropped while it waits counts as cancelled.
    Held {
        text: String,
        release: std::sync::Arc<tokio::sync::Semaphore>,
    },
}

#[derive(Debug, Clone, Copy)]
pub enum ScriptedFailure {
    Busy,
    Broken,
}

impl Script {
    /// A confident answer.
    pub fn say(text: impl Into<String>) -> Self {
        Script::Say {
            text: text.into(),
            logprob: -0.2,
        }
    }

    /// An answer the model was unsure of.
    pub fn say_unsure(text: impl Into<String>) -> Self {
        Script::Say {
            text: text.into(),
            logprob: -3.5,
        }
    }
}

/// A generator that plays scripted answers in order (then repeats the fallback), records every
/// prompt it was given, and counts one token per word or Chinese character.
#[derive(Debug)]
pub struct ScriptedGenerator {
    scripts: Mutex<VecDeque<Script>>,
    fallback: String,
    prompts: Mutex<Vec<Vec<PromptMessage>>>,
    calls: AtomicUsize,
    context_tokens: usize,
    piece_delay: Option<std::time::Duration>,
    cancelled: std::sync::Arc<AtomicUsize>,
    /// What [`Generator::health`] reports; `None` while healthy.
    broken: Mutex<Option<String>>,
}

impl ScriptedGenerator {
    pub fn new(fallback: impl Into<String>) -> Self {
        Self {
            scripts: Mutex::new(VecDeque::new()),
            fallback: fallback.into(),
            prompts: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            context_tokens: 4096,
            piece_delay: None,
            cancelled: std::sync::Arc::default(),
            broken: Mutex::new(None),
        }
    }

    /// Makes the health check fail with `reason` (`None`: healthy again).
    pub fn set_broken(&self, reason: Option<&str>) {
        *self.broken.lock().expect("not poisoned") = reason.map(str::to_owned);
    }

    pub fn with_context_tokens(mut self, tokens: usize) -> Self {
        self.context_tokens = tokens;
        self
    }

    /// Streams each word after `delay`, as a model writing at that speed would.
    pub fn with_piece_delay(mut self, delay: std::time::Duration) -> Self {
        self.piece_delay = Some(delay);
        self
    }

    /// Queues the next answers.
    pub fn push(&self, script: Script) {
        self.scripts.lock().expect("not poisoned").push_back(script);
    }

    /// How many times the service asked for a draft.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// How many held drafts were dropped (cancelled) before they were released.
    pub fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Every prompt received, in order.
    pub fn prompts(&self) -> Vec<Vec<PromptMessage>> {
        self.prompts.lock().expect("not poisoned").clone()
    }
}

impl TokenCounter for ScriptedGenerator {
    fn count(&self, text: &str) -> usize {
        let han = text.chars().filter(|&c| is_han(c)).count();
        let words = text
            .split(|c: char| c.is_whitespace() || is_han(c))
            .filter(|w| !w.is_empty())
            .count();
        han + words
    }

    fn message_overhead(&self) -> usize {
        4
    }

    fn prompt_overhead(&self) -> usize {
        3
    }
}

impl Generator for ScriptedGenerator {
    fn context_tokens(&self) -> usize {
        self.context_tokens
    }

    fn health(&self) -> Result<(), String> {
        match self.broken.lock().expect("not poisoned").as_ref() {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    async fn generate(
        &self,
        prompt: Vec<PromptMessage>,
        max_new_tokens: usize,
    ) -> Result<DraftStream, GeneratorError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let script = self
            .scripts
            .lock()
            .expect("not poisoned")
            .pop_front()
            .unwrap_or_else(|| Script::say(self.fallback.clone()));
        let size: usize = self.prompt_overhead()
            + prompt
                .iter()
                .map(|m| self.count(&m.content) + self.message_overhead())
                .sum::<usize>();
        if size + max_new_tokens > self.context_tokens {
            return Err(GeneratorError::PromptTooLong {
                tokens: size,
                limit: self.context_tokens - max_new_tokens,
            });
        }
        self.prompts.lock().expect("not poisoned").push(prompt);
        let mut held = None;
        let (passages, cut_off) = match script {
            Script::Say { text, logprob } => (vec![(text, logprob)], false),
            Script::SayCutOff(text) => (vec![(text, -0.2)], true),
            Script::Passages(passages) => (passages, false),
            Script::Held { text, release } => {
                held = Some(release);
                (vec![(text, -0.2)], false)
            }
            Script::Fail(ScriptedFailure::Busy) => return Err(GeneratorError::Busy),
            Script::Fail(ScriptedFailure::Broken) => {
                return Err(GeneratorError::Failed("scripted failure".into()));
            }
        };
        // Word by word, as a model streams, each word's tokens at its passage's log-probability.
        let pieces: Vec<DraftEvent> = passages
            .iter()
            .flat_map(|(text, logprob)| {
                text.split_inclusive(' ').map(|piece| DraftEvent::Piece {
                    text: piece.to_owned(),
                    logprobs: vec![*logprob; self.count(piece).max(1)],
                })
            })
            .collect();
        let finished = Draft {
            text: passages.iter().map(|(text, _)| text.as_str()).collect(),
            logprobs: pieces
                .iter()
                .flat_map(|piece| match piece {
                    DraftEvent::Piece { logprobs, .. } => logprobs.clone(),
                    DraftEvent::Finished(_) => Vec::new(),
                })
                .collect(),
            hit_length_limit: cut_off,
        };
        let (tx, rx) = mpsc::channel(pieces.len() + 1);
        if let Some(release) = held {
            let cancelled = self.cancelled.clone();
            tokio::spawn(async move {
                tokio::select! {
                    permit = release.acquire() => drop(permit),
                    () = tx.closed() => {
                        cancelled.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
                for piece in pieces {
                    let _ = tx.send(Ok(piece)).await;
                }
                let _ = tx.send(Ok(DraftEvent::Finished(finished))).await;
            });
            return Ok(rx);
        }
        match self.piece_delay {
            // The channel holds the whole answer, so nothing waits.
            None => {
                for piece in pieces {
                    let _ = tx.try_send(Ok(piece));
                }
                let _ = tx.try_send(Ok(DraftEvent::Finished(finished)));
            }
            Some(delay) => {
                tokio::spawn(async move {
                    for piece in pieces {
                        tokio::time::sleep(delay).await;
                        if tx.send(Ok(piece)).await.is_err() {
                            return;
                        }
                    }
                    let _ = tx.send(Ok(DraftEvent::Finished(finished))).await;
                });
            }
        }
        Ok(rx)
    }
}

/// A clock that stands still until moved.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: chrono::Duration) {
        *self.now.lock().expect("not poisoned") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("not poisoned")
    }
}

/// A knowledge base that always returns the same passages (scores included).
#[derive(Debug, Clone, Default)]
pub struct StaticKnowledge(pub Vec<super::ports::Reference>);

impl super::ports::KnowledgeSource for StaticKnowledge {
    fn retrieve<'a>(&'a self, _query: &'a str, k: usize) -> super::ports::Retrieval<'a> {
        let found = self.0.iter().take(k).cloned().collect();
        Box::pin(async move { Ok(found) })
    }
}
