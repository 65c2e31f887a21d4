//! The operator's subcommands: migrations, keys, patient export and erasure, audit checks.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;

use crate::cli::{AuditCommand, KeysCommand, PatientCommand};
use crate::config::{self, Env};
use crate::crypto::MasterKey;
use crate::storage::{Actor, Database, Store, rotate_master_key};

pub async fn migrate(env: &dyn Env, status_only: bool) -> anyhow::Result<()> {
    let url = config::database_url(env)?;
    let db = Database::connect(&url).await?;
    let status = if status_only {
        db.migration_status().await?
    } else {
        let before = db.migration_status().await?;
        let after = db.migrate().await.context("Failed to apply migrations")?;
        let newly = after
            .iter()
            .filter(|m| m.applied && !before.iter().any(|b| b.version == m.version && b.applied))
            .count();
        println!("Applied {newly} migration(s); the database is up to date.");
        after
    };
    for m in &status {
        println!(
            "{:<8} {} {}",
            if m.applied { "applied" } else { "pending" },
            m.version,
            m.description
        );
    }
    Ok(())
}

pub async fn keys(env: &dyn Env, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate { output } => {
            let key = MasterKey::generate()?;
            match output {
                Some(path) => {
                    write_private_file(&path, key.to_base64().expose_secret().as_bytes())?;
                    eprintln!(
                        "Wrote a new master key to {}. Keep a copy somewhere safe: without it no patient data can be read.",
                        path.display()
                    );
                }
                None => println!("{}", key.to_base64().expose_secret()),
            }
            Ok(())
        }
        KeysCommand::Rotate { new_key_file } => {
            let old = config::master_key(env)?;
            let new = config::read_master_key_file(&new_key_file)
                .map_err(|e| anyhow::anyhow!("--new-key-file: {}", e.problem))?;
            let db = Database::connect(&config::database_url(env)?).await?;
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "re-wrapping patient keys {bar:30} {pos}/{len}",
                )
                .expect("static template"),
            );
            let report = rotate_master_key(&db, &old, &new, |p| {
                bar.set_length(p.total);
                bar.set_position(p.done);
                ControlFlow::Continue(())
            })
            .await?;
            bar.finish_and_clear();
            println!(
                "Rotated {} patient key(s) from master key version {} to {}.",
                report.patient_keys, report.from_version, report.to_version
            );
            println!(
                "Now point MEDBOT_MASTER_KEY (or MEDBOT_MASTER_KEY_FILE) at the new key and restart medbot; \
                 the old key no longer opens this database."
            );
            Ok(())
        }
    }
}

/// Validates every setting the bot needs, in the order an admin would fix them, and reports each.
pub async fn check(env: &dyn Env) -> anyhow::Result<()> {
    let telegram = config::telegram(env)?;
    let key = config::master_key(env)?;
    let url = config::database_url(env)?;
    let remote = config::remote_generator(env)?;
    println!(
        "settings:   ok (doctor chat {}, {} doctor(s){})",
        telegram.doctor_chat.0,
        telegram.doctors.len(),
        telegram
            .api_url
            .as_ref()
            .map(|u| format!(", Bot API at {u}"))
            .unwrap_or_default()
    );
    let db = Database::connect(&url).await?;
    db.ensure_migrated().await?;
    println!("database:   ok ({})", url.redacted());
    let store = Store::unlock(&db, key).await?;
    println!("master key: ok (version {})", store.master_key_version());
    match remote {
        Some(settings) => check_remote_generator(settings).await,
        None => check_local_model(env).await,
    }
}

/// The inference server answers, serves the model, accepts the key, and streams an answer.
async fn check_remote_generator(
    settings: crate::llm::remote::RemoteSettings,
) -> anyhow::Result<()> {
    use crate::consult::{DraftEvent, Generator};
    use crate::context::{PromptMessage, PromptRole};

    let url = settings.url.clone();
    let generator = crate::llm::remote::RemoteGenerator::connect(settings).await?;
    let started = std::time::Instant::now();
    let prompt = vec![PromptMessage::new(PromptRole::User, "Say hello.")];
    let mut events = generator.generate(prompt, 8).await.map_err(|e| {
        anyhow::anyhow!(
            "{}: the server did not start an answer: {e}",
            config::GENERATOR_URL
        )
    })?;
    let mut written = None;
    while let Some(event) = events.recv().await {
        match event
            .map_err(|e| anyhow::anyhow!("{}: the answer failed: {e}", config::GENERATOR_URL))?
        {
            DraftEvent::Finished(draft) => written = Some(draft),
            DraftEvent::Piece { .. } => {}
        }
    }
    let Some(draft) = written else {
        bail!(
            "{}: the server's answer never finished",
            config::GENERATOR_URL
        );
    };
    println!(
        "generator:  ok ({} at {url}; {} context tokens; counts from {}; log-probabilities: {}; \
         wrote {} characters in {} ms)",
        generator.model(),
        generator.context_tokens(),
        generator.count_source(),
        if generator.knows_confidence() {
            "yes"
        } else {
            "no, every draft goes to a doctor"
        },
        draft.text.chars().count(),
        started.elapsed().as_millis()
    );
    Ok(())
}

