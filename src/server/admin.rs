//! The admin plane: plain HTTP on its own address, for the kubelet and Prometheus.
//!
//! `/livez` answers as long as the process runs; `/readyz` is 200 only while every registered
//! readiness condition holds and the process is not shutting down; `/metrics` is the registry
//! in OpenMetrics text. The finalizer sidecar serves the same plane with its own registry and
//! conditions.

use super::metrics;
use super::readiness::Readiness;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
pub struct AdminState {
    pub registry: Arc<Registry>,
    pub readiness: Readiness,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "no such endpoint: use /livez, /readyz or /metrics\n",
            )
        })
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let report = state.readiness.report();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, report.render()).into_response()
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        metrics::encode(&state.registry),
    )
        .into_response()
}

/// Serves the admin plane on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(AdminState {
        registry,
        readiness,
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
