//! The HTTPS admission server: axum routes over rustls, one task per connection.
//!
//! The handlers only read the body and hand it to the pure `admission::review`; everything
//! that can go wrong with a request's content becomes an AdmissionReview answer or a precise
//! 4xx (404 unknown path, 405 wrong method, 413 too large, 415 not JSON), never a 500.

pub mod admin;
pub mod decision_log;
pub mod limits;
pub mod metrics;
pub mod readiness;
pub mod run;
mod sharded;
pub mod tls;

use crate::admission::{self, AdmissionConfig, Webhook};
use crate::policy::PolicyStore;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use limits::LimitState;
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

/// The admission routes, for the TLS server and for in-process tests. The state is shared
/// behind one `Arc`: axum clones a route's state for every request, and each clone of
/// `AppState` itself is three reference counts, written by every worker thread.
///
/// The body cap is applied by `handle` itself, not by axum's `DefaultBodyLimit` layer: a
/// layer on the router wraps each route in one more boxed service, cloned and boxed again
/// for every request (four allocations per request, for one number).
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let cap = BodyCap(max_body_bytes);
    Router::new()
        // The limits apply on these two routes only (in `handle`): 404s and 405s do not
        // count against the concurrency limit.
        .route(
            "/validate",
            post(move |s, r| handle(Webhook::Validate, cap, s, r)),
        )
        .route(
            "/mutate",
            post(move |s, r| handle(Webhook::Mutate, cap, s, r)),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "no such endpoint: use POST /validate or POST /mutate\n",
            )
        })
        .with_state(Arc::new(state))
}

/// The largest request body read, in bytes.
#[derive(Debug, Clone, Copy)]
struct BodyCap(usize);

impl BodyCap {
    /// The whole body, or the answer for a body over the cap (413) or a broken stream (400).
    async fn read(
        self,
        webhook: Webhook,
        body: axum::body::Body,
        metrics: &AdmissionMetrics,
    ) -> Result<Bytes, Response> {
        let error = match axum::body::to_bytes(body, self.0).await {
            Ok(bytes) => return Ok(bytes),
            Err(e) => e.into_inner(),
        };
        if error.is::<http_body_util::LengthLimitError>() {
            metrics.reject(webhook, RejectReason::body_too_large);
            let message = format!("the request body is over the {}-byte limit\n", self.0);
            return Err((StatusCode::PAYLOAD_TOO_LARGE, message).into_response());
        }
        metrics.reject(webhook, RejectReason::bad_body);
        let message = format!("the request body could not be read: {error}\n");
        Err((StatusCode::BAD_REQUEST, message).into_response())
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| is_json_type(v.as_bytes()))
}

/// Whether a Content-Type value is `application/json`, with or without parameters: its
/// essence (up to the first `;`), less surrounding spaces and tabs, in any case. A value
/// that is not all visible ASCII, spaces and tabs (what `HeaderValue::to_str` accepts) is
/// not. Byte-wise, as the `str` version (`to_str`, `split`, Unicode `trim`) cost ~400
/// instructions per request.
fn is_json_type(value: &[u8]) -> bool {
    // What the apiserver sends, found with one comparison.
    if value == b"application/json" {
        return true;
    }
    let text = value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    // Only spaces and tabs can surround the essence in such a value, which `trim_ascii`
    // removes as `str::trim` did.
    let essence = value.split(|&b| b == b';').next().unwrap_or_default();
    text && essence
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/json")
}

