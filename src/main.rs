use std::process::ExitCode;

use clap::Parser;

use medbot::cli::{Cli, Command};
use medbot::config::{ConfigError, ProcessEnv};
use medbot::storage::UnlockError;
use medbot::{admin, config, telemetry};

/// Exit code for configuration problems (a missing or malformed setting, a wrong key).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = config::load_dotenv() {
        eprintln!("medbot: configuration error: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    // The terminal commands talk to a person on the same screen: only warnings unless RUST_LOG asks.
    telemetry::init(match cli.command {
        Command::Chat { .. }
        | Command::Review { .. }
        | Command::Triage { .. }
        | Command::Assessment { .. }
        | Command::Meds { .. } => "warn",
        _ => "warn,medbot=info",
    });
    match cli.command {
        Command::Triage { jsonl, data } => {
            return medbot::terminal::triage::run(jsonl, data.as_deref());
        }
        Command::Assessment { command } => return medbot::terminal::triage::assessment(command),
        Command::Meds { command } => return medbot::terminal::meds::run(&ProcessEnv, command),
        _ => {}
    }
    if let Command::Bench {
        prompt_tokens,
        new_tokens,
        threads,
        model,
        json,
        requantize,
        generator,
        concurrent,
    } = cli.command
    {
        let run = BenchRun {
            prompt_tokens,
            new_tokens,
            threads,
            model,
            requantize,
            generator,
            concurrent,
        };
        return bench(run, json);
    }
    if matches!(cli.command, Command::Chat { .. } | Command::Serve) {
        // Before any runtime thread exists: candle reads the thread count once.
        configure_model_threads(None);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("medbot: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env = ProcessEnv;
    match cli.command {
        Command::Migrate { status } => admin::migrate(&env, status).await,
        Command::Keys { command } => admin::keys(&env, command).await,
        Command::Patient { command } => admin::patient(&env, command).await,
        Command::Audit { command } => admin::audit(&env, command).await,
        Command::Check => admin::check(&env).await,
        Command::Serve => medbot::app::serve(&env).await,
        Command::Kb { command } => medbot::app::kb(&env, command).await,
        Command::Chat { patient } => medbot::terminal::chat::run(&env, &patient).await,
        Command::Review { command } => {
            let command = command.unwrap_or(medbot::cli::ReviewCommand::List);
            medbot::terminal::review::run(&env, command).await
        }
        Command::Bench { .. }
        | Command::Triage { .. }
        | Command::Assessment { .. }
        | Command::Meds { .. } => {
            unreachable!("handled before the runtime starts")
        }
    }
}

struct BenchRun {
    prompt_tokens: usize,
    new_tokens: usize,
    threads: Option<usize>,
    model: Option<std::path::PathBuf>,
    requantize: Option<medbot::llm::Requantize>,
    generator: medbot::cli::BenchGenerator,
    concurrent: Option<usize>,
}

/// Runs before any runtime thread exists: the thread count must be fixed before candle starts.
fn bench(run: BenchRun, json: bool) -> ExitCode {
    match bench_report(run) {
        Ok(report) if json => {
            println!("{}", serde_json::to_string(&report).expect("plain struct"));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!("generator     {}", r.generator);
            println!("model         {}", r.model);
            println!("threads       {}", r.threads);
            println!("load          {:.2} s", r.load_s);
            println!(
                "prefill       {:.1} tokens/s ({} tokens)",
                r.prefill_tps, r.prompt_tokens
            );
            println!(
                "decode        {:.1} tokens/s ({} tokens)",
                r.decode_tps, r.new_tokens
            );
            println!("peak RSS      {:.0} MiB", r.peak_rss_mib);
            if let Some(c) = &r.concurrent {
                println!(
                    "{} at once     first text p50 {:.0} ms, max {:.0} ms; answer p50 {:.0} ms, max {:.0} ms",
                    c.concurrent,
                    c.first_text_ms_p50,
                    c.first_text_ms_max,
                    c.answer_ms_p50,
                    c.answer_ms_max
                );
                println!(
                    "              {:.1} tokens/s together, {:.1} per stream; {} failed",
                    c.aggregate_decode_tps, c.per_stream_decode_tps, c.failed
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => report(&e),
    }
}

fn bench_report(run: BenchRun) -> anyhow::Result<medbot::bench::BenchReport> {
    use medbot::cli::BenchGenerator;

    let threads = configure_model_threads(run.threads);
    let runtime = tokio::runtime::Runtime::new()?;
    if run.generator == BenchGenerator::Remote {
        let Some(settings) = config::remote_generator(&ProcessEnv)? else {
            anyhow::bail!(
                "{}: is not set; --generator remote measures the server it names",
                config::GENERATOR_URL
            );
        };
        return runtime.block_on(async {
            let (mut report, generator) =
                medbot::bench::run_remote(settings, run.prompt_tokens, run.new_tokens).await?;
            if let Some(n) = run.concurrent {
                report.concurrent =
                    Some(medbot::bench::run_concurrent(&generator, n, run.new_tokens).await);
            }
            Ok(report)
        });
    }
    let path = run.model.unwrap_or_else(medbot::bench::default_model);
    let requantize = match run.requantize {
        Some(r) => r,
        None => config::requantize(&ProcessEnv)?,
    };
    let mut report = medbot::bench::run(
        &path,
        run.prompt_tokens,
        run.new_tokens,
        threads,
        requantize,
    )?;
    if let Some(n) = run.concurrent {
        report.concurrent = Some(runtime.block_on(async {
            let engine = medbot::llm::Engine::start(medbot::llm::EngineOptions {
                requantize,
                ..medbot::llm::EngineOptions::new(&path)
            })
            .await?;
            let generator =
                medbot::llm::EngineGenerator::new(engine, medbot::llm::SamplingParams::default());
            anyhow::Ok(medbot::bench::run_concurrent(&generator, n, run.new_tokens).await)
        })?);
    }
    Ok(report)
}

/// Fixes the model's CPU threads: `explicit`, else CANDLE_NUM_THREADS, else every core but one
/// (at least one). Must run before any other thread exists.
///
/// One core is left to the bot and PostgreSQL: on a 2-core machine with the CPU saturated, one
/// model thread showed ordinary patients their first text after 8.7 s (median of 20), two after
/// 23.0 s (median of 10), because candle's pool spins against everything else.
fn configure_model_threads(explicit: Option<usize>) -> usize {
    let threads = explicit
        .or_else(|| {
            std::env::var("CANDLE_NUM_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).max(1))
                .unwrap_or(1)
        });
    // SAFETY: called from main before the async runtime (or any other thread) is started.
    unsafe { std::env::set_var("CANDLE_NUM_THREADS", threads.to_string()) };
    medbot::llm::configure_threads(threads)
}

/// One line on standard error; configuration problems exit with 2, everything else with 1.
fn report(error: &anyhow::Error) -> ExitCode {
    if let Some(e) = error.downcast_ref::<ConfigError>() {
        eprintln!("medbot: configuration error: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if let Some(e) = error.downcast_ref::<UnlockError>()
        && !matches!(e, UnlockError::Storage(_))
    {
        eprintln!("medbot: configuration error: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    eprintln!("medbot: error: {error:#}");
    ExitCode::FAILURE
}
