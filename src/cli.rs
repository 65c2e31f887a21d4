//! The command line: what an operator can ask of the `medbot` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::storage::PatientSelector;

#[derive(Debug, Parser)]
#[command(
    name = "medbot",
    version,
    about = "A Telegram medical-consultation bot: a local language model, encrypted patient history, \
             and doctor review of risky answers.",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Telegram bot (long polling): patients in private chats, doctors in DOCTOR_CHAT_ID.
    Serve,
    /// Talk to medbot in the terminal as a patient: the real model, the database and doctor
    /// review, with nothing to configure (the database, model and a local key are set up on first
    /// run).
    Chat {
        /// Which local patient you are (each name is its own conversation).
        #[arg(long, default_value = "local")]
        patient: String,
    },
    /// Review answers waiting for a doctor: list them, then approve, edit or reject one.
    Review {
        #[command(subcommand)]
        command: Option<ReviewCommand>,
    },
    /// Apply the database migrations built into this binary (harmless to run again).
    Migrate {
        /// List applied and pending migrations instead of applying them.
        #[arg(long)]
        status: bool,
    },
    /// Create or rotate the master key that protects every patient's data key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Export or erase one patient's data (named by id, P- reference, or tg:<telegram user id>).
    Patient {
        #[command(subcommand)]
        command: PatientCommand,
    },
    /// Check every setting `serve` needs (Telegram, doctors, database, master key, model) and say
    /// which one is wrong.
    Check,
    /// Measure the model on this machine: load time, prefill and decode tokens/s, peak memory.
    Bench {
        /// Prompt length in tokens.
        #[arg(long, default_value_t = 300)]
        prompt_tokens: usize,
        /// Tokens to generate.
        #[arg(long, default_value_t = 128)]
        new_tokens: usize,
        /// CPU threads for the model (default: CANDLE_NUM_THREADS, else every core but one).
        #[arg(long)]
        threads: Option<usize>,
        /// GGUF file (default: MODEL_PATH, else the default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Re-encode Q4_1 weights when loading: off, q4_0 or q8_0 (default: MEDBOT_REQUANTIZE,
        /// else the engine's default).
        #[arg(long)]
        requantize: Option<crate::llm::Requantize>,
        /// Which generator: the in-process engine (`local`) or the inference server at
        /// GENERATOR_URL (`remote`); the JSON keys are the same.
        #[arg(long, value_enum, default_value_t = BenchGenerator::Local)]
        generator: BenchGenerator,
        /// Also have this many patient questions answered at once, through the same port the
        /// bot uses: first visible text, whole answer, aggregate and per-stream tokens/s.
        #[arg(long)]
        concurrent: Option<usize>,
    },
    /// The knowledge base: import documents, list them, search them.
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// Triage one case: read the patient's message from standard input and print one JSON line
    /// {"level", "reasons", "findings": [...], "conditions": [{"name", "icd10", "probability",
    /// "supporting"}]}. No database, no model.
    Triage {
        /// Read one {"text": "..."} object per line (or {"messages": ["...", "..."]} for a
        /// conversation) and print one result line for each, in order.
        #[arg(long)]
        jsonl: bool,
        /// Assess with the clinical knowledge in this folder instead of the built-in one.
        #[arg(long, env = "MEDBOT_CLINICAL_DATA")]
        data: Option<PathBuf>,
    },
    /// The clinical knowledge (findings and conditions) the assessment uses.
    Assessment {
        #[command(subcommand)]
        command: AssessmentCommand,
    },
    /// Medicines: check drugs against each other, or measure the checks on a set of pairs.
    Meds {
        #[command(subcommand)]
        command: MedsCommand,
    },
    /// Check the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchGenerator {
    Local,
    Remote,
}

