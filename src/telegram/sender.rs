//! The outbox sender: delivers queued messages to Telegram, oldest first, within Telegram's limits,
//! and keeps each one until Telegram has accepted it. A 429 puts it back until `retry_after` has
//! passed; other failures back off; a crash leaves it leased, and it is sent again when the lease
//! ends (a rare duplicate rather than a lost answer).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use teloxide::prelude::*;
use teloxide::types::MessageId;
use teloxide::{ApiError, RequestError};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::doctors::{card_buttons, card_text, decided_card_text};
use super::split::{TELEGRAM_LIMIT, split_message};
use crate::domain::TelegramChatId;
use crate::storage::{OutboxItem, OutboxKind, Store};

/// How long a claimed message is reserved for this sender before another may take it.
const LEASE: Duration = Duration::from_secs(60);
/// How long a stopping sender keeps delivering what is due.
const DRAIN: Duration = Duration::from_secs(10);
/// Messages claimed at a time.
const BATCH: i64 = 20;
/// Telegram: about one message a second in a private chat, twenty a minute in a group, thirty a
/// second in all. The overall budget keeps a margin: Telegram counts arrivals, and requests sent a
/// second apart can arrive closer together.
const PRIVATE_INTERVAL: Duration = Duration::from_millis(1000);
const GROUP_INTERVAL: Duration = Duration::from_millis(3000);
const GLOBAL_PER_SECOND: usize = 27;
/// Waits shorter than this are slept through; longer ones put the message back.
const SHORT_WAIT: Duration = Duration::from_millis(1500);

/// Spaces sends to Telegram's limits.
#[derive(Debug, Default)]
struct RateLimiter {
    next_in_chat: HashMap<i64, Instant>,
    recent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl RateLimiter {
    /// How long to wait before sending to `chat`.
    fn wait(&mut self, chat: i64, now: Instant) -> Duration {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        let mut until = now;
        if let Some(paused) = self.paused_until {
            until = until.max(paused);
        }
        if let Some(next) = self.next_in_chat.get(&chat) {
            until = until.max(*next);
        }
        if self.recent.len() >= GLOBAL_PER_SECOND
            && let Some(oldest) = self.recent.front()
        {
            until = until.max(*oldest + Duration::from_secs(1));
        }
        until - now
    }

    fn sent(&mut self, chat: i64, now: Instant) {
        let interval = if chat < 0 {
            GROUP_INTERVAL
        } else {
            PRIVATE_INTERVAL
        };
        self.next_in_chat.insert(chat, now + interval);
        self.recent.push_back(now);
    }

    fn pause(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }
}

/// Why a delivery did not happen.
enum Failure {
    /// Telegram asked to wait.
    RetryAfter(Duration),
    /// Not yet our turn under the limits.
    RateLimited(Duration),
    /// Telegram will never take it (the patient blocked the bot, the chat is gone).
    Permanent(String),
    /// Worth trying again later.
    Transient(String),
}

impl From<RequestError> for Failure {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::RetryAfter(seconds) => Failure::RetryAfter(seconds.duration()),
            RequestError::Api(
                e @ (ApiError::BotBlocked
                | ApiError::ChatNotFound
                | ApiError::UserDeactivated
                | ApiError::BotKicked
                | ApiError::BotKickedFromSupergroup),
            ) => Failure::Permanent(e.to_string()),
            other => Failure::Transient(other.to_string()),
        }
    }
}

impl From<crate::storage::StorageError> for Failure {
    fn from(error: crate::storage::StorageError) -> Self {
        Failure::Transient(error.to_string())
    }
}

/// Delivers the outbox.
pub struct OutboxSender {
    bot: Bot,
    store: Store,
    doctor_chat: TelegramChatId,
    ready: Arc<Notify>,
    limiter: RateLimiter,
}

impl OutboxSender {
    pub fn new(bot: Bot, store: Store, doctor_chat: TelegramChatId, ready: Arc<Notify>) -> Self {
        Self {
            bot,
            store,
            doctor_chat,
            ready,
            limiter: RateLimiter::default(),
        }
    }

