//! The patient's medicines and allergies on Telegram: `/meds` shows the list with a button to remove
//! each entry and buttons to add; `/meds add ...` and `/meds allergy ...` add by name; a message
//! that says "I take warfarin" is answered with a one-tap offer to save it. Nothing is saved
//! without the patient's tap or command.

use teloxide::prelude::*;
use teloxide::types::{ForceReply, InlineKeyboardButton, InlineKeyboardMarkup};

use super::{BotContext, ui};
use crate::consult::{Added, Generator, MedicationProposal};
use crate::domain::{Language, MedicationEntry, MedicationId, MedicationKind, PatientId};

const ADD_MEDICINE: &str = "meds:add:medicine";
const ADD_ALLERGY: &str = "meds:add:allergy";
const REMOVE: &str = "meds:rm:";
const SAVE_MEDICINE: &str = "meds:ok:m:";
const SAVE_ALLERGY: &str = "meds:ok:a:";
const DECLINE: &str = "meds:no";

/// `/meds`, `/meds add NAMES`, `/meds allergy NAMES`, `/meds remove NAME`.
pub(super) async fn on_command<G: Generator>(
    context: &BotContext<G>,
    bot: &Bot,
    chat: ChatId,
    patient: PatientId,
    language: Language,
    rest: &str,
) -> anyhow::Result<()> {
    let (verb, names) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let names = names.trim();
    let verb = verb.to_lowercase();
    let adds = match verb.as_str() {
        "add" | "take" | "添加" => Some(MedicationKind::Medicine),
        "allergy" | "allergic" | "过敏" => Some(MedicationKind::Allergy),
        _ => None,
    };
    if let Some(kind) = adds.filter(|_| !names.is_empty()) {
        return add_typed(context, bot, chat, patient, language, kind, names).await;
    }
    match verb.as_str() {
        "" | "list" => send_list(context, bot, chat, patient, language).await,
        "remove" | "delete" | "删除" if !names.is_empty() => {
            if context
                .service
                .remove_medications_named(patient, names)
                .await?
                == 0
            {
                let shown: String = names.chars().take(80).collect();
                bot.send_message(chat, ui::meds_not_on_list(language, &shown))
                    .await?;
            }
            send_list(context, bot, chat, patient, language).await
        }
        _ => {
            bot.send_message(chat, ui::meds_usage(language)).await?;
            Ok(())
        }
    }
}

/// The list with its buttons.
async fn send_list<G: Generator>(
    context: &BotContext<G>,
    bot: &Bot,
    chat: ChatId,
    patient: PatientId,
    language: Language,
) -> anyhow::Result<()> {
    let list = context.service.medications(patient).await?;
    let (text, buttons) = list_view(context, &list, language);
    bot.send_message(chat, text).reply_markup(buttons).await?;
    Ok(())
}

fn list_view<G: Generator>(
    context: &BotContext<G>,
    list: &[MedicationEntry],
    language: Language,
) -> (String, InlineKeyboardMarkup) {
    let name = |e: &MedicationEntry| {
        context
            .service
            .medication_name(e.drug.as_deref(), &e.name, language)
    };
    let of_kind =
        |kind| -> Vec<String> { list.iter().filter(|e| e.kind == kind).map(name).collect() };
    let text = ui::meds_list(
        language,
        &of_kind(MedicationKind::Medicine),
        &of_kind(MedicationKind::Allergy),
    );
    let mut rows: Vec<Vec<InlineKeyboardButton>> = list
        .iter()
        .map(|e| {
            let label = match e.kind {
                MedicationKind::Medicine => format!("❌ {}", name(e)),
                MedicationKind::Allergy => {
                    format!("❌ {}: {}", ui::allergy_word(language), name(e))
                }
            };
            vec![InlineKeyboardButton::callback(
                clip_label(&label),
                format!("{REMOVE}{}", e.id.0),
            )]
        })
        .collect();
    rows.push(vec![
        InlineKeyboardButton::callback(ui::meds_add_medicine_button(language), ADD_MEDICINE),
        InlineKeyboardButton::callback(ui::meds_add_allergy_button(language), ADD_ALLERGY),
    ]);
    (text, InlineKeyboardMarkup::new(rows))
}

