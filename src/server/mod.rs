//! The HTTPS admission server: axum routes over rustls, one task per connection.
//!
//! The handlers only read the body and hand it to the pure `admission::review`; everything
//! that can go wrong with a request's content becomes an AdmissionReview answer or a precise
//! 4xx (404 unknown path, 405 wrong method, 413 too large, 415 not JSON), never a 500.

pub mod admin;
pub mod limits;
pub mod metrics;
pub mod readiness;
pub mod run;
pub mod tls;

use crate::admission::{self, AdmissionConfig, Webhook};
use crate::policy::PolicyStore;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use limits::{Arrival, LimitState};
use metrics::{AdmissionMetrics, RejectReason};
use rustls::ServerConfig;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Default request body cap: an UPDATE review carries two objects of up to ~1.5 MiB (etcd's
/// default limit) plus the envelope.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    /// The active policy and the admission configuration derived from it; each request
    /// takes one snapshot, so a reload never shows a request half of a policy.
    pub admission: Arc<PolicyStore<AdmissionConfig>>,
    pub metrics: AdmissionMetrics,
    pub limits: LimitState,
}

impl AppState {
    /// State with its own (unexported) metrics and the default concurrency limit, for tests
    /// and tools that do not serve /metrics.
    pub fn new(admission: Arc<PolicyStore<AdmissionConfig>>) -> Self {
        let metrics = AdmissionMetrics::register(&mut metrics::new_registry());
        Self::with_metrics(admission, metrics, limits::DEFAULT_MAX_CONCURRENT)
    }

    pub fn with_metrics(
        admission: Arc<PolicyStore<AdmissionConfig>>,
        metrics: AdmissionMetrics,
        max_concurrent: usize,
    ) -> Self {
        Self {
            admission,
            limits: LimitState::new(max_concurrent, metrics.clone()),
            metrics,
        }
    }
}

/// The admission routes, for the TLS server and for in-process tests.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/validate",
            post(|s, a, h, b| handle(Webhook::Validate, s, a, h, b)),
        )
        .route(
            "/mutate",
            post(|s, a, h, b| handle(Webhook::Mutate, s, a, h, b)),
        )
        // Only on the two routes: 404s and 405s take no permit.
        .route_layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            limits::limit,
        ))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "no such endpoint: use POST /validate or POST /mutate\n",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Whether the request says its body is JSON (read from the headers in place: axum's
/// `HeaderMap` extractor would copy them all).
struct SaysJson(bool);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for SaysJson {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(SaysJson(is_json(&parts.headers)))
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

async fn handle(
    webhook: Webhook,
    State(state): State<AppState>,
    arrival: Option<Extension<Arrival>>,
    SaysJson(json): SaysJson,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let started = arrival
        .map(|Extension(Arrival(t))| t)
        .unwrap_or_else(Instant::now);
    if !json {
        state
            .metrics
            .reject(webhook, RejectReason::unsupported_media_type);
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an AdmissionReview must be sent as Content-Type: application/json\n",
        )
            .into_response();
    }
    let body = match body {
        Ok(b) => b,
        // 413 for a body over the limit, 400 for a broken stream.
        Err(rejection) => {
            let reason = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                RejectReason::body_too_large
            } else {
                RejectReason::bad_body
            };
            state.metrics.reject(webhook, reason);
            return rejection.into_response();
        }
    };
    let config = state.admission.current();
    let outcome = admission::review(webhook, &body, &config);
    let latency = started.elapsed();
    state.metrics.observe(webhook, &outcome.decision, latency);
    log_decision(webhook, &outcome.decision, latency);
    ([(header::CONTENT_TYPE, "application/json")], outcome.body).into_response()
}

pub fn log_decision(webhook: Webhook, d: &admission::Decision, latency: Duration) {
    tracing::info!(
        webhook = webhook.as_str(),
        uid = %d.uid,
        operation = d.operation,
        kind = %d.kind,
        namespace = %d.namespace,
        name = %d.name,
        user = %d.user,
        dry_run = d.dry_run,
        decision = d.verdict(),
        rules = %FiredRules(d),
        mode = d.mode.map(|m| m.as_str()).unwrap_or(""),
        would_deny = %WouldDeny(d),
        policy = %d.policy_hash,
        patched = d.patched,
        error = d.error.as_deref().unwrap_or(""),
        latency_us = latency.as_micros() as u64,
        "admission decision"
    );
}

/// `rule=action,…` of the rules that fired, audited ones as `rule=audit(action)`; written
/// straight into the log line.
struct FiredRules<'a>(&'a admission::Decision);

impl std::fmt::Display for FiredRules<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fired = self.0.rules.iter().map(|(r, a)| (r, "", a, ""));
        let audited = self.0.audited.iter().map(|(r, a)| (r, "audit(", a, ")"));
        for (i, (rule, open, action, close)) in fired.chain(audited).enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{rule}={open}{action}{close}")?;
        }
        Ok(())
    }
}

/// The rules whose denial the mode softened, comma-separated.
struct WouldDeny<'a>(&'a admission::Decision);

impl std::fmt::Display for WouldDeny<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, rule) in self.0.would_deny.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}", rule.name())?;
        }
        Ok(())
    }
}

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a client may take to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long an HTTP/1.1 client may take to send a request's headers. hyper also counts
    /// the idle time between keep-alive requests, so this is the h1 idle timeout as well.
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves HTTPS on `listener` until `shutdown` resolves, then stops accepting, lets requests
/// in flight finish (up to `drain_timeout`) and returns. On shutdown, idle HTTP/1.1
/// connections are closed at once, busy ones after their response (`Connection: close`), and
/// HTTP/2 connections get a GOAWAY so the client opens new streams elsewhere.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Find dead peers (a vanished apiserver) instead of holding their connections.
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    let handshake_timeout = limits.handshake_timeout;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        // Taken before the handshake, so a connection that finishes its handshake after
        // shutdown began is still told to close.
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; draining connections");
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain_timeout,
            "drain timed out; closing remaining connections"
        );
    } else {
        tracing::info!("all connections closed");
    }
}
