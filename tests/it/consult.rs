//! The consultation service driven through its ports: the scripted generator, a manual clock, and
//! the real PostgreSQL store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use medbot::consult::testing::{ManualClock, Script, ScriptedFailure, ScriptedGenerator};
use medbot::consult::{
    ConsultError, ConsultationService, DecideError, Outcome, Progress, Reply, ReviewDesk,
    ServiceSettings, Verdict,
};
use medbot::context::PromptRole;
use medbot::domain::{
    EscalationId, EscalationStatus, PatientId, Role, TelegramChatId, TelegramUserId, TriageLevel,
};
use medbot::storage::{ReadPurpose, Store};
use medbot::triage::{DraftReviewer, DrugLexicon, ReviewReason};

use crate::helpers::*;

type Service = ConsultationService<ScriptedGenerator, Store, Arc<ManualClock>>;

struct Harness {
    t: TestStore,
    generator: Arc<ScriptedGenerator>,
    clock: Arc<ManualClock>,
    service: Arc<Service>,
    desk: Arc<ReviewDesk<Store, Arc<ManualClock>>>,
}

const FALLBACK: &str = "Rest, drink plenty of fluids, and see a clinician if you get worse.";

async fn harness(key_byte: u8) -> Harness {
    harness_with(key_byte, ServiceSettings::default()).await
}

async fn harness_with(key_byte: u8, settings: ServiceSettings) -> Harness {
    let t = test_store(key_byte).await;
    let generator = Arc::new(ScriptedGenerator::new(FALLBACK));
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let reviewer = Arc::new(DraftReviewer::new(DrugLexicon::from_names([
        "ibuprofen",
        "paracetamol",
        "amoxicillin",
        "sertraline",
    ])));
    let service = Arc::new(ConsultationService::new(
        generator.clone(),
        t.store.clone(),
        clock.clone(),
        reviewer,
        settings,
    ));
    let desk = Arc::new(ReviewDesk::new(t.store.clone(), clock.clone()));
    Harness {
        t,
        generator,
        clock,
        service,
        desk,
    }
}

impl Harness {
    async fn patient(&self, telegram: i64) -> PatientId {
        consenting_patient(&self.t.store, telegram).await
    }

    async fn send(&self, patient: PatientId, text: &str) -> Outcome {
        self.service
            .handle(patient, text, &mut |_| {})
            .await
            .expect("handled")
    }

    async fn conversation(&self, patient: PatientId) -> Vec<(Role, String)> {
        self.t
            .store
            .read_messages(patient, None, ReadPurpose::History)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.role, m.text.as_str().to_owned()))
            .collect()
    }

    async fn patient_outbox(&self, patient: PatientId) -> Vec<String> {
        self.t
            .store
            .take_patient_outbox(patient)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.text().to_owned())
            .collect()
    }

    async fn doctor_outbox_kinds(&self) -> Vec<String> {
        self.t
            .store
            .unsent_doctor_notices()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.kind.as_str().to_owned())
            .collect()
    }

    /// Escalates one question for `patient` with a draft that names a medicine.
    async fn escalate(&self, patient: PatientId, question: &str, draft: &str) -> EscalationId {
        self.generator.push(Script::say(draft));
        match self.send(patient, question).await.reply {
            Reply::UnderReview { escalation, .. } => escalation,
            other => panic!("expected an escalation, got {other:?}"),
        }
    }
}

fn escalation_of(outcome: &Outcome) -> (EscalationId, Vec<ReviewReason>) {
    match &outcome.reply {
        Reply::UnderReview {
            escalation,
            reasons,
            ..
        } => (*escalation, reasons.clone()),
        other => panic!("expected an escalation, got {other:?}"),
    }
}

