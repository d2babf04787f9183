//! Runs one review many times, for instruction-level profiling with
//! `valgrind --tool=callgrind target/release/examples/profile_review FILE N [validate|mutate]`
//! (mutate unless told).
use hookguard::admission::{review, AdmissionConfig, Webhook};

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: profile_review FILE [N] [validate|mutate]";
    let path = args.next().expect(usage);
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let webhook = match args.next().as_deref() {
        None | Some("mutate") => Webhook::Mutate,
        Some("validate") => Webhook::Validate,
        Some(other) => panic!("{usage}: not {other:?}"),
    };
    let body = std::fs::read(path).expect("readable file");
    let config = AdmissionConfig::default();
    let started = std::time::Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        bytes += review(webhook, &body, &config).body.len();
    }
    let per = started.elapsed() / n as u32;
    println!(
        "{n} reviews of {} bytes: {per:?} each ({bytes} bytes out)",
        body.len()
    );
}
