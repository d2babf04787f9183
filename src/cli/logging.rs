//! Log setup: `--log-format`, `--log-level`, and a batching stderr writer.
//!
//! The webhook logs one line per decision. Written one `write(2)` per line, the logs cost
//! about as much CPU as the decision itself under load, so info and debug lines are batched:
//! they go out when 64 KiB have gathered or 50 ms after the first of them, whichever comes
//! first. Warnings and errors flush the batch and go out at once, so nothing urgent waits and
//! the order of lines is kept. The batch is flushed when the command ends (`LogGuard`).
//!
//! JSON lines are written by `JsonLines`, not tracing-subscriber's JSON formatter, which
//! builds each line through serde and took ~33 000 instructions for a decision line (more
//! than the decision); this one writes the same shape directly (~10 times less).

use super::{LogArgs, LogFormat};
use crate::jsonline::{close_line, open_line, push_digits, push_escaped, push_string};
use anyhow::{Context, Result};
use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// A batch is written once it holds this much.
const BATCH_BYTES: usize = 64 * 1024;
/// ... or once its first line is this old.
const BATCH_DELAY: Duration = Duration::from_millis(50);

/// Installs the global subscriber; keep the guard until the command ends.
pub fn init(args: &LogArgs) -> Result<LogGuard> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("--log-level {:?} is not a valid filter", args.log_level))?;
    let writer = BatchedStderr::start();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone());
    match args.log_format {
        LogFormat::Json => {
            let decisions = writer.clone();
            crate::server::decision_log::set_json_sink(move |write| {
                decisions.append_with(write, false)
            });
            builder.event_format(JsonLines).init()
        }
        LogFormat::Plain => builder.init(),
    }
    Ok(LogGuard(writer))
}

/// Flushes the pending batch when dropped.
pub struct LogGuard(BatchedStderr);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.0.flush();
    }
}

#[derive(Clone)]
pub struct BatchedStderr(Arc<Shared>);

struct Shared {
    batch: Mutex<Vec<u8>>,
    /// Wakes the flusher when a batch starts.
    started: Condvar,
    /// False when the flusher thread could not start.
    batched: bool,
    /// Where batches go: stderr (a function so tests can look at them instead).
    sink: fn(&[u8]),
}