#[tokio::test]
async fn a_five_turn_conversation_keeps_its_context_and_a_new_topic_starts_afresh() {
    let h = harness(61).await;
    let patient = h.patient(1001).await;
    let questions = [
        "I have had a sore throat since yesterday",
        "It hurts more when I swallow",
        "I also feel a bit tired",
        "Should I stay home from work?",
        "How long does this usually last?",
    ];
    for (turn, question) in questions.iter().enumerate() {
        h.generator.push(Script::say(format!(
            "Answer number {turn}: sore throats usually get better on their own."
        )));
        let outcome = h.send(patient, question).await;
        assert!(
            matches!(outcome.reply, Reply::Answer { .. }),
            "{:?}",
            outcome.reply
        );
    }
    let prompts = h.generator.prompts();
    assert_eq!(prompts.len(), 5);
    let last = &prompts[4];
    assert_eq!(last[0].role, PromptRole::System);
    assert!(last[0].content.contains("not a doctor"));
    // System, then five questions and four answers alternating, oldest first.
    assert_eq!(last.len(), 10, "{last:#?}");
    for (turn, question) in questions.iter().enumerate() {
        assert_eq!(last[1 + 2 * turn].role, PromptRole::User);
        assert_eq!(last[1 + 2 * turn].content, *question);
        if turn < 4 {
            assert_eq!(last[2 + 2 * turn].role, PromptRole::Assistant);
            assert!(
                last[2 + 2 * turn]
                    .content
                    .starts_with(&format!("Answer number {turn}:"))
            );
        }
    }

    // A new topic: the history stays, the context starts from the next message.
    h.service.start_new_topic(patient).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    h.send(
        patient,
        "Different question: how much sleep do adults need?",
    )
    .await;
    let prompts = h.generator.prompts();
    let fresh = prompts.last().unwrap();
    assert_eq!(fresh.len(), 2, "{fresh:#?}");
    assert!(fresh[1].content.starts_with("Different question"));
    assert_eq!(h.conversation(patient).await.len(), 12);
}

#[tokio::test]
async fn old_turns_are_dropped_whole_when_the_window_is_small() {
    let t = test_store(62).await;
    let generator = Arc::new(ScriptedGenerator::new(FALLBACK).with_context_tokens(700));
    let service = ConsultationService::new(
        generator.clone(),
        t.store.clone(),
        Arc::new(ManualClock::new(chrono::Utc::now())),
        Arc::new(DraftReviewer::new(DrugLexicon::from_names(["ibuprofen"]))),
        ServiceSettings {
            answer_tokens: 200,
            ..ServiceSettings::default()
        },
    );
    let patient = consenting_patient(&t.store, 7).await;
    let long = "my throat is sore and scratchy ".repeat(12);
    for n in 0..6 {
        service
            .handle(patient, &format!("{n} {long}"), &mut |_| {})
            .await
            .unwrap();
    }
    let last = generator.prompts().pop().unwrap();
    // Whole exchanges only: after the system prompt, user and assistant alternate, starting with
    // the user, and the newest question is last.
    assert!(last.len() < 12, "nothing was dropped: {}", last.len());
    assert_eq!(last[1].role, PromptRole::User);
    assert!(last.last().unwrap().content.starts_with("5 "));
    for pair in last[1..].chunks(2) {
        assert_eq!(pair[0].role, PromptRole::User);
        if let Some(answer) = pair.get(1) {
            assert_eq!(answer.role, PromptRole::Assistant);
        }
    }
}

#[tokio::test]
async fn an_emergency_gets_fixed_advice_at_once_never_reaches_the_model_and_alerts_doctors() {
    let h = harness(63).await;
    let patient = h.patient(1002).await;
    let started = Instant::now();
    let outcome = h
        .send(
            patient,
            "I have crushing chest pain going down my left arm and I'm sweating",
        )
        .await;
    // Not a timing claim (a busy runner can be slow): the advice comes without the model.
    println!("emergency advice in {:?}", started.elapsed());
    assert_eq!(h.generator.calls(), 0);
    assert_eq!(outcome.assessment.level, TriageLevel::Emergency);
    let Reply::Emergency { text } = &outcome.reply else {
        panic!("{:?}", outcome.reply)
    };
    assert!(text.contains("emergency number") && text.contains("Do not drive yourself"));
    assert_eq!(h.generator.calls(), 0);

    let notices = h.t.store.unsent_doctor_notices().await.unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].kind.as_str(), "emergency_alert");
    let body = notices[0].body.as_ref().unwrap().as_str().to_owned();
    assert!(body.contains(&patient.reference()) && body.contains("chest_pain_with_danger_signs"));

    let conversation = h.conversation(patient).await;
    assert_eq!(conversation.len(), 2);
    assert_eq!(conversation[1], (Role::Assistant, text.clone()));

    // In Chinese, the advice is in Chinese.
    let outcome = h.send(patient, "孩子喘不过气，嘴唇发紫").await;
    assert!(outcome.reply.text().contains("120"));
    assert_eq!(h.generator.calls(), 0);
}

