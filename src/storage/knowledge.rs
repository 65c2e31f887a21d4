//! The knowledge base's tables: public documents and their passages with embeddings. No patient
//! data, so nothing here is encrypted and no master key is needed.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{Database, StorageError};

/// A document as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KbDocument {
    pub id: Uuid,
    pub path: String,
    pub title: String,
    pub source: Option<String>,
    pub licence: Option<String>,
    pub published: Option<String>,
    pub passages: i64,
    pub imported_at: DateTime<Utc>,
    pub retired: bool,
}

/// What a re-import compares against.
#[derive(Debug, Clone)]
pub struct KbFingerprint {
    pub id: Uuid,
    pub content_sha256: Vec<u8>,
    pub retired: bool,
}

/// A document to store, with its passages and their embeddings.
#[derive(Debug, Clone)]
pub struct KbDocumentRecord<'a> {
    pub path: &'a str,
    pub title: &'a str,
    pub source: Option<&'a str>,
    pub licence: Option<&'a str>,
    pub published: Option<&'a str>,
    pub content_sha256: &'a [u8],
    /// (heading, text, embedding) in order.
    pub passages: Vec<(&'a str, &'a str, &'a [f32])>,
}

/// A stored passage with its document's attribution.
#[derive(Debug, Clone)]
pub struct KbPassage {
    pub id: i64,
    /// The document's path, as imported.
    pub path: String,
    pub title: String,
    pub source: Option<String>,
    pub heading: String,
    pub text: String,
    pub embedding: Vec<f32>,
}

impl Database {
    pub async fn kb_fingerprint(&self, path: &str) -> Result<Option<KbFingerprint>, StorageError> {
        let row = sqlx::query(
            "SELECT id, content_sha256, retired_at IS NOT NULL AS retired FROM kb_documents WHERE path = $1",
        )
        .bind(path)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(KbFingerprint {
                id: row.try_get("id")?,
                content_sha256: row.try_get("content_sha256")?,
                retired: row.try_get("retired")?,
            })
        })
        .transpose()
    }

    /// Stores a document, replacing its passages if it was there before, in one transaction.
    pub async fn kb_store_document(
        &self,
        document: &KbDocumentRecord<'_>,
    ) -> Result<Uuid, StorageError> {
        let mut tx = self.pool().begin().await?;
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO kb_documents (id, path, title, source, licence, published, content_sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (path) DO UPDATE SET title = $3, source = $4, licence = $5, published = $6,
                 content_sha256 = $7, imported_at = now(), retired_at = NULL
             RETURNING id",
        )
        .bind(Uuid::new_v4())
        .bind(document.path)
        .bind(document.title)
        .bind(document.source)
        .bind(document.licence)
        .bind(document.published)
        .bind(document.content_sha256)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM kb_passages WHERE document_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (ordinal, (heading, text, embedding)) in document.passages.iter().enumerate() {
            sqlx::query(
                "INSERT INTO kb_passages (document_id, ordinal, heading, text, embedding)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(ordinal as i32)
            .bind(*heading)
            .bind(*text)
            .bind(*embedding)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Retires every active document whose path is not in `present`; returns how many.
    pub async fn kb_retire_missing(&self, present: &[String]) -> Result<u64, StorageError> {
        Ok(sqlx::query(
            "UPDATE kb_documents SET retired_at = now() WHERE retired_at IS NULL AND NOT (path = ANY($1))",
        )
        .bind(present)
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    pub async fn kb_documents(&self) -> Result<Vec<KbDocument>, StorageError> {
        let rows = sqlx::query(
            "SELECT d.id, d.path, d.title, d.source, d.licence, d.published, d.imported_at,
                    d.retired_at IS NOT NULL AS retired, count(p.id) AS passages
             FROM kb_documents d LEFT JOIN kb_passages p ON p.document_id = d.id
             GROUP BY d.id ORDER BY d.path",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(KbDocument {
                    id: row.try_get("id")?,
                    path: row.try_get("path")?,
                    title: row.try_get("title")?,
                    source: row.try_get("source")?,
                    licence: row.try_get("licence")?,
                    published: row.try_get("published")?,
                    passages: row.try_get("passages")?,
                    imported_at: row.try_get("imported_at")?,
                    retired: row.try_get("retired")?,
                })
            })
            .collect()
    }

    /// Every passage of the documents in use.
    pub async fn kb_active_passages(&self) -> Result<Vec<KbPassage>, StorageError> {
        let rows = sqlx::query(
            "SELECT p.id, d.path, d.title, d.source, p.heading, p.text, p.embedding
             FROM kb_passages p JOIN kb_documents d ON d.id = p.document_id
             WHERE d.retired_at IS NULL ORDER BY p.id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(KbPassage {
                    id: row.try_get("id")?,
                    path: row.try_get("path")?,
                    title: row.try_get("title")?,
                    source: row.try_get("source")?,
                    heading: row.try_get("heading")?,
                    text: row.try_get("text")?,
                    embedding: row.try_get("embedding")?,
                })
            })
            .collect()
    }
}
