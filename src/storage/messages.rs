//! A patient's conversation: each message encrypted under the patient's data key and bound to its row.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::audit::{self, Actor, AuditAction};
use super::{StorageError, Store};
use crate::crypto::{Binding, DataKey, Plaintext, Purpose, Sealed};
use crate::domain::{MessageId, PatientId, Role};

/// One message, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: MessageId,
    pub role: Role,
    pub text: Plaintext,
    pub at: DateTime<Utc>,
}

/// Why a history is read; recorded in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPurpose {
    /// Building the model's context for an answer.
    Context,
    /// The patient asked for their history.
    History,
    /// An admin export.
    Export,
    /// A doctor reviewing an escalation.
    Review,
}

impl ReadPurpose {
    fn as_str(self) -> &'static str {
        match self {
            ReadPurpose::Context => "context",
            ReadPurpose::History => "history",
            ReadPurpose::Export => "export",
            ReadPurpose::Review => "review",
        }
    }
}

/// Encrypts and stores one message on `conn` (inside the caller's transaction, if any).
pub(crate) async fn insert_message(
    conn: &mut PgConnection,
    key: &DataKey,
    patient: PatientId,
    role: Role,
    text: &Plaintext,
) -> Result<MessageId, StorageError> {
    let id = MessageId(Uuid::new_v4());
    let sealed = key.encrypt(text, &Binding::new(Purpose::Message, patient, id.0))?;
    sqlx::query(
        "INSERT INTO messages (id, patient_id, role, nonce, ciphertext) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.0)
    .bind(patient.0)
    .bind(role.as_str())
    .bind(sealed.nonce.as_slice())
    .bind(&sealed.ciphertext)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

impl Store {
    /// Encrypts and stores one message.
    pub async fn append_message(
        &self,
        patient: PatientId,
        role: Role,
        text: &Plaintext,
    ) -> Result<MessageId, StorageError> {
        let mut conn = self.pool().acquire().await?;
        let key = self.data_key(&mut conn, patient).await?;
        insert_message(&mut conn, &key, patient, role, text).await
    }

    /// The messages of the patient's current topic (since their last `/new`), oldest first.
    pub async fn read_current_topic(
        &self,
        patient: PatientId,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let since: DateTime<Utc> =
            sqlx::query_scalar("SELECT topic_started_at FROM patients WHERE id = $1")
                .bind(patient.0)
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| StorageError::PatientNotFound(patient.reference()))?;
        self.read_messages(patient, Some(since), ReadPurpose::Context)
            .await
    }

    /// Whether a draft answering this message went to a doctor.
    pub async fn message_is_escalated(&self, message: MessageId) -> Result<bool, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM escalations WHERE question_message_id = $1)",
        )
        .bind(message.0)
        .fetch_one(self.pool())
        .await?)
    }

    /// Patients whose newest message (in their current topic, within `window`) is their own and
    /// has neither an answer nor an escalation: work a crash interrupted.
    pub async fn patients_awaiting_answer(
        &self,
        window: std::time::Duration,
    ) -> Result<Vec<PatientId>, StorageError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT newest.patient_id
             FROM (SELECT DISTINCT ON (patient_id) patient_id, id, role, created_at
                   FROM messages ORDER BY patient_id, created_at DESC, id DESC) AS newest
             JOIN patients p ON p.id = newest.patient_id
             WHERE newest.role = 'patient'
               AND newest.created_at > now() - $1
               AND newest.created_at >= p.topic_started_at
               AND NOT EXISTS (SELECT 1 FROM escalations e WHERE e.question_message_id = newest.id)",
        )
        .bind(window)
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().map(PatientId).collect())
    }

    /// Whether anything was queued for the patient after their newest message: after a crash,
    /// the "a doctor is reviewing" notice that already went out for it.
    pub async fn told_since_last_message(&self, patient: PatientId) -> Result<bool, StorageError> {
        let told: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM outbox o
                            WHERE o.patient_id = $1 AND o.destination = 'patient'
                              AND o.created_at >= (SELECT max(created_at) FROM messages
                                                   WHERE patient_id = $1 AND role = 'patient'))",
        )
        .bind(patient.0)
        .fetch_one(self.pool())
        .await?;
        Ok(told)
    }

    /// Starts a new topic: contexts built from now on leave earlier messages out. Nothing is deleted.
    pub async fn start_new_topic(&self, patient: PatientId) -> Result<(), StorageError> {
        let updated = sqlx::query("UPDATE patients SET topic_started_at = now() WHERE id = $1")
            .bind(patient.0)
            .execute(self.pool())
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StorageError::PatientNotFound(patient.reference()));
        }
        Ok(())
    }

    /// The patient's messages (since `since`, if given), oldest first, decrypted. Any message that
    /// fails authentication fails the whole read, and is recorded in the audit log: a patient must
    /// never be shown, nor a model fed, text that is not theirs.
    pub async fn read_messages(
        &self,
        patient: PatientId,
        since: Option<DateTime<Utc>>,
        purpose: ReadPurpose,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let actor = match purpose {
            ReadPurpose::Context | ReadPurpose::Review => Actor::System,
            ReadPurpose::History => Actor::Patient,
            ReadPurpose::Export => Actor::Admin,
        };
        self.read_messages_as(patient, since, purpose, actor).await
    }

    pub(crate) async fn read_messages_as(
        &self,
        patient: PatientId,
        since: Option<DateTime<Utc>>,
        purpose: ReadPurpose,
        actor: Actor,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let mut tx = self.pool().begin().await?;
        let key = self.data_key(&mut tx, patient).await?;
        let rows = sqlx::query(
            "SELECT id, role, nonce, ciphertext, created_at FROM messages
             WHERE patient_id = $1 AND ($2::timestamptz IS NULL OR created_at >= $2)
             ORDER BY created_at, id",
        )
        .bind(patient.0)
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.try_get("id")?;
            let role: String = row.try_get("role")?;
            let role = role
                .parse::<Role>()
                .map_err(|e| StorageError::Corrupt(e.to_string()))?;
            let sealed = Sealed::from_parts(row.try_get("nonce")?, row.try_get("ciphertext")?)?;
            match key.decrypt(&sealed, &Binding::new(Purpose::Message, patient, id)) {
                Ok(text) => messages.push(StoredMessage {
                    id: MessageId(id),
                    role,
                    text,
                    at: row.try_get("created_at")?,
                }),
                Err(source) => {
                    drop(tx);
                    self.record_integrity_failure(patient, "messages", id).await;
                    return Err(StorageError::Integrity {
                        record: format!("message {id}"),
                        source,
                    });
                }
            }
        }
        audit::append(
            &mut tx,
            actor,
            if purpose == ReadPurpose::Export {
                AuditAction::Export
            } else {
                AuditAction::ReadHistory
            },
            Some(patient),
            serde_json::json!({ "purpose": purpose.as_str(), "messages": messages.len() }),
        )
        .await?;
        tx.commit().await?;
        Ok(messages)
    }
}
