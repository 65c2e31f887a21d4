//! The ports of the consultation service: what it needs from the outside world, as plain traits.
//! Each has a real adapter (PostgreSQL in `storage`, the candle engine in `llm`) and a deterministic
//! test double (`consult::testing`).

use std::future::Future;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::context::{PromptMessage, TokenCounter};
use crate::crypto::Plaintext;
use crate::domain::{
    EscalationId, EscalationStatus, MedicationEntry, MedicationId, MedicationKind, MessageId,
    PatientId, Role, TelegramUserId, TriageLevel,
};
use crate::triage::ReviewReason;

// ---------------------------------------------------------------------------------------------
// Generator

/// Why the model gave no draft.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    #[error("the model is busy")]
    Busy,
    #[error("the prompt does not fit the model's context ({tokens} tokens, room for {limit})")]
    PromptTooLong { tokens: usize, limit: usize },
    #[error("the model failed: {0}")]
    Failed(String),
}

/// A finished draft and what the model knows about it.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub text: String,
    /// Log-probability of each generated token.
    pub logprobs: Vec<f32>,
    /// Generation stopped at the length limit instead of at the end of the model's turn.
    pub hit_length_limit: bool,
}

#[derive(Debug, Clone)]
pub enum DraftEvent {
    /// More text; the pieces concatenated are the draft's text. `logprobs`: those of the tokens
    /// since the previous piece (empty when the generator does not know them).
    Piece {
        text: String,
        logprobs: Vec<f32>,
    },
    Finished(Draft),
}

/// A draft as it is written. Dropping the receiver cancels the generation.
pub type DraftStream = mpsc::Receiver<Result<DraftEvent, GeneratorError>>;

/// Writes drafts. The model behind it counts tokens its own way, hence the [`TokenCounter`] bound.
pub trait Generator: TokenCounter + Send + Sync + 'static {
    /// Tokens the model can attend to, prompt and answer together.
    fn context_tokens(&self) -> usize;

    /// Starts writing a draft for `prompt`, at most `max_new_tokens` long.
    ///
    /// # Errors
    /// [`GeneratorError::Busy`] when the model's queue is full; [`GeneratorError::PromptTooLong`]
    /// when the prompt does not fit after all; [`GeneratorError::Failed`] for anything else.
    fn generate(
        &self,
        prompt: Vec<PromptMessage>,
        max_new_tokens: usize,
    ) -> impl Future<Output = Result<DraftStream, GeneratorError>> + Send;

    /// Counts these texts ahead of a prompt built from them, for a generator whose tokenizer is
    /// elsewhere (an inference server): [`TokenCounter::count`] then answers from what it
    /// learnt. One with its own tokenizer has nothing to do.
    fn prepare_counts(&self, texts: Vec<String>) -> impl Future<Output = ()> + Send {
        let _ = texts;
        std::future::ready(())
    }

    /// Whether drafts carry the log-probabilities of their tokens. Without them the model's
    /// confidence is unknown and every draft counts as unsure.
    fn knows_confidence(&self) -> bool {
        true
    }

    /// Whether drafts can be written now; `Err` says why not (for health checks): the model's
    /// thread is gone, or the inference server keeps failing.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Storage

/// What storage could not do. Adapters map their own errors here so that no `sqlx::Error` reaches
/// the service.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such patient")]
    UnknownPatient,
    #[error("no such escalation")]
    UnknownEscalation,
    #[error("storage failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One message of the patient's current topic, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub id: MessageId,
    pub role: Role,
    pub text: Plaintext,
}