/// Button labels are kept short (Telegram shows about 30 characters on a phone).
fn clip_label(label: &str) -> String {
    if label.chars().count() <= 40 {
        return label.to_owned();
    }
    label.chars().take(39).collect::<String>() + "…"
}

/// Adds what the patient typed (after `/meds add`, or in reply to a "which medicine?" prompt)
/// and shows the list.
pub(super) async fn add_typed<G: Generator>(
    context: &BotContext<G>,
    bot: &Bot,
    chat: ChatId,
    patient: PatientId,
    language: Language,
    kind: MedicationKind,
    typed: &str,
) -> anyhow::Result<()> {
    let added = context
        .service
        .add_medications(patient, kind, typed)
        .await?;
    bot.send_message(chat, saved_text(context, &added, language))
        .await?;
    send_list(context, bot, chat, patient, language).await
}

fn saved_text<G: Generator>(
    context: &BotContext<G>,
    added: &[Added],
    language: Language,
) -> String {
    let known: Vec<String> = added
        .iter()
        .filter(|a| a.known)
        .map(|a| {
            context
                .service
                .medication_name(a.entry.drug.as_deref(), &a.entry.name, language)
        })
        .collect();
    let unknown: Vec<String> = added
        .iter()
        .filter(|a| !a.known)
        .map(|a| a.entry.name.clone())
        .collect();
    ui::meds_saved(language, &known, &unknown)
}

/// A reply to one of the bot's "which medicine?" prompts: the names to add. `None` when the
/// message is not such a reply.
pub(super) fn prompted_kind(message: &Message) -> Option<MedicationKind> {
    let replied = message.reply_to_message()?;
    if !replied.from.as_ref().is_some_and(|u| u.is_bot) {
        return None;
    }
    ui::meds_prompt_kind(replied.text()?)
}

/// Offers to save what the patient's message says they take or are allergic to. Best effort: the
/// consultation goes on whether or not the offer can be made.
pub(super) async fn offer<G: Generator>(
    context: &BotContext<G>,
    bot: &Bot,
    chat: ChatId,
    patient: PatientId,
    text: &str,
) {
    let proposals = match context.service.medication_proposals(patient, text).await {
        Ok(p) if p.is_empty() => return,
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for medicines to save");
            return;
        }
    };
    let language = Language::of_text(text);
    let mut rows: Vec<Vec<InlineKeyboardButton>> = proposals
        .iter()
        .filter_map(|p| proposal_button(context, p, language))
        .map(|b| vec![b])
        .collect();
    rows.push(vec![InlineKeyboardButton::callback(
        ui::meds_decline_button(language),
        DECLINE,
    )]);
    if let Err(e) = bot
        .send_message(chat, ui::meds_offer(language))
        .reply_markup(InlineKeyboardMarkup::new(rows))
        .await
    {
        tracing::warn!(error = %e, "the offer to save medicines was not sent");
    }
}

fn proposal_button<G: Generator>(
    context: &BotContext<G>,
    proposal: &MedicationProposal,
    language: Language,
) -> Option<InlineKeyboardButton> {
    let name = context
        .service
        .medication_name(Some(&proposal.drug), "", language);
    let (label, prefix) = match proposal.kind {
        MedicationKind::Medicine => (format!("✅ {name}"), SAVE_MEDICINE),
        MedicationKind::Allergy => (
            format!("✅ {}: {name}", ui::allergy_word(language)),
            SAVE_ALLERGY,
        ),
    };
    let data = format!("{prefix}{}", proposal.drug);
    // Telegram refuses callback data over 64 bytes; the ids are far shorter.
    (data.len() <= 64).then(|| InlineKeyboardButton::callback(clip_label(&label), data))
}

/// Whether `data` is one of this module's buttons.
pub(super) fn is_meds_button(data: &str) -> bool {
    data.starts_with("meds:")
}

