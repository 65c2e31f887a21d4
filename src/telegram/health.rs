//! The operators' HTTP endpoints on `METRICS_LISTEN`: `GET /healthz` (200 when the database and the
//! generator answer, 503 naming what does not) and `GET /metrics` (Prometheus text format). Nothing
//! here reads or returns patient data.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::BotContext;
use crate::consult::Generator;

/// How long a health check waits for the database before calling it down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves the endpoints until `stop` turns true.
pub(super) async fn serve<G: Generator>(
    listener: tokio::net::TcpListener,
    context: Arc<BotContext<G>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let app = axum::Router::new()
        .route("/healthz", get(healthz::<G>))
        .route("/metrics", get(metrics::<G>))
        .with_state(context);
    let stopping = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stopping)
        .await
    {
        tracing::error!(error = %e, "the health and metrics endpoint failed");
    }
}

/// What is wrong, if anything: the database first (nothing works without it), then the generator.
pub(super) async fn problems<G: Generator>(context: &BotContext<G>) -> Vec<String> {
    let mut problems = Vec::new();
    match tokio::time::timeout(PROBE_TIMEOUT, context.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("database: {e}")),
        Err(_) => problems.push(format!(
            "database: no answer within {} s",
            PROBE_TIMEOUT.as_secs()
        )),
    }
    if let Err(reason) = context.service.generator_health() {
        problems.push(format!("generator: {reason}"));
    }
    problems
}

async fn healthz<G: Generator>(State(context): State<Arc<BotContext<G>>>) -> impl IntoResponse {
    let problems = problems(&context).await;
    if problems.is_empty() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", problems.join("\n")),
        )
    }
}

async fn metrics<G: Generator>(State(context): State<Arc<BotContext<G>>>) -> impl IntoResponse {
    // Sampled when scraped: a backlog that cannot be read leaves the last value.
    if let Ok(Ok(rows)) = tokio::time::timeout(PROBE_TIMEOUT, context.store.outbox_backlog()).await
    {
        context.metrics.outbox_backlog(rows);
    }
    context.metrics.updates_waiting(context.updates_waiting());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        context.metrics.render(),
    )
}
