//! A local fake of the Telegram Bot API, speaking its wire format over HTTP on 127.0.0.1: method
//! names in any case, JSON and multipart bodies, `{"ok":true,"result":...}` and
//! `{"ok":false,"error_code":...,"description":...,"parameters":{"retry_after":...}}`, long-polling
//! `getUpdates` with offsets, Telegram's text-length and empty-text errors, and injected faults
//! (429s for any chat; 429s, 5xx and 4xx for the sends to one chat).
//! Tests push patient and doctor updates into it and read what the bot sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const BOT_ID: i64 = 7_000_000_001;
pub const TOKEN: &str = "7000000001:TEST-token_for-the-fake-server";
pub const DOCTOR_CHAT: i64 = -1_001_234_567_890;

/// One call the bot made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub params: Value,
    pub at: Instant,
    /// Whether the fake answered it with success.
    pub ok: bool,
}

/// A message as it stands in a chat (after edits).
#[derive(Debug, Clone)]
pub struct ChatMessage {
    pub id: i64,
    pub chat: i64,
    pub text: String,
    pub reply_markup: Option<Value>,
    pub document: Option<Vec<u8>>,
    pub edits: usize,
    pub sent_at: Instant,
    /// When the text last changed (sent or edited).
    pub updated_at: Instant,
}

#[derive(Default)]
struct Inner {
    /// Updates not yet confirmed by an offset (Telegram forgets confirmed ones).
    updates: Vec<Value>,
    /// Every update ever pushed, for re-delivery.
    log: Vec<Value>,
    /// Updates sent again whatever the offset (Telegram re-delivering after a lost confirmation).
    redelivered: Vec<Value>,
    next_update_id: i64,
    next_message_id: i64,
    calls: Vec<Call>,
    messages: Vec<ChatMessage>,
    /// Sends to answer with 429 and this retry_after, one per send.
    fail_sends: VecDeque<u64>,
    /// Updates given as raw JSON text (which a `Value` could not hold), with their ids.
    raw_updates: Vec<(i64, String)>,
    /// Faults for the sends to one chat, one per send, in order.
    chat_faults: Vec<(i64, VecDeque<Fault>)>,
    /// Chats whose next edit longer than this many characters is made, but answered 500, as
    /// when the answer is lost on the way back.
    lost_edit_answers: Vec<(i64, usize)>,
}

/// What the fake answers a send with, instead of doing it.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Let this send through (to fail a later one).
    Pass,
    /// 429 with this retry_after.
    RetryAfter(u64),
    /// HTTP 500 (teloxide waits 10 s before reading it).
    ServerError,
    /// 400 with this description.
    BadRequest(&'static str),
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    new_update: Arc<Notify>,
}

/// The running fake.
pub struct FakeTelegram {
    pub url: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn user(id: i64, language: &str) -> Value {
    json!({"id": id, "is_bot": false, "first_name": format!("User{id}"), "language_code": language})
}

fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": "medbot", "username": "medbot_test_bot"})
}

