//! The Telegram bot end to end: the bot started by the same function `medbot serve` uses, the
//! real PostgreSQL, the fake Bot API, and the scripted generator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use medbot::config::TelegramSettings;
use medbot::consult::ServiceSettings;
use medbot::consult::testing::{Script, ScriptedGenerator};
use medbot::domain::{EscalationStatus, TelegramChatId, TelegramUserId};
use medbot::storage::ReadPurpose;
use medbot::telegram::{self, BotContext, RunningBot};
use medbot::triage::{DraftReviewer, DrugLexicon};
use serde_json::json;

use crate::fake_telegram::{ChatMessage, DOCTOR_CHAT, FakeTelegram, Fault, TOKEN};
use crate::helpers::*;

const DOCTOR: i64 = 9001;
const NOT_A_DOCTOR: i64 = 9002;
const ANSWER: &str = "Sore throats usually get better on their own within a week.";
const WAIT: Duration = Duration::from_secs(10);

struct BotUnderTest {
    fake: FakeTelegram,
    t: TestStore,
    key_byte: u8,
    generator: Arc<ScriptedGenerator>,
    /// The bot runs in a runtime of its own, as in its own process: shutting it down drops every
    /// task at once, which is what a crash does.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for BotUnderTest {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn start(key_byte: u8, generator: ScriptedGenerator) -> BotUnderTest {
    let t = test_store(key_byte).await;
    let url = t.url.clone();
    start_on(t, &url, key_byte, generator).await
}

/// As [`start`], with the bot reaching the database at `url` (through a proxy that can fail).
async fn start_on(
    t: TestStore,
    url: &medbot::config::DatabaseUrl,
    key_byte: u8,
    generator: ScriptedGenerator,
) -> BotUnderTest {
    let fake = FakeTelegram::start().await;
    let generator = Arc::new(generator);
    let runtime = launch(&fake, url, key_byte, generator.clone());
    BotUnderTest {
        fake,
        t,
        key_byte,
        generator,
        runtime: Some(runtime),
    }
}

/// Starts the bot the way `medbot serve` does, on its own runtime and database connections.
fn launch<G: medbot::consult::Generator>(
    fake: &FakeTelegram,
    url: &medbot::config::DatabaseUrl,
    key_byte: u8,
    generator: Arc<G>,
) -> tokio::runtime::Runtime {
    launch_serving(fake, url, key_byte, generator, None)
}

/// As [`launch`], serving `/healthz` and `/metrics` on `health` (as `METRICS_LISTEN` does).
fn launch_serving<G: medbot::consult::Generator>(
    fake: &FakeTelegram,
    url: &medbot::config::DatabaseUrl,
    key_byte: u8,
    generator: Arc<G>,
    health: Option<std::net::TcpListener>,
) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let settings = TelegramSettings {
        token: TOKEN.to_owned().into(),
        api_url: Some(fake.url.parse().unwrap()),
        doctor_chat: TelegramChatId(DOCTOR_CHAT),
        doctors: vec![TelegramUserId(DOCTOR)],
    };
    let url = url.clone();
    runtime.spawn(async move {
        let db = medbot::storage::Database::connect(&url).await.unwrap();
        let store = medbot::storage::Store::unlock(&db, key_from_byte(key_byte))
            .await
            .unwrap();
        let reviewer = Arc::new(DraftReviewer::new(DrugLexicon::from_names([
            "ibuprofen",
            "paracetamol",
        ])));
        let context = Arc::new(BotContext::new(
            generator,
            store,
            reviewer,
            ServiceSettings::default(),
            None,
            &settings,
        ));
        let mut running: RunningBot = telegram::start(telegram::bot(&settings), context.clone());
        if let Some(listener) = health {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            running.serve_health(listener, context);
        }
        std::future::pending::<()>().await;
    });
    runtime
}

