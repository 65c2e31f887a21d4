//! The Telegram adapter: patients in private chats, doctors in the review group, and the outbox
//! sender. Long polling (`polling`) decodes updates one by one. Every update is triaged the moment it arrives (an
//! emergency's advice goes out at once, before anything is stored), then joins its chat's lane:
//! a worker per chat that records it in the inbox (holding it in memory while the database is
//! down) and handles it in order. Answers are written outside the lane, so a patient's next
//! message is never queued behind the model; every other reply goes through the outbox.

mod doctors;
mod health;
mod meds;
pub mod metrics;
mod patients;
mod polling;
mod sender;
mod split;
mod ui;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{BotCommand, UpdateKind};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::config::TelegramSettings;
use crate::consult::{ConsultationService, Generator, ReviewDesk, SystemClock};
use crate::domain::{TelegramChatId, TelegramUserId};
use crate::storage::{Store, UpdateReceipt};

pub use sender::OutboxSender;

/// Telegram allows editing a message about once a second; stay under it.
pub const EDIT_INTERVAL: Duration = Duration::from_millis(1500);
pub use split::{TELEGRAM_LIMIT, split_message};

/// Everything the handlers need, shared by all chats.
pub struct BotContext<G> {
    pub service: ConsultationService<G, Store, SystemClock>,
    pub desk: ReviewDesk<Store, SystemClock>,
    pub store: Store,
    pub doctor_chat: TelegramChatId,
    pub doctors: HashSet<TelegramUserId>,
    /// Wakes the outbox sender when something was queued.
    pub outbox_ready: Arc<Notify>,
    /// How often a streamed draft's message is edited (Telegram allows about one edit a second).
    pub edit_interval: Duration,
    /// Each chat's updates waiting for their turn, by chat.
    lanes: Mutex<HashMap<i64, mpsc::UnboundedSender<Arrived>>>,
    /// The lanes' workers and the answers being written: a stopping bot waits for them.
    work: TaskTracker,
    /// Updates handed to a lane and not yet in the inbox: Telegram is not told they were received.
    held: Mutex<std::collections::BTreeSet<i64>>,
    /// Signalled when a held update is stored.
    stored: Notify,
    /// What operators see on `/metrics`.
    pub metrics: Arc<metrics::BotMetrics>,
}

/// An update in its chat's lane.
struct Arrived {
    update: Update,
    /// The emergency advice sent on arrival, if the message was one: whether it reached the
    /// patient (if not, the outbox sends it).
    advised: Option<JoinHandle<bool>>,
    /// When it arrived: patients' waiting times are measured from here.
    at: tokio::time::Instant,
}

impl<G: Generator> BotContext<G> {
    /// The bot's parts on one store: the consultation, the doctors' desk, the delivery.
    pub fn new(
        generator: Arc<G>,
        store: Store,
        reviewer: Arc<crate::triage::DraftReviewer>,
        service: crate::consult::ServiceSettings,
        knowledge: Option<Arc<dyn crate::consult::KnowledgeSource>>,
        telegram: &TelegramSettings,
    ) -> Self {
        let consultation =
            ConsultationService::new(generator, store.clone(), SystemClock, reviewer, service);
        Self {
            service: match knowledge {
                Some(knowledge) => consultation.with_knowledge(knowledge),
                None => consultation,
            },
            desk: ReviewDesk::new(store.clone(), SystemClock),
            store,
            doctor_chat: telegram.doctor_chat,
            doctors: telegram.doctors.iter().copied().collect(),
            outbox_ready: Arc::new(Notify::new()),
            edit_interval: EDIT_INTERVAL,
            lanes: Mutex::default(),
            work: TaskTracker::new(),
            held: Mutex::default(),
            stored: Notify::new(),
            metrics: Arc::default(),
        }
    }

    /// Updates received and not yet in the inbox.
    pub fn updates_waiting(&self) -> usize {
        self.held.lock().expect("not poisoned").len()
    }

    /// Assesses with this clinical knowledge instead of the built-in set.
    pub fn with_clinical_knowledge(
        mut self,
        clinical: Arc<crate::assessment::SharedKnowledge>,
    ) -> Self {
        self.service = self.service.with_clinical_knowledge(clinical);
        self
    }

