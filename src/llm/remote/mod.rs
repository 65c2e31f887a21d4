//! The consultation service's `Generator` port on an OpenAI-compatible inference server (vLLM,
//! llama.cpp's `llama-server`, Ollama, TGI): a capable model on a GPU, or many replicas behind one
//! URL, in place of the in-process engine.
//!
//! The answer streams over server-sent events into the same sentence-gated review as the local
//! engine. Failures before any text has streamed are retried with backoff; after that, or while
//! the circuit breaker is open, the draft fails and goes to a doctor empty, exactly as when the
//! local engine breaks. Dropping the draft's receiver drops the HTTP response, which closes the
//! connection: the server stops generating and frees its slot.

mod breaker;
mod client;
mod events;
mod tokens;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

pub use client::ServedModel;
pub use events::{StreamError, StreamEvent};
pub use tokens::{LocalTokenizer, TokenizeApi, upper_bound};

use breaker::Breaker;
use client::{Endpoint, RequestFailure};
use tokens::TokenCounts;

use super::SamplingParams;
use crate::consult::{Draft, DraftEvent, DraftStream, Generator, GeneratorError};
use crate::context::{PromptMessage, PromptRole, TokenCounter};

/// How medbot reaches the server (`GENERATOR_*`).
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// `GENERATOR_URL`: up to and including `/v1`.
    pub url: url::Url,
    /// `GENERATOR_MODEL`; when unset, the one model the server serves.
    pub model: Option<String>,
    /// `GENERATOR_API_KEY`: sent as a bearer token, never logged.
    pub api_key: Option<SecretString>,
    /// `GENERATOR_MAX_CONCURRENCY`: requests in flight at once.
    pub max_concurrency: usize,
    /// Requests waiting for one of those places; one more is refused as busy.
    pub queue_capacity: usize,
    /// `GENERATOR_TIMEOUT_S`: the whole answer, from the request to its last token.
    pub timeout: Duration,
    /// `GENERATOR_TOKENIZER`: the served model's tokenizer.json or GGUF, for servers that cannot
    /// count tokens themselves.
    pub tokenizer: Option<PathBuf>,
    /// `GENERATOR_ALLOW_INSECURE`: plain http to a public address.
    pub allow_insecure: bool,
}

impl RemoteSettings {
    pub fn new(url: url::Url) -> Self {
        Self {
            url,
            model: None,
            api_key: None,
            max_concurrency: 8,
            queue_capacity: 32,
            timeout: Duration::from_secs(60),
            tokenizer: None,
            allow_insecure: false,
        }
    }
}

/// A setting that does not work with the server, named so the operator knows what to change.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct RemoteError {
    pub setting: &'static str,
    pub problem: String,
}

impl RemoteError {
    fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        Self {
            setting,
            problem: problem.into(),
        }
    }
}

/// Tries before giving up on an answer that has not started, and the first wait between them.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Answers failed in a row before requests fail at once, and for how long.
const BREAKER_THRESHOLD: u32 = 5;
const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);
/// The context a server that does not say is assumed to have (a setting wins).
const ASSUMED_CONTEXT_TOKENS: usize = 4096;

/// The remote generator. Cheap to clone; clones share the server's places and the breaker.
#[derive(Debug, Clone)]
pub struct RemoteGenerator {
    inner: Arc<Inner>,
    ignore_eos: bool,
}

#[derive(Debug)]
struct Inner {
    endpoint: Endpoint,
    model: String,
    settings: RemoteSettings,
    params: SamplingParams,
    context_tokens: usize,
    logprobs: bool,
    counts: TokenCounts,
    message_overhead: usize,
    prompt_overhead: usize,
    places: Arc<Semaphore>,
    waiting: AtomicUsize,
    breaker: Breaker,
}

