//! Escalations: drafts waiting for a doctor, and their one-time decisions.
//!
//! The draft, the doctor's text and the question are encrypted under the patient's key. A decision
//! is one transaction: the conditional `UPDATE … WHERE status = 'pending'` (the row lock makes
//! exactly one concurrent decision win), the reply in the patient's conversation, the reply and the
//! card update in the outbox, and the audit row.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::audit::{self, Actor, AuditAction};
use super::messages::insert_message;
use super::outbox::{OutboxKind, insert_outbox};
use super::{StorageError, Store};
use crate::consult::{EscalationRecord, NewEscalation, Resolution, ResolveOutcome};
use crate::crypto::{Binding, DataKey, Plaintext, Purpose};
use crate::domain::{EscalationId, EscalationStatus, PatientId, TelegramUserId, TriageLevel};

const SELECT_ESCALATION: &str = "
    SELECT e.id, e.patient_id, e.status, e.triage_level, e.reasons, e.draft_nonce,
           e.draft_ciphertext, e.assessment_nonce, e.assessment_ciphertext, e.final_nonce, e.final_ciphertext, e.created_at, e.expires_at,
           e.decided_by, e.decided_at, e.question_message_id,
           m.nonce AS question_nonce, m.ciphertext AS question_ciphertext
    FROM escalations e LEFT JOIN messages m ON m.id = e.question_message_id";

