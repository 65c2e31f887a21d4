//! `medbot chat`: a patient at a keyboard, talking to the same consultation service the Telegram
//! bot uses, with the real model and PostgreSQL. Answers a doctor decides later (in `medbot
//! review`) are picked up from the outbox while the chat waits for input.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::app::{self, LocalKey};
use crate::config::Env;
use crate::consult::{
    ConsultationService, Progress, Reply, ReviewDesk, ServiceStore, SystemClock, wording,
};
use crate::domain::{Language, MedicationKind, PatientId, TelegramChatId, TelegramUserId};
use crate::llm::ConfiguredGenerator;
use crate::storage::Store;

/// How often the chat looks for answers from doctors while it waits for input.
const OUTBOX_POLL: Duration = Duration::from_secs(1);

/// Runs the chat until end of input or `/quit`.
///
/// # Errors
/// Set-up failures (database, key, model, drug dictionary) and a broken terminal.
pub async fn run(env: &dyn Env, patient_name: &str) -> anyhow::Result<()> {
    let store = app::open_local_store(env, LocalKey::CreateIfMissing).await?;
    let reviewer = Arc::new(app::load_reviewer(env)?);
    let generator = Arc::new(app::start_generator(env).await?);
    let settings = app::service_settings(env)?;
    let max_chars = settings.max_message_chars;
    let mut service = ConsultationService::new(
        generator.clone(),
        store.clone(),
        SystemClock,
        reviewer,
        settings,
    )
    .with_clinical_knowledge(app::clinical_knowledge(env)?);
    let grounded = match app::knowledge_source(env, &store).await {
        Some(knowledge) => {
            service = service.with_knowledge(knowledge);
            true
        }
        None => false,
    };
    let desk = ReviewDesk::new(store.clone(), SystemClock);

    let user = local_user(patient_name);
    let patient = store
        .register_patient(user, TelegramChatId(user.0), None)
        .await?
        .id;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "medbot chat: you are patient {} (model {}). Type /help for commands.",
        patient.reference(),
        generator.model_name()
    )?;
    if !grounded {
        writeln!(
            out,
            "(No knowledge base: answers come without sources. To add one: models/fetch-knowledge && medbot kb import models/knowledge)"
        )?;
    }

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    if !store.has_consented(patient).await? {
        writeln!(out, "\n{}\n", wording::consent_notice(Language::English))?;
        writeln!(
            out,
            "Press Enter to agree and continue, or Ctrl-D to leave without storing anything."
        )?;
        out.flush()?;
        if lines.next_line().await?.is_none() {
            return Ok(());
        }
        store.record_consent(patient).await?;
    }
    deliver_outbox(&store, patient).await?;

    let mut poll = tokio::time::interval(OUTBOX_POLL);
    loop {
        write!(out, "\nyou> ")?;
        out.flush()?;
        let line = loop {
            tokio::select! {
                line = lines.next_line() => break line.context("Failed to read standard input")?,
                _ = poll.tick() => {
                    if let Err(e) = desk.expire_due().await {
                        tracing::warn!(error = %e, "could not expire escalations");
                    }
                    if deliver_outbox(&store, patient).await? > 0 {
                        write!(out, "\nyou> ")?;
                        out.flush()?;
                    }
                }
            }
        };
        let Some(line) = line else { break };
        match line.trim() {
            "" => continue,
            "/quit" | "/exit" => break,
            "/help" => {
                writeln!(
                    out,
                    "/new    start a new topic (earlier messages are kept but no longer used)\n\
                     /meds   your medicines and allergies (/meds add NAMES, /meds allergy NAMES, /meds remove NAME)\n\
                     /quit   leave (answers still under review are shown next time)"
                )?;
            }
            "/new" => {
                service.start_new_topic(patient).await?;
                writeln!(out, "[new topic]")?;
            }
            text if text == "/meds" || text.starts_with("/meds ") => {
                meds(&service, patient, text["/meds".len()..].trim()).await?;
            }
            text => {
                converse(&service, patient, text, max_chars).await?;
                offer_to_save(&service, patient, text).await;
            }
        }
    }
    deliver_outbox(&store, patient).await?;
    Ok(())
}

