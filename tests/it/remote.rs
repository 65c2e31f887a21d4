//! The remote generator: against a scripted fake for the failures a real server rarely shows on
//! demand, and against a real llama.cpp server running the default GGUF.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medbot::consult::{
    ConsultationService, DraftEvent, DraftStream, Generator, GeneratorError, Progress, Reply,
    ServiceSettings, SystemClock,
};
use medbot::context::{PromptMessage, PromptRole, TokenCounter};
use medbot::llm::remote::{RemoteGenerator, RemoteSettings, upper_bound};
use medbot::storage::Store;
use medbot::triage::{DraftReviewer, DrugLexicon, ReviewReason};

use crate::fake_inference::{Behaviour, End, FakeInference, MODEL};
use crate::helpers::*;

const QUESTION: &str = "How much sleep does an adult need?";

fn settings(url: &str) -> RemoteSettings {
    RemoteSettings {
        timeout: Duration::from_secs(20),
        ..RemoteSettings::new(url.parse().unwrap())
    }
}

fn service<G: Generator>(
    generator: Arc<G>,
    store: Store,
) -> ConsultationService<G, Store, SystemClock> {
    let reviewer = Arc::new(DraftReviewer::new(DrugLexicon::from_names([
        "ibuprofen",
        "paracetamol",
    ])));
    ConsultationService::new(
        generator,
        store,
        SystemClock,
        reviewer,
        ServiceSettings::default(),
    )
}

/// Asks one question through the service; the outcome must come (a hang fails the test).
async fn ask<G: Generator>(
    service: &ConsultationService<G, Store, SystemClock>,
    patient: medbot::domain::PatientId,
    text: &str,
) -> (Reply, Vec<String>) {
    let mut shown = Vec::new();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        service.handle(patient, text, &mut |p| {
            if let Progress::Partial(text) = p {
                shown.push(text.to_owned());
            }
        }),
    )
    .await
    .expect("an outcome, not a hang")
    .expect("handled");
    (outcome.reply, shown)
}

