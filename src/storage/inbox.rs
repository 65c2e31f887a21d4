//! The inbox: each Telegram update recorded by `update_id` before it is handled, so that an update
//! Telegram sends again (after a restart, or a lost acknowledgement) is handled once.

use super::{StorageError, Store};

/// What to do with an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateReceipt {
    /// First time seen, or seen but never finished: handle it.
    Handle,
    /// Already handled: skip it.
    AlreadyHandled,
}

impl Store {
    /// Records an update before it is handled.
    pub async fn receive_update(&self, update_id: i64) -> Result<UpdateReceipt, StorageError> {
        let handled: Option<bool> = sqlx::query_scalar(
            "INSERT INTO inbox (update_id, attempts) VALUES ($1, 1)
             ON CONFLICT (update_id) DO UPDATE SET attempts = inbox.attempts + 1
             RETURNING handled_at IS NOT NULL",
        )
        .bind(update_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(if handled == Some(true) {
            UpdateReceipt::AlreadyHandled
        } else {
            UpdateReceipt::Handle
        })
    }

    /// Records that an update's handling finished (its replies are in the outbox).
    pub async fn finish_update(&self, update_id: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE inbox SET handled_at = now() WHERE update_id = $1")
            .bind(update_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
