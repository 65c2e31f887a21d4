//! The append-only audit log: every read of a history, export, erase, key rotation, integrity
//! failure and doctor decision, hash-chained so that an edited or deleted row shows.
//!
//! Rows name patients by their random id (never a Telegram id or text). A trigger refuses UPDATE,
//! DELETE and TRUNCATE; the chain catches what the trigger cannot (a superuser who disables it).

use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Row};

use super::StorageError;
use crate::domain::{PatientId, TelegramUserId};

/// Serialises appends across processes: the chain needs one writer at a time.
const AUDIT_LOCK_KEY: i64 = 0x6d65_6462_6f74_0001;
const GENESIS: [u8; 32] = [0u8; 32];

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The bot itself (building a context, delivering an answer).
    System,
    /// An operator at the command line.
    Admin,
    /// The patient, through the bot (their own /history or /forget).
    Patient,
    /// A doctor in the review group.
    Doctor(TelegramUserId),
}

impl Actor {
    fn render(self) -> String {
        match self {
            Actor::System => "system".into(),
            Actor::Admin => "admin".into(),
            Actor::Patient => "patient".into(),
            Actor::Doctor(id) => format!("doctor:{}", id.0),
        }
    }
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    ReadHistory,
    Export,
    EraseKeyDestroyed,
    Erase,
    KeyRotation,
    IntegrityFailure,
    DoctorDecision,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ReadHistory => "read_history",
            AuditAction::Export => "export",
            AuditAction::EraseKeyDestroyed => "erase_key_destroyed",
            AuditAction::Erase => "erase",
            AuditAction::KeyRotation => "key_rotation",
            AuditAction::IntegrityFailure => "integrity_failure",
            AuditAction::DoctorDecision => "doctor_decision",
        }
    }
}

/// One row as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub patient_id: Option<uuid::Uuid>,
    pub details: serde_json::Value,
}

/// The outcome of re-computing the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditReport {
    pub rows: u64,
    /// The first row whose hash does not follow from its content and predecessor.
    pub first_broken_seq: Option<i64>,
}

/// Appends one event inside the caller's transaction, so the event commits (or not) with the work it
/// describes. Takes the chain's advisory lock until that transaction ends.
pub(crate) async fn append(
    conn: &mut PgConnection,
    actor: Actor,
    action: AuditAction,
    patient: Option<PatientId>,
    details: serde_json::Value,
) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AUDIT_LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (seq, prev_hash) = match last {
        Some(row) => (
            row.try_get::<i64, _>("seq")? + 1,
            row.try_get::<Vec<u8>, _>("hash")?,
        ),
        None => (1, GENESIS.to_vec()),
    };
    // PostgreSQL keeps microseconds; hash exactly what will be read back.
    let row = AuditRow {
        seq,
        at: Utc::now().trunc_subsecs(6),
        actor: actor.render(),
        action: action.as_str().to_owned(),
        patient_id: patient.map(|p| p.0),
        details,
    };
    let hash = chain_hash(&prev_hash, &row);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, patient_id, details, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(row.seq)
    .bind(row.at)
    .bind(&row.actor)
    .bind(&row.action)
    .bind(row.patient_id)
    .bind(&row.details)
    .bind(&prev_hash)
    .bind(hash.as_slice())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Appends one event in a transaction of its own (for events that must survive the failure of the
/// work they describe, such as an integrity failure).
pub(crate) async fn append_now(
    pool: &PgPool,
    actor: Actor,
    action: AuditAction,
    patient: Option<PatientId>,
    details: serde_json::Value,
) -> Result<(), StorageError> {
    let mut tx = pool.begin().await?;
    append(&mut tx, actor, action, patient, details).await?;
    tx.commit().await?;
    Ok(())
}

fn chain_hash(prev_hash: &[u8], row: &AuditRow) -> [u8; 32] {
    // serde_json sorts object keys (no preserve_order), and jsonb round-trips the strings and
    // integers medbot writes, so this canonical form is the same before and after storage.
    let canonical = serde_json::json!([
        row.seq,
        row.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        row.actor,
        row.action,
        row.patient_id,
        row.details,
    ]);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical.to_string().as_bytes());
    hasher.finalize().into()
}

/// Re-computes the whole chain.
pub(crate) async fn verify(pool: &PgPool) -> Result<AuditReport, StorageError> {
    let rows = sqlx::query(
        "SELECT seq, at, actor, action, patient_id, details, prev_hash, hash FROM audit_log ORDER BY seq",
    )
    .fetch_all(pool)
    .await?;
    let mut expected_prev = GENESIS.to_vec();
    let mut expected_seq = 1i64;
    let mut report = AuditReport {
        rows: 0,
        first_broken_seq: None,
    };
    for row in rows {
        report.rows += 1;
        let audit = audit_row(&row)?;
        let prev: Vec<u8> = row.try_get("prev_hash")?;
        let hash: Vec<u8> = row.try_get("hash")?;
        let intact = audit.seq == expected_seq
            && prev == expected_prev
            && hash.as_slice() == chain_hash(&prev, &audit).as_slice();
        if !intact && report.first_broken_seq.is_none() {
            report.first_broken_seq = Some(audit.seq);
        }
        expected_prev = hash;
        expected_seq = audit.seq + 1;
    }
    Ok(report)
}

/// The most recent rows, newest last (for tests and `medbot audit tail`).
pub(crate) async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<AuditRow>, StorageError> {
    let rows = sqlx::query(
        "SELECT seq, at, actor, action, patient_id, details FROM
           (SELECT * FROM audit_log ORDER BY seq DESC LIMIT $1) t ORDER BY seq",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(audit_row).collect()
}

fn audit_row(row: &sqlx::postgres::PgRow) -> Result<AuditRow, StorageError> {
    Ok(AuditRow {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        patient_id: row.try_get("patient_id")?,
        details: row.try_get("details")?,
    })
}
