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
    /// How long a client may take to send a request's headers, and how long a connection may
    /// sit without a request. HTTP/1.1: hyper's header read timeout (which also counts the
    /// idle time between keep-alive requests). HTTP/2, where hyper has no such timeout: a
    /// connection with no request in flight for this long is closed with a GOAWAY, so a
    /// client that opens a stream and dribbles its headers (or sends nothing) cannot hold it.
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
    // Every connection task holds a receiver: `true` tells it to close gracefully, and the
    // sender's `closed()` resolves once all of them have ended (the drain).
    let (closing, _) = tokio::sync::watch::channel(false);
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
        // Subscribed before the handshake, so a connection that finishes its handshake after
        // shutdown began is still told to close.
        let closing = closing.subscribe();
        let connection = Connection {
            acceptor: acceptor.clone(),
            builder: builder.clone(),
            app: app.clone(),
            limits,
        };
        tokio::spawn(connection.serve(stream, peer, closing));
    }
    drop(listener);
    let _ = closing.send(true);
    tracing::info!("stopped accepting; draining connections");
    if tokio::time::timeout(drain_timeout, closing.closed())
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

/// One accepted TCP connection: TLS handshake, then HTTP/1.1 or HTTP/2 until the peer
/// leaves, the connection idles out, or the server drains.
struct Connection {
    acceptor: TlsAcceptor,
    builder: auto::Builder<TokioExecutor>,
    app: Router,
    limits: ConnectionLimits,
}

impl Connection {
    async fn serve(
        self,
        stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        mut closing: tokio::sync::watch::Receiver<bool>,
    ) {
        let handshake = self.acceptor.accept(stream);
        let tls = match tokio::time::timeout(self.limits.handshake_timeout, handshake).await {
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
        let activity = Activity::default();
        let service = {
            let activity = activity.clone();
            let app = self.app;
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let busy = activity.start();
                let response =
                    tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new));
                async move {
                    let response = response.await;
                    drop(busy);
                    response
                }
            })
        };
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(tls), service);
        tokio::pin!(conn);
        let idle_limit = self.limits.header_read_timeout;
        let mut shutting_down = false;
        // Set when the connection is closed for idling: an HTTP/2 client holding a half-sent
        // stream would keep it open past the GOAWAY, so it is dropped after one more period.
        let mut hard_stop: Option<tokio::time::Instant> = None;
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
        let result = loop {
            let idle_deadline = activity.idle_deadline(idle_limit);
            tokio::select! {
                result = conn.as_mut() => break result,
                changed = closing.changed(), if !shutting_down => {
                    // A dropped sender means the server is gone: close as well.
                    let _ = changed;
                    conn.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
                () = tokio::time::sleep_until(idle_deadline), if !shutting_down => {
                    if activity.idle_for() >= idle_limit {
                        tracing::debug!(%peer, ?idle_limit, "closing a connection without requests");
                        conn.as_mut().graceful_shutdown();
                        shutting_down = true;
                        hard_stop = Some(tokio::time::Instant::now() + idle_limit);
                    }
                }
                () = tokio::time::sleep_until(hard_stop.unwrap_or_else(far)), if hard_stop.is_some() => {
                    tracing::debug!(%peer, "dropping an idle connection that did not close");
                    return;
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// Requests in flight on one connection, and when the last one ended.
#[derive(Clone, Default)]
struct Activity(Arc<std::sync::Mutex<ActivityState>>);

struct ActivityState {
    in_flight: usize,
    idle_since: tokio::time::Instant,
}

impl Default for ActivityState {
    fn default() -> Self {
        Self {
            in_flight: 0,
            idle_since: tokio::time::Instant::now(),
        }
    }
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self) -> Busy {
        self.lock().in_flight += 1;
        Busy(self.clone())
    }

    /// How long the connection has had no request in flight (zero while one is).
    fn idle_for(&self) -> Duration {
        let state = self.lock();
        if state.in_flight > 0 {
            Duration::ZERO
        } else {
            state.idle_since.elapsed()
        }
    }

    /// When the connection will have idled `limit` if nothing happens meanwhile.
    fn idle_deadline(&self, limit: Duration) -> tokio::time::Instant {
        let state = self.lock();
        let from = if state.in_flight > 0 {
            tokio::time::Instant::now()
        } else {
            state.idle_since
        };
        from + limit
    }
}

/// A request in flight; its end restarts the idle clock.
struct Busy(Activity);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = tokio::time::Instant::now();
        }
    }
}
