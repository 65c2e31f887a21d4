//! The consultation service's storage ports, implemented on the PostgreSQL store. Errors are mapped
//! here so that no `sqlx::Error` reaches the service.

use chrono::{DateTime, Utc};

use super::{StorageError, Store};
use crate::consult::{
    ConversationStore, DoctorNoticeKind, EscalationRecord, EscalationStore, MedicationStore,
    NewEscalation, Notifier, Resolution, ResolveOutcome, StoreError, Turn,
};
use crate::crypto::Plaintext;
use crate::domain::{
    EscalationId, MedicationEntry, MedicationId, MedicationKind, MessageId, PatientId, Role,
};

impl From<StorageError> for StoreError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::PatientNotFound(_) => StoreError::UnknownPatient,
            StorageError::EscalationNotFound(_) => StoreError::UnknownEscalation,
            other => StoreError::Backend(Box::new(other)),
        }
    }
}

impl ConversationStore for Store {
    async fn record(
        &self,
        patient: PatientId,
        role: Role,
        text: &Plaintext,
    ) -> Result<MessageId, StoreError> {
        Ok(self.append_message(patient, role, text).await?)
    }

    async fn current_topic(&self, patient: PatientId) -> Result<Vec<Turn>, StoreError> {
        Ok(self
            .read_current_topic(patient)
            .await?
            .into_iter()
            .map(|m| Turn {
                id: m.id,
                role: m.role,
                text: m.text,
            })
            .collect())
    }

    async fn is_escalated(&self, message: MessageId) -> Result<bool, StoreError> {
        Ok(self.message_is_escalated(message).await?)
    }

    async fn has_consented(&self, patient: PatientId) -> Result<bool, StoreError> {
        Ok(Store::has_consented(self, patient).await?)
    }

    async fn start_new_topic(&self, patient: PatientId) -> Result<(), StoreError> {
        Ok(Store::start_new_topic(self, patient).await?)
    }
}

impl EscalationStore for Store {
    async fn open(&self, escalation: NewEscalation) -> Result<EscalationId, StoreError> {
        Ok(self.open_escalation(&escalation).await?)
    }

    async fn load(&self, id: EscalationId) -> Result<EscalationRecord, StoreError> {
        Ok(self.load_escalation(id).await?)
    }

    async fn pending(&self) -> Result<Vec<EscalationRecord>, StoreError> {
        Ok(self.pending_escalations().await?)
    }

    async fn due_for_expiry(&self, now: DateTime<Utc>) -> Result<Vec<EscalationId>, StoreError> {
        Ok(self.escalations_due(now).await?)
    }

    async fn resolve(
        &self,
        id: EscalationId,
        resolution: Resolution,
    ) -> Result<ResolveOutcome, StoreError> {
        Ok(self.resolve_escalation(id, &resolution).await?)
    }
}

impl Notifier for Store {
    async fn notify_doctors(
        &self,
        patient: PatientId,
        kind: DoctorNoticeKind,
        body: &Plaintext,
    ) -> Result<(), StoreError> {
        self.enqueue_doctor_notice(patient, kind, body).await?;
        Ok(())
    }
}

impl MedicationStore for Store {
    async fn medications(&self, patient: PatientId) -> Result<Vec<MedicationEntry>, StoreError> {
        Ok(Store::medications(self, patient).await?)
    }

    async fn add_medication(
        &self,
        patient: PatientId,
        kind: MedicationKind,
        drug: Option<&str>,
        name: &str,
    ) -> Result<MedicationEntry, StoreError> {
        Ok(Store::add_medication(self, patient, kind, drug, name).await?)
    }

    async fn remove_medication(
        &self,
        patient: PatientId,
        id: MedicationId,
    ) -> Result<bool, StoreError> {
        Ok(Store::remove_medication(self, patient, id).await?)
    }
}
