//! The sidecar's plain-HTTP admin plane: `/livez`, `/readyz` (false until every watch has
//! listed once) and `/metrics` (Prometheus text). Small and separate from the webhook's, so
//! the two can be unified later.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

type Labels = Vec<(&'static str, String)>;

/// Every counter the sidecar exports. Label values are kinds, reasons and outcomes: a small,
/// fixed set (never object names).
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<Labels, Counter>,
    pub deletions: Family<Labels, Counter>,
    pub outcomes_recorded: Family<Labels, Counter>,
    pub releases: Family<Labels, Counter>,
    pub hold_timeouts: Family<Labels, Counter>,
    pub orphaned_pods_deleted: Family<Labels, Counter>,
    pub errors: Family<Labels, Counter>,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hookguard_finalizer");
        let reconciles = Family::<Labels, Counter>::default();
        let deletions = Family::<Labels, Counter>::default();
        let outcomes_recorded = Family::<Labels, Counter>::default();
        let releases = Family::<Labels, Counter>::default();
        let hold_timeouts = Family::<Labels, Counter>::default();
        let orphaned_pods_deleted = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Hooks looked at, by kind", reconciles.clone());
        registry.register(
            "deletions",
            "Hooks deleted by hookguard, by kind and reason",
            deletions.clone(),
        );
        registry.register(
            "outcomes_recorded",
            "Hook outcomes recorded on deletion, by kind and outcome",
            outcomes_recorded.clone(),
        );
        registry.register(
            "releases",
            "hookguard finalizers removed, by kind and reason (Recorded, HoldTimeout)",
            releases.clone(),
        );
        registry.register(
            "hold_timeouts",
            "Deletions held longer than --max-hold and released anyway, by kind",
            hold_timeouts.clone(),
        );
        registry.register(
            "orphaned_pods_deleted",
            "Leftover pods of deleted Job hooks that hookguard removed",
            orphaned_pods_deleted.clone(),
        );
        registry.register(
            "errors",
            "Failed API operations, by kind and operation",
            errors.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            deletions,
            outcomes_recorded,
            releases,
            hold_timeouts,
            orphaned_pods_deleted,
            errors,
            leader,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<AdminState>| async move {
                if s.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "watches not synced yet\n")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<AdminState>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    s.metrics.render(),
                )
                    .into_response()
            }),
        )
        .with_state(state)
}

pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "admin server failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_path(state: &AdminState, path: &str) -> (StatusCode, String) {
        let resp = router(state.clone())
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readiness_starts_false_and_metrics_render() {
        let state = AdminState {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
        };
        assert_eq!(get_path(&state, "/livez").await.0, StatusCode::OK);
        assert_eq!(
            get_path(&state, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.ready.store(true, Ordering::Relaxed);
        assert_eq!(get_path(&state, "/readyz").await.0, StatusCode::OK);
        state
            .metrics
            .deletions
            .get_or_create(&vec![
                ("kind", "Job".to_owned()),
                ("reason", "HookSucceeded".to_owned()),
            ])
            .inc();
        let (code, text) = get_path(&state, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            text.contains(
                r#"hookguard_finalizer_deletions_total{kind="Job",reason="HookSucceeded"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("hookguard_finalizer_leader 0"), "{text}");
    }
}
