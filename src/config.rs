//! Settings from the environment (and an optional `.env`), validated into typed values.
//!
//! Each subcommand asks only for what it uses: `migrate` reads `DATABASE_URL` and nothing else. Every
//! problem is one [`ConfigError`] naming the variable and what is wrong with it, and never echoing a
//! secret (a database URL may hold a password; a master key is the crown jewel).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{CryptoError, MasterKey};
use crate::domain::{TelegramChatId, TelegramUserId};

pub const DATABASE_URL: &str = "DATABASE_URL";
pub const MEDBOT_MASTER_KEY: &str = "MEDBOT_MASTER_KEY";
pub const MEDBOT_MASTER_KEY_FILE: &str = "MEDBOT_MASTER_KEY_FILE";
pub const TELOXIDE_TOKEN: &str = "TELOXIDE_TOKEN";
pub const TELEGRAM_API_URL: &str = "TELEGRAM_API_URL";
pub const DOCTOR_CHAT_ID: &str = "DOCTOR_CHAT_ID";
pub const DOCTOR_IDS: &str = "DOCTOR_IDS";
pub const MODEL_PATH: &str = "MODEL_PATH";
pub const MEDBOT_DRUG_LEXICON: &str = "MEDBOT_DRUG_LEXICON";
pub const MEDBOT_REVIEW_TIMEOUT_MINUTES: &str = "MEDBOT_REVIEW_TIMEOUT_MINUTES";
pub const MEDBOT_DATA_DIR: &str = "MEDBOT_DATA_DIR";
pub const MEDBOT_REQUANTIZE: &str = "MEDBOT_REQUANTIZE";
pub const MEDBOT_EMBEDDER: &str = "MEDBOT_EMBEDDER";
pub const MEDBOT_CLINICAL_DATA: &str = "MEDBOT_CLINICAL_DATA";
pub const MEDBOT_COMPOSE_ANSWERS: &str = "MEDBOT_COMPOSE_ANSWERS";
pub const MEDBOT_ANSWER_DEADLINE_S: &str = "MEDBOT_ANSWER_DEADLINE_S";
pub const GENERATOR_URL: &str = "GENERATOR_URL";
pub const GENERATOR_MODEL: &str = "GENERATOR_MODEL";
pub const GENERATOR_API_KEY: &str = "GENERATOR_API_KEY";
pub const GENERATOR_MAX_CONCURRENCY: &str = "GENERATOR_MAX_CONCURRENCY";
pub const GENERATOR_TIMEOUT_S: &str = "GENERATOR_TIMEOUT_S";
pub const GENERATOR_TOKENIZER: &str = "GENERATOR_TOKENIZER";
pub const GENERATOR_ALLOW_INSECURE: &str = "GENERATOR_ALLOW_INSECURE";
pub const METRICS_LISTEN: &str = "METRICS_LISTEN";

/// The database `medbot chat` uses when nothing is configured.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/medbot";
/// The model models/fetch downloads.
pub const DEFAULT_MODEL_PATH: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The drug dictionary models/fetch-drug-lexicon writes.
pub const DEFAULT_DRUG_LEXICON_PATH: &str = "models/drug-lexicon.pkl";
/// The embedding model models/fetch-embedder unpacks.
pub const DEFAULT_EMBEDDER_PATH: &str = "models/all-MiniLM-L6-v2";
/// How long a draft waits for a doctor when nothing is configured.
pub const DEFAULT_REVIEW_TIMEOUT_MINUTES: i64 = 30;

/// A setting that is missing or malformed. Displays as one line: `VARIABLE: what is wrong`.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// Where settings come from. The process environment in production, a map in tests.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment, after `.env` has been loaded into it.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).map(|v| (*v).to_owned())
    }
}

/// Loads `.env` from the working directory if there is one. A file that exists but cannot be parsed is
/// an error rather than silently ignored: half-applied settings are worse than none.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(dotenvy::Error::LineParse(_, index)) => Err(ConfigError::new(
            ".env",
            format!("line {} cannot be parsed (expected NAME=value)", index + 1),
        )),
        Err(e) => Err(ConfigError::new(".env", format!("cannot be read: {e}"))),
    }
}

