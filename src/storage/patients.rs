//! Patients: registration by Telegram id (found through a keyed hash), contact details, export and
//! erasure.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::audit::{self, Actor, AuditAction};
use super::messages::{ReadPurpose, StoredMessage};
use super::{StorageError, Store};
use crate::crypto::{Binding, DataKey, Plaintext, Purpose, Sealed};
use crate::domain::{PatientId, TelegramChatId, TelegramUserId};

/// How an admin names a patient on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientSelector {
    /// The patient's id (a UUID).
    Id(PatientId),
    /// The pseudonymous reference shown to doctors ("P-3f9a1c2e").
    Reference(String),
    /// A Telegram user id ("tg:123456" or just the number).
    Telegram(TelegramUserId),
}

impl FromStr for PatientSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(id) = Uuid::parse_str(s) {
            return Ok(Self::Id(PatientId(id)));
        }
        if let Some(hex) = s.strip_prefix("P-").or_else(|| s.strip_prefix("p-"))
            && hex.len() == 8
            && hex.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Ok(Self::Reference(hex.to_ascii_lowercase()));
        }
        let digits = s.strip_prefix("tg:").unwrap_or(s);
        if let Ok(id) = digits.parse::<i64>() {
            return Ok(Self::Telegram(TelegramUserId(id)));
        }
        Err(format!(
            "{s:?} is not a patient id (UUID), a reference (P-1a2b3c4d) or a Telegram user id (tg:123456)"
        ))
    }
}

impl std::fmt::Display for PatientSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Reference(hex) => write!(f, "P-{hex}"),
            Self::Telegram(user) => write!(f, "tg:{}", user.0),
        }
    }
}

/// A patient after registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisteredPatient {
    pub id: PatientId,
    /// False when the Telegram user was already a patient.
    pub created: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Contact {
    user: TelegramUserId,
    chat: TelegramChatId,
}

/// Everything medbot holds about one patient, decrypted: what `medbot patient export` prints and
/// `/history` sends.
#[derive(Debug, serde::Serialize)]
pub struct PatientExport {
    pub patient_id: PatientId,
    pub reference: String,
    pub exported_at: DateTime<Utc>,
    pub telegram_user_id: TelegramUserId,
    pub telegram_chat_id: TelegramChatId,
    pub language: Option<String>,
    pub consented_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The medicines and allergies on their /meds list.
    pub medications: Vec<crate::domain::MedicationEntry>,
    pub messages: Vec<ExportedMessage>,
}

#[derive(Debug, serde::Serialize)]
pub struct ExportedMessage {
    pub id: Uuid,
    pub role: &'static str,
    pub at: DateTime<Utc>,
    pub text: String,
}

impl From<StoredMessage> for ExportedMessage {
    fn from(m: StoredMessage) -> Self {
        Self {
            id: m.id.0,
            role: m.role.as_str(),
            at: m.at,
            text: m.text.as_str().to_owned(),
        }
    }
}