#[tokio::test]
async fn every_review_flag_escalates_and_records_its_reason() {
    let h = harness(64).await;
    let cases: Vec<(&str, Option<Script>, ReviewReason)> = vec![
        (
            "I have a headache",
            Some(Script::say("You could try ibuprofen for the pain.")),
            ReviewReason::NamesMedicine,
        ),
        (
            "I have a headache",
            Some(Script::say("Take 400 mg every 6 hours with food.")),
            ReviewReason::StatesDose,
        ),
        (
            "I have a cough and a fever",
            Some(Script::say("You definitely have pneumonia.")),
            ReviewReason::CertainDiagnosis,
        ),
        (
            "I feel a bit off today",
            Some(Script::say(
                "Crushing chest pain with sweating can be a heart attack.",
            )),
            ReviewReason::RedFlagContent,
        ),
        (
            "fever of 39.5 and feeling awful",
            None,
            ReviewReason::UrgentTriage,
        ),
        (
            "Can I talk to a real doctor about my cold?",
            None,
            ReviewReason::PatientAskedForDoctor,
        ),
        (
            "Can I take paracetamol for a cold?",
            None,
            ReviewReason::MedicationQuestion,
        ),
        (
            "I have a runny nose",
            Some(Script::say_unsure("Rest and drink fluids.")),
            ReviewReason::LowConfidence,
        ),
        (
            "I have a runny nose",
            Some(Script::say("")),
            ReviewReason::EmptyDraft,
        ),
        (
            "I have a runny nose",
            Some(Script::say(
                "Drink some water. Drink some water. Drink some water. Drink some water.",
            )),
            ReviewReason::RepetitiveDraft,
        ),
        (
            "I have a runny nose",
            Some(Script::say("@@ ## $$ %% 12 34 ?? !! ** ((")),
            ReviewReason::GarbledDraft,
        ),
        (
            "I have a runny nose",
            Some(Script::SayCutOff("Rest and drink fluids and".into())),
            ReviewReason::IncompleteDraft,
        ),
        (
            "I have a runny nose",
            Some(Script::Fail(ScriptedFailure::Busy)),
            ReviewReason::EmptyDraft,
        ),
    ];
    for (n, (question, script, reason)) in cases.into_iter().enumerate() {
        let patient = h.patient(2000 + n as i64).await;
        if let Some(script) = script {
            h.generator.push(script);
        }
        let mut told_review = 0;
        let outcome = h
            .service
            .handle(patient, question, &mut |p| {
                if let Progress::ReviewRequired(_) = p {
                    told_review += 1;
                }
            })
            .await
            .unwrap();
        let (id, reasons) = escalation_of(&outcome);
        assert!(reasons.contains(&reason), "{reason:?} not in {reasons:?}");
        assert_eq!(told_review, 1, "{reason:?}: told {told_review} times");
        assert!(outcome.reply.text().contains("doctor is reviewing"));
        let stored = h.t.store.load_escalation(id).await.unwrap();
        assert_eq!(stored.status, EscalationStatus::Pending);
        assert!(
            stored.reasons.iter().any(|r| r == reason.as_str()),
            "{:?}",
            stored.reasons
        );
        assert_eq!(stored.question.as_str(), question);
        assert_eq!(stored.patient, patient);
    }

    // Nothing risky: delivered with the "not medical advice" line, and stored as said.
    let patient = h.patient(2999).await;
    let outcome = h.send(patient, "I have a runny nose").await;
    let Reply::Answer { text } = &outcome.reply else {
        panic!("{:?}", outcome.reply)
    };
    assert!(text.starts_with(FALLBACK) && text.contains("not medical advice"));
    assert_eq!(
        h.conversation(patient).await.last().unwrap(),
        &(Role::Assistant, text.clone())
    );
}

#[tokio::test]
async fn sentences_stream_until_a_risky_one_and_the_risky_one_is_never_shown() {
    let h = harness(65).await;
    let patient = h.patient(3001).await;

    h.generator.push(Script::say(
        "Colds are common. Rest helps a lot. Drink warm fluids.",
    ));
    let mut partials = Vec::new();
    let outcome = h
        .service
        .handle(patient, "I have a cold", &mut |p| {
            if let Progress::Partial(text) = p {
                partials.push(text.to_owned());
            }
        })
        .await
        .unwrap();
    assert!(matches!(outcome.reply, Reply::Answer { .. }));
    assert_eq!(
        partials,
        ["Colds are common.", "Colds are common. Rest helps a lot."]
    );

    h.generator.push(Script::say(
        "Colds are common. You could take ibuprofen. Rest helps.",
    ));
    let mut events = Vec::new();
    let outcome = h
        .service
        .handle(patient, "I have a cold again", &mut |p| match p {
            Progress::Partial(text) => events.push(format!("partial:{text}")),
            Progress::ReviewRequired(_) => events.push("review".into()),
            Progress::Triaged(a) => events.push(format!("triaged:{}", a.level.as_str())),
        })
        .await
        .unwrap();
    escalation_of(&outcome);
    assert_eq!(
        events,
        ["triaged:self_care", "partial:Colds are common.", "review"]
    );

    // When a review is certain from the question, nothing streams at all.
    h.generator
        .push(Script::say("Colds are common. Rest helps a lot. More."));
    let mut partial_count = 0;
    h.service
        .handle(patient, "Can I talk to a doctor about my cold?", &mut |p| {
            if let Progress::Partial(_) = p {
                partial_count += 1;
            }
        })
        .await
        .unwrap();
    assert_eq!(partial_count, 0);
}