/// One message: triage shown at once, the answer streamed as it passes review.
async fn converse<S: ServiceStore>(
    service: &ConsultationService<ConfiguredGenerator, S, SystemClock>,
    patient: PatientId,
    text: &str,
    max_chars: usize,
) -> anyhow::Result<()> {
    let mut streamed = String::new();
    let mut show = |step: Progress<'_>| {
        let mut out = std::io::stdout();
        let _ = match step {
            Progress::Triaged(assessment) => writeln!(
                out,
                "[triage: {} ({})]",
                assessment.level.as_str(),
                assessment.reason_codes().join(", ")
            ),
            Progress::Partial(visible) => {
                let new = visible.get(streamed.len()..).unwrap_or_default();
                streamed = visible.to_owned();
                write!(out, "{new}")
            }
            Progress::ReviewRequired(notice) => writeln!(out, "\n[review] {notice}"),
        };
        let _ = out.flush();
    };
    let outcome = service.handle(patient, text, &mut show).await;
    let mut out = std::io::stdout();
    match outcome {
        Ok(outcome) => match outcome.reply {
            Reply::Emergency { text } => writeln!(out, "{text}")?,
            Reply::Answer { text } => match text.strip_prefix(streamed.as_str()) {
                Some(rest) => writeln!(out, "{rest}")?,
                None => writeln!(out, "{text}")?,
            },
            Reply::UnderReview { escalation, .. } => writeln!(
                out,
                "[waiting for a doctor: escalation {}; the answer will appear here]",
                short_id(escalation.0)
            )?,
            // The terminal waits for each answer, so nothing overtakes it; kept for completeness.
            Reply::Superseded => writeln!(out, "\n[stopped: answering your newer message]")?,
        },
        Err(e) => {
            tracing::warn!(error = %e, "message not handled");
            writeln!(
                out,
                "{}",
                e.patient_text(Language::of_text(text), max_chars)
            )?;
        }
    }
    Ok(())
}

/// `/meds`: the list, or adding and removing by name. A terminal has no buttons: every change is
/// a command the patient types.
async fn meds<S: ServiceStore>(
    service: &ConsultationService<ConfiguredGenerator, S, SystemClock>,
    patient: PatientId,
    rest: &str,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let (verb, names) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let names = names.trim();
    let kind = match verb {
        "add" if !names.is_empty() => Some(MedicationKind::Medicine),
        "allergy" if !names.is_empty() => Some(MedicationKind::Allergy),
        _ => None,
    };
    if let Some(kind) = kind {
        for added in service.add_medications(patient, kind, names).await? {
            let name = service.medication_name(
                added.entry.drug.as_deref(),
                &added.entry.name,
                Language::English,
            );
            if added.known {
                writeln!(out, "[saved: {name}]")?;
            } else {
                writeln!(
                    out,
                    "[saved as written: {name}; medbot does not know it and cannot check it for interactions]"
                )?;
            }
        }
    } else if verb == "remove" && !names.is_empty() {
        if service.remove_medications_named(patient, names).await? == 0 {
            writeln!(out, "[\"{names}\" is not on your list]")?;
        }
    } else if !verb.is_empty() {
        writeln!(
            out,
            "/meds, /meds add NAMES, /meds allergy NAMES, /meds remove NAME"
        )?;
        return Ok(());
    }
    let list = service.medications(patient).await?;
    for (kind, title) in [
        (MedicationKind::Medicine, "Your medicines"),
        (MedicationKind::Allergy, "Your allergies"),
    ] {
        let names: Vec<String> = list
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| service.medication_name(e.drug.as_deref(), &e.name, Language::English))
            .collect();
        writeln!(
            out,
            "{title}: {}",
            if names.is_empty() {
                "none saved".to_owned()
            } else {
                names.join(", ")
            }
        )?;
    }
    Ok(())
}

/// What the message says the patient takes, with the command that saves it: nothing is saved
/// unless they type it.
async fn offer_to_save<S: ServiceStore>(
    service: &ConsultationService<ConfiguredGenerator, S, SystemClock>,
    patient: PatientId,
    text: &str,
) {
    if service.emergency_advice(text).is_some() {
        return;
    }
    let Ok(proposals) = service.medication_proposals(patient, text).await else {
        return;
    };
    let mut out = std::io::stdout();
    for p in proposals {
        let name = service.medication_name(Some(&p.drug), "", Language::English);
        let command = match p.kind {
            MedicationKind::Medicine => "add",
            MedicationKind::Allergy => "allergy",
        };
        // The id, spaced, is a name medbot always resolves back to the same entry.
        let typed = p.drug.replace('_', " ");
        let _ = writeln!(
            out,
            "[to save {name} to your list for the doctors' checks: /meds {command} {typed}]"
        );
    }
}

/// Prints what doctors decided since last time; returns how many answers there were.
async fn deliver_outbox(store: &Store, patient: PatientId) -> anyhow::Result<usize> {
    let items = store.take_patient_outbox(patient).await?;
    let mut out = std::io::stdout();
    for item in &items {
        writeln!(out, "\n[from the doctors' review]\n{}", item.text())?;
    }
    out.flush()?;
    Ok(items.len())
}

/// The terminal patient: a negative id, which no Telegram user has, derived from a name so that
/// several local patients can be tried side by side.
fn local_user(name: &str) -> TelegramUserId {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let n = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    TelegramUserId(-(n & i64::MAX).max(1))
}

/// The first 8 hex digits of an id, as the review terminal shows it.
pub fn short_id(id: uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_users_are_negative_and_stable() {
        assert!(local_user("local").0 < 0);
        assert_eq!(local_user("alice"), local_user("alice"));
        assert_ne!(local_user("alice"), local_user("bob"));
    }
}
