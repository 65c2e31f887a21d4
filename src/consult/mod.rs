//! The consultation: what happens between a patient's words and the answer they get, and between
//! a doctor's decision and the patient. It knows nothing of Telegram, SQL or candle; it talks to
//! the ports in [`ports`].
//!
//! ```text
//! message ─▶ triage ─▶ emergency? ─yes─▶ fixed advice now + doctors alerted (the model is not asked)
//!                          │ no
//!                          ▼
//!            store (encrypted) ─▶ context (token budget) ─▶ generator ─▶ review of the draft
//!                                                                          │
//!                                           no reasons ◀───────────────────┴──▶ reasons
//!                                  answer + "not medical advice"        escalation (pending)
//!                                                             approved | edited | rejected | expired
//! ```

mod desk;
mod inflight;
mod medication;
pub mod ports;
mod service;
pub mod testing;
pub mod wording;

pub use desk::{DecideError, ReviewDesk, Verdict};
pub use medication::{Added, MedicationProposal};
pub use ports::{
    Clock, ConversationStore, DoctorNoticeKind, Draft, DraftEvent, DraftStream, EscalationRecord,
    EscalationStore, Generator, GeneratorError, KnowledgeSource, KnowledgeUnavailable,
    MedicationStore, NewEscalation, Notifier, Reference, Resolution, ResolveOutcome, Retrieval,
    StoreError, SystemClock, Turn,
};
pub use service::{
    ConsultError, ConsultationService, Outcome, Progress, Received, Reply, ServiceSettings,
    ServiceStore, StoredMessage,
};
