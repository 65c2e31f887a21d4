//! Master key rotation: every patient's data key re-wrapped under a new master key, and every lookup
//! hash re-computed, in one transaction. Messages are not touched: they are encrypted under the data
//! keys, which do not change.

use std::ops::ControlFlow;

use sqlx::Row;

use super::audit::{self, Actor, AuditAction};
use super::{Database, StorageError};
use crate::crypto::{Binding, CryptoError, MasterKey, Purpose, Sealed};
use crate::domain::{PatientId, TelegramUserId};

/// How far a rotation has come; passed to the caller's progress callback after each patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationProgress {
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationReport {
    pub from_version: i32,
    pub to_version: i32,
    pub patient_keys: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(
        "MEDBOT_MASTER_KEY is not the database's active master key (version {active}); nothing was changed"
    )]
    OldKeyNotActive { active: i32 },
    #[error("the new key is the same as a key this database has used before; generate a fresh one")]
    NewKeyReused,
    #[error("the database has no master key yet: there is nothing to rotate")]
    NothingToRotate,
    #[error(
        "the data key of patient {patient} does not open with the current master key; nothing was changed"
    )]
    Unwrap {
        patient: String,
        #[source]
        source: CryptoError,
    },
    #[error("the rotation was stopped after {done} of {total} keys; nothing was changed")]
    Interrupted { done: u64, total: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for RotationError {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.into())
    }
}

/// Re-wraps every patient data key from `old` to `new`. All or nothing: any error, or `progress`
/// returning `Break`, rolls everything back and `old` stays the active key.
pub async fn rotate_master_key(
    db: &Database,
    old: &MasterKey,
    new: &MasterKey,
    mut progress: impl FnMut(RotationProgress) -> ControlFlow<()>,
) -> Result<RotationReport, RotationError> {
    db.ensure_migrated().await?;
    let mut tx = db.pool().begin().await?;
    // Locks the key registry: a concurrent rotation waits, and a patient registered meanwhile by a
    // running bot cannot pick the old version once this commits.
    let keys = sqlx::query("SELECT version, key_id, retired_at IS NULL AS active FROM master_keys ORDER BY version FOR UPDATE")
        .fetch_all(&mut *tx)
        .await?;
    let mut active = None;
    let mut key_ids = Vec::with_capacity(keys.len());
    let mut to_version = 1;
    for row in &keys {
        if row.try_get::<bool, _>("active")? {
            active = Some(row);
        }
        key_ids.push(row.try_get::<Vec<u8>, _>("key_id")?);
        to_version = to_version.max(row.try_get::<i32, _>("version")? + 1);
    }
    let active = active.ok_or(RotationError::NothingToRotate)?;
    let from_version: i32 = active.try_get("version")?;
    if active.try_get::<Vec<u8>, _>("key_id")? != old.key_id() {
        return Err(RotationError::OldKeyNotActive {
            active: from_version,
        });
    }
    if key_ids.iter().any(|id| *id == new.key_id()) {
        return Err(RotationError::NewKeyReused);
    }
    sqlx::query("UPDATE master_keys SET retired_at = now() WHERE version = $1")
        .bind(from_version)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO master_keys (version, key_id) VALUES ($1, $2)")
        .bind(to_version)
        .bind(new.key_id().as_slice())
        .execute(&mut *tx)
        .await?;

    let rows = sqlx::query(
        "SELECT k.patient_id, k.nonce, k.wrapped_key, c.nonce AS contact_nonce, c.ciphertext AS contact
         FROM patient_keys k LEFT JOIN patient_contacts c USING (patient_id)
         ORDER BY k.patient_id FOR UPDATE OF k",
    )
    .fetch_all(&mut *tx)
    .await?;
    let total = rows.len() as u64;
    let new_lookup = new.lookup_key();
    for (done, row) in rows.into_iter().enumerate() {
        let patient = PatientId(row.try_get("patient_id")?);
        let wrapped = Sealed::from_parts(row.try_get("nonce")?, row.try_get("wrapped_key")?)
            .map_err(StorageError::from)?;
        let data_key = old
            .unwrap(&wrapped, patient)
            .map_err(|source| RotationError::Unwrap {
                patient: patient.reference(),
                source,
            })?;
        let rewrapped = new.wrap(&data_key, patient).map_err(StorageError::from)?;
        sqlx::query(
            "UPDATE patient_keys SET key_version = $2, nonce = $3, wrapped_key = $4 WHERE patient_id = $1",
        )
        .bind(patient.0)
        .bind(to_version)
        .bind(rewrapped.nonce.as_slice())
        .bind(&rewrapped.ciphertext)
        .execute(&mut *tx)
        .await?;

        // The lookup hash is keyed by the master key, so it moves with it.
        if let Some(contact_nonce) = row.try_get::<Option<Vec<u8>>, _>("contact_nonce")? {
            let sealed = Sealed::from_parts(&contact_nonce, row.try_get("contact")?)
                .map_err(StorageError::from)?;
            let contact = data_key
                .decrypt(&sealed, &Binding::new(Purpose::Contact, patient, patient.0))
                .map_err(|source| RotationError::Unwrap {
                    patient: patient.reference(),
                    source,
                })?;
            let user: TelegramUserId = serde_json::from_str::<serde_json::Value>(contact.as_str())
                .ok()
                .and_then(|v| v.get("user").and_then(|u| u.as_i64()))
                .map(TelegramUserId)
                .ok_or_else(|| StorageError::Corrupt("contact record has no user id".into()))?;
            sqlx::query("UPDATE patients SET telegram_lookup = $2 WHERE id = $1")
                .bind(patient.0)
                .bind(new_lookup.telegram_user(user))
                .execute(&mut *tx)
                .await?;
        }

        let status = RotationProgress {
            done: done as u64 + 1,
            total,
        };
        if progress(status).is_break() {
            // Dropping the transaction rolls it back.
            return Err(RotationError::Interrupted {
                done: status.done,
                total,
            });
        }
    }
    audit::append(
        &mut tx,
        Actor::Admin,
        AuditAction::KeyRotation,
        None,
        serde_json::json!({ "from_version": from_version, "to_version": to_version, "patient_keys": total }),
    )
    .await?;
    tx.commit().await?;
    Ok(RotationReport {
        from_version,
        to_version,
        patient_keys: total,
    })
}
