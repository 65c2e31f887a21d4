//! The composition root: builds medbot's parts from the configuration, for the commands that run
//! the consultation (`chat`, `review`, and the bot). Tests build the same parts with doubles.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::admin::write_private_file;
use crate::assessment::SharedKnowledge;
use crate::config::{self, Env};
use crate::consult::ServiceSettings;
use crate::crypto::MasterKey;
use crate::llm::{ConfiguredGenerator, Engine, EngineGenerator, EngineOptions, SamplingParams};
use crate::storage::{Database, Store};
use crate::triage::{DraftReviewer, DrugLexicon};

/// Whether a command may create the local master key when none is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKey {
    /// `medbot chat`: a first run on a fresh machine must just work.
    CreateIfMissing,
    /// `medbot review`: use the key `chat` created, never a new one (it would not open the data).
    UseExisting,
}

/// The database for the terminal commands: `DATABASE_URL` or the local default, created and
/// migrated when needed, unlocked with the configured master key or the local key file.
///
/// # Errors
/// When PostgreSQL cannot be reached, migrations fail, or the key is missing or wrong.
pub async fn open_local_store(env: &dyn Env, local_key: LocalKey) -> anyhow::Result<Store> {
    let url = config::database_url_or_default(env)?;
    let db = Database::connect_or_create(&url).await?;
    db.migrate()
        .await
        .with_context(|| format!("Failed to migrate {}", url.redacted()))?;
    let (key, local) = match config::master_key_if_set(env)? {
        Some(key) => (key, false),
        None => (local_master_key(env, local_key)?, true),
    };
    match Store::unlock(&db, key).await {
        Err(
            crate::storage::UnlockError::WrongKey { .. }
            | crate::storage::UnlockError::RetiredKey { .. },
        ) if local => {
            bail!(
                "the database {} was set up with another master key than the local one in {}; \
                 set MEDBOT_MASTER_KEY_FILE to the key it was set up with, or DATABASE_URL to another database",
                url.redacted(),
                config::data_dir(env)?.join("master.key").display()
            )
        }
        other => Ok(other?),
    }
}

/// The master key kept in the data folder for machines where none is configured.
fn local_master_key(env: &dyn Env, mode: LocalKey) -> anyhow::Result<MasterKey> {
    let dir = config::data_dir(env)?;
    let path = dir.join("master.key");
    if path.exists() {
        return Ok(config::read_master_key_file(&path)?);
    }
    if mode == LocalKey::UseExisting {
        bail!(
            "no master key is configured (MEDBOT_MASTER_KEY or MEDBOT_MASTER_KEY_FILE) and there is no local key at {}; \
             run `medbot chat` first or configure the key the data was written with",
            path.display()
        );
    }
    create_private_dir(&dir)?;
    let key = MasterKey::generate()?;
    write_private_file(
        &path,
        secrecy::ExposeSecret::expose_secret(&key.to_base64()).as_bytes(),
    )?;
    eprintln!(
        "WARNING: no master key was configured, so medbot created one at {} (mode 0600).\n\
         Every patient's data in this database is encrypted under it: back it up, and for a real\n\
         deployment set MEDBOT_MASTER_KEY_FILE to a key kept outside the machine's home folder.",
        path.display()
    );
    Ok(key)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("Failed to create {}", dir.display()))
}

/// Makes sure a data file fetched by one of the scripts in models/ is present: when the default
/// file is missing, runs the script (its progress goes to standard error). A configured path that
/// does not exist is an error, never a download.
///
/// # Errors
/// When the file is missing and cannot be fetched.
pub fn ensure_fetched(path: &Path, default: &str, script: &str, what: &str) -> anyhow::Result<()> {
    if path.is_file() {
        return Ok(());
    }
    if path != Path::new(default) {
        bail!("{what} {} does not exist", path.display());
    }
    if !Path::new(script).is_file() {
        bail!(
            "{what} {} is missing and {script} is not here to fetch it; run medbot from the repository folder",
            path.display()
        );
    }
    eprintln!(
        "{what} not found at {}; fetching it with {script} (once; it is kept for later runs)...",
        path.display()
    );
    let status = Command::new(script)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("Failed to run {script}"))?;
    if !status.success() || !path.is_file() {
        bail!("{script} did not fetch the {what} ({status})");
    }
    Ok(())
}

/// The generator the configuration asks for: the inference server at `GENERATOR_URL`, else the
/// local model (fetching the default one when it is missing) on the in-process engine.
///
/// # Errors
/// The server cannot be used (the message names the setting), or the model is missing or does
/// not load.
pub async fn start_generator(env: &dyn Env) -> anyhow::Result<ConfiguredGenerator> {
    if let Some(settings) = config::remote_generator(env)? {
        let remote = crate::llm::remote::RemoteGenerator::connect(settings).await?;
        return Ok(ConfiguredGenerator::Remote(remote));
    }
    let local = start_local_generator(env).await?;
    Ok(ConfiguredGenerator::Local(Box::new(local)))
}