impl BatchedStderr {
    /// The writer and its flusher thread (which lives as long as the process).
    pub fn start() -> BatchedStderr {
        let flusher = Arc::new(Shared {
            batch: Mutex::new(Vec::with_capacity(BATCH_BYTES)),
            started: Condvar::new(),
            batched: true,
            sink: to_stderr,
        });
        let shared = flusher.clone();
        let spawned = std::thread::Builder::new()
            .name("log-flusher".into())
            .spawn(move || loop {
                let mut batch = shared.lock();
                while batch.is_empty() {
                    batch = shared
                        .started
                        .wait(batch)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                drop(batch);
                std::thread::sleep(BATCH_DELAY);
                shared.write_out(&mut shared.lock());
            });
        match spawned {
            Ok(_) => BatchedStderr(flusher),
            // No thread to flush batches: every line goes out at once.
            Err(_) => BatchedStderr(Arc::new(Shared {
                batch: Mutex::new(Vec::new()),
                started: Condvar::new(),
                batched: false,
                sink: to_stderr,
            })),
        }
    }

    pub fn flush(&self) {
        self.0.write_out(&mut self.0.lock());
    }

    fn append(&self, line: &[u8], urgent: bool) {
        self.append_with(|batch| batch.extend_from_slice(line), urgent);
    }

    /// Appends what `write` appends to the batch, written in place under the lock: `write`
    /// must append whole lines (the decision log writes its line straight in).
    fn append_with(&self, write: impl FnOnce(&mut Vec<u8>), urgent: bool) {
        let mut batch = self.0.lock();
        let was_empty = batch.is_empty();
        write(&mut batch);
        if urgent || !self.0.batched || batch.len() >= BATCH_BYTES {
            self.0.write_out(&mut batch);
        } else if was_empty {
            self.0.started.notify_one();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock leaves at worst a partial line: keep logging.
        self.batch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Shared {
    fn write_out(&self, batch: &mut Vec<u8>) {
        if !batch.is_empty() {
            (self.sink)(batch);
            batch.clear();
        }
    }
}

fn to_stderr(bytes: &[u8]) {
    // Nowhere to report a failed write to stderr; the lines are dropped.
    let _ = std::io::stderr().lock().write_all(bytes);
}

/// One event's writer: tracing formats a whole line, then writes it in one call.
pub struct LineWriter<'a> {
    target: &'a BatchedStderr,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.target.append(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            target: self,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            target: self,
            // Level order in tracing: ERROR < WARN < INFO < DEBUG < TRACE.
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// One JSON object per line: `timestamp` (RFC 3339, UTC, microseconds), `level`, `message`,
/// the event's fields at the top level, `spans` (names of the enclosing spans, if any) and
/// `target` — the shape of tracing-subscriber's `json().flatten_event(true)`.
///
/// The line is built in a buffer of its own with plain byte pushes and handed to tracing's
/// writer in one call: each call through tracing's `Writer` is dynamic dispatch, and numbers
/// and the timestamp through `core::fmt` cost hundreds of instructions each, which for the
/// 16-field decision line added up to more than the decision (~12 000 instructions).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Vec::with_capacity(512);
        open_line(
            &mut line,
            time::OffsetDateTime::now_utc(),
            meta.level().as_str(),
        );
        event.record(&mut JsonFields(&mut line));
        if let Some(scope) = ctx.event_scope() {
            line.extend_from_slice(b",\"spans\":[");
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                push_string(&mut line, span.name());
            }
            line.push(b']');
        }
        close_line(&mut line, meta.target());
        // Only whole `str`s and ASCII went in, so the line is UTF-8.
        w.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// Writes each field as `,"name":value`.
struct JsonFields<'a>(&'a mut Vec<u8>);

impl JsonFields<'_> {
    fn name(&mut self, field: &Field) {
        self.0.push(b',');
        push_string(self.0, field.name());
        self.0.push(b':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        push_string(self.0, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        self.0
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        push_digits(self.0, value, 1);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        if value < 0 {
            self.0.push(b'-');
        }
        push_digits(self.0, value.unsigned_abs(), 1);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.name(field);
        // JSON has no NaN or infinities: those are written as strings.
        let text = value.to_string();
        if value.is_finite() {
            self.0.extend_from_slice(text.as_bytes());
        } else {
            push_string(self.0, &text);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here too (as Debug that prints Display), and so does `message`.
        self.name(field);
        self.0.push(b'"');
        // Writing to a Vec cannot fail; a Debug impl that reports an error leaves its part out.
        let _ = write!(Escaping(self.0), "{value:?}");
        self.0.push(b'"');
    }
}

/// JSON-escapes everything written through it.
struct Escaping<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_json_with_flattened_fields() {
        let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || TestSink(sink.clone()))
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("serve");
            let _entered = span.enter();
            tracing::info!(
                uid = %"a\"b",
                count = 3u64,
                delta = -2i64,
                zero = 0u64,
                most = u64::MAX,
                least = i64::MIN,
                control = "tab\there \u{1}",
                ok = true,
                ratio = 0.5f64,
                nan = f64::NAN,
                debug = ?vec![1, 2],
                "admission {}", "decision"
            );
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "admission decision");
        assert_eq!(v["uid"], "a\"b");
        assert_eq!(v["count"], 3);
        assert_eq!(v["delta"], -2);
        assert_eq!(v["zero"], 0);
        assert_eq!(v["most"], u64::MAX);
        assert_eq!(v["least"], i64::MIN);
        assert_eq!(v["control"], "tab\there \u{1}");
        assert_eq!(v["ok"], true);
        assert_eq!(v["ratio"], 0.5);
        assert_eq!(v["nan"], "NaN");
        assert_eq!(v["debug"], "[1, 2]");
        assert_eq!(v["spans"], serde_json::json!(["serve"]));
        assert!(v["target"].as_str().unwrap().starts_with("hookguard"));
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    struct TestSink(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for TestSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn batched_lines_wait_and_urgent_lines_flush_in_order() {
        static WRITTEN: Mutex<Vec<u8>> = Mutex::new(Vec::new());
        let w = BatchedStderr(Arc::new(Shared {
            batch: Mutex::new(Vec::new()),
            started: Condvar::new(),
            batched: true,
            sink: |bytes| WRITTEN.lock().unwrap().extend_from_slice(bytes),
        }));
        w.append(b"info\n", false);
        assert!(WRITTEN.lock().unwrap().is_empty(), "an info line waits");
        // Written in place (the decision log): batched and ordered as any other line.
        w.append_with(|batch| batch.extend_from_slice(b"in place\n"), false);
        assert!(WRITTEN.lock().unwrap().is_empty(), "an info line waits");
        w.append(b"warn\n", true);
        assert_eq!(&*WRITTEN.lock().unwrap(), b"info\nin place\nwarn\n");
        let big = vec![b'x'; BATCH_BYTES];
        w.append(&big, false);
        assert_eq!(
            WRITTEN.lock().unwrap().len(),
            19 + BATCH_BYTES,
            "a full batch goes out"
        );
        w.append(b"last\n", false);
        w.flush();
        assert!(WRITTEN.lock().unwrap().ends_with(b"last\n"));
    }
}
