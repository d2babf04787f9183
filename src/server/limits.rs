//! Per-request limits on the admission routes: a concurrency limit that sheds load with a
//! clear 503 instead of queueing, and a deadline derived from the apiserver's `?timeout=`.
//! The handler applies them itself (an axum middleware layer cost a boxed future and an
//! extension insert per request).
//!
//! The decision itself is pure and takes microseconds, so the deadline mostly bounds waiting
//! for a slow body: the answer (or a 503) goes out before the apiserver stops waiting, which
//! lets it apply the webhook's failurePolicy with a reason instead of a timeout.

use super::metrics::{AdmissionMetrics, RejectReason};
use crate::admission::Webhook;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

/// The apiserver's default webhook timeout, used when a request carries no `?timeout=`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The apiserver's largest allowed webhook timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for `--max-concurrent-requests`.
pub const DEFAULT_MAX_CONCURRENT: usize = 1024;
/// The largest `--max-concurrent-requests` honoured (larger values are taken as this).
pub const MAX_CONCURRENT: usize = 1 << 30;

#[derive(Clone, Debug)]
pub struct LimitState {
    pub max_concurrent: usize,
    /// Its `in_flight` gauge is also the count the limit is checked against: one atomic per
    /// request each way. (A tokio `Semaphore` took a mutex on every release, and the gauge
    /// was a second atomic, all written by every worker thread.)
    pub metrics: AdmissionMetrics,
}

impl LimitState {
    pub fn new(max_concurrent: usize, metrics: AdmissionMetrics) -> Self {
        let max_concurrent = max_concurrent.clamp(1, MAX_CONCURRENT);
        metrics.set_concurrency_limit(max_concurrent);
        Self {
            max_concurrent,
            metrics,
        }
    }
}

/// Parses a Go `time.Duration` string as the apiserver writes it (`10s`, `1m30s`, `2.5s`,
/// `500ms`, `300us`/`300µs`, `100ns`, `1h`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
    }
    if !total.is_finite() || total > 1e9 {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// The request's `timeout` query parameter, if it is there and readable.
pub fn timeout_param(query: Option<&str>) -> Option<Duration> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "timeout")
        .and_then(|(_, v)| parse_go_duration(v))
}

/// How long this server gives itself: the apiserver's timeout (default 10 s, at most 30 s)
/// less a margin so the answer arrives before the apiserver gives up.
pub fn budget(timeout: Option<Duration>) -> Duration {
    let t = timeout.unwrap_or(DEFAULT_TIMEOUT).min(MAX_TIMEOUT);
    let margin = (t / 20).min(Duration::from_millis(500));
    t - margin
}

fn unavailable(message: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        message,
    )
        .into_response()
}

/// A request let in under the concurrency limit: counts as in flight (and so against the
/// limit) until dropped, however the request ends.
pub struct Admitted<'a> {
    metrics: &'a AdmissionMetrics,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight().dec();
    }
}

/// The concurrency limit was reached (answered 503).
#[derive(Debug)]
pub struct Saturated(usize);

impl IntoResponse for Saturated {
    fn into_response(self) -> Response {
        unavailable(format!(
            "hookguard is at its concurrency limit ({} requests in flight); try again\n",
            self.0
        ))
    }
}