fn escalated(reply: &Reply) -> Vec<ReviewReason> {
    match reply {
        Reply::UnderReview { reasons, .. } => reasons.clone(),
        other => panic!("expected an escalation, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The scripted fake

#[tokio::test]
async fn five_hundreds_then_success_is_an_answer_and_only_texts_leave_the_process() {
    let fake = FakeInference::start(None, true).await;
    fake.script([Behaviour::Status(500), Behaviour::Status(503)]);
    let t = test_store(130).await;
    let generator = Arc::new(RemoteGenerator::connect(settings(&fake.url)).await.unwrap());
    let service = service(generator, t.store.clone());
    let patient = consenting_patient(&t.store, 9_130).await;
    let (reply, shown) = ask(&service, patient, QUESTION).await;
    let Reply::Answer { text } = &reply else {
        panic!("expected the answer, got {reply:?}");
    };
    assert!(text.starts_with("Rest and drink plenty of fluids. Most colds pass within a week."));
    assert_eq!(
        shown.first().map(String::as_str),
        Some("Rest and drink plenty of fluids.")
    );
    let chats = fake.chats();
    assert_eq!(chats.len(), 3, "two failures, then the answer");
    // Message texts and sampling settings only: no Telegram id, name or patient reference.
    let body = &chats[2];
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in &keys {
        assert!(
            [
                "model",
                "messages",
                "stream",
                "max_tokens",
                "temperature",
                "top_p",
                "logprobs",
                "top_logprobs"
            ]
            .contains(key),
            "{key} sent"
        );
    }
    assert_eq!(body["model"], MODEL);
    let sent = body.to_string();
    assert!(sent.contains(QUESTION));
    assert!(
        !sent.contains(&patient.reference()) && !sent.contains("9130"),
        "{sent}"
    );
}

#[tokio::test]
async fn a_stream_cut_half_way_goes_to_a_doctor_without_trying_again() {
    let fake = FakeInference::start(None, true).await;
    fake.script([Behaviour::Stream(
        vec!["Rest and drink fluids. ", "Most"],
        End::Cut,
    )]);
    let t = test_store(131).await;
    let generator = Arc::new(RemoteGenerator::connect(settings(&fake.url)).await.unwrap());
    let service = service(generator, t.store.clone());
    let patient = consenting_patient(&t.store, 9_131).await;
    let (reply, _) = ask(&service, patient, QUESTION).await;
    escalated(&reply);
    assert_eq!(fake.chats().len(), 1, "text had streamed: no second try");
}

#[tokio::test]
async fn malformed_events_are_tried_again_before_text_and_escalate_after() {
    let fake = FakeInference::start(None, true).await;
    fake.script([
        Behaviour::Stream(vec![], End::Malformed),
        Behaviour::Stream(vec!["Sleep seven to nine hours. "], End::Done),
        Behaviour::Stream(vec!["Sleep well. ", "And"], End::Malformed),
    ]);
    let t = test_store(132).await;
    let generator = Arc::new(RemoteGenerator::connect(settings(&fake.url)).await.unwrap());
    let service = service(generator, t.store.clone());
    let patient = consenting_patient(&t.store, 9_132).await;
    let (first, _) = ask(&service, patient, QUESTION).await;
    assert!(
        matches!(&first, Reply::Answer { text } if text.starts_with("Sleep seven to nine hours.")),
        "{first:?}"
    );
    let (second, _) = ask(&service, patient, "And how much for a teenager?").await;
    escalated(&second);
    assert_eq!(fake.chats().len(), 3);
}

#[tokio::test]
async fn a_stall_past_the_deadline_escalates_what_was_written() {
    let fake = FakeInference::start(None, true).await;
    fake.script([Behaviour::Stream(vec!["Sleep seven hours. "], End::Stall)]);
    let t = test_store(133).await;
    let generator = Arc::new(
        RemoteGenerator::connect(RemoteSettings {
            timeout: Duration::from_secs(2),
            ..settings(&fake.url)
        })
        .await
        .unwrap(),
    );
    let service = service(generator, t.store.clone());
    let patient = consenting_patient(&t.store, 9_133).await;
    let started = Instant::now();
    let (reply, _) = ask(&service, patient, QUESTION).await;
    escalated(&reply);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_wrong_key_is_named_at_start_and_a_key_refused_later_escalates() {
    let fake = FakeInference::start(Some("right-key"), true).await;
    let wrong = RemoteSettings {
        api_key: Some("wrong-key".to_owned().into()),
        ..settings(&fake.url)
    };
    let e = RemoteGenerator::connect(wrong).await.unwrap_err();
    assert_eq!(e.setting, "GENERATOR_API_KEY", "{e}");
    assert!(
        !e.to_string().contains("wrong-key"),
        "the key is never echoed: {e}"
    );

    let right = RemoteSettings {
        api_key: Some("right-key".to_owned().into()),
        ..settings(&fake.url)
    };
    let generator = Arc::new(RemoteGenerator::connect(right).await.unwrap());
    fake.script([Behaviour::Status(401)]);
    let t = test_store(134).await;
    let service = service(generator, t.store.clone());
    let patient = consenting_patient(&t.store, 9_134).await;
    let (reply, _) = ask(&service, patient, QUESTION).await;
    escalated(&reply);
    assert_eq!(fake.chats().len(), 1, "a refused key is not tried again");
}

#[tokio::test]
async fn after_repeated_failures_the_breaker_fails_at_once_without_asking_the_server() {
    let fake = FakeInference::start(None, true).await;
    fake.script(std::iter::repeat_n(Behaviour::Status(500), 40));
    let generator = RemoteGenerator::connect(settings(&fake.url)).await.unwrap();
    let prompt = || vec![PromptMessage::new(PromptRole::User, QUESTION)];
    for _ in 0..5 {
        let mut events = generator.generate(prompt(), 16).await.unwrap();
        assert!(matches!(
            events.recv().await,
            Some(Err(GeneratorError::Failed(_)))
        ));
    }
    let asked = fake.chats().len();
    assert_eq!(asked, 5 * 4, "each answer tried four times");
    let started = Instant::now();
    let refused = generator.generate(prompt(), 16).await;
    assert!(matches!(refused, Err(GeneratorError::Failed(_))));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(fake.chats().len(), asked, "the server was not asked");
}

#[tokio::test]
async fn past_the_places_and_the_queue_the_generator_is_busy() {
    let fake = FakeInference::start(None, true).await;
    fake.script(std::iter::repeat_n(
        Behaviour::Stream(vec!["Sleep. "], End::Stall),
        3,
    ));
    let generator = RemoteGenerator::connect(RemoteSettings {
        max_concurrency: 1,
        queue_capacity: 1,
        ..settings(&fake.url)
    })
    .await
    .unwrap();
    let prompt = || vec![PromptMessage::new(PromptRole::User, QUESTION)];
    let mut running = generator.generate(prompt(), 16).await.unwrap();
    assert!(matches!(
        running.recv().await,
        Some(Ok(DraftEvent::Piece { .. }))
    ));
    let waiting = generator.generate(prompt(), 16).await.unwrap();
    // Let the second take its place in the queue.
    wait_until(|| fake.chats().len() == 1, Duration::from_millis(300)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        generator.generate(prompt(), 16).await,
        Err(GeneratorError::Busy)
    ));
    // Dropping the running answer frees its place: the waiting one is sent.
    drop(running);
    wait_until(|| fake.chats().len() == 2, Duration::from_secs(5)).await;
    drop(waiting);
}

async fn wait_until(check: impl Fn() -> bool, within: Duration) {
    let deadline = Instant::now() + within;
    while !check() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn without_log_probabilities_nothing_streams_and_every_draft_is_reviewed() {
    let fake = FakeInference::start(None, false).await;
    let t = test_store(135).await;
    let generator = Arc::new(RemoteGenerator::connect(settings(&fake.url)).await.unwrap());
    assert!(!generator.knows_confidence());
    // No tokenize endpoint: counts are the bound, never below the real count.
    assert_eq!(generator.count("Hello there"), upper_bound("Hello there"));
    let service = service(generator, t.store.clone());
    let patient = consenting_patient(&t.store, 9_135).await;
    let (reply, shown) = ask(&service, patient, QUESTION).await;
    assert!(escalated(&reply).contains(&ReviewReason::LowConfidence));
    assert!(shown.is_empty(), "shown before review: {shown:?}");
}

#[tokio::test]
async fn counts_come_from_vllms_tokenize_or_a_tokenizer_file_when_the_server_has_none() {
    let vllm = FakeInference::start_with(None, true, true).await;
    let generator = RemoteGenerator::connect(settings(&vllm.url)).await.unwrap();
    generator
        .prepare_counts(vec!["my throat is sore".into()])
        .await;
    assert_eq!(
        generator.count("my throat is sore"),
        4,
        "the server's count"
    );
    // Measured from the template: three tokens around each message in the fake's, and the same
    // slack as the local engine's measurement keeps.
    assert_eq!(generator.message_overhead(), 5);
    assert_eq!(
        generator.count_source(),
        "the server's tokenizer (vLLM /tokenize)"
    );

    let plain = FakeInference::start(None, true).await;
    let model = crate::llm::smollm2();
    let generator = RemoteGenerator::connect(RemoteSettings {
        tokenizer: Some(model.clone()),
        ..settings(&plain.url)
    })
    .await
    .unwrap();
    let file = medbot::llm::ModelFile::open(&model).unwrap();
    let tokenizer = medbot::llm::ModelTokenizer::from_gguf(&file).unwrap();
    let text = "I have had a sore throat for two days";
    assert_eq!(generator.count(text), tokenizer.count(text));
    assert_eq!(generator.count_source(), "GENERATOR_TOKENIZER");
}

#[tokio::test]
async fn connect_names_the_setting_at_fault() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = RemoteGenerator::connect(settings(&format!("http://127.0.0.1:{port}/v1")))
        .await
        .unwrap_err();
    assert_eq!(e.setting, "GENERATOR_URL", "{e}");
    let fake = FakeInference::start(None, true).await;
    let e = RemoteGenerator::connect(RemoteSettings {
        model: Some("no-such-model".into()),
        ..settings(&fake.url)
    })
    .await
    .unwrap_err();
    assert_eq!(e.setting, "GENERATOR_MODEL", "{e}");
    assert!(
        e.problem.contains(MODEL),
        "the served models are listed: {e}"
    );
}

// ---------------------------------------------------------------------------------------------
// A real llama.cpp server

/// `MEDBOT_LLAMA_SERVER`, else the one `.ci/build-llama.sh` builds (and builds it when missing,
/// once for all tests: about 10 minutes on 2 cores the first time).
fn llama_server_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(path) = std::env::var_os("MEDBOT_LLAMA_SERVER") {
        return PathBuf::from(path);
    }
    BUILT
        .get_or_init(|| {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            let output = Command::new(root.join(".ci/build-llama.sh"))
                .current_dir(root)
                .stderr(Stdio::inherit())
                .output()
                .expect(".ci/build-llama.sh runs");
            assert!(output.status.success(), ".ci/build-llama.sh failed");
            let folder = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            let path = PathBuf::from(folder).join("llama-server");
            assert!(path.is_file(), "{} was not built", path.display());
            path
        })
        .clone()
}

pub struct LlamaServer {
    child: Child,
    pub root: String,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LlamaServer {
    /// The default GGUF on one thread with `parallel` slots of 2,048 tokens each.
    pub async fn start(parallel: usize) -> Self {
        let model = crate::llm::smollm2();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(llama_server_binary())
            .args([
                "-m",
                model.to_str().unwrap(),
                "--host",
                "127.0.0.1",
                "--port",
            ])
            .arg(port.to_string())
            .args(["-t", "1", "--parallel"])
            .arg(parallel.to_string())
            .arg("-c")
            .arg((2048 * parallel).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("llama-server starts");
        let server = Self {
            child,
            root: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = reqwest::get(format!("{}/health", server.root)).await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "llama-server did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }

    pub fn url(&self) -> String {
        format!("{}/v1", self.root)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn busy_slots(&self) -> usize {
        let slots: serde_json::Value = reqwest::get(format!("{}/slots", self.root))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        slots
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["is_processing"] == serde_json::json!(true))
            .count()
    }
}

/// The remote generator, keeping every prompt it was given.
struct Recording {
    inner: RemoteGenerator,
    prompts: Mutex<Vec<Vec<PromptMessage>>>,
}

impl TokenCounter for Recording {
    fn count(&self, text: &str) -> usize {
        self.inner.count(text)
    }
    fn message_overhead(&self) -> usize {
        self.inner.message_overhead()
    }
    fn prompt_overhead(&self) -> usize {
        self.inner.prompt_overhead()
    }
}

impl Generator for Recording {
    fn context_tokens(&self) -> usize {
        self.inner.context_tokens()
    }
    fn knows_confidence(&self) -> bool {
        self.inner.knows_confidence()
    }
    async fn prepare_counts(&self, texts: Vec<String>) {
        self.inner.prepare_counts(texts).await;
    }
    async fn generate(
        &self,
        prompt: Vec<PromptMessage>,
        max_new_tokens: usize,
    ) -> Result<DraftStream, GeneratorError> {
        self.prompts.lock().unwrap().push(prompt.clone());
        self.inner.generate(prompt, max_new_tokens).await
    }
}

#[tokio::test]
async fn a_three_turn_conversation_on_a_real_llama_server_never_undercounts_its_prompts() {
    let server = LlamaServer::start(2).await;
    let remote = RemoteGenerator::connect(settings(&server.url()))
        .await
        .unwrap();
    assert!(
        remote.knows_confidence(),
        "llama.cpp reports log-probabilities"
    );
    assert_eq!(remote.context_tokens(), 2048, "the context of one slot");
    let generator = Arc::new(Recording {
        inner: remote,
        prompts: Mutex::default(),
    });
    let t = test_store(136).await;
    let service = service(generator.clone(), t.store.clone());
    let patient = consenting_patient(&t.store, 9_136).await;
    let mut streamed = 0;
    for question in [
        QUESTION,
        "Is it bad to sleep only five hours on weekdays?",
        "What helps me fall asleep faster?",
    ] {
        let (reply, shown) = ask(&service, patient, question).await;
        assert!(
            matches!(reply, Reply::Answer { .. } | Reply::UnderReview { .. }),
            "{reply:?}"
        );
        streamed += shown.len();
    }
    let prompts = generator.prompts.lock().unwrap().clone();
    assert_eq!(prompts.len(), 3);
    assert!(
        prompts[2].iter().any(|m| m.content == QUESTION),
        "the third turn sees the first"
    );
    for prompt in &prompts {
        let counted = generator.prompt_overhead()
            + prompt
                .iter()
                .map(|m| generator.count(&m.content) + generator.message_overhead())
                .sum::<usize>();
        let server_count = generator.inner.server_prompt_tokens(prompt).await.unwrap();
        assert!(
            counted >= server_count,
            "counted {counted}, the server counts {server_count}"
        );
        assert!(
            counted <= server_count + 16 + 2 * prompt.len(),
            "{counted} vs {server_count}"
        );
        println!(
            "prompt of {} messages: counted {counted}, the server counts {server_count}",
            prompt.len()
        );
    }
    println!("streamed partial updates over three turns: {streamed}");
}

#[tokio::test]
async fn dropping_a_request_frees_the_llama_servers_slot() {
    let server = LlamaServer::start(1).await;
    let generator = RemoteGenerator::connect(settings(&server.url()))
        .await
        .unwrap();
    let prompt = vec![PromptMessage::new(
        PromptRole::User,
        "Write a very long story about a doctor, a nurse and a patient, in many chapters.",
    )];
    let mut events = generator.generate(prompt, 1500).await.unwrap();
    let first = events.recv().await;
    assert!(
        matches!(first, Some(Ok(DraftEvent::Piece { .. }))),
        "{first:?}"
    );
    assert_eq!(server.busy_slots().await, 1);
    drop(events);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.busy_slots().await > 0 {
        assert!(Instant::now() < deadline, "the slot is still generating");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn medbot_chat_runs_on_a_llama_server_without_a_local_model_and_survives_its_death() {
    use std::io::{BufRead, BufReader, Write};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut server = runtime.block_on(LlamaServer::start(1));
    let lexicon = fetched("models/drug-lexicon.pkl", "models/fetch-drug-lexicon");
    let url = unused_database_url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let generator_url = server.url();
    let env = [
        ("DATABASE_URL", url.expose()),
        ("MEDBOT_DATA_DIR", data.to_str().unwrap()),
        ("MODEL_PATH", "/nonexistent/model.gguf"),
        ("MEDBOT_DRUG_LEXICON", lexicon.to_str().unwrap()),
        ("GENERATOR_URL", generator_url.as_str()),
        ("GENERATOR_TIMEOUT_S", "20"),
    ];
    let mut child = medbot_command(&["chat"], &env, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut transcript = String::new();
    let mut wait_for = |what: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = seen
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("timed out; the chat said:\n{transcript}"));
            transcript.push_str(&line);
            transcript.push('\n');
            if what(&line) {
                return transcript.clone();
            }
        }
    };
    writeln!(stdin, "\n{QUESTION}").unwrap();
    let said =
        wait_for(&|l| l.contains("not medical advice") || l.contains("[waiting for a doctor"));
    assert!(said.contains("on the inference server"), "{said}");
    server.kill();
    writeln!(stdin, "Is it bad to sleep only five hours on weekdays?").unwrap();
    let said = wait_for(&|l| l.contains("[waiting for a doctor"));
    assert!(said.contains("A doctor is reviewing"), "{said}");
    // The chat goes on: a command is still answered, and /quit ends it cleanly.
    writeln!(stdin, "/quit").unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}\n{said}");
}