    pub fn is_doctor(&self, user: TelegramUserId) -> bool {
        self.doctors.contains(&user)
    }

    /// Where an update arrives: triaged at once, then queued in its chat's lane. Returns without
    /// waiting for anything, so the next update is triaged on arrival too.
    fn arrive(self: &Arc<Self>, bot: Bot, update: Update) {
        self.metrics.update_received(match &update.kind {
            UpdateKind::Message(_) => "message",
            UpdateKind::EditedMessage(_) => "edited_message",
            UpdateKind::CallbackQuery(_) => "callback_query",
            _ => "other",
        });
        let advised = patients::emergency_on_arrival(self, &update).map(|(chat, advice)| {
            let bot = bot.clone();
            tokio::spawn(async move { patients::send_now(&bot, chat, &advice).await })
        });
        let key = lane_key(&update);
        self.held
            .lock()
            .expect("not poisoned")
            .insert(i64::from(update.id.0));
        let mut item = Arrived {
            update,
            advised,
            at: tokio::time::Instant::now(),
        };
        let mut lanes = self.lanes.lock().expect("not poisoned");
        if let Some(lane) = lanes.get(&key) {
            match lane.send(item) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => item = back,
            }
        }
        let (lane, queued) = mpsc::unbounded_channel();
        let _ = lane.send(item);
        lanes.insert(key, lane);
        drop(lanes);
        let context = Arc::clone(self);
        self.work
            .spawn(async move { context.run_lane(bot, key, queued).await });
    }

    /// One chat's worker: its updates one after another, until none is waiting.
    async fn run_lane(
        self: Arc<Self>,
        bot: Bot,
        key: i64,
        mut queued: mpsc::UnboundedReceiver<Arrived>,
    ) {
        loop {
            let item = match queued.try_recv() {
                Ok(item) => item,
                Err(_) => {
                    // Leave only if nothing came meanwhile: under the lock, `arrive` sees either
                    // this worker or none.
                    let mut lanes = self.lanes.lock().expect("not poisoned");
                    match queued.try_recv() {
                        Ok(item) => item,
                        Err(_) => {
                            lanes.remove(&key);
                            return;
                        }
                    }
                }
            };
            self.handle(&bot, item).await;
        }
    }

    /// Handles one update, once: recorded in the inbox first (retried, in order, while the
    /// database is down), marked handled when its replies are queued or its answer is under way.
    async fn handle(self: &Arc<Self>, bot: &Bot, arrived: Arrived) {
        let Arrived {
            update,
            advised,
            at,
        } = arrived;
        let update_id = i64::from(update.id.0);
        let mut wait = Duration::from_millis(500);
        loop {
            let received = self.store.receive_update(update_id).await;
            if received.is_ok() {
                self.held.lock().expect("not poisoned").remove(&update_id);
                self.stored.notify_one();
            }
            match received {
                Ok(UpdateReceipt::AlreadyHandled) => {
                    tracing::info!(update_id, "update already handled; skipped");
                    self.metrics.update_handled("duplicate");
                    return;
                }
                Ok(UpdateReceipt::Handle) => break,
                Err(e) => {
                    tracing::error!(update_id, error = %e, retry_in_ms = wait.as_millis() as u64, "could not record the update; kept in memory and retried");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        let result = match update.kind {
            UpdateKind::Message(message) if message.chat.id.0 == self.doctor_chat.0 => {
                doctors::on_group_message(self, bot, &message).await
            }
            UpdateKind::Message(message) if message.chat.is_private() => {
                patients::on_message(self, bot, &message, advised, at).await
            }
            UpdateKind::EditedMessage(message) if message.chat.is_private() => {
                patients::on_edited_message(self, &message).await
            }
            UpdateKind::CallbackQuery(query) => self.on_callback(bot, &query).await,
            _ => Ok(()),
        };
        match result {
            Ok(()) => {
                self.metrics.update_handled("ok");
                if let Err(e) = self.store.finish_update(update_id).await {
                    tracing::error!(update_id, error = %e, "could not mark the update handled");
                    self.metrics.error("inbox");
                }
            }
            Err(e) => {
                tracing::error!(update_id, error = format!("{e:#}"), "update failed");
                self.metrics.update_handled("failed");
                self.metrics.error("update");
            }
        }
        self.outbox_ready.notify_one();
    }

    /// Every press is answered (a button left spinning looks broken), a failed one included.
    async fn on_callback(&self, bot: &Bot, query: &CallbackQuery) -> anyhow::Result<()> {
        let data = query.data.as_deref().unwrap_or_default();
        let handled = match data.split_once(':') {
            Some((action @ ("approve" | "edit" | "reject"), id)) => {
                doctors::on_decision_button(self, bot, query, action, id).await
            }
            _ => patients::on_button(self, bot, query, data).await,
        };
        if handled.is_err() {
            let _ = bot
                .answer_callback_query(query.id.clone())
                .text("Something went wrong; please try again in a minute.")
                .await;
        }
        handled
    }
}

/// The lane an update waits in: its chat's, or its sender's when it has no chat.
fn lane_key(update: &Update) -> i64 {
    update
        .chat()
        .map(|chat| chat.id.0)
        .or_else(|| update.from().map(|user| user.id.0 as i64))
        .unwrap_or_default()
}

/// How far back a stored, unanswered message is still answered after a restart.
const RECOVERY_WINDOW: Duration = Duration::from_secs(3600);

/// Answers the messages that were stored but not answered when the bot last stopped.
async fn recover<G: Generator>(context: &Arc<BotContext<G>>, bot: &Bot) {
    let patients = match context
        .store
        .patients_awaiting_answer(RECOVERY_WINDOW)
        .await
    {
        Ok(patients) => patients,
        Err(e) => {
            tracing::error!(error = %e, "could not look for unanswered messages");
            return;
        }
    };
    for patient in patients {
        tracing::warn!(patient = %patient.log_tag(), "answering a message left unanswered by a restart");
        let result = match context.store.patient_contact(patient).await {
            Ok((_, chat)) => {
                patients::answer(
                    context,
                    bot,
                    ChatId(chat.0),
                    patients::Work::Resume(patient),
                    None,
                )
                .await
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            tracing::error!(patient = %patient.log_tag(), error = format!("{e:#}"), "recovery failed");
        }
    }
}

/// The bot, pointed at `TELEGRAM_API_URL` when set (a self-hosted Bot API server, or the tests' fake).
pub fn bot(settings: &TelegramSettings) -> Bot {
    let bot = Bot::new(secrecy::ExposeSecret::expose_secret(&settings.token));
    match &settings.api_url {
        Some(url) => bot.set_api_url(url.clone()),
        None => bot,
    }
}

/// Registers the commands patients see in Telegram's menu.
///
/// # Errors
/// When Telegram refuses the request.
pub async fn register_commands(bot: &Bot) -> Result<(), teloxide::RequestError> {
    bot.set_my_commands(vec![
        BotCommand::new("start", "what medbot is, and consent"),
        BotCommand::new("new", "start a new topic"),
        BotCommand::new("doctor", "ask for a human doctor"),
        BotCommand::new("meds", "your medicines and allergies"),
        BotCommand::new("history", "your conversation as a file"),
        BotCommand::new("forget", "delete all your data"),
        BotCommand::new("help", "commands"),
    ])
    .await?;
    Ok(())
}

/// A running bot: the poller (the "dispatcher"), the outbox sender and the expiry of escalations.
pub struct RunningBot {
    /// Stops taking updates.
    polling: tokio_util::sync::CancellationToken,
    tasks: Supervised,
    stop: watch::Sender<bool>,
    work: TaskTracker,
}

impl RunningBot {
    /// Resolves when one of the bot's tasks (the dispatcher, the outbox sender, the escalation
    /// expiry) has ended, which only `stop` should cause; says which, and how. `serve` exits
    /// non-zero then, so that systemd or the orchestrator restarts it instead of a process that
    /// lives on and answers no one.
    pub async fn ended(&mut self) -> String {
        self.tasks.ended().await
    }

    /// Serves `/healthz` and `/metrics` on `listener` (`METRICS_LISTEN`) until the bot stops; a
    /// supervised task like the others.
    pub fn serve_health<G: Generator>(
        &mut self,
        listener: tokio::net::TcpListener,
        context: Arc<BotContext<G>>,
    ) {
        let stopped = self.stop.subscribe();
        self.tasks
            .spawn("health endpoint", health::serve(listener, context, stopped));
    }

    /// Stops everything at once, work in hand included (what a crash would do; tests use it).
    pub fn abort(self) {
        for task in &self.tasks.tasks {
            task.abort();
        }
    }

    /// Stops taking updates, lets the updates and answers in hand finish (for at most
    /// `FINISH_IN_HAND`: a database that stays down must not hold the process), then stops the
    /// workers.
    pub async fn stop(self) {
        self.polling.cancel();
        self.work.close();
        if tokio::time::timeout(FINISH_IN_HAND, self.work.wait())
            .await
            .is_err()
        {
            tracing::error!(
                "stopping with updates or answers unfinished; stored messages are answered at the next start"
            );
        }
        let _ = self.stop.send(true);
        for task in self.tasks.tasks {
            let _ = task.await;
        }
    }
}

/// Long-lived tasks, named, none of which may end on its own.
#[derive(Default)]
struct Supervised {
    tasks: Vec<JoinHandle<()>>,
    names: Vec<&'static str>,
}

impl Supervised {
    fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
        self.names.push(name);
    }

    /// The first task to end, and how it ended; the others keep running.
    async fn ended(&mut self) -> String {
        if self.tasks.is_empty() {
            return std::future::pending().await;
        }
        let (result, index, _) = futures::future::select_all(self.tasks.iter_mut()).await;
        let name = self.names.remove(index);
        self.tasks.remove(index);
        match result {
            Ok(()) => format!("the {name} stopped"),
            Err(e) if e.is_panic() => format!("the {name} panicked"),
            Err(_) => format!("the {name} was cancelled"),
        }
    }
}

/// How long a stopping bot waits for the work in hand.
const FINISH_IN_HAND: Duration = Duration::from_secs(90);

/// Starts the bot: long polling, the outbox sender and the escalation expiry, all on the current
/// runtime. The same function serves `medbot serve` and the end-to-end tests.
pub fn start<G: Generator>(bot: Bot, context: Arc<BotContext<G>>) -> RunningBot {
    let polling = tokio_util::sync::CancellationToken::new();
    let stop_polling = polling.clone();
    let work = context.work.clone();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Supervised::default();
    let recovering = context.clone();
    let recovery_bot = bot.clone();
    tasks.spawn("dispatcher", async move {
        // Finish what a crash cut short before taking new messages, so no patient is answered
        // twice for one message.
        recover(&recovering, &recovery_bot).await;
        let arriving = recovery_bot.clone();
        let holding = recovering.clone();
        polling::poll(
            recovery_bot,
            stop_polling,
            move |update| recovering.arrive(arriving.clone(), update),
            || holding.held.lock().expect("not poisoned").first().copied(),
            &holding.stored,
        )
        .await
    });

    let sender = OutboxSender::new(
        bot,
        context.store.clone(),
        context.doctor_chat,
        context.outbox_ready.clone(),
    )
    .with_metrics(context.metrics.clone());
    tasks.spawn("outbox sender", sender.run(stopped.clone()));

    let mut stopped = stopped;
    tasks.spawn("escalation expiry", async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => return,
            }
            match context.desk.expire_due().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(expired = n, "escalations expired without a decision");
                    context.metrics.decided("expired", n as u64);
                    context.outbox_ready.notify_one();
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not expire escalations");
                    context.metrics.error("expiry");
                }
            }
        }
    });
    RunningBot {
        polling,
        tasks,
        stop,
        work,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_supervised_task_that_ends_or_panics_is_named() {
        let mut tasks = Supervised::default();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("outbox sender", async {});
        assert_eq!(tasks.ended().await, "the outbox sender stopped");
        tasks.spawn("escalation expiry", async { panic!("a bug") });
        assert_eq!(tasks.ended().await, "the escalation expiry panicked");
        // The task still running is not reported.
        let still = tokio::time::timeout(Duration::from_millis(50), tasks.ended()).await;
        assert!(still.is_err());
    }
}
