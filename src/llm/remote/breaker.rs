//! A circuit breaker for the inference server: after several answers in a row failed, requests fail
//! at once for a while instead of each waiting through its retries, so patients hear "a doctor
//! will answer" in a second rather than after a minute. Then one request is let through to try.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures_in_a_row: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether a request may go to the server now. While open, none may; once the cooldown is
    /// over, requests go again, and the next failure opens it again at once.
    pub fn allows(&self) -> bool {
        let state = self.state.lock().unwrap();
        state.open_until.is_none_or(|until| Instant::now() >= until)
    }

    pub fn succeeded(&self) {
        let mut state = self.state.lock().unwrap();
        state.failures_in_a_row = 0;
        state.open_until = None;
    }

    /// Records a failed answer; whether this one opened the circuit.
    pub fn failed(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        state.failures_in_a_row += 1;
        let trial_failed = state.open_until.is_some();
        if trial_failed || state.failures_in_a_row >= self.threshold {
            state.open_until = Some(Instant::now() + self.cooldown);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_opens_after_the_threshold_and_a_failed_trial_opens_it_again() {
        let breaker = Breaker::new(3, Duration::from_millis(40));
        assert!(!breaker.failed() && !breaker.failed());
        assert!(breaker.allows());
        assert!(breaker.failed());
        assert!(!breaker.allows());
        std::thread::sleep(Duration::from_millis(50));
        assert!(breaker.allows(), "a trial goes through after the cooldown");
        assert!(
            breaker.failed(),
            "one failed trial is enough to open it again"
        );
        assert!(!breaker.allows());
        std::thread::sleep(Duration::from_millis(50));
        breaker.succeeded();
        assert!(breaker.allows());
        assert!(!breaker.failed(), "a success starts the count again");
    }
}
