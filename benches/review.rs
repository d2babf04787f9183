//! One admission review end to end — decode → decide → patch → encode — on a ~3 KB Job
//! review (the Helm pre-install hook captured from kube-apiserver, padded with a realistic
//! pod template), a 64 KB and a 1 MiB object. Budget: ≤ 50 µs for 3 KB, ≤ 2 ms for 1 MiB.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hookguard::admission::{review, AdmissionConfig, Webhook};
use serde_json::{json, Value};

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/admission/kube-apiserver-1.20.2/4.json"
    );
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json")
}

/// The fixture with `n` environment variables in its container, to reach a target size.
fn review_of_size(target: usize) -> Vec<u8> {
    let mut v = fixture();
    const CONTAINER: &str = "/request/object/spec/template/spec/containers/0";
    let mut env = Vec::new();
    let mut body = serde_json::to_vec(&v).unwrap();
    let mut i = 0;
    while body.len() < target {
        let step = ((target - body.len()) / 64).clamp(1, 4096);
        for _ in 0..step {
            env.push(json!({"name": format!("SETTING_{i}"), "value": format!("value-{i}-{}", "x".repeat(20))}));
            i += 1;
        }
        v.pointer_mut(CONTAINER).expect("container")["env"] = Value::Array(env.clone());
        body = serde_json::to_vec(&v).unwrap();
    }
    body
}

fn bench(c: &mut Criterion) {
    let config = AdmissionConfig::default();
    let mut group = c.benchmark_group("review");
    for (label, size) in [
        ("3KB", 3 * 1024),
        ("64KB", 64 * 1024),
        ("1MiB", 1024 * 1024),
    ] {
        let body = review_of_size(size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        for webhook in [Webhook::Mutate, Webhook::Validate] {
            group.bench_with_input(
                BenchmarkId::new(webhook.as_str(), label),
                &body,
                |b, body| {
                    b.iter(|| {
                        let out = review(webhook, body, &config);
                        assert!(out.decision.allowed);
                        out
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