fn non_empty(env: &dyn Env, name: &'static str) -> Option<String> {
    env.get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn required(env: &dyn Env, name: &'static str) -> Result<String, ConfigError> {
    non_empty(env, name).ok_or_else(|| ConfigError::new(name, "is not set"))
}

/// A PostgreSQL connection URL. Its `Display` hides the password.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let url = url::Url::parse(raw).map_err(|e| {
            ConfigError::new(
                DATABASE_URL,
                format!("is not a valid URL ({e}); expected postgres://user@host:5432/database"),
            )
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(ConfigError::new(
                DATABASE_URL,
                format!(
                    "has scheme {:?}; expected postgres://user@host:5432/database",
                    url.scheme()
                ),
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The database name in the URL's path, if any.
    pub fn database_name(&self) -> Option<String> {
        let url = url::Url::parse(self.expose()).ok()?;
        let name = url.path().trim_start_matches('/');
        (!name.is_empty()).then(|| name.to_owned())
    }

    /// The same server with another database name (used to create a missing database).
    pub fn with_database(&self, name: &str) -> Self {
        let mut url = url::Url::parse(self.expose()).expect("validated at construction");
        url.set_path(name);
        Self(SecretString::from(url.to_string()))
    }

    /// host:port/database, for messages: never the user's password.
    pub fn redacted(&self) -> String {
        match url::Url::parse(self.expose()) {
            Ok(url) => format!(
                "{}:{}{}",
                url.host_str().unwrap_or("localhost"),
                url.port().unwrap_or(5432),
                url.path()
            ),
            Err(_) => "<invalid url>".to_owned(),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// `DATABASE_URL`, required.
pub fn database_url(env: &dyn Env) -> Result<DatabaseUrl, ConfigError> {
    DatabaseUrl::parse(&required(env, DATABASE_URL)?)
}

/// `DATABASE_URL`, or the local default for the terminal chat.
pub fn database_url_or_default(env: &dyn Env) -> Result<DatabaseUrl, ConfigError> {
    match non_empty(env, DATABASE_URL) {
        Some(raw) => DatabaseUrl::parse(&raw),
        None => DatabaseUrl::parse(DEFAULT_DATABASE_URL),
    }
}

/// Where the master key comes from, before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    Inline,
    File(PathBuf),
}

/// Reads the master key from `MEDBOT_MASTER_KEY` or `MEDBOT_MASTER_KEY_FILE`. `Ok(None)` when neither
/// is set, so that a caller with a safe default (the terminal chat) can choose it.
pub fn master_key_if_set(env: &dyn Env) -> Result<Option<MasterKey>, ConfigError> {
    let inline = non_empty(env, MEDBOT_MASTER_KEY);
    let file = non_empty(env, MEDBOT_MASTER_KEY_FILE);
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            MEDBOT_MASTER_KEY,
            "and MEDBOT_MASTER_KEY_FILE are both set; set only one",
        )),
        (Some(text), None) => MasterKey::from_base64(&text)
            .map(Some)
            .map_err(|e| key_error(MEDBOT_MASTER_KEY, e)),
        (None, Some(path)) => read_master_key_file(Path::new(&path)).map(Some),
        (None, None) => Ok(None),
    }
}

/// The master key, required.
pub fn master_key(env: &dyn Env) -> Result<MasterKey, ConfigError> {
    master_key_if_set(env)?.ok_or_else(|| {
        ConfigError::new(
            MEDBOT_MASTER_KEY,
            "is not set (nor MEDBOT_MASTER_KEY_FILE); create one with `medbot keys generate`",
        )
    })
}

/// Reads a key file holding the base64 key. Errors name the file, never its content.
pub fn read_master_key_file(path: &Path) -> Result<MasterKey, ConfigError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            MEDBOT_MASTER_KEY_FILE,
            format!("cannot read {}: {e}", path.display()),
        )
    })?);
    MasterKey::from_base64(&text).map_err(|e| {
        ConfigError::new(
            MEDBOT_MASTER_KEY_FILE,
            format!("{} does not hold a valid key: {e}", path.display()),
        )
    })
}

