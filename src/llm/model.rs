//! A loaded model of one of the architectures candle supports, chosen by `general.architecture`.

use std::io::{Cursor, Read, Seek};

use candle_core::quantized::gguf_file::{self, Content};
use candle_core::quantized::{GgmlDType, QTensor};
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

/// What to do with Q4_1 weights on the CPU, where candle 0.11 has no SIMD kernel for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requantize {
    /// Keep the file's encoding.
    Off,
    /// Re-encode Q4_1 tensors as Q4_0 when loading (candle has AVX2/AVX-512 kernels for it).
    Q4_0,
    /// Re-encode Q4_1 tensors as Q8_0 (near-lossless, twice the memory).
    Q8_0,
}

impl Requantize {
    /// Q8_0: measured here (2 threads, SmolLM2 Q4_1) at prefill 251 / decode 65 tokens/s against
    /// 92 / 48 for the file's own Q4_1 and 175 / 66 for Q4_0, and it keeps the weights nearly exact
    /// where Q4_0 would quantize them a second time. It costs about 130 MiB more memory.
    pub const DEFAULT: Requantize = Requantize::Q8_0;

    fn target(self) -> Option<GgmlDType> {
        match self {
            Requantize::Off => None,
            Requantize::Q4_0 => Some(GgmlDType::Q4_0),
            Requantize::Q8_0 => Some(GgmlDType::Q8_0),
        }
    }
}

impl std::str::FromStr for Requantize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "" => Ok(Requantize::Off),
            "q4_0" => Ok(Requantize::Q4_0),
            "q8_0" => Ok(Requantize::Q8_0),
            other => Err(format!("{other:?} is not one of off, q4_0, q8_0")),
        }
    }
}

/// Re-encodes every Q4_1 tensor as `target` into an in-memory GGUF, which the model then loads.
fn requantize_q4_1(
    content: Content,
    reader: &mut (impl Read + Seek),
    target: GgmlDType,
) -> candle_core::Result<(Content, Cursor<Vec<u8>>)> {
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content.tensor(reader, name, &Device::Cpu)?;
        let tensor = if tensor.dtype() == GgmlDType::Q4_1 {
            QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, target)?
        } else {
            tensor
        };
        tensors.push((name.clone(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut buffer = Cursor::new(Vec::new());
    gguf_file::write(&mut buffer, &metadata, &tensors)?;
    buffer.set_position(0);
    let content = Content::read(&mut buffer)?;
    Ok((content, buffer))
}

impl LoadedModel {
    /// Reads the tensors. Consumes the file: read tokenizer metadata first.
    pub fn load(file: ModelFile, device: &Device) -> Result<Self, LoadError> {
        Self::load_with(file, device, Requantize::Off)
    }

    /// As [`LoadedModel::load`], re-encoding Q4_1 weights as `requantize` says (CPU only).
    pub fn load_with(
        file: ModelFile,
        device: &Device,
        requantize: Requantize,
    ) -> Result<Self, LoadError> {
        let ModelFile {
            path,
            content,
            mut reader,
        } = file;
        let has_q4_1 = content
            .tensor_infos
            .values()
            .any(|t| t.ggml_dtype == GgmlDType::Q4_1);
        if let (Some(target), true, true) = (requantize.target(), has_q4_1, device.is_cpu()) {
            let (content, mut memory) =
                requantize_q4_1(content, &mut reader, target).map_err(|e| LoadError::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            return Self::from_content(path, content, &mut memory, device);
        }
        Self::from_content(path, content, &mut reader, device)
    }

    fn from_content(
        path: std::path::PathBuf,
        content: Content,
        reader: &mut (impl Read + Seek),
        device: &Device,
    ) -> Result<Self, LoadError> {
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
                quantized_llama::ModelWeights::from_gguf(content, reader, device)
                    .map_err(corrupt)?,
            ),
            Architecture::Qwen2 => Weights::Qwen2(
                quantized_qwen2::ModelWeights::from_gguf(content, reader, device)
                    .map_err(corrupt)?,
            ),
            Architecture::Gemma3 => Weights::Gemma3(
                quantized_gemma3::ModelWeights::from_gguf(content, reader, device)
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
