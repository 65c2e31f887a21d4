//! The outbox: messages waiting to be delivered, written in the same transaction as the work that
//! produced them, so that a crash loses nothing. Bodies are encrypted under the patient's key and
//! bound to the row's `record_id`; the doctors' cards carry no body (they are rendered from the
//! escalation when sent).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{StorageError, Store};
use crate::consult::DoctorNoticeKind;
use crate::crypto::{Binding, DataKey, Plaintext, Purpose};
use crate::domain::{EscalationId, PatientId};

/// What an outbox row is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// A new escalation: the card with Approve / Edit / Reject, for the doctors.
    EscalationCard,
    /// An escalation was decided or expired: update its card.
    EscalationDecided,
    /// The answer a decision produced, for the patient.
    EscalationOutcome,
    /// A patient's message was triaged as an emergency.
    EmergencyAlert,
    /// A reply to the patient that needs no decision (an answer, a notice).
    PatientReply,
    /// Emergency advice for the patient: sent before everything else.
    EmergencyAdvice,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::EscalationCard => "escalation_card",
            OutboxKind::EscalationDecided => "escalation_decided",
            OutboxKind::EscalationOutcome => "escalation_outcome",
            OutboxKind::EmergencyAlert => DoctorNoticeKind::EmergencyAlert.as_str(),
            OutboxKind::PatientReply => "patient_reply",
            OutboxKind::EmergencyAdvice => "emergency_advice",
        }
    }

    /// Higher goes first: an emergency's advice and its alert before answers, cards and notices.
    fn priority(self) -> i16 {
        match self {
            OutboxKind::EmergencyAdvice | OutboxKind::EmergencyAlert => 10,
            _ => 0,
        }
    }

    fn destination(self) -> &'static str {
        match self {
            OutboxKind::EscalationOutcome
            | OutboxKind::PatientReply
            | OutboxKind::EmergencyAdvice => "patient",
            OutboxKind::EscalationCard
            | OutboxKind::EscalationDecided
            | OutboxKind::EmergencyAlert => "doctors",
        }
    }
}

impl std::str::FromStr for OutboxKind {
    type Err = crate::domain::UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            OutboxKind::EscalationCard,
            OutboxKind::EscalationDecided,
            OutboxKind::EscalationOutcome,
            OutboxKind::EmergencyAlert,
            OutboxKind::PatientReply,
            OutboxKind::EmergencyAdvice,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| crate::domain::UnknownValue(s.to_owned()))
    }
}

impl From<DoctorNoticeKind> for OutboxKind {
    fn from(kind: DoctorNoticeKind) -> Self {
        match kind {
            DoctorNoticeKind::EmergencyAlert => OutboxKind::EmergencyAlert,
        }
    }
}

/// A queued message, decrypted.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub kind: OutboxKind,
    pub patient: Option<PatientId>,
    pub escalation: Option<EscalationId>,
    /// The text, for kinds that carry one (cards are rendered from their escalation).
    pub body: Option<Plaintext>,
    /// A message of the bot's that this one replaces (the one that showed the streamed draft).
    pub edit_message_id: Option<i64>,
    /// Delivery attempts so far, this one included.
    pub attempts: i32,
    /// Pieces of a split text already delivered (a retry goes on from the next one).
    pub pieces_sent: i32,
    /// The Telegram message of the last piece delivered.
    pub last_piece_message_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl OutboxItem {
    /// The body's text, or "" for kinds without one.
    pub fn text(&self) -> &str {
        self.body.as_ref().map(|b| b.as_str()).unwrap_or_default()
    }
}

const OUTBOX_COLUMNS: &str = "id, kind, patient_id, escalation_id, body_nonce, body_ciphertext, \
                              record_id, edit_message_id, attempts, created_at, pieces_sent, \
                              telegram_message_id";

