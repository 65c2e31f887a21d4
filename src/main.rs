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
        | Command::Assessment { .. } => "warn",
        _ => "warn,medbot=info",
    });
    match cli.command {
        Command::Triage { jsonl, data } => {
            return medbot::terminal::triage::run(jsonl, data.as_deref());
        }
        Command::Assessment { command } => return medbot::terminal::triage::assessment(command),
        _ => {}
    }
    if let Command::Bench {
        prompt_tokens,
        new_tokens,
        threads,
        model,
        json,
        requantize,
    } = cli.command
    {
        return bench(prompt_tokens, new_tokens, threads, model, json, requantize);
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
        Command::Bench { .. } | Command::Triage { .. } | Command::Assessment { .. } => {
            unreachable!("handled before the runtime starts")
        }
    }
}

/// Runs before any runtime thread exists: the thread count must be fixed before candle starts.
fn bench(
    prompt_tokens: usize,
    new_tokens: usize,
    threads: Option<usize>,
    model: Option<std::path::PathBuf>,
    json: bool,
    requantize: Option<medbot::llm::Requantize>,
) -> ExitCode {
    let threads = configure_model_threads(threads);
    let path = model.unwrap_or_else(medbot::bench::default_model);
    let requantize = match requantize
        .map(Ok)
        .unwrap_or_else(|| config::requantize(&ProcessEnv))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("medbot: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match medbot::bench::run(&path, prompt_tokens, new_tokens, threads, requantize) {
        Ok(report) if json => {
            println!("{}", serde_json::to_string(&report).expect("plain struct"));
            ExitCode::SUCCESS
        }
        Ok(r) => {
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
            ExitCode::SUCCESS
        }
        Err(e) => report(&e.into()),
    }
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