async fn start_local_generator(env: &dyn Env) -> anyhow::Result<EngineGenerator> {
    let path = config::model_path(env);
    ensure_fetched(&path, config::DEFAULT_MODEL_PATH, "models/fetch", "model")?;
    let options = EngineOptions {
        requantize: config::requantize(env)?,
        ..EngineOptions::new(&path)
    };
    let engine = Engine::start(options)
        .await
        .with_context(|| format!("Failed to load the model {}", path.display()))?;
    Ok(EngineGenerator::new(engine, SamplingParams::default()))
}

/// The draft reviewer with the drug dictionary (fetched when the default one is missing).
///
/// # Errors
/// When the dictionary is missing or unreadable: drafts cannot be reviewed without it.
pub fn load_reviewer(env: &dyn Env) -> anyhow::Result<DraftReviewer> {
    let path = config::drug_lexicon_path(env);
    ensure_fetched(
        &path,
        config::DEFAULT_DRUG_LEXICON_PATH,
        "models/fetch-drug-lexicon",
        "drug dictionary",
    )?;
    let lexicon = DrugLexicon::load(&path)
        .with_context(|| format!("Failed to load the drug dictionary {}", path.display()))?;
    Ok(DraftReviewer::new(lexicon))
}

/// The service's settings from the environment.
///
/// # Errors
/// A malformed `MEDBOT_REVIEW_TIMEOUT_MINUTES`, `MEDBOT_COMPOSE_ANSWERS` or `MEDBOT_ANSWER_DEADLINE_S`.
pub fn service_settings(env: &dyn Env) -> Result<ServiceSettings, config::ConfigError> {
    Ok(ServiceSettings {
        review_timeout: config::review_timeout(env)?,
        compose_symptom_answers: config::compose_answers(env)?,
        answer_deadline: config::answer_deadline(env)?,
        ..ServiceSettings::default()
    })
}

/// The clinical knowledge to assess with: `MEDBOT_CLINICAL_DATA` (checked now, and watched for
/// changes every 30 s) or the built-in set.
///
/// # Errors
/// The folder's files are invalid; the message names the file and field.
pub fn clinical_knowledge(env: &dyn Env) -> anyhow::Result<std::sync::Arc<SharedKnowledge>> {
    let Some(folder) = config::clinical_data(env) else {
        return Ok(SharedKnowledge::builtin());
    };
    let shared = SharedKnowledge::from_dir(folder)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config::MEDBOT_CLINICAL_DATA))?;
    tokio::spawn(std::sync::Arc::clone(&shared).watch(std::time::Duration::from_secs(30)));
    Ok(shared)
}

/// `medbot serve`: checks the token, the database, the key, the model and the doctors' chat (saying
/// which one is wrong), then runs the bot until Ctrl-C or SIGTERM, finishing work in hand.
///
/// # Errors
/// The first setting that is wrong, or a failure while starting.
pub async fn serve(env: &dyn Env) -> anyhow::Result<()> {
    use std::sync::Arc;

    use teloxide::prelude::Requester;

    use crate::telegram::{self, BotContext};

    let settings = config::telegram(env)?;
    // Bound before anything slow, so that a port in use is reported at once.
    let metrics_listener = match config::metrics_listen(env)? {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("{}: cannot listen on {addr}: {e}", config::METRICS_LISTEN)
        })?),
        None => None,
    };
    let bot = telegram::bot(&settings);
    let me = bot.get_me().await.map_err(|e| {
        anyhow::anyhow!("TELOXIDE_TOKEN: Telegram did not accept the token (getMe: {e})")
    })?;
    let url = config::database_url(env)?;
    let db = Database::connect(&url).await?;
    db.ensure_migrated().await?;
    let store = Store::unlock(&db, config::master_key(env)?).await?;
    let membership = bot
        .get_chat_member(teloxide::types::ChatId(settings.doctor_chat.0), me.id)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "DOCTOR_CHAT_ID: the bot cannot see chat {} ({e}); add the bot to the doctors' group",
                settings.doctor_chat.0
            )
        })?;
    if !membership.is_present() {
        bail!(
            "DOCTOR_CHAT_ID: the bot is not a member of chat {}; add it to the doctors' group",
            settings.doctor_chat.0
        );
    }
    let reviewer = std::sync::Arc::new(load_reviewer(env)?);
    let generator = Arc::new(start_generator(env).await?);
    telegram::register_commands(&bot)
        .await
        .context("Failed to register the bot's commands")?;
    let knowledge = knowledge_source(env, &store).await;
    let context = Arc::new(
        BotContext::new(
            generator,
            store,
            reviewer,
            service_settings(env)?,
            knowledge,
            &settings,
        )
        .with_clinical_knowledge(clinical_knowledge(env)?),
    );
    tracing::info!(bot = %me.username(), "medbot is serving");
    eprintln!("medbot is serving as @{}. Ctrl-C to stop.", me.username());
    let mut running = telegram::start(bot, context.clone());
    if let Some(listener) = metrics_listener {
        if let Ok(addr) = listener.local_addr() {
            eprintln!("Health and metrics: http://{addr}/healthz and http://{addr}/metrics");
        }
        running.serve_health(listener, context);
    }
    tokio::select! {
        () = shutdown_signal() => {}
        ended = running.ended() => {
            tracing::error!(what = %ended, "a part of the bot ended unexpectedly; exiting so that it is restarted");
            running.abort();
            bail!("{ended} unexpectedly; exiting so that the service manager restarts medbot");
        }
    }
    eprintln!("Stopping: finishing the messages in hand...");
    running.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// The knowledge base on the database (created and migrated when needed; no master key: it holds
