//! Review of the model's draft before any patient sees it. Each check that fires is a reason to send
//! the draft to a doctor; a draft with no reasons is delivered with a "not medical advice" line.

use std::sync::LazyLock;

use regex::Regex;

use super::lexicon::DrugLexicon;
use super::patient;
use crate::domain::TriageLevel;

/// Why a draft goes to a doctor. The codes are stored with the escalation and shown on its card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    NamesMedicine,
    StatesDose,
    CertainDiagnosis,
    RedFlagContent,
    UrgentTriage,
    PatientAskedForDoctor,
    MedicationQuestion,
    LowConfidence,
    EmptyDraft,
    RepetitiveDraft,
    GarbledDraft,
    IncompleteDraft,
    AnswerDeadline,
    Interaction,
    AllergyConflict,
    MedicationListUnavailable,
}

impl ReviewReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NamesMedicine => "names_medicine",
            Self::StatesDose => "states_dose",
            Self::CertainDiagnosis => "certain_diagnosis",
            Self::RedFlagContent => "red_flag_content",
            Self::UrgentTriage => "urgent_triage",
            Self::PatientAskedForDoctor => "patient_asked_for_doctor",
            Self::MedicationQuestion => "medication_question",
            Self::LowConfidence => "low_confidence",
            Self::EmptyDraft => "empty_draft",
            Self::RepetitiveDraft => "repetitive_draft",
            Self::GarbledDraft => "garbled_draft",
            Self::IncompleteDraft => "incomplete_draft",
            Self::AnswerDeadline => "answer_deadline",
            Self::Interaction => "interaction",
            Self::AllergyConflict => "allergy_conflict",
            Self::MedicationListUnavailable => "medication_list_unavailable",
        }
    }

    /// What a doctor reads for a stored reason code; an unknown code is shown as it is.
    pub fn describe_code(code: &str) -> String {
        serde_json::from_value::<ReviewReason>(serde_json::Value::String(code.to_owned()))
            .map(|r| r.describe().to_owned())
            .unwrap_or_else(|_| code.to_owned())
    }

    /// What a doctor reads on the card.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NamesMedicine => "names a medicine",
            Self::StatesDose => "states a dose or schedule",
            Self::CertainDiagnosis => "states a diagnosis as certain",
            Self::RedFlagContent => "contains red-flag content",
            Self::UrgentTriage => "the patient's message was triaged urgent",
            Self::PatientAskedForDoctor => "the patient asked for a doctor",
            Self::MedicationQuestion => "the patient asked about medication",
            Self::LowConfidence => "the model was unsure (low token probabilities)",
            Self::EmptyDraft => "the draft is empty",
            Self::RepetitiveDraft => "the draft repeats itself",
            Self::GarbledDraft => "the draft is garbled",
            Self::IncompleteDraft => "the draft was cut off at the length limit",
            Self::AnswerDeadline => {
                "the model did not finish within the answer deadline (the draft is what it had written)"
            }
            Self::Interaction => {
                "a medicine named interacts with another or with the patient's medicines (see Medicines)"
            }
            Self::AllergyConflict => {
                "a medicine named conflicts with the patient's allergies (see Medicines)"
            }
            Self::MedicationListUnavailable => {
                "the patient's medicine list could not be read: interactions were not checked against it"
            }
        }
    }
}

/// The model's draft with what the engine knows about it.
#[derive(Debug, Clone, Copy)]
pub struct DraftFacts<'a> {
    pub text: &'a str,
    /// Log-probability of each generated token.
    pub logprobs: &'a [f32],
    /// The generation stopped at its length limit rather than at an end of turn.
    pub hit_length_limit: bool,
}

/// Thresholds for the confidence check. A draft is unsure when its mean token log-probability is
/// below `min_mean_logprob`, or when more than `max_unlikely_share` of its tokens each had a
/// probability under 5%.
#[derive(Debug, Clone, Copy)]
pub struct ConfidencePolicy {
    pub min_mean_logprob: f32,
    pub max_unlikely_share: f32,
}