impl Store {
    /// Stores a pending escalation and queues its card for the doctors, in one transaction.
    pub async fn open_escalation(
        &self,
        escalation: &NewEscalation,
    ) -> Result<EscalationId, StorageError> {
        let id = EscalationId(Uuid::new_v4());
        let patient = escalation.patient;
        let mut tx = self.pool().begin().await?;
        let key = self.data_key(&mut tx, patient).await?;
        let draft = key.encrypt(
            &escalation.draft,
            &Binding::new(Purpose::EscalationDraft, patient, id.0),
        )?;
        let assessment = key.encrypt(
            &escalation.assessment,
            &Binding::new(Purpose::EscalationAssessment, patient, id.0),
        )?;
        let reasons: Vec<&str> = escalation.reasons.iter().map(|r| r.as_str()).collect();
        sqlx::query(
            "INSERT INTO escalations (id, patient_id, question_message_id, triage_level, reasons,
                                      draft_nonce, draft_ciphertext, expires_at,
                                      assessment_nonce, assessment_ciphertext)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.0)
        .bind(patient.0)
        .bind(escalation.question.0)
        .bind(escalation.level.as_str())
        .bind(serde_json::json!(reasons))
        .bind(draft.nonce.as_slice())
        .bind(&draft.ciphertext)
        .bind(escalation.expires_at)
        .bind(assessment.nonce.as_slice())
        .bind(&assessment.ciphertext)
        .execute(&mut *tx)
        .await?;
        insert_outbox(&mut tx, patient, OutboxKind::EscalationCard, Some(id), None).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// One escalation, decrypted.
    pub async fn load_escalation(
        &self,
        id: EscalationId,
    ) -> Result<EscalationRecord, StorageError> {
        let mut conn = self.pool().acquire().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_ESCALATION} WHERE e.id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StorageError::EscalationNotFound(id.0.to_string()))?;
        self.escalation_from_row(&mut conn, &row).await
    }

    /// Every pending escalation, oldest first.
    pub async fn pending_escalations(&self) -> Result<Vec<EscalationRecord>, StorageError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_ESCALATION} WHERE e.status = 'pending' ORDER BY e.created_at, e.id"
        )))
        .fetch_all(&mut *conn)
        .await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            records.push(self.escalation_from_row(&mut conn, row).await?);
        }
        Ok(records)
    }

    /// Pending escalations whose deadline is at or before `now`.
    pub async fn escalations_due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<EscalationId>, StorageError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM escalations WHERE status = 'pending' AND expires_at <= $1
             ORDER BY expires_at, id",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().map(EscalationId).collect())
    }

    /// Takes the decision if the escalation is still pending (see the module's documentation).
    pub async fn resolve_escalation(
        &self,
        id: EscalationId,
        resolution: &Resolution,
    ) -> Result<ResolveOutcome, StorageError> {
        let patient: Uuid = sqlx::query_scalar("SELECT patient_id FROM escalations WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StorageError::EscalationNotFound(id.0.to_string()))?;
        let patient = PatientId(patient);

        let mut tx = self.pool().begin().await?;
        let key = self.data_key(&mut tx, patient).await?;
        let final_text = resolution
            .final_text
            .as_ref()
            .map(|text| key.encrypt(text, &Binding::new(Purpose::EscalationFinal, patient, id.0)))
            .transpose()?;
        let updated = sqlx::query(
            "UPDATE escalations
             SET status = $2, decided_by = $3, decided_at = $4, final_nonce = $5, final_ciphertext = $6
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id.0)
        .bind(resolution.status.as_str())
        .bind(resolution.decided_by.map(|d| d.0))
        .bind(resolution.at)
        .bind(final_text.as_ref().map(|s| s.nonce.to_vec()))
        .bind(final_text.as_ref().map(|s| s.ciphertext.clone()))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            let status: String = sqlx::query_scalar("SELECT status FROM escalations WHERE id = $1")
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await?;
            return Ok(ResolveOutcome::AlreadyDecided(parse_status(&status)?));
        }

        insert_message(
            &mut tx,
            &key,
            patient,
            resolution.reply_role,
            &resolution.reply,
        )
        .await?;
        insert_outbox(
            &mut tx,
            patient,
            OutboxKind::EscalationOutcome,
            Some(id),
            Some((&key, &resolution.reply)),
        )
        .await?;
        insert_outbox(
            &mut tx,
            patient,
            OutboxKind::EscalationDecided,
            Some(id),
            None,
        )
        .await?;
        let actor = match resolution.decided_by {
            Some(doctor) => Actor::Doctor(doctor),
            None => Actor::System,
        };
        audit::append(
            &mut tx,
            actor,
            AuditAction::DoctorDecision,
            Some(patient),
            serde_json::json!({ "escalation": id.0, "status": resolution.status.as_str() }),
        )
        .await?;
        tx.commit().await?;
        Ok(ResolveOutcome::Resolved)
    }

    /// Remembers where the escalation's card was posted, so that replies to it find it.
    pub async fn set_escalation_card(
        &self,
        id: EscalationId,
        chat: i64,
        message: i64,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE escalations SET doctor_card_chat_id = $2, doctor_card_message_id = $3 WHERE id = $1",
        )
        .bind(id.0)
        .bind(chat)
        .bind(message)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Where the escalation's card is, once posted.
    pub async fn escalation_card(
        &self,
        id: EscalationId,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let row = sqlx::query(
            "SELECT doctor_card_chat_id, doctor_card_message_id FROM escalations WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StorageError::EscalationNotFound(id.0.to_string()))?;
        Ok(row
            .try_get::<Option<i64>, _>(0)?
            .zip(row.try_get::<Option<i64>, _>(1)?))
    }

    /// The escalation whose card is `message` in `chat`.
    pub async fn escalation_by_card(
        &self,
        chat: i64,
        message: i64,
    ) -> Result<Option<EscalationId>, StorageError> {
        let id: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM escalations WHERE doctor_card_chat_id = $1 AND doctor_card_message_id = $2",
        )
        .bind(chat)
        .bind(message)
        .fetch_optional(self.pool())
        .await?;
        Ok(id.map(EscalationId))
    }

    async fn escalation_from_row(
        &self,
        conn: &mut PgConnection,
        row: &PgRow,
    ) -> Result<EscalationRecord, StorageError> {
        let id: Uuid = row.try_get("id")?;
        let patient = PatientId(row.try_get("patient_id")?);
        let key = self.data_key(conn, patient).await?;
        let draft = self
            .open_column(&key, row, "draft", Purpose::EscalationDraft, patient, id)
            .await?
            .unwrap_or_else(|| Plaintext::new(""));
        let final_text = self
            .open_column(&key, row, "final", Purpose::EscalationFinal, patient, id)
            .await?;
        let assessment = self
            .open_column(
                &key,
                row,
                "assessment",
                Purpose::EscalationAssessment,
                patient,
                id,
            )
            .await?
            .unwrap_or_else(|| Plaintext::new(""));
        let question = match row.try_get::<Option<Uuid>, _>("question_message_id")? {
            Some(message) => self
                .open_column(&key, row, "question", Purpose::Message, patient, message)
                .await?
                .unwrap_or_else(|| Plaintext::new("")),
            None => Plaintext::new(""),
        };
        let level: String = row.try_get("triage_level")?;
        let reasons: serde_json::Value = row.try_get("reasons")?;
        Ok(EscalationRecord {
            id: EscalationId(id),
            patient,
            status: parse_status(row.try_get("status")?)?,
            level: level
                .parse::<TriageLevel>()
                .map_err(|e| StorageError::Corrupt(e.to_string()))?,
            reasons: serde_json::from_value(reasons)
                .map_err(|e| StorageError::Corrupt(format!("escalation reasons: {e}")))?,
            question,
            draft,
            assessment,
            final_text,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            decided_by: row
                .try_get::<Option<i64>, _>("decided_by")?
                .map(TelegramUserId),
            decided_at: row.try_get("decided_at")?,
        })
    }

    /// Decrypts the `{prefix}_nonce` / `{prefix}_ciphertext` pair of `row`, if set.
    async fn open_column(
        &self,
        key: &DataKey,
        row: &PgRow,
        prefix: &str,
        purpose: Purpose,
        patient: PatientId,
        record: Uuid,
    ) -> Result<Option<Plaintext>, StorageError> {
        let table = if purpose == Purpose::Message {
            "messages"
        } else {
            "escalations"
        };
        let nonce = format!("{prefix}_nonce");
        let ciphertext = format!("{prefix}_ciphertext");
        let binding = Binding::new(purpose, patient, record);
        self.open_columns(key, row, (&nonce, &ciphertext), binding, table)
            .await
    }
}

fn parse_status(status: &str) -> Result<EscalationStatus, StorageError> {
    status
        .parse()
        .map_err(|e: crate::domain::UnknownValue| StorageError::Corrupt(e.to_string()))
}