#[tokio::test]
async fn each_outcome_reaches_the_patient_and_is_recorded() {
    let h = harness(66).await;
    let doctor = TelegramUserId(555);

    // Approved: the draft, marked as reviewed.
    let patient = h.patient(4001).await;
    let id = h
        .escalate(
            patient,
            "I have a headache",
            "Ibuprofen can help with headaches.",
        )
        .await;
    assert_eq!(h.patient_outbox(patient).await.len(), 0);
    assert_eq!(
        h.desk.decide(id, doctor, Verdict::Approve).await.unwrap(),
        EscalationStatus::Approved
    );
    let sent = h.patient_outbox(patient).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with("Ibuprofen can help with headaches."));
    assert!(sent[0].contains("Reviewed and approved by a doctor"));
    let record = h.t.store.load_escalation(id).await.unwrap();
    assert_eq!(record.decided_by, Some(doctor));
    assert!(record.decided_at.is_some());
    assert_eq!(
        h.conversation(patient).await.last().unwrap(),
        &(Role::Assistant, sent[0].clone())
    );

    // Edited: the doctor's text instead.
    let patient = h.patient(4002).await;
    let id = h
        .escalate(
            patient,
            "I have a headache",
            "Ibuprofen can help with headaches.",
        )
        .await;
    h.desk
        .decide(
            id,
            doctor,
            Verdict::Edit("Rest in a dark room and drink water; see your GP if it lasts.".into()),
        )
        .await
        .unwrap();
    let sent = h.patient_outbox(patient).await;
    assert!(sent[0].starts_with("Rest in a dark room"));
    assert!(!sent[0].contains("Ibuprofen"));
    let record = h.t.store.load_escalation(id).await.unwrap();
    assert_eq!(record.status, EscalationStatus::Edited);
    assert!(
        record
            .final_text
            .unwrap()
            .as_str()
            .starts_with("Rest in a dark room")
    );
    assert_eq!(
        h.conversation(patient).await.last().unwrap().0,
        Role::Doctor
    );

    // Rejected with a note, and without one (the standard message).
    let patient = h.patient(4003).await;
    let id = h
        .escalate(
            patient,
            "I have a headache",
            "Ibuprofen can help with headaches.",
        )
        .await;
    h.desk
        .decide(
            id,
            doctor,
            Verdict::Reject(Some("Please book a GP visit this week.".into())),
        )
        .await
        .unwrap();
    let sent = h.patient_outbox(patient).await;
    assert!(
        sent[0].contains("Please book a GP visit this week.") && !sent[0].contains("Ibuprofen")
    );

    let patient = h.patient(4004).await;
    let id = h.escalate(patient, "我头疼", "可以吃布洛芬。").await;
    h.desk
        .decide(id, doctor, Verdict::Reject(None))
        .await
        .unwrap();
    let sent = h.patient_outbox(patient).await;
    assert!(sent[0].contains("请就此当面咨询医生"), "{}", sent[0]);

    // Each decision told the doctors' card and wrote the audit log.
    let decided = h
        .doctor_outbox_kinds()
        .await
        .into_iter()
        .filter(|k| k == "escalation_decided")
        .count();
    assert_eq!(decided, 4);
    let audit = h.t.store.recent_audit(100).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.action == "doctor_decision" && r.actor == "doctor:555")
            .count(),
        4
    );
    assert_eq!(
        h.t.store.verify_audit_log().await.unwrap().first_broken_seq,
        None
    );

    // Nothing of it is in the database in clear.
    let dump = pg_dump(&h.t.url);
    for secret in [
        "Ibuprofen can help",
        "Rest in a dark room",
        "book a GP visit",
        "布洛芬",
    ] {
        assert!(!dump.contains(secret), "{secret} is stored in clear");
    }
}

