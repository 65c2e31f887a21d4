//! medbot: a Telegram medical-consultation bot.
//!
//! The consultation logic talks to ports (traits); adapters connect it to Telegram, PostgreSQL and
//! the in-process model. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod app;
pub mod assessment;
pub mod bench;
pub mod cli;
pub mod config;
pub mod consult;
pub mod context;
pub mod crypto;
pub mod domain;
pub mod knowledge;
pub mod llm;
pub mod medicines;
pub mod storage;
pub mod telegram;
pub mod telemetry;
pub mod terminal;
pub mod triage;