fn key_error(variable: &'static str, e: CryptoError) -> ConfigError {
    ConfigError::new(variable, e.to_string())
}

/// `MODEL_PATH`, or the default model's path.
pub fn model_path(env: &dyn Env) -> PathBuf {
    non_empty(env, MODEL_PATH)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_PATH))
}

/// `MEDBOT_DRUG_LEXICON`, or the default dictionary's path.
pub fn drug_lexicon_path(env: &dyn Env) -> PathBuf {
    non_empty(env, MEDBOT_DRUG_LEXICON)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DRUG_LEXICON_PATH))
}

/// `MEDBOT_EMBEDDER`, or the default embedding model's folder.
pub fn embedder_path(env: &dyn Env) -> PathBuf {
    non_empty(env, MEDBOT_EMBEDDER)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_EMBEDDER_PATH))
}

/// `MEDBOT_REVIEW_TIMEOUT_MINUTES`: how long a draft waits for a doctor (1 minute to 7 days).
pub fn review_timeout(env: &dyn Env) -> Result<chrono::Duration, ConfigError> {
    let Some(raw) = non_empty(env, MEDBOT_REVIEW_TIMEOUT_MINUTES) else {
        return Ok(chrono::Duration::minutes(DEFAULT_REVIEW_TIMEOUT_MINUTES));
    };
    match raw.trim().parse::<i64>() {
        Ok(minutes) if (1..=7 * 24 * 60).contains(&minutes) => {
            Ok(chrono::Duration::minutes(minutes))
        }
        _ => Err(ConfigError::new(
            MEDBOT_REVIEW_TIMEOUT_MINUTES,
            format!("must be a whole number of minutes from 1 to 10080, not {raw:?}"),
        )),
    }
}

/// `MEDBOT_ANSWER_DEADLINE_S`: how long the model may take over one answer before the draft goes
/// to a doctor (5 s to 1 hour; default 60).
pub fn answer_deadline(env: &dyn Env) -> Result<std::time::Duration, ConfigError> {
    let Some(raw) = non_empty(env, MEDBOT_ANSWER_DEADLINE_S) else {
        return Ok(std::time::Duration::from_secs(60));
    };
    match raw.trim().parse::<u64>() {
        Ok(seconds) if (5..=3600).contains(&seconds) => Ok(std::time::Duration::from_secs(seconds)),
        _ => Err(ConfigError::new(
            MEDBOT_ANSWER_DEADLINE_S,
            format!("must be a whole number of seconds from 5 to 3600, not {raw:?}"),
        )),
    }
}

/// Where `/healthz` and `/metrics` are served (`METRICS_LISTEN`, host:port); `None` (off) when
/// unset.
///
/// # Errors
/// A value that is not host:port.
pub fn metrics_listen(env: &dyn Env) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let Some(raw) = non_empty(env, METRICS_LISTEN) else {
        return Ok(None);
    };
    use std::net::ToSocketAddrs as _;
    raw.trim()
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(Some)
        .ok_or_else(|| {
            ConfigError::new(
                METRICS_LISTEN,
                format!("must be host:port (e.g. 127.0.0.1:9100), not {raw:?}"),
            )
        })
}

