//! The inference engine: owns the model on a thread of its own (never on the async runtime). Callers
//! submit requests over a bounded queue, each with its own reply channel; text streams back in
//! UTF-8-safe pieces. Several requests run at once, each with its own KV cache, advanced in turn one
//! step at a time so that one long answer does not hold up everyone else's first words.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use candle_core::Device;
use tokio::sync::{mpsc, oneshot};

use super::gguf::{LoadError, ModelFile};
use super::model::{LoadedModel, Requantize};
use super::sampling::{Sampler, SamplingParams};
use super::stream::StreamDecoder;
use super::template::{CHATML, ChatMessage, ChatTemplate};
use super::tokenizer::ModelTokenizer;

/// Prompt tokens run per step: long prompts are taken in chunks so that other requests keep moving.
const PREFILL_CHUNK: usize = 256;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub model_path: PathBuf,
    /// Requests waiting beyond those running; one more is refused as busy.
    pub queue_capacity: usize,
    /// Requests generating at the same time (each holds a KV cache).
    pub max_running: usize,
    /// How Q4_1 weights are re-encoded when loading.
    pub requantize: Requantize,
}

impl EngineOptions {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            queue_capacity: 32,
            max_running: 4,
            requantize: Requantize::DEFAULT,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub messages: Vec<ChatMessage>,
    pub params: SamplingParams,
    pub max_new_tokens: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn.
    EndOfTurn,
    /// `max_new_tokens` was reached.
    MaxTokens,
    /// The model's context window is full.
    ContextFull,
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    /// Log-probability of each generated token (same length as `tokens`).
    pub logprobs: Vec<f32>,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    pub time_to_first_token: Duration,
    pub total_time: Duration,
}

#[derive(Debug, Clone)]
pub enum GenerationEvent {
    /// New text; pieces concatenated equal the final text. `logprobs` are those of the tokens
    /// generated since the previous piece (for checks on a passage while the rest is written).
    Piece {
        text: String,
        logprobs: Vec<f32>,
    },
    Finished(Generation),
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("the model is busy: {0} requests are already waiting")]
    Busy(usize),
    #[error("the inference engine has stopped")]
    Stopped,
    #[error(
        "the prompt has {prompt} tokens; the model's context holds {limit} with room to answer"
    )]
    PromptTooLong { prompt: usize, limit: usize },
    #[error("the prompt could not be prepared: {0}")]
    Prompt(String),
    #[error("the model failed while generating: {0}")]
    Model(String),
}

/// Counters for tests and monitoring.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub completed: AtomicU64,
    pub cancelled: AtomicU64,
    pub failed: AtomicU64,
}

struct Job {
    prompt: Vec<u32>,
    params: SamplingParams,
    max_new_tokens: usize,
    queued_at: Instant,
    reply: mpsc::UnboundedSender<Result<GenerationEvent, GenerateError>>,
}

/// A handle to the running engine. Cheap to clone; the engine stops when the last handle is dropped.
#[derive(Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    tokenizer: ModelTokenizer,
    template: Arc<ChatTemplate>,
    context_length: usize,
    model_name: Arc<str>,
    queue_capacity: usize,
    stats: Arc<EngineStats>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("model", &self.model_name)
            .finish_non_exhaustive()
    }
}

/// The answer to one request, as it streams. Dropping it cancels the request.
pub struct GenerationStream {
    events: mpsc::UnboundedReceiver<Result<GenerationEvent, GenerateError>>,
}

impl GenerationStream {
    /// The next event; `None` once the generation has finished.
    pub async fn next(&mut self) -> Option<Result<GenerationEvent, GenerateError>> {
        self.events.recv().await
    }

    /// Waits for the whole answer, ignoring the pieces.
    pub async fn finish(mut self) -> Result<Generation, GenerateError> {
        while let Some(event) = self.next().await {
            if let GenerationEvent::Finished(generation) = event? {
                return Ok(generation);
            }
        }
        Err(GenerateError::Stopped)
    }
}

