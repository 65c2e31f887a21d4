//! Clinical assessment: findings from the patient's words (English and Chinese, lay and clinical),
//! accumulated over a topic's turns, and a ranked differential from condition knowledge kept as data
//! (data/README.md). Knows no Telegram, SQL or model; the triage module turns its differential into
//! a level.

pub mod evaluation;
mod extract;
pub mod knowledge;
pub mod measure;
mod score;
mod shared;

pub use extract::Findings;
pub use knowledge::{ClinicalKnowledge, Condition, KnowledgeError};
pub use score::{RankedCondition, rank};
pub use shared::SharedKnowledge;
