//! Prometheus/OpenMetrics metrics for the webhook, the certificate and the policy.
//!
//! Each group registers itself into a `prometheus_client::registry::Registry` (usually the
//! one created with prefix `hookguard`) and is then cheap to clone into whatever updates it:
//! the handlers, the certificate resolver, the policy reloader. The admin server only needs
//! the registry to encode it.

use super::sharded::{ShardedCounter, ShardedHistogram};
use crate::admission::{self, Webhook};
use crate::recent;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Latency buckets, in seconds: from 50 µs (a typical answer is well under a millisecond) up
/// to 10 s, the apiserver's default webhook timeout.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Kinds come from the request; cap the label so a strange client cannot make huge series.
const MAX_LABEL_LEN: usize = 63;

fn label(s: &str) -> String {
    label_str(s).to_string()
}

/// The label value for `s`, borrowed: `-` for an empty value, else at most `MAX_LABEL_LEN`
/// bytes, cut on a char boundary.
fn label_str(s: &str) -> &str {
    if s.is_empty() {
        return "-";
    }
    let mut end = s.len().min(MAX_LABEL_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// Every label but `kind` has a fixed set of values: they are `&'static str`, so counting a
// request allocates one string at most.

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub webhook: &'static str,
    pub operation: &'static str,
    pub kind: String,
    pub decision: &'static str,
    pub dry_run: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub webhook: &'static str,
    pub operation: &'static str,
    pub kind: String,
    pub decision: &'static str,
    pub rule: &'static str,
    pub action: &'static str,
    pub dry_run: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub webhook: &'static str,
    pub decision: &'static str,
}

/// Why a request was refused before it reached the decision.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RejectReason {
    /// Concurrency limit reached (503).
    saturated,
    /// The request's deadline passed before its body arrived (503).
    deadline,
    /// Body over the cap (413).
    body_too_large,
    /// Not application/json (415).
    unsupported_media_type,
    /// The body stream broke (400).
    bad_body,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub webhook: &'static str,
    pub reason: RejectReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

/// The admission requests and their decisions; cloning shares them (one `Arc`).
#[derive(Clone, Debug)]
pub struct AdmissionMetrics(std::sync::Arc<AdmissionFamilies>);

#[derive(Debug)]
pub struct AdmissionFamilies {
    /// Tells instances apart in the per-thread series cache (`SERIES`): tests create several,
    /// and an id, unlike an address, is never reused by a later instance.
    id: u64,
    /// Sharded per thread: counted on every request (see `sharded`).
    requests: Family<RequestLabels, ShardedCounter>,
    rule_hits: Family<RuleLabels, Counter>,
    latency: Family<LatencyLabels, ShardedHistogram>,
    rejected: Family<RejectLabels, Counter>,
    in_flight: Gauge,
    concurrency_limit: Gauge,
}

impl std::ops::Deref for AdmissionMetrics {
    type Target = AdmissionFamilies;
    fn deref(&self) -> &AdmissionFamilies {
        &self.0
    }
}

impl AdmissionMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let m = AdmissionFamilies {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            requests: Family::default(),
            rule_hits: Family::default(),
            latency: Family::new_with_constructor(|| ShardedHistogram::new(&LATENCY_BUCKETS)),
            rejected: Family::default(),
            in_flight: Gauge::default(),
            concurrency_limit: Gauge::default(),
        };
        registry.register(
            "admission_requests",
            "Admission reviews answered, by webhook, operation, kind, decision and dry-run",
            m.requests.clone(),
        );
        registry.register(
            "admission_rule_hits",
            "Rules that fired in answered reviews (one per rule), by rule and its action",
            m.rule_hits.clone(),
        );
        registry.register_with_unit(
            "admission_duration",
            "Time from the request's arrival to its answer",
            Unit::Seconds,
            m.latency.clone(),
        );
        registry.register(
            "admission_rejected",
            "Requests refused before a decision (saturated, deadline, body_too_large, unsupported_media_type, bad_body)",
            m.rejected.clone(),
        );
        registry.register(
            "admission_in_flight",
            "Admission requests being handled now",
            m.in_flight.clone(),
        );
        registry.register(
            "admission_concurrency_limit",
            "Most admission requests handled at once; more get 503",
            m.concurrency_limit.clone(),
        );
        AdmissionMetrics(std::sync::Arc::new(m))
    }

    pub fn set_concurrency_limit(&self, limit: usize) {
        self.concurrency_limit
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    pub fn observe(&self, webhook: Webhook, d: &admission::Decision, latency: Duration) {
        let decision = d.verdict();
        let operation = if d.operation.is_empty() {
            "-"
        } else {
            d.operation
        };
        let kind = label_str(&d.kind);
        for (rule, action) in &d.rules {
            self.rule_hits
                .get_or_create(&RuleLabels {
                    webhook: webhook.as_str(),
                    operation,
                    kind: kind.to_string(),
                    decision,
                    rule: rule.name(),
                    action: action.as_str(),
                    dry_run: d.dry_run,
                })
                .inc();
        }
        let key = SeriesKey {
            metrics: self.id,
            webhook: webhook.as_str(),
            operation,
            kind,
            decision,
            dry_run: d.dry_run,
        };
        SERIES.with_borrow_mut(|cache| {
            let series = self.series(cache, &key);
            series.requests.inc();
            series.latency.observe(latency);
        });
    }

    /// The request counter and latency histogram of `key`, from this thread's cache, or from
    /// the families (and then cached).
    fn series<'c>(
        &self,
        cache: &'c mut Vec<CachedSeries>,
        key: &SeriesKey<'_>,
    ) -> &'c CachedSeries {
        let make = || CachedSeries {
            metrics: key.metrics,
            webhook: key.webhook,
            operation: key.operation,
            kind: key.kind.to_string(),
            decision: key.decision,
            dry_run: key.dry_run,
            requests: self.requests.get_or_create_owned(&RequestLabels {
                webhook: key.webhook,
                operation: key.operation,
                kind: key.kind.to_string(),
                decision: key.decision,
                dry_run: key.dry_run,
            }),
            latency: self.latency.get_or_create_owned(&LatencyLabels {
                webhook: key.webhook,
                decision: key.decision,
            }),
        };
        // When full, the oldest entry goes (it is the same series in the families either way).
        let i = recent::find_or_add(cache, CACHED_SERIES, |c| c.matches(key), make);
        &cache[i]
    }

    pub fn reject(&self, webhook: Webhook, reason: RejectReason) {
        self.rejected
            .get_or_create(&RejectLabels {
                webhook: webhook.as_str(),
                reason,
            })
            .inc();
    }
}