#[derive(Debug, Subcommand)]
pub enum AssessmentCommand {
    /// Validate a folder of clinical knowledge (laid out like data/) and say what it holds; the
    /// built-in set when no folder is given.
    Check { folder: Option<PathBuf> },
    /// Measure the assessment on case sets (JSON lines with "level", "icd10" and "text"; files or
    /// folders): triage accuracy, confusion matrix, emergencies under-triaged, diagnosis top-1/3/5,
    /// overall and per language and style.
    Eval {
        #[arg(required = true)]
        cases: Vec<PathBuf>,
        /// Assess with the clinical knowledge in this folder instead of the built-in one.
        #[arg(long, env = "MEDBOT_CLINICAL_DATA")]
        data: Option<PathBuf>,
        /// Also list every case assessed wrongly (level, or diagnosis not in the top 3).
        #[arg(long)]
        misses: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MedsCommand {
    /// Print the interactions among these drugs as one JSON line: {"interactions": [{"a", "b",
    /// "severity", "advice", ...}], "unknown": [...]}. Names in English or Chinese, generic or
    /// brand; a name medbot does not know goes in "unknown".
    Check {
        #[arg(required = true)]
        drugs: Vec<String>,
        /// Use the medicine knowledge in this folder (laid out like data/) instead of the built-in one.
        #[arg(long, env = "MEDBOT_CLINICAL_DATA")]
        data: Option<PathBuf>,
    },
    /// Measure the checks on drug pairs marked dangerous or safe (TOML `[[pair]]` files):
    /// sensitivity, false alarms, and every miss.
    Eval {
        #[arg(required = true)]
        pairs: Vec<PathBuf>,
        #[arg(long, env = "MEDBOT_CLINICAL_DATA")]
        data: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random master key (base64 of 32 bytes) for MEDBOT_MASTER_KEY.
    Generate {
        /// Write the key to this file (created with mode 0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Re-wrap every patient data key under a new master key, in one transaction. Messages are not
    /// re-encrypted. Stop the bot first; afterwards start it with the new key.
    Rotate {
        /// File holding the new master key (base64), e.g. from `medbot keys generate --output`.
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PatientCommand {
    /// Print the patient's decrypted history as JSON (recorded in the audit log).
    Export {
        /// Patient id (UUID), reference (P-1a2b3c4d) or Telegram user id (tg:123456).
        patient: PatientSelector,
        /// Write the JSON to this file (mode 0600) instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Erase the patient: destroy their data key first (crypto-shredding), then every row.
    Erase {
        /// Patient id (UUID), reference (P-1a2b3c4d) or Telegram user id (tg:123456).
        patient: PatientSelector,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Re-compute the hash chain and report the first row that was altered, if any.
    Verify,
    /// Show the newest audit entries.
    Tail {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List the answers waiting for review, and emergency alerts (the default).
    List,
    /// Send the draft to the patient as it is, marked as reviewed by a doctor.
    Approve {
        /// Escalation id, or its first characters as `list` shows them.
        id: String,
        /// Your Telegram user id, recorded as who decided (0 for the terminal).
        #[arg(long, default_value_t = 0)]
        doctor: i64,
    },
    /// Send your own answer instead of the draft.
    Edit {
        /// Escalation id, or its first characters as `list` shows them.
        id: String,
        /// The answer to send (read from standard input when not given).
        #[arg(long)]
        text: Option<String>,
        #[arg(long, default_value_t = 0)]
        doctor: i64,
    },
    /// Do not send the draft; send your note, or the standard "please see a clinician" message.
    Reject {
        /// Escalation id, or its first characters as `list` shows them.
        id: String,
        #[arg(long)]
        note: Option<String>,
        #[arg(long, default_value_t = 0)]
        doctor: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Import the Markdown and text files under a folder (front matter: title, source, licence,
    /// date). Unchanged documents are skipped; changed ones have their passages replaced.
    Import {
        folder: PathBuf,
        /// Stop using documents that are no longer in the folder.
        #[arg(long)]
        retire_missing: bool,
    },
    /// List the imported documents.
    List,
    /// The passages most similar to a question, with scores and sources.
    Search {
        query: String,
        #[arg(long, default_value_t = 5)]
        top: usize,
    },
}