impl Engine {
    /// Loads the model on the engine's thread and waits until it is ready, so that a bad file is
    /// reported here rather than on the first request.
    pub async fn start(options: EngineOptions) -> Result<Self, LoadError> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel(options.queue_capacity.max(1));
        let stats = Arc::new(EngineStats::default());
        let thread_stats = stats.clone();
        let max_running = options.max_running.max(1);
        let path = options.model_path.clone();
        let requantize = options.requantize;
        std::thread::Builder::new()
            .name("medbot-inference".into())
            .spawn(move || match load(&path, requantize) {
                Ok((model, tokenizer, template, name)) => {
                    let _ = ready_tx.send(Ok((
                        tokenizer.clone(),
                        template,
                        model.context_length,
                        name,
                    )));
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run(model, tokenizer, jobs_rx, max_running, &thread_stats)
                    }));
                    if ran.is_err() {
                        // Every request from now on fails with `Stopped`, and each draft goes to
                        // a doctor; the operator must hear of it.
                        tracing::error!("the inference thread panicked: the model is unavailable until medbot restarts");
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|source| LoadError::Io {
                path: options.model_path.clone(),
                source,
            })?;
        let (tokenizer, template, context_length, name) =
            ready_rx.await.map_err(|_| LoadError::EngineDied)??;
        Ok(Self {
            jobs: jobs_tx,
            tokenizer,
            template: Arc::new(template),
            context_length,
            model_name: name.into(),
            queue_capacity: options.queue_capacity.max(1),
            stats,
        })
    }

    /// Queues a request. Returns at once: `Busy` when the queue is full, `PromptTooLong` when the
    /// conversation does not fit the model's context.
    pub fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, GenerateError> {
        let text = self
            .render_prompt(&request.messages)
            .map_err(GenerateError::Prompt)?;
        let prompt = self
            .tokenizer
            .encode(&text)
            .map_err(GenerateError::Prompt)?;
        if prompt.is_empty() || prompt.len() + 1 >= self.context_length {
            return Err(GenerateError::PromptTooLong {
                prompt: prompt.len(),
                limit: self.context_length,
            });
        }
        let (reply, events) = mpsc::unbounded_channel();
        let job = Job {
            prompt,
            params: request.params,
            max_new_tokens: request.max_new_tokens.max(1),
            queued_at: Instant::now(),
            reply,
        };
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => GenerateError::Busy(self.queue_capacity),
            mpsc::error::TrySendError::Closed(_) => GenerateError::Stopped,
        })?;
        Ok(GenerationStream { events })
    }

    /// Generates a whole answer.
    pub async fn generate(&self, request: GenerationRequest) -> Result<Generation, GenerateError> {
        self.submit(request)?.finish().await
    }

    pub fn tokenizer(&self) -> &ModelTokenizer {
        &self.tokenizer
    }

    /// The prompt text the model sees for `messages`.
    pub fn render_prompt(&self, messages: &[ChatMessage]) -> Result<String, String> {
        self.template.render(messages, true)
    }

    /// Tokens the model can attend to (prompt plus answer).
    /// Whether the engine's thread still takes requests (it ends only by a panic or shutdown).
    pub fn is_running(&self) -> bool {
        !self.jobs.is_closed()
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }
}

type Loaded = (LoadedModel, ModelTokenizer, ChatTemplate, String);

fn load(path: &std::path::Path, requantize: Requantize) -> Result<Loaded, LoadError> {
    let file = ModelFile::open(path)?;
    let tokenizer = ModelTokenizer::from_gguf(&file)?;
    let template_source = file
        .string("tokenizer.chat_template")
        .unwrap_or(CHATML)
        .to_owned();
    let template = ChatTemplate::new(
        &template_source,
        tokenizer.bos_token(),
        tokenizer.eos_token(),
    )
    .map_err(|reason| LoadError::Tokenizer {
        path: path.to_owned(),
        reason,
    })?;
    let name = file.name();
    let model = LoadedModel::load_with(file, &Device::Cpu, requantize)?;
    Ok((model, tokenizer, template, name))
}

/// One request in progress.
struct Sequence {
    job: Job,
    model: LoadedModel,
    sampler: Sampler,
    prompt: Vec<u32>,
    /// Prompt tokens already run through the model.
    prefilled: usize,
    generated: Vec<u32>,
    logprobs: Vec<f32>,
    /// How many of `logprobs` went out with pieces already.
    reported: usize,
    pending_logits: Option<Vec<f32>>,
    decoder: StreamDecoder,
    started: Instant,
    first_token: Option<Duration>,
}

enum Step {
    Continue,
    Done(FinishReason),
}