impl Default for ConfidencePolicy {
    fn default() -> Self {
        Self {
            min_mean_logprob: -1.6,
            max_unlikely_share: 0.30,
        }
    }
}

/// The draft checks, with their data.
#[derive(Debug, Clone)]
pub struct DraftReviewer {
    lexicon: DrugLexicon,
    confidence: ConfidencePolicy,
}

static DOSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)\d+(?:[.,]\d+)?\s*(?:-|to|–)?\s*\d*\s*(?:mg|mcg|µg|μg|milligrams?|micrograms?|grams?|g\b|ml\b|millilit(?:er|re)s?|iu\b|units?\b|tablets?|pills?|capsules?|caps\b|puffs?|drops?|teaspoons?|tsp\b|tablespoons?|毫克|微克|克|毫升|片|粒|颗|支|滴|单位)",
        r"|(?i)\b(?:once|twice|three times|four times|\d+\s*times)\s+(?:a|per|each)\s+day",
        r"|(?i)every\s+\d+(?:\s*(?:-|to|–)\s*\d+)?\s*hours",
        r"|每(?:天|日|次|隔)\s*[\d一二两三四五六七八九十]+\s*(?:次|片|粒|小时)|一日[一二两三四]次|[一二两三四]次每日",
    ))
    .expect("valid regex")
});

static CERTAIN_DIAGNOSIS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)\b(?:you\s+(?:definitely|certainly|clearly|surely|obviously)\s+have",
        r"|(?:it|this|that)\s*(?:is|'s|’s)\s+(?:definitely|certainly|clearly|surely|undoubtedly|obviously)",
        r"|without (?:a|any) doubt|i am (?:sure|certain) (?:you|it|that)|i'm (?:sure|certain) (?:you|it|that)",
        r"|you are suffering from|you suffer from|your diagnosis is|the diagnosis is|you have been diagnosed",
        r"|you(?:'ve| have)?\s+(?:got|have)\s+(?:a |an )?(?:\w+\s+){0,2}\w*(?:itis|osis|cancer|disease|syndrome|infection|disorder|diabetes|pneumonia|covid|influenza|tumou?r|ulcer|failure|attack|stroke|leukemia|leukaemia|hepatitis|tuberculosis)\b)",
        r"|你(?:得了|患有|患了|这是|肯定|一定)|确诊为|肯定是|一定是|毫无疑问",
    ))
    .expect("valid regex")
});

static HEDGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:may|might|could|possibly|perhaps|maybe|likely|unlikely|if|whether)\b|可能|也许|或许|如果|是否")
        .expect("valid regex")
});

impl DraftReviewer {
    pub fn new(lexicon: DrugLexicon) -> Self {
        Self {
            lexicon,
            confidence: ConfidencePolicy::default(),
        }
    }

    pub fn with_confidence(mut self, confidence: ConfidencePolicy) -> Self {
        self.confidence = confidence;
        self
    }

    pub fn lexicon(&self) -> &DrugLexicon {
        &self.lexicon
    }

