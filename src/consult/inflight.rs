//! Answers being written, at most one per patient. A patient's newer message supersedes the answer
//! in progress, and an emergency cancels it: either way the older draft would answer a question the
//! patient has moved on from.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use crate::domain::PatientId;

/// The claim on a patient's one answer slot. Cancelled when a newer message or an emergency
/// arrives; dropping it frees the slot if it is still this ticket's.
#[derive(Debug)]
pub struct AnswerTicket {
    patient: PatientId,
    serial: u64,
    token: CancellationToken,
    /// This answer, or one it superseded, was asked for a doctor (`/doctor`): it is reviewed.
    doctor_requested: bool,
    registry: std::sync::Weak<Registry>,
}

impl AnswerTicket {
    /// Resolves when the answer this ticket stands for is no longer wanted.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    pub fn doctor_requested(&self) -> bool {
        self.doctor_requested
    }
}

impl Drop for AnswerTicket {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.release(self.patient, self.serial);
        }
    }
}

#[derive(Debug)]
struct Slot {
    serial: u64,
    token: CancellationToken,
    doctor_requested: bool,
}

#[derive(Debug, Default)]
pub struct Registry {
    answers: Mutex<HashMap<PatientId, Slot>>,
    serial: AtomicU64,
}

impl Registry {
    /// Takes the patient's slot, cancelling the answer that held it. The new answer covers the
    /// old one's question too, so a request for a doctor carries over.
    pub fn begin(
        self: &std::sync::Arc<Self>,
        patient: PatientId,
        doctor_requested: bool,
    ) -> AnswerTicket {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let mut answers = self.answers.lock().expect("not poisoned");
        let inherited = answers
            .get(&patient)
            .is_some_and(|slot| slot.doctor_requested);
        let doctor_requested = doctor_requested || inherited;
        let previous = answers.insert(
            patient,
            Slot {
                serial,
                token: token.clone(),
                doctor_requested,
            },
        );
        drop(answers);
        if let Some(previous) = previous {
            previous.token.cancel();
        }
        AnswerTicket {
            patient,
            serial,
            token,
            doctor_requested,
            registry: std::sync::Arc::downgrade(self),
        }
    }

    /// Cancels the patient's answer in progress; whether there was one.
    pub fn cancel(&self, patient: PatientId) -> bool {
        let previous = self.answers.lock().expect("not poisoned").remove(&patient);
        previous.map(|slot| slot.token.cancel()).is_some()
    }

    fn release(&self, patient: PatientId, serial: u64) {
        let mut answers = self.answers.lock().expect("not poisoned");
        if answers
            .get(&patient)
            .is_some_and(|slot| slot.serial == serial)
        {
            answers.remove(&patient);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_newer_ticket_cancels_the_older_and_an_old_drop_keeps_the_new_slot() {
        let registry = Arc::new(Registry::default());
        let patient = PatientId(uuid::Uuid::new_v4());
        let first = registry.begin(patient, true);
        let second = registry.begin(patient, false);
        assert!(first.is_cancelled());
        assert!(!second.is_cancelled());
        assert!(
            second.doctor_requested(),
            "the superseded /doctor request carries over"
        );
        drop(first);
        // The newer answer still holds the slot: an emergency reaches it.
        assert!(registry.cancel(patient));
        assert!(second.is_cancelled());
        assert!(!registry.cancel(patient));
        let other = registry.begin(PatientId(uuid::Uuid::new_v4()), false);
        let third = registry.begin(patient, false);
        assert!(!other.is_cancelled() && !third.is_cancelled());
        assert!(!third.doctor_requested());
        drop(third);
        assert!(
            !registry.cancel(patient),
            "a finished answer frees the slot"
        );
    }
}