impl RemoteGenerator {
    /// Reaches the server and learns what it offers: the model, its context, whether it counts
    /// tokens and reports log-probabilities.
    ///
    /// # Errors
    /// The setting at fault: `GENERATOR_URL` (unreachable, not an OpenAI-compatible server, plain
    /// http to a public address), `GENERATOR_API_KEY` (refused), `GENERATOR_MODEL` (not served),
    /// `GENERATOR_TOKENIZER` (unreadable).
    pub async fn connect(settings: RemoteSettings) -> Result<Self, RemoteError> {
        ensure_private_or_https(&settings).await?;
        let endpoint = Endpoint::new(&settings.url, settings.api_key.clone());
        let served = endpoint.models().await.map_err(|e| match e {
            RequestFailure::Unauthorized(reason) => RemoteError::new(
                "GENERATOR_API_KEY",
                format!("the server at GENERATOR_URL refused it ({reason})"),
            ),
            other => RemoteError::new(
                "GENERATOR_URL",
                format!("{} did not list its models ({other})", settings.url),
            ),
        })?;
        let model = pick_model(&settings, &served)?;
        let local = match &settings.tokenizer {
            Some(path) => Some(LocalTokenizer::open(path).map_err(|e| {
                RemoteError::new(
                    "GENERATOR_TOKENIZER",
                    format!("{} is not a tokenizer: {e}", path.display()),
                )
            })?),
            None => None,
        };
        let api = endpoint.probe_tokenize(&model.id).await;
        let counts = TokenCounts::new(api, local);
        let (message_overhead, prompt_overhead) = match api {
            Some(api) => measure_overheads(&endpoint, api, &model.id).await,
            None => None,
        }
        .unwrap_or((
            tokens::GUESSED_MESSAGE_OVERHEAD,
            tokens::GUESSED_PROMPT_OVERHEAD,
        ));
        let context_tokens = model.context_tokens.unwrap_or_else(|| {
            tracing::warn!(
                assumed = ASSUMED_CONTEXT_TOKENS,
                "the inference server does not say its context length; assuming it"
            );
            ASSUMED_CONTEXT_TOKENS
        });
        let inner = Inner {
            endpoint,
            model: model.id,
            places: Arc::new(Semaphore::new(settings.max_concurrency.max(1))),
            settings,
            params: SamplingParams::default(),
            context_tokens,
            logprobs: false,
            counts,
            message_overhead,
            prompt_overhead,
            waiting: AtomicUsize::new(0),
            breaker: Breaker::new(BREAKER_THRESHOLD, BREAKER_COOLDOWN),
        };
        let mut generator = Self {
            inner: Arc::new(inner),
            ignore_eos: false,
        };
        let logprobs = generator.offers_logprobs().await?;
        Arc::get_mut(&mut generator.inner)
            .expect("not shared yet")
            .logprobs = logprobs;
        if logprobs {
            tracing::info!(
                model = %generator.inner.model,
                context_tokens,
                counts = generator.inner.counts.source(),
                "inference server ready"
            );
        } else {
            tracing::warn!(
                model = %generator.inner.model,
                "the inference server gives no log-probabilities: the model's confidence is \
                 unknown, so nothing streams to patients before review and every draft goes to a doctor"
            );
        }
        Ok(generator)
    }

    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// A generator that asks the server to ignore the end of turn, so that every answer is as
    /// long as asked (`medbot bench` compares fixed amounts of work). Shares places and breaker.
    pub fn ignoring_end_of_turn(self) -> Self {
        Self {
            ignore_eos: true,
            ..self
        }
    }

    /// Where token counts come from (for `medbot check`).
    pub fn count_source(&self) -> &'static str {
        self.inner.counts.source()
    }

    /// The server's own count of a whole prompt, when it can count (tests compare the context
    /// builder's count with it).
    pub async fn server_prompt_tokens(&self, messages: &[PromptMessage]) -> Option<usize> {
        let api = self.inner.counts.api()?;
        self.inner
            .endpoint
            .count_chat(api, &self.inner.model, messages)
            .await
    }

    /// One token with log-probabilities asked for: whether they come back.
    async fn offers_logprobs(&self) -> Result<bool, RemoteError> {
        let body = json!({
            "model": self.inner.model,
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 1, "logprobs": true, "top_logprobs": 1,
        });
        // A server with every slot busy (or still loading) must not hold start-up forever.
        let probe = async {
            let response = self.inner.endpoint.chat(&body).await?;
            Ok(response.json::<Value>().await.ok())
        };
        let answer = match tokio::time::timeout(self.inner.settings.timeout, probe)
            .await
            .unwrap_or_else(|_| {
                Err(RequestFailure::Transient {
                    reason: "no answer to a one-token request within GENERATOR_TIMEOUT_S".into(),
                    retry_after: None,
                })
            }) {
            Ok(answer) => answer,
            // Some servers refuse the parameter outright.
            Err(RequestFailure::Rejected(_)) => return Ok(false),
            Err(RequestFailure::Unauthorized(reason)) => {
                return Err(RemoteError::new(
                    "GENERATOR_API_KEY",
                    format!("the server refused it for completions ({reason})"),
                ));
            }
            Err(e) => {
                return Err(RemoteError::new(
                    "GENERATOR_URL",
                    format!("the server did not complete a test request ({e})"),
                ));
            }
        };
        Ok(answer.is_some_and(|a| a["choices"][0]["logprobs"]["content"].is_array()))
    }

    fn body(&self, prompt: &[PromptMessage], max_new_tokens: usize) -> Value {
        let p = &self.inner.params;
        let mut body = json!({
            "model": self.inner.model,
            "messages": client::wire_messages(prompt),
            "stream": true,
            "max_tokens": max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
        });
        if self.ignore_eos {
            // llama.cpp's server and vLLM both take the first; the second stops llama.cpp from
            // reusing an earlier run's prompt, which would make prefill look free.
            body["ignore_eos"] = json!(true);
            body["cache_prompt"] = json!(false);
        }
        if self.inner.logprobs {
            body["logprobs"] = json!(true);
            body["top_logprobs"] = json!(1);
        }
        body
    }

    /// A place among the requests in flight, waiting in the queue when all are taken.
    async fn admit(inner: &Inner) -> Result<tokio::sync::OwnedSemaphorePermit, GeneratorError> {
        if let Ok(permit) = Arc::clone(&inner.places).try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = inner.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = scopeguard(|| {
            inner.waiting.fetch_sub(1, Ordering::SeqCst);
        });
        if waiting >= inner.settings.queue_capacity {
            return Err(GeneratorError::Busy);
        }
        Arc::clone(&inner.places)
            .acquire_owned()
            .await
            .map_err(|_| GeneratorError::Failed("the generator is shutting down".into()))
    }
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

