//! The database opened with a master key that has been checked against it.

use std::sync::Arc;

use sqlx::{PgConnection, PgPool, Row};

use super::{Database, StorageError, audit};
use crate::crypto::{Binding, DataKey, LookupKey, MasterKey, Plaintext, Sealed};
use crate::domain::PatientId;

/// Why the database would not open with the configured master key. Opening never writes anything
/// unless the database has no master key at all (first start).
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    #[error(
        "MEDBOT_MASTER_KEY does not match this database's master key (active key version {active}); \
         nothing was changed. Use the key this database was set up with"
    )]
    WrongKey { active: i32 },
    #[error(
        "MEDBOT_MASTER_KEY is master key version {version}, retired by `medbot keys rotate` on {retired_at}; \
         nothing was changed. Use the key the rotation installed"
    )]
    RetiredKey { version: i32, retired_at: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

struct Keys {
    master: MasterKey,
    version: i32,
    lookup: LookupKey,
}

/// medbot's database, unlocked: the only way to read or write patient data.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    keys: Arc<Keys>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("master_key_version", &self.keys.version)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Checks `master` against the database's active master key. On an empty database the key is
    /// registered as version 1.
    pub async fn unlock(db: &Database, master: MasterKey) -> Result<Self, UnlockError> {
        db.ensure_migrated().await?;
        let pool = db.pool().clone();
        let key_id = master.key_id();
        let version = match active_key(&pool).await? {
            Some((version, active_id)) if active_id == key_id => version,
            Some((active, _)) => return Err(classify_wrong_key(&pool, &key_id, active).await),
            None => {
                // First start: register this key. ON CONFLICT covers two processes starting at once.
                sqlx::query(
                    "INSERT INTO master_keys (version, key_id) VALUES (1, $1) ON CONFLICT DO NOTHING",
                )
                .bind(key_id.as_slice())
                .execute(&pool)
                .await
                .map_err(StorageError::from)?;
                match active_key(&pool).await? {
                    Some((version, active_id)) if active_id == key_id => version,
                    Some((active, _)) => return Err(UnlockError::WrongKey { active }),
                    None => {
                        return Err(StorageError::Corrupt(
                            "master_keys has only retired keys".into(),
                        )
                        .into());
                    }
                }
            }
        };
        let store = Self {
            pool,
            keys: Arc::new(Keys {
                lookup: master.lookup_key(),
                master,
                version,
            }),
        };
        store.check_a_wrapped_key().await?;
        Ok(store)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn master_key_version(&self) -> i32 {
        self.keys.version
    }

    pub(crate) fn master(&self) -> &MasterKey {
        &self.keys.master
    }

    pub(crate) fn lookup(&self) -> &LookupKey {
        &self.keys.lookup
    }

    /// Unwraps one stored data key, so that a key that matches by fingerprint but not in fact (or a
    /// damaged key table) is found at start-up rather than on a patient's message.
    async fn check_a_wrapped_key(&self) -> Result<(), StorageError> {
        let row = sqlx::query("SELECT patient_id FROM patient_keys LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            let patient = PatientId(row.try_get("patient_id")?);
            let mut conn = self.pool.acquire().await?;
            self.data_key(&mut conn, patient).await?;
        }
        Ok(())
    }

    /// The patient's data key, unwrapped. A key that fails to unwrap is an integrity failure and is
    /// written to the audit log.
    pub(crate) async fn data_key(
        &self,
        conn: &mut PgConnection,
        patient: PatientId,
    ) -> Result<DataKey, StorageError> {
        let row = sqlx::query("SELECT nonce, wrapped_key FROM patient_keys WHERE patient_id = $1")
            .bind(patient.0)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StorageError::PatientNotFound(patient.reference()))?;
        let sealed = Sealed::from_parts(row.try_get("nonce")?, row.try_get("wrapped_key")?)?;
        match self.keys.master.unwrap(&sealed, patient) {
            Ok(key) => Ok(key),
            Err(source) => {
                self.record_integrity_failure(patient, "patient_keys", patient.0)
                    .await;
                Err(StorageError::Integrity {
                    record: format!("data key of patient {}", patient.reference()),
                    source,
                })
            }
        }
    }

    /// Decrypts one stored record; a record that fails authentication is an integrity failure,
    /// written to the audit log and returned as [`StorageError::Integrity`].
    pub(crate) async fn open_sealed(
        &self,
        key: &DataKey,
        sealed: &Sealed,
        binding: Binding,
        table: &str,
    ) -> Result<Plaintext, StorageError> {
        match key.decrypt(sealed, &binding) {
            Ok(text) => Ok(text),
            Err(source) => {
                self.record_integrity_failure(binding.patient, table, binding.record)
                    .await;
                Err(StorageError::Integrity {
                    record: format!("{table} {}", binding.record),
                    source,
                })
            }
        }
    }

    /// Decrypts the nonce and ciphertext held in two columns of `row`; `None` when they are NULL.
    pub(crate) async fn open_columns(
        &self,
        key: &DataKey,
        row: &sqlx::postgres::PgRow,
        columns: (&str, &str),
        binding: Binding,
        table: &str,
    ) -> Result<Option<Plaintext>, StorageError> {
        let nonce: Option<Vec<u8>> = row.try_get(columns.0)?;
        let ciphertext: Option<Vec<u8>> = row.try_get(columns.1)?;
        let (Some(nonce), Some(ciphertext)) = (nonce, ciphertext) else {
            return Ok(None);
        };
        let sealed = Sealed::from_parts(&nonce, ciphertext)?;
        self.open_sealed(key, &sealed, binding, table)
            .await
            .map(Some)
    }

    /// Writes an integrity failure to the audit log in its own transaction (the failing operation
    /// rolls back; the record of it must not).
    pub(crate) async fn record_integrity_failure(
        &self,
        patient: PatientId,
        table: &str,
        record: uuid::Uuid,
    ) {
        tracing::error!(patient = %patient.log_tag(), table, %record, "ciphertext failed authentication");
        if let Err(e) = audit::append_now(
            &self.pool,
            audit::Actor::System,
            audit::AuditAction::IntegrityFailure,
            Some(patient),
            serde_json::json!({ "table": table, "record": record }),
        )
        .await
        {
            tracing::error!(error = %e, "could not record the integrity failure in the audit log");
        }
    }

    /// Re-computes the audit chain.
    pub async fn verify_audit_log(&self) -> Result<super::AuditReport, StorageError> {
        audit::verify(&self.pool).await
    }

    /// The newest audit rows, oldest first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<super::AuditRow>, StorageError> {
        audit::recent(&self.pool, limit).await
    }
}

