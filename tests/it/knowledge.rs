//! The knowledge base with the real all-MiniLM-L6-v2 (fetched by models/fetch-embedder) and a small
//! document set written by the test.

use std::path::Path;
use std::sync::Arc;

use medbot::knowledge::{Embedder, KnowledgeBase};

use crate::helpers::*;

fn embedder() -> Arc<Embedder> {
    let dir = fetched(
        "models/all-MiniLM-L6-v2/model.safetensors",
        "models/fetch-embedder",
    );
    Arc::new(Embedder::load(dir.parent().unwrap()).expect("the embedding model loads"))
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const COLD: &str = "---\ntitle: Common cold\nsource: https://example.org/cold\nlicence: CC BY 4.0\ndate: 2024\n---\n# Common cold\n\n## Symptoms\n\nA runny or blocked nose, sneezing, a sore throat and a mild cough, usually for a week to ten days.\n\n## Self-care\n\nRest, drink plenty of fluids and keep warm. Honey in warm water can soothe a cough in adults and children over one year old.\n";
const BURNS: &str = "# Minor burns\n\nSource: https://example.org/burns\n\n## First aid\n\nCool the burn under cool running water for 20 minutes. Do not use ice, butter or creams. Cover it loosely with cling film.\n\n## When to get help\n\nSee a clinician for burns larger than the palm of the hand, on the face or genitals, or that blister deeply.\n";
const SLEEP: &str = "Title: Sleep hygiene\nSource: https://example.org/sleep\n\nKeep regular hours, avoid caffeine after midday and screens in the hour before bed, and keep the bedroom dark and cool.\n";

#[tokio::test]
async fn import_skips_unchanged_replaces_changed_retires_removed_and_finds_paraphrases() {
    let (_, db) = migrated_database().await;
    let base = KnowledgeBase::new(db.clone(), embedder());
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cold.md", COLD);
    write(dir.path(), "burns.md", BURNS);
    std::fs::create_dir(dir.path().join("more")).unwrap();
    write(&dir.path().join("more"), "sleep.txt", SLEEP);
    write(dir.path(), "ignored.pdf", "not a document");
    std::fs::write(dir.path().join("broken.md"), [0xff, 0xfe, 0x00, 0x9f]).unwrap();

    let mut calls = 0;
    let first = base
        .import(dir.path(), false, &mut |_, _| calls += 1)
        .await
        .unwrap();
    assert_eq!((first.added, first.replaced, first.unchanged), (3, 0, 0));
    // A file that is not text is reported and the others are imported.
    assert_eq!(first.skipped.len(), 1, "{:?}", first.skipped);
    assert!(first.skipped[0].starts_with("broken.md"));
    assert!(first.passages >= 4, "{first:?}");
    assert_eq!(calls, 4);
    let documents = base.documents().await.unwrap();
    let cold = documents.iter().find(|d| d.path == "cold.md").unwrap();
    assert_eq!(cold.title, "Common cold");
    assert_eq!(cold.source.as_deref(), Some("https://example.org/cold"));
    assert_eq!(cold.licence.as_deref(), Some("CC BY 4.0"));
    let burns = documents.iter().find(|d| d.path == "burns.md").unwrap();
    assert_eq!(burns.title, "Minor burns");

    // Paraphrased questions find the passage that answers them first.
    let loaded = base.load().await.unwrap();
    for (question, title, heading) in [
        (
            "I scalded my hand with boiling water, what should I do right now?",
            "Minor burns",
            "First aid",
        ),
        (
            "my nose keeps running and I keep sneezing",
            "Common cold",
            "Symptoms",
        ),
        (
            "what helps with a cough at home",
            "Common cold",
            "Self-care",
        ),
        ("I can't fall asleep at night", "Sleep hygiene", ""),
    ] {
        let found = loaded.search(question, 3).await.unwrap();
        assert_eq!(
            (found[0].title.as_str(), found[0].heading.as_str()),
            (title, heading),
            "{question}: {found:#?}"
        );
        assert!(found[0].score > found[1].score);
    }

    // Unchanged: nothing re-embedded.
    let again = base
        .import(dir.path(), false, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (again.added, again.replaced, again.unchanged, again.passages),
        (0, 0, 3, 0)
    );

    // Changed: its passages replaced, and the new text is what is found.
    write(
        dir.path(),
        "burns.md",
        &BURNS.replace(
            "20 minutes",
            "twenty minutes, then keep the area clean and dry",
        ),
    );
    let changed = base
        .import(dir.path(), false, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!((changed.replaced, changed.unchanged), (1, 2));
    let found = base
        .load()
        .await
        .unwrap()
        .search("how long should I cool a burn", 1)
        .await
        .unwrap();
    assert!(found[0].text.contains("keep the area clean and dry"));
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM kb_passages p JOIN kb_documents d ON d.id = p.document_id WHERE d.path = 'burns.md'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(stored, 2, "old passages were left behind");

    // Removed: retired when asked, and no longer found.
    std::fs::remove_file(dir.path().join("more/sleep.txt")).unwrap();
    let retired = base.import(dir.path(), true, &mut |_, _| {}).await.unwrap();
    assert_eq!(retired.retired, 1);
    let found = base
        .load()
        .await
        .unwrap()
        .search("I can't fall asleep at night", 5)
        .await
        .unwrap();
    assert!(found.iter().all(|f| f.title != "Sleep hygiene"));
}

#[test]
fn embeddings_are_unit_length_and_similar_sentences_are_close() {
    let embedder = embedder();
    let vectors = embedder
        .embed(&[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
            "",
        ])
        .unwrap();
    assert_eq!(vectors.len(), 4);
    for v in &vectors[..3] {
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    let sim = medbot::knowledge::embed::similarity;
    assert!(sim(&vectors[0], &vectors[1]) > sim(&vectors[0], &vectors[2]));
    // Batching does not change a sentence's vector.
    let alone = embedder.embed(&["A man is eating food."]).unwrap();
    assert!(sim(&alone[0], &vectors[0]) > 0.9999);
}

/// The candle embedding matches the reference model: cosine similarities computed once with
/// sentence-transformers (5.x, CPU) on the same all-MiniLM-L6-v2 files, within 1e-3.
#[test]
fn embeddings_match_sentence_transformers() {
    const REFERENCE: [(&str, &str, f32); 7] = [
        (
            "A man is eating food.",
            "A man is eating a piece of bread.",
            0.755_337_1,
        ),
        (
            "A man is eating food.",
            "The girl is carrying a baby.",
            -0.104_958_42,
        ),
        (
            "I have a sore throat and a fever.",
            "My throat hurts and I feel hot.",
            0.696_015_9,
        ),
        (
            "It burns when I pee.",
            "Dysuria is a symptom of urinary tract infection.",
            0.383_785_13,
        ),
        (
            "Chest pain spreading to the left arm",
            "Acute coronary syndrome presents with chest pain radiating to the arm.",
            0.713_353_04,
        ),
        (
            "How do I treat a minor burn?",
            "Cool the burn under running water for 20 minutes.",
            0.658_751_96,
        ),
        ("我头疼", "I have a headache", 0.243_459_64),
    ];
    let embedder = embedder();
    for (a, b, expected) in REFERENCE {
        let v = embedder.embed(&[a, b]).unwrap();
        let got = medbot::knowledge::embed::similarity(&v[0], &v[1]);
        assert!(
            (got - expected).abs() < 1e-3,
            "{a:?} / {b:?}: {got} against {expected}"
        );
    }
    let v = embedder
        .embed(&["A man is eating food."])
        .unwrap()
        .remove(0);
    let first = [
        0.033242, 0.004406, -0.006277, 0.048379, -0.138702, -0.033617,
    ];
    for (got, expected) in v.iter().zip(first) {
        assert!((got - expected).abs() < 1e-4, "{got} against {expected}");
    }
}
