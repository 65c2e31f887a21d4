//! The model's tokenizer, built from GGUF metadata alone (`tokenizer.ggml.*`), so that a GGUF file is
//! all medbot needs. Supports the byte-level BPE family (`tokenizer.ggml.model = gpt2`) used by
//! SmolLM2, Qwen2 and Llama 3.

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::gguf::{LoadError, ModelFile};

/// GGUF token types (llama.cpp's `llama_token_type`): control and user-defined tokens are special.
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Token texts that end an assistant turn in the common chat formats.
const END_OF_TURN_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<|end|>",
    "</s>",
];

// Pre-tokenizer regexes from the models' own tokenizer.json files (as llama.cpp mirrors them).
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokenizer plus what generation needs to know about its special tokens.
#[derive(Clone)]
pub struct ModelTokenizer {
    tokenizer: Tokenizer,
    bos: Option<(u32, String)>,
    eos: Option<(u32, String)>,
    add_bos: bool,
    stop_ids: Vec<u32>,
    vocab_size: usize,
}

impl std::fmt::Debug for ModelTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelTokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("stop_ids", &self.stop_ids)
            .finish_non_exhaustive()
    }
}

impl ModelTokenizer {
    pub fn from_gguf(file: &ModelFile) -> Result<Self, LoadError> {
        let fail = |reason: String| LoadError::Tokenizer {
            path: file.path.clone(),
            reason,
        };
        let model = file.string("tokenizer.ggml.model").unwrap_or("");
        if model != "gpt2" {
            return Err(fail(format!(
                "tokenizer.ggml.model is {model:?}; only byte-level BPE (\"gpt2\") is supported"
            )));
        }
        let tokens = string_array(file, "tokenizer.ggml.tokens").map_err(fail)?;
        let merges = string_array(file, "tokenizer.ggml.merges").map_err(fail)?;
        let types: Vec<i32> = match file.metadata().get("tokenizer.ggml.token_type") {
            Some(Value::Array(values)) => values.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
            _ => vec![1; tokens.len()],
        };

        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (token.clone(), id as u32))
            .collect();
        let merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| fail(format!("merge {m:?} is not two tokens")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| fail(e.to_string()))?;

        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer.with_pre_tokenizer(Some(pre_tokenizer(
            file.string("tokenizer.ggml.pre").unwrap_or("default"),
        )));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| matches!(**t, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
            .map(|(token, _)| AddedToken::from(token.clone(), true))
            .collect();
        tokenizer
            .add_special_tokens(specials)
            .map_err(|e| fail(format!("special tokens: {e}")))?;

        let token_at = |key: &str| {
            file.u32(key)
                .and_then(|id| tokens.get(id as usize).map(|text| (id, text.clone())))
        };
        let bos = token_at("tokenizer.ggml.bos_token_id");
        let eos = token_at("tokenizer.ggml.eos_token_id");
        let mut stop_ids: Vec<u32> = END_OF_TURN_TOKENS
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        if let Some((id, _)) = &eos {
            stop_ids.push(*id);
        }
        if let Some(id) = file.u32("tokenizer.ggml.eot_token_id") {
            stop_ids.push(id);
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        Ok(Self {
            tokenizer,
            add_bos: file.bool("tokenizer.ggml.add_bos_token").unwrap_or(false) && bos.is_some(),
            bos,
            eos,
            stop_ids,
            vocab_size: tokens.len(),
        })
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) become their single
    /// ids; a BOS token is prepended when the model asks for one and the text has none.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| e.to_string())?;
        let mut ids = encoding.get_ids().to_vec();
        if let (true, Some((bos, _))) = (self.add_bos, &self.bos)
            && ids.first() != Some(bos)
        {
            ids.insert(0, *bos);
        }
        Ok(ids)
    }

    /// How many tokens `text` takes (for context budgets).
    pub fn count(&self, text: &str) -> usize {
        self.encode(text).map(|ids| ids.len()).unwrap_or(text.len())
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, String> {
        self.tokenizer.decode(ids, true).map_err(|e| e.to_string())
    }

    /// Ids that end generation (end of turn, end of text).
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    pub fn bos_token(&self) -> &str {
        self.bos.as_ref().map(|(_, t)| t.as_str()).unwrap_or("")
    }

    pub fn eos_token(&self) -> &str {
        self.eos.as_ref().map(|(_, t)| t.as_str()).unwrap_or("")
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }
}

fn string_array(file: &ModelFile, key: &str) -> Result<Vec<String>, String> {
    match file.metadata().get(key) {
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
            .collect(),
        Some(_) => Err(format!("{key} is not an array of strings")),
        None => Err(format!("{key} is missing")),
    }
}

fn pre_tokenizer(kind: &str) -> PreTokenizerWrapper {
    let regex_then_bytes = |pattern: &str| -> PreTokenizerWrapper {
        let split = Split::new(
            SplitPattern::Regex(pattern.to_owned()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .expect("static regex compiles");
        Sequence::new(vec![
            split.into(),
            ByteLevel::new(false, false, false).into(),
        ])
        .into()
    };
    match kind {
        // SmolLM splits every digit on its own before GPT-2's byte-level split.
        "smollm" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        "qwen2" | "deepseek-r1-qwen" => regex_then_bytes(QWEN2_PATTERN),
        "llama3" | "llama-bpe" | "smaug-bpe" => regex_then_bytes(LLAMA3_PATTERN),
        _ => ByteLevel::new(false, true, true).into(),
    }
}
