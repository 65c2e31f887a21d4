//! The inference engine on a tiny random model (no download), and the real SmolLM2 where fetched.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use medbot::llm::{
    ChatMessage, Engine, EngineOptions, FinishReason, GenerateError, GenerationEvent,
    GenerationRequest, LoadError, ModelFile, ModelTokenizer, SamplingParams,
};

use crate::tiny_model::TinyModel;

fn tiny(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    TinyModel::default().write(&path);
    path
}

fn request(text: &str, max_new_tokens: usize) -> GenerationRequest {
    GenerationRequest {
        messages: vec![
            ChatMessage::system("You are careful."),
            ChatMessage::user(text),
        ],
        params: SamplingParams::greedy(),
        max_new_tokens,
    }
}

/// candle's thread pool spins; with tests running in parallel on two cores, one thread each is fastest.
fn one_thread() {
    medbot::llm::configure_threads(1);
}

async fn engine(path: &Path, max_running: usize, queue: usize) -> Engine {
    one_thread();
    Engine::start(EngineOptions {
        queue_capacity: queue,
        max_running,
        ..EngineOptions::new(path)
    })
    .await
    .expect("tiny model loads")
}

#[tokio::test]
async fn a_tiny_model_loads_with_its_tokenizer_and_template() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&tiny(dir.path()), 2, 4).await;
    assert_eq!(engine.model_name(), "tiny-test-llama");
    assert_eq!(engine.context_length(), 4096);
    let t = engine.tokenizer();
    // Special tokens are single ids; text round-trips exactly, whatever the script.
    assert_eq!(t.encode("<|im_start|>user\n").unwrap()[0], 1);
    for text in [
        "the fever",
        "胸口疼得厉害",
        "naïve café 🤒",
        "2024-11-28",
        "",
    ] {
        let ids = t.encode(text).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), text);
    }
    // Digits are split one by one (the smollm pre-tokenizer) and merges apply.
    assert_eq!(t.encode("2024").unwrap().len(), 4);
    assert_eq!(t.encode("the").unwrap().len(), 1);
    assert_eq!(
        engine.render_prompt(&[ChatMessage::user("hi")]).unwrap(),
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[tokio::test]
async fn greedy_generation_is_deterministic_and_pieces_make_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&tiny(dir.path()), 2, 4).await;
    let first = engine
        .generate(request("I have a cough", 40))
        .await
        .unwrap();
    let second = engine
        .generate(request("I have a cough", 40))
        .await
        .unwrap();
    assert_eq!(first.tokens, second.tokens);
    assert_eq!(first.text, second.text);
    assert_eq!(first.logprobs.len(), first.tokens.len());
    assert!(first.logprobs.iter().all(|lp| *lp <= 0.0 && lp.is_finite()));

    let mut stream = engine.submit(request("I have a cough", 40)).unwrap();
    let mut pieces = String::new();
    let mut finished = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            GenerationEvent::Piece { text: p, .. } => {
                assert!(!p.is_empty());
                pieces.push_str(&p)
            }
            GenerationEvent::Finished(g) => finished = Some(g),
        }
    }
    let finished = finished.expect("a Finished event");
    assert_eq!(pieces, finished.text);
    assert_eq!(finished.text, first.text);
    assert!(matches!(
        finished.finish,
        FinishReason::MaxTokens | FinishReason::EndOfTurn
    ));
}

#[tokio::test]
async fn a_cancelled_request_frees_the_engine_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&tiny(dir.path()), 1, 4).await;
    let mut long = engine.submit(request("tell me everything", 4000)).unwrap();
    // Wait until it is generating, then walk away.
    loop {
        if let GenerationEvent::Piece { .. } = long.next().await.unwrap().unwrap() {
            break;
        }
    }
    drop(long);
    // With one slot, the short request runs only once the long one has given it up.
    let short = tokio::time::timeout(
        Duration::from_secs(60),
        engine.generate(request("quick", 5)),
    )
    .await
    .expect("the slot was freed")
    .unwrap();
    assert!(short.tokens.len() <= 5);
    assert_eq!(
        engine
            .stats()
            .cancelled
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_full_queue_answers_busy_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&tiny(dir.path()), 1, 1).await;
    let mut running = engine.submit(request("one", 4000)).unwrap();
    // Once it produces text it has left the queue for the single running slot.
    while !matches!(
        running.next().await,
        Some(Ok(GenerationEvent::Piece { .. }))
    ) {}
    let _queued = engine.submit(request("two", 5)).unwrap();
    // `submit` is not async: a full queue is answered at once, by construction.
    let third = engine.submit(request("three", 5));
    assert!(
        matches!(third, Err(GenerateError::Busy(1))),
        "{:?}",
        third.err()
    );
}