#[tokio::test]
async fn an_empty_draft_cannot_be_approved_but_can_be_edited() {
    let h = harness(67).await;
    let patient = h.patient(5001).await;
    h.generator.push(Script::Fail(ScriptedFailure::Broken));
    let (id, _) = escalation_of(&h.send(patient, "I have a runny nose").await);
    assert!(matches!(
        h.desk.decide(id, TelegramUserId(1), Verdict::Approve).await,
        Err(DecideError::NothingToApprove)
    ));
    assert!(matches!(
        h.desk
            .decide(id, TelegramUserId(1), Verdict::Edit("  ".into()))
            .await,
        Err(DecideError::EmptyEdit)
    ));
    h.desk
        .decide(
            id,
            TelegramUserId(1),
            Verdict::Edit("Saline spray and rest.".into()),
        )
        .await
        .unwrap();
    assert!(h.patient_outbox(patient).await[0].starts_with("Saline spray and rest."));
}

#[tokio::test]
async fn two_doctors_deciding_at_once_give_one_outcome() {
    let h = harness(68).await;
    for round in 0..8 {
        let patient = h.patient(6000 + round).await;
        let id = h
            .escalate(
                patient,
                "I have a headache",
                "Ibuprofen can help with headaches.",
            )
            .await;
        let (a, b) = tokio::join!(
            h.desk.decide(id, TelegramUserId(1), Verdict::Approve),
            h.desk
                .decide(id, TelegramUserId(2), Verdict::Reject(Some("No.".into()))),
        );
        let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {a:?} {b:?}");
        let loser = if a.is_ok() { b } else { a };
        assert!(
            matches!(loser, Err(DecideError::AlreadyDecided(_))),
            "{loser:?}"
        );
        // One answer reached the patient, one reply is in the conversation.
        assert_eq!(h.patient_outbox(patient).await.len(), 1);
        let replies = h
            .conversation(patient)
            .await
            .into_iter()
            .filter(|(role, _)| *role != Role::Patient)
            .count();
        assert_eq!(replies, 1);
    }
    let decisions =
        h.t.store
            .recent_audit(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.action == "doctor_decision")
            .count();
    assert_eq!(decisions, 8);
}

#[tokio::test]
async fn an_undecided_escalation_expires_on_time_with_safe_advice() {
    let h = harness(69).await;
    let patient = h.patient(7001).await;
    let id = h
        .escalate(
            patient,
            "I have a headache",
            "Ibuprofen can help with headaches.",
        )
        .await;
    h.clock.advance(chrono::Duration::minutes(29));
    assert_eq!(h.desk.expire_due().await.unwrap(), 0);
    assert!(h.patient_outbox(patient).await.is_empty());

    h.clock.advance(chrono::Duration::minutes(2));
    assert_eq!(h.desk.expire_due().await.unwrap(), 1);
    let sent = h.patient_outbox(patient).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("no doctor could review") && !sent[0].contains("Ibuprofen"));
    let record = h.t.store.load_escalation(id).await.unwrap();
    assert_eq!(record.status, EscalationStatus::Expired);
    assert_eq!(record.decided_by, None);
    assert!(
        h.doctor_outbox_kinds()
            .await
            .contains(&"escalation_decided".to_owned())
    );

    // A doctor who comes late is told, and nothing changes.
    assert!(matches!(
        h.desk.decide(id, TelegramUserId(1), Verdict::Approve).await,
        Err(DecideError::AlreadyDecided(EscalationStatus::Expired))
    ));
    assert_eq!(h.desk.expire_due().await.unwrap(), 0);
    assert!(h.patient_outbox(patient).await.is_empty());
}

