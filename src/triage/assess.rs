//! Triage of a presentation: the most urgent of the red-flag rules and of the conditions the
//! differential makes likely. A condition counts at a lower probability the more dangerous it is:
//! a one-in-ten chance of meningitis is an emergency, a one-in-ten chance of a cold is nothing.

use std::sync::Arc;

use serde::Serialize;

use super::patient::red_flags;
use super::rules::RedFlag;
use crate::assessment::{self, ClinicalKnowledge, Findings, RankedCondition};
use crate::domain::TriageLevel;
use crate::triage::text::Mention;

/// How many conditions the differential shows.
pub const DIFFERENTIAL_SIZE: usize = 5;
/// A likely emergency condition makes the presentation an emergency from this probability...
const EMERGENCY_PROBABILITY: f32 = 0.10;
/// ... when at least this much evidence (the sum of its supporting weights) points to it.
const EMERGENCY_SUPPORT: u32 = 5;
/// An urgent condition counts from this probability.
const URGENT_PROBABILITY: f32 = 0.20;
/// A condition's red flag counts when the condition has at least this probability.
const RED_FLAG_PROBABILITY: f32 = 0.15;
/// A leading self-care condition this likely outweighs the rules that only ask for a routine
/// appointment ("abdominal pain", "symptoms for weeks"); never an urgent or emergency rule.
const CONFIDENT_PROBABILITY: f32 = 0.5;
/// The leading condition sets the floor of the level (routine, self care) from this probability.
const LEADING_PROBABILITY: f32 = 0.25;

/// Why the level is what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    RedFlag(RedFlag),
    /// A condition of the differential (its id), likely enough at its urgency.
    Condition(String),
    NoWarningSignsFound,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::RedFlag(flag) => f.write_str(flag.as_str()),
            Reason::Condition(id) => write!(f, "possible_{id}"),
            Reason::NoWarningSignsFound => f.write_str("no_warning_signs_found"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A finding as reported: present or denied, with its value when it was measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingReport {
    pub id: String,
    pub label: String,
    #[serde(skip)]
    pub label_zh: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
}

/// A condition of the differential, with what the patient and the doctor may be shown of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionReport {
    pub id: String,
    pub name: String,
    pub name_zh: String,
    pub icd10: String,
    pub probability: f32,
    /// Labels of the findings that support it, strongest first.
    pub supporting: Vec<String>,
    pub urgency: TriageLevel,
    #[serde(skip)]
    pub about: [String; 2],
    #[serde(skip)]
    pub now: [String; 2],
    #[serde(skip)]
    pub seek_care: [String; 2],
    /// First-line options, for doctors only.
    #[serde(skip)]
    pub treatment: Vec<String>,
    #[serde(skip)]
    pub source: String,
    #[serde(skip)]
    pub supporting_zh: Vec<String>,
}

/// What triage found: the level, why, the findings and the differential.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub level: TriageLevel,
    /// The rules and conditions that set the level, most serious first.
    pub reasons: Vec<Reason>,
    pub findings: Vec<FindingReport>,
    /// The most likely conditions, most likely first (at most [`DIFFERENTIAL_SIZE`]).
    pub conditions: Vec<ConditionReport>,
}

impl Assessment {
    pub fn is_emergency(&self) -> bool {
        self.level == TriageLevel::Emergency
    }

    /// The red-flag rules among the reasons.
    pub fn red_flags(&self) -> impl Iterator<Item = RedFlag> + '_ {
        self.reasons.iter().filter_map(|r| match r {
            Reason::RedFlag(flag) => Some(*flag),
            _ => None,
        })
    }

    /// The reasons as codes, for logs and cards.
    pub fn reason_codes(&self) -> Vec<String> {
        self.reasons.iter().map(ToString::to_string).collect()
    }
}

/// Assesses one message with the built-in knowledge.
pub fn assess(message: &str) -> Assessment {
    assess_topic(&ClinicalKnowledge::builtin(), &[message])
}

/// Assesses the patient's messages of one topic, oldest first: findings accumulate over the
/// turns, and a later word overrides an earlier one.
pub fn assess_topic(knowledge: &Arc<ClinicalKnowledge>, messages: &[&str]) -> Assessment {
    let flags = red_flags(messages);
    let findings = Findings::of_topic(knowledge, messages.iter().copied());
    let ranked = assessment::rank(knowledge, &findings);

    let mut levels: Vec<(TriageLevel, Reason)> = flags
        .iter()
        .map(|(level, flag)| (*level, Reason::RedFlag(*flag)))
        .collect();
    for (position, r) in ranked.iter().take(DIFFERENTIAL_SIZE).enumerate() {
        if let Some(level) = condition_level(&findings, r, position == 0) {
            levels.push((level, Reason::Condition(r.condition.id.clone())));
        }
    }
    levels.sort_by_key(|(level, _)| std::cmp::Reverse(*level));
    let mut level = levels.first().map_or(TriageLevel::SelfCare, |(l, _)| *l);
    if level == TriageLevel::Routine
        && let Some(leading) = ranked.first()
        && leading.probability >= CONFIDENT_PROBABILITY
        && leading.condition.urgency == TriageLevel::SelfCare
    {
        level = TriageLevel::SelfCare;
    }
    let mut reasons: Vec<Reason> = levels
        .into_iter()
        .filter(|(l, _)| *l == level)
        .map(|(_, r)| r)
        .collect();
    reasons.dedup();
    if level == TriageLevel::SelfCare {
        // A likely self-limiting condition is not a warning sign.
        reasons.clear();
    }
    if reasons.is_empty() {
        reasons.push(Reason::NoWarningSignsFound);
    }
    Assessment {
        level,
        reasons,
        findings: report_findings(knowledge, &findings),
        conditions: ranked
            .iter()
            .take(DIFFERENTIAL_SIZE)
            .map(|r| report_condition(knowledge, r))
            .collect(),
    }
}

