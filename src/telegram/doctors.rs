//! Doctors in the review group: the Approve / Edit / Reject buttons on escalation cards, replies to
//! cards (the edited answer, or "/reject note"), and the cards themselves.

use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use super::BotContext;
use crate::consult::{DecideError, EscalationRecord, Generator, Verdict};
use crate::domain::{EscalationId, EscalationStatus, TelegramUserId};
use crate::triage::ReviewReason;

/// Cards are cut so that they fit one Telegram message (4096 UTF-16 units, less a margin for
/// characters that take two): question and draft 1,400 characters each, the card's own lines
/// about 300, and the assessment with the medicines whatever is left (at least 600).
const CARD_TEXT_LIMIT: usize = 1400;
const CARD_LIMIT: usize = 4000;
const CARD_ASSESSMENT_MIN: usize = 600;

pub(super) async fn on_decision_button<G: Generator>(
    context: &BotContext<G>,
    bot: &Bot,
    query: &CallbackQuery,
    action: &str,
    id: &str,
) -> anyhow::Result<()> {
    let doctor = TelegramUserId(query.from.id.0 as i64);
    if !context.is_doctor(doctor) {
        tracing::warn!(user = doctor.0, "decision refused: not in DOCTOR_IDS");
        bot.answer_callback_query(query.id.clone())
            .text("You are not authorised to review answers.")
            .show_alert(true)
            .await?;
        return Ok(());
    }
    // A decision counts only from the escalation's own card in the doctors' group: the data of a
    // button can be forged, the message it sits on cannot.
    let card = query
        .message
        .as_ref()
        .filter(|m| m.chat().id.0 == context.doctor_chat.0)
        .map(|m| i64::from(m.id().0));
    let bound = match (uuid::Uuid::parse_str(id).map(EscalationId), card) {
        (Ok(id), Some(card)) => context
            .store
            .escalation_by_card(context.doctor_chat.0, card)
            .await?
            .filter(|on_card| *on_card == id),
        _ => None,
    };
    let Some(id) = bound else {
        tracing::warn!(
            user = doctor.0,
            "decision refused: the button is not on its escalation's card"
        );
        bot.answer_callback_query(query.id.clone())
            .text(super::ui::button_no_longer_valid(
                crate::domain::Language::English,
            ))
            .show_alert(true)
            .await?;
        return Ok(());
    };
    let verdict = match action {
        "approve" => Verdict::Approve,
        "reject" => Verdict::Reject(None),
        _ => {
            bot.answer_callback_query(query.id.clone())
                .text("Reply to this card with the answer to send to the patient.")
                .show_alert(true)
                .await?;
            return Ok(());
        }
    };
    let answer = decide(context, id, doctor, verdict).await?;
    bot.answer_callback_query(query.id.clone())
        .text(answer)
        .show_alert(true)
        .await?;
    Ok(())
}

/// A message in the doctors' group: a reply to a card is the doctor's own answer ("/reject note"
/// rejects with that note); anything else is conversation among doctors and is ignored.
pub(super) async fn on_group_message<G: Generator>(
    context: &BotContext<G>,
    bot: &Bot,
    message: &Message,
) -> anyhow::Result<()> {
    let (Some(card), Some(user), Some(text)) = (
        message.reply_to_message(),
        message.from.as_ref(),
        message.text(),
    ) else {
        return Ok(());
    };
    let Some(id) = context
        .store
        .escalation_by_card(message.chat.id.0, i64::from(card.id.0))
        .await?
    else {
        return Ok(());
    };
    let doctor = TelegramUserId(user.id.0 as i64);
    let answer = if !context.is_doctor(doctor) {
        "You are not authorised to review answers.".to_owned()
    } else {
        let text = text.trim();
        let verdict = match text.strip_prefix("/reject") {
            Some(note) => Verdict::Reject(Some(note.trim().to_owned())),
            None => Verdict::Edit(text.to_owned()),
        };
        decide(context, id, doctor, verdict).await?
    };
    bot.send_message(message.chat.id, answer)
        .reply_parameters(teloxide::types::ReplyParameters::new(message.id))
        .await?;
    Ok(())
}

