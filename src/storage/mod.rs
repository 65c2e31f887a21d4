//! PostgreSQL persistence: connection, embedded migrations, and the repositories behind the ports.
//!
//! Nothing here creates tables at run time: the schema is `migrations/`, embedded in the binary and
//! applied by `medbot migrate` (or by `medbot chat` on a fresh local database).

mod audit;
mod escalations;
mod inbox;
mod knowledge;
mod medications;
mod messages;
mod outbox;
mod patients;
mod ports;
mod rotation;
mod store;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

pub use audit::{Actor, AuditAction, AuditReport, AuditRow};
pub use inbox::UpdateReceipt;
pub use knowledge::{KbDocument, KbDocumentRecord, KbFingerprint, KbPassage};
pub use messages::{ReadPurpose, StoredMessage};
pub use outbox::{OutboxItem, OutboxKind};
pub use patients::{PatientExport, PatientSelector, RegisteredPatient};
pub use rotation::{RotationError, RotationProgress, RotationReport, rotate_master_key};
pub use store::{Store, UnlockError};

use crate::config::DatabaseUrl;
use crate::crypto::CryptoError;

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What went wrong talking to the database or with the data in it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("applying migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("no escalation {0}")]
    EscalationNotFound(String),
    #[error("no patient matches {0}")]
    PatientNotFound(String),
    #[error("stored {record} failed its integrity check (recorded in the audit log)")]
    Integrity {
        record: String,
        #[source]
        source: CryptoError,
    },
    #[error("encryption failed")]
    Crypto(#[from] CryptoError),
    #[error("the database holds a value this version does not understand: {0}")]
    Corrupt(String),
}

/// A connection pool to medbot's database.
#[derive(Clone, Debug)]
pub struct Database {
    pool: PgPool,
}

/// One migration and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

impl Database {
    /// Connects, failing fast (5 s) with the server's address (never the password) in the error.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, StorageError> {
        let options = connect_options(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|source| StorageError::Connect {
                target: url.redacted(),
                source,
            })?;
        Ok(Self { pool })
    }

    /// Connects, creating the database first when the server is reachable but the database is not
    /// there yet (the zero-configuration path of `medbot chat`).
    pub async fn connect_or_create(url: &DatabaseUrl) -> Result<Self, StorageError> {
        match Self::connect(url).await {
            Err(StorageError::Connect { source, .. }) if is_missing_database(&source) => {
                let name = url.database_name().ok_or_else(|| {
                    StorageError::Corrupt("DATABASE_URL names no database".into())
                })?;
                let admin = Self::connect(&url.with_database("postgres")).await?;
                let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
                match sqlx::query(sqlx::AssertSqlSafe(create))
                    .execute(&admin.pool)
                    .await
                {
                    Ok(_) => {}
                    // Another process created it in the meantime: fine.
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
                    Err(e) => return Err(e.into()),
                }
                admin.pool.close().await;
                Self::connect(url).await
            }
            other => other,
        }
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies every pending migration. Harmless to run again.
    pub async fn migrate(&self) -> Result<Vec<MigrationStatus>, StorageError> {
        MIGRATOR.run(&self.pool).await?;
        self.migration_status().await
    }

    /// Every migration this binary carries, and whether it has been applied.
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, StorageError> {
        let table_exists: bool =
            sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
                .fetch_one(&self.pool)
                .await?;
        let applied: Vec<i64> = if table_exists {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?
        } else {
            Vec::new()
        };
        Ok(MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                applied: applied.contains(&m.version),
            })
            .collect())
    }

    /// Fails with a clear message when migrations are pending, so that no command runs against a
    /// schema it does not know.
    pub async fn ensure_migrated(&self) -> Result<(), StorageError> {
        let pending: Vec<_> = self
            .migration_status()
            .await?
            .into_iter()
            .filter(|m| !m.applied)
            .collect();
        if pending.is_empty() {
            Ok(())
        } else {
            Err(StorageError::Corrupt(format!(
                "{} migration(s) pending; run `medbot migrate` first",
                pending.len()
            )))
        }
    }
}

fn connect_options(url: &DatabaseUrl) -> Result<PgConnectOptions, StorageError> {
    let options: PgConnectOptions =
        url.expose()
            .parse()
            .map_err(|source| StorageError::Connect {
                target: url.redacted(),
                source,
            })?;
    // Statement logging would put SQL (never parameters, but still noise) in the logs at INFO.
    Ok(options.log_statements(log::LevelFilter::Debug))
}

fn is_missing_database(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("3D000"))
}