impl BotUnderTest {
    /// Kills the bot (every task dropped where it stands) and starts it again with `generator`.
    fn crash_and_restart(&mut self, generator: ScriptedGenerator) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        self.generator = Arc::new(generator);
        self.runtime = Some(launch(
            &self.fake,
            &self.t.url,
            self.key_byte,
            self.generator.clone(),
        ));
    }

    /// The patient agrees to the terms.
    async fn consent(&self, patient: i64) {
        self.fake.patient_says(patient, "/start");
        let prompt = self
            .fake
            .wait_for(patient, WAIT, "the consent prompt", |m| {
                m.iter().any(|m| m.reply_markup.is_some())
            })
            .await;
        let prompt = prompt.iter().find(|m| m.reply_markup.is_some()).unwrap();
        self.fake.press(patient, prompt, "consent");
        self.fake
            .wait_for(patient, WAIT, "the thanks", |m| {
                m.iter().any(|m| m.text.starts_with("Thank you"))
            })
            .await;
    }

    async fn wait_text(&self, chat: i64, needle: &str) -> Vec<ChatMessage> {
        self.fake
            .wait_for(chat, WAIT, needle, |m| {
                m.iter().any(|m| m.text.contains(needle))
            })
            .await
    }

    async fn card(&self, needle: &str) -> ChatMessage {
        self.fake
            .wait_for(DOCTOR_CHAT, WAIT, "a card", |m| {
                m.iter()
                    .any(|m| m.reply_markup.is_some() && m.text.contains(needle))
            })
            .await
            .into_iter()
            .find(|m| m.reply_markup.is_some() && m.text.contains(needle))
            .unwrap()
    }

    fn callback_answers(&self) -> Vec<String> {
        self.fake
            .calls()
            .into_iter()
            .filter(|c| c.method == "answercallbackquery")
            .map(|c| c.params["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn button_texts(message: &ChatMessage) -> Vec<String> {
    message.reply_markup.as_ref().unwrap()["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn consent_gate_then_a_three_turn_consultation_with_context() {
    let bot = start(81, ScriptedGenerator::new(ANSWER)).await;
    let patient = 501;
    bot.fake.patient_says(patient, "I have a sore throat");
    let prompt = bot.wait_text(patient, "press the button to agree").await;
    assert!(button_texts(&prompt[0])[0].contains("I agree"));
    // Before consent nothing is stored, and the model is not asked.
    bot.fake.patient_says(patient, "hello?");
    bot.fake
        .wait_for(patient, WAIT, "a second prompt", |m| m.len() >= 2)
        .await;
    assert_eq!(bot.generator.calls(), 0);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(bot.t.db.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0);

    bot.fake.press(patient, &prompt[0], "consent");
    bot.wait_text(patient, "Thank you").await;
    for (turn, question) in [
        "My throat is sore",
        "It hurts to swallow",
        "Should I stay home?",
    ]
    .iter()
    .enumerate()
    {
        bot.generator
            .push(Script::say(format!("Answer {turn}. Rest and drink water.")));
        let asked = Instant::now();
        bot.fake.patient_says(patient, question);
        // The final answer (with its line), not only the streamed start of it.
        let messages = bot
            .fake
            .wait_for(patient, WAIT, "the answer", |m| {
                m.iter().any(|m| {
                    m.text.starts_with(&format!("Answer {turn}."))
                        && m.text.contains("not medical advice")
                })
            })
            .await;
        let answer = messages
            .iter()
            .rev()
            .find(|m| m.text.starts_with(&format!("Answer {turn}.")))
            .unwrap();
        println!(
            "scripted model, turn {turn}: first visible text after {:?}, final answer after {:?}",
            answer.sent_at - asked,
            answer.updated_at - asked
        );
    }
    let last = bot.generator.prompts().pop().unwrap();
    let said: Vec<&str> = last.iter().map(|m| m.content.as_str()).collect();
    assert!(said.contains(&"My throat is sore") && said.contains(&"It hurts to swallow"));
    assert!(said.iter().any(|s| s.starts_with("Answer 1.")));
    let typing = bot
        .fake
        .calls()
        .iter()
        .filter(|c| c.method == "sendchataction" && c.params["action"] == "typing")
        .count();
    assert!(typing >= 3, "typing shown {typing} times");
}

#[tokio::test]
async fn a_long_answer_streams_by_edits_and_arrives_split_within_telegrams_limit() {
    a_long_answer(82, 502, false).await;
}

#[tokio::test]
async fn a_final_edit_made_but_answered_500_is_not_sent_again_as_a_new_message() {
    a_long_answer(95, 532, true).await;
}

/// `lose_final_edit_answer`: the edit that turns the streamed draft into the answer's first
/// piece is made, but Telegram's answer to it is lost (500), so the outbox tries it again.
async fn a_long_answer(key_byte: u8, patient: i64, lose_final_edit_answer: bool) {
    let long = varied_text(10_000);
    let bot = start(
        key_byte,
        ScriptedGenerator::new(long.clone()).with_piece_delay(Duration::from_millis(3)),
    )
    .await;
    bot.consent(patient).await;
    if lose_final_edit_answer {
        // Longer than any streamed draft (3,500 characters and an ellipsis).
        bot.fake.lose_the_answer_to_an_edit(patient, 3_600);
    }
    let before = bot.fake.messages(patient).len();
    bot.fake.patient_says(patient, "I have a cold");
    let messages = bot
        .fake
        // A lost answer costs teloxide's 10 s wait on a 500 and the outbox's backoff.
        .wait_for(patient, Duration::from_secs(60), "the whole answer", |m| {
            m.last()
                .is_some_and(|m| m.text.contains("not medical advice"))
        })
        .await;
    let answer: Vec<&ChatMessage> = messages[before..].iter().collect();
    assert!(answer.len() >= 3, "{} pieces", answer.len());
    for piece in &answer {
        assert!(piece.text.chars().map(char::len_utf16).sum::<usize>() <= 4096);
    }
    // The first message showed the draft as it came (edited), and ends as the answer's start.
    assert!(answer[0].edits >= 1, "no progressive edits");
    let joined: String = answer.iter().map(|m| m.text.as_str()).collect();
    let lengths: Vec<usize> = answer.iter().map(|m| m.text.chars().count()).collect();
    assert!(
        joined.starts_with(long.trim_end()),
        "the pieces ({lengths:?} characters) do not make the answer"
    );
    // Edits of the streamed message come no faster than Telegram allows.
    let edits: Vec<Instant> = bot
        .fake
        .calls()
        .iter()
        .filter(|c| c.method == "editmessagetext" && c.params["message_id"] == json!(answer[0].id))
        .map(|c| c.at)
        .collect();
    for pair in edits.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(950),
            "{:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test]
async fn every_kind_of_non_text_message_gets_a_kind_answer() {
    let bot = start(83, ScriptedGenerator::new(ANSWER)).await;
    let patient = 503;
    bot.consent(patient).await;
    let kinds = [
        json!({"sticker": {"file_id": "s", "file_unique_id": "s", "type": "regular", "width": 512, "height": 512, "is_animated": false, "is_video": false}}),
        json!({"photo": [{"file_id": "p", "file_unique_id": "p", "width": 90, "height": 90}]}),
        json!({"voice": {"file_id": "v", "file_unique_id": "v", "duration": 3}}),
        json!({"document": {"file_id": "d", "file_unique_id": "d", "file_name": "scan.pdf"}}),
    ];
    let before = bot.fake.messages(patient).len();
    for kind in &kinds {
        bot.fake.patient_message(patient, kind.clone());
    }
    bot.fake.patient_edits(patient, "I meant my left ear");
    bot.fake.patient_says(patient, &"a".repeat(20_000));
    bot.fake.patient_says(patient, " \u{200b} ");
    let messages = bot
        .fake
        .wait_for(patient, Duration::from_secs(20), "seven answers", |m| {
            m.len() >= before + 7
        })
        .await;
    let answers: Vec<&str> = messages[before..].iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        answers
            .iter()
            .filter(|t| t.contains("only read text"))
            .count(),
        4,
        "{answers:#?}"
    );
    assert!(answers.iter().any(|t| t.contains("edited a message")));
    assert!(answers.iter().any(|t| t.contains("too long")));
    assert!(answers.iter().any(|t| t.contains("did not find any words")));
    assert_eq!(bot.generator.calls(), 0);
}

#[tokio::test]
async fn an_emergency_gets_the_advice_within_a_second_and_the_doctors_an_alert() {
    let bot = start(84, ScriptedGenerator::new(ANSWER)).await;
    let patient = 504;
    bot.consent(patient).await;
    let sent = Instant::now();
    bot.fake.patient_says(
        patient,
        "crushing chest pain down my left arm and I'm sweating",
    );
    let messages = bot
        .wait_text(patient, "Call your local emergency number")
        .await;
    let advice = messages
        .iter()
        .find(|m| m.text.contains("Call your local emergency number"))
        .unwrap();
    // The advice needs neither the model nor the outbox; the time is reported, not asserted (a
    // busy runner can be slow; the saturated-CPU test asserts its bound).
    println!("emergency advice after {:?}", advice.sent_at - sent);
    let alerts = bot.wait_text(DOCTOR_CHAT, "Emergency triage").await;
    assert!(alerts[0].text.contains("chest_pain_with_danger_signs"));
    assert_eq!(bot.generator.calls(), 0);
}

#[tokio::test]
async fn doctors_approve_edit_and_reject_from_the_group_and_only_doctors_can() {
    let bot = start(85, ScriptedGenerator::new(ANSWER)).await;
    let patient = 505;
    bot.consent(patient).await;

    // Approve.
    bot.generator
        .push(Script::say("Paracetamol can help with the pain."));
    bot.fake
        .patient_says(patient, "Can I take paracetamol for a sore throat?");
    bot.wait_text(patient, "doctor is reviewing").await;
    let card = bot.card("Can I take paracetamol").await;
    assert_eq!(button_texts(&card), ["Approve", "Edit", "Reject"]);
    assert!(card.text.contains("P-") && card.text.contains("the patient asked about medication"));

    bot.fake
        .press(NOT_A_DOCTOR, &card, &card_data(&card, "Approve"));
    bot.fake
        .wait_for(DOCTOR_CHAT, WAIT, "the refusal", |_| {
            bot.callback_answers()
                .iter()
                .any(|a| a.contains("not authorised"))
        })
        .await;
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM escalations WHERE status = 'pending'")
            .fetch_one(bot.t.db.pool())
            .await
            .unwrap();
    assert_eq!(pending, 1);

    bot.fake.press(DOCTOR, &card, &card_data(&card, "Approve"));
    bot.wait_text(patient, "Reviewed and approved by a doctor")
        .await;
    let decided = bot
        .fake
        .wait_for(DOCTOR_CHAT, WAIT, "the card updated", |m| {
            m.iter()
                .any(|m| m.id == card.id && m.text.contains("Approved by 9001"))
        })
        .await;
    assert!(
        decided
            .iter()
            .find(|m| m.id == card.id)
            .unwrap()
            .reply_markup
            .is_none()
    );
    bot.fake.press(DOCTOR, &card, &card_data(&card, "Reject"));
    bot.fake
        .wait_for(DOCTOR_CHAT, WAIT, "the second click refused", |_| {
            bot.callback_answers()
                .iter()
                .any(|a| a.contains("Already decided"))
        })
        .await;

    // Edit: the doctor replies to the card with the answer.
    bot.generator.push(Script::say("Take 1 g of paracetamol."));
    bot.fake
        .patient_says(patient, "How much paracetamol can I take?");
    let card = bot.card("How much paracetamol").await;
    bot.fake.doctor_replies(
        DOCTOR,
        &card,
        "Follow the dose on the pack and see your GP if it lasts a week.",
    );
    bot.wait_text(patient, "Follow the dose on the pack").await;

    // Reject: the standard advice.
    bot.generator
        .push(Script::say("Paracetamol cures everything."));
    bot.fake
        .patient_says(patient, "Is paracetamol good for a cold?");
    let card = bot.card("Is paracetamol good").await;
    bot.fake.press(DOCTOR, &card, &card_data(&card, "Reject"));
    bot.wait_text(patient, "decided it should not be sent")
        .await;

    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM escalations ORDER BY created_at")
            .fetch_all(bot.t.db.pool())
            .await
            .unwrap();
    assert_eq!(
        statuses,
        [
            EscalationStatus::Approved.as_str(),
            EscalationStatus::Edited.as_str(),
            EscalationStatus::Rejected.as_str()
        ]
    );
    // No patient ever saw a draft that was not approved.
    let seen: String = bot
        .fake
        .messages(patient)
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert!(!seen.contains("Take 1 g") && !seen.contains("cures everything"));
}

/// Ordinary advice-like sentences that do not repeat (a repeated sentence would be escalated as a
/// repetitive draft).
fn varied_text(chars: usize) -> String {
    const WORDS: [&str; 48] = [
        "water", "rest", "sleep", "tea", "honey", "warm", "soup", "quiet", "room", "gentle",
        "walk", "fresh", "air", "fruit", "bread", "light", "meal", "calm", "slowly", "blanket",
        "window", "morning", "evening", "steam", "shower", "salt", "gargle", "lemon", "ginger",
        "broth", "pillow", "nap", "music", "book", "garden", "stretch", "relax", "sit", "cool",
        "cloth", "socks", "wash", "soap", "towel", "chair", "often", "early", "later",
    ];
    let mut seed = 12345u64;
    let mut text = String::new();
    while text.len() < chars {
        let mut sentence = Vec::new();
        for _ in 0..9 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            sentence.push(WORDS[(seed >> 33) as usize % WORDS.len()]);
        }
        let sentence = sentence.join(" ");
        let mut chars = sentence.chars();
        let first = chars.next().unwrap().to_ascii_uppercase();
        text.push(first);
        text.push_str(chars.as_str());
        text.push_str(". ");
    }
    text
}

fn card_data(card: &ChatMessage, button: &str) -> String {
    card.reply_markup.as_ref().unwrap()["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .find(|b| b["text"] == button)
        .map(|b| b["callback_data"].as_str().unwrap().to_owned())
        .unwrap()
}

#[tokio::test]
async fn replies_survive_429s_and_arrive_after_their_retry_time() {
    let bot = start(86, ScriptedGenerator::new(ANSWER)).await;
    let patient = 506;
    bot.consent(patient).await;
    let before = bot.fake.messages(patient).len();
    bot.fake.fail_next_sends(5, 3);
    let asked = Instant::now();
    for (n, question) in [
        "I have a runny nose",
        "And a mild cough",
        "And I sneeze a lot",
    ]
    .into_iter()
    .enumerate()
    {
        bot.fake.patient_says(patient, question);
        // One answer each: a message sent while the previous answer is still being written would
        // supersede it (tested on its own).
        wait_until("the answer to be written", 10, || bot.generator.calls() > n).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let messages = bot
        .fake
        .wait_for(patient, Duration::from_secs(40), "three answers", |m| {
            m.len() >= before + 3
        })
        .await;
    let refused: Vec<Instant> = bot
        .fake
        .calls()
        .iter()
        .filter(|c| !c.ok && c.method == "sendmessage")
        .map(|c| c.at)
        .collect();
    assert_eq!(refused.len(), 5, "the fake refused {} sends", refused.len());
    let first_refusal = refused[0];
    for answer in &messages[before..] {
        assert!(answer.text.contains(ANSWER));
        assert!(
            answer.sent_at >= first_refusal + Duration::from_millis(2900),
            "a reply came {:?} after the first 429",
            answer.sent_at - first_refusal
        );
    }
    // Exactly three answers: none lost, none doubled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(bot.fake.messages(patient).len(), before + 3);
    println!("three replies through five 429s took {:?}", asked.elapsed());
}

#[tokio::test]
async fn a_redelivered_update_is_handled_once() {
    let bot = start(87, ScriptedGenerator::new(ANSWER)).await;
    let patient = 507;
    bot.consent(patient).await;
    let update = bot.fake.patient_says(patient, "I have a sore throat");
    bot.wait_text(patient, ANSWER).await;
    let answers = bot.fake.messages(patient).len();
    bot.fake.redeliver(update);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(bot.fake.messages(patient).len(), answers);
    assert_eq!(bot.generator.calls(), 1);
}

#[tokio::test]
async fn history_comes_as_a_file_and_forget_erases_everything() {
    let bot = start(88, ScriptedGenerator::new(ANSWER)).await;
    let patient = 508;
    bot.consent(patient).await;
    bot.fake.patient_says(patient, "我嗓子疼 🤒");
    bot.wait_text(patient, ANSWER).await;
    bot.fake.patient_says(patient, "/history");
    let messages = bot
        .fake
        .wait_for(patient, WAIT, "the history file", |m| {
            m.iter().any(|m| m.document.is_some())
        })
        .await;
    let file = messages.iter().find_map(|m| m.document.clone()).unwrap();
    let history: serde_json::Value = serde_json::from_slice(&file).unwrap();
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"我嗓子疼 🤒"), "{texts:?}");
    assert!(texts.iter().any(|t| t.starts_with(ANSWER)));

    let id = bot
        .t
        .store
        .find_patient(TelegramUserId(patient))
        .await
        .unwrap()
        .unwrap();
    bot.fake.patient_says(patient, "/forget");
    let confirm = bot.wait_text(patient, "cannot be undone").await;
    let confirm = confirm
        .iter()
        .find(|m| m.text.contains("cannot be undone"))
        .unwrap();
    bot.fake.press(patient, confirm, "forget");
    bot.wait_text(patient, "Everything has been deleted").await;
    assert!(
        bot.t
            .store
            .find_patient(TelegramUserId(patient))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        bot.t
            .store
            .read_messages(id, None, ReadPurpose::History)
            .await
            .is_err()
    );
    for table in ["messages", "outbox", "escalations", "patient_contacts"] {
        let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE patient_id = $1"
        )))
        .bind(id.0)
        .fetch_one(bot.t.db.pool())
        .await
        .unwrap();
        assert_eq!(left, 0, "{table}");
    }
}