impl LimitState {
    /// Lets the request in, or answers 503 at once when `max_concurrent` are in flight
    /// (queueing would only make the apiserver's timeout the answer).
    pub fn admit(&self, webhook: Webhook) -> Result<Admitted<'_>, Saturated> {
        let limit = i64::try_from(self.max_concurrent).unwrap_or(i64::MAX);
        let in_flight = self.metrics.in_flight().inner();
        let taken = in_flight.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < limit).then_some(n + 1)
        });
        if taken.is_err() {
            self.metrics.reject(webhook, RejectReason::saturated);
            tracing::warn!(
                webhook = webhook.as_str(),
                limit = self.max_concurrent,
                "concurrency limit reached; answering 503"
            );
            return Err(Saturated(self.max_concurrent));
        }
        Ok(Admitted {
            metrics: &self.metrics,
        })
    }

    /// Waits for `read` (the request body) until the request's budget since `arrival` (from
    /// the apiserver's `timeout`) is spent, then answers 503, so that an answer reaches the
    /// apiserver before it gives up.
    ///
    /// A body that is already there (the usual case: it arrives with the headers) is taken
    /// on the first poll, without arming a timer — a timer per request was a measurable share
    /// of a request's cost.
    pub async fn within_deadline<F: Future>(
        &self,
        webhook: Webhook,
        arrival: Instant,
        timeout: impl FnOnce() -> Option<Duration>,
        read: F,
    ) -> Result<F::Output, Response> {
        let mut read = std::pin::pin!(read);
        let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
        if let Poll::Ready(output) = first {
            return Ok(output);
        }
        let timeout = timeout();
        let budget = budget(timeout);
        match tokio::time::timeout_at((arrival + budget).into(), read).await {
            Ok(output) => Ok(output),
            Err(_) => {
                self.metrics.reject(webhook, RejectReason::deadline);
                tracing::warn!(
                    webhook = webhook.as_str(),
                    ?budget,
                    "request deadline passed before the review could be read; answering 503"
                );
                Err(unavailable(format!(
                    "the request did not arrive within {budget:?} (the apiserver's timeout{} less a margin); answering before the apiserver gives up\n",
                    timeout.map(|t| format!(" {t:?}")).unwrap_or_else(|| " default 10s".into())
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_counts_in_flight_exactly() {
        let metrics =
            AdmissionMetrics::register(&mut prometheus_client::registry::Registry::default());
        let limits = LimitState::new(2, metrics.clone());
        let in_flight = || metrics.in_flight().get();
        let a = limits.admit(Webhook::Validate).expect("first");
        let b = limits.admit(Webhook::Mutate).expect("second");
        assert_eq!(in_flight(), 2);
        for _ in 0..3 {
            let refused = limits
                .admit(Webhook::Validate)
                .err()
                .expect("over the limit");
            assert_eq!(refused.0, 2);
            // A refused request is never counted, not even for a moment after.
            assert_eq!(in_flight(), 2);
        }
        drop(a);
        assert_eq!(in_flight(), 1);
        let c = limits
            .admit(Webhook::Validate)
            .expect("a place is free again");
        drop((b, c));
        assert_eq!(in_flight(), 0);
        // Many threads at once never get more than the limit in.
        let limits = LimitState::new(3, metrics.clone());
        let most = std::sync::atomic::AtomicI64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        if let Ok(admitted) = limits.admit(Webhook::Validate) {
                            most.fetch_max(in_flight(), Ordering::Relaxed);
                            drop(admitted);
                        }
                    }
                });
            }
        });
        assert!(most.load(Ordering::Relaxed) <= 3);
        assert_eq!(in_flight(), 0);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("2.5s"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("300µs"), Some(Duration::from_micros(300)));
        assert_eq!(parse_go_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "s", "10", "10x", "-1s", "1e9h", "1..2s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_budget_ends_before_the_apiserver_gives_up() {
        assert_eq!(
            timeout_param(Some("timeout=10s")),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            timeout_param(Some("a=b&timeout=2s")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(timeout_param(Some("timeout=soon")), None);
        assert_eq!(timeout_param(None), None);
        assert_eq!(
            budget(Some(Duration::from_secs(10))),
            Duration::from_millis(9500)
        );
        assert_eq!(
            budget(Some(Duration::from_secs(1))),
            Duration::from_millis(950)
        );
        assert_eq!(budget(None), Duration::from_millis(9500));
        assert_eq!(
            budget(Some(Duration::from_secs(3600))),
            Duration::from_millis(29_500)
        );
    }
}
