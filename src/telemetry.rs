//! Logging: `tracing` to standard error, filtered by `RUST_LOG`, with teloxide's and sqlx's `log`
//! records bridged in. Log lines carry ids (patients as one-way tags), sizes and timings; never text.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default_filter` applies when `RUST_LOG` is unset.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // try_init: tests and embedders may have installed one already.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
}