fn pick_model(
    settings: &RemoteSettings,
    served: &[ServedModel],
) -> Result<ServedModel, RemoteError> {
    let ids = || {
        served
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &settings.model {
        Some(wanted) => served
            .iter()
            .find(|m| &m.id == wanted)
            .cloned()
            // Ollama and some proxies serve models they do not list.
            .or_else(|| {
                served.is_empty().then(|| ServedModel {
                    id: wanted.clone(),
                    context_tokens: None,
                })
            })
            .ok_or_else(|| {
                RemoteError::new(
                    "GENERATOR_MODEL",
                    format!("the server does not serve {wanted:?}; it serves: {}", ids()),
                )
            }),
        None => match served {
            [one] => Ok(one.clone()),
            [] => Err(RemoteError::new(
                "GENERATOR_MODEL",
                "is not set and the server lists no model; set it to the model's name",
            )),
            _ => Err(RemoteError::new(
                "GENERATOR_MODEL",
                format!("is not set and the server serves several: {}", ids()),
            )),
        },
    }
}

/// What the server's chat template adds around messages and once per prompt, measured like the
/// local engine's (with the same slack for merges at the boundaries).
async fn measure_overheads(
    endpoint: &Endpoint,
    api: TokenizeApi,
    model: &str,
) -> Option<(usize, usize)> {
    let x = |role| PromptMessage::new(role, "x");
    let one = endpoint
        .count_chat(api, model, &[x(PromptRole::System)])
        .await?;
    let two = endpoint
        .count_chat(api, model, &[x(PromptRole::System), x(PromptRole::User)])
        .await?;
    let three = endpoint
        .count_chat(
            api,
            model,
            &[
                x(PromptRole::System),
                x(PromptRole::User),
                x(PromptRole::Assistant),
            ],
        )
        .await?;
    let per_message = two.saturating_sub(one).max(three.saturating_sub(two));
    Some((per_message + 1, one.saturating_sub(per_message) + 4))
}

/// The conversation leaves the process: over a public network it must be encrypted.
async fn ensure_private_or_https(settings: &RemoteSettings) -> Result<(), RemoteError> {
    let url = &settings.url;
    match url.scheme() {
        "https" => return Ok(()),
        "http" => {}
        other => {
            return Err(RemoteError::new(
                "GENERATOR_URL",
                format!("must be an http or https URL, not {other}:"),
            ));
        }
    }
    if settings.allow_insecure {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let addresses: Vec<std::net::IpAddr> =
        match tokio::net::lookup_host((host.trim_matches(['[', ']']), port)).await {
            Ok(found) => found.map(|a| a.ip()).collect(),
            Err(e) => {
                return Err(RemoteError::new(
                    "GENERATOR_URL",
                    format!("the host {host} cannot be resolved ({e})"),
                ));
            }
        };
    if !addresses.is_empty() && addresses.iter().all(is_private) {
        return Ok(());
    }
    Err(RemoteError::new(
        "GENERATOR_URL",
        format!(
            "{host} is a public address: use https (patients' messages would cross the network \
             in clear), or set GENERATOR_ALLOW_INSECURE=true if the network is yours"
        ),
    ))
}

/// Loopback, private (RFC 1918, unique local) or link-local.
pub fn is_private(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

impl TokenCounter for RemoteGenerator {
    fn count(&self, text: &str) -> usize {
        self.inner.counts.count(text)
    }

    fn message_overhead(&self) -> usize {
        self.inner.message_overhead
    }

    fn prompt_overhead(&self) -> usize {
        self.inner.prompt_overhead
    }
}

impl Generator for RemoteGenerator {
    fn context_tokens(&self) -> usize {
        self.inner.context_tokens
    }

    fn health(&self) -> Result<(), String> {
        if self.inner.breaker.allows() {
            Ok(())
        } else {
            Err("the inference server failed several times in a row (circuit open)".into())
        }
    }

    fn knows_confidence(&self) -> bool {
        self.inner.logprobs
    }

    async fn prepare_counts(&self, texts: Vec<String>) {
        self.inner
            .counts
            .learn(&self.inner.endpoint, &self.inner.model, texts)
            .await;
    }

    async fn generate(
        &self,
        prompt: Vec<PromptMessage>,
        max_new_tokens: usize,
    ) -> Result<DraftStream, GeneratorError> {
        let inner = Arc::clone(&self.inner);
        if !inner.breaker.allows() {
            return Err(GeneratorError::Failed(
                "the inference server failed several answers in a row; not asking it for a while"
                    .into(),
            ));
        }
        if inner.places.available_permits() == 0
            && inner.waiting.load(Ordering::SeqCst) >= inner.settings.queue_capacity
        {
            return Err(GeneratorError::Busy);
        }
        let body = self.body(&prompt, max_new_tokens);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let deadline = inner.settings.timeout;
            let admitted = std::sync::atomic::AtomicBool::new(false);
            let work = answer(&inner, &body, &tx, &admitted);
            let outcome = tokio::select! {
                // The patient's request was dropped: dropping `work` closes the connection.
                () = tx.closed() => return,
                outcome = tokio::time::timeout(deadline, work) => outcome,
            };
            let failure = match outcome {
                Ok(Ok(())) => {
                    inner.breaker.succeeded();
                    return;
                }
                Ok(Err(e)) => e,
                Err(_) => GeneratorError::Failed(format!(
                    "no whole answer within GENERATOR_TIMEOUT_S ({} s)",
                    deadline.as_secs()
                )),
            };
            // A request that timed out in the queue says the server is busy, not broken.
            let server_failed = admitted.load(Ordering::SeqCst)
                && !matches!(
                    failure,
                    GeneratorError::Busy | GeneratorError::PromptTooLong { .. }
                );
            if server_failed && inner.breaker.failed() {
                tracing::error!(
                    cooldown_s = BREAKER_COOLDOWN.as_secs(),
                    "the inference server keeps failing; answers go to doctors until it recovers"
                );
            }
            tracing::warn!(error = %failure, "the inference server gave no answer");
            let _ = tx.send(Err(failure)).await;
        });
        Ok(rx)
    }
}

/// One answer: a place in the queue, then tries until text streams, then the stream to its end.
async fn answer(
    inner: &Inner,
    body: &Value,
    tx: &mpsc::Sender<Result<DraftEvent, GeneratorError>>,
    admitted: &std::sync::atomic::AtomicBool,
) -> Result<(), GeneratorError> {
    let _place = RemoteGenerator::admit(inner).await?;
    admitted.store(true, Ordering::SeqCst);
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let failure = match inner.endpoint.chat(body).await {
            Ok(response) => match relay(response, tx).await {
                Relayed::Finished | Relayed::Dropped => return Ok(()),
                Relayed::FailedAfterText(e) => return Err(e),
                Relayed::FailedBeforeText(reason) => RequestFailure::Transient {
                    reason,
                    retry_after: None,
                },
            },
            Err(failure) => failure,
        };
        match failure {
            RequestFailure::Transient {
                reason,
                retry_after,
            } if attempt < ATTEMPTS => {
                let wait = retry_after.unwrap_or(backoff);
                tracing::info!(attempt, wait_ms = wait.as_millis() as u64, %reason, "inference server failed; trying again");
                tokio::time::sleep(wait).await;
                backoff *= 2;
                attempt += 1;
            }
            RequestFailure::TooLong { tokens, limit } => {
                return Err(GeneratorError::PromptTooLong { tokens, limit });
            }
            RequestFailure::Unauthorized(reason) => {
                return Err(GeneratorError::Failed(format!(
                    "GENERATOR_API_KEY was refused ({reason})"
                )));
            }
            other => return Err(GeneratorError::Failed(other.to_string())),
        }
    }
}

