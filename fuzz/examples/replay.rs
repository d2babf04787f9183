//! Times every fuzz input through its target's code, in an optimised build without sanitizers
//! or coverage instrumentation (libFuzzer's `-timeout` counts whole seconds; the requirement
//! is 10 ms per input under 64 KiB).
//!
//!     make fuzz-replay    # or, in fuzz/:
//!     CARGO_TARGET_DIR=target/replay cargo run --release --example replay -- \
//!         [--limit-ms 10] [--top 3] [--verbose] [TARGET…]
//!
//! Inputs per target: every file in fuzz/corpus/<target>/ (the committed seeds and whatever
//! local fuzz runs added) and in fuzz/artifacts/<target>/, plus the large generated inputs of
//! `hookguard_fuzz::gen`. Each input runs once to warm up, then `RUNS` times; its time is the
//! median. One row per target (its whole body, invariant checks included), then one per
//! product entry point on the same inputs (`hookguard_fuzz::ENTRY_POINTS`: each webhook,
//! `lint`, `translate`). Exit status 1 if any input of under 64 KiB takes longer than the
//! limit in an entry-point row, or than the limit times the body's product calls
//! (`hookguard_fuzz::PASSES`) in a body row.
//!
//! Inputs run on a thread with a 2 MiB stack, the size of the tokio worker threads the
//! webhook answers on (deep nesting must not overflow it). `--verbose` names each input
//! before running it (a stack overflow aborts the process without saying which).

use hookguard_fuzz::gen::{large_inputs, MAX_LEN};
use hookguard_fuzz::{passes, Body, ENTRY_POINTS, TARGETS};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const RUNS: usize = 5;

struct Timed {
    name: String,
    len: usize,
    median: Duration,
}

fn main() -> ExitCode {
    let mut limit = Duration::from_millis(10);
    let mut top = 3;
    let mut wanted = Vec::new();
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--limit-ms" => match args.next().and_then(|v| v.parse::<f64>().ok()) {
                Some(ms) => limit = Duration::from_secs_f64(ms / 1000.0),
                None => return usage("--limit-ms needs a number"),
            },
            "--top" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) => top = n,
                None => return usage("--top needs a number"),
            },
            "--verbose" => verbose = true,
            name if TARGETS.iter().any(|(t, _)| *t == name) => wanted.push(name.to_owned()),
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let worker = std::thread::Builder::new()
        .name("replay".into())
        .stack_size(WORKER_STACK)
        .spawn(move || replay(&wanted, limit, top, verbose));
    match worker.map(|w| w.join()) {
        Ok(Ok(code)) => code,
        _ => ExitCode::FAILURE,
    }
}

/// tokio's default worker thread stack.
const WORKER_STACK: usize = 2 << 20;

fn replay(wanted: &[String], limit: Duration, top: usize, verbose: bool) -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut over = 0;
    println!(
        "{:<20} {:>7} {:>10} {:>10} {:>10} {:>8}  slowest inputs (median of {RUNS} runs)",
        "target", "inputs", "bytes", "total ms", "max ms", "limit"
    );
    for &(target, run) in TARGETS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w.as_str() == target) {
            continue;
        }
        let mut inputs = Vec::new();
        for dir in ["corpus", "artifacts"] {
            let dir = root.join(dir).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            files.sort();
            for path in files {
                if let Ok(bytes) = std::fs::read(&path) {
                    let name = path
                        .strip_prefix(root)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    inputs.push((name, bytes));
                }
            }
        }
        inputs.extend(large_inputs(target));

        // A target body gets the limit once per product call it makes; each entry point row
        // (one product call) gets the limit itself.
        let mut rows: Vec<(&str, Body, Duration)> = vec![(target, run, limit * passes(target))];
        rows.extend(
            ENTRY_POINTS
                .iter()
                .filter(|(t, _, _)| *t == target)
                .map(|&(_, name, f)| (name, f, limit)),
        );
        for (row, run, budget) in rows {
            over += time_row(row, run, &inputs, budget, top, verbose);
        }
    }
    if over > 0 {
        eprintln!(
            "{over} input(s) under {MAX_LEN} bytes took longer than {:.1} ms per product call",
            ms(limit)
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Times every input through `run`, prints one row, returns how many were over the limit.
fn time_row(
    target: &str,
    run: Body,
    inputs: &[(String, Vec<u8>)],
    limit: Duration,
    top: usize,
    verbose: bool,
) -> usize {
    let mut over = 0;
    let mut timed = Vec::with_capacity(inputs.len());
    let mut total = Duration::ZERO;
    let mut bytes = 0;
    for (name, input) in inputs {
        if verbose {
            eprintln!("{target}: {name} ({} bytes)", input.len());
        }
        let outcome = std::panic::catch_unwind(|| {
            run(input.as_slice());
            let mut times: Vec<Duration> = (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    run(input.as_slice());
                    start.elapsed()
                })
                .collect();
            times.sort();
            times[RUNS / 2]
        });
        let Ok(median) = outcome else {
            eprintln!("{target}: input {name} panics (see above)");
            std::process::exit(1);
        };
        total += median;
        bytes += input.len();
        if input.len() < MAX_LEN && median > limit {
            over += 1;
        }
        timed.push(Timed {
            name: name.clone(),
            len: input.len(),
            median,
        });
    }
    timed.sort_by_key(|row| std::cmp::Reverse(row.median));
    let max = timed.first().map_or(Duration::ZERO, |t| t.median);
    let slowest: Vec<String> = timed
        .iter()
        .take(top)
        .map(|t| format!("{} ({} B, {:.3} ms)", t.name, t.len, ms(t.median)))
        .collect();
    println!(
        "{target:<20} {:>7} {bytes:>10} {:>10.1} {:>10.3} {:>8.0}  {}",
        timed.len(),
        ms(total),
        ms(max),
        ms(limit),
        slowest.join(", ")
    );
    over
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn usage(message: &str) -> ExitCode {
    let names: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
    eprintln!(
        "replay: {message}\nusage: replay [--limit-ms MS] [--top N] [{}]…",
        names.join("|")
    );
    ExitCode::from(2)
}
