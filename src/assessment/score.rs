//! The differential: a transparent score per condition, the way a clinician weighs a presentation.
//!
//! score = prior(prevalence) + Σ support(weight) of the findings present that the condition
//! expects − a share of the support of expected findings the patient denies − the weight of
//! findings present that argue against it − a small cost for each symptom it does not explain.
//! Weights act like log likelihood ratios; the scores become probabilities over the conditions
//! considered with a softmax that also keeps room for "something not listed".

use super::extract::Findings;
use super::knowledge::{
    ClinicalKnowledge, Condition, FindingIndex, FindingKind, Prevalence, SexLimit,
};

/// One condition in the differential.
#[derive(Debug, Clone)]
pub struct RankedCondition<'k> {
    pub condition: &'k Condition,
    /// Probability-like, 0–1, over the conditions considered.
    pub probability: f32,
    /// The findings present that support it, strongest first.
    pub supporting: Vec<FindingIndex>,
    /// The sum of the weights of the supporting findings.
    pub support: u32,
    pub score: f32,
}

/// Log-likelihood-ratio-like support of a weight (1–5).
fn support(weight: u8) -> f32 {
    match weight {
        1 => 0.6,
        2 => 1.2,
        3 => 1.9,
        4 => 2.7,
        _ => 3.6,
    }
}

fn prior(prevalence: Prevalence) -> f32 {
    match prevalence {
        Prevalence::VeryCommon => 0.0,
        Prevalence::Common => -0.5,
        Prevalence::Uncommon => -1.1,
        Prevalence::Rare => -1.8,
        Prevalence::VeryRare => -2.6,
    }
}

/// How much a denied expected finding counts against a condition, as a share of its support.
const DENIED_SHARE: f32 = 0.5;
/// Cost of each symptom or sign present that the condition does not explain.
const UNEXPLAINED: f32 = 0.35;
/// Cost for a condition of pregnancy (ICD-10 chapter O) when nobody said the patient is pregnant or
/// has just given birth: "bleeding with a late period" can still be an ectopic pregnancy.
const PREGNANCY_UNSTATED: f32 = 1.5;
/// Score of "a condition not in the list": keeps probabilities honest when little fits.
const UNLISTED: f32 = 0.8;

/// Ranks the conditions that fit the findings; the most likely first. Conditions without any
/// supporting finding, or outside their age and sex limits, are not considered.
pub fn rank<'k>(knowledge: &'k ClinicalKnowledge, findings: &Findings) -> Vec<RankedCondition<'k>> {
    let age = findings.measurements.age_years;
    let sex_is = |id: &str| findings.is_present_id(knowledge, id);
    let (male, female) = (sex_is("male"), sex_is("female"));
    let pregnancy_context = sex_is("pregnant") || sex_is("postpartum");
    let symptoms: Vec<FindingIndex> = findings
        .mentioned()
        .filter(|&(i, _)| findings.is_present(i))
        .map(|(i, _)| i)
        .filter(|&i| {
            matches!(
                knowledge.findings[i].kind,
                FindingKind::Symptom | FindingKind::Sign
            )
        })
        .collect();

    let mut ranked: Vec<RankedCondition<'k>> = Vec::new();
    for condition in &knowledge.conditions {
        match condition.sex {
            SexLimit::Female if male => continue,
            SexLimit::Male if female => continue,
            _ => {}
        }
        if let Some(age) = age
            && (condition.age_min_years.is_some_and(|lo| age < lo)
                || condition
                    .age_max_years
                    .is_some_and(|hi| age > hi * 1.1 + 0.05))
        {
            continue;
        }
        let mut score = prior(condition.prevalence);
        if condition.icd10.starts_with('O') {
            if male || findings.is_denied_id(knowledge, "pregnant") {
                continue;
            }
            if !pregnancy_context {
                score -= PREGNANCY_UNSTATED;
            }
        }
        let mut supporting: Vec<(FindingIndex, u8)> = Vec::new();
        for &(finding, weight) in &condition.findings {
            if findings.is_present(finding) {
                score += support(weight);
                supporting.push((finding, weight));
            } else if findings.is_denied(finding) {
                score -= DENIED_SHARE * support(weight);
            }
        }
        if supporting.is_empty() {
            continue;
        }
        for &(finding, weight) in &condition.against {
            if findings.is_present(finding) {
                score -= support(weight);
            }
        }
        let unexplained = symptoms
            .iter()
            .filter(|s| !condition.findings.iter().any(|(f, _)| f == *s))
            .count();
        score -= UNEXPLAINED * unexplained as f32;
        supporting.sort_by_key(|b| std::cmp::Reverse(b.1));
        ranked.push(RankedCondition {
            condition,
            probability: 0.0,
            support: supporting.iter().map(|(_, w)| u32::from(*w)).sum(),
            supporting: supporting.into_iter().map(|(f, _)| f).collect(),
            score,
        });
    }
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    let top = ranked.first().map_or(0.0, |r| r.score).max(UNLISTED);
    let total: f32 =
        ranked.iter().map(|r| (r.score - top).exp()).sum::<f32>() + (UNLISTED - top).exp();
    for r in &mut ranked {
        r.probability = (r.score - top).exp() / total;
    }
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assessment::knowledge::tests::fixture;

    fn ranked(k: &ClinicalKnowledge, messages: &[&str]) -> Vec<(String, f32)> {
        let findings = Findings::of_topic(k, messages.iter().copied());
        rank(k, &findings)
            .into_iter()
            .map(|r| (r.condition.id.clone(), r.probability))
            .collect()
    }

    fn score(k: &ClinicalKnowledge, messages: &[&str], id: &str) -> f32 {
        let findings = Findings::of_topic(k, messages.iter().copied());
        rank(k, &findings)
            .into_iter()
            .find(|r| r.condition.id == id)
            .map(|r| r.score)
            .expect("ranked")
    }

    #[test]
    fn supporting_findings_raise_a_condition_and_excluding_ones_lower_it() {
        let k = fixture();
        let headache = ranked(&k, &["I have a headache"]);
        assert_eq!(headache[0].0, "tension_headache");
        let meningism = ranked(&k, &["headache, stiff neck, light hurts my eyes, fever 39"]);
        assert_eq!(meningism[0].0, "meningitis", "{meningism:?}");
        let with = score(
            &k,
            &["headache, stiff neck, light hurts my eyes, fever 39"],
            "meningitis",
        );
        let unsaid = score(
            &k,
            &["headache and fever 39, light hurts my eyes"],
            "meningitis",
        );
        let denied = score(
            &k,
            &["headache and fever 39, light hurts my eyes, no stiff neck"],
            "meningitis",
        );
        assert!(
            denied < unsaid && unsaid < with,
            "{denied} < {unsaid} < {with}"
        );
        let chronic = score(
            &k,
            &["headache, stiff neck, light hurts my eyes, fever 39, for months"],
            "meningitis",
        );
        assert!(chronic < with, "{chronic} < {with}");
    }

    #[test]
    fn probabilities_are_ordered_and_bounded() {
        let k = fixture();
        let r = ranked(&k, &["runny nose and a headache"]);
        assert_eq!(r[0].0, "common_cold");
        assert!(r.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(r.iter().map(|(_, p)| p).sum::<f32>() < 1.0);
        assert!(ranked(&k, &["what is vitamin D for?"]).is_empty());
    }
}
