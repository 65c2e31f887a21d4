//! A loaded model of one of the architectures candle supports, chosen by `general.architecture`.

use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_gemma3, quantized_llama, quantized_qwen2};

use super::gguf::{LoadError, ModelFile};

/// candle's llama builds its RoPE table for 4096 positions whatever the model claims; stay inside.
const MAX_CONTEXT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
    Gemma3,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Gemma3 => "gemma3",
        }
    }
}

enum Weights {
    Llama(quantized_llama::ModelWeights),
    // Not Clone in candle 0.11: served by a single instance.
    Qwen2(quantized_qwen2::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
}

/// Model weights plus a KV cache. Cloning (where supported) shares the weights and gives the clone a
/// cache of its own, so that each running request has independent attention state.
pub struct LoadedModel {
    weights: Weights,
    pub architecture: Architecture,
    pub context_length: usize,
    device: Device,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("architecture", &self.architecture)
            .field("context_length", &self.context_length)
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    /// Reads the tensors. Consumes the file: read tokenizer metadata first.
    pub fn load(file: ModelFile, device: &Device) -> Result<Self, LoadError> {
        let ModelFile {
            path,
            content,
            mut reader,
        } = file;
        let architecture_name = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        let architecture = match architecture_name.as_str() {
            "llama" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            "gemma3" => Architecture::Gemma3,
            _ => {
                return Err(LoadError::UnsupportedArchitecture {
                    path,
                    architecture: architecture_name,
                });
            }
        };
        let claimed = content
            .metadata
            .get(&format!("{architecture_name}.context_length"))
            .and_then(|v| {
                v.to_u32()
                    .ok()
                    .or_else(|| v.to_u64().ok().map(|n| n as u32))
            })
            .map(|n| n as usize)
            .unwrap_or(2048);
        let corrupt = |e: candle_core::Error| LoadError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        };
        let weights = match architecture {
            Architecture::Llama => Weights::Llama(
                quantized_llama::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(corrupt)?,
            ),
            Architecture::Qwen2 => Weights::Qwen2(
                quantized_qwen2::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(corrupt)?,
            ),
            Architecture::Gemma3 => Weights::Gemma3(
                quantized_gemma3::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(corrupt)?,
            ),
        };
        Ok(Self {
            weights,
            architecture,
            context_length: claimed.min(MAX_CONTEXT),
            device: device.clone(),
        })
    }

    /// An independent instance sharing the weights, or `None` where candle cannot clone the model.
    pub fn try_clone(&self) -> Option<Self> {
        let weights = match &self.weights {
            Weights::Llama(w) => Weights::Llama(w.clone()),
            Weights::Gemma3(w) => Weights::Gemma3(w.clone()),
            Weights::Qwen2(_) => return None,
        };
        Some(Self {
            weights,
            architecture: self.architecture,
            context_length: self.context_length,
            device: self.device.clone(),
        })
    }

    /// Runs `tokens` at positions `pos..`; returns the logits for the next token. `pos == 0` starts a
    /// new sequence (the models drop their KV cache).
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> candle_core::Result<Vec<f32>> {
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let logits = match &mut self.weights {
            Weights::Llama(w) => w.forward(&input, pos)?,
            Weights::Qwen2(w) => w.forward(&input, pos)?,
            Weights::Gemma3(w) => w.forward(&input, pos)?,
        };
        logits
            .squeeze(0)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()
    }
}