/// The level a condition of the differential asks for, if it is likely enough to ask.
fn condition_level(
    findings: &Findings,
    ranked: &RankedCondition<'_>,
    leading: bool,
) -> Option<TriageLevel> {
    let c = ranked.condition;
    let p = ranked.probability;
    let flagged = |list: &[usize]| list.iter().any(|&f| findings.is_present(f));
    if p >= RED_FLAG_PROBABILITY && flagged(&c.red_flags) {
        return Some(TriageLevel::Emergency);
    }
    if c.urgency == TriageLevel::Emergency
        && p >= EMERGENCY_PROBABILITY
        && ranked.support >= EMERGENCY_SUPPORT
    {
        return Some(TriageLevel::Emergency);
    }
    if c.urgency >= TriageLevel::Urgent && p >= URGENT_PROBABILITY {
        return Some(TriageLevel::Urgent);
    }
    if p >= EMERGENCY_PROBABILITY && flagged(&c.raise_to_urgent) {
        return Some(TriageLevel::Urgent);
    }
    if leading && p >= LEADING_PROBABILITY {
        return Some(c.urgency.min(TriageLevel::Routine));
    }
    None
}

fn report_findings(knowledge: &ClinicalKnowledge, findings: &Findings) -> Vec<FindingReport> {
    let mut out: Vec<FindingReport> = findings
        .mentioned()
        .map(|(i, mention)| {
            let f = &knowledge.findings[i];
            FindingReport {
                id: f.id.clone(),
                label: f.label.clone(),
                label_zh: f.label_zh.clone(),
                status: if mention == Mention::Present {
                    "present"
                } else {
                    "absent"
                },
                value: None,
                unit: None,
            }
        })
        .collect();
    let m = &findings.measurements;
    let measured: [(&str, &str, &str, Option<f32>, &'static str); 8] = [
        ("temperature", "temperature", "体温", m.temperature_c, "°C"),
        ("heart_rate", "heart rate", "心率", m.heart_rate, "/min"),
        (
            "systolic_bp",
            "systolic blood pressure",
            "收缩压",
            m.systolic,
            "mmHg",
        ),
        (
            "diastolic_bp",
            "diastolic blood pressure",
            "舒张压",
            m.diastolic,
            "mmHg",
        ),
        (
            "respiratory_rate",
            "respiratory rate",
            "呼吸频率",
            m.respiratory_rate,
            "/min",
        ),
        ("spo2", "oxygen saturation", "血氧饱和度", m.spo2, "%"),
        ("glucose", "blood glucose", "血糖", m.glucose_mmol, "mmol/L"),
        ("age", "age", "年龄", m.age_years, "years"),
    ];
    for (id, label, label_zh, value, unit) in measured {
        if let Some(value) = value {
            out.push(FindingReport {
                id: id.to_owned(),
                label: label.to_owned(),
                label_zh: label_zh.to_owned(),
                status: "measured",
                value: Some((value * 100.0).round() / 100.0),
                unit: Some(unit),
            });
        }
    }
    out
}

fn report_condition(knowledge: &ClinicalKnowledge, r: &RankedCondition<'_>) -> ConditionReport {
    let c = r.condition;
    ConditionReport {
        id: c.id.clone(),
        name: c.name.clone(),
        name_zh: c.name_zh.clone(),
        icd10: c.icd10.clone(),
        probability: (r.probability * 1000.0).round() / 1000.0,
        supporting: r
            .supporting
            .iter()
            .map(|&f| knowledge.findings[f].label.clone())
            .collect(),
        supporting_zh: r
            .supporting
            .iter()
            .map(|&f| knowledge.findings[f].label_zh.clone())
            .collect(),
        urgency: c.urgency,
        about: [c.english.about.clone(), c.chinese.about.clone()],
        now: [c.english.now.clone(), c.chinese.now.clone()],
        seek_care: [c.english.seek_care.clone(), c.chinese.seek_care.clone()],
        treatment: c.treatment.clone(),
        source: c.source.clone(),
    }
}
