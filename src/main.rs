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
    telemetry::init("warn,medbot=info");
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
    }
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
