//! Cost of asking the policy: one validating review of a hook Job with two findings, under the
//! built-in defaults and under a policy with 20 namespace overrides (globs and labels), plus
//! the reload path (parse + hash + swap). `cargo bench --bench policy`.

use criterion::{criterion_group, criterion_main, Criterion};
use hookguard::admission::{review, AdmissionConfig, Webhook};
use hookguard::policy::{ActivePolicy, PolicyStore};
use serde_json::{json, Value};
use std::hint::black_box;
use std::sync::Arc;

fn body() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/admission/kube-apiserver-1.20.2/2.json"
    );
    let mut r: Value =
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("JSON");
    r["request"]["namespace"] = json!("team-17-prod");
    r["request"]["object"]["metadata"]["annotations"] = json!({
        "argocd.argoproj.io/hook": "PreSync",
        "argocd.argoproj.io/hook-delete-policy": "HookSuceeded"});
    r["request"]["object"]["spec"]["ttlSecondsAfterFinished"] = json!(60);
    serde_json::to_vec(&r).expect("JSON")
}

fn big_policy() -> String {
    let mut y = String::from("mode: warn\nrules: {job-ttl-race: deny}\nnamespaces:\n");
    for i in 0..20 {
        y.push_str(&format!(
            "  - names: [team-{i}-*]\n    mode: enforce\n    rules: {{never-cleaned: deny}}\n"
        ));
    }
    y
}

fn bench(c: &mut Criterion) {
    let body = body();
    let defaults = AdmissionConfig::default();
    let big = AdmissionConfig::from_policy(Arc::new(
        ActivePolicy::parse(big_policy().as_bytes(), "bench").expect("valid"),
    ));
    c.bench_function("validate/default-policy", |b| {
        b.iter(|| review(Webhook::Validate, black_box(&body), &defaults))
    });
    c.bench_function("validate/20-overrides", |b| {
        b.iter(|| review(Webhook::Validate, black_box(&body), &big))
    });
    let store = PolicyStore::new(ActivePolicy::defaults(), |p| {
        AdmissionConfig::from_policy(p.clone())
    });
    c.bench_function("store/current", |b| b.iter(|| black_box(store.current())));
    let (a, bb) = (big_policy().into_bytes(), b"mode: audit\n".to_vec());
    let mut flip = false;
    c.bench_function("store/reload-20-overrides", |b| {
        b.iter(|| {
            flip = !flip;
            store.offer(Ok(if flip { a.clone() } else { bb.clone() }), "bench")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
