//! The consultation: from a patient's words to what they see, and from a doctor's decision to the
//! patient's answer. Talks only to ports.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::inflight::{AnswerTicket, Registry};
use super::ports::{
    Clock, ConversationStore, DoctorNoticeKind, Draft, DraftEvent, EscalationStore, Generator,
    GeneratorError, KnowledgeSource, MedicationStore, NewEscalation, Notifier, Reference,
    StoreError,
};
use super::wording;
use crate::assessment::SharedKnowledge;
use crate::context::{self, ContextBudget, ContextError, HistoryMessage};
use crate::crypto::Plaintext;
use crate::domain::{EscalationId, Language, MessageId, PatientId, Role, TriageLevel};
use crate::triage::{self, Assessment, DraftFacts, DraftReviewer, ReviewReason};

/// Triage reads at most this much of a message (Telegram's own limit is 4096).
const TRIAGE_CHARS: usize = 20_000;

/// Everything the service needs from storage, in one bound.
pub trait ServiceStore:
    ConversationStore + EscalationStore + MedicationStore + Notifier + Clone
{
}
impl<T: ConversationStore + EscalationStore + MedicationStore + Notifier + Clone> ServiceStore
    for T
{
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// How long a draft waits for a doctor before the patient gets the fallback advice.
    pub review_timeout: chrono::Duration,
    /// Tokens kept free for the answer (and the most the model may write).
    pub answer_tokens: usize,
    /// Longer messages are refused with a kind explanation (Telegram's own limit is 4096).
    pub max_message_chars: usize,
    /// Passages looked up per question.
    pub references: usize,
    /// Passages less similar than this to the question are not used.
    pub reference_threshold: f32,
    /// Answer symptom questions from the assessment and the conditions' vetted texts instead of
    /// letting the model write: for a model too small to be trusted with medicine (the default).
    pub compose_symptom_answers: bool,
    /// The most the model may take over one answer; past it the draft goes to a doctor.
    pub answer_deadline: std::time::Duration,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            review_timeout: chrono::Duration::minutes(30),
            answer_tokens: 384,
            max_message_chars: 4000,
            references: 4,
            reference_threshold: 0.45,
            compose_symptom_answers: false,
            answer_deadline: std::time::Duration::from_secs(60),
        }
    }
}

/// What happens while a message is handled, for adapters that show progress.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// Triage is done (it takes microseconds; the model has not been asked yet).
    Triaged(&'a Assessment),
    /// A doctor will see the answer first; tell the patient now (text in the patient's language).
    ReviewRequired(&'a str),
    /// The part of the draft that may be shown so far: whole sentences that passed review.
    Partial(&'a str),
}

/// What the patient sees as the answer to their message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Fixed emergency advice; the model was not asked.
    Emergency { text: String },
    /// The model's answer, checked, with the "not medical advice" line.
    Answer { text: String },
    /// The draft waits for a doctor; `text` tells the patient so.
    UnderReview {
        escalation: EscalationId,
        reasons: Vec<ReviewReason>,
        text: String,
    },
    /// The patient wrote again (or an emergency came) before this answer was ready: it was
    /// stopped, and the newer message is answered with this one in its context. Nothing to send.
    Superseded,
}

impl Reply {
    pub fn text(&self) -> &str {
        match self {
            Reply::Emergency { text }
            | Reply::Answer { text }
            | Reply::UnderReview { text, .. } => text,
            Reply::Superseded => "",
        }
    }
}

/// The result of handling one message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub assessment: Assessment,
    pub language: Language,
    pub reply: Reply,
    /// How fast the model wrote the draft, when it wrote one.
    pub tokens_per_second: Option<f64>,
}

/// A patient's message after [`ConsultationService::receive`].
#[derive(Debug)]
pub enum Received {
    /// Answered already: an emergency, whose advice is the reply.
    Answered(Outcome),
    /// Stored; [`ConsultationService::answer_stored`] writes its answer, unless a newer message
    /// or an emergency from the same patient supersedes it first.
    Stored(StoredMessage),
}

/// A stored message waiting for its answer.
#[derive(Debug)]
pub struct StoredMessage {
    patient: PatientId,
    question: MessageId,
    text: Plaintext,
    assessment: Assessment,
    ticket: AnswerTicket,
}

impl StoredMessage {
    pub fn patient(&self) -> PatientId {
        self.patient
    }

    pub fn language(&self) -> Language {
        Language::of_text(self.text.as_str())
    }
}

