//! The outbox sender: delivers queued messages to Telegram within Telegram's limits, and keeps each
//! one until Telegram has accepted it or refused it for good. Every chat has a lane of its own
//! (a task delivering that chat's messages in order), so a chat that is paced, answered 429 or
//! failing never holds up another; emergencies are claimed first. A 429 pauses the chat it was
//! for; other failures back off; a 4xx is permanent and the row is recorded as dropped, with why;
//! a crash leaves rows leased, and they are sent again when the lease ends (a rare duplicate
//! rather than a lost answer). A split answer remembers the pieces delivered, and a retry goes on
//! from the next one.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use teloxide::prelude::*;
use teloxide::types::MessageId;
use teloxide::{ApiError, RequestError};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::doctors::{card_buttons, card_text, decided_card_text};
use super::split::{TELEGRAM_LIMIT, split_message};
use crate::domain::{PatientId, TelegramChatId};
use crate::storage::{OutboxItem, OutboxKind, Store};

/// How long a claimed message is reserved for this sender before another may take it.
const LEASE: Duration = Duration::from_secs(60);
/// How long a stopping sender keeps delivering what is due.
const DRAIN: Duration = Duration::from_secs(10);
/// Messages claimed at a time.
const BATCH: i64 = 50;
/// A lane with nothing to deliver for this long ends (a new one starts when needed).
const LANE_IDLE: Duration = Duration::from_secs(30);
/// Telegram: about one message a second in a private chat, twenty a minute in a group, thirty a
/// second in all. The overall budget keeps a margin: Telegram counts arrivals, and requests the
/// lanes send a second apart can arrive closer together.
const PRIVATE_INTERVAL: Duration = Duration::from_millis(1000);
const GROUP_INTERVAL: Duration = Duration::from_millis(3000);
const GLOBAL_PER_SECOND: usize = 24;
/// Waits shorter than this are slept through (only the chat's own lane waits); longer ones put
/// the message back.
const SHORT_WAIT: Duration = Duration::from_millis(1500);
/// Spaces sends to Telegram's limits.
#[derive(Debug, Default)]
struct RateLimiter {
    next_in_chat: HashMap<i64, Instant>,
    recent: VecDeque<Instant>,
    paused_until: HashMap<i64, Instant>,
    /// Requests sent and not yet answered: they count against the overall budget until a second
    /// after their answer, because a lane can be slow to send what it reserved and Telegram counts
    /// arrivals.
    in_flight: usize,
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
        if let Some(paused) = self.paused_until.get(&chat) {
            until = until.max(*paused);
        }
        if let Some(next) = self.next_in_chat.get(&chat) {
            until = until.max(*next);
        }
        if self.recent.len() + self.in_flight >= GLOBAL_PER_SECOND {
            until = until.max(match self.recent.front() {
                Some(oldest) => *oldest + Duration::from_secs(1),
                None => now + Duration::from_millis(20),
            });
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
        self.in_flight += 1;
    }

    /// A request `sent` earlier has been answered.
    fn done(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.recent.push_back(now);
    }

    /// Telegram's 429 applies to the chat it answered for.
    fn pause(&mut self, chat: i64, until: Instant) {
        let paused = self.paused_until.entry(chat).or_insert(until);
        *paused = (*paused).max(until);
    }

    /// Takes a turn for `chat` now if one is free, else says how long to wait.
    fn reserve(&mut self, chat: i64, now: Instant) -> Duration {
        let wait = self.wait(chat, now);
        if wait.is_zero() {
            self.sent(chat, now);
        }
        wait
    }
}

/// Why a delivery did not happen.
enum Failure {
    /// Telegram asked to wait before sending to this chat again.
    RetryAfter(i64, Duration),
    /// Not yet our turn under the limits.
    RateLimited(Duration),
    /// Telegram will never take it (the patient blocked the bot, the chat is gone).
    Permanent(String),
    /// Worth trying again later.
    Transient(String),
}

