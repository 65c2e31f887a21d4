//! medbot's integration tests: one binary, modules per area. Each test that needs PostgreSQL gets a
//! database of its own on the real server (TEST_DATABASE_URL, default postgres@127.0.0.1:5432).

mod fake_inference;
mod fake_telegram;
mod helpers;
mod tiny_model;

mod assessment;
mod chat;
mod cli;
mod consult;
mod knowledge;
mod llm;
mod medicines;
mod remote;
mod storage;
mod telegram;
mod triage;
