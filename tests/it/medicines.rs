//! Medicines: the patient's list on the real store (encrypted, exported, erased), the consultation's
//! checks of questions and drafts against it, `medbot meds check`, and the interaction checks
//! measured on an independently written set of drug pairs.

use std::sync::Arc;

use medbot::assessment::ClinicalKnowledge;
use medbot::consult::testing::{ManualClock, Script, ScriptedGenerator};
use medbot::consult::{ConsultationService, EscalationStore, Reply, ServiceSettings};
use medbot::domain::{MedicationKind, PatientId};
use medbot::medicines::{NameLookup, evaluation};
use medbot::storage::{Actor, Store};
use medbot::triage::{DraftReviewer, DrugLexicon, ReviewReason};

use crate::helpers::*;

type Service = ConsultationService<ScriptedGenerator, Store, Arc<ManualClock>>;

fn service(t: &TestStore, generator: ScriptedGenerator) -> Service {
    let reviewer = Arc::new(DraftReviewer::new(DrugLexicon::from_names([
        "ibuprofen",
        "warfarin",
        "amoxicillin",
    ])));
    ConsultationService::new(
        Arc::new(generator),
        t.store.clone(),
        Arc::new(ManualClock::new(chrono::Utc::now())),
        reviewer,
        ServiceSettings::default(),
    )
}

async fn reasons_and_card(
    service: &Service,
    store: &Store,
    patient: PatientId,
    message: &str,
) -> (Vec<ReviewReason>, String) {
    let outcome = service
        .handle(patient, message, &mut |_| {})
        .await
        .expect("handled");
    let Reply::UnderReview {
        escalation,
        reasons,
        ..
    } = outcome.reply
    else {
        panic!("not escalated: {:?}", outcome.reply);
    };
    let record = EscalationStore::load(store, escalation).await.unwrap();
    (reasons, record.assessment.as_str().to_owned())
}