async fn handle(
    webhook: Webhook,
    cap: BodyCap,
    State(state): State<Arc<AppState>>,
    mut req: Request,
) -> Response {
    let arrival = Instant::now();
    let _admitted = match state.limits.admit(webhook) {
        Ok(admitted) => admitted,
        Err(saturated) => return saturated.into_response(),
    };
    if !is_json(req.headers()) {
        state
            .metrics
            .reject(webhook, RejectReason::unsupported_media_type);
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an AdmissionReview must be sent as Content-Type: application/json\n",
        )
            .into_response();
    }
    // The `?timeout=` is read only if the body is not there at once (it rarely matters). The
    // URI is taken out rather than cloned (a clone of hyper's URI allocates); reading the
    // body does not look at it.
    let uri = std::mem::take(req.uri_mut());
    let timeout = move || limits::timeout_param(uri.query());
    let read = cap.read(webhook, req.into_body(), &state.metrics);
    let body = match state
        .limits
        .within_deadline(webhook, arrival, timeout, read)
        .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(refused)) => return refused,
        Err(too_late) => return too_late,
    };
    let outcome = state
        .admission
        .with_current(|config| admission::review(webhook, &body, config));
    let latency = arrival.elapsed();
    state.metrics.observe(webhook, &outcome.decision, latency);
    decision_log::log_decision(webhook, &outcome.decision, latency);
    // Built directly: `([(CONTENT_TYPE, "application/json")], body)` parses and copies the
    // header value per request, after setting and then replacing an octet-stream type.
    // As a boxed slice: `Bytes` takes that as it is, where a `Vec` with spare capacity costs
    // it an allocation of its own; the shrink stays in place (the allocator keeps a block
    // that is still at least half used).
    let body = Bytes::from(outcome.body.into_boxed_slice());
    let mut response = Response::new(axum::body::Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a client may take to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's headers once it has started one
    /// (HTTP/1.1), and how long an HTTP/2 connection may go without a request in flight before
    /// it gets a GOAWAY: a client that dribbles its headers, or opens a stream and never
    /// finishes it, cannot hold a connection.
    pub header_read_timeout: Duration,
    /// How long an HTTP/1.1 keep-alive connection may sit idle (nothing sent since its last
    /// answer). Longer than Go's 90 s idle-connection timeout on purpose: the apiserver then
    /// always closes first, because closing from this side races with a request it is just
    /// sending on the connection, which it reports as an `EOF` (a failed admission).
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Set when shutdown is requested, before the server stops accepting: from then on HTTP/1.1
/// answers carry `Connection: close`, so each keep-alive connection is closed by its own next
/// answer, which the client reads before it could reuse the connection. (Closing an idle
/// HTTP/1.1 connection from this side races with a request being sent on it; HTTP/2 has
/// GOAWAY, which clients handle safely.)
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<std::sync::atomic::AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn started(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
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
    draining: Draining,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    // Every connection task holds a receiver: `true` tells it to close gracefully, and the
    // sender's `closed()` resolves once all of them have ended (the drain).
    let (closing, _) = tokio::sync::watch::channel(false);
    // No hyper header-read timeout for HTTP/1.1: it also runs while a keep-alive connection
    // idles, so it would close idle connections after a few seconds (see `idle_timeout`).
    // `Connection::serve` times headers and idling apart.
    let mut builder = auto::Builder::new(TokioExecutor::new());
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
            draining: draining.clone(),
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
    draining: Draining,
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
        let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let activity = Activity::default();
        let service = {
            let activity = activity.clone();
            let draining = self.draining;
            let app = self.app;
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let busy = activity.start();
                let http1 = req.version() < axum::http::Version::HTTP_2;
                let response =
                    tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new));
                let draining = draining.clone();
                async move {
                    let mut response = response.await;
                    drop(busy);
                    if let (true, Ok(response)) = (http1 && draining.started(), &mut response) {
                        response.headers_mut().insert(
                            header::CONNECTION,
                            axum::http::HeaderValue::from_static("close"),
                        );
                    }
                    response
                }
            })
        };
        let io = Watched {
            inner: tls,
            activity: activity.clone(),
        };
        // Without upgrades (no route upgrades a connection): the plain connection does less
        // per request.
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let limits = self.limits;
        // Looked at again at least this often, so a request that starts while the timer is
        // set for a later deadline is timed within two header timeouts.
        let recheck = limits.header_read_timeout;
        let mut shutting_down = false;
        // Set when the connection is closed for idling: an HTTP/2 client holding a half-sent
        // stream would keep it open past the GOAWAY, so it is dropped after one more period.
        let mut hard_stop: Option<tokio::time::Instant> = None;
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
        let result = loop {
            let now = tokio::time::Instant::now();
            let next = activity.next_limit(http2, &limits);
            let due = next
                .as_ref()
                .map_or(now + recheck, |(at, _)| (*at).min(now + recheck));
            tokio::select! {
                // In order, the connection first: it is what wakes the task almost every
                // time, and an unbiased select draws a random number on every poll.
                biased;
                result = conn.as_mut() => break result,
                changed = WhenWoken::new(closing.changed()), if !shutting_down => {
                    // A dropped sender means the server is gone: close as well.
                    let _ = changed;
                    conn.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
                () = WhenWoken::new(tokio::time::sleep_until(due)), if !shutting_down => {
                    // Looked at again: a request may have started or ended since.
                    let overdue = activity
                        .next_limit(http2, &limits)
                        .filter(|(at, _)| *at <= tokio::time::Instant::now())
                        .map(|(_, which)| which);
                    match overdue {
                        None => {}
                        Some(Overdue::Headers) => {
                            tracing::debug!(%peer, "request headers did not arrive in time; closing");
                            return;
                        }
                        Some(Overdue::Idle) => {
                            tracing::debug!(%peer, "closing an idle connection");
                            conn.as_mut().graceful_shutdown();
                            shutting_down = true;
                            hard_stop = Some(tokio::time::Instant::now() + limits.header_read_timeout);
                        }
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

/// A future polled only when it asked to be: once at first, then after each wake-up it
/// requested. The connection task wakes for its connection about twice per request, and
/// polling the shutdown watch and the timeout timer alongside each time cost ~600
/// instructions per request (a lock in the watch's `Notified`, the timer's registration
/// checks), though they are almost never ready.
struct WhenWoken<F> {
    inner: std::pin::Pin<Box<F>>,
    signal: Arc<WakeSignal>,
}

/// Set when the inner future's waker is woken; wakes the task with it.
struct WakeSignal {
    woken: std::sync::atomic::AtomicBool,
    task: futures::task::AtomicWaker,
}

impl std::task::Wake for WakeSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, std::sync::atomic::Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> WhenWoken<F> {
    /// Boxed (pinned) once per connection-loop round, which happens only on a timer or a
    /// shutdown, not per request.
    fn new(inner: F) -> Self {
        Self {
            inner: Box::pin(inner),
            signal: Arc::new(WakeSignal {
                // Polled once at first, so it can register its waker (or be ready at once).
                woken: std::sync::atomic::AtomicBool::new(true),
                task: futures::task::AtomicWaker::new(),
            }),
        }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        // Registered before the flag is read, so a wake-up in between is not lost.
        self.signal.task.register(cx.waker());
        if !self
            .signal
            .woken
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            return std::task::Poll::Pending;
        }
        let waker = std::task::Waker::from(self.signal.clone());
        self.inner
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
    }
}

/// The decrypted stream, telling `Activity` when request bytes arrive.
struct Watched<S> {
    inner: S,
    activity: Activity,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Which connection limit ran out.
#[derive(Debug, PartialEq, Eq)]
enum Overdue {
    /// A request was started and its headers did not follow in time (HTTP/1.1).
    Headers,
    /// No request for the idle timeout (HTTP/1.1) or the header timeout (HTTP/2).
    Idle,
}

/// Requests in flight on one connection, when the last one ended, and whether bytes of a
/// next request have arrived since.
#[derive(Clone, Default)]
struct Activity(Arc<std::sync::Mutex<ActivityState>>);

struct ActivityState {
    in_flight: usize,
    idle_since: tokio::time::Instant,
    /// When the first byte arrived with no request in flight (an HTTP/1.1 request head on its
    /// way); cleared when the request reaches the handler.
    started_at: Option<tokio::time::Instant>,
}

impl Default for ActivityState {
    fn default() -> Self {
        Self {
            in_flight: 0,
            idle_since: tokio::time::Instant::now(),
            started_at: None,
        }
    }
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self) -> Busy {
        let mut state = self.lock();
        state.in_flight += 1;
        state.started_at = None;
        Busy(self.clone())
    }

    fn bytes_arrived(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 && state.started_at.is_none() {
            state.started_at = Some(tokio::time::Instant::now());
        }
    }

    /// The limit that runs out next if nothing happens meanwhile, and when; `None` while a
    /// request is in flight (it has its own deadline).
    fn next_limit(
        &self,
        http2: bool,
        limits: &ConnectionLimits,
    ) -> Option<(tokio::time::Instant, Overdue)> {
        let state = self.lock();
        if state.in_flight > 0 {
            return None;
        }
        Some(match state.started_at {
            _ if http2 => (state.idle_since + limits.header_read_timeout, Overdue::Idle),
            Some(started) => (started + limits.header_read_timeout, Overdue::Headers),
            None => (state.idle_since + limits.idle_timeout, Overdue::Idle),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// `is_json` as it was, through `str`: the byte-wise version must agree with it.
    fn is_json_str(headers: &HeaderMap) -> bool {
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    }

    /// A future that is ready on its `n`th poll and counts its polls, waking itself each time.
    struct ReadyAfter {
        polls: Arc<std::sync::atomic::AtomicUsize>,
        n: usize,
        wake: bool,
    }

    impl Future for ReadyAfter {
        type Output = ();
        fn poll(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            let polls = self.polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if polls >= self.n {
                return std::task::Poll::Ready(());
            }
            if self.wake {
                cx.waker().wake_by_ref();
            }
            std::task::Poll::Pending
        }
    }

    #[tokio::test]
    async fn when_woken_polls_only_after_a_wake_up() {
        let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Never wakes itself: polled once, then never again, however often the task is.
        let mut quiet = WhenWoken::new(ReadyAfter {
            polls: polls.clone(),
            n: 2,
            wake: false,
        });
        for _ in 0..5 {
            let polled = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(std::pin::Pin::new(&mut quiet).poll(cx))
            })
            .await;
            assert!(polled.is_pending());
        }
        assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Wakes itself: polled again after each wake-up, and its output comes through.
        let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        WhenWoken::new(ReadyAfter {
            polls: polls.clone(),
            n: 3,
            wake: true,
        })
        .await;
        assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 3);
        // A timer and a watch, as the connection loop uses them.
        WhenWoken::new(tokio::time::sleep(Duration::from_millis(5))).await;
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let waiting = tokio::spawn(async move { WhenWoken::new(rx.changed()).await.is_ok() });
        tokio::task::yield_now().await;
        tx.send(true).unwrap();
        assert!(waiting.await.unwrap());
    }

    #[test]
    fn content_types_are_judged_as_before() {
        let mut values: Vec<Vec<u8>> = [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=utf-8",
            " \tapplication/json\t ;x",
            "application/json ",
            "application/jsonx",
            "application/json-patch+json",
            "application/jso",
            "text/plain",
            "",
            ";application/json",
            "application/json;é",
            "application/ json",
            "appl\u{0131}cation/json",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        // Bytes a header value may hold that are not visible ASCII, before, inside and after
        // the essence and its parameters.
        for b in [0x0b_u8, 0x7f, 0x80, 0xc3, 0xff, b'\t', b' ', b';'] {
            values.push([&[b][..], b"application/json"].concat());
            values.push([&b"application/json"[..], &[b]].concat());
            values.push([&b"application/json;"[..], &[b]].concat());
            values.push([&b"application"[..], &[b], b"json"].concat());
        }
        let mut checked = 0;
        for value in &values {
            let Ok(header) = HeaderValue::from_bytes(value) else {
                continue;
            };
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, header);
            assert_eq!(
                is_json(&headers),
                is_json_str(&headers),
                "{:?}",
                String::from_utf8_lossy(value)
            );
            checked += 1;
        }
        assert!(checked > 30, "{checked}");
        assert!(!is_json(&HeaderMap::new()));
    }
}
