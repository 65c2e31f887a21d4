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
    fn references_do_not_reveal_the_id() {
        let id = PatientId::new_random();
        assert!(id.reference().starts_with("P-"));
        assert_eq!(id.reference().len(), 10);
        assert!(!id.log_tag().contains(&id.0.simple().to_string()[..8]));
    }
}
