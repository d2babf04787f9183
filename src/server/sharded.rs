//! A counter and a latency histogram for the per-request series, kept in per-thread shards
//! and summed when /metrics is read.
//!
//! prometheus-client's `Histogram` takes a mutex per observation and its `Counter` is one
//! atomic: on the request path every worker thread then writes the same cache lines, which
//! move between cores on each request. Here each thread writes its own shard (one or a few
//! cache lines of its own), and only a scrape reads them all. Both encode exactly as the
//! library's types do, so /metrics does not change.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Shards per metric; threads beyond this share them (still correct, just less private).
const SHARDS: usize = 8;

/// This thread's shard, handed out round-robin as threads first count something.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// Keeps each shard on cache lines of its own (128: adjacent-line prefetch pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// A monotonic counter (`Counter<u64>` on /metrics).
#[derive(Debug, Clone, Default)]
pub struct ShardedCounter(Arc<[Padded<AtomicU64>; SHARDS]>);

impl ShardedCounter {
    pub fn inc(&self) {
        self.0[shard()].0.fetch_add(1, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Relaxed)).sum()
    }
}

impl TypedMetric for ShardedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ShardedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Upper bounds of the buckets, in seconds (finite, ascending); `+Inf` is added after them.
type Bounds = &'static [f64];

/// Buckets a histogram can have, `+Inf` included: inline in each shard, so that a shard's
/// counts are on its own cache lines (boxed slices allocated one after the other would share
/// lines between shards).
const MAX_BUCKETS: usize = 24;

#[derive(Debug)]
struct HistogramShard {
    /// Sum of the observations in nanoseconds: whole numbers add with one atomic instruction.
    sum_nanos: AtomicU64,
    /// Observations per bucket (not cumulative): one per bound, then `+Inf`; the rest unused.
    buckets: [AtomicU64; MAX_BUCKETS],
}

/// A histogram of durations (`Histogram` on /metrics, same buckets and encoding).
#[derive(Debug, Clone)]
pub struct ShardedHistogram {
    bounds: Bounds,
    /// The bounds in nanoseconds, for the comparison per observation.
    bounds_nanos: Arc<[u64]>,
    shards: Arc<[Padded<HistogramShard>; SHARDS]>,
}

impl ShardedHistogram {
    /// Panics unless `bounds` are finite, ascending and fewer than `MAX_BUCKETS`: they are
    /// constants of this crate.
    pub fn new(bounds: Bounds) -> Self {
        assert!(
            bounds.len() < MAX_BUCKETS
                && bounds.windows(2).all(|w| w[0] < w[1])
                && bounds.iter().all(|b| b.is_finite()),
            "histogram bounds {bounds:?}"
        );
        ShardedHistogram {
            bounds,
            // An observation goes in the first bucket whose bound it does not exceed, as in
            // the library; the bounds are whole nanoseconds, which `b * 1e9` may miss by a
            // rounding error either way.
            bounds_nanos: bounds.iter().map(|b| (b * 1e9).round() as u64).collect(),
            shards: Arc::new(std::array::from_fn(|_| {
                Padded(HistogramShard {
                    sum_nanos: AtomicU64::new(0),
                    buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                })
            })),
        }
    }

    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self
            .bounds_nanos
            .iter()
            .position(|&b| nanos <= b)
            .unwrap_or(self.bounds_nanos.len());
        let shard = &self.shards[shard()].0;
        shard.sum_nanos.fetch_add(nanos, Relaxed);
        shard.buckets[bucket].fetch_add(1, Relaxed);
    }

    /// Sum (seconds), count, and the (upper bound, observations) of each bucket.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut sum_nanos = 0u64;
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .map(|b| (b, 0))
            .collect();
        for shard in self.shards.iter() {
            sum_nanos = sum_nanos.saturating_add(shard.0.sum_nanos.load(Relaxed));
            for (total, n) in buckets.iter_mut().zip(shard.0.buckets.iter()) {
                total.1 += n.load(Relaxed);
            }
        }
        // The count is the buckets' total, so the two always agree on /metrics.
        let count = buckets.iter().map(|b| b.1).sum();
        (sum_nanos as f64 / 1e9, count, buckets)
    }
}

impl TypedMetric for ShardedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ShardedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::{Registry, Unit};

    const BOUNDS: &[f64] = &[0.000_05, 0.001, 0.25, 10.0];

    fn text(register: impl FnOnce(&mut Registry)) -> String {
        let mut registry = Registry::with_prefix("t");
        register(&mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        out
    }

    fn split_sum(text: &str) -> (f64, String) {
        let (sum, rest): (Vec<&str>, Vec<&str>) = text
            .lines()
            .partition(|l| l.starts_with("t_duration_seconds_sum "));
        let sum = sum[0].rsplit(' ').next().unwrap().parse().unwrap();
        (sum, rest.join("\n"))
    }

    /// The same observations, counted from several threads into the sharded types and from
    /// one into the library's, give the same /metrics text.
    #[test]
    fn encodes_as_the_library_types_do() {
        let durations: Vec<Duration> = [
            0,
            1,
            49_999,
            50_000,
            50_001,
            999_999,
            1_000_000,
            250_000_000,
            9_999_999_999,
            10_000_000_000,
            10_000_000_001,
            60_000_000_000,
        ]
        .into_iter()
        .map(Duration::from_nanos)
        .collect();
        let counter = ShardedCounter::default();
        let histogram = ShardedHistogram::new(BOUNDS);
        std::thread::scope(|s| {
            for chunk in durations.chunks(3) {
                let (counter, histogram) = (&counter, &histogram);
                s.spawn(move || {
                    for d in chunk {
                        counter.inc();
                        histogram.observe(*d);
                    }
                });
            }
        });
        let reference_counter = Counter::<u64>::default();
        let reference_histogram = Histogram::new(BOUNDS.iter().copied());
        for d in &durations {
            reference_counter.inc();
            reference_histogram.observe(d.as_secs_f64());
        }
        let ours = text(|r| {
            r.register("requests", "h", counter.clone());
            r.register_with_unit("duration", "h", Unit::Seconds, histogram.clone());
        });
        let reference = text(|r| {
            r.register("requests", "h", reference_counter.clone());
            r.register_with_unit("duration", "h", Unit::Seconds, reference_histogram.clone());
        });
        // The sums are added differently (whole nanoseconds here, seconds as f64 there), so
        // they are compared as numbers; every other line must be the same.
        let (ours_sum, ours_rest) = split_sum(&ours);
        let (reference_sum, reference_rest) = split_sum(&reference);
        assert_eq!(ours_rest, reference_rest);
        assert!(
            (ours_sum - reference_sum).abs() < 1e-9,
            "{ours_sum} {reference_sum}"
        );
        assert!((ours_sum - 90.252_15).abs() < 1e-9, "{ours_sum}");
        assert!(ours.contains("t_requests_total 12\n"), "{ours}");
        assert!(
            ours.contains("t_duration_seconds_bucket{le=\"0.001\"} 7\n"),
            "{ours}"
        );
        assert!(
            ours.contains("t_duration_seconds_bucket{le=\"+Inf\"} 12\n"),
            "{ours}"
        );
    }
}