/// Why a message was not handled. Nothing was stored unless the error says so.
#[derive(Debug, thiserror::Error)]
pub enum ConsultError {
    #[error("the patient has not agreed to the terms")]
    NoConsent,
    #[error("the message has no words")]
    EmptyMessage,
    #[error("the message is too long ({chars} characters, {tokens} tokens)")]
    MessageTooLong { chars: usize, tokens: usize },
    #[error("the medicine list is full ({limit} entries)")]
    MedicationListFull { limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConsultError {
    /// What the patient is told: kind, fixed, and never the internal cause.
    pub fn patient_text(&self, language: Language, max_chars: usize) -> String {
        match self {
            ConsultError::NoConsent => wording::consent_required(language).to_owned(),
            ConsultError::EmptyMessage => wording::empty_message(language).to_owned(),
            ConsultError::MessageTooLong { .. } => wording::message_too_long(language, max_chars),
            ConsultError::MedicationListFull { limit } => {
                wording::medication_list_full(language, *limit)
            }
            ConsultError::Store(_) => wording::internal_error(language).to_owned(),
        }
    }
}

/// The consultation service. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct ConsultationService<G, S, C> {
    generator: Arc<G>,
    pub(super) store: S,
    clock: C,
    pub(super) reviewer: Arc<DraftReviewer>,
    settings: ServiceSettings,
    knowledge: Option<Arc<dyn KnowledgeSource>>,
    pub(super) clinical: Arc<SharedKnowledge>,
    answering: Arc<Registry>,
}

impl<G: Generator, S: ServiceStore, C: Clock> ConsultationService<G, S, C> {
    pub fn new(
        generator: Arc<G>,
        store: S,
        clock: C,
        reviewer: Arc<DraftReviewer>,
        settings: ServiceSettings,
    ) -> Self {
        Self {
            generator,
            store,
            clock,
            reviewer,
            settings,
            knowledge: None,
            clinical: SharedKnowledge::builtin(),
            answering: Arc::default(),
        }
    }

    /// Assesses with this clinical knowledge instead of the built-in files (an edited set that
    /// reloads when its files change).
    pub fn with_clinical_knowledge(mut self, clinical: Arc<SharedKnowledge>) -> Self {
        self.clinical = clinical;
        self
    }

    /// Grounds answers in a knowledge base: passages similar to the question go into the prompt
    /// and their sources under the answer.
    pub fn with_knowledge(mut self, knowledge: Arc<dyn KnowledgeSource>) -> Self {
        self.knowledge = Some(knowledge);
        self
    }

    pub fn settings(&self) -> &ServiceSettings {
        &self.settings
    }

    /// Whether the generator can write drafts now (for health checks).
    ///
    /// # Errors
    /// What is wrong with it, in a line.
    pub fn generator_health(&self) -> Result<(), String> {
        self.generator.health()
    }

