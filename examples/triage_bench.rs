//! How long triage takes per message, over the checked-in test set (tests/data/triage_cases.tsv).
//!
//! `cargo run --release --example triage_bench`

use std::time::Instant;

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/triage_cases.tsv");
    let text = std::fs::read_to_string(path).expect("the triage set is checked in");
    let messages: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t').map(|(_, m)| m))
        .collect();
    // The first call compiles the phrase tables and regexes; report it apart.
    let first = Instant::now();
    medbot::triage::assess(messages[0]);
    let warm_up = first.elapsed();

    let rounds = 50;
    let mut per_message = Vec::with_capacity(rounds * messages.len());
    for _ in 0..rounds {
        for message in &messages {
            let start = Instant::now();
            std::hint::black_box(medbot::triage::assess(message));
            per_message.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    per_message.sort_by(f64::total_cmp);
    let pick = |q: f64| per_message[((per_message.len() - 1) as f64 * q) as usize];
    let mean = per_message.iter().sum::<f64>() / per_message.len() as f64;
    println!("messages      {} x {rounds} rounds", messages.len());
    println!(
        "first call    {:.1} ms (builds the rule tables)",
        warm_up.as_secs_f64() * 1e3
    );
    println!("mean          {mean:.1} µs");
    println!("median        {:.1} µs", pick(0.5));
    println!("p99           {:.1} µs", pick(0.99));
    println!("max           {:.1} µs", pick(1.0));
}