/// The patient's conversation.
pub trait ConversationStore: Send + Sync + 'static {
    /// Stores one message, encrypted.
    ///
    /// # Errors
    /// [`StoreError::UnknownPatient`], or [`StoreError::Backend`] when the database fails.
    fn record(
        &self,
        patient: PatientId,
        role: Role,
        text: &Plaintext,
    ) -> impl Future<Output = Result<MessageId, StoreError>> + Send;

    /// The messages of the patient's current topic, oldest first.
    ///
    /// # Errors
    /// As for [`ConversationStore::record`].
    fn current_topic(
        &self,
        patient: PatientId,
    ) -> impl Future<Output = Result<Vec<Turn>, StoreError>> + Send;

    /// Whether a draft for this message went to a doctor.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    fn is_escalated(
        &self,
        message: MessageId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Whether the patient has agreed to the terms (nothing of theirs is stored before).
    ///
    /// # Errors
    /// As for [`ConversationStore::record`].
    fn has_consented(
        &self,
        patient: PatientId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Starts a new topic: later contexts leave out everything said before. Nothing is deleted.
    ///
    /// # Errors
    /// As for [`ConversationStore::record`].
    fn start_new_topic(
        &self,
        patient: PatientId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The patient's medicines and allergies, kept encrypted with the rest of their data.
pub trait MedicationStore: Send + Sync + 'static {
    /// The patient's entries, oldest first.
    ///
    /// # Errors
    /// [`StoreError::UnknownPatient`], or [`StoreError::Backend`].
    fn medications(
        &self,
        patient: PatientId,
    ) -> impl Future<Output = Result<Vec<MedicationEntry>, StoreError>> + Send;

    /// Adds an entry (`drug`: its id in the medicine knowledge, `None` for an unknown name), or
    /// returns the same one when the patient has it already.
    ///
    /// # Errors
    /// As for [`MedicationStore::medications`].
    fn add_medication(
        &self,
        patient: PatientId,
        kind: MedicationKind,
        drug: Option<&str>,
        name: &str,
    ) -> impl Future<Output = Result<MedicationEntry, StoreError>> + Send;

    /// Removes one entry; `false` when the patient has no such entry.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    fn remove_medication(
        &self,
        patient: PatientId,
        id: MedicationId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A draft that goes to a doctor.
#[derive(Debug, Clone)]
pub struct NewEscalation {
    pub patient: PatientId,
    pub question: MessageId,
    pub level: TriageLevel,
    pub reasons: Vec<ReviewReason>,
    pub draft: Plaintext,
    /// The clinical assessment as the doctor reads it: findings, differential, treatment options.
    pub assessment: Plaintext,
    pub expires_at: DateTime<Utc>,
}

/// An escalation as a doctor sees it.
#[derive(Debug, Clone)]
pub struct EscalationRecord {
    pub id: EscalationId,
    pub patient: PatientId,
    pub status: EscalationStatus,
    pub level: TriageLevel,
    /// Reason codes, as stored (see [`ReviewReason::as_str`]).
    pub reasons: Vec<String>,
    pub question: Plaintext,
    pub draft: Plaintext,
    /// The clinical assessment (empty for escalations opened before it existed).
    pub assessment: Plaintext,
    /// The doctor's text (edited) or note (rejected).
    pub final_text: Option<Plaintext>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decided_by: Option<TelegramUserId>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// How an escalation ends, with everything that must happen with it.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub status: EscalationStatus,
    /// `None` when medbot resolved it (expiry).
    pub decided_by: Option<TelegramUserId>,
    pub final_text: Option<Plaintext>,
    /// What the patient is sent, stored in their conversation with `reply_role`.
    pub reply: Plaintext,
    pub reply_role: Role,
    pub at: DateTime<Utc>,
}

/// Whether [`EscalationStore::resolve`] took the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveOutcome {
    Resolved,
    /// Someone else decided first; nothing was changed.
    AlreadyDecided(EscalationStatus),
}

/// Escalations and their one-time decisions.
pub trait EscalationStore: Send + Sync + 'static {
    /// Stores a pending escalation and queues its card for the doctors, together.
    ///
    /// # Errors
    /// [`StoreError::UnknownPatient`], or [`StoreError::Backend`].
    fn open(
        &self,
        escalation: NewEscalation,
    ) -> impl Future<Output = Result<EscalationId, StoreError>> + Send;

    /// One escalation, decrypted.
    ///
    /// # Errors
    /// [`StoreError::UnknownEscalation`], or [`StoreError::Backend`].
    fn load(
        &self,
        id: EscalationId,
    ) -> impl Future<Output = Result<EscalationRecord, StoreError>> + Send;

    /// Pending escalations, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    fn pending(&self) -> impl Future<Output = Result<Vec<EscalationRecord>, StoreError>> + Send;

    /// Pending escalations whose time is up at `now`.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    fn due_for_expiry(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<EscalationId>, StoreError>> + Send;

    /// Takes the decision if the escalation is still pending, and in the same transaction stores
    /// the reply in the patient's conversation, queues it for the patient, queues the update of the
    /// doctors' card and writes the audit log. Exactly one of any number of concurrent calls wins.
    ///
    /// # Errors
    /// [`StoreError::UnknownEscalation`], or [`StoreError::Backend`].
    fn resolve(
        &self,
        id: EscalationId,
        resolution: Resolution,
    ) -> impl Future<Output = Result<ResolveOutcome, StoreError>> + Send;
}

// ---------------------------------------------------------------------------------------------
// Notifications

/// Kinds of message queued for the doctors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoctorNoticeKind {
    /// A patient's message was triaged as an emergency.
    EmergencyAlert,
}

impl DoctorNoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DoctorNoticeKind::EmergencyAlert => "emergency_alert",
        }
    }
}

/// Sends messages that do not answer the patient's message in hand. Delivery is the adapter's job
/// (the outbox): queued messages survive a restart.
pub trait Notifier: Send + Sync + 'static {
    /// Queues a notice for the doctors' group about `patient`. The body may hold patient text; the
    /// adapter keeps it encrypted under the patient's key.
    ///
    /// # Errors
    /// [`StoreError::UnknownPatient`], or [`StoreError::Backend`].
    fn notify_doctors(
        &self,
        patient: PatientId,
        kind: DoctorNoticeKind,
        body: &Plaintext,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

// ---------------------------------------------------------------------------------------------
// Knowledge

/// A passage from the knowledge base that may ground an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub title: String,
    /// A URL or DOI link.
    pub source: Option<String>,
    pub heading: String,
    pub text: String,
    /// Similarity to the question, 0 to 1.
    pub score: f32,
}

/// Why no passages came back; the service answers without them.
#[derive(Debug, thiserror::Error)]
#[error("the knowledge base failed: {0}")]
pub struct KnowledgeUnavailable(pub String);

/// What [`KnowledgeSource::retrieve`] returns.
pub type Retrieval<'a> = std::pin::Pin<
    Box<dyn Future<Output = Result<Vec<Reference>, KnowledgeUnavailable>> + Send + 'a>,
>;

/// Where the service looks up passages for a question. Boxed futures: the service holds it as a
/// trait object, so that running without a knowledge base needs no extra type parameter.
pub trait KnowledgeSource: Send + Sync + 'static {
    /// The `k` passages most similar to `query`, best first.
    ///
    /// # Errors
    /// [`KnowledgeUnavailable`] when the index or the embedding model fails.
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        k: usize,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<Vec<Reference>, KnowledgeUnavailable>> + Send + 'a>,
    >;
}

// ---------------------------------------------------------------------------------------------
// Time

/// Where the service gets the time, so that tests can move it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock shared with the test that moves it.
impl<T: Clock> Clock for std::sync::Arc<T> {
    fn now(&self) -> DateTime<Utc> {
        self.as_ref().now()
    }
}