#[tokio::test]
async fn bad_messages_get_a_clear_error_and_store_nothing() {
    let h = harness(70).await;
    let patient = h.patient(8001).await;
    for text in ["", "   ", "🙂🙂", "\u{200b}"] {
        let err = h
            .service
            .handle(patient, text, &mut |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, ConsultError::EmptyMessage), "{text:?}: {err}");
    }
    let huge = "a".repeat(20_000);
    let err = h
        .service
        .handle(patient, &huge, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ConsultError::MessageTooLong { .. }));
    assert!(
        err.patient_text(medbot::domain::Language::English, 4000)
            .contains("4000 characters")
    );
    assert!(h.conversation(patient).await.is_empty());
    assert_eq!(h.generator.calls(), 0);

    // An emergency is answered however long the message: the length limit comes after triage.
    let long = format!(
        "{} I have crushing chest pain down my left arm and I'm sweating",
        "I was at work today and felt unwell. ".repeat(200)
    );
    let outcome = h.send(patient, &long).await;
    assert!(
        matches!(outcome.reply, Reply::Emergency { .. }),
        "{:?}",
        outcome.reply
    );
    assert_eq!(h.generator.calls(), 0);
    assert_eq!(h.conversation(patient).await.len(), 2);

    // Odd Unicode that has words in it is handled (in a new topic: after an emergency, the same
    // topic's answers go to a doctor).
    h.service.start_new_topic(patient).await.unwrap();
    let outcome = h.send(patient, "Ｉ ｈａｖｅ ａ ｃｏｌｄ 🤧 e\u{301}").await;
    assert!(matches!(outcome.reply, Reply::Answer { .. }));
}

#[tokio::test]
async fn retrieved_passages_reach_the_prompt_and_their_sources_the_answer() {
    use medbot::consult::Reference;
    use medbot::consult::testing::StaticKnowledge;

    let t = test_store(71).await;
    let generator = Arc::new(ScriptedGenerator::new(FALLBACK));
    let reference = |title: &str, source: &str, text: &str, score: f32| Reference {
        title: title.into(),
        source: Some(source.into()),
        heading: "Self-care".into(),
        text: text.into(),
        score,
    };
    let knowledge = StaticKnowledge(vec![
        reference(
            "Common cold",
            "https://doi.org/10.1/cold",
            "Rest, fluids and honey in warm water help most colds.",
            0.71,
        ),
        reference(
            "Sore throat",
            "https://doi.org/10.1/throat",
            "Gargling salt water can ease a sore throat.",
            0.52,
        ),
        reference(
            "Gout",
            "https://doi.org/10.1/gout",
            "Unrelated passage.",
            0.20,
        ),
    ]);
    let service = ConsultationService::new(
        generator.clone(),
        t.store.clone(),
        Arc::new(ManualClock::new(chrono::Utc::now())),
        Arc::new(DraftReviewer::new(DrugLexicon::from_names(["ibuprofen"]))),
        ServiceSettings::default(),
    )
    .with_knowledge(Arc::new(knowledge));
    let patient = consenting_patient(&t.store, 9).await;
    let outcome = service
        .handle(patient, "I have a cold and a sore throat", &mut |_| {})
        .await
        .unwrap();
    let prompt = generator.prompts().pop().unwrap();
    let system = &prompt[0].content;
    assert!(system.contains("[1] Common cold — Self-care: Rest, fluids and honey"));
    assert!(system.contains("[2] Sore throat"));
    assert!(
        !system.contains("Gout"),
        "a passage under the threshold was used"
    );
    let Reply::Answer { text } = outcome.reply else {
        panic!("{:?}", outcome.reply)
    };
    assert!(text.contains("Sources:"));
    assert!(text.contains("Common cold — https://doi.org/10.1/cold"));
    assert!(text.contains("Sore throat — https://doi.org/10.1/throat"));
    assert!(!text.contains("gout"));

    // An escalated draft carries its sources to the doctor's card.
    generator.push(Script::say("You could take ibuprofen."));
    let outcome = service
        .handle(patient, "my cold is worse", &mut |_| {})
        .await
        .unwrap();
    let (id, _) = escalation_of(&outcome);
    let record = t.store.load_escalation(id).await.unwrap();
    assert!(record.draft.as_str().contains("Sources:"));

    // Nothing relevant: the model is told so, and no sources are claimed.
    let service = ConsultationService::new(
        generator.clone(),
        t.store.clone(),
        Arc::new(ManualClock::new(chrono::Utc::now())),
        Arc::new(DraftReviewer::new(DrugLexicon::from_names(["ibuprofen"]))),
        ServiceSettings::default(),
    )
    .with_knowledge(Arc::new(StaticKnowledge(vec![reference(
        "Gout",
        "https://doi.org/10.1/gout",
        "Unrelated.",
        0.1,
    )])));
    let outcome = service
        .handle(patient, "how much water should I drink", &mut |_| {})
        .await
        .unwrap();
    assert!(
        generator.prompts().pop().unwrap()[0]
            .content
            .contains("No reference passage matched this question")
    );
    assert!(!outcome.reply.text().contains("Sources:"));
}

