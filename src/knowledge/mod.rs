//! The knowledge base: documents imported from a folder, cut into passages, embedded with
//! all-MiniLM-L6-v2 and stored in PostgreSQL with their sources; searched by similarity.

pub mod document;
pub mod embed;
pub mod glossary;
pub mod index;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest as _;

pub use embed::{EmbedError, Embedder};
pub use index::{Hit, InMemoryIndex, VectorIndex};

use crate::storage::{Database, KbDocumentRecord, KbPassage, StorageError};

/// Passages are cut to at most this many word pieces (the model reads 256).
pub const PASSAGE_TOKENS: usize = 200;
/// Passages embedded per model call.
const BATCH: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub added: usize,
    pub replaced: usize,
    pub unchanged: usize,
    pub retired: u64,
    pub passages: usize,
    /// Files that could not be read as text, with the reason; the rest were imported.
    pub skipped: Vec<String>,
}

/// A passage found by a search, with where it comes from.
#[derive(Debug, Clone)]
pub struct Found {
    pub score: f32,
    /// The document's path, as imported.
    pub path: String,
    pub title: String,
    pub source: Option<String>,
    pub heading: String,
    pub text: String,
}

/// The knowledge base on a database, with the embedding model.
#[derive(Clone)]
pub struct KnowledgeBase {
    db: Database,
    embedder: Arc<Embedder>,
}

impl KnowledgeBase {
    pub fn new(db: Database, embedder: Arc<Embedder>) -> Self {
        Self { db, embedder }
    }

    /// Embeds on a blocking thread, so the async runtime keeps running.
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, KnowledgeError> {
        let embedder = self.embedder.clone();
        tokio::task::spawn_blocking(move || {
            let mut vectors = Vec::with_capacity(texts.len());
            for batch in texts.chunks(BATCH) {
                let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
                vectors.extend(embedder.embed(&batch)?);
            }
            Ok::<_, EmbedError>(vectors)
        })
        .await
        .map_err(|e| EmbedError::Compute(e.to_string()))?
        .map_err(Into::into)
    }

    /// Imports every Markdown or text file under `folder`. An unchanged document is skipped, a
    /// changed one has its passages replaced, and with `retire_missing` documents no longer in the
    /// folder stop being used. `progress` is called after each file with (done, total).
    ///
    /// # Errors
    /// An unreadable file, the model, or the database.
    pub async fn import(
        &self,
        folder: &Path,
        retire_missing: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ImportReport, KnowledgeError> {
        let files = documents_under(folder).map_err(|source| KnowledgeError::Read {
            path: folder.to_owned(),
            source,
        })?;
        let mut report = ImportReport::default();
        let mut present = Vec::with_capacity(files.len());
        for (done, file) in files.iter().enumerate() {
            let relative = file
                .strip_prefix(folder)
                .unwrap_or(file)
                .to_string_lossy()
                .into_owned();
            present.push(relative.clone());
            let text = match std::fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) => {
                    // One unreadable file (not UTF-8, no permission) must not stop the import.
                    report.skipped.push(format!("{relative}: {e}"));
                    progress(done + 1, files.len());
                    continue;
                }
            };
            let sha = sha2::Sha256::digest(text.as_bytes()).to_vec();
            let before = self.db.kb_fingerprint(&relative).await?;
            if before
                .as_ref()
                .is_some_and(|b| b.content_sha256 == sha && !b.retired)
            {
                report.unchanged += 1;
                progress(done + 1, files.len());
                continue;
            }
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().replace(['_', '-'], " "))
                .unwrap_or_default();
            let document = document::parse(&text, &stem);
            let embedder = self.embedder.clone();
            let passages = document::passages(&document, PASSAGE_TOKENS, &move |t| {
                embedder.count_tokens(t)
            });
            let vectors = self
                .embed(
                    passages
                        .iter()
                        .map(|p| p.embedding_text(&document.title))
                        .collect(),
                )
                .await?;
            self.db
                .kb_store_document(&KbDocumentRecord {
                    path: &relative,
                    title: &document.title,
                    source: document.source.as_deref(),
                    licence: document.licence.as_deref(),
                    published: document.published.as_deref(),
                    content_sha256: &sha,
                    passages: passages
                        .iter()
                        .zip(&vectors)
                        .map(|(p, v)| (p.heading.as_str(), p.text.as_str(), v.as_slice()))
                        .collect(),
                })
                .await?;
            report.passages += passages.len();
            if before.is_some() {
                report.replaced += 1;
            } else {
                report.added += 1;
            }
            progress(done + 1, files.len());
        }
        if retire_missing {
            report.retired = self.db.kb_retire_missing(&present).await?;
        }
        Ok(report)
    }

    /// Every imported document, retired ones included.
    ///
    /// # Errors
    /// The database.
    pub async fn documents(&self) -> Result<Vec<crate::storage::KbDocument>, KnowledgeError> {
        Ok(self.db.kb_documents().await?)
    }

    /// Loads the passages in use into an index, for searching.
    ///
    /// # Errors
    /// The database.
    pub async fn load(&self) -> Result<LoadedKnowledge, KnowledgeError> {
        let passages = self.db.kb_active_passages().await?;
        let mut index = InMemoryIndex::new(self.embedder.dimensions());
        for passage in &passages {
            index.insert(passage.id, &passage.embedding);
        }
        Ok(LoadedKnowledge {
            passages,
            index,
            base: self.clone(),
        })
    }
}