#[tokio::test]
async fn the_list_is_encrypted_exported_and_erased_with_the_patient() {
    let t = test_store(140).await;
    let patient = consenting_patient(&t.store, 9140).await;
    let s = service(&t, ScriptedGenerator::new("ok"));
    let added = s
        .add_medications(
            patient,
            MedicationKind::Medicine,
            "Coumadin, metformin and Zyxquil",
        )
        .await
        .unwrap();
    let names: Vec<(&str, bool)> = added
        .iter()
        .map(|a| (a.entry.name.as_str(), a.known))
        .collect();
    assert_eq!(
        names,
        [("warfarin", true), ("metformin", true), ("Zyxquil", false)]
    );
    s.add_medications(patient, MedicationKind::Allergy, "青霉素")
        .await
        .unwrap();
    // The same medicine twice is one entry.
    s.add_medications(patient, MedicationKind::Medicine, "warfarin")
        .await
        .unwrap();
    let list = s.medications(patient).await.unwrap();
    assert_eq!(list.len(), 4, "{list:?}");
    assert_eq!(list[3].kind, MedicationKind::Allergy);
    assert_eq!(list[3].drug.as_deref(), Some("penicillin"));

    let dump = pg_dump(&t.url);
    for secret in ["warfarin", "metformin", "Zyxquil", "penicillin"] {
        assert!(!dump.contains(secret), "{secret} is stored in the clear");
    }

    let export = t
        .store
        .export_patient(patient, Actor::Patient)
        .await
        .unwrap();
    let json = serde_json::to_value(&export).unwrap();
    let exported: Vec<&str> = json["medications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        exported,
        ["warfarin", "metformin", "Zyxquil", "Penicillins"]
    );
    assert_eq!(json["medications"][3]["kind"], "allergy");

    assert!(s.remove_medication(patient, list[1].id).await.unwrap());
    assert!(
        !s.remove_medication(patient, list[1].id).await.unwrap(),
        "removed already"
    );
    assert_eq!(s.medications(patient).await.unwrap().len(), 3);

    t.store
        .erase_patient(patient, Actor::Patient)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM patient_medications")
        .fetch_one(t.store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn another_patients_entry_cannot_be_removed_and_no_consent_means_no_list() {
    let t = test_store(141).await;
    let alice = consenting_patient(&t.store, 9141).await;
    let bob = consenting_patient(&t.store, 9142).await;
    let s = service(&t, ScriptedGenerator::new("ok"));
    let added = s
        .add_medications(alice, MedicationKind::Medicine, "warfarin")
        .await
        .unwrap();
    assert!(!s.remove_medication(bob, added[0].entry.id).await.unwrap());
    assert_eq!(s.medications(alice).await.unwrap().len(), 1);

    let stranger = t
        .store
        .register_patient(
            medbot::domain::TelegramUserId(9143),
            medbot::domain::TelegramChatId(9143),
            None,
        )
        .await
        .unwrap()
        .id;
    assert!(matches!(
        s.add_medications(stranger, MedicationKind::Medicine, "warfarin")
            .await,
        Err(medbot::consult::ConsultError::NoConsent)
    ));
}

#[tokio::test]
async fn a_draft_naming_a_drug_that_interacts_with_the_list_escalates_with_interaction() {
    let t = test_store(142).await;
    let patient = consenting_patient(&t.store, 9144).await;
    let generator = ScriptedGenerator::new("ok");
    generator.push(Script::say(
        "For a tension headache, rest and try ibuprofen with food.",
    ));
    generator.push(Script::say("Rest in a dark room and drink water."));
    let s = service(&t, generator);
    s.confirm_medication(patient, MedicationKind::Medicine, "warfarin")
        .await
        .unwrap()
        .unwrap();
    let (reasons, card) = reasons_and_card(
        &s,
        &t.store,
        patient,
        "I have had a mild headache since this morning",
    )
    .await;
    assert!(reasons.contains(&ReviewReason::Interaction), "{reasons:?}");
    assert!(
        card.starts_with("Medicines (from the patient's /meds list):"),
        "{card}"
    );
    assert!(card.contains("Takes: warfarin"), "{card}");
    assert!(card.contains("Named in the draft: ibuprofen"), "{card}");
    assert!(
        card.contains("⚠ Interaction (major): warfarin + ibuprofen"),
        "{card}"
    );

    // A draft that names no medicine is not held for an interaction.
    let outcome = s
        .handle(patient, "It is better now, thanks", &mut |_| {})
        .await
        .unwrap();
    assert!(
        !matches!(&outcome.reply, Reply::UnderReview { reasons, .. } if reasons.contains(&ReviewReason::Interaction)),
        "{:?}",
        outcome.reply
    );
}

#[tokio::test]
async fn a_question_naming_an_nsaid_brand_hits_the_anticoagulant_rule_and_chinese_names_work() {
    let t = test_store(143).await;
    let patient = consenting_patient(&t.store, 9145).await;
    let s = service(
        &t,
        ScriptedGenerator::new("Please ask your doctor or pharmacist."),
    );
    s.add_medications(patient, MedicationKind::Medicine, "华法林")
        .await
        .unwrap();
    let (reasons, card) = reasons_and_card(&s, &t.store, patient, "我头疼，可以吃芬必得吗？").await;
    assert!(reasons.contains(&ReviewReason::Interaction), "{reasons:?}");
    assert!(
        reasons.contains(&ReviewReason::MedicationQuestion),
        "{reasons:?}"
    );
    assert!(card.contains("Named by the patient: ibuprofen"), "{card}");
    assert!(card.contains("warfarin + ibuprofen"), "{card}");
}

#[tokio::test]
async fn a_draft_naming_a_drug_the_patient_is_allergic_to_escalates_with_allergy_conflict() {
    let t = test_store(144).await;
    let patient = consenting_patient(&t.store, 9146).await;
    let s = service(
        &t,
        ScriptedGenerator::new("A sore throat with fever is often treated with amoxicillin."),
    );
    s.add_medications(patient, MedicationKind::Allergy, "penicillin")
        .await
        .unwrap();
    let (reasons, card) = reasons_and_card(
        &s,
        &t.store,
        patient,
        "I have a sore throat and a fever of 38.4",
    )
    .await;
    assert!(
        reasons.contains(&ReviewReason::AllergyConflict),
        "{reasons:?}"
    );
    assert!(card.contains("Allergies: Penicillin"), "{card}");
    assert!(
        card.contains("⚠ Allergy conflict (avoid): amoxicillin with the"),
        "{card}"
    );
}

#[tokio::test]
async fn what_a_message_says_the_patient_takes_is_proposed_not_saved() {
    let t = test_store(145).await;
    let patient = consenting_patient(&t.store, 9147).await;
    let s = service(&t, ScriptedGenerator::new("ok"));
    let proposals = s
        .medication_proposals(
            patient,
            "I'm on warfarin and I'm allergic to penicillin. Can I take ibuprofen?",
        )
        .await
        .unwrap();
    let proposed: Vec<(MedicationKind, &str)> = proposals
        .iter()
        .map(|p| (p.kind, p.drug.as_str()))
        .collect();
    assert_eq!(
        proposed,
        [
            (MedicationKind::Medicine, "warfarin"),
            (MedicationKind::Allergy, "penicillin")
        ]
    );
    assert!(
        s.medications(patient).await.unwrap().is_empty(),
        "nothing saved before the tap"
    );
    s.confirm_medication(patient, MedicationKind::Medicine, "warfarin")
        .await
        .unwrap();
    let again = s
        .medication_proposals(patient, "I take warfarin")
        .await
        .unwrap();
    assert!(again.is_empty(), "already on the list: {again:?}");
    assert!(
        s.confirm_medication(patient, MedicationKind::Medicine, "no_such_drug")
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn meds_check_prints_one_json_line_with_interactions_and_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let lexicon = fetched("models/drug-lexicon.pkl", "models/fetch-drug-lexicon");
    let env = [("MEDBOT_DRUG_LEXICON", lexicon.to_str().unwrap())];
    let output = run_medbot(
        &[
            "meds",
            "check",
            "Coumadin",
            "布洛芬",
            "paracetamol",
            "frobnicol",
        ],
        &env,
        dir.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(json["unknown"], serde_json::json!(["frobnicol"]));
    let interactions = json["interactions"].as_array().unwrap();
    let first = &interactions[0];
    assert_eq!(
        (first["a"].as_str(), first["b"].as_str()),
        (Some("warfarin"), Some("ibuprofen"))
    );
    assert_eq!(first["severity"], "major");
    assert!(!first["advice"].as_str().unwrap().is_empty());
    assert!(
        interactions
            .iter()
            .all(|i| i["a"] != "ibuprofen" || i["b"] != "paracetamol"),
        "{interactions:?}"
    );
}

/// The pairs written by someone who did not see the rules. The rules were tuned on pairs.toml; the
/// held-out file was measured blind once (26/27 flagged, 0/18 false alarms: probenecid was unknown,
/// added since) and is checked here from then on, so that no later change loses what it found.
#[test]
fn the_checks_flag_dangerous_pairs_and_leave_safe_ones_alone() {
    for file in ["pairs.toml", "pairs_held_out.toml"] {
        check_pairs(file);
    }
}

fn check_pairs(file: &str) {
    let knowledge = ClinicalKnowledge::builtin();
    let lexicon = DrugLexicon::load(&fetched(
        "models/drug-lexicon.pkl",
        "models/fetch-drug-lexicon",
    ))
    .unwrap();
    let lookup = NameLookup {
        knowledge: &knowledge.medicines,
        lexicon: Some(&lexicon),
    };
    let pairs = evaluation::load_pairs(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/medicines")
            .join(file),
    )
    .unwrap();
    assert!(pairs.len() >= 40, "{} pairs in {file}", pairs.len());
    let report = evaluation::evaluate(lookup, &pairs);
    println!("{file}: {report}");
    assert!(report.sensitivity() >= 0.95, "{report}");
    assert!(report.false_alarm_rate() <= 0.05, "{report}");
    assert!(report.unknown.is_empty(), "{report}");
}

#[tokio::test]
async fn what_the_patient_said_earlier_counts_and_a_draft_naming_any_known_medicine_is_reviewed() {
    let t = test_store(146).await;
    let patient = consenting_patient(&t.store, 9148).await;
    let generator = ScriptedGenerator::new("ok");
    generator.push(Script::say("Thank you for telling me."));
    generator.push(Script::say(
        "Rest, drink water. You could also try naproxen.",
    ));
    generator.push(Script::say("头痛时可以吃萘普生。多喝水。"));
    let s = service(&t, generator);
    // Said in passing (the offer to save it declined), then a headache.
    let first = s
        .handle(
            patient,
            "I'm on warfarin since my valve surgery",
            &mut |_| {},
        )
        .await
        .unwrap();
    assert!(!matches!(first.reply, Reply::Emergency { .. }));
    let (reasons, card) = reasons_and_card(&s, &t.store, patient, "Now I have a headache").await;
    assert!(reasons.contains(&ReviewReason::Interaction), "{reasons:?}");
    assert!(
        card.contains("Says they take (not on the list): warfarin"),
        "{card}"
    );
    assert!(card.contains("warfarin + naproxen"), "{card}");

    // A Chinese draft naming a medicine the drug dictionary does not know is still held, and none
    // of it is streamed.
    let other = consenting_patient(&t.store, 9149).await;
    let mut shown = Vec::new();
    let outcome = s
        .handle(other, "我头疼", &mut |step| {
            if let medbot::consult::Progress::Partial(text) = step {
                shown.push(text.to_owned());
            }
        })
        .await
        .unwrap();
    let Reply::UnderReview { reasons, .. } = outcome.reply else {
        panic!("delivered: {:?}", outcome.reply);
    };
    assert!(
        reasons.contains(&ReviewReason::NamesMedicine),
        "{reasons:?}"
    );
    assert!(shown.iter().all(|s| !s.contains("萘普生")), "{shown:?}");
}

/// Brands the medicine data do not list come through the drug dictionary, including those whose
/// entry the pickle shares with others (read from the plain table) and combination products.
#[test]
fn dictionary_brands_and_combination_products_resolve_to_their_generics() {
    let knowledge = ClinicalKnowledge::builtin();
    let lexicon = DrugLexicon::load(&fetched(
        "models/drug-lexicon.pkl",
        "models/fetch-drug-lexicon",
    ))
    .unwrap();
    let lookup = NameLookup {
        knowledge: &knowledge.medicines,
        lexicon: Some(&lexicon),
    };
    let ids = |name: &str| -> Vec<&str> {
        lookup
            .resolve_all(name)
            .into_iter()
            .map(|a| knowledge.medicines.id_of(a))
            .collect()
    };
    assert_eq!(ids("Calpol"), ["paracetamol"]);
    assert!(!ids("penicillin VK").is_empty());
    let excedrin = ids("Excedrin");
    assert!(
        excedrin.contains(&"aspirin") && excedrin.contains(&"paracetamol"),
        "{excedrin:?}"
    );
    assert_eq!(ids("Zestoretic"), ["lisinopril", "hydrochlorothiazide"]);
    let warfarin = knowledge.medicines.by_id("warfarin").unwrap();
    let aspirin = knowledge.medicines.by_id("aspirin").unwrap();
    assert!(knowledge.medicines.interaction(warfarin, aspirin).is_some());
}

#[tokio::test]
async fn the_same_medicine_added_at_once_many_times_is_one_entry() {
    let t = test_store(149).await;
    let patient = consenting_patient(&t.store, 9153).await;
    let adds = (0..8).map(|_| {
        let store = t.store.clone();
        tokio::spawn(async move {
            store
                .add_medication(
                    patient,
                    MedicationKind::Medicine,
                    Some("warfarin"),
                    "warfarin",
                )
                .await
                .unwrap()
        })
    });
    let ids: std::collections::HashSet<_> = futures::future::join_all(adds)
        .await
        .into_iter()
        .map(|added| added.unwrap().id)
        .collect();
    assert_eq!(ids.len(), 1, "every call returns the one entry");
    assert_eq!(t.store.medications(patient).await.unwrap().len(), 1);
}