/// Takes the decision; returns what the doctor is told.
async fn decide<G: Generator>(
    context: &BotContext<G>,
    id: EscalationId,
    doctor: TelegramUserId,
    verdict: Verdict,
) -> anyhow::Result<String> {
    let answer = match context.desk.decide(id, doctor, verdict).await {
        Ok(status) => {
            context.metrics.decided(status.as_str(), 1);
            format!(
                "Done: {}. The patient has been sent the answer.",
                status.as_str()
            )
        }
        Err(DecideError::AlreadyDecided(status)) => {
            format!(
                "Already decided ({}); nothing was changed.",
                status.as_str()
            )
        }
        Err(DecideError::NothingToApprove) => {
            "The draft is empty: reply to the card with the answer to send instead.".to_owned()
        }
        Err(DecideError::EmptyEdit) => "The reply is empty; nothing was sent.".to_owned(),
        Err(DecideError::Store(e)) => return Err(e.into()),
    };
    context.outbox_ready.notify_one();
    Ok(answer)
}

/// At most `limit` UTF-16 units (what Telegram counts), cut at a word or line boundary and
/// marked, never mid-word.
fn clip_to(text: &str, limit: usize) -> String {
    if utf16_len(text) <= limit {
        return text.to_owned();
    }
    let mut units = 0;
    let end = text
        .char_indices()
        .find(|(_, c)| {
            units += c.len_utf16();
            units > limit
        })
        .map_or(text.len(), |(i, _)| i);
    let head = &text[..end];
    let cut = head
        .rfind(|c: char| c.is_whitespace() || crate::domain::is_han(c))
        .filter(|&i| i > end / 2)
        .unwrap_or(head.len());
    format!("{} …(cut)", head[..cut].trim_end())
}

fn clip(text: &str) -> String {
    clip_to(text, CARD_TEXT_LIMIT)
}

/// The card's text: a pseudonymous reference, the triage, the reasons, the question, the
/// assessment (medicines, interactions, differential, treatment options) and the draft.
pub(super) fn card_text(record: &EscalationRecord) -> String {
    let reasons: Vec<String> = record
        .reasons
        .iter()
        .map(|code| ReviewReason::describe_code(code))
        .collect();
    let draft = record.draft.as_str();
    let draft = if draft.is_empty() {
        "(none: the model gave no answer; reply with one)".to_owned()
    } else {
        clip(draft)
    };
    let head = format!(
        "🩺 Review needed · {}\nPatient {} · triage {}\nWhy: {}\n\nQuestion:\n{}",
        &record.id.0.simple().to_string()[..8],
        record.patient.reference(),
        record.level.as_str(),
        reasons.join("; "),
        clip(record.question.as_str()),
    );
    let tail = format!(
        "\n\nDraft:\n{draft}\n\nApprove sends the draft; Edit: reply to this card with the answer to send; Reject sends the standard advice (or reply \"/reject your note\")."
    );
    let assessment = record.assessment.as_str().trim();
    let assessment = if assessment.is_empty() {
        String::new()
    } else {
        let room = CARD_LIMIT
            .saturating_sub(utf16_len(&head) + utf16_len(&tail) + 2)
            .max(CARD_ASSESSMENT_MIN);
        format!("\n\n{}", clip_to(assessment, room))
    };
    format!("{head}{assessment}{tail}")
}

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

pub(super) fn card_buttons(id: EscalationId) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new([[
        InlineKeyboardButton::callback("Approve", format!("approve:{}", id.0)),
        InlineKeyboardButton::callback("Edit", format!("edit:{}", id.0)),
        InlineKeyboardButton::callback("Reject", format!("reject:{}", id.0)),
    ]])
}

