//! The generator the configuration chose: the in-process engine (the default) or an inference
//! server (`GENERATOR_URL`). One type, so the bot and the terminal chat need not be generic over it.

use super::EngineGenerator;
use super::remote::RemoteGenerator;
use crate::consult::{DraftStream, Generator, GeneratorError};
use crate::context::{PromptMessage, TokenCounter};

#[derive(Debug, Clone)]
pub enum ConfiguredGenerator {
    Local(Box<EngineGenerator>),
    Remote(RemoteGenerator),
}

impl ConfiguredGenerator {
    /// The model's name: the GGUF file's, or the one the server serves (with its address).
    pub fn model_name(&self) -> String {
        match self {
            Self::Local(g) => g.engine().model_name().to_owned(),
            Self::Remote(g) => format!("{}, on the inference server", g.model()),
        }
    }
}

impl TokenCounter for ConfiguredGenerator {
    fn count(&self, text: &str) -> usize {
        match self {
            Self::Local(g) => g.count(text),
            Self::Remote(g) => g.count(text),
        }
    }

    fn message_overhead(&self) -> usize {
        match self {
            Self::Local(g) => g.message_overhead(),
            Self::Remote(g) => g.message_overhead(),
        }
    }

    fn prompt_overhead(&self) -> usize {
        match self {
            Self::Local(g) => g.prompt_overhead(),
            Self::Remote(g) => g.prompt_overhead(),
        }
    }
}

impl Generator for ConfiguredGenerator {
    fn context_tokens(&self) -> usize {
        match self {
            Self::Local(g) => g.context_tokens(),
            Self::Remote(g) => g.context_tokens(),
        }
    }

    fn knows_confidence(&self) -> bool {
        match self {
            Self::Local(g) => g.knows_confidence(),
            Self::Remote(g) => g.knows_confidence(),
        }
    }

    fn health(&self) -> Result<(), String> {
        match self {
            Self::Local(g) => g.health(),
            Self::Remote(g) => g.health(),
        }
    }

    async fn prepare_counts(&self, texts: Vec<String>) {
        match self {
            Self::Local(g) => g.prepare_counts(texts).await,
            Self::Remote(g) => g.prepare_counts(texts).await,
        }
    }

    async fn generate(
        &self,
        prompt: Vec<PromptMessage>,
        max_new_tokens: usize,
    ) -> Result<DraftStream, GeneratorError> {
        match self {
            Self::Local(g) => g.generate(prompt, max_new_tokens).await,
            Self::Remote(g) => g.generate(prompt, max_new_tokens).await,
        }
    }
}