/// The knowledge base loaded for searching.
pub struct LoadedKnowledge {
    passages: Vec<KbPassage>,
    index: InMemoryIndex,
    base: KnowledgeBase,
}

impl LoadedKnowledge {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The `k` passages most similar to `query`, best first.
    ///
    /// # Errors
    /// The embedding model.
    pub async fn search(&self, query: &str, k: usize) -> Result<Vec<Found>, KnowledgeError> {
        let vector = self
            .base
            .embed(vec![glossary::expand(query)])
            .await?
            .pop()
            .unwrap_or_default();
        Ok(self.rank(&vector, k))
    }

    /// Ranks by a query vector already computed.
    pub fn rank(&self, query: &[f32], k: usize) -> Vec<Found> {
        self.index
            .top(query, k)
            .into_iter()
            .filter_map(|hit| {
                let i = self
                    .passages
                    .binary_search_by_key(&hit.passage, |p| p.id)
                    .ok()?;
                let p = &self.passages[i];
                Some(Found {
                    score: hit.score,
                    path: p.path.clone(),
                    title: p.title.clone(),
                    source: p.source.clone(),
                    heading: p.heading.clone(),
                    text: p.text.clone(),
                })
            })
            .collect()
    }
}

/// How long a loaded index is used before the database is read again (imports show up after this).
const RELOAD_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// The knowledge base as the consultation's `KnowledgeSource`: the index is loaded on first use and
/// reloaded every few minutes, so that an import reaches a running bot.
pub struct CachedKnowledge {
    base: KnowledgeBase,
    loaded: tokio::sync::RwLock<Option<(std::time::Instant, Arc<LoadedKnowledge>)>>,
}

impl CachedKnowledge {
    pub fn new(base: KnowledgeBase) -> Self {
        Self {
            base,
            loaded: tokio::sync::RwLock::new(None),
        }
    }

    async fn current(&self) -> Result<Arc<LoadedKnowledge>, KnowledgeError> {
        if let Some((at, loaded)) = self.loaded.read().await.as_ref()
            && at.elapsed() < RELOAD_AFTER
        {
            return Ok(loaded.clone());
        }
        let loaded = Arc::new(self.base.load().await?);
        *self.loaded.write().await = Some((std::time::Instant::now(), loaded.clone()));
        Ok(loaded)
    }
}

impl crate::consult::KnowledgeSource for CachedKnowledge {
    fn retrieve<'a>(&'a self, query: &'a str, k: usize) -> crate::consult::Retrieval<'a> {
        Box::pin(async move {
            let unavailable =
                |e: KnowledgeError| crate::consult::KnowledgeUnavailable(e.to_string());
            let loaded = self.current().await.map_err(unavailable)?;
            let found = loaded.search(query, k).await.map_err(unavailable)?;
            Ok(found
                .into_iter()
                .map(|f| crate::consult::Reference {
                    title: f.title,
                    source: f.source,
                    heading: f.heading,
                    text: f.text,
                    score: f.score,
                })
                .collect())
        })
    }
}

/// Markdown and text files under `folder`, sorted, hidden files left out.
fn documents_under(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|e| matches!(e.to_str(), Some("md" | "markdown" | "txt")))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}
