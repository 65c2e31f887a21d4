//! Shared test setup: a fresh migrated database per test, keys, and running the real binary.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use medbot::config::DatabaseUrl;
use medbot::crypto::MasterKey;
use medbot::storage::{Database, Store};

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        medbot::telemetry::init("debug,sqlx=warn");
    }
}

fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A new, empty database (no migrations) on the test server.
pub async fn empty_database() -> (DatabaseUrl, Database) {
    init_logs();
    let server = DatabaseUrl::parse(&server_url()).expect("TEST_DATABASE_URL is a postgres URL");
    let name = format!("medbot_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(&server)
        .await
        .expect("test PostgreSQL is reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await
        .expect("create test database");
    admin.pool().close().await;
    let url = server.with_database(&name);
    let db = Database::connect(&url)
        .await
        .expect("connect to test database");
    (url, db)
}

/// The URL of a database that does not exist yet (for the commands that create their own).
pub fn unused_database_url() -> DatabaseUrl {
    init_logs();
    let server = DatabaseUrl::parse(&server_url()).expect("TEST_DATABASE_URL is a postgres URL");
    server.with_database(&format!("medbot_test_{}", uuid::Uuid::new_v4().simple()))
}

/// A new database with every migration applied.
pub async fn migrated_database() -> (DatabaseUrl, Database) {
    let (url, db) = empty_database().await;
    db.migrate().await.expect("migrations apply");
    (url, db)
}

pub fn key_from_byte(b: u8) -> MasterKey {
    MasterKey::from_base64(&key_base64(b)).unwrap()
}

pub fn key_base64(b: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([b; 32])
}

/// A migrated database unlocked with the master key made of `key_byte`.
pub struct TestStore {
    pub url: DatabaseUrl,
    pub db: Database,
    pub store: Store,
}

pub async fn test_store(key_byte: u8) -> TestStore {
    let (url, db) = migrated_database().await;
    let store = Store::unlock(&db, key_from_byte(key_byte))
        .await
        .expect("unlock");
    TestStore { url, db, store }
}

/// Runs the medbot binary with exactly `env` (plus PATH), in an empty directory so that no `.env`
/// from the repository leaks in.
pub fn run_medbot(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    medbot_command(args, env, dir).output().expect("run medbot")
}

/// As [`run_medbot`], with `input` on standard input.
pub fn run_medbot_with_input(
    args: &[&str],
    env: &[(&str, &str)],
    dir: &Path,
    input: &str,
) -> Output {
    use std::io::Write as _;
    let mut child = medbot_command(args, env, dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run medbot");
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_owned();
    // Written from another thread so that a chatty child cannot deadlock on a full stdout pipe.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let output = child.wait_with_output().expect("medbot finishes");
    writer.join().expect("writer thread");
    output
}

pub fn medbot_command(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_medbot"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A plain-text dump of the whole database, as an attacker with a backup would see it.
pub fn pg_dump(url: &DatabaseUrl) -> String {
    let output = Command::new("pg_dump")
        .arg("--no-owner")
        .arg(url.expose())
        .output()
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        stderr(&output)
    );
    let dump = String::from_utf8(output.stdout).expect("dump is UTF-8");
    // pg_dump 15.14+ brackets each dump with a random \restrict token; it is not database content.
    dump.lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A short digest of a dump, so that a failing comparison does not print the whole database.
pub fn digest(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// A data file under models/, fetched by its script when missing (CI runs the scripts first).
pub fn fetched(file: &str, script: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join(file);
    if !path.is_file() {
        let status = Command::new(root.join(script))
            .current_dir(root)
            .status()
            .unwrap_or_else(|e| panic!("{script} runs: {e}"));
        assert!(status.success(), "{script} failed; the tests need {file}");
    }
    path
}

/// A TCP proxy in front of the test PostgreSQL that a test can cut: while it is down, every open
/// connection is dropped and new ones are refused, as when the database restarts.
pub struct PgOutage {
    pub url: DatabaseUrl,
    up: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PgOutage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PgOutage {
    /// A proxy to the database at `url`, up.
    pub async fn start(url: &DatabaseUrl) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let name = url.database_name().expect("a database name");
        let proxied =
            DatabaseUrl::parse(&format!("postgres://postgres@127.0.0.1:{port}/{name}")).unwrap();
        let (up, _) = tokio::sync::watch::channel(true);
        let up = std::sync::Arc::new(up);
        let state = up.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !*state.borrow() {
                    drop(client);
                    continue;
                }
                let mut down = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self {
            url: proxied,
            up,
            task,
        }
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// A registered patient who has agreed to the terms (the service refuses anyone else).
pub async fn consenting_patient(store: &Store, telegram: i64) -> medbot::domain::PatientId {
    let id = store
        .register_patient(
            medbot::domain::TelegramUserId(telegram),
            medbot::domain::TelegramChatId(telegram),
            None,
        )
        .await
        .expect("registered")
        .id;
    store.record_consent(id).await.expect("consent recorded");
    id
}