    /// Whether the patient's message asks about medication (always reviewed by a doctor).
    pub fn is_medication_question(&self, message: &str) -> bool {
        static ASKS: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"(?i)\b(?:medicines?|medications?|meds|drugs?|pills?|tablets?|dose|doses|dosage|prescri\w*|side effects?|overdose|take for|can i take|should i take|how much \w+ (?:can|should)|interact\w*)\b|药|剂量|用量|副作用|吃多少|能吃|可以吃")
                .expect("valid regex")
        });
        ASKS.is_match(message) || !self.lexicon.find_in(message).is_empty()
    }

    /// Whether the patient asks for a human doctor rather than the assistant.
    pub fn asks_for_doctor(message: &str) -> bool {
        static ASKS: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(concat!(
                r"(?i)\b(?:(?:talk|speak|chat)\s+(?:to|with)\s+(?:a|an|the|real|human|my)?\s*(?:real\s+|human\s+)?(?:doctor|physician|gp|nurse|human|person|clinician)",
                r"|(?:want|need|get|see)\s+(?:a|an|the)?\s*(?:real\s+|human\s+)(?:doctor|physician|person)",
                r"|(?:can|could)\s+(?:a|an|the)\s+(?:real\s+|human\s+)?(?:doctor|physician|gp)\s+(?:check|look|review|answer|see)",
                r"|ask\s+(?:a|the)\s+(?:real\s+|human\s+)?doctor)\b",
                r"|(?:找|要|请|让|想问|问问)(?:个|一下|一位|位)?(?:真人)?(?:医生|大夫)|人工(?:客服|医生|服务)|转人工",
            ))
            .expect("valid regex")
        });
        ASKS.is_match(message)
    }

    /// The reasons the draft needs a doctor, in a stable order; empty when it may be delivered.
    pub fn review(&self, draft: DraftFacts<'_>) -> Vec<ReviewReason> {
        let mut reasons = Vec::new();
        let text = draft.text.trim();
        if text.chars().filter(|c| c.is_alphanumeric()).count() < 2 {
            reasons.push(ReviewReason::EmptyDraft);
            return reasons;
        }
        reasons.extend(self.review_passage(text));
        if self.is_unsure(draft.logprobs) {
            reasons.push(ReviewReason::LowConfidence);
        }
        if is_repetitive(text) {
            reasons.push(ReviewReason::RepetitiveDraft);
        }
        if is_garbled(text) {
            reasons.push(ReviewReason::GarbledDraft);
        }
        if draft.hit_length_limit {
            reasons.push(ReviewReason::IncompleteDraft);
        }
        reasons
    }

    /// The checks that look only at the words (medicine, dose, certain diagnosis, red flags), for a
    /// passage of a draft still being written: a sentence that passes may be shown to the patient
    /// while the rest is generated.
    pub fn review_passage(&self, text: &str) -> Vec<ReviewReason> {
        let mut reasons = Vec::new();
        if !self.lexicon.find_in(text).is_empty() {
            reasons.push(ReviewReason::NamesMedicine);
        }
        if DOSE.is_match(text) {
            reasons.push(ReviewReason::StatesDose);
        }
        if states_certain_diagnosis(text) {
            reasons.push(ReviewReason::CertainDiagnosis);
        }
        if patient::red_flags(&[text])
            .first()
            .is_some_and(|(level, _)| *level == TriageLevel::Emergency)
        {
            reasons.push(ReviewReason::RedFlagContent);
        }
        reasons
    }

    /// Whether the model was unsure of these tokens (a whole draft, or one passage of it).
    pub fn is_unsure(&self, logprobs: &[f32]) -> bool {
        if logprobs.is_empty() {
            return false;
        }
        let n = logprobs.len() as f32;
        let mean = logprobs.iter().sum::<f32>() / n;
        let unlikely = logprobs.iter().filter(|&&lp| lp < 0.05f32.ln()).count() as f32 / n;
        mean < self.confidence.min_mean_logprob || unlikely > self.confidence.max_unlikely_share
    }
}

/// A certainty phrase in a sentence that does not also hedge.
fn states_certain_diagnosis(text: &str) -> bool {
    sentences(text).any(|s| CERTAIN_DIAGNOSIS.is_match(s) && !HEDGE.is_match(s))
}

fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split(['.', '!', '?', '\n', '。', '！', '？'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The same sentence three times, or (in longer drafts) most word 4-grams repeated.
fn is_repetitive(text: &str) -> bool {
    let mut counts = std::collections::HashMap::new();
    for s in sentences(text).filter(|s| s.chars().count() >= 8) {
        *counts.entry(s.to_lowercase()).or_insert(0usize) += 1;
    }
    if counts.values().any(|&n| n >= 3) {
        return true;
    }
    let units: Vec<String> = if text.chars().any(super::text::is_han) {
        text.chars()
            .filter(|c| !c.is_whitespace())
            .map(String::from)
            .collect()
    } else {
        text.split_whitespace().map(str::to_lowercase).collect()
    };
    if units.len() < 40 {
        return false;
    }
    let grams: Vec<&[String]> = units.windows(4).collect();
    let unique: std::collections::HashSet<&[String]> = grams.iter().copied().collect();
    (unique.len() as f32) < 0.5 * grams.len() as f32
}

/// Replacement characters, control characters, or a text that is mostly not letters.
fn is_garbled(text: &str) -> bool {
    let total = text.chars().count().max(1) as f32;
    let broken = text
        .chars()
        .filter(|&c| c == '\u{FFFD}' || (c.is_control() && !c.is_whitespace()))
        .count();
    let letters = text.chars().filter(|c| c.is_alphabetic()).count() as f32;
    broken > 0 || letters / total < 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviewer() -> DraftReviewer {
        DraftReviewer::new(DrugLexicon::from_names([
            "ibuprofen",
            "amoxicillin",
            "paracetamol",
        ]))
    }

    fn review(text: &str) -> Vec<ReviewReason> {
        reviewer().review(DraftFacts {
            text,
            logprobs: &[-0.2; 20],
            hit_length_limit: false,
        })
    }

    #[test]
    fn plain_advice_passes() {
        assert!(
            review("Rest, drink plenty of fluids and see a clinician if it gets worse.").is_empty()
        );
        assert!(review("多休息，多喝水。如果症状加重，请去看医生。").is_empty());
    }

    #[test]
    fn each_check_fires() {
        use ReviewReason::*;
        assert_eq!(review("You could take ibuprofen."), [NamesMedicine]);
        assert!(review("Take 400 mg every 6 hours.").contains(&StatesDose));
        assert!(review("每天三次，每次两片").contains(&StatesDose));
        assert_eq!(review("You definitely have pneumonia."), [CertainDiagnosis]);
        assert!(review("You may have a chest infection.").is_empty());
        assert_eq!(review("你得了肺炎。"), [CertainDiagnosis]);
        assert!(
            review("If you have crushing chest pain and sweating, call an ambulance.")
                .contains(&RedFlagContent)
        );
        assert_eq!(review(" "), [EmptyDraft]);
        assert!(review(&"Drink water and rest well. ".repeat(4)).contains(&RepetitiveDraft));
        assert!(review("\u{FFFD}\u{FFFD} ### 123 ###").contains(&GarbledDraft));
        let unsure = reviewer().review(DraftFacts {
            text: "Rest and drink fluids.",
            logprobs: &[-3.0; 10],
            hit_length_limit: true,
        });
        assert_eq!(unsure, [LowConfidence, IncompleteDraft]);
    }

    #[test]
    fn requests_for_a_human_doctor_are_recognised() {
        for asks in [
            "Can I talk to a real doctor?",
            "i want a human doctor please",
            "Could a doctor check this answer?",
            "I'd like to ask a doctor",
            "我想找医生问一下",
            "转人工",
            "请医生看看",
        ] {
            assert!(DraftReviewer::asks_for_doctor(asks), "{asks}");
        }
        for not in [
            "My doctor said it was a virus",
            "I saw a doctor last week",
            "医生说是感冒",
        ] {
            assert!(!DraftReviewer::asks_for_doctor(not), "{not}");
        }
    }

    #[test]
    fn medication_questions_are_recognised() {
        let r = reviewer();
        assert!(r.is_medication_question("Can I take ibuprofen with a cold?"));
        assert!(r.is_medication_question("what dose of paracetamol for a child"));
        assert!(r.is_medication_question("感冒了吃什么药好"));
        assert!(!r.is_medication_question("I have a sore throat"));
    }
}
