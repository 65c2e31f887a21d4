//! Benchmark (not a test): the time from a patient's message to the answer they see, without the
//! model (the scripted generator answers at once), against the real PostgreSQL. This is medbot's
//! own overhead: triage, encryption, storage, context, review.
//!
//! cargo run --release --example consult_bench [-- postgres://postgres@127.0.0.1:5432/postgres]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ScratchDatabase, percentile};
use medbot::consult::testing::{Script, ScriptedGenerator};
use medbot::consult::{
    ConsultationService, Reply, ReviewDesk, ServiceSettings, SystemClock, Verdict,
};
use medbot::crypto::MasterKey;
use medbot::domain::{TelegramChatId, TelegramUserId};
use medbot::storage::Store;
use medbot::triage::{DraftReviewer, DrugLexicon};

const ANSWER: &str = "A sore throat with a cold usually settles within a week. Rest, drink warm \
                      fluids and try honey in warm water. See a clinician if it lasts more than a \
                      week, you have a high fever, or swallowing becomes hard.";

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    println!(
        "{what:<34}: median {:>6.2} ms, p99 {:>6.2} ms ({} messages)",
        percentile(times, 0.5).as_secs_f64() * 1e3,
        percentile(times, 0.99).as_secs_f64() * 1e3,
        times.len()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scratch = ScratchDatabase::create().await?;
    let store = Store::unlock(&scratch.db, MasterKey::generate()?).await?;
    let lexicon = match DrugLexicon::load(std::path::Path::new("models/drug-lexicon.pkl")) {
        Ok(lexicon) => lexicon,
        Err(e) => {
            eprintln!("({e}; using a small list: run models/fetch-drug-lexicon for the real one)");
            DrugLexicon::from_names(["ibuprofen", "paracetamol"])
        }
    };
    println!("drug dictionary: {} names", lexicon.len());
    let generator = Arc::new(ScriptedGenerator::new(ANSWER));
    let service = ConsultationService::new(
        generator.clone(),
        store.clone(),
        SystemClock,
        Arc::new(DraftReviewer::new(lexicon)),
        ServiceSettings::default(),
    );
    let desk = ReviewDesk::new(store.clone(), SystemClock);

    let patients = 50;
    let turns = 8;
    let mut delivered = Vec::new();
    let mut emergency = Vec::new();
    let mut escalated = Vec::new();
    let mut decided = Vec::new();
    for p in 0..patients {
        let user = TelegramUserId(p + 1);
        let patient = store
            .register_patient(user, TelegramChatId(p + 1), None)
            .await?
            .id;
        for turn in 0..turns {
            let t = Instant::now();
            let outcome = service
                .handle(
                    patient,
                    &format!("My throat has been sore for {turn} days, what can I do?"),
                    &mut |_| {},
                )
                .await?;
            delivered.push(t.elapsed());
            assert!(matches!(outcome.reply, Reply::Answer { .. }));
        }
        let t = Instant::now();
        service
            .handle(patient, "crushing chest pain down my left arm", &mut |_| {})
            .await?;
        emergency.push(t.elapsed());

        generator.push(Script::say("Ibuprofen may help."));
        let t = Instant::now();
        let outcome = service
            .handle(patient, "I have a headache", &mut |_| {})
            .await?;
        escalated.push(t.elapsed());
        let Reply::UnderReview { escalation, .. } = outcome.reply else {
            anyhow::bail!("expected an escalation");
        };
        let t = Instant::now();
        desk.decide(escalation, user, Verdict::Approve).await?;
        decided.push(t.elapsed());
    }
    report("answer delivered (8-turn history)", &mut delivered);
    report("emergency advice", &mut emergency);
    report("draft escalated", &mut escalated);
    report("doctor's decision to outbox", &mut decided);
    scratch.drop().await
}