impl Failure {
    /// Telegram's answer to a send to `chat`: 429 waits; a 4xx (every error Telegram describes
    /// that is not a server error) is permanent; the network and 5xx are worth retrying.
    fn from_telegram(chat: i64, error: RequestError) -> Self {
        match error {
            RequestError::RetryAfter(seconds) => Failure::RetryAfter(chat, seconds.duration()),
            RequestError::Api(ApiError::Unknown(description)) if is_server_error(&description) => {
                Failure::Transient(description)
            }
            RequestError::Api(e) => Failure::Permanent(e.to_string()),
            RequestError::MigrateToChatId(_) => {
                Failure::Permanent("the group became a supergroup".into())
            }
            other => Failure::Transient(other.to_string()),
        }
    }
}

/// Telegram's descriptions of 5xx answers ("Internal Server Error", "Bad Gateway", ...); 4xx
/// ones start with their class ("Bad Request: ...", "Forbidden: ...").
fn is_server_error(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    [
        "internal server error",
        "bad gateway",
        "service unavailable",
        "gateway timeout",
        "timed out",
    ]
    .iter()
    .any(|server| d.starts_with(server))
}

impl From<crate::storage::StorageError> for Failure {
    fn from(error: crate::storage::StorageError) -> Self {
        Failure::Transient(error.to_string())
    }
}

/// Delivers the outbox.
pub struct OutboxSender {
    shared: Arc<Delivery>,
    ready: Arc<Notify>,
}

/// What every lane shares.
struct Delivery {
    bot: Bot,
    store: Store,
    doctor_chat: TelegramChatId,
    limiter: Mutex<RateLimiter>,
    /// Rows handed to a lane and not yet finished: a row whose lease ran out while its lane was
    /// busy is not queued twice.
    queued: Mutex<HashSet<i64>>,
    metrics: Arc<super::metrics::BotMetrics>,
}

/// Whose messages a lane carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    Patient(PatientId),
    Doctors,
}

impl Lane {
    fn of(item: &OutboxItem) -> Self {
        match (item.kind, item.patient) {
            (
                OutboxKind::PatientReply
                | OutboxKind::EmergencyAdvice
                | OutboxKind::EscalationOutcome,
                Some(patient),
            ) => Lane::Patient(patient),
            _ => Lane::Doctors,
        }
    }
}

impl OutboxSender {
    pub fn new(bot: Bot, store: Store, doctor_chat: TelegramChatId, ready: Arc<Notify>) -> Self {
        Self {
            shared: Arc::new(Delivery {
                bot,
                store,
                doctor_chat,
                limiter: Mutex::default(),
                queued: Mutex::default(),
                metrics: Arc::default(),
            }),
            ready,
        }
    }

    /// Counts 429s and failed sends in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<super::metrics::BotMetrics>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.metrics = metrics;
        }
        self
    }

    /// Delivers until `stopped` turns true, waking when something is queued.
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut lanes: HashMap<Lane, mpsc::UnboundedSender<OutboxItem>> = HashMap::new();
        let mut running = tokio::task::JoinSet::new();
        while !*stopped.borrow() {
            let claimed = self.claim().await;
            let any = !claimed.is_empty();
            for item in claimed {
                self.route(&mut lanes, &mut running, item);
            }
            while running.try_join_next().is_some() {}
            if !any {
                tokio::select! {
                    _ = self.ready.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stopped.changed() => {}
                }
            }
        }
        // On shutdown: what is due (the answers of the work just finished) for at most `DRAIN`;
        // anything left waits for the next start.
        let deadline = Instant::now() + DRAIN;
        while Instant::now() < deadline {
            let claimed = self.claim().await;
            if claimed.is_empty() {
                break;
            }
            for item in claimed {
                self.route(&mut lanes, &mut running, item);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(lanes);
        let _ = tokio::time::timeout_at(deadline, async {
            while running.join_next().await.is_some() {}
        })
        .await;
    }

    /// Due rows not already in a lane.
    async fn claim(&self) -> Vec<OutboxItem> {
        match self.shared.store.claim_due_outbox(BATCH, LEASE).await {
            Ok(items) => {
                let mut queued = self.shared.queued.lock().expect("not poisoned");
                items.into_iter().filter(|i| queued.insert(i.id)).collect()
            }
            Err(e) => {
                tracing::error!(error = %e, "could not read the outbox");
                Vec::new()
            }
        }
    }

    fn route(
        &self,
        lanes: &mut HashMap<Lane, mpsc::UnboundedSender<OutboxItem>>,
        running: &mut tokio::task::JoinSet<()>,
        item: OutboxItem,
    ) {
        let lane = Lane::of(&item);
        let item = match lanes.get(&lane) {
            Some(open) => match open.send(item) {
                Ok(()) => return,
                // That lane ended; a new one takes over.
                Err(mpsc::error::SendError(item)) => item,
            },
            None => item,
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        let _ = sender.send(item);
        lanes.insert(lane, sender);
        running.spawn(Arc::clone(&self.shared).run_lane(receiver));
    }
}

/// A send's turn under the limits, held until Telegram has answered.
struct Turn<'a>(&'a Mutex<RateLimiter>);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.lock().expect("not poisoned").done(Instant::now());
    }
}

