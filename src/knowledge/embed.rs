//! Sentence embeddings with candle's BERT: all-MiniLM-L6-v2 (384 dimensions), mean pooling over the
//! attention mask, L2-normalised, as sentence-transformers computes them.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// all-MiniLM-L6-v2 was trained on sequences of at most 256 word pieces.
const MAX_TOKENS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("the embedding model is not at {0} (run models/fetch-embedder)")]
    NotFound(PathBuf),
    #[error("the embedding model at {path} cannot be loaded: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("embedding failed: {0}")]
    Compute(String),
}

/// A loaded sentence-embedding model.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dimensions: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    ///
    /// # Errors
    /// A missing folder or file, or files that are not a BERT model.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let file = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(EmbedError::NotFound(dir.to_owned()))
            }
        };
        let load_error = |reason: String| EmbedError::Load {
            path: dir.to_owned(),
            reason,
        };
        let config: Config = serde_json::from_slice(
            &std::fs::read(file("config.json")?).map_err(|e| load_error(e.to_string()))?,
        )
        .map_err(|e| load_error(format!("config.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_file(file("tokenizer.json")?)
            .map_err(|e| load_error(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| load_error(e.to_string()))?;
        let device = Device::Cpu;
        // SAFETY: the weights file is memory-mapped read-only; medbot never writes to it while
        // running (models/fetch-embedder replaces the folder, not the file in place).
        let weights = unsafe {
            VarBuilder::from_mmaped_safetensors(&[file("model.safetensors")?], DType::F32, &device)
        }
        .map_err(|e| load_error(e.to_string()))?;
        let model = BertModel::load(weights, &config).map_err(|e| load_error(e.to_string()))?;
        Ok(Self {
            model,
            tokenizer,
            device,
            dimensions: config.hidden_size,
        })
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Word pieces in `text` (for passage budgets), without the special tokens.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().len())
            .unwrap_or(text.len() / 4)
    }

    /// One unit-length vector per text. CPU-heavy: call it off the async runtime.
    ///
    /// # Errors
    /// Tokenization or model failures.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let compute = |e: &dyn std::fmt::Display| EmbedError::Compute(e.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| compute(&e))?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| -> Result<Tensor, EmbedError> {
            let data: Vec<Vec<u32>> = encodings.iter().map(f).collect();
            Tensor::new(data, &self.device).map_err(|e| compute(&e))
        };
        let ids = rows(&|e| e.get_ids().to_vec())?;
        let types = rows(&|e| e.get_type_ids().to_vec())?;
        let mask = rows(&|e| e.get_attention_mask().to_vec())?;
        let hidden = self
            .model
            .forward(&ids, &types, Some(&mask))
            .map_err(|e| compute(&e))?;
        let pooled = (|| {
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            mean.broadcast_div(&norms)?.to_vec2::<f32>()
        })()
        .map_err(|e: candle_core::Error| compute(&e))?;
        Ok(pooled)
    }
}

/// Cosine similarity of two unit vectors.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
