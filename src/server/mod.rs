//! The HTTPS admission server: axum routes over rustls, one task per connection.
//!
//! The handlers only read the body and hand it to the pure `admission::review`; everything
//! that can go wrong with a request's content becomes an AdmissionReview answer or a precise
//! 4xx (404 unknown path, 405 wrong method, 413 too large, 415 not JSON), never a 500.

pub mod tls;

use crate::admission::{self, AdmissionConfig, Webhook};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Default request body cap: an UPDATE review carries two objects of up to ~1.5 MiB (etcd's
/// default limit) plus the envelope.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct AppState {
    pub admission: Arc<AdmissionConfig>,
}

/// The admission routes, for the TLS server and for in-process tests.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/validate",
            post(|s, h, b| handle(Webhook::Validate, s, h, b)),
        )
        .route("/mutate", post(|s, h, b| handle(Webhook::Mutate, s, h, b)))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "no such endpoint: use POST /validate or POST /mutate\n",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
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
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if !is_json(&headers) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an AdmissionReview must be sent as Content-Type: application/json\n",
        )
            .into_response();
    }
    let body = match body {
        Ok(b) => b,
        // 413 for a body over the limit, 400 for a broken stream.
        Err(rejection) => return rejection.into_response(),
    };
    let started = Instant::now();
    let outcome = admission::review(webhook, &body, &state.admission);
    log_decision(webhook, &outcome.decision, started.elapsed());
    ([(header::CONTENT_TYPE, "application/json")], outcome.body).into_response()
}

fn log_decision(webhook: Webhook, d: &admission::Decision, latency: Duration) {
    let rules: Vec<String> = d.rules.iter().map(|(r, a)| format!("{r}={a}")).collect();
    tracing::info!(
        webhook = webhook.as_str(),
        uid = %d.uid,
        operation = %d.operation,
        kind = %d.kind,
        namespace = %d.namespace,
        name = %d.name,
        user = %d.user,
        dry_run = d.dry_run,
        decision = d.verdict(),
        rules = %rules.join(","),
        patched = d.patched,
        error = d.error.as_deref().unwrap_or(""),
        latency_us = latency.as_micros() as u64,
        "admission decision"
    );
}

/// Serves HTTPS on `listener` until `shutdown` resolves, then stops accepting, lets requests
/// in flight finish (up to `drain_timeout`) and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
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
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
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
    tracing::info!("shutting down: draining connections");
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain_timeout,
            "drain timed out; closing remaining connections"
        );
    }
}