enum Relayed {
    Finished,
    /// The receiver is gone: the patient's request was dropped.
    Dropped,
    /// Nothing reached the draft yet: the request can be tried again.
    FailedBeforeText(String),
    FailedAfterText(GeneratorError),
}

/// Reads the event stream into draft events until the answer ends.
async fn relay(
    response: reqwest::Response,
    tx: &mpsc::Sender<Result<DraftEvent, GeneratorError>>,
) -> Relayed {
    use eventsource_stream::Eventsource;

    let mut stream = response.bytes_stream().eventsource();
    let mut text = String::new();
    let mut logprobs = Vec::new();
    let mut finish: Option<String> = None;
    let fail = |text: &str, reason: String| {
        if text.is_empty() {
            Relayed::FailedBeforeText(reason)
        } else {
            Relayed::FailedAfterText(GeneratorError::Failed(reason))
        }
    };
    loop {
        let event = match stream.next().await {
            Some(Ok(event)) => event,
            // The answer was whole; only the connection's end was not clean.
            Some(Err(_)) if finish.is_some() => break,
            Some(Err(e)) => return fail(&text, format!("the event stream broke: {e}")),
            None if finish.is_some() => break,
            None => {
                return fail(
                    &text,
                    "the server closed the stream before the answer ended".into(),
                );
            }
        };
        match events::parse(&event.data) {
            Ok(StreamEvent::Done) => break,
            Ok(StreamEvent::Other) => {}
            Ok(StreamEvent::Delta {
                text: piece,
                logprobs: piece_logprobs,
                finish: finished,
            }) => {
                if finished.is_some() {
                    finish = finished;
                }
                if piece.is_empty() && piece_logprobs.is_empty() {
                    continue;
                }
                text.push_str(&piece);
                logprobs.extend_from_slice(&piece_logprobs);
                let event = DraftEvent::Piece {
                    text: piece,
                    logprobs: piece_logprobs,
                };
                if tx.send(Ok(event)).await.is_err() {
                    return Relayed::Dropped;
                }
            }
            Err(e) => return fail(&text, e.to_string()),
        }
    }
    let draft = Draft {
        // "stop", TGI's "eos_token" and "stop_sequence", or none given: the answer ended itself.
        hit_length_limit: finish.as_deref() == Some("length"),
        text,
        logprobs,
    };
    match tx.send(Ok(DraftEvent::Finished(draft))).await {
        Ok(()) => Relayed::Finished,
        Err(_) => Relayed::Dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_loopback_addresses_are_told_from_public_ones() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.7",
            "172.20.0.1",
            "::1",
            "fd00::5",
            "fe80::1",
        ] {
            assert!(is_private(&private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "172.32.0.1", "2001:db8::1"] {
            assert!(!is_private(&public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn plain_http_to_a_public_address_needs_the_override() {
        let public = RemoteSettings::new("http://8.8.8.8:8000/v1".parse().unwrap());
        let e = ensure_private_or_https(&public).await.unwrap_err();
        assert_eq!(e.setting, "GENERATOR_URL");
        assert!(e.problem.contains("GENERATOR_ALLOW_INSECURE"));
        let allowed = RemoteSettings {
            allow_insecure: true,
            ..public
        };
        assert!(ensure_private_or_https(&allowed).await.is_ok());
        let local = RemoteSettings::new("http://127.0.0.1:8080/v1".parse().unwrap());
        assert!(ensure_private_or_https(&local).await.is_ok());
        let tls = RemoteSettings::new("https://inference.example.org/v1".parse().unwrap());
        assert!(ensure_private_or_https(&tls).await.is_ok());
    }

    #[test]
    fn the_model_is_the_one_asked_for_or_the_only_one_served() {
        let served = |ids: &[&str]| -> Vec<ServedModel> {
            ids.iter()
                .map(|id| ServedModel {
                    id: (*id).into(),
                    context_tokens: None,
                })
                .collect()
        };
        let mut settings = RemoteSettings::new("http://127.0.0.1/v1".parse().unwrap());
        assert_eq!(pick_model(&settings, &served(&["a"])).unwrap().id, "a");
        assert_eq!(
            pick_model(&settings, &served(&["a", "b"]))
                .unwrap_err()
                .setting,
            "GENERATOR_MODEL"
        );
        settings.model = Some("b".into());
        assert_eq!(pick_model(&settings, &served(&["a", "b"])).unwrap().id, "b");
        let e = pick_model(&settings, &served(&["a"])).unwrap_err();
        assert!(e.problem.contains("serves: a"), "{e}");
    }
}
