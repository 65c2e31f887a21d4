//! The patient's medicines and allergies: each entry encrypted under the patient's data key and
//! bound to its row, like their messages.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{StorageError, Store};
use crate::crypto::{Binding, Plaintext, Purpose, Sealed};
use crate::domain::{MedicationEntry, MedicationId, MedicationKind, PatientId};

/// What is sealed: everything but the row's id, owner and time.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sealable {
    kind: MedicationKind,
    drug: Option<String>,
    name: String,
}

impl Store {
    /// The patient's medicines and allergies, oldest first.
    pub async fn medications(
        &self,
        patient: PatientId,
    ) -> Result<Vec<MedicationEntry>, StorageError> {
        let mut conn = self.pool().acquire().await?;
        self.read_medications(&mut conn, patient).await
    }

    /// The list, read on `conn` (inside the caller's transaction, if any).
    async fn read_medications(
        &self,
        conn: &mut sqlx::PgConnection,
        patient: PatientId,
    ) -> Result<Vec<MedicationEntry>, StorageError> {
        let key = self.data_key(conn, patient).await?;
        let rows = sqlx::query(
            "SELECT id, nonce, ciphertext, created_at FROM patient_medications
             WHERE patient_id = $1 ORDER BY created_at, id",
        )
        .bind(patient.0)
        .fetch_all(&mut *conn)
        .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.try_get("id")?;
            let sealed = Sealed::from_parts(row.try_get("nonce")?, row.try_get("ciphertext")?)?;
            // One entry that fails authentication (recorded in the audit log by `open_sealed`)
            // or does not parse must not take the whole list, and every answer, down with it.
            let opened = self
                .open_sealed(
                    &key,
                    &sealed,
                    Binding::new(Purpose::Medication, patient, id),
                    "patient_medications",
                )
                .await;
            let Some(entry) = opened
                .ok()
                .and_then(|text| serde_json::from_str::<Sealable>(text.as_str()).ok())
            else {
                tracing::error!(patient = %patient.log_tag(), medication = %id, "a medication entry could not be read; left out");
                continue;
            };
            let added_at: DateTime<Utc> = row.try_get("created_at")?;
            entries.push(MedicationEntry {
                id: MedicationId(id),
                kind: entry.kind,
                drug: entry.drug,
                name: entry.name,
                added_at,
            });
        }
        Ok(entries)
    }

    /// Adds an entry, unless the patient has the same one (same kind and drug, or the same name
    /// for an unknown one) already; returns it either way.
    pub async fn add_medication(
        &self,
        patient: PatientId,
        kind: MedicationKind,
        drug: Option<&str>,
        name: &str,
    ) -> Result<MedicationEntry, StorageError> {
        // One adder at a time per patient, until its insert commits: two taps on the same offer
        // (or two replicas) must not store the entry twice.
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(medication_lock(patient))
            .execute(&mut *tx)
            .await?;
        // On the same connection: a second one per adder could exhaust the pool under load.
        let existing = self.read_medications(&mut tx, patient).await?;
        if let Some(same) = existing.into_iter().find(|e| {
            e.kind == kind
                && match (drug, e.drug.as_deref()) {
                    (Some(d), Some(other)) => d == other,
                    (None, None) => e.name.eq_ignore_ascii_case(name.trim()),
                    _ => false,
                }
        }) {
            return Ok(same);
        }
        let key = self.data_key(&mut tx, patient).await?;
        let id = Uuid::new_v4();
        let sealable = Sealable {
            kind,
            drug: drug.map(str::to_owned),
            name: name.trim().to_owned(),
        };
        let json = serde_json::to_string(&sealable).expect("plain data serialises");
        let sealed = key.encrypt(
            &Plaintext::new(json),
            &Binding::new(Purpose::Medication, patient, id),
        )?;
        let added_at: DateTime<Utc> = sqlx::query_scalar(
            "INSERT INTO patient_medications (id, patient_id, nonce, ciphertext)
             VALUES ($1, $2, $3, $4) RETURNING created_at",
        )
        .bind(id)
        .bind(patient.0)
        .bind(sealed.nonce.as_slice())
        .bind(&sealed.ciphertext)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(MedicationEntry {
            id: MedicationId(id),
            kind,
            drug: sealable.drug,
            name: sealable.name,
            added_at,
        })
    }

    /// Removes one of the patient's entries; `false` when they have no such entry.
    pub async fn remove_medication(
        &self,
        patient: PatientId,
        id: MedicationId,
    ) -> Result<bool, StorageError> {
        let removed =
            sqlx::query("DELETE FROM patient_medications WHERE id = $1 AND patient_id = $2")
                .bind(id.0)
                .bind(patient.0)
                .execute(self.pool())
                .await?;
        Ok(removed.rows_affected() == 1)
    }
}

/// The advisory-lock key that serialises additions to one patient's list: the patient id's first
/// eight bytes, in a space of their own (the audit chain uses another constant key).
fn medication_lock(patient: PatientId) -> i64 {
    let bytes = patient.0.as_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    i64::from_be_bytes(first) ^ 0x6d65_6473_6c69_7374
}