/// The card after the decision: the outcome, who decided and when; no buttons.
pub(super) fn decided_card_text(record: &EscalationRecord) -> String {
    let outcome = match record.status {
        EscalationStatus::Approved => "✅ Approved",
        EscalationStatus::Edited => "✏️ Edited",
        EscalationStatus::Rejected => "❌ Rejected",
        EscalationStatus::Expired => {
            "⌛ Expired without a decision; the patient got the fallback advice"
        }
        EscalationStatus::Pending => "Pending",
    };
    let who = record
        .decided_by
        .map(|d| format!(" by {}", d.0))
        .unwrap_or_default();
    let when = record
        .decided_at
        .map(|t| format!(" at {}", t.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    let mut text = card_text(record);
    if let Some(cut) = text.find("\n\nApprove sends the draft") {
        text.truncate(cut);
    }
    format!("{text}\n\n{outcome}{who}{when}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Plaintext;
    use crate::domain::{PatientId, TriageLevel};

    fn record(question: &str, assessment: &str, draft: &str) -> EscalationRecord {
        EscalationRecord {
            id: EscalationId(uuid::Uuid::new_v4()),
            patient: PatientId(uuid::Uuid::new_v4()),
            status: EscalationStatus::Pending,
            level: TriageLevel::Routine,
            reasons: vec!["interaction".into(), "medication_question".into()],
            question: Plaintext::new(question),
            draft: Plaintext::new(draft),
            assessment: Plaintext::new(assessment),
            final_text: None,
            created_at: chrono::Utc::now(),
            expires_at: chrono::Utc::now(),
            decided_by: None,
            decided_at: None,
        }
    }

    #[test]
    fn a_card_with_long_medicines_stays_within_telegrams_limit_and_is_cut_at_a_word() {
        let interaction = "⚠ Interaction (major): warfarin + ibuprofen. NSAIDs inhibit platelet function and injure the gastric mucosa. What to do: avoid; use paracetamol. [BNF Appendix 1]\n";
        let medicines = format!(
            "Medicines (from the patient's /meds list):\nTakes: {}\n{}",
            vec!["warfarin"; 60].join(", "),
            interaction.repeat(30)
        );
        let long = "word ".repeat(2000);
        let text = card_text(&record(&long, &medicines, &long));
        assert!(
            text.encode_utf16().count() <= 4096,
            "{} units",
            text.encode_utf16().count()
        );
        assert!(text.contains("Medicines (from the patient's /meds list):"));
        assert!(text.contains("…(cut)"));
        assert!(text.contains("Why: a medicine named interacts"));
        assert!(text.ends_with("(or reply \"/reject your note\")."));
        // Every cut ends a whole word of what was cut.
        let words: std::collections::HashSet<&str> = long
            .split_whitespace()
            .chain(medicines.split_whitespace())
            .collect();
        for piece in text
            .split(" …(cut)")
            .filter(|p| !p.contains("Approve sends"))
        {
            let last = piece.split_whitespace().last().unwrap_or_default();
            assert!(words.contains(last), "cut mid-word: {last:?}");
        }
        // Characters that take two UTF-16 units (emoji) count twice.
        let emoji = "😷🤒".repeat(1500);
        let text = card_text(&record(&emoji, &emoji, &emoji));
        assert!(
            text.encode_utf16().count() <= 4096,
            "{}",
            text.encode_utf16().count()
        );
        // In Chinese too.
        let chinese = "华法林与布洛芬合用增加出血风险。".repeat(400);
        let text = card_text(&record(&chinese, &chinese, &chinese));
        assert!(text.encode_utf16().count() <= 4096);

        // A short card is not cut at all.
        let text = card_text(&record(
            "Can I take ibuprofen?",
            &medicines.chars().take(200).collect::<String>(),
            "Please ask your doctor.",
        ));
        assert!(!text.contains("(cut)"));
    }
}