    /// Delivers until `stopped` turns true, waking when something is queued.
    pub async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        while !*stopped.borrow() {
            let items = match self.store.claim_due_outbox(BATCH, LEASE).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::error!(error = %e, "could not read the outbox");
                    Vec::new()
                }
            };
            if items.is_empty() {
                tokio::select! {
                    _ = self.ready.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stopped.changed() => {}
                }
                continue;
            }
            for item in items {
                self.deliver(item).await;
            }
        }
        self.drain().await;
    }

    /// On shutdown: delivers what is already due (the answers of the work just finished), for at
    /// most `DRAIN`; anything left waits for the next start.
    async fn drain(&mut self) {
        let deadline = Instant::now() + DRAIN;
        while Instant::now() < deadline {
            let items = match self.store.claim_due_outbox(BATCH, LEASE).await {
                Ok(items) if !items.is_empty() => items,
                _ => return,
            };
            for item in items {
                self.deliver(item).await;
            }
        }
    }

    async fn deliver(&mut self, item: OutboxItem) {
        let id = item.id;
        let kind = item.kind;
        let result = self.try_deliver(&item).await;
        let outcome = match result {
            Ok(message) => self.store.mark_outbox_sent(id, message).await,
            Err(Failure::RetryAfter(wait)) => {
                tracing::warn!(
                    outbox = id,
                    wait_s = wait.as_secs_f64(),
                    "Telegram asked to retry later"
                );
                self.limiter.pause(Instant::now() + wait);
                self.postpone(id, wait, "429 retry_after").await
            }
            Err(Failure::RateLimited(wait)) => self.postpone(id, wait, "rate limit").await,
            Err(Failure::Permanent(reason)) => {
                tracing::error!(outbox = id, kind = kind.as_str(), %reason, "undeliverable; dropped");
                self.store.mark_outbox_sent(id, None).await
            }
            Err(Failure::Transient(reason)) => {
                let wait =
                    Duration::from_secs(2u64.saturating_pow(item.attempts.clamp(1, 8) as u32));
                tracing::warn!(outbox = id, kind = kind.as_str(), %reason, "delivery failed; will retry");
                self.postpone(id, wait, &reason).await
            }
        };
        if let Err(e) = outcome {
            tracing::error!(outbox = id, error = %e, "could not record the delivery outcome");
        }
    }

    async fn postpone(
        &self,
        id: i64,
        wait: Duration,
        reason: &str,
    ) -> Result<(), crate::storage::StorageError> {
        let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        self.store.postpone_outbox(id, until, reason).await
    }

    /// Waits for the limiter (briefly) or says how long to wait.
    async fn take_turn(&mut self, chat: ChatId) -> Result<(), Failure> {
        let wait = self.limiter.wait(chat.0, Instant::now());
        if wait > SHORT_WAIT {
            return Err(Failure::RateLimited(wait));
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.limiter.sent(chat.0, Instant::now());
        Ok(())
    }

    async fn try_deliver(&mut self, item: &OutboxItem) -> Result<Option<i64>, Failure> {
        match item.kind {
            OutboxKind::PatientReply | OutboxKind::EscalationOutcome => {
                let patient = item.patient.ok_or_else(|| {
                    Failure::Permanent("a patient message without a patient".into())
                })?;
                let (_, chat) = self.store.patient_contact(patient).await?;
                self.send_text(ChatId(chat.0), item.text(), item.edit_message_id)
                    .await
            }
            OutboxKind::EmergencyAlert => {
                self.send_text(ChatId(self.doctor_chat.0), item.text(), None)
                    .await
            }
            OutboxKind::EscalationCard => {
                let id = item
                    .escalation
                    .ok_or_else(|| Failure::Permanent("a card without an escalation".into()))?;
                let record = self.store.load_escalation(id).await?;
                let chat = ChatId(self.doctor_chat.0);
                self.take_turn(chat).await?;
                let sent = self
                    .bot
                    .send_message(chat, card_text(&record))
                    .reply_markup(card_buttons(id))
                    .await?;
                self.store
                    .set_escalation_card(id, chat.0, i64::from(sent.id.0))
                    .await?;
                Ok(Some(i64::from(sent.id.0)))
            }
            OutboxKind::EscalationDecided => {
                let id = item
                    .escalation
                    .ok_or_else(|| Failure::Permanent("an update without an escalation".into()))?;
                let record = self.store.load_escalation(id).await?;
                let text = decided_card_text(&record);
                match self.store.escalation_card(id).await? {
                    Some((chat, message)) => {
                        let chat = ChatId(chat);
                        self.take_turn(chat).await?;
                        // Editing the text without a keyboard removes the buttons.
                        self.bot
                            .edit_message_text(chat, MessageId(message as i32), text)
                            .await?;
                        Ok(Some(message))
                    }
                    // Decided before its card was posted (the card is still queued): say so in
                    // a message of its own.
                    None => {
                        self.send_text(ChatId(self.doctor_chat.0), &text, None)
                            .await
                    }
                }
            }
        }
    }

    /// Sends a text, split to Telegram's limit; the first piece replaces `edit` when given.
    async fn send_text(
        &mut self,
        chat: ChatId,
        text: &str,
        edit: Option<i64>,
    ) -> Result<Option<i64>, Failure> {
        let mut last = None;
        for (n, piece) in split_message(text, TELEGRAM_LIMIT).into_iter().enumerate() {
            self.take_turn(chat).await?;
            let edited = match (n, edit) {
                (0, Some(message)) => {
                    match self
                        .bot
                        .edit_message_text(chat, MessageId(message as i32), piece)
                        .await
                    {
                        Ok(_) => Some(message),
                        // The streamed message is gone or already shows this: send anew.
                        Err(RequestError::Api(
                            ApiError::MessageNotModified
                            | ApiError::MessageToEditNotFound
                            | ApiError::MessageCantBeEdited,
                        )) => None,
                        Err(e) => return Err(e.into()),
                    }
                }
                _ => None,
            };
            last = match edited {
                Some(message) => Some(message),
                None => Some(i64::from(self.bot.send_message(chat, piece).await?.id.0)),
            };
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_spaces_messages_per_chat_and_overall() {
        let mut limiter = RateLimiter::default();
        let start = Instant::now();
        assert!(limiter.wait(1, start).is_zero());
        limiter.sent(1, start);
        assert_eq!(limiter.wait(1, start), PRIVATE_INTERVAL);
        assert!(limiter.wait(2, start).is_zero());
        limiter.sent(-100, start);
        assert_eq!(limiter.wait(-100, start), GROUP_INTERVAL);
        for chat in 10..(10 + GLOBAL_PER_SECOND as i64) {
            limiter.sent(chat, start);
        }
        assert!(limiter.wait(999, start) > Duration::ZERO);
        assert!(limiter.wait(999, start + Duration::from_secs(1)).is_zero());
        limiter.pause(start + Duration::from_secs(3));
        assert_eq!(
            limiter.wait(999, start + Duration::from_secs(1)),
            Duration::from_secs(2)
        );
    }
}