thread_local! {
    /// Series handles per thread, most recent last. Finding a request's counter and histogram in
    /// their families hashes the labels (SipHash) and takes a read lock, twice, and needs the
    /// `kind` label as an owned `String`: ~1 600 instructions per request. A request's series
    /// are almost always among the few a thread has seen lately, and the handles
    /// (`ShardedCounter`, `ShardedHistogram`) are clones sharing the family's series, so
    /// counting through them shows in /metrics exactly as through the family. (No admission family is ever `clear`ed, which
    /// would detach cached handles from the families.)
    static SERIES: RefCell<Vec<CachedSeries>> = const { RefCell::new(Vec::new()) };
}

/// Entries in each thread's `SERIES`: kinds x operations x decisions seen lately.
const CACHED_SERIES: usize = 32;

/// The labels of a request series (which also decide its latency series), borrowed.
struct SeriesKey<'a> {
    metrics: u64,
    webhook: &'static str,
    operation: &'static str,
    kind: &'a str,
    decision: &'static str,
    dry_run: bool,
}

struct CachedSeries {
    metrics: u64,
    webhook: &'static str,
    operation: &'static str,
    kind: String,
    decision: &'static str,
    dry_run: bool,
    requests: ShardedCounter,
    latency: ShardedHistogram,
}

impl CachedSeries {
    fn matches(&self, key: &SeriesKey<'_>) -> bool {
        self.metrics == key.metrics
            && self.webhook == key.webhook
            && self.operation == key.operation
            && self.decision == key.decision
            && self.dry_run == key.dry_run
            && self.kind == key.kind
    }
}

/// The serving certificate: when it expires and how its reloads went.
#[derive(Clone, Debug)]
pub struct TlsMetrics {
    not_after: Gauge,
    reloads: Family<ResultLabels, Counter>,
}

