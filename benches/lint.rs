//! Throughput of `lint` (and `translate`) over a generated `helm template`-like stream.
//! Run: `cargo bench --bench lint`; criterion prints MB/s ("thrpt") per function.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hookguard::lint::{self, ObjectRef};
use hookguard::mutation::MutationSettings;
use hookguard::rules::{Action, RuleId};
use std::hint::black_box;

/// About `size` bytes of documents: a Helm hook Job, a Deployment and a ConfigMap in turn,
/// with an Argo hook typo every 1000 documents (the same mix as the 50 MB golden test).
fn stream(size: usize) -> String {
    let mut out = String::with_capacity(size + 4096);
    let mut n = 0;
    while out.len() < size {
        if n > 0 {
            out.push_str("---\n");
        }
        let doc = match n % 3 {
            _ if n % 1000 == 0 => format!(
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: typo-{n}\n  annotations:\n    argocd.argoproj.io/hook: presync\nspec: {{}}\n"
            ),
            0 => format!(
                "# Source: app/templates/migrate.yaml\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate-{n}\n  namespace: prod\n  labels:\n    app.kubernetes.io/name: app\n  annotations:\n    \"helm.sh/hook\": pre-install,pre-upgrade\n    \"helm.sh/hook-weight\": \"-5\"\n    \"helm.sh/hook-delete-policy\": before-hook-creation,hook-succeeded\nspec:\n  backoffLimit: 1\n  activeDeadlineSeconds: 600\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: migrate\n          image: \"registry.example.com/app:1.2.3\"\n          args: [\"migrate\", \"--to\", \"latest\"]\n          resources: {{limits: {{cpu: 500m, memory: 256Mi}}}}\n"
            ),
            1 => format!(
                "# Source: app/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{n}\n  labels: {{app: web}}\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n          ports:\n            - containerPort: 8080\n          args:\n            - --config=/etc/web/config.yaml\n"
            ),
            _ => format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{n}\ndata:\n  config.yaml: |\n    listen: :8080\n    log: info\n"
            ),
        };
        out.push_str(&doc);
        n += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let text = stream(8 * 1024 * 1024);
    let resolve = |rule: RuleId, _: &ObjectRef| -> Action { rule.default_action() };
    let settings = MutationSettings::default();

    let mut group = c.benchmark_group("stream-8MiB");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(10);
    group.bench_function("events", |b| {
        b.iter(|| {
            let mut o = serde_saphyr::granit_parser::Options::default();
            o.set_emit_comments(false);
            let mut p =
                serde_saphyr::granit_parser::Parser::new_from_str_with_options(black_box(&text), o);
            let mut n = 0;
            while let Some(Ok(_)) = p.next_event() {
                n += 1;
            }
            n
        })
    });
    group.bench_function("documents", |b| {
        b.iter(|| lint::yaml::Documents::new(black_box(&text)).count())
    });
    group.bench_function("lint", |b| {
        b.iter(|| {
            let report = lint::lint_bytes(black_box(text.as_bytes()), &resolve);
            assert!(report.error.is_none());
            report.diagnostics.len()
        })
    });
    group.bench_function("translate", |b| {
        b.iter(|| {
            let out = lint::translate(black_box(text.as_bytes()), &settings, false);
            out.map(|t| t.text.len()).unwrap_or(0)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
