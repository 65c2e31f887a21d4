//! Patients in private chats: consent, commands, and the consultation with a streamed answer.

use std::time::Duration;

use anyhow::Context;
use teloxide::prelude::*;
use teloxide::types::{
    ChatAction, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MessageId,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{BotContext, meds, ui};
use crate::consult::{Generator, Progress, Received, Reply, StoredMessage, wording};
use crate::crypto::Plaintext;
use crate::domain::{Language, PatientId, TelegramChatId, TelegramUserId};
use crate::storage::Actor;

/// A streamed draft longer than this is shown cut (the final answer is split properly).
const PARTIAL_LIMIT: usize = 3500;
const TYPING_EVERY: Duration = Duration::from_secs(4);

pub(super) fn language_of(user: &teloxide::types::User) -> Language {
    user.language_code
        .as_deref()
        .map(Language::from_code)
        .unwrap_or_default()
}

async fn patient_of<G: Generator>(
    context: &BotContext<G>,
    user: &teloxide::types::User,
    chat: ChatId,
) -> anyhow::Result<PatientId> {
    Ok(context
        .store
        .register_patient(
            TelegramUserId(user.id.0 as i64),
            TelegramChatId(chat.0),
            user.language_code.as_deref(),
        )
        .await?
        .id)
}

/// Queues a reply for the patient (delivered by the outbox sender).
async fn reply<G: Generator>(
    context: &BotContext<G>,
    patient: PatientId,
    text: &str,
    replaces: Option<MessageId>,
) -> anyhow::Result<()> {
    context
        .store
        .enqueue_patient_reply(
            patient,
            &Plaintext::new(text),
            replaces.map(|m| i64::from(m.0)),
        )
        .await?;
    context.outbox_ready.notify_one();
    Ok(())
}

/// The emergency advice for a patient's message, decided the moment it arrives: from the words
/// alone, before the database, the consent record or anything in flight is consulted. Advice is
/// safe to give to anyone; nothing is stored or alerted until the message's turn comes.
pub(super) fn emergency_on_arrival<G: Generator>(
    context: &BotContext<G>,
    update: &Update,
) -> Option<(ChatId, String)> {
    let teloxide::types::UpdateKind::Message(message) = &update.kind else {
        return None;
    };
    if !message.chat.is_private() || message.from.as_ref().is_none_or(|u| u.is_bot) {
        return None;
    }
    let text = message.text()?.trim();
    let words = match text.strip_prefix('/') {
        // `/doctor <question>` is a question; other commands are not.
        Some(command) => command
            .strip_prefix("doctor")
            .filter(|rest| rest.starts_with(char::is_whitespace))?,
        None => text,
    };
    context
        .service
        .emergency_advice(words)
        .map(|advice| (message.chat.id, advice))
}

/// Sends emergency advice now, outside the outbox (which needs the database), retrying a few
/// times within seconds; whether the patient got it.
pub(super) async fn send_now(bot: &Bot, chat: ChatId, advice: &str) -> bool {
    let pieces = super::split_message(advice, super::TELEGRAM_LIMIT);
    let mut attempt = 0;
    let mut sent = 0;
    while sent < pieces.len() {
        match bot.send_message(chat, pieces[sent]).await {
            Ok(_) => sent += 1,
            Err(e) if attempt < 4 => {
                attempt += 1;
                let wait = match &e {
                    teloxide::RequestError::RetryAfter(after) => after.duration(),
                    _ => Duration::from_millis(250 * attempt),
                };
                tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "emergency advice not sent yet; retrying");
                tokio::time::sleep(wait.min(Duration::from_secs(10))).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "emergency advice could not be sent at once; the outbox will");
                return false;
            }
        }
    }
    true
}

