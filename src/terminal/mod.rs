//! The terminal adapters: a patient's chat and a doctor's review desk, on the same service and
//! storage as the Telegram bot.

pub mod chat;
pub mod meds;
pub mod review;
pub mod triage;
