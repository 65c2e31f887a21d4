//! The vocabulary of medbot: identifiers, roles and levels. Pure types, no I/O.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A patient, as medbot knows them: a random id that says nothing about who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct PatientId(pub Uuid);

impl PatientId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The pseudonymous reference doctors and admins see ("P-3f9a1c2e"): enough to tell patients
    /// apart, nothing that identifies them.
    pub fn reference(&self) -> String {
        let simple = self.0.simple().to_string();
        format!("P-{}", &simple[..8])
    }

    /// A one-way tag for log lines, so that logs can be correlated without naming the patient.
    pub fn log_tag(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        hex::encode(&digest[..6])
    }
}

impl fmt::Display for PatientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct MessageId(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct EscalationId(pub Uuid);

/// One entry of a patient's medicines and allergies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct MedicationId(pub Uuid);

/// Whether an entry is a medicine the patient takes or something they are allergic to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MedicationKind {
    Medicine,
    Allergy,
}

/// A medicine the patient takes or an allergy they have, as they confirmed it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MedicationEntry {
    pub id: MedicationId,
    pub kind: MedicationKind,
    /// The drug or class id in medbot's medicine knowledge; `None` for a name medbot does not
    /// know (kept as written, shown to doctors, not checked).
    pub drug: Option<String>,
    /// What the patient sees: the generic name, or their own words for an unknown one.
    pub name: String,
    pub added_at: chrono::DateTime<chrono::Utc>,
}

/// A Telegram user id (the person).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TelegramUserId(pub i64);

/// A Telegram chat id (where to send). Groups are negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TelegramChatId(pub i64);

/// Who wrote a message in a patient's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Patient,
    Assistant,
    Doctor,
    System,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Assistant => "assistant",
            Role::Doctor => "doctor",
            Role::System => "system",
        }
    }
}

impl FromStr for Role {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "patient" => Ok(Role::Patient),
            "assistant" => Ok(Role::Assistant),
            "doctor" => Ok(Role::Doctor),
            "system" => Ok(Role::System),
            other => Err(UnknownValue(other.to_owned())),
        }
    }
}

/// How soon a patient should see a clinician.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TriageLevel {
    SelfCare,
    Routine,
    Urgent,
    Emergency,
}

impl TriageLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            TriageLevel::Emergency => "emergency",
            TriageLevel::Urgent => "urgent",
            TriageLevel::Routine => "routine",
            TriageLevel::SelfCare => "self_care",
        }
    }
}

impl FromStr for TriageLevel {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "emergency" => Ok(TriageLevel::Emergency),
            "urgent" => Ok(TriageLevel::Urgent),
            "routine" => Ok(TriageLevel::Routine),
            "self_care" => Ok(TriageLevel::SelfCare),
            other => Err(UnknownValue(other.to_owned())),
        }
    }
}

/// Where an escalated draft stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationStatus {
    Pending,
    Approved,
    Edited,
    Rejected,
    Expired,
}

impl EscalationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationStatus::Pending => "pending",
            EscalationStatus::Approved => "approved",
            EscalationStatus::Edited => "edited",
            EscalationStatus::Rejected => "rejected",
            EscalationStatus::Expired => "expired",
        }
    }
}

impl FromStr for EscalationStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "approved" => Ok(Self::Approved),
            "edited" => Ok(Self::Edited),
            "rejected" => Ok(Self::Rejected),
            "expired" => Ok(Self::Expired),
            other => Err(UnknownValue(other.to_owned())),
        }
    }
}

/// The language medbot speaks to a patient in. English unless the patient writes Chinese.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    #[default]
    English,
    Chinese,
}

impl Language {
    /// The language of a message: Chinese when at least a fifth of its letters are Han characters
    /// (patients mix in English drug names and units), otherwise English.
    pub fn of_text(text: &str) -> Self {
        let letters = text.chars().filter(|c| c.is_alphabetic()).count();
        let han = text.chars().filter(|&c| is_han(c)).count();
        if han > 0 && han * 5 >= letters {
            Language::Chinese
        } else {
            Language::English
        }
    }

    /// From Telegram's `language_code` (an IETF tag such as "zh-hans" or "en-US").
    pub fn from_code(code: &str) -> Self {
        if code.to_ascii_lowercase().starts_with("zh") {
            Language::Chinese
        } else {
            Language::English
        }
    }
}

/// A Chinese (Han) character, in the unified and compatibility blocks and their extensions.
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// A stored value that is not one of the names this version knows.
#[derive(Debug, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for level in [
            TriageLevel::Emergency,
            TriageLevel::Urgent,
            TriageLevel::Routine,
            TriageLevel::SelfCare,
        ] {
            assert_eq!(level.as_str().parse::<TriageLevel>().unwrap(), level);
        }
        for role in [Role::Patient, Role::Assistant, Role::Doctor, Role::System] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!(TriageLevel::Emergency > TriageLevel::Urgent);
    }

    #[test]
    fn language_follows_the_script() {
        assert_eq!(Language::of_text("I have a headache"), Language::English);
        assert_eq!(
            Language::of_text("我头疼，吃了ibuprofen"),
            Language::Chinese
        );
        assert_eq!(Language::of_text("😀"), Language::English);
        assert_eq!(Language::from_code("zh-hans"), Language::Chinese);
        assert_eq!(Language::from_code("en"), Language::English);
    }

    #[test]
    fn references_do_not_reveal_the_id() {
        let id = PatientId::new_random();
        assert!(id.reference().starts_with("P-"));
        assert_eq!(id.reference().len(), 10);
        assert!(!id.log_tag().contains(&id.0.simple().to_string()[..8]));
    }
}