pub(super) async fn on_message<G: Generator>(
    context: &std::sync::Arc<BotContext<G>>,
    bot: &Bot,
    message: &Message,
    advised: Option<tokio::task::JoinHandle<bool>>,
    arrived: Instant,
) -> anyhow::Result<()> {
    let Some(user) = message.from.as_ref() else {
        return Ok(());
    };
    if user.is_bot {
        return Ok(());
    }
    let language = language_of(user);
    let patient = patient_of(context, user, message.chat.id).await?;
    let text = message.text().map(str::trim);

    if !context.store.has_consented(patient).await? {
        // Nothing the patient writes is stored before consent: only the prompt is sent, again.
        return ask_consent(bot, message.chat.id, language).await;
    }

    let Some(text) = text else {
        return reply(context, patient, ui::text_only(language), None).await;
    };
    // A reply to "which medicine?" is names, unless it is an emergency or reads as a question or
    // a story: those go to the consultation like any message.
    if let Some(kind) = meds::prompted_kind(message)
        && !text.starts_with('/')
        && advised.is_none()
        && context.service.reads_as_medicine_names(text)
    {
        return meds::add_typed(context, bot, message.chat.id, patient, language, kind, text).await;
    }
    let (command, rest) = match text.strip_prefix('/') {
        Some(command) => {
            let (name, rest) = command
                .split_once(char::is_whitespace)
                .unwrap_or((command, ""));
            // "/new@medbot" in groups; harmless in private chats.
            let name = name.split('@').next().unwrap_or(name);
            (Some(name.to_ascii_lowercase()), rest.trim())
        }
        None => (None, text),
    };
    match command.as_deref() {
        None => {
            let emergency = advised.is_some();
            converse(
                context,
                bot,
                message.chat.id,
                patient,
                text,
                false,
                advised,
                arrived,
            )
            .await?;
            // Not in an emergency: the advice must stand alone.
            if !emergency {
                meds::offer(context, bot, message.chat.id, patient, text).await;
            }
            Ok(())
        }
        Some("meds") => {
            meds::on_command(context, bot, message.chat.id, patient, language, rest).await
        }
        Some("doctor") if !rest.is_empty() => {
            converse(
                context,
                bot,
                message.chat.id,
                patient,
                rest,
                true,
                advised,
                arrived,
            )
            .await
        }
        Some("doctor") => reply(context, patient, ui::doctor_requested(language), None).await,
        Some("new") => {
            context.service.start_new_topic(patient).await?;
            reply(context, patient, ui::new_topic(language), None).await
        }
        Some("history") => send_history(context, bot, message.chat.id, patient, language).await,
        Some("forget") => {
            let button = InlineKeyboardButton::callback(ui::forget_button(language), "forget");
            bot.send_message(message.chat.id, ui::forget_confirm(language))
                .reply_markup(InlineKeyboardMarkup::new([[button]]))
                .await?;
            Ok(())
        }
        Some(_) => reply(context, patient, ui::help(language), None).await,
    }
}

async fn ask_consent(bot: &Bot, chat: ChatId, language: Language) -> anyhow::Result<()> {
    let text = format!(
        "{}\n\n{}",
        wording::consent_notice(language),
        ui::consent_prompt(language)
    );
    let button = InlineKeyboardButton::callback(ui::agree_button(language), "consent");
    bot.send_message(chat, text)
        .reply_markup(InlineKeyboardMarkup::new([[button]]))
        .await?;
    Ok(())
}