impl TlsMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            not_after: Gauge::default(),
            reloads: Family::default(),
        };
        registry.register_with_unit(
            "tls_certificate_not_after",
            "Expiry (notAfter, Unix time) of the certificate being served",
            Unit::Seconds,
            m.not_after.clone(),
        );
        registry.register(
            "tls_certificate_reloads",
            "Certificate reloads from disk, by result (success, error)",
            m.reloads.clone(),
        );
        m
    }

    pub fn set_not_after(&self, unix_seconds: i64) {
        self.not_after.set(unix_seconds);
    }

    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.reloads
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }
}

/// For the policy reloader: reloads by result and the time of the last good one.
#[derive(Clone, Debug)]
pub struct PolicyMetrics {
    reloads: Family<ResultLabels, Counter>,
    last_success: Gauge<f64, AtomicU64>,
    active: Family<HashLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct HashLabels {
    hash: String,
}

impl PolicyMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            reloads: Family::default(),
            last_success: Gauge::default(),
            active: Family::default(),
        };
        registry.register(
            "policy_active",
            "The active policy, by the sha256 of its file (value 1)",
            m.active.clone(),
        );
        registry.register(
            "policy_reloads",
            "Policy file loads and reloads, by result (success, error)",
            m.reloads.clone(),
        );
        registry.register_with_unit(
            "policy_last_reload_success_timestamp",
            "Unix time of the last successful policy load",
            Unit::Seconds,
            m.last_success.clone(),
        );
        m
    }

    /// Marks `hash` as the active policy (and only it).
    pub fn set_active(&self, hash: &str) {
        let labels = HashLabels {
            hash: hash.to_string(),
        };
        if self.active.get(&labels).is_none_or(|g| g.get() != 1) {
            self.active.clear();
            self.active.get_or_create(&labels).set(1);
        }
    }

    /// Counts one reload; `result` is a short word such as `success` or `error`.
    pub fn reload(&self, result: &str) {
        self.reloads
            .get_or_create(&ResultLabels {
                result: label(result),
            })
            .inc();
        if result == "success" {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.last_success.set(now);
        }
    }
}

/// All of the webhook's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub admission: AdmissionMetrics,
    pub tls: TlsMetrics,
    pub policy: PolicyMetrics,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        Self {
            admission: AdmissionMetrics::register(registry),
            tls: TlsMetrics::register(registry),
            policy: PolicyMetrics::register(registry),
        }
    }
}

/// The registry every hookguard process starts from.
pub fn new_registry() -> Registry {
    Registry::with_prefix("hookguard")
}

