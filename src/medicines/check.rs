//! Checking medicines against each other and against allergies, with the rules of
//! [`MedicineKnowledge`]: for each pair, the worst rule that applies, and among equally bad ones the
//! most specific (a rule for the drug itself before its class).

use super::knowledge::{Agent, AllergyRule, InteractionRule, MedicineKnowledge, Severity};

/// An interaction found between two medicines.
#[derive(Debug, Clone, Copy)]
pub struct Interaction<'k> {
    pub a: Agent,
    pub b: Agent,
    pub rule: &'k InteractionRule,
}

impl Interaction<'_> {
    pub fn severity(&self) -> Severity {
        self.rule.severity
    }
}

/// How an allergy bears on a medicine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AllergyRisk {
    /// Cross-reactivity is possible but uncommon: use with caution or after specialist advice.
    CrossReactive,
    /// The medicine is the allergen or of its kind: avoid.
    Avoid,
}

impl AllergyRisk {
    pub fn as_str(self) -> &'static str {
        match self {
            AllergyRisk::CrossReactive => "cross-reactive",
            AllergyRisk::Avoid => "avoid",
        }
    }
}

/// A medicine that conflicts with an allergy.
#[derive(Debug, Clone, Copy)]
pub struct AllergyConflict<'k> {
    pub allergy: Agent,
    pub medicine: Agent,
    pub risk: AllergyRisk,
    /// The rule behind it; `None` when the medicine simply is (of) the allergen.
    pub rule: Option<&'k AllergyRule>,
}

impl MedicineKnowledge {
    /// The interaction between two medicines, if any rule covers them.
    pub fn interaction(&self, x: Agent, y: Agent) -> Option<Interaction<'_>> {
        if x == y {
            return None;
        }
        self.interactions
            .iter()
            .filter_map(|rule| {
                if self.covers(rule.a, x) && self.covers(rule.b, y) {
                    Some(Interaction { a: x, b: y, rule })
                } else if self.covers(rule.a, y) && self.covers(rule.b, x) {
                    Some(Interaction { a: y, b: x, rule })
                } else {
                    None
                }
            })
            .max_by_key(|found| {
                (
                    found.rule.severity,
                    self.specificity(found.rule.a)
                        .min(self.specificity(found.rule.b)),
                    self.specificity(found.rule.a)
                        .max(self.specificity(found.rule.b)),
                )
            })
    }

    /// Every interaction among `medicines` (each pair once, the worst first).
    pub fn interactions_among(&self, medicines: &[Agent]) -> Vec<Interaction<'_>> {
        let mut unique: Vec<Agent> = Vec::new();
        for m in medicines {
            if !unique.contains(m) {
                unique.push(*m);
            }
        }
        let mut found = Vec::new();
        for (i, x) in unique.iter().enumerate() {
            for y in &unique[i + 1..] {
                if let Some(interaction) = self.interaction(*x, *y) {
                    found.push(interaction);
                }
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.rule.severity));
        found
    }

    /// How an allergy to `allergy` bears on `medicine`, if at all.
    pub fn allergy_conflict(&self, allergy: Agent, medicine: Agent) -> Option<AllergyConflict<'_>> {
        let conflict = |risk, rule| AllergyConflict {
            allergy,
            medicine,
            risk,
            rule,
        };
        // The rules for this allergen, and for any class it belongs to (an amoxicillin allergy is a
        // penicillin allergy for prescribing).
        let rules: Vec<&AllergyRule> = self
            .allergies
            .iter()
            .filter(|r| self.covers(r.allergen, allergy))
            .collect();
        if self.covers(allergy, medicine) {
            return Some(conflict(AllergyRisk::Avoid, rules.first().copied()));
        }
        for rule in &rules {
            if self.covers(rule.allergen, medicine)
                || rule.conflicts.iter().any(|c| self.covers(*c, medicine))
            {
                return Some(conflict(AllergyRisk::Avoid, Some(*rule)));
            }
        }
        rules
            .iter()
            .find(|rule| {
                rule.cross_reactive
                    .iter()
                    .any(|c| self.covers(*c, medicine))
            })
            .map(|rule| conflict(AllergyRisk::CrossReactive, Some(*rule)))
    }

    /// Every conflict between the allergies and the medicines, the worst first.
    pub fn allergy_conflicts(
        &self,
        allergies: &[Agent],
        medicines: &[Agent],
    ) -> Vec<AllergyConflict<'_>> {
        let mut found: Vec<AllergyConflict<'_>> = Vec::new();
        for allergy in allergies {
            for medicine in medicines {
                if found
                    .iter()
                    .any(|f| f.allergy == *allergy && f.medicine == *medicine)
                {
                    continue;
                }
                if let Some(conflict) = self.allergy_conflict(*allergy, *medicine) {
                    found.push(conflict);
                }
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.risk));
        found
    }
}
