//! `medbot bench`: load time, prefill and decode speed, and peak memory of the model on this machine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;

use crate::llm::{LoadError, LoadedModel, ModelFile, ModelTokenizer};

/// A fixed, patient-style text: the prompt is this, repeated and cut to the asked length.
const PROMPT_TEXT: &str = "I am 34 and have had a fever of 38.5 degrees for three days, with a dry cough, \
a sore throat and aching muscles. This morning I felt short of breath climbing the stairs. \
I take no regular medicines and I am not pregnant. What could this be and should I see a doctor? ";

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub model: String,
    pub threads: usize,
    /// How Q4_1 weights were re-encoded at load ("off", "q4_0", "q8_0").
    pub requantize: String,
    pub load_s: f64,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub prefill_tps: f64,
    pub decode_tps: f64,
    pub peak_rss_mib: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the model failed: {0}")]
    Model(#[from] candle_core::Error),
    #[error("the prompt could not be tokenized: {0}")]
    Tokenize(String),
    #[error("{prompt} prompt tokens plus {new} new tokens exceed the model's context of {limit}")]
    TooLong {
        prompt: usize,
        new: usize,
        limit: usize,
    },
}

/// Runs the benchmark synchronously on the calling thread (no engine, no queue: the model alone).
pub fn run(
    model_path: &Path,
    prompt_tokens: usize,
    new_tokens: usize,
    threads: usize,
    requantize: crate::llm::Requantize,
) -> Result<BenchReport, BenchError> {
    let started = Instant::now();
    let file = ModelFile::open(model_path)?;
    let tokenizer = ModelTokenizer::from_gguf(&file)?;
    let name = file.name();
    let mut model = LoadedModel::load_with(file, &Device::Cpu, requantize)?;
    let load_s = started.elapsed().as_secs_f64();
    if prompt_tokens + new_tokens >= model.context_length {
        return Err(BenchError::TooLong {
            prompt: prompt_tokens,
            new: new_tokens,
            limit: model.context_length,
        });
    }

    let mut prompt = Vec::with_capacity(prompt_tokens);
    let chunk = tokenizer
        .encode(PROMPT_TEXT)
        .map_err(BenchError::Tokenize)?;
    while prompt.len() < prompt_tokens {
        prompt.extend_from_slice(&chunk);
    }
    prompt.truncate(prompt_tokens.max(1));

    let t = Instant::now();
    let mut logits = model.forward(&prompt, 0)?;
    let prefill_s = t.elapsed().as_secs_f64();

    // Decode a fixed number of tokens: greedy, end-of-turn ignored, so every run does the same work.
    let t = Instant::now();
    for i in 0..new_tokens {
        let next = argmax(&logits);
        logits = model.forward(&[next], prompt.len() + i)?;
    }
    let decode_s = t.elapsed().as_secs_f64();

    Ok(BenchReport {
        model: name,
        threads,
        requantize: format!("{requantize:?}").to_ascii_lowercase(),
        load_s,
        prompt_tokens: prompt.len(),
        new_tokens,
        prefill_tps: prompt.len() as f64 / prefill_s,
        decode_tps: new_tokens as f64 / decode_s,
        peak_rss_mib: peak_rss_mib().unwrap_or(f64::NAN),
    })
}

fn argmax(values: &[f32]) -> u32 {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as u32)
        .unwrap_or(0)
}

/// The process's peak resident memory (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// The model path `bench` uses when none is given.
pub fn default_model() -> PathBuf {
    crate::config::model_path(&crate::config::ProcessEnv)
}