#[tokio::test]
async fn interleaved_requests_give_the_same_answers_as_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny(dir.path());
    let alone = engine(&path, 1, 4).await;
    let a = alone.generate(request("my head hurts", 30)).await.unwrap();
    let b = alone
        .generate(request("I feel dizzy after running", 30))
        .await
        .unwrap();
    // Run again in the other order on the same engine: no attention state carries over.
    let b_again = alone
        .generate(request("I feel dizzy after running", 30))
        .await
        .unwrap();
    assert_eq!(b.tokens, b_again.tokens);

    let together = engine(&path, 2, 4).await;
    let sa = together.submit(request("my head hurts", 30)).unwrap();
    let sb = together
        .submit(request("I feel dizzy after running", 30))
        .unwrap();
    let (ra, rb) = tokio::join!(sa.finish(), sb.finish());
    assert_eq!(ra.unwrap().tokens, a.tokens);
    assert_eq!(rb.unwrap().tokens, b.tokens);
}

#[tokio::test]
async fn a_prompt_beyond_the_context_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.gguf");
    TinyModel {
        context_length: 64,
        ..TinyModel::default()
    }
    .write(&path);
    let engine = engine(&path, 1, 1).await;
    let err = engine
        .submit(request(&"word ".repeat(200), 10))
        .err()
        .unwrap();
    assert!(
        matches!(err, GenerateError::PromptTooLong { limit: 64, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn bad_model_files_give_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = tiny(dir.path());
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    one_thread();
    let err = Engine::start(EngineOptions::new(&truncated))
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("truncated or corrupt"), "{err}");

    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"this is not a model at all").unwrap();
    assert!(matches!(
        Engine::start(EngineOptions::new(&garbage))
            .await
            .unwrap_err(),
        LoadError::Corrupt { .. }
    ));

    let missing = dir.path().join("missing.gguf");
    let err = Engine::start(EngineOptions::new(&missing))
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::NotFound(_)));
    assert!(err.to_string().contains("run models/fetch"));

    let mamba = dir.path().join("mamba.gguf");
    TinyModel {
        architecture: "mamba",
        ..TinyModel::default()
    }
    .write(&mamba);
    let err = Engine::start(EngineOptions::new(&mamba)).await.unwrap_err();
    assert!(
        matches!(err, LoadError::UnsupportedArchitecture { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("\"mamba\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_stays_responsive_during_a_long_generation() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&tiny(dir.path()), 1, 1).await;
    let generation = tokio::spawn({
        let engine = engine.clone();
        async move { engine.generate(request("a long answer please", 4000)).await }
    });
    let mut worst = Duration::ZERO;
    let mut ticks = 0;
    while !generation.is_finished() && ticks < 300 {
        let before = Instant::now();
        tokio::time::sleep(Duration::from_millis(10)).await;
        worst = worst.max(before.elapsed().saturating_sub(Duration::from_millis(10)));
        ticks += 1;
    }
    assert!(
        ticks > 10,
        "the generation should take a while ({ticks} ticks)"
    );
    assert!(
        worst < Duration::from_millis(50),
        "a timer was delayed by {worst:?}"
    );
    drop(generation);
}

/// The default model, fetched by models/fetch (CI runs it before the tests).
pub fn smollm2() -> PathBuf {
    crate::helpers::fetched("models/SmolLM2-135M-Instruct.Q4_1.gguf", "models/fetch")
}

#[test]
fn smollm2_tokenizer_matches_its_vocabulary() {
    let file = ModelFile::open(&smollm2()).unwrap();
    let t = ModelTokenizer::from_gguf(&file).unwrap();
    assert_eq!(t.vocab_size(), 49152);
    // Special tokens are single ids (SmolLM2: 0 endoftext, 1 im_start, 2 im_end).
    assert_eq!(t.encode("<|im_start|>user\nHi<|im_end|>").unwrap()[0], 1);
    assert_eq!(
        *t.encode("<|im_start|>user\nHi<|im_end|>")
            .unwrap()
            .last()
            .unwrap(),
        2
    );
    assert_eq!(t.encode("<|endoftext|>").unwrap(), vec![0]);
    // Whole words that are vocabulary entries encode to exactly that entry.
    assert_eq!(
        t.encode("Hello").unwrap(),
        vec![t.token_to_id("Hello").unwrap()]
    );
    assert_eq!(
        t.encode("Hello world").unwrap(),
        vec![
            t.token_to_id("Hello").unwrap(),
            t.token_to_id("Ġworld").unwrap()
        ]
    );
    // Digits one by one.
    let digits: Vec<u32> = "2024"
        .chars()
        .map(|c| t.token_to_id(&c.to_string()).unwrap())
        .collect();
    assert_eq!(t.encode("2024").unwrap(), digits);
    for text in [
        "我发烧三天了，咳嗽",
        "Ça fait mal à l'épaule",
        "fever 🤒🔥",
        "  two  spaces\n\nnewlines\t",
    ] {
        assert_eq!(t.decode(&t.encode(text).unwrap()).unwrap(), text);
    }
    assert!(t.stop_ids().contains(&2));
}

#[tokio::test]
async fn smollm2_answers_a_fever_question_in_english_and_ends_its_turn() {
    one_thread();
    let engine = Engine::start(EngineOptions::new(smollm2())).await.unwrap();
    assert!(
        engine.model_name().contains("135M"),
        "{}",
        engine.model_name()
    );
    let answer = engine
        .generate(GenerationRequest {
            messages: vec![ChatMessage::user(
                "I have a fever and a cough. What could it be?",
            )],
            params: SamplingParams::greedy(),
            max_new_tokens: 256,
        })
        .await
        .unwrap();
    assert_eq!(answer.finish, FinishReason::EndOfTurn, "{:?}", answer.text);
    let words: Vec<&str> = answer.text.split_whitespace().collect();
    assert!(words.len() >= 5, "{:?}", answer.text);
    let ascii = answer.text.chars().filter(|c| c.is_ascii()).count() as f64;
    assert!(
        ascii / answer.text.chars().count() as f64 > 0.95,
        "{:?}",
        answer.text
    );
    let lower = answer.text.to_lowercase();
    assert!(
        ["fever", "cough", "infection", "cold", "flu"]
            .iter()
            .any(|w| lower.contains(w)),
        "{:?}",
        answer.text
    );
}

/// The context builder counts a prompt from its parts with the adapter's overheads; the prompt the
/// engine actually renders and tokenizes must never be longer than that count.
#[tokio::test]
async fn the_context_count_from_parts_never_underestimates_the_real_prompt() {
    use medbot::consult::wording;
    use medbot::context::{self, ContextBudget, HistoryMessage, TokenCounter};
    use medbot::domain::{Language, Role};
    use medbot::llm::EngineGenerator;

    one_thread();
    let engine = Engine::start(EngineOptions::new(smollm2())).await.unwrap();
    let generator = EngineGenerator::new(engine.clone(), SamplingParams::greedy());
    assert!(generator.message_overhead() >= 4 && generator.prompt_overhead() >= 1);
    let pieces = [
        "I have had a sore throat since Monday.",
        "我头疼，还有点发烧，38.5度。",
        "Is it ok to run with a cold? 🏃‍♀️🤧",
        "Café, naïve, résumé — accents and dashes…",
        "Rest, fluids, and see a clinician if it gets worse.\n\n1. Honey\n2. Warm water",
        "  leading and trailing spaces  ",
        "<|im_start|> written by a patient",
    ];
    let mut seed = 7u64;
    let mut checked = 0;
    for round in 0..40 {
        let mut history = Vec::new();
        let turns = 1 + round % 9;
        for turn in 0..turns {
            for role in [Role::Patient, Role::Assistant] {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let repeat = 1 + (seed >> 60) as usize;
                let text = pieces[(seed >> 33) as usize % pieces.len()].repeat(repeat);
                history.push(HistoryMessage { role, text });
            }
            if turn == turns - 1 {
                history.pop();
            }
        }
        let language = if round % 2 == 0 {
            Language::English
        } else {
            Language::Chinese
        };
        let budget = ContextBudget {
            context_tokens: 200 + 37 * round,
            answer_tokens: 64,
        };
        let Ok(built) = context::build(
            wording::system_prompt(language),
            &history,
            &generator,
            budget,
        ) else {
            continue;
        };
        let messages: Vec<ChatMessage> = built
            .messages
            .iter()
            .map(|m| match m.role {
                medbot::context::PromptRole::System => ChatMessage::system(m.content.clone()),
                medbot::context::PromptRole::User => ChatMessage::user(m.content.clone()),
                medbot::context::PromptRole::Assistant => ChatMessage::assistant(m.content.clone()),
            })
            .collect();
        let actual = engine
            .tokenizer()
            .count(&engine.render_prompt(&messages).unwrap());
        assert!(
            actual <= built.tokens && built.tokens <= budget.prompt_tokens(),
            "round {round}: real {actual}, counted {}, budget {}",
            built.tokens,
            budget.prompt_tokens()
        );
        // Within a few tokens per message: the estimate must not waste the window either.
        assert!(
            built.tokens - actual <= 3 * built.messages.len() + 8,
            "round {round}: real {actual}, counted {}",
            built.tokens
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} histories fitted");
}

/// Re-encoding SmolLM2's Q4_1 weights as Q8_0 (the default, for candle's fast kernels) must not
/// change what the model says: the next-token logits stay close and the choice stays the same.
#[test]
fn requantized_weights_keep_the_models_predictions() {
    use medbot::llm::{LoadedModel, Requantize};
    one_thread();
    let path = smollm2();
    let tokens = {
        let file = ModelFile::open(&path).unwrap();
        ModelTokenizer::from_gguf(&file)
            .unwrap()
            .encode("<|im_start|>user\nI have a sore throat and a fever. What should I do?<|im_end|>\n<|im_start|>assistant\n")
            .unwrap()
    };
    let logits = |requantize| {
        let file = ModelFile::open(&path).unwrap();
        let mut model =
            LoadedModel::load_with(file, &candle_core::Device::Cpu, requantize).unwrap();
        model.forward(&tokens, 0).unwrap()
    };
    let original = logits(Requantize::Off);
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0
    };
    let spread = original.iter().cloned().fold(f32::MIN, f32::max)
        - original.iter().cloned().fold(f32::MAX, f32::min);
    let top = |v: &[f32], k: usize| {
        let mut ids: Vec<usize> = (0..v.len()).collect();
        ids.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
        ids.truncate(k);
        ids
    };
    for requantize in [Requantize::Q8_0, Requantize::Q4_0] {
        let re = logits(requantize);
        let mean = original
            .iter()
            .zip(&re)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / original.len() as f32;
        let shared = top(&re, 10)
            .iter()
            .filter(|id| top(&original, 10).contains(id))
            .count();
        println!(
            "{requantize:?}: mean logit change {mean:.3} (spread {spread:.1}), top-1 same: {}, top-10 shared: {shared}",
            argmax(&original) == argmax(&re)
        );
        // Q4_0 quantizes the weights a second time and is only reported: it can change the
        // model's first choice, which is why Q8_0 is the default.
        if requantize == Requantize::Q8_0 {
            assert!(mean <= 0.02 * spread, "{requantize:?}: mean change {mean}");
            assert_eq!(argmax(&original), argmax(&re));
            assert!(shared >= 8, "only {shared} of the top 10 kept");
        }
    }
}