/// The local model loads and writes a few tokens.
async fn check_local_model(env: &dyn Env) -> anyhow::Result<()> {
    let model = config::model_path(env);
    if !model.is_file() {
        return Err(config::ConfigError {
            variable: config::MODEL_PATH,
            problem: format!(
                "{} does not exist (run models/fetch, or point MODEL_PATH at a GGUF file)",
                model.display()
            ),
        }
        .into());
    }
    // Loaded and asked for a few tokens: a model that loads but whose inference thread dies (a
    // broken file, an unsupported layout, an instruction set the CPU lacks) fails here, not on
    // a patient's question.
    let engine = crate::llm::Engine::start(crate::llm::EngineOptions {
        requantize: config::requantize(env)?,
        ..crate::llm::EngineOptions::new(&model)
    })
    .await
    .map_err(|e| config::ConfigError {
        variable: config::MODEL_PATH,
        problem: format!("{} does not load: {e}", model.display()),
    })?;
    let started = std::time::Instant::now();
    let written = engine
        .generate(crate::llm::GenerationRequest {
            messages: vec![crate::llm::ChatMessage::user("Say hello.")],
            params: crate::llm::SamplingParams::default(),
            max_new_tokens: 4,
        })
        .await
        .map_err(|e| config::ConfigError {
            variable: config::MODEL_PATH,
            problem: format!("{} loads but does not generate: {e}", model.display()),
        })?;
    println!(
        "model:      ok ({}, {}; generated {} token(s) in {} ms)",
        model.display(),
        engine.model_name(),
        written.tokens.len(),
        started.elapsed().as_millis()
    );
    Ok(())
}

async fn open_store(env: &dyn Env) -> anyhow::Result<Store> {
    let key = config::master_key(env)?;
    let db = Database::connect(&config::database_url(env)?).await?;
    Ok(Store::unlock(&db, key).await?)
}

pub async fn patient(env: &dyn Env, command: PatientCommand) -> anyhow::Result<()> {
    let store = open_store(env).await?;
    match command {
        PatientCommand::Export { patient, output } => {
            let id = store.resolve_patient(&patient).await?;
            let export = store.export_patient(id, Actor::Admin).await?;
            let json = serde_json::to_string_pretty(&export)?;
            match output {
                Some(path) => {
                    write_private_file(&path, json.as_bytes())?;
                    eprintln!(
                        "Exported {} message(s) of {} to {}.",
                        export.messages.len(),
                        export.reference,
                        path.display()
                    );
                }
                None => println!("{json}"),
            }
        }
        PatientCommand::Erase { patient, yes } => {
            let id = store.resolve_patient(&patient).await?;
            if !yes {
                confirm(&format!(
                    "Erase every message and record of patient {}? This cannot be undone. Type 'erase' to confirm: ",
                    id.reference()
                ))?;
            }
            store.erase_patient(id, Actor::Admin).await?;
            println!(
                "Erased patient {}: their data key is destroyed and their rows deleted.",
                id.reference()
            );
        }
    }
    Ok(())
}

pub async fn audit(env: &dyn Env, command: AuditCommand) -> anyhow::Result<()> {
    let store = open_store(env).await?;
    match command {
        AuditCommand::Verify => {
            let report = store.verify_audit_log().await?;
            match report.first_broken_seq {
                None => println!(
                    "Audit log intact: {} entries, hash chain verified.",
                    report.rows
                ),
                Some(seq) => bail!(
                    "the audit log was altered: entry {seq} does not match the hash chain ({} entries checked)",
                    report.rows
                ),
            }
        }
        AuditCommand::Tail { limit } => {
            for row in store.recent_audit(limit).await? {
                println!("{}", serde_json::to_string(&row)?);
            }
        }
    }
    Ok(())
}

fn confirm(prompt: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("refusing to erase without confirmation: add --yes when not running at a terminal");
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != "erase" {
        bail!("not confirmed; nothing was erased");
    }
    Ok(())
}

/// Writes a file only its owner can read (keys, exports). Refuses to overwrite.
pub fn write_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("Failed to create {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("Failed to write {}", path.display()))
}
