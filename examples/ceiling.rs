//! The ceiling for hookguard's serving stack: the same axum + tokio-rustls + hyper-util
//! server with one route that reads the body and returns a constant "allowed" review. No
//! parsing, no decision, no metrics, no logs. `scripts/load.sh` measures it side by side with
//! hookguard.
//!
//! With `--check-json` it also checks that the body is JSON (serde_json, into `IgnoredAny`)
//! and answers 400 if not: the least any webhook must do with its input, to measure how much
//! of the gap to the ceiling that alone takes (`scripts/load.sh` with `FLOOR=1`).
//!
//!     cargo run --release --example ceiling -- 127.0.0.1:9443 tls.crt tls.key [--check-json]

use axum::body::Bytes;
use axum::handler::Handler;
use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::path::Path;
use tokio_rustls::TlsAcceptor;

/// The same allocator as the hookguard binary, so the ceiling measures the same stack.
#[global_allocator]
static ALLOCATOR: hookguard::alloc::Allocator = hookguard::alloc::Allocator;

const ALLOWED: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"9674415a-c099-41d3-b2d4-51bc1758b54a","allowed":true}}"#;

async fn allow(_body: Bytes) -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], ALLOWED)
}

async fn allow_json(
    body: Bytes,
) -> Result<([(header::HeaderName, &'static str); 1], &'static str), StatusCode> {
    match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        Ok(_) => Ok(([(header::CONTENT_TYPE, "application/json")], ALLOWED)),
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

/// hookguard's two webhook paths, both answered by `handler`.
fn routes<H: Handler<T, ()>, T: 'static>(handler: H) -> Router {
    Router::new()
        .route("/validate", post(handler.clone()))
        .route("/mutate", post(handler))
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, cert, key, check_json) = match args.as_slice() {
        [addr, cert, key] => (addr, cert, key, false),
        [addr, cert, key, flag] if flag == "--check-json" => (addr, cert, key, true),
        _ => anyhow::bail!("usage: ceiling ADDR TLS_CERT TLS_KEY [--check-json]"),
    };
    let tls = hookguard::server::tls::load_server_config(Path::new(cert), Path::new(key))?;
    let app = if check_json {
        routes(allow_json)
    } else {
        routes(allow)
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            // Stops on SIGINT or SIGTERM by returning from `main`, so that a build with
            // `-Cprofile-generate` writes its profile (scripts/pgo.sh). The handlers are in
            // place before the port is open.
            let mut stop = std::pin::pin!(stop_signals()?);
            let listener = tokio::net::TcpListener::bind(addr.as_str()).await?;
            let acceptor = TlsAcceptor::from(tls);
            let builder = auto::Builder::new(TokioExecutor::new());
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => accepted?,
                    () = &mut stop => return Ok(()),
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, builder, app) = (acceptor.clone(), builder.clone(), app.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                            .await;
                    }
                });
            }
        })
}

/// Resolves on the first SIGINT or SIGTERM after this call.
fn stop_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