    /// Handles one message from a patient: stores it, triages it, and either answers an
    /// emergency at once, or asks the model and reviews its draft before anyone sees it.
    ///
    /// # Errors
    /// [`ConsultError::NoConsent`], [`ConsultError::EmptyMessage`] and
    /// [`ConsultError::MessageTooLong`] before anything is stored; [`ConsultError::Store`] when the message could not be stored (an emergency still
    /// gets its advice: storage failures after triage are logged, not returned).
    pub async fn handle(
        &self,
        patient: PatientId,
        message: &str,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<Outcome, ConsultError> {
        self.handle_inner(patient, message, false, progress).await
    }

    /// As [`ConsultationService::handle`], for a message the patient explicitly sent to a doctor
    /// (`/doctor`): the answer is always reviewed.
    ///
    /// # Errors
    /// As for [`ConsultationService::handle`].
    pub async fn handle_for_doctor(
        &self,
        patient: PatientId,
        message: &str,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<Outcome, ConsultError> {
        self.handle_inner(patient, message, true, progress).await
    }

    async fn handle_inner(
        &self,
        patient: PatientId,
        message: &str,
        doctor_requested: bool,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<Outcome, ConsultError> {
        match self.receive(patient, message, doctor_requested).await? {
            Received::Answered(outcome) => {
                progress(Progress::Triaged(&outcome.assessment));
                Ok(outcome)
            }
            Received::Stored(stored) => self.answer_stored(stored, progress).await,
        }
    }

    /// The emergency advice for `message`, if the message alone is an emergency: pure and
    /// immediate, for front ends that must answer before anything can be stored (a database
    /// that is down). [`ConsultationService::receive`] reaches the same verdict.
    pub fn emergency_advice(&self, message: &str) -> Option<String> {
        let message = message.trim();
        let assessment = self.triage_alone(message);
        assessment
            .is_emergency()
            .then(|| wording::emergency_advice(Language::of_text(message), &assessment))
    }

    /// Triage of one message by itself (its first `TRIAGE_CHARS`): an emergency must not wait for
    /// the database to read the earlier turns.
    fn triage_alone(&self, message: &str) -> Assessment {
        let triaged: String = message.chars().take(TRIAGE_CHARS).collect();
        triage::assess_topic(&self.clinical.current(), &[triaged.as_str()])
    }

    /// The first, quick half of handling a message, which front ends run in the order messages
    /// arrive: triage (an emergency is answered here, and any answer still being written for the
    /// patient is cancelled), the limits, and storing the message. The slow half, the answer, is
    /// [`ConsultationService::answer_stored`], which a front end may run concurrently: a newer
    /// message from the same patient supersedes it.
    ///
    /// # Errors
    /// As for [`ConsultationService::handle`].
    pub async fn receive(
        &self,
        patient: PatientId,
        message: &str,
        doctor_requested: bool,
    ) -> Result<Received, ConsultError> {
        let span = tracing::info_span!("receive", patient = %patient.log_tag(), chars = message.chars().count());
        async move {
            let message = message.trim();
            let language = Language::of_text(message);
            if !message.chars().any(char::is_alphanumeric) {
                return Err(ConsultError::EmptyMessage);
            }
            // Triage comes before any limit: an emergency is answered however long the message is.
            let assessment = self.triage_alone(message);
            // Consent is the service's rule, whatever the front end: nothing of a patient who has
            // not agreed is stored or shown to anyone. Emergency advice is still given.
            let consented = self.store.has_consented(patient).await;
            if assessment.is_emergency() {
                tracing::info!(level = assessment.level.as_str(), reasons = ?assessment.reason_codes(), "triaged");
                if self.answering.cancel(patient) {
                    tracing::info!("the answer in progress was cancelled for the emergency");
                }
                if let Ok(false) = consented {
                    let advice = wording::emergency_advice(language, &assessment);
                    return Ok(Received::Answered(Outcome {
                        assessment,
                        language,
                        reply: Reply::Emergency { text: advice },
                        tokens_per_second: None,
                    }));
                }
                // A failed lookup must not cost the alert: storing is best effort there anyway.
                return Ok(Received::Answered(
                    self.answer_emergency(patient, message, assessment, language, false)
                        .await,
                ));
            }
            if !consented? {
                return Err(ConsultError::NoConsent);
            }

            let chars = message.chars().count();
            let tokens = self.generator.count(message);
            let fixed = self.generator.count(wording::system_prompt(language))
                + 2 * self.generator.message_overhead()
                + self.generator.prompt_overhead();
            if chars > self.settings.max_message_chars
                || fixed + tokens > self.prompt_budget().prompt_tokens()
            {
                return Err(ConsultError::MessageTooLong { chars, tokens });
            }

            let text = Plaintext::new(message);
            let question = self.store.record(patient, Role::Patient, &text).await?;
            // After the store: the answer that takes over must see this message.
            let ticket = self.answering.begin(patient, doctor_requested);
            Ok(Received::Stored(StoredMessage {
                patient,
                question,
                text,
                assessment,
                ticket,
            }))
        }
        .instrument(span)
        .await
    }

    /// The slow half: the answer to a stored message, or [`Reply::Superseded`] when the patient
    /// wrote again or had an emergency first.
    ///
    /// # Errors
    /// [`ConsultError::Store`] when storage fails.
    pub async fn answer_stored(
        &self,
        stored: StoredMessage,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<Outcome, ConsultError> {
        let span = tracing::info_span!("answer", patient = %stored.patient.log_tag());
        async move {
            let started = Instant::now();
            let outcome = self
                .answer(
                    stored.patient,
                    stored.question,
                    stored.text.as_str(),
                    stored.assessment,
                    &stored.ticket,
                    progress,
                )
                .await?;
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                superseded = matches!(outcome.reply, Reply::Superseded),
                "handled"
            );
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    /// Answers the patient's newest message if nothing has yet: the work a crash cut short (the
    /// message was stored, the answer was not). `Ok(None)` when there is nothing to answer.
    ///
    /// # Errors
    /// [`ConsultError::Store`] when storage fails.
    pub async fn resume(
        &self,
        patient: PatientId,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<Option<Outcome>, ConsultError> {
        let topic = self.store.current_topic(patient).await?;
        let Some(last) = topic.last().filter(|t| t.role == Role::Patient) else {
            return Ok(None);
        };
        if self.store.is_escalated(last.id).await? {
            return Ok(None);
        }
        let message = last.text.as_str();
        let assessment = triage::assess_topic(&self.clinical.current(), &[message]);
        tracing::info!(patient = %patient.log_tag(), "resuming an unanswered message");
        if assessment.is_emergency() {
            self.answering.cancel(patient);
            progress(Progress::Triaged(&assessment));
            let language = Language::of_text(message);
            return Ok(Some(
                self.answer_emergency(patient, message, assessment, language, true)
                    .await,
            ));
        }
        let ticket = self.answering.begin(patient, false);
        self.answer(patient, last.id, message, assessment, &ticket, progress)
            .await
            .map(Some)
    }

    /// From a stored, triaged, non-emergency message to the answer or the escalation.
    async fn answer(
        &self,
        patient: PatientId,
        question: MessageId,
        message: &str,
        assessment: Assessment,
        ticket: &AnswerTicket,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<Outcome, ConsultError> {
        let language = Language::of_text(message);
        if ticket.is_cancelled() {
            return Ok(superseded(assessment, language));
        }
        // Composed answers are for messages that describe symptoms themselves; a general question
        // later in the topic still goes to the model.
        let describes_symptoms = !assessment.conditions.is_empty();
        // The whole topic: "chest pain", then "now it goes to my left arm and I'm sweating" is one
        // presentation, and an emergency on its second message.
        let history = self.store.current_topic(patient).await?;
        let knowledge = self.clinical.current();
        let said: Vec<&str> = history
            .iter()
            .filter(|t| t.role == Role::Patient)
            .map(|t| t.text.as_str())
            .collect();
        let assessment = if said.len() > 1 {
            let topic = triage::assess_topic(&knowledge, &said);
            let before = triage::assess_topic(&knowledge, &said[..said.len() - 1]);
            if topic.is_emergency() && !before.is_emergency() {
                progress(Progress::Triaged(&topic));
                tracing::info!(level = topic.level.as_str(), reasons = ?topic.reason_codes(), "triaged over the topic");
                return Ok(self
                    .answer_emergency(patient, message, topic, language, true)
                    .await);
            }
            if topic.level >= assessment.level {
                topic
            } else {
                assessment
            }
        } else {
            assessment
        };
        progress(Progress::Triaged(&assessment));
        tracing::info!(level = assessment.level.as_str(), reasons = ?assessment.reason_codes(), "triaged");
        // The answer covers every message since the last answer (a newer message supersedes the
        // answer to an older one), so the checks on the question cover all of them.
        let unanswered: Vec<&str> = history
            .iter()
            .rev()
            .take_while(|t| t.role == Role::Patient)
            .map(|t| t.text.as_str())
            .chain(std::iter::once(message))
            .collect();
        let mut reasons = Vec::new();
        if assessment.level >= TriageLevel::Urgent {
            reasons.push(ReviewReason::UrgentTriage);
        }
        if ticket.doctor_requested() || unanswered.iter().any(|m| DraftReviewer::asks_for_doctor(m))
        {
            reasons.push(ReviewReason::PatientAskedForDoctor);
        }
        if unanswered
            .iter()
            .any(|m| self.reviewer.is_medication_question(m))
        {
            reasons.push(ReviewReason::MedicationQuestion);
        }
        let medications = match self.store.medications(patient).await {
            Ok(list) => Some(list),
            Err(e) => {
                // The answer goes ahead, reviewed: a doctor must not approve medicines blind.
                tracing::error!(error = %e, "the patient's medicine list could not be read");
                reasons.push(ReviewReason::MedicationListUnavailable);
                None
            }
        };
        let medications = medications.unwrap_or_default();
        let check = |draft: &str| {
            self.medication_review(&knowledge, &medications, &said, &unanswered, draft)
        };
        add_reasons(&mut reasons, medication_reasons(&check(""), false));
        let review_certain = !reasons.is_empty();
        if review_certain {
            progress(Progress::ReviewRequired(wording::under_review(language)));
        }
        if self.settings.compose_symptom_answers
            && describes_symptoms
            && !assessment.conditions.is_empty()
        {
            let composed = wording::possible_causes(language, &assessment);
            // The composed texts are vetted data: only what they name against the list counts.
            let checked = check(&composed);
            add_reasons(&mut reasons, medication_reasons(&checked, false));
            let for_doctor = checked.for_doctor();
            return self
                .deliver_or_escalate(
                    patient,
                    question,
                    (assessment, for_doctor),
                    language,
                    reasons,
                    review_certain,
                    composed,
                    progress,
                )
                .await;
        }
        // The patient is told about the review once, however many checks call for it.
        let mut told_review = review_certain;
        let mut relay = |step: Progress<'_>| {
            if let Progress::ReviewRequired(_) = step {
                if told_review {
                    return;
                }
                told_review = true;
            }
            progress(step)
        };

        let references = self.references(&history).await;
        let mut system = grounded_system_prompt(
            language,
            &references,
            self.prompt_budget().prompt_tokens() * 2 / 5,
            self.generator.as_ref(),
        );
        if !assessment.conditions.is_empty() {
            system.prompt.push_str("\n\n");
            system
                .prompt
                .push_str(&wording::assessment_for_model(&assessment));
        }
        let mut written = String::new();
        let writing_since = Instant::now();
        let writing = tokio::time::timeout(
            self.settings.answer_deadline,
            self.write_draft(
                &history,
                &system.prompt,
                language,
                !review_certain,
                &mut written,
                &mut relay,
            ),
        );
        // Dropping the generation's stream stops the model.
        let finished = tokio::select! {
            biased;
            () = ticket.cancelled() => {
                tracing::info!("superseded: the patient wrote again, or had an emergency");
                return Ok(superseded(assessment, language));
            }
            finished = writing => finished,
        };
        let writing_took = writing_since.elapsed();
        let draft = match finished {
            Ok(Ok((draft, unsure_passage))) => {
                if unsure_passage || !self.generator.knows_confidence() {
                    reasons.push(ReviewReason::LowConfidence);
                }
                draft
            }
            Ok(Err(e)) => {
                // A doctor answers instead: the patient must never be left without one.
                tracing::warn!(error = %e, "no draft from the model; escalating");
                Draft::default()
            }
            Err(_) => {
                tracing::warn!(
                    deadline_s = self.settings.answer_deadline.as_secs(),
                    "the model did not finish in time; escalating what it wrote"
                );
                reasons.push(ReviewReason::AnswerDeadline);
                Draft {
                    text: written,
                    ..Draft::default()
                }
            }
        };
        add_reasons(
            &mut reasons,
            self.reviewer.review(DraftFacts {
                text: &draft.text,
                logprobs: &draft.logprobs,
                hit_length_limit: draft.hit_length_limit,
            }),
        );
        let checked = check(&draft.text);
        add_reasons(&mut reasons, medication_reasons(&checked, true));
        let for_doctor = checked.for_doctor();

        // The sources are part of the answer a doctor reviews and the patient sees.
        let draft_text = if draft.text.trim().is_empty() {
            String::new()
        } else {
            format!(
                "{}{}",
                draft.text.trim(),
                wording::sources(language, &system.used)
            )
        };
        let tokens = if draft.logprobs.is_empty() {
            self.generator.count(&draft.text)
        } else {
            draft.logprobs.len()
        };
        let mut outcome = self
            .deliver_or_escalate(
                patient,
                question,
                (assessment, for_doctor),
                language,
                reasons,
                told_review,
                draft_text,
                progress,
            )
            .await?;
        if tokens > 0 && writing_took > std::time::Duration::ZERO {
            outcome.tokens_per_second = Some(tokens as f64 / writing_took.as_secs_f64());
        }
        Ok(outcome)
    }

    /// Delivers a checked draft when nothing calls for review, or opens the escalation.
    #[allow(clippy::too_many_arguments)]
    async fn deliver_or_escalate(
        &self,
        patient: PatientId,
        question: MessageId,
        (assessment, medicines): (Assessment, String),
        language: Language,
        reasons: Vec<ReviewReason>,
        told_review: bool,
        draft_text: String,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<Outcome, ConsultError> {
        let reply = if reasons.is_empty() && !draft_text.trim().is_empty() {
            let text = format!(
                "{}\n\n{}",
                draft_text,
                wording::not_medical_advice(language)
            );
            self.store
                .record(patient, Role::Assistant, &Plaintext::new(text.as_str()))
                .await?;
            Reply::Answer { text }
        } else {
            let escalation = self
                .store
                .open(NewEscalation {
                    patient,
                    question,
                    level: assessment.level,
                    reasons: reasons.clone(),
                    draft: Plaintext::new(draft_text),
                    // Medicines first: on a medication question they are what the doctor needs.
                    assessment: Plaintext::new(if medicines.is_empty() {
                        wording::assessment_for_doctor(&assessment)
                    } else {
                        format!(
                            "{medicines}\n\n{}",
                            wording::assessment_for_doctor(&assessment)
                        )
                    }),
                    expires_at: self.clock.now() + self.settings.review_timeout,
                })
                .await?;
            tracing::info!(escalation = %escalation.0, reasons = ?reasons, "draft escalated");
            if !told_review {
                progress(Progress::ReviewRequired(wording::under_review(language)));
            }
            Reply::UnderReview {
                escalation,
                reasons,
                text: wording::under_review(language).to_owned(),
            }
        };
        Ok(Outcome {
            assessment,
            language,
            reply,
            tokens_per_second: None,
        })
    }

    /// The fixed advice, then (best effort) the record and the doctors' alert: a database that is
    /// down must not hold back the advice. `already_stored` when resuming a stored message.
    async fn answer_emergency(
        &self,
        patient: PatientId,
        message: &str,
        assessment: Assessment,
        language: Language,
        already_stored: bool,
    ) -> Outcome {
        let advice = wording::emergency_advice(language, &assessment);
        let alert = format!(
            "🚨 Emergency triage for patient {}: {}\n\nThe patient wrote:\n{}\n\n{}\n\nThey were sent the emergency advice.",
            patient.reference(),
            assessment.reason_codes().join(", "),
            message,
            wording::assessment_for_doctor(&assessment),
        );
        let stored = async {
            if !already_stored {
                self.store
                    .record(patient, Role::Patient, &Plaintext::new(message))
                    .await?;
            }
            self.store
                .notify_doctors(
                    patient,
                    DoctorNoticeKind::EmergencyAlert,
                    &Plaintext::new(alert),
                )
                .await?;
            self.store
                .record(patient, Role::Assistant, &Plaintext::new(advice.as_str()))
                .await
        }
        .await;
        if let Err(e) = stored {
            tracing::error!(error = %e, "emergency advice given, but storing it or alerting the doctors failed");
        }
        Outcome {
            assessment,
            language,
            reply: Reply::Emergency { text: advice },
            tokens_per_second: None,
        }
    }

    fn prompt_budget(&self) -> ContextBudget {
        ContextBudget {
            context_tokens: self.generator.context_tokens(),
            answer_tokens: self.settings.answer_tokens,
        }
    }

    /// Builds the context and lets the model write, showing whole sentences that pass review (words
    /// and confidence) when `stream` is set; with the draft, whether a passage the model was unsure
    /// of stopped the showing. Retries once with less history if the model counts the prompt longer
    /// than the estimate.
    async fn write_draft(
        &self,
        history: &[super::ports::Turn],
        system_prompt: &str,
        language: Language,
        stream: bool,
        text: &mut String,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<(Draft, bool), DraftError> {
        let history: Vec<HistoryMessage> = history
            .iter()
            .map(|t| HistoryMessage {
                role: t.role,
                text: t.text.as_str().to_owned(),
            })
            .collect();
        let texts = std::iter::once(system_prompt.to_owned())
            .chain(history.iter().map(|m| m.text.clone()))
            .collect();
        self.generator.prepare_counts(texts).await;
        let mut budget = self.prompt_budget();
        let mut attempts = 0;
        let mut events = loop {
            let built = context::build(system_prompt, &history, self.generator.as_ref(), budget)?;
            tracing::debug!(
                prompt_tokens = built.tokens,
                dropped = built.dropped_exchanges,
                "context built"
            );
            match self
                .generator
                .generate(built.messages, self.settings.answer_tokens)
                .await
            {
                Err(GeneratorError::PromptTooLong { tokens, limit }) if attempts == 0 => {
                    attempts += 1;
                    let over = tokens.saturating_sub(limit) + 16;
                    budget.context_tokens = budget.context_tokens.saturating_sub(over);
                }
                other => break other?,
            }
        };

        // A model whose confidence is unknown shows nothing before review.
        let mut gate = SentenceGate::new(stream && self.generator.knows_confidence());
        // Medicines medbot knows (in any language) close the gate like the dictionary's do.
        let knowledge = self.clinical.current();
        let lookup = self.lookup(&knowledge);
        let names_medicine = |passage: &str| !lookup.find(passage).is_empty();
        while let Some(event) = events.recv().await {
            match event? {
                DraftEvent::Piece {
                    text: piece,
                    logprobs,
                } => {
                    text.push_str(&piece);
                    match gate.advance(text, &logprobs, &self.reviewer, &names_medicine) {
                        GateStep::Show(visible) => progress(Progress::Partial(visible)),
                        GateStep::Closed => {
                            progress(Progress::ReviewRequired(wording::under_review(language)))
                        }
                        GateStep::Wait => {}
                    }
                }
                DraftEvent::Finished(draft) => return Ok((draft, gate.unsure)),
            }
        }
        Err(DraftError::Generator(GeneratorError::Failed(
            "the model stopped without finishing".into(),
        )))
    }

    /// Passages for the newest question, with the patient's previous message as context. A
    /// knowledge base that fails is logged and the answer goes ahead without it.
    async fn references(&self, history: &[super::ports::Turn]) -> Vec<Reference> {
        let Some(knowledge) = &self.knowledge else {
            return Vec::new();
        };
        let mut asked = history
            .iter()
            .rev()
            .filter(|t| t.role == Role::Patient)
            .take(2)
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>();
        asked.reverse();
        let query = asked.join("\n");
        match knowledge.retrieve(&query, self.settings.references).await {
            Ok(found) => found
                .into_iter()
                .filter(|r| r.score >= self.settings.reference_threshold)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "answering without the knowledge base");
                Vec::new()
            }
        }
    }

    /// Starts a new topic for the patient (`/new`): the history stays, the context starts afresh.
    ///
    /// # Errors
    /// [`StoreError`] from storage.
    pub async fn start_new_topic(&self, patient: PatientId) -> Result<(), StoreError> {
        self.store.start_new_topic(patient).await
    }
}

/// Adds the reasons not there yet, in order.
fn add_reasons(reasons: &mut Vec<ReviewReason>, more: impl IntoIterator<Item = ReviewReason>) {
    for reason in more {
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
}

/// The review reasons medicines give: an interaction involving a medicine named in the exchange,
/// or a named medicine that conflicts with an allergy; and any medicine medbot knows named by the
/// patient (a medication question) or by a model's draft (`model_wrote`), which the drug
/// dictionary alone may miss (it knows few Chinese names).
fn medication_reasons(
    review: &crate::medicines::MedicationReview<'_>,
    model_wrote: bool,
) -> Vec<ReviewReason> {
    let mut reasons = Vec::new();
    if !review.in_question.is_empty() {
        reasons.push(ReviewReason::MedicationQuestion);
    }
    if model_wrote && !review.in_draft.is_empty() {
        reasons.push(ReviewReason::NamesMedicine);
    }
    if !review.interactions.is_empty() {
        reasons.push(ReviewReason::Interaction);
    }
    if review.named_allergy_conflicts().next().is_some() {
        reasons.push(ReviewReason::AllergyConflict);
    }
    reasons
}

fn superseded(assessment: Assessment, language: Language) -> Outcome {
    Outcome {
        assessment,
        language,
        reply: Reply::Superseded,
        tokens_per_second: None,
    }
}

/// The system prompt with the passages that fit, and which ones those are.
struct GroundedPrompt {
    prompt: String,
    used: Vec<Reference>,
}

/// The role and limits, then the reference passages (numbered, as many as fit `budget` tokens), or
/// the instruction that there are none.
fn grounded_system_prompt(
    language: Language,
    references: &[Reference],
    budget: usize,
    counter: &dyn crate::context::TokenCounter,
) -> GroundedPrompt {
    let mut prompt = wording::system_prompt(language).to_owned();
    let mut used = Vec::new();
    let mut passages = String::new();
    for reference in references {
        let entry = format!(
            "\n[{}] {} — {}: {}",
            used.len() + 1,
            reference.title,
            reference.heading,
            reference.text
        );
        if counter.count(&prompt) + counter.count(&passages) + counter.count(&entry) > budget {
            break;
        }
        passages.push_str(&entry);
        used.push(reference.clone());
    }
    prompt.push_str("\n\n");
    if used.is_empty() {
        prompt.push_str(wording::no_references(language));
    } else {
        prompt.push_str(wording::references_intro(language));
        prompt.push_str(&passages);
    }
    GroundedPrompt { prompt, used }
}

#[derive(Debug, thiserror::Error)]
enum DraftError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Generator(#[from] GeneratorError),
}

/// Decides how much of a draft in progress the patient may see: whole sentences, each passing the
/// content checks. The first sentence that fails closes the gate for good; the whole draft then
/// goes to a doctor, because the final review runs the same checks over all of it.
struct SentenceGate {
    open: bool,
    shown: usize,
    /// Log-probabilities of the tokens after the part shown.
    pending: Vec<f32>,
    /// The gate closed on a passage the model was unsure of: the whole draft goes to a doctor even
    /// if the draft as a whole passes the confidence check.
    unsure: bool,
}

enum GateStep<'a> {
    Wait,
    Show(&'a str),
    Closed,
}

impl SentenceGate {
    fn new(open: bool) -> Self {
        Self {
            open,
            shown: 0,
            pending: Vec::new(),
            unsure: false,
        }
    }

    /// `text` is the draft so far; `logprobs` those of the tokens added since the last call.
    fn advance<'t>(
        &mut self,
        text: &'t str,
        logprobs: &[f32],
        reviewer: &DraftReviewer,
        names_medicine: &dyn Fn(&str) -> bool,
    ) -> GateStep<'t> {
        if !self.open {
            return GateStep::Wait;
        }
        self.pending.extend_from_slice(logprobs);
        let Some(end) = last_sentence_end(text) else {
            return GateStep::Wait;
        };
        if end <= self.shown {
            return GateStep::Wait;
        }
        let passage = &text[self.shown..end];
        // Tokens of the piece that ends the sentence may belong to the next one: they count here.
        let unsure = reviewer.is_unsure(&self.pending);
        if !unsure
            && reviewer.review_passage(passage).is_empty()
            && !names_medicine(passage)
            && !repeats(&text[..self.shown], passage)
        {
            self.shown = end;
            self.pending.clear();
            GateStep::Show(&text[..end])
        } else {
            self.open = false;
            self.unsure = unsure;
            GateStep::Closed
        }
    }
}

/// Whether `passage` says again a sentence already shown: a model that loops is cut off before the
/// patient reads the loop (the whole draft is then checked for repetition at the end).
fn repeats(shown: &str, passage: &str) -> bool {
    passage
        .split(['.', '!', '?', '\n', '。', '！', '？'])
        .map(str::trim)
        .filter(|s| s.chars().count() >= 12)
        .any(|s| shown.contains(s))
}

/// The byte offset just past the last finished sentence: a full stop, question or exclamation
/// mark followed by white space, a line break, or a Chinese full stop.
fn last_sentence_end(text: &str) -> Option<usize> {
    let mut end = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let after = i + c.len_utf8();
        match c {
            '。' | '！' | '？' | '\n' => end = Some(after),
            '.' | '!' | '?' if chars.peek().is_some_and(|(_, next)| next.is_whitespace()) => {
                end = Some(after);
            }
            _ => {}
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_end_at_stops_followed_by_space() {
        assert_eq!(last_sentence_end("Rest well. Drink"), Some(10));
        assert_eq!(last_sentence_end("Take 2.5 litres"), None);
        assert_eq!(last_sentence_end("多喝水。休息"), Some("多喝水。".len()));
        assert_eq!(last_sentence_end("no stop"), None);
    }

    #[test]
    fn the_gate_shows_clean_sentences_and_closes_for_good_on_a_risky_one() {
        let reviewer = DraftReviewer::new(crate::triage::DrugLexicon::from_names(["ibuprofen"]));
        let mut gate = SentenceGate::new(true);
        assert!(matches!(
            gate.advance("Rest and drink", &[], &reviewer, &|_| false),
            GateStep::Wait
        ));
        assert!(
            matches!(gate.advance("Rest and drink water. Try", &[], &reviewer, &|_| false), GateStep::Show(s) if s == "Rest and drink water.")
        );
        assert!(matches!(
            gate.advance(
                "Rest and drink water. Try ibuprofen. Then",
                &[],
                &reviewer,
                &|_| false
            ),
            GateStep::Closed
        ));
        assert!(matches!(
            gate.advance(
                "Rest and drink water. Try ibuprofen. Then sleep. More",
                &[],
                &reviewer,
                &|_| false
            ),
            GateStep::Wait
        ));
        let mut looping = SentenceGate::new(true);
        let once = "Rest in a warm room. Drink plenty of water. ";
        assert!(matches!(
            looping.advance(once, &[], &reviewer, &|_| false),
            GateStep::Show(_)
        ));
        assert!(matches!(
            looping.advance(&format!("{once}{once}"), &[], &reviewer, &|_| false),
            GateStep::Closed
        ));
        // A sentence the model was unsure of closes the gate although its words are fine.
        let mut unsure = SentenceGate::new(true);
        assert!(matches!(
            unsure.advance("Rest well. ", &[-0.2; 3], &reviewer, &|_| false),
            GateStep::Show(_)
        ));
        assert!(matches!(
            unsure.advance(
                "Rest well. Colds pass soon. ",
                &[-4.0; 4],
                &reviewer,
                &|_| false
            ),
            GateStep::Closed
        ));
        assert!(unsure.unsure);
        let mut shut = SentenceGate::new(false);
        assert!(matches!(
            shut.advance("Fine. ", &[], &reviewer, &|_| false),
            GateStep::Wait
        ));
    }
}