/// The inference server when `GENERATOR_URL` is set (then no local model is loaded), with the
/// other `GENERATOR_*` settings; `None` for the in-process engine.
///
/// # Errors
/// A malformed URL, number, path or flag, naming the variable.
pub fn remote_generator(
    env: &dyn Env,
) -> Result<Option<crate::llm::remote::RemoteSettings>, ConfigError> {
    let Some(raw) = non_empty(env, GENERATOR_URL) else {
        return Ok(None);
    };
    let url: url::Url = raw.parse().map_err(|e| {
        ConfigError::new(
            GENERATOR_URL,
            format!("is not a URL ({e}); expected e.g. http://127.0.0.1:8080/v1"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(
            GENERATOR_URL,
            "must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8080/v1",
        ));
    }
    if !url.path().trim_end_matches('/').ends_with("/v1") {
        return Err(ConfigError::new(
            GENERATOR_URL,
            format!(
                "must end in /v1, the OpenAI API's base (e.g. {}://{}/v1)",
                url.scheme(),
                url.host_str().unwrap_or_default()
            ),
        ));
    }
    let mut settings = crate::llm::remote::RemoteSettings::new(url);
    settings.model = non_empty(env, GENERATOR_MODEL);
    settings.api_key = non_empty(env, GENERATOR_API_KEY).map(SecretString::from);
    if let Some(raw) = non_empty(env, GENERATOR_MAX_CONCURRENCY) {
        settings.max_concurrency = match raw.parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => n,
            _ => {
                return Err(ConfigError::new(
                    GENERATOR_MAX_CONCURRENCY,
                    format!("must be a whole number from 1 to 1024, not {raw:?}"),
                ));
            }
        };
    }
    if let Some(raw) = non_empty(env, GENERATOR_TIMEOUT_S) {
        settings.timeout = match raw.parse::<u64>() {
            Ok(s) if (1..=3600).contains(&s) => std::time::Duration::from_secs(s),
            _ => {
                return Err(ConfigError::new(
                    GENERATOR_TIMEOUT_S,
                    format!("must be a whole number of seconds from 1 to 3600, not {raw:?}"),
                ));
            }
        };
    }
    if let Some(path) = non_empty(env, GENERATOR_TOKENIZER) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(ConfigError::new(
                GENERATOR_TOKENIZER,
                format!(
                    "{} does not exist (a tokenizer.json or GGUF file)",
                    path.display()
                ),
            ));
        }
        settings.tokenizer = Some(path);
    }
    settings.allow_insecure = match non_empty(env, GENERATOR_ALLOW_INSECURE).as_deref() {
        None | Some("false" | "0" | "no") => false,
        Some("true" | "1" | "yes") => true,
        Some(other) => {
            return Err(ConfigError::new(
                GENERATOR_ALLOW_INSECURE,
                format!("must be true or false, not {other:?}"),
            ));
        }
    };
    Ok(Some(settings))
}

/// Where the terminal commands keep local state (the generated master key):
/// `MEDBOT_DATA_DIR`, else `$XDG_DATA_HOME/medbot`, else `~/.local/share/medbot`.
pub fn data_dir(env: &dyn Env) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = non_empty(env, MEDBOT_DATA_DIR) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(xdg) = non_empty(env, "XDG_DATA_HOME") {
        return Ok(Path::new(&xdg).join("medbot"));
    }
    match non_empty(env, "HOME") {
        Some(home) => Ok(Path::new(&home).join(".local/share/medbot")),
        None => Err(ConfigError::new(
            MEDBOT_DATA_DIR,
            "is not set and there is no HOME to put the local master key in",
        )),
    }
}

/// `MEDBOT_CLINICAL_DATA`: a folder of clinical knowledge to use instead of the built-in one.
pub fn clinical_data(env: &dyn Env) -> Option<PathBuf> {
    non_empty(env, MEDBOT_CLINICAL_DATA).map(PathBuf::from)
}

/// `MEDBOT_COMPOSE_ANSWERS` (auto, always, never): whether symptom questions are answered from the
/// assessment's vetted texts instead of the model. `auto` (the default) composes when the model is
/// the small bundled one, which cannot be trusted to write medicine (with `GENERATOR_URL`, when
/// `GENERATOR_MODEL` names it: the server's model is taken to be a capable one).
pub fn compose_answers(env: &dyn Env) -> Result<bool, ConfigError> {
    let small_default = || {
        if non_empty(env, GENERATOR_URL).is_some() {
            return non_empty(env, GENERATOR_MODEL)
                .is_some_and(|m| m.to_ascii_lowercase().contains("135m"));
        }
        let path = model_path(env);
        path == Path::new(DEFAULT_MODEL_PATH)
            || path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.to_ascii_lowercase().contains("135m"))
    };
    match non_empty(env, MEDBOT_COMPOSE_ANSWERS)
        .as_deref()
        .map(str::trim)
    {
        None | Some("auto") => Ok(small_default()),
        Some("always") => Ok(true),
        Some("never") => Ok(false),
        Some(other) => Err(ConfigError::new(
            MEDBOT_COMPOSE_ANSWERS,
            format!("must be auto, always or never, not {other:?}"),
        )),
    }
}

