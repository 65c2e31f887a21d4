//! The doctors' side of an escalation: listing what waits, taking a decision exactly once, and
//! expiring what no one decided in time. Talks only to ports.

use super::ports::{
    Clock, EscalationRecord, EscalationStore, Resolution, ResolveOutcome, StoreError,
};
use super::wording;
use crate::crypto::Plaintext;
use crate::domain::{EscalationId, EscalationStatus, Language, Role, TelegramUserId};

/// A doctor's decision on an escalated draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send the draft as it is.
    Approve,
    /// Send this text instead.
    Edit(String),
    /// Do not send the draft; send this note, or the standard advice.
    Reject(Option<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("this escalation was already decided ({})", .0.as_str())]
    AlreadyDecided(EscalationStatus),
    #[error("the draft is empty, so there is nothing to approve; edit it instead")]
    NothingToApprove,
    #[error("the replacement text is empty")]
    EmptyEdit,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where doctors' decisions are taken.
pub struct ReviewDesk<S, C> {
    store: S,
    clock: C,
}

impl<S: EscalationStore, C: Clock> ReviewDesk<S, C> {
    pub fn new(store: S, clock: C) -> Self {
        Self { store, clock }
    }

    /// One escalation.
    ///
    /// # Errors
    /// [`StoreError`] from storage.
    pub async fn escalation(&self, id: EscalationId) -> Result<EscalationRecord, StoreError> {
        self.store.load(id).await
    }

    /// Pending escalations, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] from storage.
    pub async fn pending(&self) -> Result<Vec<EscalationRecord>, StoreError> {
        self.store.pending().await
    }

    /// Takes a doctor's decision. Exactly one decision wins; a later or concurrent one gets
    /// [`DecideError::AlreadyDecided`] and changes nothing.
    ///
    /// # Errors
    /// See [`DecideError`].
    pub async fn decide(
        &self,
        id: EscalationId,
        doctor: TelegramUserId,
        verdict: Verdict,
    ) -> Result<EscalationStatus, DecideError> {
        let record = self.store.load(id).await?;
        if record.status != EscalationStatus::Pending {
            return Err(DecideError::AlreadyDecided(record.status));
        }
        let language = Language::of_text(record.question.as_str());
        let (status, final_text, reply, role) = match verdict {
            Verdict::Approve => {
                if record.draft.as_str().trim().is_empty() {
                    return Err(DecideError::NothingToApprove);
                }
                let reply = wording::approved(language, record.draft.as_str());
                (EscalationStatus::Approved, None, reply, Role::Assistant)
            }
            Verdict::Edit(text) => {
                let text = text.trim();
                if text.is_empty() {
                    return Err(DecideError::EmptyEdit);
                }
                let reply = wording::edited(language, text);
                (
                    EscalationStatus::Edited,
                    Some(Plaintext::new(text)),
                    reply,
                    Role::Doctor,
                )
            }
            Verdict::Reject(note) => {
                let note = note.filter(|n| !n.trim().is_empty());
                let reply = wording::rejected(language, note.as_deref());
                (
                    EscalationStatus::Rejected,
                    note.map(Plaintext::new),
                    reply,
                    Role::Doctor,
                )
            }
        };
        let resolution = Resolution {
            status,
            decided_by: Some(doctor),
            final_text,
            reply: Plaintext::new(reply),
            reply_role: role,
            at: self.clock.now(),
        };
        match self.store.resolve(id, resolution).await? {
            ResolveOutcome::Resolved => {
                tracing::info!(escalation = %id.0, status = status.as_str(), "escalation decided");
                Ok(status)
            }
            ResolveOutcome::AlreadyDecided(status) => Err(DecideError::AlreadyDecided(status)),
        }
    }

    /// Resolves every escalation whose time is up: the patient gets the fallback advice (never the
    /// unreviewed draft) and the doctors' card says it expired. Returns how many expired.
    ///
    /// # Errors
    /// [`StoreError`] from storage; escalations already handled stay handled.
    pub async fn expire_due(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut expired = 0;
        for id in self.store.due_for_expiry(now).await? {
            let record = self.store.load(id).await?;
            let language = Language::of_text(record.question.as_str());
            let resolution = Resolution {
                status: EscalationStatus::Expired,
                decided_by: None,
                final_text: None,
                reply: Plaintext::new(wording::review_timed_out(language)),
                reply_role: Role::System,
                at: now,
            };
            if self.store.resolve(id, resolution).await? == ResolveOutcome::Resolved {
                tracing::warn!(escalation = %id.0, "escalation expired without a decision");
                expired += 1;
            }
        }
        Ok(expired)
    }
}
