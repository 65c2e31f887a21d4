//! Long polling, decoded update by update. teloxide's own polling decodes a whole `getUpdates`
//! answer at once, so one update it cannot read (a lone UTF-16 surrogate in a text, which Telegram
//! relays and serde_json refuses) fails the batch again and again and stops every chat. Here a
//! lone surrogate is first repaired to U+FFFD (the patient's message still arrives), and an update
//! that still cannot be decoded is logged by id and kind, never content, and skipped.
//!
//! An update is confirmed to Telegram only once it is safe: the offset stops at the oldest update
//! still held in memory (not yet in the inbox), so a process killed while the database is down
//! gets those updates again at its next start.

use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{Update, UpdateKind};
use tokio_util::sync::CancellationToken;

/// Seconds Telegram holds a `getUpdates` open when there is nothing to deliver.
const POLL_TIMEOUT_S: u64 = 25;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(serde::Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    result: Vec<serde_json::Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(serde::Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
}

/// Polls until `stop` is cancelled, handing each decoded update to `arrived` once, in order.
/// `oldest_held` names the oldest update handed over but not yet stored: the offset stops there,
/// so that Telegram keeps it (and sends it again after a crash).
pub(super) async fn poll(
    bot: Bot,
    stop: CancellationToken,
    mut arrived: impl FnMut(Update),
    oldest_held: impl Fn() -> Option<i64>,
    stored: &tokio::sync::Notify,
) {
    // Polling and a webhook exclude each other; a webhook left from another deployment is removed.
    if let Err(e) = bot.delete_webhook().await {
        tracing::warn!(error = %e, "could not remove a webhook before polling");
    }
    let mut offset: i64 = 0;
    let mut next_new: i64 = 0;
    // Updates at or above the offset handed over already: Telegram sends them again while they
    // are held, and they must not be handled (or advised) twice.
    let mut seen = std::collections::BTreeSet::new();
    let mut backoff = Duration::from_secs(1);
    loop {
        let fetched = tokio::select! {
            () = stop.cancelled() => return,
            fetched = fetch(&bot, offset) => fetched,
        };
        let updates = match fetched {
            Ok(updates) => {
                backoff = Duration::from_secs(1);
                updates
            }
            Err(Refused { reason, wait }) => {
                let wait = wait.unwrap_or(backoff);
                tracing::error!(%reason, retry_in_s = wait.as_secs(), "getUpdates failed");
                backoff = (backoff * 2).min(MAX_BACKOFF);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
        };
        let repeated_only = !updates.is_empty();
        let mut fresh = false;
        for update in updates {
            let id = update.get("update_id").and_then(serde_json::Value::as_i64);
            if let Some(id) = id {
                if !seen.insert(id) {
                    continue;
                }
                next_new = next_new.max(id + 1);
            }
            fresh = true;
            if let Some(update) = decode(update) {
                arrived(update);
            }
        }
        offset = oldest_held().map_or(next_new, |held| held.min(next_new));
        seen.retain(|id| *id >= offset);
        if repeated_only && !fresh {
            // Only updates still held came back: Telegram answers at once while it keeps them, so
            // wait for one to be stored (milliseconds, normally) rather than spin; while the
            // database is down, look for new updates every second.
            tokio::select! {
                () = stop.cancelled() => return,
                () = stored.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

struct Refused {
    reason: String,
    wait: Option<Duration>,
}

async fn fetch(bot: &Bot, offset: i64) -> Result<Vec<serde_json::Value>, Refused> {
    let mut url = bot.api_url();
    url.set_path(&format!(
        "{}/bot{}/getUpdates",
        url.path().trim_end_matches('/'),
        bot.token()
    ));
    let refused = |reason: String| Refused { reason, wait: None };
    let body = bot
        .client()
        .post(url)
        .json(&serde_json::json!({"offset": offset, "timeout": POLL_TIMEOUT_S}))
        .timeout(Duration::from_secs(POLL_TIMEOUT_S + 15))
        .send()
        .await
        // Without the URL: it holds the token.
        .map_err(|e| refused(e.without_url().to_string()))?
        .bytes()
        .await
        .map_err(|e| refused(e.without_url().to_string()))?;
    let body = String::from_utf8_lossy(&body);
    let text = repair_lone_surrogates(&body);
    let answer: Answer = serde_json::from_str(&text)
        .map_err(|e| refused(format!("the answer is not Telegram's JSON ({e})")))?;
    if !answer.ok {
        return Err(Refused {
            reason: answer
                .description
                .unwrap_or_else(|| "refused without a description".into()),
            wait: answer
                .parameters
                .and_then(|p| p.retry_after)
                .map(Duration::from_secs),
        });
    }
    Ok(answer.result)
}

/// The update, or `None` (logged by id and kind) when teloxide cannot read it.
fn decode(raw: serde_json::Value) -> Option<Update> {
    let id = raw.get("update_id").and_then(serde_json::Value::as_i64);
    let kind = raw
        .as_object()
        .and_then(|fields| fields.keys().find(|k| *k != "update_id").cloned())
        .unwrap_or_default();
    // From text, not from the `Value`: teloxide reads the update's kind as a borrowed key, which a
    // `Value` cannot lend.
    match serde_json::from_str::<Update>(&raw.to_string()) {
        Ok(update) if !matches!(update.kind, UpdateKind::Error(_)) => Some(update),
        Ok(_) => {
            tracing::info!(update_id = id, kind = %kind, "update of a kind medbot does not read; skipped");
            None
        }
        Err(e) => {
            // serde's message can quote the offending value: only its category is logged.
            tracing::warn!(update_id = id, kind = %kind, error = ?e.classify(), "update could not be decoded; skipped");
            None
        }
    }
}

/// JSON text with every `\uXXXX` escape of an unpaired UTF-16 surrogate replaced by `\uFFFD`.
fn repair_lone_surrogates(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.contains("\\u") {
        return json.into();
    }
    let bytes = json.as_bytes();
    let escape_at = |i: usize| -> Option<u16> {
        let hex = json.get(i + 2..i + 6)?;
        (bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'u'))
            .then(|| u16::from_str_radix(hex, 16).ok())
            .flatten()
    };
    let mut out = String::with_capacity(json.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(unit) = escape_at(i) else {
            // Any other escape (`\\`, `\"`, ...): skip both characters.
            i += 2;
            continue;
        };
        let paired = match unit {
            0xD800..=0xDBFF => escape_at(i + 6).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low)),
            0xDC00..=0xDFFF => false,
            _ => true,
        };
        if paired {
            i += if (0xD800..=0xDBFF).contains(&unit) {
                12
            } else {
                6
            };
        } else {
            out.push_str(&json[copied..i]);
            out.push_str("\\uFFFD");
            i += 6;
            copied = i;
        }
    }
    if copied == 0 {
        return json.into();
    }
    out.push_str(&json[copied..]);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_are_repaired_and_everything_else_kept() {
        let repaired =
            repair_lone_surrogates(r#"{"text":"a\ud800b \udc00 \ud83d\ude00 \\ud800 \u00e9"}"#);
        assert_eq!(
            repaired,
            r#"{"text":"a\uFFFDb \uFFFD \ud83d\ude00 \\ud800 \u00e9"}"#
        );
        let value: serde_json::Value = serde_json::from_str(&repaired).unwrap();
        assert_eq!(value["text"], "a\u{FFFD}b \u{FFFD} 😀 \\ud800 é");
        assert!(matches!(
            repair_lone_surrogates("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn an_update_teloxide_cannot_read_is_skipped_not_fatal() {
        assert!(decode(serde_json::json!({"update_id": 7, "message": 5})).is_none());
        assert!(decode(serde_json::json!({"update_id": "x"})).is_none());
        let update = serde_json::json!({"update_id": 8, "message": {
            "message_id": 1, "date": 0, "chat": {"id": 5, "type": "private", "first_name": "A"},
            "from": {"id": 5, "is_bot": false, "first_name": "A"}, "text": "hello"}});
        assert!(decode(update).is_some());
    }
}