fn run(
    base: LoadedModel,
    tokenizer: ModelTokenizer,
    mut jobs: mpsc::Receiver<Job>,
    max_running: usize,
    stats: &EngineStats,
) {
    // Models candle can clone run several at once, each instance with its own KV cache; the others
    // run one request at a time.
    let mut free: Vec<LoadedModel> = Vec::new();
    let slots = if base.try_clone().is_some() {
        max_running
    } else {
        1
    };
    for _ in 1..slots {
        if let Some(m) = base.try_clone() {
            free.push(m);
        }
    }
    free.push(base);
    let mut running: Vec<Sequence> = Vec::new();
    let mut open = true;
    tracing::info!(slots = free.len(), "inference engine ready");

    while open || !running.is_empty() {
        // Admit waiting requests into free slots; sleep only when there is nothing to do.
        while !free.is_empty() && open {
            let job = if running.is_empty() {
                match jobs.blocking_recv() {
                    Some(job) => job,
                    None => {
                        open = false;
                        break;
                    }
                }
            } else {
                match jobs.try_recv() {
                    Ok(job) => job,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            };
            if job.reply.is_closed() {
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            running.push(admit(job, free.pop().expect("checked non-empty")));
        }

        let mut i = 0;
        while i < running.len() {
            let seq = &mut running[i];
            let outcome = if seq.job.reply.is_closed() {
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("generation cancelled by its caller");
                None
            } else {
                match step(seq, &tokenizer) {
                    Ok(Step::Continue) => {
                        i += 1;
                        continue;
                    }
                    Ok(Step::Done(reason)) => Some(Ok(reason)),
                    Err(e) => Some(Err(e)),
                }
            };
            let seq = running.swap_remove(i);
            let Sequence {
                job,
                model,
                generated,
                logprobs,
                reported,
                decoder,
                started,
                first_token,
                prompt,
                ..
            } = seq;
            free.push(model);
            match outcome {
                None => {}
                Some(Ok(finish)) => {
                    let (rest, text) = decoder.finish(&tokenizer);
                    if let Some(rest) = rest {
                        let _ = job.reply.send(Ok(GenerationEvent::Piece {
                            text: rest,
                            logprobs: logprobs[reported..].to_vec(),
                        }));
                    }
                    stats.completed.fetch_add(1, Ordering::Relaxed);
                    let total_time = started.elapsed();
                    tracing::debug!(
                        prompt_tokens = prompt.len(),
                        new_tokens = generated.len(),
                        ms = total_time.as_millis() as u64,
                        "generation finished"
                    );
                    let _ = job.reply.send(Ok(GenerationEvent::Finished(Generation {
                        text,
                        tokens: generated,
                        logprobs,
                        finish,
                        prompt_tokens: prompt.len(),
                        time_to_first_token: first_token.unwrap_or(total_time),
                        total_time,
                    })));
                }
                Some(Err(e)) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    let _ = job.reply.send(Err(e));
                }
            }
        }
    }
    tracing::info!("inference engine stopped");
}

fn admit(job: Job, model: LoadedModel) -> Sequence {
    Sequence {
        sampler: Sampler::new(job.params.clone()),
        prompt: job.prompt.clone(),
        prefilled: 0,
        generated: Vec::new(),
        logprobs: Vec::new(),
        reported: 0,
        pending_logits: None,
        decoder: StreamDecoder::new(),
        started: job.queued_at,
        first_token: None,
        model,
        job,
    }
}

fn step(seq: &mut Sequence, tokenizer: &ModelTokenizer) -> Result<Step, GenerateError> {
    let model_err = |e: candle_core::Error| GenerateError::Model(e.to_string());
    if seq.prefilled < seq.prompt.len() {
        let end = (seq.prefilled + PREFILL_CHUNK).min(seq.prompt.len());
        let logits = seq
            .model
            .forward(&seq.prompt[seq.prefilled..end], seq.prefilled)
            .map_err(model_err)?;
        seq.prefilled = end;
        if end == seq.prompt.len() {
            seq.pending_logits = Some(logits);
        }
        return Ok(Step::Continue);
    }
    let mut logits = seq
        .pending_logits
        .take()
        .ok_or_else(|| GenerateError::Model("no logits to sample from".into()))?;
    let history_len = seq.prompt.len() + seq.generated.len();
    let (token, logprob) = {
        let mut history = Vec::with_capacity(history_len);
        history.extend_from_slice(&seq.prompt);
        history.extend_from_slice(&seq.generated);
        seq.sampler.sample(&mut logits, &history)
    };
    if seq.first_token.is_none() {
        seq.first_token = Some(seq.started.elapsed());
    }
    if tokenizer.stop_ids().contains(&token) {
        return Ok(Step::Done(FinishReason::EndOfTurn));
    }
    seq.generated.push(token);
    seq.logprobs.push(logprob);
    if let Some(piece) = seq.decoder.push(tokenizer, token) {
        // A closed channel is noticed before the next step.
        let logprobs = seq.logprobs[seq.reported..].to_vec();
        seq.reported = seq.logprobs.len();
        let _ = seq.job.reply.send(Ok(GenerationEvent::Piece {
            text: piece,
            logprobs,
        }));
    }
    if seq.generated.len() >= seq.job.max_new_tokens {
        return Ok(Step::Done(FinishReason::MaxTokens));
    }
    if history_len + 1 >= seq.model.context_length {
        return Ok(Step::Done(FinishReason::ContextFull));
    }
    let logits = seq
        .model
        .forward(&[token], history_len)
        .map_err(model_err)?;
    seq.pending_logits = Some(logits);
    Ok(Step::Continue)
}
