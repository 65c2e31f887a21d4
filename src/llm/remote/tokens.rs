//! Token accounting for a model that runs elsewhere. The context builder must never think a prompt
//! smaller than the server will find it, so every source here counts at least as many tokens as
//! the server: its own tokenize endpoint (exact), a tokenizer file for the served model, or a
//! bound that holds for any subword tokenizer (one token per UTF-8 byte, plus one).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::client::Endpoint;
use crate::llm::{ModelFile, ModelTokenizer};

/// The server's tokenize endpoint, in the dialect it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizeApi {
    /// llama.cpp's server: `POST /tokenize {"content"}` and `POST /apply-template {"messages"}`.
    LlamaCpp,
    /// vLLM: `POST /tokenize {"model", "prompt" | "messages"}` answering `{"count"}`.
    Vllm,
}

/// A tokenizer file for the served model, counted here.
pub enum LocalTokenizer {
    /// tokenizer.json (Hugging Face tokenizers).
    Json(Box<tokenizers::Tokenizer>),
    /// A GGUF file's own tokenizer metadata.
    Gguf(Box<ModelTokenizer>),
}

impl LocalTokenizer {
    /// Reads `path`: a GGUF file (by its extension) or a tokenizer.json.
    ///
    /// # Errors
    /// The file is missing or is not a tokenizer.
    pub fn open(path: &Path) -> Result<Self, String> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            let file = ModelFile::open(path).map_err(|e| e.to_string())?;
            let tokenizer = ModelTokenizer::from_gguf(&file).map_err(|e| e.to_string())?;
            Ok(Self::Gguf(Box::new(tokenizer)))
        } else {
            let tokenizer = tokenizers::Tokenizer::from_file(path).map_err(|e| e.to_string())?;
            Ok(Self::Json(Box::new(tokenizer)))
        }
    }

    fn count(&self, text: &str) -> Option<usize> {
        match self {
            Self::Json(t) => t.encode(text, false).ok().map(|e| e.len()),
            Self::Gguf(t) => t.encode(text).ok().map(|ids| ids.len()),
        }
    }
}

/// Tokens of `text` for any byte-level BPE or SentencePiece tokenizer with byte fallback: at most
/// one per byte, plus the word-start marker SentencePiece may add.
pub fn upper_bound(text: &str) -> usize {
    text.len() + 1
}

/// What a chat template adds, when it cannot be measured: ChatML and Llama 3 put about five tokens
/// around a message; templates that insert a date or default instructions add a few dozen once.
pub const GUESSED_MESSAGE_OVERHEAD: usize = 10;
pub const GUESSED_PROMPT_OVERHEAD: usize = 64;

/// Texts seen often (the conversation is sent again every turn) are counted once; the key is a
/// digest, so no message text is kept here.
const CACHE_ENTRIES: usize = 16_384;

/// Counts for the remote generator: what the server said, else the tokenizer file, else the bound.
pub struct TokenCounts {
    api: Option<TokenizeApi>,
    local: Option<LocalTokenizer>,
    learnt: Mutex<HashMap<[u8; 16], usize>>,
}

impl std::fmt::Debug for TokenCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCounts")
            .field("api", &self.api)
            .field("local", &self.local.is_some())
            .finish_non_exhaustive()
    }
}

fn digest(text: &str) -> [u8; 16] {
    let full = Sha256::digest(text.as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&full[..16]);
    key
}

impl TokenCounts {
    pub fn new(api: Option<TokenizeApi>, local: Option<LocalTokenizer>) -> Self {
        Self {
            api,
            local,
            learnt: Mutex::new(HashMap::new()),
        }
    }

    pub fn api(&self) -> Option<TokenizeApi> {
        self.api
    }

    /// Where the counts come from, for the start-up log.
    pub fn source(&self) -> &'static str {
        match (self.api, &self.local) {
            (Some(TokenizeApi::LlamaCpp), _) => "the server's tokenizer (llama.cpp /tokenize)",
            (Some(TokenizeApi::Vllm), _) => "the server's tokenizer (vLLM /tokenize)",
            (None, Some(_)) => "GENERATOR_TOKENIZER",
            (None, None) => "an upper bound (one token per byte)",
        }
    }

    /// The count for `text`: learnt from the server, else counted here.
    pub fn count(&self, text: &str) -> usize {
        if let Some(&n) = self.learnt.lock().unwrap().get(&digest(text)) {
            return n;
        }
        self.local
            .as_ref()
            .and_then(|t| t.count(text))
            .unwrap_or_else(|| upper_bound(text))
    }

    /// Asks the server for the texts not counted yet. A text it cannot count keeps the local count.
    pub async fn learn(&self, endpoint: &Endpoint, model: &str, texts: Vec<String>) {
        use futures::StreamExt;

        let Some(api) = self.api else { return };
        let unknown: Vec<String> = {
            let learnt = self.learnt.lock().unwrap();
            texts
                .into_iter()
                .filter(|t| !learnt.contains_key(&digest(t)))
                .collect()
        };
        let counted: Vec<(String, Option<usize>)> = futures::stream::iter(unknown)
            .map(|text| async move {
                let n = endpoint.count_text(api, model, &text).await;
                (text, n)
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut learnt = self.learnt.lock().unwrap();
        if learnt.len() + counted.len() > CACHE_ENTRIES {
            learnt.clear();
        }
        for (text, n) in counted {
            match n {
                Some(n) => {
                    learnt.insert(digest(&text), n);
                }
                None => tracing::debug!("the server did not count a text; using the local count"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_never_below_a_real_tokenizers_count() {
        // Byte-level BPE never needs more than one token per byte; Chinese takes three bytes a
        // character and rarely more than one token.
        for text in ["Hello there", "胸口疼，出汗", "a", "", "🙂🙂"] {
            assert!(upper_bound(text) >= text.chars().count());
            assert!(upper_bound(text) > text.len());
        }
    }

    #[test]
    fn a_learnt_count_is_used_and_an_unknown_text_is_bounded() {
        let counts = TokenCounts::new(Some(TokenizeApi::LlamaCpp), None);
        counts
            .learnt
            .lock()
            .unwrap()
            .insert(digest("sore throat"), 2);
        assert_eq!(counts.count("sore throat"), 2);
        assert_eq!(counts.count("fever"), upper_bound("fever"));
    }
}