#[tokio::test]
async fn a_crash_in_the_middle_of_generating_still_gives_exactly_one_answer() {
    let slow = ScriptedGenerator::new(varied_text(800)).with_piece_delay(Duration::from_millis(40));
    let mut bot = start(89, slow).await;
    let patient = 509;
    bot.consent(patient).await;
    bot.fake.patient_says(patient, "I have a cold, what helps?");
    // Killed while the model writes (it takes several seconds to finish).
    let deadline = Instant::now() + WAIT;
    while bot.generator.calls() == 0 {
        assert!(Instant::now() < deadline, "the model was never asked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1600)).await;
    bot.crash_and_restart(ScriptedGenerator::new(ANSWER));

    bot.fake
        .wait_for(
            patient,
            Duration::from_secs(20),
            "the answer after the restart",
            |m| {
                m.iter()
                    .any(|m| m.text.starts_with(ANSWER) && m.text.contains("not medical advice"))
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answers = bot
        .fake
        .messages(patient)
        .iter()
        .filter(|m| m.text.contains("not medical advice"))
        .count();
    assert_eq!(answers, 1, "{:#?}", bot.fake.messages(patient));
    assert_eq!(bot.generator.calls(), 1);
}

/// The real SmolLM2 behind the bot: a patient's question gets an answer, or the notice that a
/// doctor is reviewing it, through the fake server. Prints the timings the issue asks for.
#[tokio::test]
async fn the_bot_answers_with_the_real_model() {
    use medbot::llm::{Engine, EngineGenerator, EngineOptions, SamplingParams};
    medbot::llm::configure_threads(1);
    let engine = Engine::start(EngineOptions::new(crate::llm::smollm2()))
        .await
        .unwrap();
    let generator = Arc::new(EngineGenerator::new(engine, SamplingParams::default()));
    let fake = FakeTelegram::start().await;
    let t = test_store(90).await;
    let runtime = launch(&fake, &t.url, 90, generator);
    let patient = 510;

    fake.patient_says(patient, "/start");
    let prompt = fake
        .wait_for(patient, WAIT, "the consent prompt", |m| !m.is_empty())
        .await;
    fake.press(patient, &prompt[0], "consent");
    fake.wait_for(patient, WAIT, "the thanks", |m| m.len() >= 2)
        .await;

    let asked = Instant::now();
    fake.patient_says(
        patient,
        "I have had a runny nose and a mild cough for two days. What can I do?",
    );
    let messages = fake
        .wait_for(
            patient,
            Duration::from_secs(120),
            "an answer or a review notice",
            |m| {
                m.iter().any(|m| {
                    m.text.contains("not medical advice") || m.text.contains("doctor is reviewing")
                })
            },
        )
        .await;
    let first = messages[2..].iter().map(|m| m.sent_at).min().unwrap();
    let last = messages[2..]
        .iter()
        .find(|m| m.text.contains("not medical advice") || m.text.contains("doctor is reviewing"))
        .unwrap();
    println!(
        "real model: first visible text after {:?}, final text after {:?} ({})",
        first - asked,
        last.updated_at - asked,
        if last.text.contains("doctor is reviewing") {
            "sent for review"
        } else {
            "answered"
        }
    );
    runtime.shutdown_background();
}

/// The outbox sender under load: 240 replies to 80 patients. Telegram allows about 30 messages a
/// second in all and one a second per chat; the sender must stay within both and still deliver
/// everything. Prints the rate it sustained.
#[tokio::test]
async fn the_outbox_delivers_a_burst_within_telegrams_limits() {
    let bot = start(91, ScriptedGenerator::new(ANSWER)).await;
    let mut patients = Vec::new();
    for n in 0..80 {
        let user = 20_000 + n;
        let id = bot
            .t
            .store
            .register_patient(TelegramUserId(user), TelegramChatId(user), None)
            .await
            .unwrap()
            .id;
        patients.push((user, id));
    }
    let started = Instant::now();
    for round in 0..3 {
        for (_, id) in &patients {
            bot.t
                .store
                .enqueue_patient_reply(
                    *id,
                    &medbot::crypto::Plaintext::new(format!("reply {round}")),
                    None,
                )
                .await
                .unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sends: Vec<(i64, Instant, String)>;
    loop {
        sends = patients
            .iter()
            .flat_map(|(user, _)| {
                bot.fake
                    .messages(*user)
                    .into_iter()
                    .map(|m| (m.chat, m.sent_at, m.text))
            })
            .collect();
        if sends.len() >= 240 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sends.len(), 240, "only {} of 240 delivered", sends.len());
    sends.sort_by_key(|s| s.1);
    let elapsed = sends.last().unwrap().1 - started;
    println!(
        "outbox: 240 messages to 80 chats in {elapsed:?} = {:.1} messages/s",
        240.0 / elapsed.as_secs_f64()
    );
    // At most 30 in any one-second window, and at most one a second per chat, in order.
    for (i, send) in sends.iter().enumerate() {
        let in_window = sends[i..]
            .iter()
            .take_while(|s| s.1 - send.1 < Duration::from_secs(1))
            .count();
        assert!(in_window <= 30, "{in_window} sends within one second");
    }
    for (user, _) in &patients {
        let mine: Vec<&(i64, Instant, String)> = sends.iter().filter(|s| s.0 == *user).collect();
        let texts: Vec<&str> = mine.iter().map(|s| s.2.as_str()).collect();
        assert_eq!(texts, ["reply 0", "reply 1", "reply 2"]);
        for pair in mine.windows(2) {
            assert!(pair[1].1 - pair[0].1 >= Duration::from_millis(950));
        }
    }
}

/// `medbot serve` itself (the binary, the real SmolLM2) killed with SIGKILL while it generates,
/// then started again: the patient gets exactly one answer.
#[tokio::test]
async fn medbot_serve_killed_mid_answer_answers_exactly_once_after_restart() {
    let fake = FakeTelegram::start().await;
    let t = test_store(92).await;
    let patient = 511;
    consented_patient(&t, patient).await;
    let dir = tempfile::tempdir().unwrap();
    let serve = || serve_binary(&fake, &t, 92, dir.path());
    let calls = |method: &str| fake.calls().iter().filter(|c| c.method == method).count();
    let mut first = serve();
    wait_until("the bot to start", 60, || calls("setmycommands") >= 1).await;
    fake.patient_says(
        patient,
        "I have had a runny nose for two days. What can I do at home?",
    );
    wait_until("the model to start", 60, || calls("sendchataction") >= 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    let answered = |m: &ChatMessage| {
        m.text.contains("not medical advice") || m.text.contains("doctor is reviewing")
    };
    assert_eq!(
        fake.messages(patient)
            .iter()
            .filter(|m| answered(m))
            .count(),
        0
    );

    let mut second = serve();
    fake.wait_for(
        patient,
        Duration::from_secs(120),
        "the answer after the restart",
        |m| m.iter().any(answered),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    let answers: Vec<String> = fake
        .messages(patient)
        .iter()
        .filter(|m| answered(m))
        .map(|m| m.text.clone())
        .collect();
    assert_eq!(answers.len(), 1, "{answers:#?}");
}

async fn wait_until(what: &str, secs: u64, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A token the server refuses stops `medbot serve` at start-up with one line naming the setting.
#[tokio::test]
async fn a_refused_token_is_named_at_start_up() {
    let fake = FakeTelegram::start().await;
    let t = test_store(93).await;
    let key = key_base64(93);
    let doctor_chat = DOCTOR_CHAT.to_string();
    let dir = tempfile::tempdir().unwrap();
    let url = fake.url.clone();
    let db = t.url.expose().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        run_medbot(
            &["serve"],
            &[
                ("TELOXIDE_TOKEN", "7000000001:not-the-right-token"),
                ("TELEGRAM_API_URL", url.as_str()),
                ("DOCTOR_CHAT_ID", doctor_chat.as_str()),
                ("DOCTOR_IDS", "1"),
                ("DATABASE_URL", db.as_str()),
                ("MEDBOT_MASTER_KEY", key.as_str()),
            ],
            dir.path(),
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("TELOXIDE_TOKEN") && err.contains("did not accept"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// SIGTERM while `medbot serve` (the real binary and model) is answering: it finishes the answer,
/// delivers it, and exits cleanly.
#[tokio::test]
async fn medbot_serve_stopped_with_sigterm_finishes_the_answer_in_hand() {
    let fake = FakeTelegram::start().await;
    let t = test_store(94).await;
    let patient = 512;
    consented_patient(&t, patient).await;
    let dir = tempfile::tempdir().unwrap();
    let mut bot = serve_binary(&fake, &t, 94, dir.path());
    let calls = |method: &str| fake.calls().iter().filter(|c| c.method == method).count();
    wait_until("the bot to start", 60, || calls("setmycommands") >= 1).await;
    fake.patient_says(
        patient,
        "I have had a runny nose for two days. What can I do at home?",
    );
    wait_until("the model to start", 60, || calls("sendchataction") >= 1).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &bot.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || bot.wait().unwrap())
        .await
        .unwrap();
    assert!(exited.success(), "{exited:?}");
    let answered = fake
        .messages(patient)
        .iter()
        .any(|m| m.text.contains("not medical advice") || m.text.contains("doctor is reviewing"));
    assert!(answered, "{:#?}", fake.messages(patient));
}

/// `medbot serve` as an operator starts it, against the fake server and the test's database.
fn serve_binary(
    fake: &FakeTelegram,
    t: &TestStore,
    key_byte: u8,
    dir: &std::path::Path,
) -> std::process::Child {
    let model = crate::llm::smollm2();
    let lexicon = fetched("models/drug-lexicon.pkl", "models/fetch-drug-lexicon");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_medbot"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TELOXIDE_TOKEN", TOKEN)
        .env("TELEGRAM_API_URL", &fake.url)
        .env("DOCTOR_CHAT_ID", DOCTOR_CHAT.to_string())
        .env("DOCTOR_IDS", DOCTOR.to_string())
        .env("DATABASE_URL", t.url.expose())
        .env("MEDBOT_MASTER_KEY", key_base64(key_byte))
        .env("MODEL_PATH", &model)
        // These tests are about the model's path (streaming, crashes mid-answer), not composed answers.
        .env("MEDBOT_COMPOSE_ANSWERS", "never")
        .env("MEDBOT_DRUG_LEXICON", &lexicon)
        // One thread in tests (candle's pool spins on a busy machine); set it to measure others.
        .env(
            "CANDLE_NUM_THREADS",
            std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "1".into()),
        )
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command.spawn().expect("medbot serve starts")
}

/// A patient who has already agreed to the terms (the binary tests skip the consent flow).
async fn consented_patient(t: &TestStore, patient: i64) {
    consenting_patient(&t.store, patient).await;
}

const CHEST: &str =
    "crushing pain in my chest spreading to my left arm, I'm sweating and can't catch my breath";
const ADVICE: &str = "Call your local emergency number";

#[tokio::test]
async fn an_emergency_during_an_answer_in_progress_is_advised_at_once_and_that_answer_is_stopped() {
    let bot = start(120, ScriptedGenerator::new(ANSWER)).await;
    let patient = 520;
    bot.consent(patient).await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    bot.generator.push(Script::Held {
        text: "Held answer that must never arrive.".into(),
        release: release.clone(),
    });
    bot.fake
        .patient_says(patient, "I have had a sore throat for two days");
    wait_until("the model to be asked", 10, || bot.generator.calls() == 1).await;
    let sent = Instant::now();
    bot.fake.patient_says(patient, CHEST);
    let messages = bot.wait_text(patient, ADVICE).await;
    let advice = messages.iter().find(|m| m.text.contains(ADVICE)).unwrap();
    println!(
        "same patient, model stuck: emergency advice after {:?}",
        advice.sent_at - sent
    );
    bot.wait_text(DOCTOR_CHAT, "Emergency triage").await;
    wait_until("the stuck answer to be cancelled", 10, || {
        bot.generator.cancelled() == 1
    })
    .await;
    release.add_permits(10);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let texts: Vec<String> = bot
        .fake
        .messages(patient)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert!(
        !texts.iter().any(|t| t.contains("Held answer")),
        "{texts:#?}"
    );
    assert_eq!(
        texts.iter().filter(|t| t.contains(ADVICE)).count(),
        1,
        "{texts:#?}"
    );
}

#[tokio::test]
async fn buttons_count_only_on_their_own_card_and_in_their_own_chat_and_are_always_answered() {
    let bot = start(121, ScriptedGenerator::new(ANSWER)).await;
    let patient = 521;
    bot.consent(patient).await;
    bot.generator
        .push(Script::say("Paracetamol can help with the pain."));
    bot.fake
        .patient_says(patient, "Can I take paracetamol for a sore throat?");
    let card = bot.card("Can I take paracetamol").await;
    let approve = card_data(&card, "Approve");
    let pending = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM escalations WHERE status = 'pending'")
            .fetch_one(bot.t.db.pool())
            .await
            .unwrap()
    };
    let elsewhere = |chat: i64, id: i64| ChatMessage {
        id,
        chat,
        text: "not a card".into(),
        ..card.clone()
    };
    // A forged Approve in the doctor's private chat, on another message of the doctors' group,
    // and a button for an escalation that does not exist.
    bot.fake.press(DOCTOR, &elsewhere(DOCTOR, 1), &approve);
    bot.fake
        .press(DOCTOR, &elsewhere(DOCTOR_CHAT, card.id + 1000), &approve);
    bot.fake
        .press(DOCTOR, &card, &format!("approve:{}", uuid::Uuid::new_v4()));
    // A consent button pressed in the doctors' group.
    let stranger = 522;
    bot.fake
        .press(stranger, &elsewhere(DOCTOR_CHAT, card.id), "consent");
    bot.fake
        .wait_for(DOCTOR_CHAT, WAIT, "four answered presses", |_| {
            bot.callback_answers()
                .iter()
                .filter(|a| a.contains("no longer valid"))
                .count()
                == 4
        })
        .await;
    assert_eq!(pending().await, 1, "nothing was decided");
    let registered = bot
        .t
        .store
        .find_patient(TelegramUserId(stranger))
        .await
        .unwrap();
    assert!(
        registered.is_none(),
        "the group was not registered as anyone's chat"
    );
    // The real button on the real card still works.
    bot.fake.press(DOCTOR, &card, &approve);
    bot.wait_text(patient, "approved by a doctor").await;
    assert_eq!(pending().await, 0);
}

#[tokio::test]
async fn an_emergency_while_the_database_is_down_is_advised_at_once_then_stored_and_alerted() {
    let t = test_store(122).await;
    let proxy = PgOutage::start(&t.url).await;
    let bot = start_on(t, &proxy.url.clone(), 122, ScriptedGenerator::new(ANSWER)).await;
    let patient = 523;
    bot.consent(patient).await;
    proxy.set_up(false);
    let sent = Instant::now();
    bot.fake.patient_says(patient, CHEST);
    let messages = bot.wait_text(patient, ADVICE).await;
    let advice = messages.iter().find(|m| m.text.contains(ADVICE)).unwrap();
    println!(
        "database down: emergency advice after {:?}",
        advice.sent_at - sent
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_up(true);
    // Nothing lost: once the database is back the message is stored and the doctors alerted.
    bot.fake
        .wait_for(DOCTOR_CHAT, Duration::from_secs(90), "the alert", |m| {
            m.iter().any(|m| m.text.contains("Emergency triage"))
        })
        .await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(bot.t.db.pool())
        .await
        .unwrap();
    assert_eq!(stored, 2, "the patient's message and the advice");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let advised = bot
        .fake
        .messages(patient)
        .iter()
        .filter(|m| m.text.contains(ADVICE))
        .count();
    assert_eq!(advised, 1, "the advice is not sent again");
}

#[tokio::test]
async fn failing_sends_to_the_doctors_hold_up_no_patient_and_refused_sends_are_recorded_as_dropped()
{
    let bot = start(123, ScriptedGenerator::new(ANSWER)).await;
    let (asker, other, refused) = (524, 525, 526);
    for patient in [asker, other, refused] {
        bot.consent(patient).await;
    }
    bot.fake.fail_sends_to(
        DOCTOR_CHAT,
        &[
            Fault::ServerError,
            Fault::RetryAfter(5),
            Fault::RetryAfter(5),
        ],
    );
    bot.fake.fail_sends_to(
        refused,
        &[Fault::BadRequest(
            "Bad Request: something Telegram will never take",
        )],
    );
    bot.generator
        .push(Script::say("Paracetamol can help with the pain."));
    bot.fake
        .patient_says(asker, "Can I take paracetamol for a sore throat?");
    bot.wait_text(asker, "doctor is reviewing").await;
    bot.fake.patient_says(other, "I have a runny nose");
    let answered = bot.wait_text(other, ANSWER).await;
    bot.fake.patient_says(other, CHEST);
    let advised = bot.wait_text(other, ADVICE).await;
    bot.fake.patient_says(refused, "I have a runny nose too");
    // The card gets through after a 500 (teloxide waits 10 s to read it) and two 429s.
    let card = bot
        .fake
        .wait_for(DOCTOR_CHAT, Duration::from_secs(90), "the card", |m| {
            m.iter().any(|m| m.reply_markup.is_some())
        })
        .await
        .into_iter()
        .find(|m| m.reply_markup.is_some())
        .unwrap();
    let answer_at = answered
        .iter()
        .find(|m| m.text.contains(ANSWER))
        .unwrap()
        .sent_at;
    let advice_at = advised
        .iter()
        .find(|m| m.text.contains(ADVICE))
        .unwrap()
        .sent_at;
    assert!(
        answer_at < card.sent_at && advice_at < card.sent_at,
        "a patient waited for the doctors' chat"
    );
    // The refused answer is recorded as dropped, with why, and not as sent.
    let refused_id = bot
        .t
        .store
        .find_patient(TelegramUserId(refused))
        .await
        .unwrap()
        .unwrap();
    let mut dropped = None;
    for _ in 0..200 {
        dropped = sqlx::query_as::<_, (Option<String>, bool)>(
            "SELECT dropped_reason, sent_at IS NOT NULL FROM outbox
             WHERE patient_id = $1 AND dropped_at IS NOT NULL",
        )
        .bind(refused_id.0)
        .fetch_optional(bot.t.db.pool())
        .await
        .unwrap();
        if dropped.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (reason, sent) = dropped.expect("the refused answer is recorded as dropped");
    assert!(reason.unwrap().contains("never take"));
    assert!(!sent);
}

#[tokio::test]
async fn a_split_answer_retried_after_a_failure_does_not_repeat_the_piece_delivered() {
    let bot = start(124, ScriptedGenerator::new(ANSWER)).await;
    let user = 527;
    let patient = bot
        .t
        .store
        .register_patient(TelegramUserId(user), TelegramChatId(user), None)
        .await
        .unwrap()
        .id;
    bot.fake
        .fail_sends_to(user, &[Fault::Pass, Fault::RetryAfter(1)]);
    let long = varied_text(6000);
    bot.t
        .store
        .enqueue_patient_reply(patient, &medbot::crypto::Plaintext::new(long.clone()), None)
        .await
        .unwrap();
    bot.fake
        .wait_for(user, Duration::from_secs(20), "both pieces", |m| {
            m.len() >= 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let messages = bot.fake.messages(user);
    assert_eq!(
        messages.len(),
        2,
        "{:#?}",
        messages.iter().map(|m| m.text.len()).collect::<Vec<_>>()
    );
    let joined: String = messages
        .iter()
        .map(|m| m.text.as_str())
        .collect::<Vec<_>>()
        .join("");
    assert_eq!(
        joined.split_whitespace().collect::<Vec<_>>(),
        long.split_whitespace().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_update_with_a_lone_surrogate_neither_blocks_polling_nor_is_lost() {
    let bot = start(125, ScriptedGenerator::new(ANSWER)).await;
    let patient = 528;
    bot.consent(patient).await;
    // A lone high surrogate (the JSON text Telegram relays for a broken emoji): serde_json refuses
    // the string, and teloxide's own polling retried the whole batch forever.
    bot.fake
        .patient_says_raw(patient, r"my throat \ud800 is sore");
    bot.fake.patient_says(patient, "and I have a runny nose");
    // Both messages reach the model (the second perhaps superseding the first): the broken one
    // was read, repaired, not dropped, and polling went on.
    let said = |needle: &str| {
        bot.generator
            .prompts()
            .iter()
            .flatten()
            .any(|m| m.content.contains(needle))
    };
    wait_until("both messages to reach the model", 20, || {
        said("my throat \u{FFFD} is sore") && said("and I have a runny nose")
    })
    .await;
    bot.fake
        .wait_for(patient, WAIT, "an answer", |m| {
            m.iter().any(|m| m.text.contains(ANSWER))
        })
        .await;
}

#[tokio::test]
async fn a_kill_between_the_review_notice_and_the_stored_escalation_gives_one_notice() {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let stuck = ScriptedGenerator::new(ANSWER);
    stuck.push(Script::Held {
        text: "Paracetamol can help.".into(),
        release,
    });
    let mut bot = start(126, stuck).await;
    let patient = 529;
    bot.consent(patient).await;
    bot.fake
        .patient_says(patient, "Can I take paracetamol for a sore throat?");
    // The notice is out; the model has not finished, so no escalation is stored yet.
    bot.wait_text(patient, "doctor is reviewing").await;
    bot.crash_and_restart(ScriptedGenerator::new(
        "Paracetamol can help with the pain.",
    ));
    bot.fake
        .wait_for(
            DOCTOR_CHAT,
            Duration::from_secs(20),
            "the card after the restart",
            |m| m.iter().any(|m| m.reply_markup.is_some()),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let notices = bot
        .fake
        .messages(patient)
        .iter()
        .filter(|m| m.text.contains("doctor is reviewing"))
        .count();
    assert_eq!(notices, 1, "{:#?}", bot.fake.messages(patient));
}

/// Busy loops that keep every core saturated until dropped.
struct BusyCpu(Vec<std::process::Child>);

impl BusyCpu {
    fn start(loops: usize) -> Self {
        Self(
            (0..loops)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .expect("a busy loop starts")
                })
                .collect(),
        )
    }
}

impl Drop for BusyCpu {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `medbot serve` with the real model writing answers while two busy loops saturate the CPU: an
/// emergency from the patient whose answer is being written is advised within 2 s. Rounds are
/// `MEDBOT_LATENCY_ROUNDS` (default 3; more to measure), each with a new patient.
#[tokio::test]
async fn with_the_model_busy_and_the_cpu_saturated_an_emergency_is_advised_within_two_seconds() {
    let rounds: usize = std::env::var("MEDBOT_LATENCY_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let fake = FakeTelegram::start().await;
    let t = test_store(127).await;
    let patients: Vec<i64> = (0..rounds as i64).map(|n| 530 + n).collect();
    let askers: Vec<i64> = (0..rounds as i64).map(|n| 1530 + n).collect();
    for patient in patients.iter().chain(&askers) {
        consented_patient(&t, *patient).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let calls = |method: &str| fake.calls().iter().filter(|c| c.method == method).count();
    let mut serve = serve_binary(&fake, &t, 127, dir.path());
    wait_until("the bot to start", 60, || calls("setmycommands") >= 1).await;
    let busy = BusyCpu::start(2);
    let mut advice = Vec::new();
    for patient in &patients {
        let typing = calls("sendchataction");
        fake.patient_says(
            *patient,
            "I have had a runny nose for two days. What can I do at home?",
        );
        wait_until("the model to start", 60, || {
            calls("sendchataction") > typing
        })
        .await;
        let sent = Instant::now();
        fake.patient_says(*patient, CHEST);
        let messages = fake
            .wait_for(*patient, Duration::from_secs(30), "the advice", |m| {
                m.iter().any(|m| m.text.contains(ADVICE))
            })
            .await;
        let at = messages
            .iter()
            .find(|m| m.text.contains(ADVICE))
            .unwrap()
            .sent_at;
        advice.push(at - sent);
    }
    // Ordinary first questions in the same conditions: the first text the patient sees (a
    // streamed sentence, the answer, or the review notice).
    let mut ordinary = Vec::new();
    for patient in &askers {
        let asked = Instant::now();
        fake.patient_says(*patient, "How long does a common cold usually last?");
        let messages = fake
            .wait_for(*patient, Duration::from_secs(120), "visible text", |m| {
                !m.is_empty()
            })
            .await;
        ordinary.push(messages[0].sent_at - asked);
    }
    drop(busy);
    serve.kill().unwrap();
    serve.wait().unwrap();
    for list in [&mut advice, &mut ordinary] {
        list.sort();
    }
    println!(
        "CPU saturated (2 busy loops), real model: emergency advice median {:?} p99 {:?} over {} \
         rounds; update to first visible text for ordinary questions median {:?} p99 {:?} ({})",
        percentile(&advice, 0.5),
        percentile(&advice, 0.99),
        advice.len(),
        percentile(&ordinary, 0.5),
        percentile(&ordinary, 0.99),
        ordinary.len()
    );
    assert!(
        *advice.last().unwrap() < Duration::from_secs(2),
        "emergency advice took {advice:?}"
    );
}

#[tokio::test]
async fn an_update_held_while_the_database_is_down_survives_a_kill() {
    let t = test_store(128).await;
    let proxy = PgOutage::start(&t.url).await;
    let mut bot = start_on(t, &proxy.url.clone(), 128, ScriptedGenerator::new(ANSWER)).await;
    let patient = 531;
    bot.consent(patient).await;
    proxy.set_up(false);
    bot.fake.patient_says(patient, CHEST);
    bot.wait_text(patient, ADVICE).await;
    // Killed before the database came back: the update was held in memory only, so Telegram must
    // not have been told it was received.
    tokio::time::sleep(Duration::from_millis(500)).await;
    bot.crash_and_restart(ScriptedGenerator::new(ANSWER));
    bot.fake
        .wait_for(DOCTOR_CHAT, Duration::from_secs(60), "the alert", |m| {
            m.iter().any(|m| m.text.contains("Emergency triage"))
        })
        .await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(bot.t.db.pool())
        .await
        .unwrap();
    assert_eq!(stored, 2, "the patient's message and the advice");
    let advised = bot
        .fake
        .messages(patient)
        .iter()
        .filter(|m| m.text.contains(ADVICE))
        .count();
    // Given again on the redelivery: a duplicate, never a loss.
    println!("advice sent {advised} time(s) across the kill");
    assert!((1..=2).contains(&advised));
}

/// The newest message in `chat` whose text contains `needle`.
fn newest_with(messages: &[ChatMessage], needle: &str) -> ChatMessage {
    messages
        .iter()
        .rev()
        .find(|m| m.text.contains(needle))
        .cloned()
        .unwrap_or_else(|| panic!("no message with {needle:?}"))
}

async fn medication_names(
    bot: &BotUnderTest,
    patient: i64,
) -> Vec<(medbot::domain::MedicationKind, String)> {
    let id = bot
        .t
        .store
        .find_patient(TelegramUserId(patient))
        .await
        .unwrap()
        .unwrap();
    bot.t
        .store
        .medications(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.name))
        .collect()
}

#[tokio::test]
async fn meds_are_listed_added_through_the_prompt_and_removed_with_their_button() {
    use medbot::domain::MedicationKind::{Allergy, Medicine};
    let bot = start(146, ScriptedGenerator::new(ANSWER)).await;
    let patient = 9150;
    bot.consent(patient).await;

    bot.fake.patient_says(patient, "/meds");
    let messages = bot.wait_text(patient, "Your medicines:").await;
    let list = newest_with(&messages, "Your medicines:");
    assert!(list.text.contains("none saved"), "{}", list.text);
    assert_eq!(button_texts(&list), ["➕ Medicine", "➕ Allergy"]);

    bot.fake
        .press(patient, &list, &card_data(&list, "➕ Medicine"));
    let messages = bot.wait_text(patient, "Which medicine do you take?").await;
    let prompt = newest_with(&messages, "Which medicine do you take?");
    bot.fake
        .patient_replies(patient, &prompt, "Coumadin, Zyxquil");
    let messages = bot
        .wait_text(patient, "Saved as you wrote it: Zyxquil")
        .await;
    assert!(
        newest_with(&messages, "Saved: warfarin.")
            .text
            .contains("does not know this name")
    );
    assert_eq!(
        medication_names(&bot, patient).await,
        [
            (Medicine, "warfarin".to_owned()),
            (Medicine, "Zyxquil".to_owned())
        ]
    );
    // The reply was a list of names, not a question: the model was not asked.
    assert_eq!(bot.generator.calls(), 0);
    // A question sent as a reply to the prompt is a question, not a name.
    bot.fake
        .patient_replies(patient, &prompt, "Can I take it with ibuprofen?");
    bot.wait_text(patient, "A doctor is reviewing").await;
    assert_eq!(medication_names(&bot, patient).await.len(), 2);

    bot.fake.patient_says(patient, "/meds allergy penicillin");
    let messages = bot.wait_text(patient, "• Penicillin").await;
    let list = newest_with(&messages, "• Penicillin");
    assert!(list.text.contains("• warfarin\n• Zyxquil"), "{}", list.text);
    assert!(
        button_texts(&list)
            .iter()
            .any(|b| b.starts_with("❌ allergy: Penicillin")),
        "{:?}",
        button_texts(&list)
    );

    bot.fake
        .press(patient, &list, &card_data(&list, "❌ warfarin"));
    bot.fake
        .wait_for(patient, WAIT, "the list without warfarin", |m| {
            m.iter()
                .any(|m| m.id == list.id && !m.text.contains("warfarin"))
        })
        .await;
    let names = medication_names(&bot, patient).await;
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names
            .iter()
            .all(|(kind, name)| name != "warfarin" && (*kind == Allergy || name == "Zyxquil"))
    );
    assert!(bot.callback_answers().contains(&"Removed".to_owned()));

    // By name: the whole name only, never part of one.
    bot.fake.patient_says(patient, "/meds remove a");
    bot.wait_text(patient, "\"a\" is not on your list.").await;
    assert_eq!(medication_names(&bot, patient).await.len(), 2);
    bot.fake.patient_says(patient, "/meds remove zyxquil");
    bot.fake
        .wait_for(patient, WAIT, "the list without Zyxquil", |m| {
            m.last()
                .is_some_and(|m| m.text.starts_with("Your medicines:\n  none saved"))
        })
        .await;
    assert_eq!(
        medication_names(&bot, patient).await,
        [(Allergy, "Penicillins".to_owned())]
    );
}

#[tokio::test]
async fn a_message_that_names_a_medicine_and_an_allergy_offers_to_save_them_with_one_tap() {
    use medbot::domain::MedicationKind::{Allergy, Medicine};
    let bot = start(147, ScriptedGenerator::new(ANSWER)).await;
    let patient = 9151;
    bot.consent(patient).await;
    bot.fake.patient_says(
        patient,
        "I take warfarin and I'm allergic to penicillin. My throat is sore.",
    );
    let messages = bot
        .wait_text(patient, "Shall I save this to your /meds list?")
        .await;
    let offer = newest_with(&messages, "Shall I save this");
    let buttons = button_texts(&offer);
    assert_eq!(buttons.len(), 3, "{buttons:?}");
    assert!(
        medication_names(&bot, patient).await.is_empty(),
        "nothing saved before the tap"
    );

    bot.fake.press(patient, &offer, "meds:ok:m:warfarin");
    let messages = bot
        .fake
        .wait_for(patient, WAIT, "the offer after one tap", |m| {
            m.iter().any(|m| {
                m.id == offer.id && m.text.starts_with("Saved to your medicines: warfarin")
            })
        })
        .await;
    let offer = messages.into_iter().find(|m| m.id == offer.id).unwrap();
    assert_eq!(
        button_texts(&offer).len(),
        2,
        "the allergy offer and 'Don't save' remain"
    );
    bot.fake.press(patient, &offer, "meds:ok:a:penicillin");
    bot.fake
        .wait_for(patient, WAIT, "the offer after the second tap", |m| {
            m.iter().any(|m| {
                m.id == offer.id
                    && m.text.starts_with("Saved to your allergies:")
                    && m.reply_markup.is_none()
            })
        })
        .await;
    let names = medication_names(&bot, patient).await;
    assert_eq!(
        names.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [Medicine, Allergy],
        "{names:?}"
    );

    // In Chinese, and declined.
    let other = 9152;
    bot.consent(other).await;
    bot.fake.patient_says(other, "我对青霉素过敏，嗓子疼");
    let messages = bot.wait_text(other, "要把它保存到您的 /meds 列表吗").await;
    let offer = newest_with(&messages, "要把它保存到您的 /meds 列表吗");
    assert!(card_data(&offer, "✖ 不保存") == "meds:no");
    assert!(
        button_texts(&offer)[0].contains("青霉素"),
        "{:?}",
        button_texts(&offer)
    );
    bot.fake.press(other, &offer, "meds:no");
    bot.wait_text(other, "未保存").await;
    assert!(medication_names(&bot, other).await.is_empty());
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The value of one sample line (`name{labels} value`) in Prometheus text, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn healthz_names_what_is_down_and_metrics_count_the_traffic() {
    let t = test_store(148).await;
    let proxy = PgOutage::start(&t.url).await;
    let fake = FakeTelegram::start().await;
    let generator = Arc::new(ScriptedGenerator::new(ANSWER));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let runtime = launch_serving(
        &fake,
        &proxy.url.clone(),
        148,
        generator.clone(),
        Some(listener),
    );
    let bot = BotUnderTest {
        fake,
        t,
        key_byte: 148,
        generator,
        runtime: Some(runtime),
    };
    let patient = 9160;
    bot.consent(patient).await;
    bot.fake
        .patient_says(patient, "I have had a sore throat since yesterday");
    bot.wait_text(patient, ANSWER).await;
    bot.fake
        .patient_says(patient, "Can I take ibuprofen for it?");
    let card = bot.card("Can I take ibuprofen for it?").await;
    bot.fake.press(DOCTOR, &card, &card_data(&card, "Approve"));
    bot.wait_text(patient, "Reviewed and approved by a doctor")
        .await;
    bot.fake.patient_says(patient, CHEST);
    bot.wait_text(patient, ADVICE).await;

    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        let (status, metrics) = get(&format!("{base}/metrics")).await;
        assert_eq!(status, 200);
        if sample(&metrics, "medbot_updates_handled_total{outcome=\"ok\"}") >= 6.0
            || Instant::now() > deadline
        {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // /start, three messages, the consent press and the doctor's press.
    assert_eq!(
        sample(&metrics, "medbot_updates_received_total{kind=\"message\"}"),
        4.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "medbot_updates_received_total{kind=\"callback_query\"}"
        ),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "medbot_updates_handled_total{outcome=\"ok\"}"),
        6.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "medbot_triage_total{level=\"emergency\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "medbot_escalations_total{reason=\"medication_question\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "medbot_escalation_outcomes_total{outcome=\"approved\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "medbot_first_text_seconds_count"),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "medbot_answer_seconds_count"),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "medbot_answers_in_progress"),
        0.0,
        "{metrics}"
    );
    assert!(metrics.contains("medbot_outbox_backlog "), "{metrics}");
    assert!(
        sample(&metrics, "medbot_generation_tokens_per_second_count") >= 1.0,
        "{metrics}"
    );

    bot.generator
        .set_broken(Some("the model's thread has stopped"));
    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("generator: the model's thread has stopped"),
        "{body}"
    );
    bot.generator.set_broken(None);
    proxy.set_up(false);
    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 503);
    assert!(body.starts_with("database: "), "{body}");
    proxy.set_up(true);
}