#[tokio::test]
async fn resuming_an_unanswered_emergency_gives_the_advice_and_alerts_the_doctors_once() {
    let h = harness(72).await;
    let patient = h.patient(9101).await;
    // Stored, then the process died before answering.
    h.t.store
        .append_message(
            patient,
            Role::Patient,
            &medbot::crypto::Plaintext::new("my husband collapsed and is not responding"),
        )
        .await
        .unwrap();
    let outcome = h
        .service
        .resume(patient, &mut |_| {})
        .await
        .unwrap()
        .expect("something to answer");
    assert!(matches!(outcome.reply, Reply::Emergency { .. }));
    assert_eq!(h.generator.calls(), 0);
    let conversation = h.conversation(patient).await;
    assert_eq!(conversation.len(), 2, "{conversation:?}");
    assert_eq!(conversation[1].0, Role::Assistant);
    assert_eq!(h.doctor_outbox_kinds().await, ["emergency_alert"]);
    // Answered now: nothing left to resume.
    assert!(
        h.service
            .resume(patient, &mut |_| {})
            .await
            .unwrap()
            .is_none()
    );
}

const CHEST: &str =
    "crushing pain in my chest spreading to my left arm, I'm sweating and can't catch my breath";

/// Waits (a guard against a hang, not a timing claim) until the generator has been asked `n` times.
async fn until_asked(generator: &ScriptedGenerator, n: usize) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while generator.calls() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the model was asked");
}

#[tokio::test]
async fn an_emergency_is_answered_while_the_model_is_stuck_and_stops_that_patients_answer() {
    let h = harness(160).await;
    let patient = h.patient(8801).await;
    let other = h.patient(8802).await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    h.generator.push(Script::Held {
        text: "Rest and drink water.".into(),
        release: release.clone(),
    });
    let service = h.service.clone();
    let stuck = tokio::spawn(async move {
        service
            .handle(
                patient,
                "I have had a sore throat for two days",
                &mut |_| {},
            )
            .await
    });
    until_asked(&h.generator, 1).await;

    // The model never finishes; both emergencies are answered all the same.
    for (who, label) in [(other, "another patient"), (patient, "the same patient")] {
        let asked = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(10), h.send(who, CHEST))
            .await
            .unwrap_or_else(|_| panic!("{label}'s emergency waited for the model"));
        assert!(
            matches!(outcome.reply, Reply::Emergency { .. }),
            "{label}: {:?}",
            outcome.reply
        );
        println!(
            "emergency advice for {label} while the model is stuck: {:?}",
            asked.elapsed()
        );
    }
    // The stuck answer was stopped (its stream dropped), not delivered later.
    let first = tokio::time::timeout(Duration::from_secs(10), stuck)
        .await
        .expect("the stuck answer was cancelled")
        .unwrap()
        .unwrap();
    assert_eq!(first.reply, Reply::Superseded);
    tokio::time::timeout(Duration::from_secs(5), async {
        while h.generator.cancelled() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the generation was cancelled");
    release.add_permits(10);
    let said = h.conversation(patient).await;
    let roles: Vec<Role> = said.iter().map(|(r, _)| *r).collect();
    assert_eq!(
        roles,
        [Role::Patient, Role::Patient, Role::Assistant],
        "{said:?}"
    );
    assert!(said[2].1.contains("emergency"));
    assert_eq!(
        h.generator.calls(),
        1,
        "the emergencies never reached the model"
    );
}

#[tokio::test]
async fn a_second_message_supersedes_the_answer_in_progress_and_is_answered_once_with_both() {
    let h = harness(161).await;
    let patient = h.patient(8803).await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    h.generator.push(Script::Held {
        text: "An answer to the first message only.".into(),
        release: release.clone(),
    });
    h.generator.push(Script::say(
        "Both together sound like a cold. Rest and drink water.",
    ));
    let service = h.service.clone();
    let first = tokio::spawn(async move {
        service
            .handle(patient, "I have a runny nose", &mut |_| {})
            .await
    });
    until_asked(&h.generator, 1).await;
    let second = h.send(patient, "and I keep sneezing").await;
    match &second.reply {
        Reply::Answer { text } => assert!(text.starts_with("Both together")),
        other => panic!("expected the answer, got {other:?}"),
    }
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.reply, Reply::Superseded);
    release.add_permits(10);
    let prompt = h.generator.prompts().pop().unwrap();
    let said: Vec<&str> = prompt.iter().map(|m| m.content.as_str()).collect();
    assert!(
        said.contains(&"I have a runny nose") && said.contains(&"and I keep sneezing"),
        "{said:?}"
    );
    // Nothing the patient wrote is lost, and they are answered once.
    let roles: Vec<Role> = h
        .conversation(patient)
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(roles, [Role::Patient, Role::Patient, Role::Assistant]);
}

