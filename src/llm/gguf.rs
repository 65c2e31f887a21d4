//! Opening a GGUF file and reading its metadata, with one clear error per way it can go wrong.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};

/// Why a model could not be loaded. Each says which file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model file {0} does not exist (run models/fetch, or set MODEL_PATH to a GGUF file)")]
    NotFound(PathBuf),
    #[error("model file {path} cannot be read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model file {path} is not a valid GGUF file (truncated or corrupt): {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "model file {path} has architecture {architecture:?}, which medbot does not support \
         (supported: llama, qwen2, gemma3)"
    )]
    UnsupportedArchitecture { path: PathBuf, architecture: String },
    #[error("model file {path} has no usable tokenizer: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("the inference engine thread stopped before reporting that the model loaded")]
    EngineDied,
}

/// A GGUF file whose header and metadata have been read (tensors are read when the model loads).
pub struct ModelFile {
    pub path: PathBuf,
    pub content: Content,
    pub reader: BufReader<File>,
}

impl std::fmt::Debug for ModelFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ModelFile {
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let file = File::open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => LoadError::NotFound(path.to_owned()),
            _ => LoadError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| LoadError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let file_len = std::fs::metadata(path)
            .map_err(|source| LoadError::Io {
                path: path.to_owned(),
                source,
            })?
            .len();
        // A truncated download still has a valid header; check that every tensor's data is there.
        let needed = content
            .tensor_infos
            .values()
            .map(|t| {
                let elems = t.shape.elem_count();
                content.tensor_data_offset
                    + t.offset
                    + (elems / t.ggml_dtype.block_size() * t.ggml_dtype.type_size()) as u64
            })
            .max()
            .unwrap_or(content.tensor_data_offset);
        if needed > file_len {
            return Err(LoadError::Corrupt {
                path: path.to_owned(),
                reason: format!("the file is {file_len} bytes but its tensors need {needed}"),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            content,
            reader,
        })
    }

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        self.metadata()
            .get(key)
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
    }

    pub fn u32(&self, key: &str) -> Option<u32> {
        self.metadata().get(key).and_then(|v| match v {
            Value::U32(n) => Some(*n),
            Value::I32(n) => u32::try_from(*n).ok(),
            Value::U64(n) => u32::try_from(*n).ok(),
            Value::I64(n) => u32::try_from(*n).ok(),
            Value::U16(n) => Some(u32::from(*n)),
            Value::U8(n) => Some(u32::from(*n)),
            _ => None,
        })
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.metadata().get(key).and_then(|v| v.to_bool().ok())
    }

    pub fn architecture(&self) -> &str {
        self.string("general.architecture").unwrap_or("")
    }

    pub fn name(&self) -> String {
        self.string("general.name")
            .map(str::to_owned)
            .unwrap_or_else(|| {
                self.path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
    }
}
