//! Runs one review many times, for instruction-level profiling with
//! `valgrind --tool=callgrind target/release/examples/profile_review FILE N`.
use hookguard::admission::{review, AdmissionConfig, Webhook};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: profile_review FILE [N]");
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let body = std::fs::read(path).expect("readable file");
    let config = AdmissionConfig::default();
    let started = std::time::Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        bytes += review(Webhook::Mutate, &body, &config).body.len();
    }
    let per = started.elapsed() / n as u32;
    println!(
        "{n} reviews of {} bytes: {per:?} each ({bytes} bytes out)",
        body.len()
    );
}
