//! Measuring the interaction checks against a set of drug pairs written independently of the
//! rules, each marked dangerous or safe with its source: sensitivity (dangerous pairs flagged) and
//! false alarms (safe pairs flagged). A name the checker does not know counts as a miss.

use std::fmt;
use std::path::Path;

use super::names::NameLookup;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    pub a: String,
    pub b: String,
    pub dangerous: bool,
    #[serde(default)]
    pub expected: Option<String>,
    #[serde(default)]
    pub why: String,
    pub source: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PairsFile {
    pair: Vec<Pair>,
}

/// Why a pairs file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PairsError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
}

/// Reads a pairs file (`[[pair]]` tables).
///
/// # Errors
/// A file that cannot be read or parsed, or a pair without a source.
pub fn load_pairs(path: &Path) -> Result<Vec<Pair>, PairsError> {
    let fail = |message: String| PairsError::Read {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let file: PairsFile = toml::from_str(&text).map_err(|e| fail(e.message().to_owned()))?;
    if let Some(p) = file.pair.iter().find(|p| p.source.trim().is_empty()) {
        return Err(fail(format!("pair {} + {} has no source", p.a, p.b)));
    }
    Ok(file.pair)
}

/// How the checks did on a set of pairs.
#[derive(Debug, Default)]
pub struct PairsReport {
    pub dangerous: usize,
    pub flagged_dangerous: usize,
    pub safe: usize,
    pub flagged_safe: usize,
    /// Dangerous pairs not flagged: (a, b, why).
    pub missed: Vec<String>,
    /// Safe pairs flagged: (a, b, the rule's severity).
    pub false_alarms: Vec<String>,
    /// Names the checker did not know.
    pub unknown: Vec<String>,
}

impl PairsReport {
    pub fn sensitivity(&self) -> f64 {
        ratio(self.flagged_dangerous, self.dangerous)
    }

    pub fn false_alarm_rate(&self) -> f64 {
        ratio(self.flagged_safe, self.safe)
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// Checks every pair.
pub fn evaluate(lookup: NameLookup<'_>, pairs: &[Pair]) -> PairsReport {
    let mut report = PairsReport::default();
    for pair in pairs {
        let a = lookup.resolve_all(&pair.a);
        let b = lookup.resolve_all(&pair.b);
        for (name, found) in [(&pair.a, &a), (&pair.b, &b)] {
            if found.is_empty() && !report.unknown.contains(name) {
                report.unknown.push(name.clone());
            }
        }
        // A combination interacts when one of its components does; the worst one is reported.
        let found = a
            .iter()
            .flat_map(|x| {
                b.iter()
                    .filter_map(|y| lookup.knowledge.interaction(*x, *y))
            })
            .max_by_key(|i| i.rule.severity);
        if pair.dangerous {
            report.dangerous += 1;
            if found.is_some() {
                report.flagged_dangerous += 1;
            } else {
                report
                    .missed
                    .push(format!("{} + {} ({})", pair.a, pair.b, pair.why));
            }
        } else {
            report.safe += 1;
            if let Some(found) = found {
                report.flagged_safe += 1;
                report.false_alarms.push(format!(
                    "{} + {} ({}: {})",
                    pair.a,
                    pair.b,
                    found.rule.severity.as_str(),
                    found.rule.mechanism
                ));
            }
        }
    }
    report
}

impl fmt::Display for PairsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dangerous pairs flagged: {}/{} ({:.1}%); safe pairs flagged: {}/{} ({:.1}%)",
            self.flagged_dangerous,
            self.dangerous,
            100.0 * self.sensitivity(),
            self.flagged_safe,
            self.safe,
            100.0 * self.false_alarm_rate()
        )?;
        for m in &self.missed {
            writeln!(f, "  missed: {m}")?;
        }
        for m in &self.false_alarms {
            writeln!(f, "  false alarm: {m}")?;
        }
        if !self.unknown.is_empty() {
            writeln!(f, "  unknown names: {}", self.unknown.join(", "))?;
        }
        Ok(())
    }
}
