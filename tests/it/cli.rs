//! The `medbot` binary as an operator uses it: exit codes, one-line errors, admin subcommands.

use std::os::unix::fs::PermissionsExt;

use medbot::crypto::MasterKey;
use medbot::domain::{Role, TelegramChatId, TelegramUserId};
use medbot::storage::Store;

use crate::helpers::*;

fn assert_config_error(output: &std::process::Output, expected_start: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected, got: {err}"
    );
    assert!(
        err.starts_with(&format!("medbot: configuration error: {expected_start}")),
        "got: {err}"
    );
}

#[test]
fn missing_database_url_is_one_clear_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_medbot(&["migrate"], &[], dir.path());
    assert_config_error(&out, "DATABASE_URL: is not set");
}

#[test]
fn a_31_byte_master_key_is_refused_without_printing_it() {
    let dir = tempfile::tempdir().unwrap();
    use base64::Engine as _;
    let short = base64::engine::general_purpose::STANDARD.encode([5u8; 31]);
    let out = run_medbot(
        &["patient", "export", "tg:1"],
        &[
            (
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            ("MEDBOT_MASTER_KEY", &short),
        ],
        dir.path(),
    );
    assert_config_error(&out, "MEDBOT_MASTER_KEY: the key is 31 bytes long");
    assert!(!stderr(&out).contains(&short));
}

#[test]
fn a_non_numeric_doctor_chat_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_medbot(
        &["check"],
        &[
            ("TELOXIDE_TOKEN", "123456:secret-token-value"),
            ("DOCTOR_CHAT_ID", "our-doctors"),
            ("DOCTOR_IDS", "111"),
        ],
        dir.path(),
    );
    assert_config_error(&out, "DOCTOR_CHAT_ID: \"our-doctors\" is not a number");
    assert!(!stderr(&out).contains("secret-token-value"));
}

#[test]
fn a_malformed_dotenv_file_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "# settings\nDATABASE_URL postgres://x\n",
    )
    .unwrap();
    let out = run_medbot(&["migrate"], &[], dir.path());
    assert_config_error(&out, ".env: line");
}

#[tokio::test]
async fn migrate_applies_reports_and_is_harmless_twice() {
    let (url, _db) = empty_database().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", url.expose())];
    let status = run_medbot(&["migrate", "--status"], &env, dir.path());
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        stdout(&status).lines().all(|l| l.starts_with("pending")),
        "{}",
        stdout(&status)
    );

    let first = run_medbot(&["migrate"], &env, dir.path());
    assert!(first.status.success(), "{}", stderr(&first));
    let every = format!(
        "Applied {} migration(s)",
        medbot::storage::MIGRATOR.iter().count()
    );
    assert!(stdout(&first).contains(&every), "{}", stdout(&first));
    let second = run_medbot(&["migrate"], &env, dir.path());
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(stdout(&second).contains("Applied 0 migration(s)"));

    let status = run_medbot(&["migrate", "--status"], &env, dir.path());
    let listed = stdout(&status);
    assert!(
        listed.lines().count() >= 1 && listed.lines().all(|l| l.starts_with("applied")),
        "{listed}"
    );
    assert!(listed.contains("initial schema"));
}