impl Store {
    /// Finds the patient for a Telegram user, creating them (with a fresh data key) on first contact.
    pub async fn register_patient(
        &self,
        user: TelegramUserId,
        chat: TelegramChatId,
        language: Option<&str>,
    ) -> Result<RegisteredPatient, StorageError> {
        if let Some(id) = self.find_patient(user).await? {
            return Ok(RegisteredPatient { id, created: false });
        }
        let id = PatientId::new_random();
        let data_key = DataKey::generate()?;
        let wrapped = self.master().wrap(&data_key, id)?;
        let contact = serde_json::to_string(&Contact { user, chat }).expect("plain struct");
        let contact = data_key.encrypt(
            &Plaintext::new(contact),
            &Binding::new(Purpose::Contact, id, id.0),
        )?;

        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO patients (id, telegram_lookup, language) VALUES ($1, $2, $3)
             ON CONFLICT (telegram_lookup) DO NOTHING",
        )
        .bind(id.0)
        .bind(self.lookup().telegram_user(user))
        .bind(language)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            // Registered concurrently by another update from the same user.
            tx.rollback().await?;
            let id = self
                .find_patient(user)
                .await?
                .ok_or_else(|| StorageError::PatientNotFound(format!("tg:{}", user.0)))?;
            return Ok(RegisteredPatient { id, created: false });
        }
        // Only under the master key that is still active: a key rotated away while this process
        // ran must not wrap new keys.
        let keyed = sqlx::query(
            "INSERT INTO patient_keys (patient_id, key_version, nonce, wrapped_key)
             SELECT $1, version, $3, $4 FROM master_keys WHERE version = $2 AND retired_at IS NULL",
        )
        .bind(id.0)
        .bind(self.master_key_version())
        .bind(wrapped.nonce.as_slice())
        .bind(&wrapped.ciphertext)
        .execute(&mut *tx)
        .await?;
        if keyed.rows_affected() != 1 {
            return Err(StorageError::Corrupt(
                "the master key was rotated while medbot was running; restart it with the new key"
                    .into(),
            ));
        }
        sqlx::query(
            "INSERT INTO patient_contacts (patient_id, nonce, ciphertext) VALUES ($1, $2, $3)",
        )
        .bind(id.0)
        .bind(contact.nonce.as_slice())
        .bind(&contact.ciphertext)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(patient = %id.log_tag(), "patient registered");
        Ok(RegisteredPatient { id, created: true })
    }

    /// The patient a Telegram user is, if any.
    pub async fn find_patient(
        &self,
        user: TelegramUserId,
    ) -> Result<Option<PatientId>, StorageError> {
        Ok(
            sqlx::query_scalar::<_, Uuid>("SELECT id FROM patients WHERE telegram_lookup = $1")
                .bind(self.lookup().telegram_user(user))
                .fetch_optional(self.pool())
                .await?
                .map(PatientId),
        )
    }

    /// Resolves an admin's way of naming a patient to the patient's id.
    pub async fn resolve_patient(
        &self,
        selector: &PatientSelector,
    ) -> Result<PatientId, StorageError> {
        let not_found = || StorageError::PatientNotFound(selector.to_string());
        match selector {
            PatientSelector::Id(id) => {
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM patients WHERE id = $1)")
                        .bind(id.0)
                        .fetch_one(self.pool())
                        .await?;
                exists.then_some(*id).ok_or_else(not_found)
            }
            PatientSelector::Telegram(user) => {
                self.find_patient(*user).await?.ok_or_else(not_found)
            }
            PatientSelector::Reference(hex) => {
                let ids: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM patients WHERE replace(id::text, '-', '') LIKE $1 || '%' LIMIT 2",
                )
                .bind(hex)
                .fetch_all(self.pool())
                .await?;
                match ids.as_slice() {
                    [id] => Ok(PatientId(*id)),
                    [] => Err(not_found()),
                    _ => Err(StorageError::PatientNotFound(format!(
                        "{selector} (ambiguous: use the full patient id)"
                    ))),
                }
            }
        }
    }

    /// Where to reach the patient on Telegram.
    pub async fn patient_contact(
        &self,
        patient: PatientId,
    ) -> Result<(TelegramUserId, TelegramChatId), StorageError> {
        let mut conn = self.pool().acquire().await?;
        let key = self.data_key(&mut conn, patient).await?;
        let row =
            sqlx::query("SELECT nonce, ciphertext FROM patient_contacts WHERE patient_id = $1")
                .bind(patient.0)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| StorageError::PatientNotFound(patient.reference()))?;
        let sealed = Sealed::from_parts(row.try_get("nonce")?, row.try_get("ciphertext")?)?;
        let text = self
            .open_sealed(
                &key,
                &sealed,
                Binding::new(Purpose::Contact, patient, patient.0),
                "patient_contacts",
            )
            .await?;
        let contact: Contact = serde_json::from_str(text.as_str())
            .map_err(|_| StorageError::Corrupt("contact record is not valid JSON".into()))?;
        Ok((contact.user, contact.chat))
    }

    /// Everything held about the patient, decrypted. Recorded in the audit log.
    pub async fn export_patient(
        &self,
        patient: PatientId,
        actor: Actor,
    ) -> Result<PatientExport, StorageError> {
        let row =
            sqlx::query("SELECT language, consented_at, created_at FROM patients WHERE id = $1")
                .bind(patient.0)
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| StorageError::PatientNotFound(patient.reference()))?;
        let (user, chat) = self.patient_contact(patient).await?;
        let messages = self
            .read_messages_as(patient, None, ReadPurpose::Export, actor)
            .await?;
        let medications = self.medications(patient).await?;
        Ok(PatientExport {
            patient_id: patient,
            reference: patient.reference(),
            exported_at: Utc::now(),
            telegram_user_id: user,
            telegram_chat_id: chat,
            language: row.try_get("language")?,
            consented_at: row.try_get("consented_at")?,
            created_at: row.try_get("created_at")?,
            medications,
            messages: messages.into_iter().map(Into::into).collect(),
        })
    }

    /// Crypto-shredding: destroys the patient's data key first (committed on its own, so that even
    /// a crash right after leaves every remaining row unreadable), then deletes every row.
    /// Running it again on a half-erased patient finishes the job.
    pub async fn erase_patient(
        &self,
        patient: PatientId,
        actor: Actor,
    ) -> Result<(), StorageError> {
        let mut tx = self.pool().begin().await?;
        let destroyed = sqlx::query("DELETE FROM patient_keys WHERE patient_id = $1")
            .bind(patient.0)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            actor,
            AuditAction::EraseKeyDestroyed,
            Some(patient),
            serde_json::json!({ "keys_destroyed": destroyed.rows_affected() }),
        )
        .await?;
        tx.commit().await?;

        let mut tx = self.pool().begin().await?;
        let deleted = sqlx::query("DELETE FROM patients WHERE id = $1")
            .bind(patient.0)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 && destroyed.rows_affected() == 0 {
            return Err(StorageError::PatientNotFound(patient.reference()));
        }
        audit::append(
            &mut tx,
            actor,
            AuditAction::Erase,
            Some(patient),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(patient = %patient.log_tag(), "patient erased");
        Ok(())
    }

    /// Whether the patient has agreed to the terms.
    pub async fn has_consented(&self, patient: PatientId) -> Result<bool, StorageError> {
        sqlx::query_scalar::<_, bool>("SELECT consented_at IS NOT NULL FROM patients WHERE id = $1")
            .bind(patient.0)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StorageError::PatientNotFound(patient.reference()))
    }

    /// Records that the patient agreed to the terms (the bot stores nothing before this).
    pub async fn record_consent(&self, patient: PatientId) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE patients SET consented_at = coalesce(consented_at, now()) WHERE id = $1",
        )
        .bind(patient.0)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_every_form() {
        let id = Uuid::new_v4();
        assert_eq!(
            id.to_string().parse::<PatientSelector>().unwrap(),
            PatientSelector::Id(PatientId(id))
        );
        assert_eq!(
            "P-1A2b3c4d".parse::<PatientSelector>().unwrap(),
            PatientSelector::Reference("1a2b3c4d".into())
        );
        assert_eq!(
            "tg:42".parse::<PatientSelector>().unwrap(),
            PatientSelector::Telegram(TelegramUserId(42))
        );
        assert_eq!(
            "42".parse::<PatientSelector>().unwrap(),
            PatientSelector::Telegram(TelegramUserId(42))
        );
        assert!("alice".parse::<PatientSelector>().is_err());
    }
}