fn chat(id: i64) -> Value {
    if id < 0 {
        json!({"id": id, "type": "supergroup", "title": "Doctors"})
    } else {
        json!({"id": id, "type": "private", "first_name": format!("User{id}")})
    }
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

fn error(code: u16, description: &str) -> Value {
    json!({"ok": false, "error_code": code, "description": description})
}

impl FakeTelegram {
    pub async fn start() -> Self {
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                next_update_id: 1,
                next_message_id: 1,
                ..Inner::default()
            })),
            new_update: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/{bot}/{method}", axum::routing::post(handle).get(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            shared,
            server,
        }
    }

    fn push_update(&self, body: impl FnOnce(i64) -> Value) -> i64 {
        let mut inner = self.shared.inner.lock().unwrap();
        let id = inner.next_update_id;
        inner.next_update_id += 1;
        let mut update = body(id);
        update["update_id"] = json!(id);
        inner.log.push(update.clone());
        inner.updates.push(update);
        drop(inner);
        self.shared.new_update.notify_waiters();
        id
    }

    fn next_message_id(&self) -> i64 {
        let mut inner = self.shared.inner.lock().unwrap();
        inner.next_message_id += 1;
        inner.next_message_id
    }

    /// A patient (user id = chat id) writes `text` in their private chat.
    pub fn patient_says(&self, patient: i64, text: &str) -> i64 {
        self.patient_message(patient, json!({"text": text}))
    }

    /// A patient sends any kind of message (`content` holds "text", "sticker", "photo", ...).
    pub fn patient_message(&self, patient: i64, content: Value) -> i64 {
        let message_id = self.next_message_id();
        self.push_update(|_| {
            let mut message = json!({
                "message_id": message_id,
                "date": now_unix(),
                "chat": chat(patient),
                "from": user(patient, "en"),
            });
            for (k, v) in content.as_object().unwrap() {
                message[k] = v.clone();
            }
            json!({"message": message})
        })
    }

    /// A patient edits an earlier message.
    pub fn patient_edits(&self, patient: i64, text: &str) -> i64 {
        let message_id = self.next_message_id();
        self.push_update(|_| {
            json!({"edited_message": {
                "message_id": message_id, "date": now_unix(), "edit_date": now_unix(),
                "chat": chat(patient), "from": user(patient, "en"), "text": text,
            }})
        })
    }

    /// Sends the same update again (Telegram re-delivering it), whatever the bot confirmed.
    pub fn redeliver(&self, update_id: i64) {
        let mut inner = self.shared.inner.lock().unwrap();
        let update = inner
            .log
            .iter()
            .find(|u| u["update_id"] == json!(update_id))
            .cloned()
            .expect("a known update");
        inner.redelivered.push(update);
        drop(inner);
        self.shared.new_update.notify_waiters();
    }

    /// `from` presses the inline button with `data` on the bot's message `message`.
    pub fn press(&self, from: i64, message: &ChatMessage, data: &str) -> i64 {
        let mut bot_message = json!({
            "message_id": message.id, "date": now_unix(), "chat": chat(message.chat),
            "from": bot_user(), "text": message.text,
        });
        // As Telegram does: the pressed message comes with its keyboard as it is now.
        let markup = {
            let inner = self.shared.inner.lock().unwrap();
            inner
                .messages
                .iter()
                .find(|m| m.chat == message.chat && m.id == message.id)
                .and_then(|m| m.reply_markup.clone())
                .filter(|m| m.get("inline_keyboard").is_some())
        };
        if let Some(markup) = markup {
            bot_message["reply_markup"] = markup;
        }
        self.push_update(|id| {
            json!({"callback_query": {
                "id": format!("cb{id}"), "from": user(from, "en"), "message": bot_message,
                "chat_instance": "fake", "data": data,
            }})
        })
    }

    /// A patient replies to the bot's message `to` in their private chat.
    pub fn patient_replies(&self, patient: i64, to: &ChatMessage, text: &str) -> i64 {
        let replied = json!({
            "message_id": to.id, "date": now_unix(), "chat": chat(to.chat), "from": bot_user(),
            "text": to.text,
        });
        self.patient_message(patient, json!({"text": text, "reply_to_message": replied}))
    }

    /// A doctor replies to the bot's message `to` in the doctors' group.
    pub fn doctor_replies(&self, doctor: i64, to: &ChatMessage, text: &str) -> i64 {
        let message_id = self.next_message_id();
        let replied = json!({
            "message_id": to.id, "date": now_unix(), "chat": chat(to.chat), "from": bot_user(),
            "text": to.text,
        });
        self.push_update(|_| {
            json!({"message": {
                "message_id": message_id, "date": now_unix(), "chat": chat(DOCTOR_CHAT),
                "from": user(doctor, "en"), "text": text, "reply_to_message": replied,
            }})
        })
    }

    /// The next `count` sends are answered 429 with `retry_after` seconds.
    pub fn fail_next_sends(&self, count: usize, retry_after: u64) {
        let mut inner = self.shared.inner.lock().unwrap();
        inner
            .fail_sends
            .extend(std::iter::repeat_n(retry_after, count));
    }

    /// The next edit in `chat` to a text longer than `chars` is made, and then answered 500.
    pub fn lose_the_answer_to_an_edit(&self, chat: i64, chars: usize) {
        let mut inner = self.shared.inner.lock().unwrap();
        inner.lost_edit_answers.push((chat, chars));
    }

    /// A patient writes a message whose JSON text Telegram relays as is: `escaped_text` goes into
    /// the JSON string verbatim (so it can hold a lone surrogate escape like `\ud800`).
    pub fn patient_says_raw(&self, patient: i64, escaped_text: &str) -> i64 {
        let message_id = self.next_message_id();
        let mut inner = self.shared.inner.lock().unwrap();
        let id = inner.next_update_id;
        inner.next_update_id += 1;
        let head = json!({
            "message_id": message_id, "date": now_unix(), "chat": chat(patient),
            "from": user(patient, "en"),
        })
        .to_string();
        let raw = format!(
            r#"{{"update_id":{id},"message":{},"text":"{escaped_text}"}}}}"#,
            &head[..head.len() - 1]
        );
        inner.raw_updates.push((id, raw));
        drop(inner);
        self.shared.new_update.notify_waiters();
        id
    }

    /// The next sends to `chat` get these answers, one each, in order.
    pub fn fail_sends_to(&self, chat: i64, faults: &[Fault]) {
        let mut inner = self.shared.inner.lock().unwrap();
        inner
            .chat_faults
            .push((chat, faults.iter().cloned().collect()));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.inner.lock().unwrap().calls.clone()
    }

    /// The messages in `chat`, oldest first, as they stand now.
    pub fn messages(&self, chat: i64) -> Vec<ChatMessage> {
        self.shared
            .inner
            .lock()
            .unwrap()
            .messages
            .iter()
            .filter(|m| m.chat == chat)
            .cloned()
            .collect()
    }

    /// Waits until `check` holds for the messages of `chat` (or panics after `within`).
    pub async fn wait_for(
        &self,
        chat: i64,
        within: Duration,
        what: &str,
        check: impl Fn(&[ChatMessage]) -> bool,
    ) -> Vec<ChatMessage> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages(chat);
            if check(&messages) {
                return messages;
            }
            if Instant::now() > deadline {
                let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
                panic!("timed out waiting for {what} in chat {chat}; it has {texts:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Parameters from a JSON, form or multipart body, or the query string.
fn parameters(headers: &HeaderMap, body: &Bytes) -> (Value, Option<Vec<u8>>) {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(boundary) = content_type
        .split("boundary=")
        .nth(1)
        .filter(|_| content_type.starts_with("multipart/form-data"))
    {
        return multipart(body, boundary.trim_matches('"'));
    }
    if body.is_empty() {
        return (json!({}), None);
    }
    (serde_json::from_slice(body).unwrap_or(json!({})), None)
}

/// A small multipart/form-data reader: text fields become parameters, a part with a filename is
/// the uploaded file.
fn multipart(body: &[u8], boundary: &str) -> (Value, Option<Vec<u8>>) {
    let delimiter = format!("--{boundary}");
    let mut params = serde_json::Map::new();
    let mut file = None;
    let text = body;
    let positions: Vec<usize> = text
        .windows(delimiter.len())
        .enumerate()
        .filter(|(_, w)| *w == delimiter.as_bytes())
        .map(|(i, _)| i)
        .collect();
    for pair in positions.windows(2) {
        let part = &text[pair[0] + delimiter.len()..pair[1]];
        let Some(split) = part.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let mut content = &part[split + 4..];
        if content.ends_with(b"\r\n") {
            content = &content[..content.len() - 2];
        }
        let name = head
            .split("name=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_owned();
        if head.contains("filename=") {
            file = Some(content.to_vec());
        } else {
            let value = String::from_utf8_lossy(content).into_owned();
            let value = serde_json::from_str(&value).unwrap_or(Value::String(value));
            params.insert(name, value);
        }
    }
    (Value::Object(params), file)
}

fn chat_id(params: &Value) -> i64 {
    match &params["chat_id"] {
        Value::Number(n) => n.as_i64().unwrap_or_default(),
        Value::String(s) => s.parse().unwrap_or_default(),
        _ => 0,
    }
}

fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

async fn handle(
    State(shared): State<Shared>,
    Path((bot, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if bot != format!("bot{TOKEN}") {
        return (StatusCode::UNAUTHORIZED, Json(error(401, "Unauthorized"))).into_response();
    }
    let method = method.to_ascii_lowercase();
    let (params, file) = parameters(&headers, &body);
    if method == "getupdates" {
        let body = get_updates(&shared, &params).await;
        return ([("content-type", "application/json")], body).into_response();
    }
    let answer = answer(&shared, &method, &params, file);
    let status = answer["error_code"]
        .as_u64()
        .and_then(|code| StatusCode::from_u16(code as u16).ok())
        .unwrap_or(StatusCode::OK);
    let mut inner = shared.inner.lock().unwrap();
    inner.calls.push(Call {
        method,
        params,
        at: Instant::now(),
        ok: answer["ok"] == json!(true),
    });
    (status, Json(answer)).into_response()
}

/// The answer's JSON text: raw updates are spliced in as they are.
async fn get_updates(shared: &Shared, params: &Value) -> String {
    let offset = params["offset"].as_i64().unwrap_or(0);
    let timeout = params["timeout"].as_u64().unwrap_or(0).min(2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let waiting = shared.new_update.notified();
        {
            let mut inner = shared.inner.lock().unwrap();
            if offset > 0 {
                inner
                    .updates
                    .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
                inner.raw_updates.retain(|(id, _)| *id >= offset);
            }
            let mut ready: Vec<Value> = std::mem::take(&mut inner.redelivered);
            ready.extend(
                inner
                    .updates
                    .iter()
                    .filter(|u| u["update_id"].as_i64().unwrap_or(0) >= offset)
                    .cloned(),
            );
            let mut texts: Vec<(i64, String)> = ready
                .iter()
                .map(|u| (u["update_id"].as_i64().unwrap_or(0), u.to_string()))
                .collect();
            texts.extend(
                inner
                    .raw_updates
                    .iter()
                    .filter(|(id, _)| *id >= offset)
                    .cloned(),
            );
            texts.sort_by_key(|(id, _)| *id);
            if !texts.is_empty() {
                let texts: Vec<String> = texts.into_iter().map(|(_, t)| t).collect();
                return format!(r#"{{"ok":true,"result":[{}]}}"#, texts.join(","));
            }
        }
        if tokio::time::timeout_at(deadline, waiting).await.is_err() {
            return r#"{"ok":true,"result":[]}"#.to_owned();
        }
    }
}

fn message_json(message: &ChatMessage) -> Value {
    let mut value = json!({
        "message_id": message.id, "date": now_unix(), "chat": chat(message.chat),
        "from": bot_user(), "text": message.text,
    });
    // Telegram's Message carries inline keyboards only (not a ForceReply).
    if let Some(markup) = message
        .reply_markup
        .as_ref()
        .filter(|m| m.get("inline_keyboard").is_some())
    {
        value["reply_markup"] = markup.clone();
    }
    if message.document.is_some() {
        value.as_object_mut().unwrap().remove("text");
        value["document"] =
            json!({"file_id": "doc", "file_unique_id": "doc", "file_name": "medbot-history.json"});
    }
    value
}

fn answer(shared: &Shared, method: &str, params: &Value, file: Option<Vec<u8>>) -> Value {
    let mut inner = shared.inner.lock().unwrap();
    let sends = matches!(method, "sendmessage" | "editmessagetext" | "senddocument");
    let to = chat_id(params);
    let fault = inner
        .chat_faults
        .iter_mut()
        .find(|(chat, faults)| sends && *chat == to && !faults.is_empty())
        .and_then(|(_, faults)| faults.pop_front());
    match fault {
        Some(Fault::RetryAfter(retry_after)) => {
            return json!({
                "ok": false, "error_code": 429,
                "description": format!("Too Many Requests: retry after {retry_after}"),
                "parameters": {"retry_after": retry_after},
            });
        }
        Some(Fault::ServerError) => return error(500, "Internal Server Error"),
        Some(Fault::BadRequest(description)) => return error(400, description),
        Some(Fault::Pass) | None => {}
    }
    if sends && let Some(retry_after) = inner.fail_sends.pop_front() {
        return json!({
            "ok": false, "error_code": 429,
            "description": format!("Too Many Requests: retry after {retry_after}"),
            "parameters": {"retry_after": retry_after},
        });
    }
    match method {
        "getme" => json!({"ok": true, "result": {
            "id": BOT_ID, "is_bot": true, "first_name": "medbot", "username": "medbot_test_bot",
            "can_join_groups": true, "can_read_all_group_messages": false,
            "supports_inline_queries": false, "has_main_web_app": false,
        }}),
        "deletewebhook" | "setmycommands" | "sendchataction" | "answercallbackquery" => {
            json!({"ok": true, "result": true})
        }
        "getchatmember" => json!({"ok": true, "result": {
            "status": "member", "user": bot_user(),
        }}),
        "sendmessage" | "senddocument" => {
            let text = params["text"].as_str().unwrap_or_default().to_owned();
            if method == "sendmessage" {
                if text.trim().is_empty() {
                    return error(400, "Bad Request: message text is empty");
                }
                if utf16_len(&text) > 4096 {
                    return error(400, "Bad Request: message is too long");
                }
            }
            if params.get("parse_mode").is_some_and(|m| !m.is_null()) {
                return error(
                    400,
                    "Bad Request: can't parse entities: the fake accepts plain text only",
                );
            }
            inner.next_message_id += 1;
            let message = ChatMessage {
                id: inner.next_message_id,
                chat: chat_id(params),
                text,
                reply_markup: params.get("reply_markup").cloned().filter(|v| !v.is_null()),
                document: file,
                edits: 0,
                sent_at: Instant::now(),
                updated_at: Instant::now(),
            };
            let result = message_json(&message);
            inner.messages.push(message);
            json!({"ok": true, "result": result})
        }
        "editmessagetext" => {
            let chat = chat_id(params);
            let id = params["message_id"].as_i64().unwrap_or_default();
            let text = params["text"].as_str().unwrap_or_default().to_owned();
            if utf16_len(&text) > 4096 {
                return error(400, "Bad Request: message is too long");
            }
            let Some(message) = inner
                .messages
                .iter_mut()
                .find(|m| m.chat == chat && m.id == id)
            else {
                return error(400, "Bad Request: message to edit not found");
            };
            if message.text == text
                && params.get("reply_markup").is_none() == message.reply_markup.is_none()
            {
                return error(
                    400,
                    "Bad Request: message is not modified: specified new message content and \
                     reply markup are exactly the same as a current content and reply markup \
                     of the message",
                );
            }
            message.text = text;
            // Telegram removes the inline keyboard when an edit does not repeat it.
            message.reply_markup = params.get("reply_markup").cloned().filter(|v| !v.is_null());
            message.edits += 1;
            message.updated_at = Instant::now();
            let result = message_json(message);
            let length = message.text.chars().count();
            if let Some(lost) = inner
                .lost_edit_answers
                .iter()
                .position(|&(at, chars)| at == chat && length > chars)
            {
                inner.lost_edit_answers.remove(lost);
                return error(500, "Internal Server Error");
            }
            json!({"ok": true, "result": result})
        }
        other => error(
            404,
            &format!("Not Found: method {other} is not in the fake"),
        ),
    }
}
