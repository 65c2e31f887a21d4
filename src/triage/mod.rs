//! Deterministic safety checks: triage of the patient's words (red flags, in English and Chinese,
//! combined with the clinical assessment's differential) and review of the model's draft before a
//! patient sees it. No model and no I/O, so both are fast and give the same answer every time.

mod assess;
mod lexicon;
mod patient;
mod review;
pub mod rules;
pub mod text;

pub use assess::{
    Assessment, ConditionReport, DIFFERENTIAL_SIZE, FindingReport, Reason, assess, assess_topic,
};
pub use lexicon::{DrugLexicon, LexiconError};
pub use review::{ConfidencePolicy, DraftFacts, DraftReviewer, ReviewReason};
pub use rules::RedFlag;
