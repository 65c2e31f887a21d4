//! Benchmark and evaluation (not a test) of the knowledge base on the default documents
//! (models/fetch-knowledge): import time, passages, embedding throughput, retrieval recall@1/@5 on
//! tests/data/kb_questions.tsv, and search latency at the default size and at 50,000 passages.
//!
//! cargo run --release --example kb_eval [-- postgres://postgres@127.0.0.1:5432/postgres]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ScratchDatabase, percentile};
use medbot::knowledge::{Embedder, InMemoryIndex, KnowledgeBase, VectorIndex};

fn fetch(script: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new(script).status()?;
    anyhow::ensure!(status.success(), "{script} failed");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    fetch("models/fetch-embedder")?;
    fetch("models/fetch-knowledge")?;
    let embedder = Arc::new(Embedder::load(Path::new("models/all-MiniLM-L6-v2"))?);
    let scratch = ScratchDatabase::create().await?;
    let base = KnowledgeBase::new(scratch.db.clone(), embedder.clone());

    let started = Instant::now();
    let report = base
        .import(Path::new("models/knowledge"), false, &mut |_, _| {})
        .await?;
    let import_s = started.elapsed().as_secs_f64();
    println!(
        "import: {} documents, {} passages in {import_s:.1} s ({:.1} passages/s, embedding included)",
        report.added,
        report.passages,
        report.passages as f64 / import_s
    );

    let texts: Vec<String> = (0..256).map(|i| format!("Passage number {i} about asthma inhalers and wheezing at night, with advice on when to see a clinician.")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = Instant::now();
    for batch in refs.chunks(32) {
        embedder.embed(batch)?;
    }
    println!(
        "embedding: {:.1} passages/s (batches of 32, 2 cores)",
        refs.len() as f64 / t.elapsed().as_secs_f64()
    );

    let loaded = base.load().await?;
    let questions = std::fs::read_to_string("tests/data/kb_questions.tsv")?;
    let (mut at1, mut at5, mut total) = (0, 0, 0);
    // The set's second part was written after the glossary and is reported on its own.
    let mut held_out = false;
    let (mut h1, mut h5, mut htotal) = (0, 0, 0);
    let mut search_times = Vec::new();
    for line in questions.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with("# --- held out") {
            held_out = true;
        }
        if line.starts_with('#') {
            continue;
        }
        let (expected, question) = line.split_once('\t').expect("expected<TAB>question");
        let expected: Vec<&str> = expected.split('|').collect();
        let t = Instant::now();
        let found = loaded.search(question, 5).await?;
        search_times.push(t.elapsed());
        let hit = |i: usize| {
            found.get(i).is_some_and(|f| {
                let file = f.path.rsplit('/').next().unwrap_or(&f.path);
                expected.iter().any(|e| file.starts_with(e))
            })
        };
        total += 1;
        htotal += usize::from(held_out);
        if hit(0) {
            at1 += 1;
            h1 += usize::from(held_out);
        }
        if (0..5).any(hit) {
            at5 += 1;
            h5 += usize::from(held_out);
        } else {
            println!(
                "  miss: {question}\n        got {:?}",
                found.iter().map(|f| f.path.as_str()).collect::<Vec<_>>()
            );
        }
    }
    println!(
        "recall@1 {at1}/{total} = {:.3}, recall@5 {at5}/{total} = {:.3}",
        at1 as f64 / total as f64,
        at5 as f64 / total as f64
    );
    println!(
        "held-out part: recall@1 {h1}/{htotal} = {:.3}, recall@5 {h5}/{htotal} = {:.3}",
        h1 as f64 / htotal.max(1) as f64,
        h5 as f64 / htotal.max(1) as f64
    );
    search_times.sort();
    println!(
        "search (embed the question + rank {} passages): median {:.1} ms, p99 {:.1} ms",
        loaded.len(),
        percentile(&search_times, 0.5).as_secs_f64() * 1e3,
        percentile(&search_times, 0.99).as_secs_f64() * 1e3
    );

    for size in [loaded.len(), 50_000] {
        let mut index = InMemoryIndex::new(384);
        let mut seed = 1u64;
        for id in 0..size {
            let v: Vec<f32> = (0..384)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                })
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            index.insert(id as i64, &v.iter().map(|x| x / norm).collect::<Vec<_>>());
        }
        let query = embedder
            .embed(&["my child has a fever and a rash"])?
            .remove(0);
        let mut times: Vec<Duration> = (0..200)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(index.top(&query, 5));
                t.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "rank only, {size} passages: median {:.2} ms, p99 {:.2} ms",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3
        );
    }
    scratch.drop().await
}
