//! `medbot meds check` and `medbot meds eval`: the interaction checks from the command line, for
//! pharmacists and doctors checking a combination, and for evaluation sets. No database, no model.

use std::process::ExitCode;

use super::triage::{EXIT_INVALID, knowledge};
use crate::cli::MedsCommand;
use crate::config::Env;
use crate::medicines::{NameLookup, evaluation};
use crate::triage::DrugLexicon;

pub fn run(env: &dyn Env, command: MedsCommand) -> ExitCode {
    let (folder, lexicon) = match &command {
        MedsCommand::Check { data, .. } | MedsCommand::Eval { data, .. } => {
            (data.clone(), lexicon(env))
        }
    };
    let knowledge = match knowledge(folder.as_deref()) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let lookup = NameLookup {
        knowledge: &knowledge.medicines,
        lexicon: lexicon.as_ref(),
    };
    match command {
        MedsCommand::Check { drugs, .. } => {
            println!("{}", check(lookup, &drugs));
            ExitCode::SUCCESS
        }
        MedsCommand::Eval { pairs, .. } => {
            for path in pairs {
                match evaluation::load_pairs(&path) {
                    Ok(pairs) => {
                        println!(
                            "## {}\n{}",
                            path.display(),
                            evaluation::evaluate(lookup, &pairs)
                        );
                    }
                    Err(e) => {
                        eprintln!("medbot: {e}");
                        return ExitCode::from(EXIT_INVALID);
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// The drug dictionary, for brand names medbot's own list lacks; without it (not fetched, offline)
/// the check still runs on medbot's own names, and says so.
fn lexicon(env: &dyn Env) -> Option<DrugLexicon> {
    let path = crate::config::drug_lexicon_path(env);
    match DrugLexicon::load(&path) {
        Ok(lexicon) => Some(lexicon),
        Err(e) => {
            eprintln!(
                "medbot: warning: {e}; checking with medbot's own drug names only (models/fetch-drug-lexicon adds ~100,000 brand names)"
            );
            None
        }
    }
}

/// The JSON line for `medbot meds check`.
pub fn check(lookup: NameLookup<'_>, drugs: &[String]) -> serde_json::Value {
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for name in drugs {
        let agents = lookup.resolve_all(name);
        if agents.is_empty() {
            unknown.push(name.clone());
        }
        known.extend(agents);
    }
    let k = lookup.knowledge;
    let interactions: Vec<serde_json::Value> = k
        .interactions_among(&known)
        .iter()
        .map(|i| {
            serde_json::json!({
                "a": k.name_of(i.a),
                "b": k.name_of(i.b),
                "severity": i.rule.severity.as_str(),
                "advice": i.rule.advice,
                "mechanism": i.rule.mechanism,
                "source": i.rule.source,
            })
        })
        .collect();
    serde_json::json!({"interactions": interactions, "unknown": unknown})
}
