//! Set-up shared by the benchmarks: a scratch database on the real server, dropped afterwards.

use std::time::Duration;

use medbot::config::DatabaseUrl;
use medbot::storage::Database;

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A migrated database of its own on the server named by the first argument (default: the local
/// PostgreSQL).
pub struct ScratchDatabase {
    pub db: Database,
    admin: Database,
    name: String,
}

impl ScratchDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        let server = std::env::args()
            .nth(1)
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let server = DatabaseUrl::parse(&server)?;
        let name = format!("medbot_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&server).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(admin.pool())
            .await?;
        let db = Database::connect(&server.with_database(&name)).await?;
        db.migrate().await?;
        Ok(Self { db, admin, name })
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        self.db.pool().close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {}", self.name)))
            .execute(self.admin.pool())
            .await?;
        Ok(())
    }
}
