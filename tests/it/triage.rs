//! The triage rules against the checked-in set of patient-style messages
//! (tests/data/triage_cases.tsv). Run with `--nocapture` to see the confusion matrix.

use medbot::domain::TriageLevel;
use medbot::triage::assess;

const LEVELS: [TriageLevel; 4] = [
    TriageLevel::Emergency,
    TriageLevel::Urgent,
    TriageLevel::Routine,
    TriageLevel::SelfCare,
];

pub fn cases() -> Vec<(TriageLevel, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/triage_cases.tsv");
    std::fs::read_to_string(path)
        .expect("the triage set is checked in")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (level, text) = line.split_once('\t').expect("level<TAB>message");
            (level.parse().expect("a known level"), text.to_owned())
        })
        .collect()
}

fn index(level: TriageLevel) -> usize {
    LEVELS.iter().position(|&l| l == level).unwrap()
}

#[test]
fn no_emergency_in_the_set_is_under_triaged_and_the_rest_is_mostly_right() {
    let cases = cases();
    assert!(cases.len() >= 150, "the set has {} messages", cases.len());
    let chinese = cases
        .iter()
        .filter(|(_, t)| t.chars().any(medbot::domain::is_han))
        .count();
    assert!(chinese >= 50, "only {chinese} Chinese messages");

    let mut matrix = [[0usize; 4]; 4];
    let mut missed_emergencies = Vec::new();
    let mut wrong = Vec::new();
    for (expected, text) in &cases {
        let got = assess(text);
        matrix[index(*expected)][index(got.level)] += 1;
        if *expected == TriageLevel::Emergency && got.level != TriageLevel::Emergency {
            missed_emergencies.push(text.as_str());
        }
        if got.level != *expected {
            wrong.push(format!(
                "  expected {:<9} got {:<9} {:?}  {text}",
                expected.as_str(),
                got.level.as_str(),
                got.reasons
            ));
        }
    }

    let correct: usize = (0..4).map(|i| matrix[i][i]).sum();
    let accuracy = correct as f64 / cases.len() as f64;
    println!("triage confusion matrix (rows: expected, columns: assessed)");
    println!(
        "{:>10} {:>9} {:>9} {:>9} {:>9}",
        "", "emergency", "urgent", "routine", "self_care"
    );
    for (i, level) in LEVELS.iter().enumerate() {
        println!(
            "{:>10} {:>9} {:>9} {:>9} {:>9}",
            level.as_str(),
            matrix[i][0],
            matrix[i][1],
            matrix[i][2],
            matrix[i][3]
        );
    }
    println!("accuracy {correct}/{} = {accuracy:.3}", cases.len());
    for line in &wrong {
        println!("{line}");
    }

    assert!(
        missed_emergencies.is_empty(),
        "emergencies under-triaged: {missed_emergencies:#?}"
    );
    // Over-triage is the accepted failure mode, but a triage that calls everything an emergency
    // would pass the rule above and help no one.
    let false_emergencies: usize = (1..4).map(|i| matrix[i][0]).sum();
    assert!(
        false_emergencies <= 6,
        "{false_emergencies} false emergencies"
    );
    assert!(accuracy >= 0.85, "accuracy {accuracy:.3}");
}

#[test]
fn the_real_drug_dictionary_loads_and_flags_drafts_that_name_medicines() {
    use medbot::triage::{DraftFacts, DraftReviewer, DrugLexicon, ReviewReason};
    let path = crate::helpers::fetched("models/drug-lexicon.pkl", "models/fetch-drug-lexicon");
    let lexicon = DrugLexicon::load(&path).expect("the dictionary loads");
    assert!(lexicon.len() > 50_000, "only {} names", lexicon.len());
    let reviewer = DraftReviewer::new(lexicon);
    let names = |text: &str| {
        reviewer
            .review(DraftFacts {
                text,
                logprobs: &[],
                hit_length_limit: false,
            })
            .contains(&ReviewReason::NamesMedicine)
    };
    for risky in [
        "Metformin is often used for this.",
        "You could try Tylenol.",
        "Amoxicillin would clear it up.",
        "Ask about sertraline.",
        "可以吃点布洛芬。",
    ] {
        assert!(names(risky), "{risky}");
    }
    for plain in [
        "Eat some oats and a banana, and drink water.",
        "Rest, keep warm, and see a clinician if it gets worse.",
        "多喝水，注意休息。",
    ] {
        assert!(!names(plain), "{plain}");
    }
}
