//! The Telegram adapter: patients in private chats, doctors in the review group, and the outbox
//! sender. teloxide handles long polling and keeps each chat's updates in order; every update is
//! recorded in the inbox before it is handled, and every reply goes through the outbox.

mod doctors;
mod patients;
mod sender;
mod split;
mod ui;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use teloxide::dispatching::{Dispatcher, ShutdownToken};
use teloxide::prelude::*;
use teloxide::types::{BotCommand, UpdateKind};
use tokio::sync::{Notify, watch};

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
        }
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

    /// Handles one update, once: recorded in the inbox first, marked handled when its replies are
    /// queued. A failure leaves it unhandled, to be retried if Telegram sends it again.
    async fn handle(&self, bot: Bot, update: Update) {
        let update_id = i64::from(update.id.0);
        match self.store.receive_update(update_id).await {
            Ok(UpdateReceipt::AlreadyHandled) => {
                tracing::info!(update_id, "update already handled; skipped");
                return;
            }
            Ok(UpdateReceipt::Handle) => {}
            Err(e) => {
                tracing::error!(update_id, error = %e, "could not record the update; not handled");
                return;
            }
        }
        let result = match update.kind {
            UpdateKind::Message(message) if message.chat.id.0 == self.doctor_chat.0 => {
                doctors::on_group_message(self, &bot, &message).await
            }
            UpdateKind::Message(message) if message.chat.is_private() => {
                patients::on_message(self, &bot, &message).await
            }
            UpdateKind::EditedMessage(message) if message.chat.is_private() => {
                patients::on_edited_message(self, &message).await
            }
            UpdateKind::CallbackQuery(query) => self.on_callback(&bot, &query).await,
            _ => Ok(()),
        };
        match result {
            Ok(()) => {
                if let Err(e) = self.store.finish_update(update_id).await {
                    tracing::error!(update_id, error = %e, "could not mark the update handled");
                }
            }
            Err(e) => tracing::error!(update_id, error = format!("{e:#}"), "update failed"),
        }
        self.outbox_ready.notify_one();
    }

    async fn on_callback(&self, bot: &Bot, query: &CallbackQuery) -> anyhow::Result<()> {
        let data = query.data.as_deref().unwrap_or_default();
        match data.split_once(':') {
            Some((action @ ("approve" | "edit" | "reject"), id)) => {
                doctors::on_decision_button(self, bot, query, action, id).await
            }
            _ => patients::on_button(self, bot, query, data).await,
        }
    }
}

/// How far back a stored, unanswered message is still answered after a restart.
const RECOVERY_WINDOW: Duration = Duration::from_secs(3600);

/// Answers the messages that were stored but not answered when the bot last stopped.
async fn recover<G: Generator>(context: &BotContext<G>, bot: &Bot) {
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
                patients::converse(
                    context,
                    bot,
                    ChatId(chat.0),
                    patient,
                    patients::Request::Resume,
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
        BotCommand::new("history", "your conversation as a file"),
        BotCommand::new("forget", "delete all your data"),
        BotCommand::new("help", "commands"),
    ])
    .await?;
    Ok(())
}

/// A running bot: the dispatcher, the outbox sender and the expiry of escalations.
pub struct RunningBot {
    shutdown: ShutdownToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl RunningBot {
    /// Stops everything at once, work in hand included (what a crash would do; tests use it).
    pub fn abort(self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Stops taking updates, lets the handlers in progress finish, then stops the workers.
    pub async fn stop(self) {
        if let Ok(done) = self.shutdown.shutdown() {
            done.await;
        }
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts the bot: long polling, the outbox sender and the escalation expiry, all on the current
/// runtime. The same function serves `medbot serve` and the end-to-end tests.
pub fn start<G: Generator>(bot: Bot, context: Arc<BotContext<G>>) -> RunningBot {
    let handler = dptree::entry().endpoint(
        |bot: Bot, update: Update, context: Arc<BotContext<G>>| async move {
            context.handle(bot, update).await;
            Ok::<(), std::convert::Infallible>(())
        },
    );
    let mut dispatcher = Dispatcher::builder(bot.clone(), handler)
        .dependencies(dptree::deps![context.clone()])
        .default_handler(|_| async {})
        .build();
    let shutdown = dispatcher.shutdown_token();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let recovering = context.clone();
    let recovery_bot = bot.clone();
    tasks.push(tokio::spawn(async move {
        // Finish what a crash cut short before taking new messages, so no patient is answered
        // twice for one message.
        recover(&recovering, &recovery_bot).await;
        dispatcher.dispatch().await
    }));

    let sender = OutboxSender::new(
        bot,
        context.store.clone(),
        context.doctor_chat,
        context.outbox_ready.clone(),
    );
    tasks.push(tokio::spawn(sender.run(stopped.clone())));

    let mut stopped = stopped;
    tasks.push(tokio::spawn(async move {
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
                    context.outbox_ready.notify_one();
                }
                Err(e) => tracing::error!(error = %e, "could not expire escalations"),
            }
        }
    }));
    RunningBot {
        shutdown,
        tasks,
        stop,
    }
}
