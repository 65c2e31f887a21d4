//! A scripted OpenAI-compatible server, for what a real one rarely does on demand: 500s, a stream
//! cut half way, malformed events, a stall, a refused key. Each chat request takes the next
//! behaviour from the script; an empty script answers normally.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const MODEL: &str = "medical-7b-instruct";
pub const ANSWER: [&str; 3] = [
    "Rest and drink plenty of fluids. ",
    "Most colds",
    " pass within a week.",
];

/// What the server does with one chat request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers this HTTP status with an OpenAI error body.
    Status(u16),
    /// Streams these pieces, then ends as said.
    Stream(Vec<&'static str>, End),
}

#[derive(Debug, Clone, Copy)]
pub enum End {
    /// A finish reason and `[DONE]`.
    Done,
    /// The connection closes with neither.
    Cut,
    /// An event whose data is not JSON.
    Malformed,
    /// Nothing more, and the connection stays open.
    Stall,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Behaviour>,
    /// Bodies of the streamed chat requests, in order.
    chats: Vec<Value>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    key: Option<String>,
    logprobs: bool,
    /// Answers vLLM's `/tokenize`, one token per word (template: three per message, two more).
    vllm_tokenize: bool,
}

pub struct FakeInference {
    /// The base URL, ending in /v1.
    pub url: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeInference {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeInference {
    /// `key`: the bearer token it accepts (none: any). `logprobs`: whether it reports them.
    pub async fn start(key: Option<&str>, logprobs: bool) -> Self {
        Self::start_with(key, logprobs, false).await
    }

    /// As [`FakeInference::start`], with vLLM's tokenize endpoint when `vllm_tokenize`.
    pub async fn start_with(key: Option<&str>, logprobs: bool, vllm_tokenize: bool) -> Self {
        let shared = Shared {
            inner: Arc::default(),
            key: key.map(str::to_owned),
            logprobs,
            vllm_tokenize,
        };
        let app = Router::new()
            .route("/v1/models", get(models))
            .route("/tokenize", post(tokenize))
            .route("/v1/chat/completions", post(chat))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            shared,
            server,
        }
    }

    pub fn script(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.shared.inner.lock().unwrap().script.extend(behaviours);
    }

    /// The streamed chat requests received so far.
    pub fn chats(&self) -> Vec<Value> {
        self.shared.inner.lock().unwrap().chats.clone()
    }
}

fn refused(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let expected = shared.key.as_ref()?;
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (given != Some(expected.as_str())).then(|| error(401, "Incorrect API key provided"))
}

fn error(status: u16, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "error", "code": status}});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

async fn models(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&shared, &headers) {
        return refusal;
    }
    axum::Json(json!({"object": "list", "data": [{"id": MODEL, "object": "model", "max_model_len": 8192}]}))
        .into_response()
}

async fn tokenize(State(shared): State<Shared>, body: axum::Json<Value>) -> Response {
    if !shared.vllm_tokenize {
        return error(404, "Not Found");
    }
    let words = |text: &str| text.split_whitespace().count();
    let count = match (&body["prompt"], &body["messages"]) {
        (Value::String(prompt), _) => words(prompt),
        (_, Value::Array(messages)) => {
            2 + messages
                .iter()
                .map(|m| 3 + words(m["content"].as_str().unwrap_or_default()))
                .sum::<usize>()
        }
        _ => return error(400, "prompt or messages"),
    };
    axum::Json(json!({"count": count, "max_model_len": 8192, "tokens": []})).into_response()
}

fn chunk(text: &str, finish: Option<&str>, logprobs: bool) -> Bytes {
    let mut choice = json!({"index": 0, "delta": {"content": text}, "finish_reason": finish});
    if logprobs && !text.is_empty() {
        choice["logprobs"] = json!({"content": [{"token": text, "logprob": -0.05, "bytes": [], "top_logprobs": []}]});
    }
    let data = json!({"object": "chat.completion.chunk", "choices": [choice]});
    Bytes::from(format!("data: {data}\n\n"))
}

async fn chat(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    if let Some(refusal) = refused(&shared, &headers) {
        return refusal;
    }
    let body = body.0;
    if body["stream"] != json!(true) {
        // The start-up probe: one token, with log-probabilities if this server gives them.
        let mut choice = json!({"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "length"});
        if shared.logprobs && body["logprobs"] == json!(true) {
            choice["logprobs"] = json!({"content": [{"token": "Hi", "logprob": -0.1}]});
        }
        return axum::Json(json!({"object": "chat.completion", "choices": [choice]}))
            .into_response();
    }
    let behaviour = {
        let mut inner = shared.inner.lock().unwrap();
        inner.chats.push(body);
        inner
            .script
            .pop_front()
            .unwrap_or(Behaviour::Stream(ANSWER.to_vec(), End::Done))
    };
    let (pieces, end) = match behaviour {
        Behaviour::Status(status) => return error(status, "the server is having a bad day"),
        Behaviour::Stream(pieces, end) => (pieces, end),
    };
    let logprobs = shared.logprobs;
    let events = async_stream(pieces, end, logprobs);
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(events))
        .unwrap()
}

fn async_stream(
    pieces: Vec<&'static str>,
    end: End,
    logprobs: bool,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    use futures::StreamExt;

    let mut parts: Vec<Bytes> = pieces.iter().map(|p| chunk(p, None, logprobs)).collect();
    match end {
        End::Done => {
            parts.push(chunk("", Some("stop"), false));
            parts.push(Bytes::from("data: [DONE]\n\n"));
        }
        End::Malformed => parts.push(Bytes::from("data: {\"choices\": [{\"delta\": \n\n")),
        End::Cut | End::Stall => {}
    }
    let body = futures::stream::iter(parts).then(|part| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(part)
    });
    let tail = match end {
        End::Stall => futures::stream::pending().boxed(),
        _ => futures::stream::empty().boxed(),
    };
    body.chain(tail)
}
