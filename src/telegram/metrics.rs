//! What the bot counts for its operators, in Prometheus' text format: updates received and
//! handled, triage levels, escalations by reason and by outcome, how long patients wait for the
//! first visible text and for the answer, generation speed, work in hand, the outbox's backlog and
//! 429s, and errors by kind. Each running bot has its own registry (not a process-wide recorder),
//! so that two bots in one process, as in the tests, count apart. Labels never carry patient data.

use std::time::Duration;

use metrics::{Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::domain::TriageLevel;
use crate::triage::ReviewReason;

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);

/// Seconds a patient waits: from a tenth of a second to the answer deadline and beyond.
const WAIT_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];
const SPEED_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0];

pub struct BotMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for BotMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotMetrics").finish_non_exhaustive()
    }
}

impl Default for BotMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl BotMetrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), WAIT_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("medbot_generation_tokens_per_second".into()),
                    SPEED_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Self { recorder, handle };
        metrics.describe();
        metrics
    }

    fn describe(&self) {
        let help = |name: &'static str, text: &'static str| {
            self.recorder
                .describe_counter(name.into(), None, text.into());
        };
        help(
            "medbot_updates_received_total",
            "Telegram updates received, by kind.",
        );
        help(
            "medbot_updates_handled_total",
            "Updates handled, by outcome (ok, duplicate, failed).",
        );
        help("medbot_triage_total", "Patient messages triaged, by level.");
        help(
            "medbot_escalations_total",
            "Answers sent to a doctor, by review reason (one answer may have several).",
        );
        help(
            "medbot_escalation_outcomes_total",
            "Escalations decided, by outcome.",
        );
        help(
            "medbot_outbox_rate_limited_total",
            "Sends Telegram answered 429 (Too Many Requests).",
        );
        help("medbot_errors_total", "Errors, by kind.");
        self.recorder.describe_histogram(
            "medbot_first_text_seconds".into(),
            Some(metrics::Unit::Seconds),
            "From a patient's message arriving to the first text they see (draft, review notice or answer).".into(),
        );
        self.recorder.describe_histogram(
            "medbot_answer_seconds".into(),
            Some(metrics::Unit::Seconds),
            "From a patient's message arriving to its final answer (or review notice) queued."
                .into(),
        );
        self.recorder.describe_histogram(
            "medbot_generation_tokens_per_second".into(),
            None,
            "Decoding speed of each draft.".into(),
        );
        self.recorder.describe_gauge(
            "medbot_answers_in_progress".into(),
            None,
            "Answers being written now.".into(),
        );
        self.recorder.describe_gauge(
            "medbot_updates_waiting".into(),
            None,
            "Updates received and not yet stored in the inbox.".into(),
        );
        self.recorder.describe_gauge(
            "medbot_outbox_backlog".into(),
            None,
            "Outbox rows waiting to be sent.".into(),
        );
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> metrics::Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str) -> metrics::Histogram {
        self.recorder
            .register_histogram(&Key::from_static_name(name), &METADATA)
    }

    fn gauge(&self, name: &'static str) -> metrics::Gauge {
        self.recorder
            .register_gauge(&Key::from_static_name(name), &METADATA)
    }

    pub fn update_received(&self, kind: &'static str) {
        self.counter(
            "medbot_updates_received_total",
            vec![Label::new("kind", kind)],
        )
        .increment(1);
    }

    pub fn update_handled(&self, outcome: &'static str) {
        self.counter(
            "medbot_updates_handled_total",
            vec![Label::new("outcome", outcome)],
        )
        .increment(1);
    }

    pub fn triaged(&self, level: TriageLevel) {
        self.counter(
            "medbot_triage_total",
            vec![Label::new("level", level.as_str())],
        )
        .increment(1);
    }

    pub fn escalated(&self, reasons: &[ReviewReason]) {
        for reason in reasons {
            self.counter(
                "medbot_escalations_total",
                vec![Label::new("reason", reason.as_str())],
            )
            .increment(1);
        }
    }

    pub fn decided(&self, outcome: &'static str, count: u64) {
        self.counter(
            "medbot_escalation_outcomes_total",
            vec![Label::new("outcome", outcome)],
        )
        .increment(count);
    }

    pub fn first_text(&self, waited: Duration) {
        self.histogram("medbot_first_text_seconds")
            .record(waited.as_secs_f64());
    }

    pub fn answered(&self, waited: Duration) {
        self.histogram("medbot_answer_seconds")
            .record(waited.as_secs_f64());
    }

    pub fn generation_speed(&self, tokens_per_second: f64) {
        self.histogram("medbot_generation_tokens_per_second")
            .record(tokens_per_second);
    }

    pub fn answers_in_progress(&self, delta: f64) {
        self.gauge("medbot_answers_in_progress").increment(delta);
    }

    pub fn updates_waiting(&self, count: usize) {
        self.gauge("medbot_updates_waiting").set(count as f64);
    }

    pub fn outbox_backlog(&self, rows: i64) {
        self.gauge("medbot_outbox_backlog").set(rows as f64);
    }

    pub fn rate_limited(&self) {
        self.counter("medbot_outbox_rate_limited_total", Vec::new())
            .increment(1);
    }

    pub fn error(&self, kind: &'static str) {
        self.counter("medbot_errors_total", vec![Label::new("kind", kind)])
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_prometheus_text_format() {
        let m = BotMetrics::new();
        m.update_received("message");
        m.update_received("message");
        m.triaged(TriageLevel::Emergency);
        m.escalated(&[ReviewReason::Interaction, ReviewReason::MedicationQuestion]);
        m.first_text(Duration::from_millis(300));
        m.outbox_backlog(3);
        let text = m.render();
        assert!(
            text.contains("medbot_updates_received_total{kind=\"message\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("medbot_triage_total{level=\"emergency\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("medbot_escalations_total{reason=\"interaction\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("medbot_first_text_seconds_bucket{le=\"0.5\"} 1"),
            "{text}"
        );
        assert!(text.contains("medbot_outbox_backlog 3"), "{text}");
        assert!(text.contains("# HELP medbot_triage_total"), "{text}");
        // Two registries count apart.
        assert!(!BotMetrics::new().render().contains("medbot_triage_total{"));
    }
}
