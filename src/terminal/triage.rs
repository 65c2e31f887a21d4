//! `medbot triage` and `medbot assessment check`: the assessment from the command line, for
//! clinicians checking a case and for evaluation sets. No database, no model.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::assessment::{ClinicalKnowledge, evaluation};
use crate::cli::AssessmentCommand;
use crate::triage::assess_topic;

/// Exit status when the knowledge or an input line was invalid.
pub(super) const EXIT_INVALID: u8 = 2;

pub(super) fn knowledge(folder: Option<&Path>) -> Result<Arc<ClinicalKnowledge>, ExitCode> {
    match folder {
        None => ClinicalKnowledge::embedded().map(Arc::new),
        Some(folder) => ClinicalKnowledge::from_dir(folder).map(Arc::new),
    }
    .map_err(|e| {
        eprintln!("medbot: invalid clinical knowledge: {e}");
        ExitCode::from(EXIT_INVALID)
    })
}

#[derive(serde::Deserialize)]
struct Case {
    text: Option<String>,
    messages: Option<Vec<String>>,
    // Evaluation sets carry their expectations on the same line; they are not read.
    #[serde(flatten)]
    _rest: serde_json::Map<String, serde_json::Value>,
}

/// Runs `medbot triage`.
pub fn run(jsonl: bool, folder: Option<&Path>) -> ExitCode {
    let knowledge = match knowledge(folder) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !jsonl {
        let mut text = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut stdin.lock(), &mut text) {
            eprintln!("medbot: error: standard input is not UTF-8 text: {e}");
            return ExitCode::FAILURE;
        }
        let assessment = assess_topic(&knowledge, &[text.as_str()]);
        let line = serde_json::to_string(&assessment).expect("an assessment serialises");
        return match writeln!(out, "{line}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let mut bad_lines = 0usize;
    for (number, line) in stdin.lock().lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("medbot: line {}: not UTF-8 text: {e}", number + 1);
                bad_lines += 1;
                let _ = writeln!(out, "{}", serde_json::json!({"error": "not UTF-8 text"}));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        // One output line per input line, even for a bad one, so results stay aligned with cases.
        let result = match serde_json::from_str::<Case>(&line) {
            Ok(Case {
                messages: Some(messages),
                ..
            }) if !messages.is_empty() => {
                let said: Vec<&str> = messages.iter().map(String::as_str).collect();
                serde_json::to_value(assess_topic(&knowledge, &said))
                    .expect("an assessment serialises")
            }
            Ok(Case {
                text: Some(text), ..
            }) => serde_json::to_value(assess_topic(&knowledge, &[text.as_str()]))
                .expect("an assessment serialises"),
            Ok(_) => {
                bad_lines += 1;
                eprintln!(
                    "medbot: line {}: needs \"text\" or \"messages\"",
                    number + 1
                );
                serde_json::json!({"error": "needs \"text\" or \"messages\""})
            }
            Err(e) => {
                bad_lines += 1;
                eprintln!("medbot: line {}: not a JSON object: {e}", number + 1);
                serde_json::json!({"error": format!("not a JSON object: {e}")})
            }
        };
        if writeln!(out, "{result}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    if out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    if bad_lines > 0 {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `medbot assessment ...`.
pub fn assessment(command: AssessmentCommand) -> ExitCode {
    match command {
        AssessmentCommand::Check { folder } => check(folder.as_deref()),
        AssessmentCommand::Eval {
            cases,
            data,
            misses,
        } => eval(&cases, data.as_deref(), misses),
    }
}

fn eval(paths: &[std::path::PathBuf], folder: Option<&Path>, misses: bool) -> ExitCode {
    let knowledge = match knowledge(folder) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let mut cases = Vec::new();
    for path in paths {
        match evaluation::load_cases(path) {
            Ok(found) => cases.extend(found),
            Err(e) => {
                eprintln!("medbot: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        }
    }
    let report = evaluation::evaluate(&knowledge, &cases);
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    // A reader that stops early (`| head`) is not an error worth a panic.
    macro_rules! out {
        ($($arg:tt)*) => {
            if writeln!(stdout, $($arg)*).is_err() {
                return ExitCode::SUCCESS;
            }
        };
    }
    out!("## all\n{report}");
    let mut groups: std::collections::BTreeMap<String, Vec<evaluation::Case>> = Default::default();
    for case in &cases {
        for key in [
            format!("lang {}", case.lang),
            format!("style {}", case.style),
        ] {
            groups.entry(key).or_default().push(case.clone());
        }
    }
    for (name, subset) in groups {
        if subset.len() < cases.len() {
            out!("## {name}\n{}", evaluation::evaluate(&knowledge, &subset));
        }
    }
    if misses {
        out!("## misses");
        for m in &report.misses {
            out!(
                "{} expected {} {} ({}) | got {} [{}] | rank {:?} | {}\n    {}",
                m.case.id,
                m.case.level.as_str(),
                m.case.icd10,
                m.case.diagnosis,
                m.level.as_str(),
                m.reasons.join(","),
                m.rank.map(|r| r + 1),
                m.conditions
                    .iter()
                    .map(|(id, code, p)| format!("{id} {code} {p:.2}"))
                    .collect::<Vec<_>>()
                    .join("; "),
                m.case.text
            );
        }
    }
    let _ = stdout.flush();
    ExitCode::SUCCESS
}

fn check(folder: Option<&Path>) -> ExitCode {
    let knowledge = match knowledge(folder) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let unreviewed = knowledge
        .conditions
        .iter()
        .filter(|c| c.reviewed_by.trim().is_empty())
        .count();
    let medicines = &knowledge.medicines;
    println!(
        "{}: {} findings, {} conditions ({} not yet reviewed by a clinician of this deployment); \
         {} drug classes, {} drugs, {} interaction rules, {} allergy rules",
        folder.map_or("built-in".to_owned(), |f| f.display().to_string()),
        knowledge.findings.len(),
        knowledge.conditions.len(),
        unreviewed,
        medicines.classes.len(),
        medicines.drugs.len(),
        medicines.interactions.len(),
        medicines.allergies.len(),
    );
    ExitCode::SUCCESS
}
