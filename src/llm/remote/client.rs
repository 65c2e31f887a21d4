//! HTTP to an OpenAI-compatible server: the requests medbot makes and how their failures are read.
//! Only message texts go out: no Telegram id, name or patient reference is ever in a body.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::tokens::TokenizeApi;
use crate::context::{PromptMessage, PromptRole};

/// Where the server is and how to reach it.
#[derive(Clone)]
pub struct Endpoint {
    http: reqwest::Client,
    /// `GENERATOR_URL`, ending in `/v1`, without a trailing slash.
    base: String,
    /// The server's root (tokenize and template endpoints live there, outside `/v1`).
    root: String,
    key: Option<SecretString>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Why one request got no usable answer.
#[derive(Debug, Clone)]
pub enum RequestFailure {
    /// Worth trying again: refused connection, 5xx, 429, a timeout, a stream cut before any text.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The key was refused (401/403).
    Unauthorized(String),
    /// The prompt does not fit the server's context.
    TooLong { tokens: usize, limit: usize },
    /// Anything else the server refused (400, 404): trying again gives the same answer.
    Rejected(String),
}

impl std::fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient { reason, .. } => write!(f, "{reason}"),
            Self::Unauthorized(reason) => write!(f, "the server refused the key: {reason}"),
            Self::TooLong { tokens, limit } => {
                write!(
                    f,
                    "the prompt needs {tokens} tokens, the server has {limit}"
                )
            }
            Self::Rejected(reason) => write!(f, "the server refused the request: {reason}"),
        }
    }
}

impl Endpoint {
    /// `base`: the URL up to and including `/v1`.
    pub fn new(base: &url::Url, key: Option<SecretString>) -> Self {
        let base = base.as_str().trim_end_matches('/').to_owned();
        let root = base.strip_suffix("/v1").unwrap_or(base.as_str()).to_owned();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            http,
            base,
            root,
            key,
        }
    }

    fn with_key(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(key) => request.bearer_auth(key.expose_secret()),
            None => request,
        }
    }

    /// `GET /v1/models`: the ids the server serves, and its context length when it says.
    pub async fn models(&self) -> Result<Vec<ServedModel>, RequestFailure> {
        let request = self
            .with_key(self.http.get(format!("{}/models", self.base)))
            .timeout(Duration::from_secs(10));
        let body = read_json(request.send().await).await?;
        let data = body["data"].as_array().cloned().unwrap_or_default();
        Ok(data
            .iter()
            .filter_map(|m| {
                Some(ServedModel {
                    id: m["id"].as_str()?.to_owned(),
                    // vLLM says `max_model_len`; llama.cpp's server the context of one slot.
                    context_tokens: m["max_model_len"]
                        .as_u64()
                        .or_else(|| m["meta"]["n_ctx"].as_u64())
                        .map(|n| n as usize),
                })
            })
            .collect())
    }

    /// Which tokenize dialect the server speaks, if any.
    pub async fn probe_tokenize(&self, model: &str) -> Option<TokenizeApi> {
        for api in [TokenizeApi::LlamaCpp, TokenizeApi::Vllm] {
            if self
                .tokenize(api, model, text_body(api, model, "x"))
                .await
                .is_some()
            {
                return Some(api);
            }
        }
        None
    }

    /// Tokens of `text` on its own, as the server counts them.
    pub async fn count_text(&self, api: TokenizeApi, model: &str, text: &str) -> Option<usize> {
        self.tokenize(api, model, text_body(api, model, text)).await
    }

    /// Tokens of a whole prompt, chat template and the opening of the answer included.
    pub async fn count_chat(
        &self,
        api: TokenizeApi,
        model: &str,
        messages: &[PromptMessage],
    ) -> Option<usize> {
        match api {
            TokenizeApi::LlamaCpp => {
                let request = self
                    .with_key(self.http.post(format!("{}/apply-template", self.root)))
                    .json(&json!({"messages": wire_messages(messages)}))
                    .timeout(Duration::from_secs(10));
                let body = read_json(request.send().await).await.ok()?;
                let prompt = body["prompt"].as_str()?;
                let body = json!({"content": prompt, "add_special": true, "parse_special": true});
                self.tokenize(api, model, body).await
            }
            TokenizeApi::Vllm => {
                let body = json!({
                    "model": model, "messages": wire_messages(messages),
                    "add_generation_prompt": true,
                });
                self.tokenize(api, model, body).await
            }
        }
    }

    async fn tokenize(&self, api: TokenizeApi, _model: &str, body: Value) -> Option<usize> {
        let request = self
            .with_key(self.http.post(format!("{}/tokenize", self.root)))
            .json(&body)
            .timeout(Duration::from_secs(10));
        let answer = read_json(request.send().await).await.ok()?;
        match api {
            TokenizeApi::LlamaCpp => answer["tokens"].as_array().map(Vec::len),
            TokenizeApi::Vllm => answer["count"].as_u64().map(|n| n as usize),
        }
    }

    /// Starts a chat completion; the answer's body is the event stream when `body` asks for one.
    pub async fn chat(&self, body: &Value) -> Result<reqwest::Response, RequestFailure> {
        let request = self
            .with_key(self.http.post(format!("{}/chat/completions", self.base)))
            .json(body);
        let response = request.send().await.map_err(transport_failure)?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(status_failure(response).await)
    }
}

