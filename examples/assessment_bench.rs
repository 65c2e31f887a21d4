//! How long the clinical assessment takes per message with the built-in knowledge: extraction of
//! every finding, the red-flag rules and the differential, over the vignettes and the triage set.
//!
//! `cargo run --release --example assessment_bench`

use std::time::Instant;

use medbot::assessment::ClinicalKnowledge;
use medbot::assessment::evaluation::load_cases;

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut messages: Vec<String> = Vec::new();
    for part in ["tuning", "heldout"] {
        let folder = std::path::Path::new(root)
            .join("tests/data/vignettes")
            .join(part);
        messages.extend(
            load_cases(&folder)
                .expect("vignettes")
                .into_iter()
                .map(|c| c.text),
        );
    }
    let tsv = std::fs::read_to_string(format!("{root}/tests/data/triage_cases.tsv")).expect("set");
    messages.extend(
        tsv.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t').map(|(_, m)| m.to_owned())),
    );

    let load = Instant::now();
    let knowledge = std::sync::Arc::new(ClinicalKnowledge::embedded().expect("valid"));
    let loaded = load.elapsed();
    let first = Instant::now();
    medbot::triage::assess_topic(&knowledge, &[messages[0].as_str()]);
    let warm_up = first.elapsed();

    let rounds = 10;
    let mut per_message = Vec::with_capacity(rounds * messages.len());
    for _ in 0..rounds {
        for message in &messages {
            let start = Instant::now();
            std::hint::black_box(medbot::triage::assess_topic(
                &knowledge,
                &[message.as_str()],
            ));
            per_message.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    per_message.sort_by(f64::total_cmp);
    let pick = |q: f64| per_message[((per_message.len() - 1) as f64 * q) as usize];
    let mean = per_message.iter().sum::<f64>() / per_message.len() as f64;
    println!(
        "knowledge     {} conditions, {} findings, loaded in {:.1} ms",
        knowledge.conditions.len(),
        knowledge.findings.len(),
        loaded.as_secs_f64() * 1e3
    );
    println!("messages      {} x {rounds} rounds", messages.len());
    println!(
        "first call    {:.2} ms (builds the rule tables)",
        warm_up.as_secs_f64() * 1e3
    );
    println!("mean          {mean:.3} ms");
    println!("median        {:.3} ms", pick(0.5));
    println!("p99           {:.3} ms", pick(0.99));
    println!("max           {:.3} ms", pick(1.0));
}
