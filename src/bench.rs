//! `medbot bench`: load time, prefill and decode speed, and peak memory of the model on this machine,
//! or of an inference server (`--generator remote`), with the same keys so the two compare side
//! by side; `--concurrent N` adds what N patients asking at once see, through the `Generator` port.

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
    /// "local" (the in-process engine) or "remote" (the server at GENERATOR_URL).
    pub generator: String,
    /// N answers at once (`--concurrent N`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<ConcurrentReport>,
}

/// N patient-style answers written at once through the `Generator` port, as the bot asks for them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConcurrentReport {
    pub concurrent: usize,
    /// Tokens of all answers together, per second of the whole run.
    pub aggregate_decode_tps: f64,
    /// One answer's tokens per second of its own time, averaged over the answers.
    pub per_stream_decode_tps: f64,
    /// From the request to the end of the first sentence (what a patient first sees).
    pub first_text_ms_p50: f64,
    pub first_text_ms_max: f64,
    /// From the request to the end of the answer.
    pub answer_ms_p50: f64,
    pub answer_ms_max: f64,
    /// Answers that failed (a busy queue, a broken server).
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the model failed: {0}")]
    Model(#[from] candle_core::Error),
    #[error("the prompt could not be tokenized: {0}")]
    Tokenize(String),
    #[error(transparent)]
    Remote(#[from] crate::llm::remote::RemoteError),
    #[error("the generator failed: {0}")]
    Generation(String),
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
        generator: "local".into(),
        concurrent: None,
    })
}

/// The same measurement on an inference server: one request of about `prompt_tokens` (counted by
/// the server where it can) asking for `new_tokens` with the end of turn ignored, timed from the
/// client (so the network is in it, as it is for patients). `threads` is 0: the server's own.
///
/// # Errors
/// The server cannot be used, or the answer fails.
pub async fn run_remote(
    settings: crate::llm::remote::RemoteSettings,
    prompt_tokens: usize,
    new_tokens: usize,
) -> Result<(BenchReport, crate::llm::remote::RemoteGenerator), BenchError> {
    use crate::consult::{DraftEvent, Generator};
    use crate::context::{PromptMessage, PromptRole, TokenCounter};

    let started = Instant::now();
    let generator = crate::llm::remote::RemoteGenerator::connect(settings).await?;
    let load_s = started.elapsed().as_secs_f64();
    generator.prepare_counts(vec![PROMPT_TEXT.to_owned()]).await;
    let repeats = prompt_tokens
        .div_ceil(generator.count(PROMPT_TEXT).max(1))
        .max(1);
    let prompt = vec![PromptMessage::new(
        PromptRole::User,
        PROMPT_TEXT.repeat(repeats),
    )];
    let counted = match generator.server_prompt_tokens(&prompt).await {
        Some(n) => n,
        None => {
            generator.prompt_overhead()
                + generator.message_overhead()
                + generator.count(&prompt[0].content)
        }
    };
    let bench = generator.clone().ignoring_end_of_turn();
    let t = Instant::now();
    let mut events = bench
        .generate(prompt, new_tokens)
        .await
        .map_err(|e| BenchError::Generation(e.to_string()))?;
    let mut first: Option<Instant> = None;
    let mut tokens = 0;
    while let Some(event) = events.recv().await {
        match event.map_err(|e| BenchError::Generation(e.to_string()))? {
            DraftEvent::Piece { text, logprobs } => {
                if first.is_none() && !text.is_empty() {
                    first = Some(Instant::now());
                }
                // One log-probability per token; without them, one streamed piece per token.
                tokens += logprobs.len().max(1);
            }
            DraftEvent::Finished(_) => break,
        }
    }
    let end = Instant::now();
    let first = first.ok_or_else(|| BenchError::Generation("no text came back".into()))?;
    let prefill_s = (first - t).as_secs_f64();
    let decode_s = (end - first).as_secs_f64();
    let report = BenchReport {
        model: generator.model().to_owned(),
        threads: 0,
        requantize: "server".into(),
        load_s,
        prompt_tokens: counted,
        new_tokens: tokens,
        prefill_tps: counted as f64 / prefill_s,
        decode_tps: tokens.saturating_sub(1) as f64 / decode_s,
        peak_rss_mib: peak_rss_mib().unwrap_or(f64::NAN),
        generator: "remote".into(),
        concurrent: None,
    };
    Ok((report, generator))
}

/// `streams` patient questions answered at once, each up to `new_tokens`, through the port the
/// consultation service uses (the local engine's queue and places, or the server's).
pub async fn run_concurrent<G: crate::consult::Generator>(
    generator: &G,
    streams: usize,
    new_tokens: usize,
) -> ConcurrentReport {
    use crate::consult::DraftEvent;
    use crate::context::{PromptMessage, PromptRole};

    let started = Instant::now();
    let one = |n: usize| async move {
        let prompt = vec![
            PromptMessage::new(
                PromptRole::System,
                "You are a careful medical assistant. Answer in plain words.",
            ),
            // Each patient's question differs a little, so that no server reuses another's cache.
            PromptMessage::new(PromptRole::User, format!("Patient {n}: {PROMPT_TEXT}")),
        ];
        let t = Instant::now();
        let mut events = generator.generate(prompt, new_tokens).await.ok()?;
        let mut text = String::new();
        let mut first_text = None;
        while let Some(event) = events.recv().await {
            match event.ok()? {
                DraftEvent::Piece { text: piece, .. } => {
                    text.push_str(&piece);
                    if first_text.is_none() && (text.contains(". ") || text.contains(".\n")) {
                        first_text = Some(t.elapsed());
                    }
                }
                DraftEvent::Finished(draft) => {
                    let answer = t.elapsed();
                    let tokens = if draft.logprobs.is_empty() {
                        generator.count(&draft.text)
                    } else {
                        draft.logprobs.len()
                    };
                    return Some((first_text.unwrap_or(answer), answer, tokens));
                }
            }
        }
        None
    };
    let results = futures::future::join_all((0..streams).map(one)).await;
    let wall = started.elapsed().as_secs_f64();
    let done: Vec<_> = results.iter().flatten().collect();
    let ms = |d: &std::time::Duration| d.as_secs_f64() * 1000.0;
    let mut first: Vec<f64> = done.iter().map(|(f, _, _)| ms(f)).collect();
    let mut answer: Vec<f64> = done.iter().map(|(_, a, _)| ms(a)).collect();
    first.sort_by(f64::total_cmp);
    answer.sort_by(f64::total_cmp);
    let total_tokens: usize = done.iter().map(|(_, _, n)| n).sum();
    let per_stream = done
        .iter()
        .map(|(_, a, n)| *n as f64 / a.as_secs_f64())
        .sum::<f64>()
        / done.len().max(1) as f64;
    let median = |v: &[f64]| v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
    ConcurrentReport {
        concurrent: streams,
        aggregate_decode_tps: total_tokens as f64 / wall,
        per_stream_decode_tps: per_stream,
        first_text_ms_p50: median(&first),
        first_text_ms_max: first.last().copied().unwrap_or(f64::NAN),
        answer_ms_p50: median(&answer),
        answer_ms_max: answer.last().copied().unwrap_or(f64::NAN),
        failed: streams - done.len(),
    }
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
