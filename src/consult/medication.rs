//! The patient's medicines and allergies in the consultation: what their messages say they take
//! (proposed, saved only once they confirm), the list they keep with `/meds`, and the check of every
//! exchange against it.

use super::ports::{Clock, Generator};
use super::service::{ConsultError, ConsultationService, ServiceStore};
use crate::assessment::ClinicalKnowledge;
use crate::domain::{Language, MedicationEntry, MedicationId, MedicationKind, PatientId};
use crate::medicines::{Agent, MedicationReview, NameLookup, StatementKind};

/// A medicine or allergy a patient's message mentions that is not on their list: offered to them
/// with one tap to save it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicationProposal {
    pub kind: MedicationKind,
    /// The drug or class id.
    pub drug: String,
}

/// What a typed name became when added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub entry: MedicationEntry,
    /// Whether medbot knows the medicine (and so can check it).
    pub known: bool,
}

impl<G: Generator, S: ServiceStore, C: Clock> ConsultationService<G, S, C> {
    pub(super) fn lookup<'k>(&'k self, knowledge: &'k ClinicalKnowledge) -> NameLookup<'k> {
        NameLookup {
            knowledge: &knowledge.medicines,
            lexicon: Some(self.reviewer.lexicon()),
        }
    }

    /// The medicines named in `question` and `draft`, checked against `list` and against what
    /// the patient said they take or are allergic to anywhere in the topic (`said`).
    pub(super) fn medication_review<'k>(
        &'k self,
        knowledge: &'k ClinicalKnowledge,
        list: &[MedicationEntry],
        said: &[&str],
        question: &[&str],
        draft: &str,
    ) -> MedicationReview<'k> {
        MedicationReview::new(self.lookup(knowledge), list, said, question, draft)
    }

    async fn consented(&self, patient: PatientId) -> Result<(), ConsultError> {
        if self.store.has_consented(patient).await? {
            Ok(())
        } else {
            Err(ConsultError::NoConsent)
        }
    }

    /// What `message` says the patient takes or is allergic to, less what their list has.
    ///
    /// # Errors
    /// [`ConsultError::NoConsent`], or [`ConsultError::Store`].
    pub async fn medication_proposals(
        &self,
        patient: PatientId,
        message: &str,
    ) -> Result<Vec<MedicationProposal>, ConsultError> {
        let knowledge = self.clinical.current();
        let statements = self.lookup(&knowledge).statements(message);
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        self.consented(patient).await?;
        let list = self.store.medications(patient).await?;
        let medicines = &knowledge.medicines;
        Ok(statements
            .into_iter()
            .map(|s| MedicationProposal {
                kind: match s.kind {
                    StatementKind::Takes => MedicationKind::Medicine,
                    StatementKind::AllergicTo => MedicationKind::Allergy,
                },
                drug: medicines.id_of(s.agent).to_owned(),
            })
            .filter(|p| {
                !list
                    .iter()
                    .any(|e| e.kind == p.kind && e.drug.as_deref() == Some(p.drug.as_str()))
            })
            // One message's offer fits a phone screen.
            .take(MAX_OFFERS)
            .collect())
    }

    /// The patient's list, oldest first.
    ///
    /// # Errors
    /// [`ConsultError::NoConsent`], or [`ConsultError::Store`].
    pub async fn medications(
        &self,
        patient: PatientId,
    ) -> Result<Vec<MedicationEntry>, ConsultError> {
        self.consented(patient).await?;
        Ok(self.store.medications(patient).await?)
    }

    /// Saves a proposal the patient confirmed; `None` when the id is not (any longer) in the
    /// medicine knowledge.
    ///
    /// # Errors
    /// [`ConsultError::NoConsent`], or [`ConsultError::Store`].
    pub async fn confirm_medication(
        &self,
        patient: PatientId,
        kind: MedicationKind,
        drug: &str,
    ) -> Result<Option<MedicationEntry>, ConsultError> {
        self.consented(patient).await?;
        let knowledge = self.clinical.current();
        let Some(agent) = knowledge.medicines.by_id(drug) else {
            return Ok(None);
        };
        let name = knowledge.medicines.name_of(agent).to_owned();
        let list = self.store.medications(patient).await?;
        let present = list
            .iter()
            .any(|e| e.kind == kind && e.drug.as_deref() == Some(drug));
        if !present && list.len() >= MAX_ENTRIES {
            return Err(ConsultError::MedicationListFull { limit: MAX_ENTRIES });
        }
        Ok(Some(
            self.store
                .add_medication(patient, kind, Some(drug), &name)
                .await?,
        ))
    }

    /// Adds what the patient typed: one name or several ("warfarin, metformin"; "华法林和二甲双胍").
    /// A name medbot does not know is kept as written (a doctor reads it; it cannot be checked).
    ///
    /// # Errors
    /// [`ConsultError::NoConsent`], [`ConsultError::EmptyMessage`], or [`ConsultError::Store`].
    pub async fn add_medications(
        &self,
        patient: PatientId,
        kind: MedicationKind,
        typed: &str,
    ) -> Result<Vec<Added>, ConsultError> {
        self.consented(patient).await?;
        let mut names = split_names(typed);
        if names.is_empty() {
            return Err(ConsultError::EmptyMessage);
        }
        // A list is a few dozen medicines; a message of a thousand names is not one.
        names.truncate(MAX_NAMES_PER_ADD);
        let mut room = MAX_ENTRIES.saturating_sub(self.store.medications(patient).await?.len());
        if room == 0 {
            return Err(ConsultError::MedicationListFull { limit: MAX_ENTRIES });
        }
        let knowledge = self.clinical.current();
        let lookup = self.lookup(&knowledge);
        let mut added = Vec::new();
        for name in names {
            let mut found: Vec<Agent> = lookup.resolve_all(name);
            if found.is_empty() {
                let mentions = lookup.find(name);
                if mentions.len() == 1 {
                    found.push(mentions[0].agent);
                }
            }
            if found.is_empty() {
                let kept: String = name.chars().take(MAX_NAME_CHARS).collect();
                let entry = self
                    .store
                    .add_medication(patient, kind, None, &kept)
                    .await?;
                added.push(Added {
                    entry,
                    known: false,
                });
                room -= 1;
            }
            // A combination brand is saved as its components, each checked.
            for agent in found {
                if room == 0 {
                    break;
                }
                let entry = self
                    .store
                    .add_medication(
                        patient,
                        kind,
                        Some(knowledge.medicines.id_of(agent)),
                        knowledge.medicines.name_of(agent),
                    )
                    .await?;
                added.push(Added { entry, known: true });
                room -= 1;
            }
            if room == 0 {
                break;
            }
        }
        Ok(added)
    }

    /// Removes one entry of the patient's list; `false` when it is not theirs (or gone already).
    ///
    /// # Errors
    /// [`ConsultError::NoConsent`], or [`ConsultError::Store`].
    pub async fn remove_medication(
        &self,
        patient: PatientId,
        id: MedicationId,
    ) -> Result<bool, ConsultError> {
        self.consented(patient).await?;
        Ok(self.store.remove_medication(patient, id).await?)
    }

    /// Whether a reply to "which medicine?" is a list of names rather than a message for the
    /// consultation: not an emergency, no question, and every part either a medicine medbot knows
    /// or a few words (a name it does not know).
    pub fn reads_as_medicine_names(&self, typed: &str) -> bool {
        if self.emergency_advice(typed).is_some() || typed.contains(['?', '？']) {
            return false;
        }
        let names = split_names(typed);
        if names.is_empty() || names.len() > MAX_NAMES_PER_ADD {
            return false;
        }
        let knowledge = self.clinical.current();
        let lookup = self.lookup(&knowledge);
        names.iter().all(|name| {
            lookup.resolve(name).is_some()
                || (name.split_whitespace().count() <= 3
                    && name.chars().filter(|c| crate::domain::is_han(*c)).count() <= 8)
        })
    }

    /// Removes the entries a typed name stands for: the same medicine by any of its names
    /// ("Coumadin" removes warfarin), or an unknown one as it was written; never a partial match.
    /// Returns how many were removed.
    ///
    /// # Errors
    /// [`ConsultError::NoConsent`], or [`ConsultError::Store`].
    pub async fn remove_medications_named(
        &self,
        patient: PatientId,
        typed: &str,
    ) -> Result<usize, ConsultError> {
        let list = self.medications(patient).await?;
        let wanted_id = {
            let knowledge = self.clinical.current();
            self.lookup(&knowledge)
                .resolve(typed)
                .map(|agent| knowledge.medicines.id_of(agent).to_owned())
        };
        let wanted = crate::medicines::normalise(typed);
        let mut removed = 0;
        for entry in list {
            let same = match (&wanted_id, entry.drug.as_deref()) {
                (Some(id), Some(drug)) => id == drug,
                _ => !wanted.is_empty() && crate::medicines::normalise(&entry.name) == wanted,
            };
            if same && self.store.remove_medication(patient, entry.id).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// How an entry is shown to the patient: the generic name in their language (with the English
    /// one for Chinese), or their own words for a medicine medbot does not know.
    pub fn medication_name(&self, drug: Option<&str>, name: &str, language: Language) -> String {
        let knowledge = self.clinical.current();
        let medicines = &knowledge.medicines;
        match drug.and_then(|id| medicines.by_id(id)) {
            Some(agent) => match language {
                Language::English => medicines.name_of(agent).to_owned(),
                Language::Chinese => {
                    format!(
                        "{} ({})",
                        medicines.name_zh_of(agent),
                        medicines.name_of(agent)
                    )
                }
            },
            None => name.to_owned(),
        }
    }
}

/// Longer typed names are cut: a name is a few words, not a message.
const MAX_NAME_CHARS: usize = 80;
/// The most entries one patient's list holds (it must fit one Telegram message with its buttons).
pub const MAX_ENTRIES: usize = 40;
/// The most proposals offered for one message.
const MAX_OFFERS: usize = 8;
/// The most names one message adds.
const MAX_NAMES_PER_ADD: usize = 20;

/// The names in what a patient typed, split at commas, semicolons, new lines, "and" and 和/、.
fn split_names(typed: &str) -> Vec<&str> {
    typed
        .split([',', ';', '\n', '，', '；', '、', '和', '/'])
        .flat_map(|part| part.split(" and "))
        .map(str::trim)
        .filter(|name| name.chars().any(char::is_alphanumeric))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_lists_are_split_into_names() {
        assert_eq!(
            split_names("warfarin, metformin and ramipril"),
            ["warfarin", "metformin", "ramipril"]
        );
        assert_eq!(
            split_names("华法林和二甲双胍、阿司匹林"),
            ["华法林", "二甲双胍", "阿司匹林"]
        );
        assert!(split_names(" , ;").is_empty());
    }
}
