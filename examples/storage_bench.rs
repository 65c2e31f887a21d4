//! Benchmark (not a test): AES-256-GCM throughput, and the time to store one message and read it back
//! through the repository against the real PostgreSQL.
//!
//! cargo run --release --example storage_bench [-- postgres://postgres@127.0.0.1:5432/postgres]

mod common;

use std::time::Instant;

use common::{ScratchDatabase, percentile};
use medbot::crypto::{Binding, DataKey, MasterKey, Plaintext, Purpose};
use medbot::domain::{PatientId, Role, TelegramChatId, TelegramUserId};
use medbot::storage::{ReadPurpose, Store};

fn crypto(size: usize, rounds: usize) {
    let key = DataKey::generate().unwrap();
    let binding = Binding::new(
        Purpose::Message,
        PatientId::new_random(),
        uuid::Uuid::new_v4(),
    );
    let text = Plaintext::new("a".repeat(size));
    let t = Instant::now();
    let mut sealed = None;
    for _ in 0..rounds {
        sealed = Some(key.encrypt(&text, &binding).unwrap());
    }
    let enc = t.elapsed();
    let sealed = sealed.unwrap();
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(key.decrypt(&sealed, &binding).unwrap());
    }
    let dec = t.elapsed();
    let mb = (size * rounds) as f64 / 1e6;
    println!(
        "crypto {size:>6} B x {rounds:>6}: encrypt {:>8.1} MB/s, decrypt {:>8.1} MB/s",
        mb / enc.as_secs_f64(),
        mb / dec.as_secs_f64()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    crypto(1024, 100_000);
    crypto(64 * 1024, 5_000);

    let scratch = ScratchDatabase::create().await?;
    let store = Store::unlock(&scratch.db, MasterKey::generate()?).await?;

    let rounds = 500;
    let mut store_times = Vec::with_capacity(rounds);
    let mut read_times = Vec::with_capacity(rounds);
    let text = Plaintext::new(
        "I have had a fever of 38.5 and a dry cough for three days; should I see a doctor?",
    );
    for i in 0..rounds {
        let patient = store
            .register_patient(
                TelegramUserId(i as i64 + 1),
                TelegramChatId(i as i64 + 1),
                None,
            )
            .await?
            .id;
        let t = Instant::now();
        store.append_message(patient, Role::Patient, &text).await?;
        store_times.push(t.elapsed());
        let t = Instant::now();
        let read = store
            .read_messages(patient, None, ReadPurpose::Context)
            .await?;
        read_times.push(t.elapsed());
        assert_eq!(read.len(), 1);
    }
    for (what, times) in [
        ("store one message", &mut store_times),
        ("read it back", &mut read_times),
    ] {
        times.sort();
        println!(
            "{what:<18}: median {:>6.2} ms, p99 {:>6.2} ms ({} rounds)",
            percentile(times, 0.5).as_secs_f64() * 1e3,
            percentile(times, 0.99).as_secs_f64() * 1e3,
            times.len()
        );
    }
    scratch.drop().await
}