#[tokio::test]
async fn a_superseded_request_for_a_doctor_still_goes_to_a_doctor() {
    let h = harness(162).await;
    let patient = h.patient(8804).await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    h.generator.push(Script::Held {
        text: "Rest.".into(),
        release: release.clone(),
    });
    let service = h.service.clone();
    let first = tokio::spawn(async move {
        service
            .handle_for_doctor(patient, "Is my rash something to worry about?", &mut |_| {})
            .await
    });
    until_asked(&h.generator, 1).await;
    let second = h.send(patient, "it is on my arm").await;
    let (_, reasons) = escalation_of(&second);
    assert!(
        reasons.contains(&ReviewReason::PatientAskedForDoctor),
        "{reasons:?}"
    );
    assert_eq!(first.await.unwrap().unwrap().reply, Reply::Superseded);
}

#[tokio::test]
async fn a_model_past_the_answer_deadline_sends_the_draft_to_a_doctor() {
    let h = harness_with(
        163,
        ServiceSettings {
            answer_deadline: Duration::from_millis(300),
            ..ServiceSettings::default()
        },
    )
    .await;
    let patient = h.patient(8805).await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    h.generator.push(Script::Held {
        text: "Never finished.".into(),
        release,
    });
    let mut told = Vec::new();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        h.service
            .handle(patient, "I have a runny nose", &mut |step| {
                if let Progress::ReviewRequired(notice) = step {
                    told.push(notice.to_owned());
                }
            }),
    )
    .await
    .expect("the deadline ended the wait")
    .unwrap();
    let (escalation, reasons) = escalation_of(&outcome);
    assert!(
        reasons.contains(&ReviewReason::AnswerDeadline),
        "{reasons:?}"
    );
    assert_eq!(told.len(), 1, "the patient is told a doctor will answer");
    let record = h.t.store.load_escalation(escalation).await.unwrap();
    assert!(record.reasons.iter().any(|r| r == "answer_deadline"));
}

#[tokio::test]
async fn the_service_itself_refuses_a_patient_who_has_not_consented_but_still_gives_emergency_advice()
 {
    let h = harness(164).await;
    let patient =
        h.t.store
            .register_patient(TelegramUserId(8806), TelegramChatId(8806), None)
            .await
            .unwrap()
            .id;
    let refused = h
        .service
        .handle(patient, "I have a runny nose", &mut |_| {})
        .await;
    assert!(
        matches!(refused, Err(ConsultError::NoConsent)),
        "{refused:?}"
    );
    let emergency = h.send(patient, CHEST).await;
    assert!(matches!(emergency.reply, Reply::Emergency { .. }));
    // Nothing of theirs is kept or shown to the doctors, and the model was never asked.
    assert!(h.conversation(patient).await.is_empty());
    assert!(h.doctor_outbox_kinds().await.is_empty());
    assert_eq!(h.generator.calls(), 0);
}

#[tokio::test]
async fn a_sentence_the_model_was_unsure_of_is_never_streamed_and_the_draft_goes_to_a_doctor() {
    let h = harness(165).await;
    let patient = h.patient(8807).await;
    // Sure, unsure, sure: the draft as a whole passes the confidence check, its second
    // sentence does not.
    h.generator.push(Script::Passages(vec![
        ("Colds usually clear up within a week or so. ".into(), -0.2),
        ("Drinking warm fluids can ease it. ".into(), -4.0),
        (
            "Rest as much as you can and keep warm at home. ".into(),
            -0.2,
        ),
    ]));
    let mut shown = Vec::new();
    let mut told = 0;
    let outcome = h
        .service
        .handle(patient, "I have a runny nose", &mut |step| match step {
            Progress::Partial(text) => shown.push(text.to_owned()),
            Progress::ReviewRequired(_) => told += 1,
            Progress::Triaged(_) => {}
        })
        .await
        .unwrap();
    let (_, reasons) = escalation_of(&outcome);
    assert!(
        reasons.contains(&ReviewReason::LowConfidence),
        "{reasons:?}"
    );
    assert_eq!(shown, ["Colds usually clear up within a week or so."]);
    assert_eq!(told, 1);
}