/// OpenMetrics text of a registry.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug in a metric.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::admission::{Decision, Path};
    use crate::rules::{Action, RuleId};

    fn decision<'a>(
        kind: &'a str,
        operation: &'static str,
        allowed: bool,
        dry_run: bool,
    ) -> Decision<'a> {
        Decision {
            uid: "u".into(),
            operation,
            kind: kind.into(),
            namespace: "ns".into(),
            name: "n".into(),
            user: "me".into(),
            dry_run,
            allowed,
            rules: if allowed {
                vec![]
            } else {
                vec![(RuleId::UnknownHookType, Action::Deny)]
            },
            audited: vec![],
            would_deny: vec![],
            mode: None,
            policy_hash: "h".into(),
            patched: false,
            path: Some(Path::Evaluated),
            error: None,
        }
    }

    /// `observe` as it was before the series cache: every series through its family.
    fn observe_uncached(m: &AdmissionMetrics, webhook: Webhook, d: &Decision, latency: Duration) {
        let decision = d.verdict();
        let operation = if d.operation.is_empty() {
            "-"
        } else {
            d.operation
        };
        let kind = label(&d.kind);
        for (rule, action) in &d.rules {
            m.rule_hits
                .get_or_create(&RuleLabels {
                    webhook: webhook.as_str(),
                    operation,
                    kind: kind.clone(),
                    decision,
                    rule: rule.name(),
                    action: action.as_str(),
                    dry_run: d.dry_run,
                })
                .inc();
        }
        m.requests
            .get_or_create(&RequestLabels {
                webhook: webhook.as_str(),
                operation,
                kind,
                decision,
                dry_run: d.dry_run,
            })
            .inc();
        m.latency
            .get_or_create(&LatencyLabels {
                webhook: webhook.as_str(),
                decision,
            })
            .observe(latency);
    }

    #[test]
    fn cached_series_count_exactly_as_the_families() {
        let long = "K".repeat(70);
        let wide = "é".repeat(40);
        let decisions = [
            decision("Job.batch", "CREATE", true, false),
            decision("Job.batch", "CREATE", false, false),
            decision("Job.batch", "CREATE", true, true),
            decision("Job.batch", "UPDATE", true, false),
            decision("Pod", "CREATE", true, false),
            decision("", "", true, false),
            decision(&long, "CREATE", true, false),
            decision(&long[..64], "CREATE", true, false),
            decision(&wide, "DELETE", false, false),
        ];
        let mut cached_registry = new_registry();
        let cached = AdmissionMetrics::register(&mut cached_registry);
        // A second instance used in between: its counts must not leak into `cached`.
        let other = AdmissionMetrics::register(&mut new_registry());
        let mut reference_registry = new_registry();
        let reference = AdmissionMetrics::register(&mut reference_registry);
        // More distinct series than the cache holds, several rounds: hits, misses, evictions.
        let mut n = 0u64;
        for round in 0..3 {
            for webhook in [Webhook::Validate, Webhook::Mutate] {
                for (i, d) in decisions.iter().enumerate() {
                    let mut d = d.clone();
                    if round == 1 {
                        d.kind = format!("{}{i}", d.kind).into();
                    }
                    for extra in 0..=(i % 3) {
                        n += 1;
                        let latency = Duration::from_micros(n * 37 + extra as u64);
                        cached.observe(webhook, &d, latency);
                        other.observe(webhook, &d, latency * 2);
                        observe_uncached(&reference, webhook, &d, latency);
                    }
                }
            }
        }
        // Series come out in hash map order, which differs between families.
        let sorted = |text: &str| {
            let mut lines: Vec<String> = text.lines().map(String::from).collect();
            lines.sort();
            lines
        };
        let text = encode(&cached_registry);
        assert_eq!(sorted(&text), sorted(&encode(&reference_registry)));
        assert!(text.contains("kind=\"-\""), "{text}");
        assert!(
            text.contains(&format!("kind=\"{}\"", "K".repeat(63))),
            "{text}"
        );
    }

    #[test]
    fn a_cached_series_is_the_familys_series() {
        let m = AdmissionMetrics::register(&mut new_registry());
        let d = decision("Job.batch", "CREATE", true, false);
        let labels = RequestLabels {
            webhook: "validate",
            operation: "CREATE",
            kind: "Job.batch".into(),
            decision: "allowed",
            dry_run: false,
        };
        m.observe(Webhook::Validate, &d, Duration::from_micros(5));
        m.observe(Webhook::Validate, &d, Duration::from_micros(5));
        assert_eq!(m.requests.get_or_create(&labels).get(), 2);
        // Counted through the family: the cached handle sees it too.
        m.requests.get_or_create(&labels).inc();
        m.observe(Webhook::Validate, &d, Duration::from_micros(5));
        assert_eq!(m.requests.get_or_create(&labels).get(), 4);
    }

    #[test]
    fn labels_are_capped_and_never_empty() {
        assert_eq!(label(""), "-");
        assert_eq!(label(&"é".repeat(40)).len(), 62);
        assert_eq!(label("Job"), "Job");
    }

    #[test]
    fn policy_reloads_and_certificate_expiry_are_exposed() {
        let mut r = new_registry();
        let m = Metrics::register(&mut r);
        m.policy.reload("success");
        m.policy.reload("error");
        m.tls.set_not_after(1_900_000_000);
        m.admission.set_concurrency_limit(7);
        let text = encode(&r);
        assert!(
            text.contains("hookguard_policy_reloads_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hookguard_policy_reloads_total{result=\"error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hookguard_tls_certificate_not_after_seconds 1900000000"),
            "{text}"
        );
        assert!(
            text.contains("hookguard_admission_concurrency_limit 7"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