/// no patient data), with the embedding model fetched when the default one is missing.
///
/// # Errors
/// The database or the model.
pub async fn knowledge_base(env: &dyn Env) -> anyhow::Result<crate::knowledge::KnowledgeBase> {
    let url = config::database_url_or_default(env)?;
    let db = Database::connect_or_create(&url).await?;
    db.migrate()
        .await
        .with_context(|| format!("Failed to migrate {}", url.redacted()))?;
    let dir = config::embedder_path(env);
    let marker = dir.join("model.safetensors");
    let default_marker = Path::new(config::DEFAULT_EMBEDDER_PATH).join("model.safetensors");
    ensure_fetched(
        &marker,
        &default_marker.to_string_lossy(),
        "models/fetch-embedder",
        "embedding model",
    )?;
    open_knowledge(db, dir).await
}

async fn open_knowledge(
    db: Database,
    embedder_dir: std::path::PathBuf,
) -> anyhow::Result<crate::knowledge::KnowledgeBase> {
    let embedder =
        tokio::task::spawn_blocking(move || crate::knowledge::Embedder::load(&embedder_dir))
            .await
            .context("the embedding model's loader stopped")??;
    Ok(crate::knowledge::KnowledgeBase::new(
        db,
        std::sync::Arc::new(embedder),
    ))
}

/// The knowledge base for answers, on the store's own database, when documents have been imported
/// there and the embedding model is here; `None` (answers go ahead without sources) otherwise.
/// The model is loaded only when there is something to search.
pub async fn knowledge_source(
    env: &dyn Env,
    store: &Store,
) -> Option<std::sync::Arc<dyn crate::consult::KnowledgeSource>> {
    let dir = config::embedder_path(env);
    if !dir.join("model.safetensors").is_file() {
        return None;
    }
    let db = Database::from_pool(store.pool().clone());
    match db.kb_documents().await {
        Ok(documents) if documents.iter().any(|d| !d.retired) => {}
        _ => return None,
    }
    match open_knowledge(db, dir).await {
        Ok(base) => Some(std::sync::Arc::new(crate::knowledge::CachedKnowledge::new(
            base,
        ))),
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "answering without the knowledge base"
            );
            None
        }
    }
}

/// `medbot kb ...`.
///
/// # Errors
/// The database, the model, or an unreadable folder.
pub async fn kb(env: &dyn Env, command: crate::cli::KbCommand) -> anyhow::Result<()> {
    use crate::cli::KbCommand;
    let base = knowledge_base(env).await?;
    match command {
        KbCommand::Import {
            folder,
            retire_missing,
        } => {
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} documents ({elapsed}, {eta} left)",
                )
                .expect("a valid template"),
            );
            let started = std::time::Instant::now();
            let report = base
                .import(&folder, retire_missing, &mut |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })
                .await?;
            bar.finish_and_clear();
            for skipped in &report.skipped {
                eprintln!("skipped {skipped}");
            }
            println!(
                "Imported {} new and {} changed document(s) ({} passages); {} unchanged; {} retired; {:.1} s.",
                report.added,
                report.replaced,
                report.passages,
                report.unchanged,
                report.retired,
                started.elapsed().as_secs_f64()
            );
        }
        KbCommand::List => {
            let documents = base.documents().await?;
            for d in &documents {
                println!(
                    "{}{:>4} passages  {}  [{}]  {}",
                    if d.retired { "(retired) " } else { "" },
                    d.passages,
                    d.title,
                    d.source.as_deref().unwrap_or("no source"),
                    d.path
                );
            }
            println!("{} document(s).", documents.len());
        }
        KbCommand::Search { query, top } => {
            let loaded = base.load().await?;
            if loaded.is_empty() {
                bail!(
                    "the knowledge base is empty; import documents first (models/fetch-knowledge && medbot kb import models/knowledge)"
                );
            }
            for found in loaded.search(&query, top).await? {
                println!(
                    "{:.3}  {} — {}  [{}]
       {}
",
                    found.score,
                    found.title,
                    found.heading,
                    found.source.as_deref().unwrap_or("no source"),
                    found
                        .text
                        .chars()
                        .take(240)
                        .collect::<String>()
                        .replace('\n', " ")
                );
            }
        }
    }
    Ok(())
}
