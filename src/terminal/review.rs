//! `medbot review`: a doctor at a terminal lists the drafts waiting for review and approves, edits
//! or rejects them. The same desk (and the same exactly-once decision) as the Telegram group.

use std::io::{Read, Write};

use anyhow::{Context, bail};

use crate::app::{self, LocalKey};
use crate::cli::ReviewCommand;
use crate::config::Env;
use crate::consult::{DecideError, EscalationRecord, ReviewDesk, SystemClock, Verdict};
use crate::domain::{EscalationId, TelegramUserId};
use crate::storage::{OutboxKind, Store};
use crate::terminal::chat::short_id;
use crate::triage::ReviewReason;

/// Runs one review command.
///
/// # Errors
/// Set-up failures, an unknown or ambiguous escalation id, or a decision that was already taken.
pub async fn run(env: &dyn Env, command: ReviewCommand) -> anyhow::Result<()> {
    let store = app::open_local_store(env, LocalKey::UseExisting).await?;
    let desk = ReviewDesk::new(store.clone(), SystemClock);
    let expired = desk.expire_due().await?;
    if expired > 0 {
        eprintln!(
            "{expired} escalation(s) expired without a decision; their patients got the fallback advice."
        );
    }
    let (id, doctor, verdict) = match command {
        ReviewCommand::List => return list(&store, &desk).await,
        ReviewCommand::Approve { id, doctor } => (id, doctor, Verdict::Approve),
        ReviewCommand::Edit { id, text, doctor } => {
            let text = match text {
                Some(text) => text,
                None => {
                    eprintln!("Type the answer to send instead of the draft, then Ctrl-D:");
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("Failed to read the answer from standard input")?;
                    text
                }
            };
            (id, doctor, Verdict::Edit(text))
        }
        ReviewCommand::Reject { id, note, doctor } => (id, doctor, Verdict::Reject(note)),
    };
    let escalation = resolve_id(&desk, &id).await?;
    match desk
        .decide(escalation, TelegramUserId(doctor), verdict)
        .await
    {
        Ok(status) => {
            println!(
                "Escalation {} {}; the patient has been sent the answer.",
                short_id(escalation.0),
                status.as_str()
            );
            Ok(())
        }
        Err(DecideError::AlreadyDecided(status)) => bail!(
            "escalation {} was already decided ({}); nothing was changed",
            short_id(escalation.0),
            status.as_str()
        ),
        Err(e) => Err(e.into()),
    }
}

async fn list(store: &Store, desk: &ReviewDesk<Store, SystemClock>) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let alerts: Vec<_> = store
        .unsent_doctor_notices()
        .await?
        .into_iter()
        .filter(|n| n.kind == OutboxKind::EmergencyAlert)
        .collect();
    for alert in &alerts {
        writeln!(
            out,
            "ALERT {}\n{}\n",
            alert.created_at.format("%Y-%m-%d %H:%M UTC"),
            alert.text()
        )?;
    }
    let pending = desk.pending().await?;
    if pending.is_empty() {
        writeln!(out, "No answers are waiting for review.")?;
        return Ok(());
    }
    writeln!(
        out,
        "{} answer(s) waiting for review, oldest first:",
        pending.len()
    )?;
    for record in &pending {
        print_card(&mut out, record)?;
    }
    writeln!(
        out,
        "\nDecide with: medbot review approve <id> | edit <id> --text \"...\" | reject <id> [--note \"...\"]"
    )?;
    Ok(())
}

fn print_card(out: &mut impl Write, record: &EscalationRecord) -> std::io::Result<()> {
    let reasons: Vec<String> = record
        .reasons
        .iter()
        .map(|code| ReviewReason::describe_code(code))
        .collect();
    writeln!(
        out,
        "\n── {}  patient {}  triage {}  expires {}",
        short_id(record.id.0),
        record.patient.reference(),
        record.level.as_str(),
        record.expires_at.format("%H:%M UTC")
    )?;
    writeln!(out, "why:      {}", reasons.join("; "))?;
    writeln!(out, "question: {}", record.question.as_str())?;
    let draft = record.draft.as_str();
    writeln!(
        out,
        "draft:    {}",
        if draft.is_empty() {
            "(none: the model gave no answer; edit to reply)"
        } else {
            draft
        }
    )
}

/// A full escalation id, or the first characters of a pending one.
async fn resolve_id(
    desk: &ReviewDesk<Store, SystemClock>,
    given: &str,
) -> anyhow::Result<EscalationId> {
    let given = given.trim().to_ascii_lowercase().replace('-', "");
    if let Ok(id) = uuid::Uuid::parse_str(&given) {
        return Ok(EscalationId(id));
    }
    if given.len() < 4 || !given.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("{given:?} is not an escalation id (use the id `medbot review list` shows)");
    }
    let matches: Vec<EscalationId> = desk
        .pending()
        .await?
        .into_iter()
        .map(|r| r.id)
        .filter(|id| id.0.simple().to_string().starts_with(&given))
        .collect();
    match matches[..] {
        [id] => Ok(id),
        [] => bail!("no pending escalation starts with {given} (it may have been decided already)"),
        _ => bail!("{given} matches several escalations; give more of the id"),
    }
}