/// `MEDBOT_REQUANTIZE`: how to re-encode Q4_1 weights when the model loads (off, q4_0, q8_0;
/// default q8_0, see [`crate::llm::Requantize::DEFAULT`]).
pub fn requantize(env: &dyn Env) -> Result<crate::llm::Requantize, ConfigError> {
    match non_empty(env, MEDBOT_REQUANTIZE) {
        None => Ok(crate::llm::Requantize::DEFAULT),
        Some(raw) => raw
            .parse()
            .map_err(|problem: String| ConfigError::new(MEDBOT_REQUANTIZE, problem)),
    }
}

/// Everything the Telegram bot needs.
#[derive(Clone)]
pub struct TelegramSettings {
    pub token: SecretString,
    pub api_url: Option<url::Url>,
    pub doctor_chat: TelegramChatId,
    pub doctors: Vec<TelegramUserId>,
}

impl std::fmt::Debug for TelegramSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSettings")
            .field("token", &"[redacted]")
            .field("api_url", &self.api_url.as_ref().map(|u| u.as_str()))
            .field("doctor_chat", &self.doctor_chat)
            .field("doctors", &self.doctors)
            .finish()
    }
}

pub fn telegram(env: &dyn Env) -> Result<TelegramSettings, ConfigError> {
    let token = required(env, TELOXIDE_TOKEN)?;
    // Bot tokens look like 123456:ABC-DEF...; check the shape without echoing the token.
    let shape_ok = token
        .split_once(':')
        .is_some_and(|(id, secret)| id.parse::<u64>().is_ok() && !secret.is_empty());
    if !shape_ok {
        return Err(ConfigError::new(
            TELOXIDE_TOKEN,
            "does not look like a bot token (expected <bot id>:<secret> from @BotFather)",
        ));
    }
    let api_url = non_empty(env, TELEGRAM_API_URL)
        .map(|raw| {
            url::Url::parse(&raw)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    ConfigError::new(
                        TELEGRAM_API_URL,
                        "is not an http(s) URL (e.g. http://127.0.0.1:8081)",
                    )
                })
        })
        .transpose()?;
    let chat_raw = required(env, DOCTOR_CHAT_ID)?;
    let doctor_chat = chat_raw.parse::<i64>().map(TelegramChatId).map_err(|_| {
        ConfigError::new(
            DOCTOR_CHAT_ID,
            format!(
                "{chat_raw:?} is not a number (expected a Telegram chat id such as -1001234567890)"
            ),
        )
    })?;
    let doctors = doctor_ids(&required(env, DOCTOR_IDS)?)?;
    Ok(TelegramSettings {
        token: SecretString::from(token),
        api_url,
        doctor_chat,
        doctors,
    })
}

