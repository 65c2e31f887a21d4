//! What the medicines in one exchange mean for the doctor: the medicines named in the patient's
//! question and in the draft, checked against the patient's list and allergies, as review reasons
//! and as the section of the doctor's card that says which and why.

use super::check::{AllergyConflict, Interaction};
use super::knowledge::{Agent, MedicineKnowledge};
use super::names::{NameLookup, StatementKind};
use crate::domain::{MedicationEntry, MedicationKind};

/// The medicines of one exchange, checked.
#[derive(Debug)]
pub struct MedicationReview<'k> {
    knowledge: &'k MedicineKnowledge,
    /// From the patient's list: known medicines, known allergies, and names medbot does not know.
    pub taking: Vec<Agent>,
    pub allergies: Vec<Agent>,
    pub unknown: Vec<String>,
    /// Said in the conversation ("I'm on warfarin") but not on the list; checked like it.
    pub said_taking: Vec<Agent>,
    pub said_allergies: Vec<Agent>,
    /// Named in the patient's messages, and in the draft.
    pub in_question: Vec<Agent>,
    pub in_draft: Vec<Agent>,
    /// Interactions with at least one side named in the exchange: a reason for review.
    pub interactions: Vec<Interaction<'k>>,
    /// Interactions within the patient's list alone: shown to the doctor.
    pub list_interactions: Vec<Interaction<'k>>,
    /// Medicines named in the exchange (or on the list) that conflict with an allergy.
    pub allergy_conflicts: Vec<AllergyConflict<'k>>,
}

impl<'k> MedicationReview<'k> {
    /// Checks the medicines named in `question` (the patient's unanswered messages) and `draft`
    /// against each other, against the patient's `list`, and against what the patient's messages
    /// in the topic (`said`) say they take or are allergic to, saved or not.
    pub fn new(
        lookup: NameLookup<'k>,
        list: &[MedicationEntry],
        said: &[&str],
        question: &[&str],
        draft: &str,
    ) -> Self {
        let knowledge = lookup.knowledge;
        let mut taking = Vec::new();
        let mut allergies = Vec::new();
        let mut unknown = Vec::new();
        for entry in list {
            let agent = entry.drug.as_deref().and_then(|id| knowledge.by_id(id));
            match (entry.kind, agent) {
                (MedicationKind::Medicine, Some(a)) => push_once(&mut taking, a),
                (MedicationKind::Allergy, Some(a)) => push_once(&mut allergies, a),
                (_, None) => unknown.push(entry.name.clone()),
            }
        }
        let mut said_taking = Vec::new();
        let mut said_allergies = Vec::new();
        for text in said {
            for statement in lookup.statements(text) {
                let (saved, unsaved) = match statement.kind {
                    StatementKind::Takes => (&taking, &mut said_taking),
                    StatementKind::AllergicTo => (&allergies, &mut said_allergies),
                };
                if !saved.contains(&statement.agent) {
                    push_once(unsaved, statement.agent);
                }
            }
        }
        let mut in_question = Vec::new();
        for text in question {
            for mention in lookup.find(text) {
                push_once(&mut in_question, mention.agent);
            }
        }
        let in_draft: Vec<Agent> = lookup.find(draft).into_iter().map(|m| m.agent).collect();
        let named: Vec<Agent> =
            in_question
                .iter()
                .chain(&in_draft)
                .copied()
                .fold(Vec::new(), |mut all, a| {
                    push_once(&mut all, a);
                    all
                });
        let mut everything = taking.clone();
        for a in said_taking.iter().chain(&named) {
            push_once(&mut everything, *a);
        }
        let all_allergies: Vec<Agent> = allergies.iter().chain(&said_allergies).copied().collect();
        let (interactions, list_interactions) = knowledge
            .interactions_among(&everything)
            .into_iter()
            .partition(|i| named.contains(&i.a) || named.contains(&i.b));
        let allergy_conflicts = knowledge.allergy_conflicts(&all_allergies, &everything);
        Self {
            knowledge,
            taking,
            allergies,
            unknown,
            said_taking,
            said_allergies,
            in_question,
            in_draft,
            interactions,
            list_interactions,
            allergy_conflicts,
        }
    }

    /// An allergy conflict with a medicine named in this exchange (not one only on the list).
    pub fn named_allergy_conflicts(&self) -> impl Iterator<Item = &AllergyConflict<'k>> {
        self.allergy_conflicts.iter().filter(|c| {
            self.in_question.contains(&c.medicine) || self.in_draft.contains(&c.medicine)
        })
    }

    /// The card's medicines section, for doctors only; empty when there is nothing to say.
    pub fn for_doctor(&self) -> String {
        let k = self.knowledge;
        let nothing_named = self.in_question.is_empty() && self.in_draft.is_empty();
        if nothing_named
            && self.taking.is_empty()
            && self.allergies.is_empty()
            && self.unknown.is_empty()
            && self.said_taking.is_empty()
            && self.said_allergies.is_empty()
        {
            return String::new();
        }
        let names = |agents: &[Agent]| -> String {
            agents
                .iter()
                .map(|a| k.name_of(*a).to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = String::from("Medicines (from the patient's /meds list):");
        text.push_str(&format!(
            "\nTakes: {}",
            if self.taking.is_empty() {
                "none recorded".to_owned()
            } else {
                names(&self.taking)
            }
        ));
        text.push_str(&format!(
            "\nAllergies: {}",
            if self.allergies.is_empty() {
                "none recorded".to_owned()
            } else {
                names(&self.allergies)
            }
        ));
        if !self.unknown.is_empty() {
            text.push_str(&format!(
                "\nNot in medbot's list, not checked: {}",
                self.unknown.join(", ")
            ));
        }
        if !self.said_taking.is_empty() {
            text.push_str(&format!(
                "\nSays they take (not on the list): {}",
                names(&self.said_taking)
            ));
        }
        if !self.said_allergies.is_empty() {
            text.push_str(&format!(
                "\nSays they are allergic to (not on the list): {}",
                names(&self.said_allergies)
            ));
        }
        if !self.in_question.is_empty() {
            text.push_str(&format!(
                "\nNamed by the patient: {}",
                names(&self.in_question)
            ));
        }
        if !self.in_draft.is_empty() {
            text.push_str(&format!("\nNamed in the draft: {}", names(&self.in_draft)));
        }
        for conflict in &self.allergy_conflicts {
            text.push_str(&format!(
                "\n⚠ Allergy conflict ({}): {} with the {} allergy.",
                conflict.risk.as_str(),
                k.name_of(conflict.medicine),
                k.name_of(conflict.allergy),
            ));
            if let Some(rule) = conflict.rule {
                text.push_str(&format!(" {} [{}]", rule.advice, rule.source));
            }
        }
        for (interaction, on_list) in self
            .interactions
            .iter()
            .map(|i| (i, false))
            .chain(self.list_interactions.iter().map(|i| (i, true)))
        {
            text.push_str(&format!(
                "\n⚠ Interaction ({}{}): {} + {}. {} What to do: {} [{}]",
                interaction.rule.severity.as_str(),
                if on_list { ", both on the list" } else { "" },
                k.name_of(interaction.a),
                k.name_of(interaction.b),
                interaction.rule.mechanism,
                interaction.rule.advice,
                interaction.rule.source,
            ));
        }
        if self.interactions.is_empty() && self.list_interactions.is_empty() && !nothing_named {
            text.push_str("\nNo interaction found in medbot's rules (not a guarantee).");
        }
        text
    }
}

fn push_once(list: &mut Vec<Agent>, agent: Agent) {
    if !list.contains(&agent) {
        list.push(agent);
    }
}