impl Delivery {
    /// One chat's messages, in order, until it has been idle for `LANE_IDLE`.
    async fn run_lane(self: Arc<Self>, mut items: mpsc::UnboundedReceiver<OutboxItem>) {
        while let Ok(Some(item)) = tokio::time::timeout(LANE_IDLE, items.recv()).await {
            let id = item.id;
            self.deliver(item).await;
            self.queued.lock().expect("not poisoned").remove(&id);
        }
        // Rows handed over after the timeout fired go back to the outbox (their lease runs out).
        items.close();
        while let Ok(item) = items.try_recv() {
            self.queued.lock().expect("not poisoned").remove(&item.id);
        }
    }

    async fn deliver(&self, item: OutboxItem) {
        let id = item.id;
        let kind = item.kind;
        let result = self.try_deliver(&item).await;
        let outcome = match result {
            Ok(message) => self.store.mark_outbox_sent(id, message).await,
            Err(Failure::RetryAfter(chat, wait)) => {
                self.metrics.rate_limited();
                tracing::warn!(
                    outbox = id,
                    wait_s = wait.as_secs_f64(),
                    "Telegram asked to retry later"
                );
                self.limiter
                    .lock()
                    .expect("not poisoned")
                    .pause(chat, Instant::now() + wait);
                self.postpone(id, wait, "429 retry_after").await
            }
            Err(Failure::RateLimited(wait)) => self.postpone(id, wait, "rate limit").await,
            Err(Failure::Permanent(reason)) => {
                self.metrics.error("outbox_dropped");
                tracing::error!(outbox = id, kind = kind.as_str(), %reason, "Telegram refused it for good; recorded as dropped");
                self.store.mark_outbox_dropped(id, &reason).await
            }
            Err(Failure::Transient(reason)) => {
                self.metrics.error("outbox_send");
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

    /// Waits for the limiter (briefly: only this chat's lane waits) or says how long to wait.
    /// The turn lasts until the returned guard is dropped, after the request.
    async fn take_turn(&self, chat: ChatId) -> Result<Turn<'_>, Failure> {
        loop {
            let wait = self
                .limiter
                .lock()
                .expect("not poisoned")
                .reserve(chat.0, Instant::now());
            if wait.is_zero() {
                return Ok(Turn(&self.limiter));
            }
            if wait > SHORT_WAIT {
                return Err(Failure::RateLimited(wait));
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn try_deliver(&self, item: &OutboxItem) -> Result<Option<i64>, Failure> {
        match item.kind {
            OutboxKind::PatientReply
            | OutboxKind::EmergencyAdvice
            | OutboxKind::EscalationOutcome => {
                let patient = item.patient.ok_or_else(|| {
                    Failure::Permanent("a patient message without a patient".into())
                })?;
                let (_, chat) = self.store.patient_contact(patient).await?;
                self.send_text(ChatId(chat.0), item).await
            }
            OutboxKind::EmergencyAlert => self.send_text(ChatId(self.doctor_chat.0), item).await,
            OutboxKind::EscalationCard => {
                let id = item
                    .escalation
                    .ok_or_else(|| Failure::Permanent("a card without an escalation".into()))?;
                let record = self.store.load_escalation(id).await?;
                let chat = ChatId(self.doctor_chat.0);
                let _turn = self.take_turn(chat).await?;
                let sent = self
                    .bot
                    .send_message(chat, card_text(&record))
                    .reply_markup(card_buttons(id))
                    .await
                    .map_err(|e| Failure::from_telegram(chat.0, e))?;
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
                        let _turn = self.take_turn(chat).await?;
                        // Editing the text without a keyboard removes the buttons.
                        self.bot
                            .edit_message_text(chat, MessageId(message as i32), text)
                            .await
                            .map_err(|e| Failure::from_telegram(chat.0, e))?;
                        Ok(Some(message))
                    }
                    // Decided before its card was posted (the card is still queued): say so in
                    // a message of its own.
                    None => {
                        let chat = ChatId(self.doctor_chat.0);
                        let piece = split_message(&text, TELEGRAM_LIMIT)
                            .into_iter()
                            .next()
                            .unwrap_or_default();
                        let _turn = self.take_turn(chat).await?;
                        let sent = self
                            .bot
                            .send_message(chat, piece)
                            .await
                            .map_err(|e| Failure::from_telegram(chat.0, e))?;
                        Ok(Some(i64::from(sent.id.0)))
                    }
                }
            }
        }
    }

    /// Sends a row's text, split to Telegram's limit, from the first piece not yet delivered;
    /// the first piece replaces the streamed message when there is one. Each delivered piece is
    /// recorded at once, so a retry never sends it again.
    async fn send_text(&self, chat: ChatId, item: &OutboxItem) -> Result<Option<i64>, Failure> {
        let pieces = split_message(item.text(), TELEGRAM_LIMIT);
        let from = usize::try_from(item.pieces_sent).unwrap_or_default();
        let mut last = item.last_piece_message_id;
        for (n, piece) in pieces.into_iter().enumerate().skip(from) {
            let turn = self.take_turn(chat).await?;
            let edited = match (n, item.edit_message_id) {
                (0, Some(message)) => {
                    match self
                        .bot
                        .edit_message_text(chat, MessageId(message as i32), piece)
                        .await
                    {
                        // Not modified: it already shows this piece (an earlier try's edit
                        // landed but its answer was lost), so sending it anew would repeat it.
                        Ok(_) | Err(RequestError::Api(ApiError::MessageNotModified)) => {
                            Some(message)
                        }
                        // The streamed message is gone: send anew.
                        Err(RequestError::Api(
                            ApiError::MessageToEditNotFound | ApiError::MessageCantBeEdited,
                        )) => None,
                        Err(e) => return Err(Failure::from_telegram(chat.0, e)),
                    }
                }
                _ => None,
            };
            let message = match edited {
                Some(message) => message,
                None => i64::from(
                    self.bot
                        .send_message(chat, piece)
                        .await
                        .map_err(|e| Failure::from_telegram(chat.0, e))?
                        .id
                        .0,
                ),
            };
            drop(turn);
            last = Some(message);
            self.store
                .record_outbox_piece(item.id, n as i32 + 1, message)
                .await?;
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
        // Unanswered requests hold the budget however long they take.
        assert!(limiter.wait(999, start) > Duration::ZERO);
        assert!(limiter.wait(999, start + Duration::from_secs(5)) > Duration::ZERO);
        for _ in 0..GLOBAL_PER_SECOND + 2 {
            limiter.done(start);
        }
        assert!(limiter.wait(999, start + Duration::from_secs(1)).is_zero());
        // A 429 pauses the chat it answered for, and only that chat.
        limiter.pause(999, start + Duration::from_secs(3));
        assert_eq!(
            limiter.wait(999, start + Duration::from_secs(1)),
            Duration::from_secs(2)
        );
        assert!(limiter.wait(998, start + Duration::from_secs(1)).is_zero());
        assert!(
            limiter
                .reserve(998, start + Duration::from_secs(1))
                .is_zero()
        );
        assert_eq!(
            limiter.reserve(998, start + Duration::from_secs(1)),
            PRIVATE_INTERVAL
        );
    }
}