async fn active_key(pool: &PgPool) -> Result<Option<(i32, [u8; 16])>, StorageError> {
    let row = sqlx::query("SELECT version, key_id FROM master_keys WHERE retired_at IS NULL")
        .fetch_optional(pool)
        .await?;
    row.map(|row| {
        let id: Vec<u8> = row.try_get("key_id")?;
        let id: [u8; 16] = id
            .try_into()
            .map_err(|_| StorageError::Corrupt("master key id is not 16 bytes".into()))?;
        Ok((row.try_get("version")?, id))
    })
    .transpose()
}

async fn classify_wrong_key(pool: &PgPool, key_id: &[u8; 16], active: i32) -> UnlockError {
    let retired = sqlx::query(
        "SELECT version, retired_at::text AS retired_at FROM master_keys WHERE key_id = $1",
    )
    .bind(key_id.as_slice())
    .fetch_optional(pool)
    .await;
    let read = |row: sqlx::postgres::PgRow| -> Result<UnlockError, sqlx::Error> {
        Ok(UnlockError::RetiredKey {
            version: row.try_get("version")?,
            retired_at: row
                .try_get::<Option<String>, _>("retired_at")?
                .unwrap_or_default(),
        })
    };
    match retired.and_then(|row| row.map(read).transpose()) {
        Ok(Some(retired)) => retired,
        Ok(None) => UnlockError::WrongKey { active },
        Err(e) => UnlockError::Storage(e.into()),
    }
}