/// A press on one of the buttons above, in the patient's own private chat.
pub(super) async fn on_button<G: Generator>(
    context: &BotContext<G>,
    bot: &Bot,
    query: &CallbackQuery,
    chat: ChatId,
    patient: PatientId,
    data: &str,
) -> anyhow::Result<()> {
    let message = query.message.as_ref().and_then(|m| m.regular_message());
    // Answer in the language of the message the button is on (an offer follows the language the
    // patient wrote in, whatever their Telegram client's).
    let language = message
        .and_then(Message::text)
        .map(Language::of_text)
        .unwrap_or_else(|| super::patients::language_of(&query.from));
    if data == ADD_MEDICINE || data == ADD_ALLERGY {
        let kind = if data == ADD_MEDICINE {
            MedicationKind::Medicine
        } else {
            MedicationKind::Allergy
        };
        bot.answer_callback_query(query.id.clone()).await?;
        bot.send_message(chat, ui::meds_prompt(language, kind))
            .reply_markup(
                ForceReply::new()
                    .input_field_placeholder(Some(ui::meds_placeholder(language, kind).to_owned())),
            )
            .await?;
        return Ok(());
    }
    if let Some(id) = data.strip_prefix(REMOVE) {
        let removed = match uuid::Uuid::parse_str(id) {
            Ok(id) => {
                context
                    .service
                    .remove_medication(patient, MedicationId(id))
                    .await?
            }
            Err(_) => false,
        };
        let note = if removed {
            ui::meds_removed(language)
        } else {
            ui::button_no_longer_valid(language)
        };
        bot.answer_callback_query(query.id.clone())
            .text(note)
            .await?;
        if let Some(message) = message {
            let list = context.service.medications(patient).await?;
            let (text, buttons) = list_view(context, &list, language);
            bot.edit_message_text(chat, message.id, text)
                .reply_markup(buttons)
                .await?;
        }
        return Ok(());
    }
    if data == DECLINE {
        bot.answer_callback_query(query.id.clone()).await?;
        if let Some(message) = message {
            bot.edit_message_text(chat, message.id, ui::meds_not_saved(language))
                .await?;
        }
        return Ok(());
    }
    let saved = if let Some(drug) = data.strip_prefix(SAVE_MEDICINE) {
        context
            .service
            .confirm_medication(patient, MedicationKind::Medicine, drug)
            .await?
    } else if let Some(drug) = data.strip_prefix(SAVE_ALLERGY) {
        context
            .service
            .confirm_medication(patient, MedicationKind::Allergy, drug)
            .await?
    } else {
        None
    };
    let Some(entry) = saved else {
        bot.answer_callback_query(query.id.clone())
            .text(ui::button_no_longer_valid(language))
            .await?;
        return Ok(());
    };
    bot.answer_callback_query(query.id.clone())
        .text(ui::meds_saved_short(language))
        .await?;
    let Some(message) = message else {
        return Ok(());
    };
    // The other offers stay; the pressed one goes.
    let remaining: Vec<Vec<InlineKeyboardButton>> = message
        .reply_markup()
        .map(|m| m.inline_keyboard.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|row| !row.iter().any(|b| button_data(b) == Some(data)))
        .collect();
    let name = context
        .service
        .medication_name(entry.drug.as_deref(), &entry.name, language);
    let offers_left = remaining
        .iter()
        .flatten()
        .any(|b| button_data(b).is_some_and(|d| d.starts_with("meds:ok:")));
    let text = ui::meds_saved_one(language, entry.kind, &name);
    if offers_left {
        bot.edit_message_text(
            chat,
            message.id,
            format!("{text}\n\n{}", ui::meds_offer(language)),
        )
        .reply_markup(InlineKeyboardMarkup::new(remaining))
        .await?;
    } else {
        bot.edit_message_text(chat, message.id, text).await?;
    }
    Ok(())
}

fn button_data(button: &InlineKeyboardButton) -> Option<&str> {
    match &button.kind {
        teloxide::types::InlineKeyboardButtonKind::CallbackData(data) => Some(data),
        _ => None,
    }
}
