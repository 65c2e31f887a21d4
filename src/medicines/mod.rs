//! Medicines: the drugs and classes medbot knows (English and Chinese names, brands through the
//! drug dictionary), interaction rules and allergy cross-reactivity as data (data/medicines, see
//! data/README.md), the checks that use them, and what a patient says they take or are allergic
//! to. Knows no Telegram, SQL or model; the consultation asks it, the doctor's card shows it.

mod check;
pub mod evaluation;
mod knowledge;
mod names;
mod review;

pub use check::{AllergyConflict, AllergyRisk, Interaction};
pub use knowledge::{
    Agent, AllergyRule, Drug, DrugClass, InteractionRule, MedicineKnowledge, Severity,
};
pub use names::{Mention, NameLookup, Statement, StatementKind, normalise};
pub use review::MedicationReview;

#[cfg(test)]
mod tests;