pub(super) async fn on_edited_message<G: Generator>(
    context: &BotContext<G>,
    message: &Message,
) -> anyhow::Result<()> {
    let Some(user) = message.from.as_ref() else {
        return Ok(());
    };
    let Some(patient) = context
        .store
        .find_patient(TelegramUserId(user.id.0 as i64))
        .await?
    else {
        return Ok(());
    };
    if context.store.has_consented(patient).await? {
        reply(
            context,
            patient,
            ui::edits_not_read(language_of(user)),
            None,
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn on_button<G: Generator>(
    context: &BotContext<G>,
    bot: &Bot,
    query: &CallbackQuery,
    data: &str,
) -> anyhow::Result<()> {
    let language = language_of(&query.from);
    // A patient's buttons count only in their own private chat: pressed anywhere else (a forged
    // button in a group), they would register that chat as the patient's.
    let Some(chat) = query
        .message
        .as_ref()
        .map(|m| m.chat())
        .filter(|chat| chat.is_private() && chat.id.0 == query.from.id.0 as i64)
        .map(|chat| chat.id)
    else {
        tracing::warn!(
            user = query.from.id.0,
            "patient button refused: not in the patient's private chat"
        );
        bot.answer_callback_query(query.id.clone())
            .text(ui::button_no_longer_valid(language))
            .await?;
        return Ok(());
    };
    match data {
        "consent" => {
            let patient = patient_of(context, &query.from, chat).await?;
            context.store.record_consent(patient).await?;
            bot.answer_callback_query(query.id.clone()).await?;
            reply(context, patient, ui::consent_recorded(language), None).await
        }
        "forget" => {
            let user = TelegramUserId(query.from.id.0 as i64);
            if let Some(patient) = context.store.find_patient(user).await? {
                context.store.erase_patient(patient, Actor::Patient).await?;
            }
            bot.answer_callback_query(query.id.clone()).await?;
            // The patient's outbox went with their data: this one is sent directly.
            bot.send_message(chat, ui::forgotten(language)).await?;
            Ok(())
        }
        data if meds::is_meds_button(data) => {
            let patient = patient_of(context, &query.from, chat).await?;
            meds::on_button(context, bot, query, chat, patient, data).await
        }
        _ => {
            bot.answer_callback_query(query.id.clone())
                .text(ui::button_no_longer_valid(language))
                .await?;
            Ok(())
        }
    }
}

async fn send_history<G: Generator>(
    context: &BotContext<G>,
    bot: &Bot,
    chat: ChatId,
    patient: PatientId,
    language: Language,
) -> anyhow::Result<()> {
    let export = context
        .store
        .export_patient(patient, Actor::Patient)
        .await?;
    let json = serde_json::to_vec_pretty(&export).context("Failed to render the history")?;
    bot.send_document(
        chat,
        InputFile::memory(json).file_name("medbot-history.json"),
    )
    .caption(ui::history_caption(language))
    .await?;
    Ok(())
}

/// A patient's message through the consultation. Its quick half (triage, storing) runs here, in
/// the chat's lane; the answer is written by a task of its own, so that the patient's next message
/// is triaged at once and supersedes it.
#[allow(clippy::too_many_arguments)]
async fn converse<G: Generator>(
    context: &std::sync::Arc<BotContext<G>>,
    bot: &Bot,
    chat: ChatId,
    patient: PatientId,
    text: &str,
    for_doctor: bool,
    advised: Option<tokio::task::JoinHandle<bool>>,
    arrived: Instant,
) -> anyhow::Result<()> {
    match context.service.receive(patient, text, for_doctor).await {
        Ok(Received::Answered(outcome)) => {
            context.metrics.triaged(outcome.assessment.level);
            let delivered = match advised {
                Some(sending) => sending.await.unwrap_or(false),
                None => false,
            };
            let result = if delivered {
                Ok(())
            } else {
                urgent_reply(context, patient, outcome.reply.text()).await
            };
            context.metrics.first_text(arrived.elapsed());
            context.metrics.answered(arrived.elapsed());
            result
        }
        Ok(Received::Stored(stored)) => {
            let context = std::sync::Arc::clone(context);
            let bot = bot.clone();
            context.clone().work.spawn(async move {
                let patient = stored.patient();
                if let Err(e) = answer(&context, &bot, chat, Work::Stored(stored), Some(arrived)).await {
                    tracing::error!(patient = %patient.log_tag(), error = format!("{e:#}"), "the answer could not be queued");
                }
            });
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "message not handled");
            let max = context.service.settings().max_message_chars;
            reply(
                context,
                patient,
                &e.patient_text(Language::of_text(text), max),
                None,
            )
            .await
        }
    }
}

/// Emergency advice through the outbox, ahead of everything else in it.
async fn urgent_reply<G: Generator>(
    context: &BotContext<G>,
    patient: PatientId,
    text: &str,
) -> anyhow::Result<()> {
    context
        .store
        .enqueue_emergency_advice(patient, &Plaintext::new(text))
        .await?;
    context.outbox_ready.notify_one();
    Ok(())
}

/// What to answer.
pub(super) enum Work {
    /// A message just stored.
    Stored(StoredMessage),
    /// The stored message a crash left unanswered.
    Resume(PatientId),
}

enum Shown {
    Partial(String),
    Review(String),
}

/// The answer: typing while the model works, the draft shown as it passes review (one message,
/// edited no more often than `edit_interval`), the final answer through the outbox, replacing
/// that message.
pub(super) async fn answer<G: Generator>(
    context: &BotContext<G>,
    bot: &Bot,
    chat: ChatId,
    work: Work,
    arrived: Option<Instant>,
) -> anyhow::Result<()> {
    context.metrics.answers_in_progress(1.0);
    let result = write_answer(context, bot, chat, work, arrived).await;
    context.metrics.answers_in_progress(-1.0);
    result
}

async fn write_answer<G: Generator>(
    context: &BotContext<G>,
    bot: &Bot,
    chat: ChatId,
    work: Work,
    arrived: Option<Instant>,
) -> anyhow::Result<()> {
    let (patient, language) = match &work {
        Work::Stored(stored) => (stored.patient(), stored.language()),
        Work::Resume(patient) => (*patient, Language::English),
    };
    // A crash between the review notice and the stored escalation: the patient has the notice.
    let told = match &work {
        Work::Stored(_) => false,
        Work::Resume(patient) => context.store.told_since_last_message(*patient).await?,
    };
    let (events, shown) = mpsc::unbounded_channel();
    let streamer = tokio::spawn(show_progress(
        bot.clone(),
        chat,
        shown,
        context.edit_interval,
        ReviewNotice {
            store: context.store.clone(),
            patient,
            outbox_ready: context.outbox_ready.clone(),
            told,
        },
    ));
    let mut on_progress = |step: Progress<'_>| {
        let _ = match step {
            Progress::Partial(text) => events.send(Shown::Partial(text.to_owned())),
            Progress::ReviewRequired(notice) => events.send(Shown::Review(notice.to_owned())),
            Progress::Triaged(_) => Ok(()),
        };
    };
    let service = &context.service;
    let outcome = match work {
        Work::Stored(stored) => service
            .answer_stored(stored, &mut on_progress)
            .await
            .map(Some),
        Work::Resume(patient) => service.resume(patient, &mut on_progress).await,
    };
    drop(events);
    let progress = streamer.await.unwrap_or_default();
    if let Ok(Some(outcome)) = &outcome
        && !matches!(outcome.reply, Reply::Superseded)
    {
        let metrics = &context.metrics;
        metrics.triaged(outcome.assessment.level);
        if let Reply::UnderReview { reasons, .. } = &outcome.reply {
            metrics.escalated(reasons);
        }
        if let Some(speed) = outcome.tokens_per_second {
            metrics.generation_speed(speed);
        }
        if let Some(arrived) = arrived {
            let now = Instant::now();
            let first = progress.first_shown.unwrap_or(now).min(now);
            metrics.first_text(first.saturating_duration_since(arrived));
            metrics.answered(now.saturating_duration_since(arrived));
        }
    }
    // The outbox edits the streamed message: not sooner after the last progress edit than
    // Telegram allows.
    let after_last_edit = async {
        if let Some(at) = progress.last_edit {
            tokio::time::sleep_until(at + MIN_EDIT_GAP).await;
        }
    };
    match outcome {
        Ok(None) => Ok(()),
        Ok(Some(outcome)) => match outcome.reply {
            Reply::Emergency { text } => urgent_reply(context, patient, &text).await,
            Reply::Answer { text } => {
                after_last_edit.await;
                reply(context, patient, &text, progress.message).await
            }
            // The notice went out when the service asked for it.
            Reply::UnderReview { .. } => Ok(()),
            // A newer message is being answered; a draft left on screen says it was stopped.
            Reply::Superseded => match progress.message {
                Some(message) => {
                    after_last_edit.await;
                    reply(context, patient, ui::superseded(language), Some(message)).await
                }
                None => Ok(()),
            },
        },
        Err(e) => {
            tracing::warn!(error = %e, "message not handled");
            let max = context.service.settings().max_message_chars;
            reply(context, patient, &e.patient_text(language, max), None).await
        }
    }
}

#[derive(Default)]
struct ProgressShown {
    /// When the patient first saw something: a streamed draft or the review notice.
    first_shown: Option<Instant>,
    /// The message that shows the streamed draft, if one was sent.
    message: Option<MessageId>,
    /// When that message was last sent or edited.
    last_edit: Option<Instant>,
}

/// Telegram allows about one edit a second per message; the final answer's edit keeps to it too.
const MIN_EDIT_GAP: Duration = Duration::from_millis(1000);

/// Where the "a doctor is reviewing" notice goes: the outbox, at once, so that it is not lost.
struct ReviewNotice {
    store: crate::storage::Store,
    patient: PatientId,
    outbox_ready: std::sync::Arc<tokio::sync::Notify>,
    /// The patient already has it (sent before a crash).
    told: bool,
}

impl ReviewNotice {
    async fn send(&self, notice: &str) {
        if self.told {
            return;
        }
        match self
            .store
            .enqueue_patient_reply(self.patient, &Plaintext::new(notice), None)
            .await
        {
            Ok(_) => self.outbox_ready.notify_one(),
            Err(e) => tracing::error!(error = %e, "could not queue the review notice"),
        }
    }
}

async fn show_progress(
    bot: Bot,
    chat: ChatId,
    mut events: mpsc::UnboundedReceiver<Shown>,
    edit_interval: Duration,
    review: ReviewNotice,
) -> ProgressShown {
    let mut shown = ProgressShown::default();
    let mut pending: Option<String> = None;
    let mut last_edit = Instant::now() - edit_interval;
    let mut typing = tokio::time::interval(TYPING_EVERY);
    let mut reviewing = false;
    loop {
        let edit_due = last_edit + edit_interval;
        tokio::select! {
            event = events.recv() => match event {
                None => break,
                Some(Shown::Partial(text)) if !reviewing => pending = Some(text),
                Some(Shown::Review(notice)) => {
                    review.send(&notice).await;
                    shown.first_shown.get_or_insert_with(Instant::now);
                    // Nothing more of the draft is shown; keep the typing indicator until the end.
                    pending = None;
                    reviewing = true;
                }
                Some(Shown::Partial(_)) => {}
            },
            _ = typing.tick() => {
                if let Err(e) = bot.send_chat_action(chat, ChatAction::Typing).await {
                    tracing::debug!(error = %e, "typing indicator not sent");
                }
            }
            _ = tokio::time::sleep_until(edit_due), if pending.is_some() => {
                let mut text = pending.take().unwrap_or_default();
                if text.chars().count() > PARTIAL_LIMIT {
                    text = text.chars().take(PARTIAL_LIMIT).collect::<String>() + " …";
                }
                let sent = match shown.message {
                    None => bot.send_message(chat, text).await.map(|m| shown.message = Some(m.id)),
                    Some(id) => bot.edit_message_text(chat, id, text).await.map(|_| ()),
                };
                if let Err(e) = sent {
                    // Progress is best effort; the final answer goes through the outbox.
                    tracing::debug!(error = %e, "streamed draft not shown");
                }
                last_edit = Instant::now();
                shown.first_shown.get_or_insert(last_edit);
                shown.last_edit = Some(last_edit);
            }
        }
    }
    shown
}