/// Queues one message on `conn` (inside the caller's transaction).
pub(crate) async fn insert_outbox(
    conn: &mut PgConnection,
    patient: PatientId,
    kind: OutboxKind,
    escalation: Option<EscalationId>,
    body: Option<(&DataKey, &Plaintext)>,
) -> Result<i64, StorageError> {
    let record = Uuid::new_v4();
    let sealed = body
        .map(|(key, text)| key.encrypt(text, &Binding::new(Purpose::Outbox, patient, record)))
        .transpose()?;
    let id = sqlx::query_scalar(
        "INSERT INTO outbox (patient_id, destination, kind, escalation_id, body_nonce, body_ciphertext, record_id, priority)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(patient.0)
    .bind(kind.destination())
    .bind(kind.as_str())
    .bind(escalation.map(|e| e.0))
    .bind(sealed.as_ref().map(|s| s.nonce.to_vec()))
    .bind(sealed.as_ref().map(|s| s.ciphertext.clone()))
    .bind(record)
    .bind(kind.priority())
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

impl Store {
    /// Rows waiting to be sent (neither sent nor dropped), for the metrics.
    pub async fn outbox_backlog(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND dropped_at IS NULL",
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// Whether the database answers at all, for health checks.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    /// Queues a notice about `patient` for the doctors.
    pub async fn enqueue_doctor_notice(
        &self,
        patient: PatientId,
        kind: DoctorNoticeKind,
        body: &Plaintext,
    ) -> Result<i64, StorageError> {
        let mut conn = self.pool().acquire().await?;
        let key = self.data_key(&mut conn, patient).await?;
        insert_outbox(&mut conn, patient, kind.into(), None, Some((&key, body))).await
    }

    /// Takes every undelivered message for the patient, oldest first, and marks them sent (the
    /// terminal chat prints them at once). Concurrent takers never get the same row.
    pub async fn take_patient_outbox(
        &self,
        patient: PatientId,
    ) -> Result<Vec<OutboxItem>, StorageError> {
        let mut tx = self.pool().begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox
             WHERE patient_id = $1 AND destination = 'patient' AND sent_at IS NULL AND dropped_at IS NULL
             ORDER BY id FOR UPDATE SKIP LOCKED"
        )))
        .bind(patient.0)
        .fetch_all(&mut *tx)
        .await?;
        let items = self.outbox_items(&mut tx, &rows).await?;
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        sqlx::query(
            "UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1)",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(items)
    }

    /// Messages for the doctors not yet delivered, oldest first, decrypted. Read-only: delivering
    /// them is the Telegram sender's job.
    pub async fn unsent_doctor_notices(&self) -> Result<Vec<OutboxItem>, StorageError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox
             WHERE destination = 'doctors' AND sent_at IS NULL AND dropped_at IS NULL ORDER BY id"
        )))
        .fetch_all(&mut *conn)
        .await?;
        self.outbox_items(&mut conn, &rows).await
    }

    /// Decodes and decrypts outbox rows.
    async fn outbox_items(
        &self,
        conn: &mut sqlx::PgConnection,
        rows: &[sqlx::postgres::PgRow],
    ) -> Result<Vec<OutboxItem>, StorageError> {
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let patient = row.try_get::<Option<Uuid>, _>("patient_id")?.map(PatientId);
            let body = match patient {
                Some(patient) if row.try_get::<Option<Vec<u8>>, _>("body_nonce")?.is_some() => {
                    let key = self.data_key(conn, patient).await?;
                    self.open_body(&key, patient, row).await?
                }
                _ => None,
            };
            let kind: String = row.try_get("kind")?;
            items.push(OutboxItem {
                id: row.try_get("id")?,
                kind: kind.parse().map_err(|e: crate::domain::UnknownValue| {
                    StorageError::Corrupt(e.to_string())
                })?,
                patient,
                escalation: row
                    .try_get::<Option<Uuid>, _>("escalation_id")?
                    .map(EscalationId),
                body,
                edit_message_id: row.try_get("edit_message_id")?,
                attempts: row.try_get("attempts")?,
                pieces_sent: row.try_get("pieces_sent")?,
                last_piece_message_id: row.try_get("telegram_message_id")?,
                created_at: row.try_get("created_at")?,
            });
        }
        Ok(items)
    }

    async fn open_body(
        &self,
        key: &DataKey,
        patient: PatientId,
        row: &sqlx::postgres::PgRow,
    ) -> Result<Option<Plaintext>, StorageError> {
        let binding = Binding::new(Purpose::Outbox, patient, row.try_get("record_id")?);
        self.open_columns(
            key,
            row,
            ("body_nonce", "body_ciphertext"),
            binding,
            "outbox",
        )
        .await
    }

    /// Queues emergency advice for the patient, ahead of everything else in the outbox.
    pub async fn enqueue_emergency_advice(
        &self,
        patient: PatientId,
        text: &Plaintext,
    ) -> Result<i64, StorageError> {
        let mut conn = self.pool().acquire().await?;
        let key = self.data_key(&mut conn, patient).await?;
        insert_outbox(
            &mut conn,
            patient,
            OutboxKind::EmergencyAdvice,
            None,
            Some((&key, text)),
        )
        .await
    }

    /// Queues a reply for the patient. `edit_message_id` names a message of the bot's (the one that
    /// showed the streamed draft) that the reply replaces.
    pub async fn enqueue_patient_reply(
        &self,
        patient: PatientId,
        text: &Plaintext,
        edit_message_id: Option<i64>,
    ) -> Result<i64, StorageError> {
        let mut conn = self.pool().acquire().await?;
        let key = self.data_key(&mut conn, patient).await?;
        let id = insert_outbox(
            &mut conn,
            patient,
            OutboxKind::PatientReply,
            None,
            Some((&key, text)),
        )
        .await?;
        if edit_message_id.is_some() {
            sqlx::query("UPDATE outbox SET edit_message_id = $2 WHERE id = $1")
                .bind(id)
                .bind(edit_message_id)
                .execute(&mut *conn)
                .await?;
        }
        Ok(id)
    }

    /// Claims up to `limit` due messages, emergencies first, then oldest first, leasing them for
    /// `lease`. Messages of a
    /// patient who has since been erased are gone with them.
    pub async fn claim_due_outbox(
        &self,
        limit: i64,
        lease: std::time::Duration,
    ) -> Result<Vec<OutboxItem>, StorageError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET not_before = now() + $2, attempts = attempts + 1
             WHERE id IN (SELECT id FROM outbox WHERE sent_at IS NULL AND dropped_at IS NULL AND not_before <= now()
                          ORDER BY priority DESC, id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING {OUTBOX_COLUMNS}"
        )))
        .bind(limit)
        .bind(lease)
        .fetch_all(self.pool())
        .await?;
        let mut conn = self.pool().acquire().await?;
        let mut items = self.outbox_items(&mut conn, &rows).await?;
        items.sort_by_key(|i| (std::cmp::Reverse(i.kind.priority()), i.id));
        Ok(items)
    }

    /// Records that a message was delivered.
    pub async fn mark_outbox_sent(
        &self,
        id: i64,
        telegram_message_id: Option<i64>,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE outbox SET sent_at = now(), telegram_message_id = $2, last_error = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(telegram_message_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records that Telegram refused a message for good (the chat is gone, the request is
    /// invalid): kept, with why, and never counted as delivered.
    pub async fn mark_outbox_dropped(&self, id: i64, reason: &str) -> Result<(), StorageError> {
        sqlx::query("UPDATE outbox SET dropped_at = now(), dropped_reason = $2 WHERE id = $1")
            .bind(id)
            .bind(reason)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records that the first `pieces` pieces of a split message are delivered, the last as
    /// Telegram message `message`.
    pub async fn record_outbox_piece(
        &self,
        id: i64,
        pieces: i32,
        message: i64,
    ) -> Result<(), StorageError> {
        sqlx::query("UPDATE outbox SET pieces_sent = $2, telegram_message_id = $3 WHERE id = $1")
            .bind(id)
            .bind(pieces)
            .bind(message)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Puts a message back to be tried again at `not_before`, noting why (no message text).
    pub async fn postpone_outbox(
        &self,
        id: i64,
        not_before: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StorageError> {
        sqlx::query("UPDATE outbox SET not_before = $2, last_error = $3 WHERE id = $1")
            .bind(id)
            .bind(not_before)
            .bind(error)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