#[tokio::test]
async fn the_wrong_master_key_stops_the_binary_with_exit_2() {
    let t = test_store(21).await;
    t.store
        .register_patient(TelegramUserId(1), TelegramChatId(1), None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = key_base64(22);
    let out = run_medbot(
        &["patient", "export", "tg:1"],
        &[
            ("DATABASE_URL", t.url.expose()),
            ("MEDBOT_MASTER_KEY", &wrong),
        ],
        dir.path(),
    );
    assert_config_error(
        &out,
        "MEDBOT_MASTER_KEY does not match this database's master key",
    );
}

#[tokio::test]
async fn keys_generate_rotate_export_and_erase_through_the_binary() {
    let t = test_store(23).await;
    let p = t
        .store
        .register_patient(TelegramUserId(2323), TelegramChatId(2323), Some("zh"))
        .await
        .unwrap()
        .id;
    t.store
        .append_message(p, Role::Patient, &"我头疼".into())
        .await
        .unwrap();
    t.store
        .append_message(p, Role::Assistant, &"How long has it hurt?".into())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    // keys generate: printed, and to a private file.
    let printed = run_medbot(&["keys", "generate"], &[], dir.path());
    assert!(printed.status.success());
    MasterKey::from_base64(stdout(&printed).trim()).expect("a valid key is printed");
    let key_file = dir.path().join("new.key");
    let out = run_medbot(
        &["keys", "generate", "--output", key_file.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // It refuses to overwrite an existing key file.
    let again = run_medbot(
        &["keys", "generate", "--output", key_file.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert_eq!(again.status.code(), Some(1));

    let old_key = key_base64(23);
    let rotate = run_medbot(
        &[
            "keys",
            "rotate",
            "--new-key-file",
            key_file.to_str().unwrap(),
        ],
        &[
            ("DATABASE_URL", t.url.expose()),
            ("MEDBOT_MASTER_KEY", &old_key),
        ],
        dir.path(),
    );
    assert!(rotate.status.success(), "{}", stderr(&rotate));
    assert!(stdout(&rotate).contains("Rotated 1 patient key(s) from master key version 1 to 2"));

    let new_env = [
        ("DATABASE_URL", t.url.expose()),
        ("MEDBOT_MASTER_KEY_FILE", key_file.to_str().unwrap()),
    ];
    let export = run_medbot(&["patient", "export", "tg:2323"], &new_env, dir.path());
    assert!(export.status.success(), "{}", stderr(&export));
    let json: serde_json::Value = serde_json::from_str(&stdout(&export)).unwrap();
    assert_eq!(json["patient_id"], p.0.to_string());
    assert_eq!(json["messages"][0]["text"], "我头疼");
    assert_eq!(json["messages"][1]["role"], "assistant");
    assert_eq!(json["telegram_user_id"], 2323);

    let old_export = run_medbot(
        &["patient", "export", "tg:2323"],
        &[
            ("DATABASE_URL", t.url.expose()),
            ("MEDBOT_MASTER_KEY", &old_key),
        ],
        dir.path(),
    );
    assert_config_error(
        &old_export,
        "MEDBOT_MASTER_KEY is master key version 1, retired",
    );

    // Erase without --yes and without a terminal is refused; with --yes it erases.
    let refused = run_medbot(&["patient", "erase", &p.reference()], &new_env, dir.path());
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("add --yes"));
    let erase = run_medbot(
        &["patient", "erase", &p.reference(), "--yes"],
        &new_env,
        dir.path(),
    );
    assert!(erase.status.success(), "{}", stderr(&erase));
    let gone = run_medbot(
        &["patient", "export", &p.0.to_string()],
        &new_env,
        dir.path(),
    );
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("no patient matches"),
        "{}",
        stderr(&gone)
    );

    let verify = run_medbot(&["audit", "verify"], &new_env, dir.path());
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(stdout(&verify).contains("hash chain verified"));
    let store = Store::unlock(
        &t.db,
        medbot::config::read_master_key_file(&key_file).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(store.master_key_version(), 2);
}

#[test]
fn triage_reads_one_case_from_stdin_and_prints_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    for (text, level, reason) in [
        (
            "crushing chest pain down my left arm, sweating",
            "emergency",
            "chest_pain_with_danger_signs",
        ),
        (
            "孩子喘不过气，嘴唇发紫",
            "emergency",
            "severe_breathing_difficulty",
        ),
        (
            "no chest pain, just a runny nose",
            "self_care",
            "no_warning_signs_found",
        ),
    ] {
        let out = run_medbot_with_input(&["triage"], &[], dir.path(), text);
        assert!(out.status.success(), "{}", stderr(&out));
        let printed = stdout(&out);
        assert_eq!(printed.lines().count(), 1, "{printed}");
        let json: serde_json::Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(json["level"], level, "{text}: {json}");
        assert!(
            json["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == reason),
            "{text}: {json}"
        );
    }
}

#[tokio::test]
async fn check_loads_the_model_and_has_it_write_and_names_model_path_when_it_cannot() {
    let t = test_store(171).await;
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny.gguf");
    crate::tiny_model::TinyModel::default().write(&tiny);
    let broken = dir.path().join("broken.gguf");
    std::fs::write(&broken, b"GGUF but not really a model").unwrap();
    let key = key_base64(171);
    let run = |model: &std::path::Path| {
        run_medbot(
            &["check"],
            &[
                ("TELOXIDE_TOKEN", "123456:secret-token-value"),
                ("DOCTOR_CHAT_ID", "-100123"),
                ("DOCTOR_IDS", "111"),
                ("DATABASE_URL", t.url.expose()),
                ("MEDBOT_MASTER_KEY", &key),
                ("MODEL_PATH", model.to_str().unwrap()),
                ("CANDLE_NUM_THREADS", "1"),
            ],
            dir.path(),
        )
    };
    let good = run(&tiny);
    assert!(good.status.success(), "{}", stderr(&good));
    assert!(
        stdout(&good).contains("model:      ok"),
        "{}",
        stdout(&good)
    );
    assert!(stdout(&good).contains("generated"), "{}", stdout(&good));
    assert_config_error(&run(&broken), "MODEL_PATH:");
}