fn doctor_ids(raw: &str) -> Result<Vec<TelegramUserId>, ConfigError> {
    let mut ids = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id = part
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                ConfigError::new(
                    DOCTOR_IDS,
                    format!("{part:?} is not a Telegram user id (a positive number)"),
                )
            })?;
        ids.push(TelegramUserId(id));
    }
    if ids.is_empty() {
        return Err(ConfigError::new(
            DOCTOR_IDS,
            "lists no user ids (expected e.g. 11111111,22222222)",
        ));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn the_generator_settings_are_read_and_a_bad_one_is_named() {
        assert!(remote_generator(&env(&[])).unwrap().is_none());
        let settings = remote_generator(&env(&[
            (GENERATOR_URL, "http://10.0.0.5:8000/v1"),
            (GENERATOR_MODEL, "Qwen/Qwen2.5-7B-Instruct"),
            (GENERATOR_API_KEY, "sk-secret-value"),
            (GENERATOR_MAX_CONCURRENCY, "16"),
            (GENERATOR_TIMEOUT_S, "90"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(settings.max_concurrency, 16);
        assert_eq!(settings.timeout, std::time::Duration::from_secs(90));
        assert_eq!(settings.model.as_deref(), Some("Qwen/Qwen2.5-7B-Instruct"));
        assert!(!format!("{settings:?}").contains("sk-secret-value"));
        let defaults = remote_generator(&env(&[(GENERATOR_URL, "http://127.0.0.1:8080/v1")]))
            .unwrap()
            .unwrap();
        // A server's model writes the answers unless it is named as the small one.
        assert!(compose_answers(&env(&[])).unwrap());
        assert!(!compose_answers(&env(&[(GENERATOR_URL, "http://127.0.0.1:8080/v1")])).unwrap());
        assert_eq!(defaults.max_concurrency, 8);
        assert_eq!(defaults.timeout, std::time::Duration::from_secs(60));
        for (name, value) in [
            (GENERATOR_URL, "127.0.0.1:8080"),
            (GENERATOR_URL, "http://127.0.0.1:8080/"),
            (GENERATOR_MAX_CONCURRENCY, "0"),
            (GENERATOR_TIMEOUT_S, "soon"),
            (GENERATOR_TOKENIZER, "/no/such/tokenizer.json"),
            (GENERATOR_ALLOW_INSECURE, "maybe"),
        ] {
            let mut pairs = env(&[(GENERATOR_URL, "http://127.0.0.1:8080/v1")]);
            pairs.insert(name, value);
            let e = remote_generator(&pairs).unwrap_err();
            assert_eq!(e.variable, name, "{e}");
        }
    }

    #[test]
    fn missing_database_url_names_the_variable() {
        let err = database_url(&env(&[])).unwrap_err();
        assert_eq!(err.to_string(), "DATABASE_URL: is not set");
    }

    #[test]
    fn database_url_errors_never_echo_the_password() {
        let err = database_url(&env(&[(DATABASE_URL, "mysql://u:hunter2@h/db")])).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let ok = database_url(&env(&[(DATABASE_URL, "postgres://u:hunter2@h:6543/db")])).unwrap();
        assert_eq!(ok.redacted(), "h:6543/db");
        assert!(!format!("{ok:?}").contains("hunter2"));
        assert_eq!(ok.database_name().as_deref(), Some("db"));
    }

    #[test]
    fn short_master_key_is_rejected_without_echo() {
        let short = base64::engine::general_purpose::STANDARD.encode([3u8; 31]);
        let leaked: &'static str = Box::leak(short.clone().into_boxed_str());
        let err = master_key(&env(&[(MEDBOT_MASTER_KEY, leaked)])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("MEDBOT_MASTER_KEY: the key is 31 bytes long")
        );
        assert!(!err.to_string().contains(&short));
    }

    #[test]
    fn both_key_sources_is_an_error() {
        let err = master_key(&env(&[
            (MEDBOT_MASTER_KEY, "x"),
            (MEDBOT_MASTER_KEY_FILE, "/tmp/k"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, MEDBOT_MASTER_KEY);
    }

    #[test]
    fn telegram_settings_validate_each_field() {
        let good = [
            (TELOXIDE_TOKEN, "123:abc"),
            (DOCTOR_CHAT_ID, "-100123"),
            (DOCTOR_IDS, "11, 22"),
        ];
        let settings = telegram(&env(&good)).unwrap();
        assert_eq!(settings.doctor_chat, TelegramChatId(-100123));
        assert_eq!(
            settings.doctors,
            vec![TelegramUserId(11), TelegramUserId(22)]
        );
        assert!(!format!("{settings:?}").contains("abc"));

        let mut bad = env(&good);
        bad.insert(DOCTOR_CHAT_ID, "doctors");
        assert!(
            telegram(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("DOCTOR_CHAT_ID: \"doctors\" is not a number")
        );
        let mut bad = env(&good);
        bad.insert(DOCTOR_IDS, "11,x");
        assert_eq!(telegram(&bad).unwrap_err().variable, DOCTOR_IDS);
        let mut bad = env(&good);
        bad.insert(TELOXIDE_TOKEN, "secret-without-colon");
        let err = telegram(&bad).unwrap_err().to_string();
        assert!(err.starts_with("TELOXIDE_TOKEN:") && !err.contains("secret-without-colon"));
        let mut bad = env(&good);
        bad.insert(TELEGRAM_API_URL, "ftp://x");
        assert_eq!(telegram(&bad).unwrap_err().variable, TELEGRAM_API_URL);
    }
}
