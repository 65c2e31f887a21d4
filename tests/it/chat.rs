//! `medbot chat` and `medbot review` end to end: the real binary, the real SmolLM2 model, a
//! database that does not exist yet, and nothing configured but where things are.

use std::os::unix::fs::PermissionsExt;

use crate::helpers::*;

#[test]
fn a_patient_chats_a_doctor_reviews_and_the_patient_sees_the_outcome() {
    let model = crate::llm::smollm2();
    let lexicon = fetched("models/drug-lexicon.pkl", "models/fetch-drug-lexicon");
    let url = unused_database_url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [
        ("DATABASE_URL", url.expose()),
        ("MEDBOT_DATA_DIR", data.to_str().unwrap()),
        ("MODEL_PATH", model.to_str().unwrap()),
        ("MEDBOT_DRUG_LEXICON", lexicon.to_str().unwrap()),
        ("CANDLE_NUM_THREADS", "1"),
    ];

    // Consent (Enter), an ordinary question, a medication question (always reviewed), an emergency.
    let input = "\nI have had a runny nose and a mild cough for two days. What can I do?\n\
                 Can I take paracetamol for the cough?\n\
                 I have crushing chest pain going down my left arm and I'm sweating\n";
    let first = run_medbot_with_input(&["chat"], &env, dir.path(), input);
    let out = stdout(&first);
    assert!(first.status.success(), "{}\n{out}", stderr(&first));

    // Zero configuration: the database was created and a key file made, with a warning.
    assert!(stderr(&first).contains("WARNING: no master key was configured"));
    let key = data.join("master.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    assert!(out.contains("It is not a doctor"), "{out}");
    assert!(out.contains("[triage: self_care"), "{out}");
    // The ordinary question was either answered (with the line that it is not medical advice) or
    // is waiting for a doctor; the medication question always waits.
    let waiting: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("[waiting for a doctor: escalation "))
        .map(|rest| &rest[..8])
        .collect();
    assert!(
        out.contains("not medical advice") || waiting.len() == 2,
        "{out}"
    );
    assert!(!waiting.is_empty(), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("[triage: emergency (")
                && l.contains("chest_pain_with_danger_signs")),
        "{out}"
    );
    assert!(out.contains("Call your local emergency number now"));

    // The doctor's terminal lists the escalation with its question and the emergency alert.
    let list = run_medbot(&["review"], &env, dir.path());
    let listed = stdout(&list);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(
        listed.contains("Can I take paracetamol for the cough?"),
        "{listed}"
    );
    assert!(
        listed.contains("the patient asked about medication"),
        "{listed}"
    );
    assert!(listed.contains("ALERT") && listed.contains("chest_pain_with_danger_signs"));

    let medication = waiting.last().unwrap();
    let edit = run_medbot(
        &[
            "review",
            "edit",
            medication,
            "--text",
            "Paracetamol is usually fine for a cough with a cold; follow the dose on the pack.",
            "--doctor",
            "42",
        ],
        &env,
        dir.path(),
    );
    assert!(edit.status.success(), "{}", stderr(&edit));
    let again = run_medbot(&["review", "approve", medication], &env, dir.path());
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("no pending escalation"),
        "{}",
        stderr(&again)
    );

    // The patient's next session shows the doctor's answer.
    let second = run_medbot_with_input(&["chat"], &env, dir.path(), "");
    let out = stdout(&second);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(out.contains("[from the doctors' review]"), "{out}");
    assert!(out.contains("Paracetamol is usually fine"), "{out}");
    assert!(out.contains("Written by a doctor who reviewed your question"));
    assert!(
        !out.contains("It is not a doctor"),
        "consent is asked once: {out}"
    );
}

#[test]
fn the_terminal_patient_keeps_a_medicines_list_with_meds_commands() {
    let model = crate::llm::smollm2();
    let lexicon = fetched("models/drug-lexicon.pkl", "models/fetch-drug-lexicon");
    let url = unused_database_url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [
        ("DATABASE_URL", url.expose()),
        ("MEDBOT_DATA_DIR", data.to_str().unwrap()),
        ("MODEL_PATH", model.to_str().unwrap()),
        ("MEDBOT_DRUG_LEXICON", lexicon.to_str().unwrap()),
        ("CANDLE_NUM_THREADS", "1"),
    ];
    let input = "\n/meds\n/meds add Coumadin, Zyxquil\n/meds allergy 青霉素\n/meds remove zyxquil\n/meds remove a\n";
    let run = run_medbot_with_input(&["chat"], &env, dir.path(), input);
    let out = stdout(&run);
    assert!(run.status.success(), "{}\n{out}", stderr(&run));
    assert!(out.contains("Your medicines: none saved"), "{out}");
    assert!(out.contains("[saved: warfarin]"), "{out}");
    assert!(out.contains("[saved as written: Zyxquil;"), "{out}");
    assert!(out.contains("Your medicines: warfarin, Zyxquil"), "{out}");
    assert!(out.contains("Your allergies: Penicillins"), "{out}");
    assert!(out.contains("[\"a\" is not on your list]"), "{out}");
    let last = out.rfind("Your medicines:").unwrap();
    assert!(
        out[last..].starts_with("Your medicines: warfarin\n"),
        "{out}"
    );
}