/// One model a server offers.
#[derive(Debug, Clone)]
pub struct ServedModel {
    pub id: String,
    pub context_tokens: Option<usize>,
}

fn text_body(api: TokenizeApi, model: &str, text: &str) -> Value {
    match api {
        // Special-token text a patient typed is counted as plain text: never fewer tokens.
        TokenizeApi::LlamaCpp => {
            json!({"content": text, "add_special": false, "parse_special": false})
        }
        TokenizeApi::Vllm => json!({"model": model, "prompt": text, "add_special_tokens": false}),
    }
}

pub fn wire_messages(messages: &[PromptMessage]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| {
            let role = match m.role {
                PromptRole::System => "system",
                PromptRole::User => "user",
                PromptRole::Assistant => "assistant",
            };
            json!({"role": role, "content": m.content})
        })
        .collect()
}

async fn read_json(sent: reqwest::Result<reqwest::Response>) -> Result<Value, RequestFailure> {
    let response = sent.map_err(transport_failure)?;
    if !response.status().is_success() {
        return Err(status_failure(response).await);
    }
    response
        .json::<Value>()
        .await
        .map_err(|e| RequestFailure::Transient {
            reason: format!("the server's answer is not JSON: {e}"),
            retry_after: None,
        })
}

pub fn transport_failure(error: reqwest::Error) -> RequestFailure {
    let reason = if error.is_connect() {
        "the server cannot be reached (connection refused or no route)".to_owned()
    } else if error.is_timeout() {
        "the server did not answer in time".to_owned()
    } else {
        // Without the URL: it is in the configuration, and the log needs only the kind.
        format!("the request failed: {}", error.without_url())
    };
    RequestFailure::Transient {
        reason,
        retry_after: None,
    }
}

/// Reads an error answer: the status decides the kind, the body (OpenAI's `{"error": {...}}`)
/// says why; a prompt too long for the context carries its numbers where the server gives them.
async fn status_failure(response: reqwest::Response) -> RequestFailure {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(30)));
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let error = &body["error"];
    let message = error["message"]
        .as_str()
        .or_else(|| body["message"].as_str())
        .or_else(|| error.as_str())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect::<String>();
    // The status and the error's kind only: servers echo the request (patients' words) in
    // their messages, and these reasons reach the logs.
    let kind = error["type"]
        .as_str()
        .or_else(|| error["code"].as_str())
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(60)
        .collect::<String>();
    let reason = if kind.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {} ({kind})", status.as_u16())
    };
    match status.as_u16() {
        401 | 403 => RequestFailure::Unauthorized(reason),
        429 | 500..=599 => RequestFailure::Transient {
            reason,
            retry_after,
        },
        _ => {
            let exceeds = error["type"].as_str() == Some("exceed_context_size_error")
                || message.contains("context length")
                || message.contains("context size");
            match (
                exceeds,
                error["n_prompt_tokens"].as_u64(),
                error["n_ctx"].as_u64(),
            ) {
                (true, Some(tokens), Some(limit)) => RequestFailure::TooLong {
                    tokens: tokens as usize,
                    limit: limit as usize,
                },
                _ => RequestFailure::Rejected(reason),
            }
        }
    }
}
