//! The clinical knowledge a running bot assesses with: the built-in files, or a folder named by
//! `MEDBOT_CLINICAL_DATA` that is read again when one of its files changes. An edited set that
//! fails validation is reported and the last good set stays in use, so a typo never takes triage
//! down.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use super::knowledge::{ClinicalKnowledge, KnowledgeError};

#[derive(Debug)]
pub struct SharedKnowledge {
    current: RwLock<Arc<ClinicalKnowledge>>,
    folder: Option<PathBuf>,
    loaded_at: Mutex<Option<SystemTime>>,
}

impl SharedKnowledge {
    /// The knowledge built into the binary; never reloads.
    pub fn builtin() -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(ClinicalKnowledge::builtin()),
            folder: None,
            loaded_at: Mutex::new(None),
        })
    }

    /// The knowledge in `folder`, checked now.
    ///
    /// # Errors
    /// A [`KnowledgeError`] naming the file and field at fault.
    pub fn from_dir(folder: PathBuf) -> Result<Arc<Self>, KnowledgeError> {
        let modified = ClinicalKnowledge::modified(&folder);
        let knowledge = ClinicalKnowledge::from_dir(&folder)?;
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(knowledge)),
            folder: Some(folder),
            loaded_at: Mutex::new(modified),
        }))
    }

    /// The knowledge to assess with now.
    pub fn current(&self) -> Arc<ClinicalKnowledge> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the folder again if a file in it changed since the last load. `Ok(true)` when a new
    /// set is in use; on an error the previous set stays.
    ///
    /// # Errors
    /// A [`KnowledgeError`] when the changed files are invalid.
    pub fn reload_if_changed(&self) -> Result<bool, KnowledgeError> {
        let Some(folder) = &self.folder else {
            return Ok(false);
        };
        let modified = ClinicalKnowledge::modified(folder);
        let mut loaded_at = self.loaded_at.lock().unwrap_or_else(|e| e.into_inner());
        if modified == *loaded_at {
            return Ok(false);
        }
        // Remember the attempt either way: a broken file is reported once, not every poll.
        *loaded_at = modified;
        let knowledge = ClinicalKnowledge::from_dir(folder)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(knowledge);
        Ok(true)
    }

    /// Polls for changes every `every` until the task is dropped, logging what happens.
    pub async fn watch(self: Arc<Self>, every: std::time::Duration) {
        if self.folder.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match self.reload_if_changed() {
                Ok(true) => {
                    let k = self.current();
                    tracing::info!(
                        conditions = k.conditions.len(),
                        findings = k.findings.len(),
                        "clinical knowledge reloaded"
                    );
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "clinical knowledge not reloaded; the previous set stays in use")
                }
            }
        }
    }
}
