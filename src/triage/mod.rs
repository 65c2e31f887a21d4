//! Deterministic safety checks: triage of the patient's words (red flags, in English and Chinese)
//! and review of the model's draft before a patient sees it. No model and no I/O, so both are fast
//! and give the same answer every time.

mod lexicon;
mod patient;
mod review;
mod text;

pub use lexicon::{DrugLexicon, LexiconError};
pub use patient::{Assessment, assess};
pub use review::{ConfidencePolicy, DraftFacts, DraftReviewer, ReviewReason};
