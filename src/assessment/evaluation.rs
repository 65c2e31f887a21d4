//! Measuring the assessment against case sets written by clinicians: triage accuracy, the confusion
//! matrix, emergencies under-triaged, and whether the expected diagnosis is in the top 1, 3 or 5.
//! Cases are JSON lines: {"id", "lang", "style", "level", "icd10", "diagnosis", "text"} (or
//! "messages": [...] for a conversation).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::knowledge::ClinicalKnowledge;
use crate::domain::TriageLevel;
use crate::triage::{Assessment, assess_topic};

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Case {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub lang: String,
    #[serde(default)]
    pub style: String,
    pub level: TriageLevel,
    pub icd10: String,
    #[serde(default)]
    pub diagnosis: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub messages: Vec<String>,
}

/// Why a case file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
}

/// Reads the cases in a `.jsonl` file, or in every `.jsonl` file of a folder (sorted by name).
///
/// # Errors
/// A file that cannot be read, or a line that is not a case.
pub fn load_cases(path: &Path) -> Result<Vec<Case>, CaseError> {
    let read_err = |source| CaseError::Read {
        path: path.display().to_string(),
        source,
    };
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        let mut all = Vec::new();
        for file in files {
            all.extend(load_cases(&file)?);
        }
        return Ok(all);
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str::<Case>(line).map_err(|e| CaseError::Parse {
                path: path.display().to_string(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

const LEVELS: [TriageLevel; 4] = [
    TriageLevel::Emergency,
    TriageLevel::Urgent,
    TriageLevel::Routine,
    TriageLevel::SelfCare,
];

fn index(level: TriageLevel) -> usize {
    LEVELS
        .iter()
        .position(|&l| l == level)
        .expect("every level is listed")
}

/// Whether a condition's code names the expected diagnosis: the same ICD-10 category (the first
/// three characters), as symptom-checker studies count it.
pub fn same_diagnosis(expected: &str, got: &str) -> bool {
    let category = |code: &str| {
        code.trim()
            .to_ascii_uppercase()
            .chars()
            .take(3)
            .collect::<String>()
    };
    category(expected) == category(got)
}

/// One case that went wrong, for a tuning report.
#[derive(Debug, Clone)]
pub struct Miss {
    pub case: Case,
    pub level: TriageLevel,
    pub reasons: Vec<String>,
    pub conditions: Vec<(String, String, f32)>,
    pub rank: Option<usize>,
}

/// The figures for one set of cases.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub cases: usize,
    /// Rows: expected; columns: assessed (emergency, urgent, routine, self care).
    pub matrix: [[usize; 4]; 4],
    pub top1: usize,
    pub top3: usize,
    pub top5: usize,
    pub misses: Vec<Miss>,
    pub under_triaged_emergencies: Vec<String>,
}

impl Report {
    pub fn triage_exact(&self) -> usize {
        (0..4).map(|i| self.matrix[i][i]).sum()
    }

    pub fn triage_accuracy(&self) -> f64 {
        ratio(self.triage_exact(), self.cases)
    }

    pub fn top(&self, k: usize) -> f64 {
        ratio(
            match k {
                1 => self.top1,
                3 => self.top3,
                _ => self.top5,
            },
            self.cases,
        )
    }

    /// Cases assessed as more urgent than expected.
    pub fn over_triaged(&self) -> usize {
        (0..4)
            .map(|i| (0..i).map(|j| self.matrix[i][j]).sum::<usize>())
            .sum()
    }

    /// Cases assessed as less urgent than expected.
    pub fn under_triaged(&self) -> usize {
        (0..4)
            .map(|i| (i + 1..4).map(|j| self.matrix[i][j]).sum::<usize>())
            .sum()
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// Assesses every case.
pub fn evaluate(knowledge: &Arc<ClinicalKnowledge>, cases: &[Case]) -> Report {
    let mut report = Report {
        cases: cases.len(),
        ..Report::default()
    };
    for case in cases {
        let assessment: Assessment = if case.messages.is_empty() {
            assess_topic(knowledge, &[case.text.as_str()])
        } else {
            let said: Vec<&str> = case.messages.iter().map(String::as_str).collect();
            assess_topic(knowledge, &said)
        };
        report.matrix[index(case.level)][index(assessment.level)] += 1;
        let rank = assessment
            .conditions
            .iter()
            .position(|c| same_diagnosis(&case.icd10, &c.icd10));
        if rank == Some(0) {
            report.top1 += 1;
        }
        if rank.is_some_and(|r| r < 3) {
            report.top3 += 1;
        }
        if rank.is_some_and(|r| r < 5) {
            report.top5 += 1;
        }
        if case.level == TriageLevel::Emergency && assessment.level != TriageLevel::Emergency {
            report.under_triaged_emergencies.push(case.id.clone());
        }
        if assessment.level != case.level || rank.is_none_or(|r| r >= 3) {
            report.misses.push(Miss {
                case: case.clone(),
                level: assessment.level,
                reasons: assessment.reason_codes(),
                conditions: assessment
                    .conditions
                    .iter()
                    .map(|c| (c.id.clone(), c.icd10.clone(), c.probability))
                    .collect(),
                rank,
            });
        }
    }
    report
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cases: {}", self.cases)?;
        writeln!(
            f,
            "triage exact: {}/{} = {:.1}%  (over-triaged {}, under-triaged {})",
            self.triage_exact(),
            self.cases,
            100.0 * self.triage_accuracy(),
            self.over_triaged(),
            self.under_triaged()
        )?;
        writeln!(
            f,
            "emergencies under-triaged: {}{}",
            self.under_triaged_emergencies.len(),
            if self.under_triaged_emergencies.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.under_triaged_emergencies.join(", "))
            }
        )?;
        writeln!(
            f,
            "diagnosis (ICD-10 category) top-1 {:.1}%  top-3 {:.1}%  top-5 {:.1}%",
            100.0 * self.top(1),
            100.0 * self.top(3),
            100.0 * self.top(5)
        )?;
        writeln!(
            f,
            "| expected \\ assessed | emergency | urgent | routine | self_care |"
        )?;
        writeln!(f, "|---|---|---|---|---|")?;
        for (i, level) in LEVELS.iter().enumerate() {
            let row = &self.matrix[i];
            writeln!(
                f,
                "| {} | {} | {} | {} | {} |",
                level.as_str(),
                row[0],
                row[1],
                row[2],
                row[3]
            )?;
        }
        Ok(())
    }
}
