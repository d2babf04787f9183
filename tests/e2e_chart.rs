//! The Helm chart against a real kube-apiserver: every certificate mode and the optional
//! values are rendered (tests/chart/render.sh: Go text/template + sprig, values.schema.json
//! checked), every object is applied with server-side dry-run, and the containers' args,
//! webhook configurations and RBAC are checked against what the binary accepts and needs.
//!
//! Needs `go` + sprig (see tests/chart/render.sh). Run with `make e2e` or
//!     tests/e2e/control-plane.sh run DIR -- cargo test --features e2e --test e2e_chart

mod support;

use clap::Parser;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use serde_json::Value;
use support::TestNamespace;

const CASES: &[(&str, Option<&str>)] = &[
    ("default", None),
    ("cert-manager", Some("tests/chart/values/cert-manager.yaml")),
    (
        "cert-manager-issuer",
        Some("tests/chart/values/cert-manager-issuer.yaml"),
    ),
    ("secret", Some("tests/chart/values/secret.yaml")),
    ("options", Some("tests/chart/values/options.yaml")),
];

fn render(namespace: &str, release: &str, kube_version: &str, values: Option<&str>) -> Vec<Value> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = std::process::Command::new(format!("{root}/tests/chart/render.sh"));
    cmd.args([
        "--kube-version",
        kube_version,
        "-namespace",
        namespace,
        "-name",
        release,
    ]);
    if let Some(v) = values {
        cmd.args(["-f", &format!("{root}/{v}")]);
    }
    let out = cmd.output().expect("cannot run tests/chart/render.sh");
    assert!(
        out.status.success(),
        "render.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("rendered chart is not UTF-8");
    let mut docs = Vec::new();
    for doc in text.split("\n---\n") {
        let body: String = doc
            .lines()
            .filter(|l| *l != "---")
            .collect::<Vec<_>>()
            .join("\n");
        if body
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        let v: Value = serde_saphyr::from_str(&body)
            .unwrap_or_else(|e| panic!("rendered document is not YAML: {e}\n{body}"));
        docs.push(v);
    }
    docs
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every container's args parse with hookguard's own CLI definition.
fn check_args(docs: &[Value]) {
    let mut seen = 0;
    for d in docs {
        let spec = match d["kind"].as_str() {
            Some("Deployment") | Some("Job") => &d["spec"]["template"]["spec"],
            _ => continue,
        };
        for c in spec["containers"].as_array().into_iter().flatten() {
            let args = strs(&c["args"]);
            let argv = std::iter::once("hookguard".to_owned()).chain(args.iter().cloned());
            if let Err(e) = hookguard::cli::Cli::try_parse_from(argv) {
                panic!("container {} args {args:?} rejected:\n{e}", c["name"]);
            }
            seen += 1;
        }
    }
    assert!(seen >= 2, "no containers found");
}

/// The webhook container, run for real with its rendered args (policy from the rendered
/// ConfigMap, loopback ports, a certificate path that does not exist): it must get past
/// argument parsing and the policy, and stop on the certificate file.
fn check_serve_runs(docs: &[Value]) {
    let deploy = of_kind(docs, "Deployment")[0];
    let webhook = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "webhook"))
        .expect("no webhook container");
    let dir = tempfile::tempdir().unwrap();
    let policy = of_kind(docs, "ConfigMap")[0]["data"]["policy.yaml"]
        .as_str()
        .expect("policy ConfigMap has no policy.yaml")
        .to_owned();
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    let missing = dir.path().join("no-such-dir/tls.crt");
    let args: Vec<String> = strs(&webhook["args"])
        .into_iter()
        .map(|a| match a.split_once('=') {
            Some(("--tls-cert", _)) => format!("--tls-cert={}", missing.display()),
            Some(("--policy", _)) => {
                format!("--policy={}", dir.path().join("policy.yaml").display())
            }
            Some(("--addr", _)) => format!("--addr=127.0.0.1:{}", support::free_port()),
            Some(("--admin-addr", _)) => format!("--admin-addr=127.0.0.1:{}", support::free_port()),
            _ => a,
        })
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookguard"))
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve started without a certificate");
    assert!(
        stderr.contains("no-such-dir/tls.crt") && !stderr.contains("unexpected argument"),
        "serve {args:?} did not stop on the certificate file:\n{stderr}"
    );
}

fn check_webhooks(docs: &[Value], kube_version: &str, mode: &str) {
    for (kind, path, policy) in [
        ("ValidatingWebhookConfiguration", "/validate", "Fail"),
        ("MutatingWebhookConfiguration", "/mutate", "Ignore"),
    ] {
        let configs = of_kind(docs, kind);
        assert_eq!(configs.len(), 1, "{kind}");
        let c = configs[0];
        let inject = &c["metadata"]["annotations"]["cert-manager.io/inject-ca-from"];
        assert_eq!(
            inject.is_string(),
            mode.starts_with("cert-manager"),
            "{kind} {mode}"
        );
        for w in c["webhooks"].as_array().expect("webhooks") {
            assert_eq!(w["clientConfig"]["service"]["path"], path);
            assert_eq!(w["sideEffects"], "None");
            assert_eq!(w["failurePolicy"], policy);
            assert_eq!(w["timeoutSeconds"], 5);
            assert_eq!(strs(&w["admissionReviewVersions"]), ["v1"]);
            assert_eq!(w["clientConfig"]["caBundle"].is_string(), mode == "secret");
            assert_eq!(w["matchConditions"].is_array(), kube_version >= "v1.28");
            let mut resources = Vec::new();
            for r in w["rules"].as_array().expect("rules") {
                assert_eq!(strs(&r["operations"]), ["CREATE", "UPDATE"]);
                resources.extend(strs(&r["resources"]));
            }
            assert_eq!(resources, ["jobs", "pods", "workflows"]);
            assert!(
                resources.iter().all(|r| !r.contains('/')),
                "subresource in {resources:?}"
            );
            let excluded = &w["namespaceSelector"]["matchExpressions"][0];
            assert_eq!(excluded["key"], "kubernetes.io/metadata.name");
            assert!(strs(&excluded["values"]).contains(&"kube-system".to_owned()));
        }
    }
}

/// (apiGroup, resource) → verbs, from the ClusterRoles and Roles bound to `sa`.
fn verbs_of(docs: &[Value], sa: &str) -> Vec<(String, String, Vec<String>)> {
    let mut roles = Vec::new();
    for b in of_kind(docs, "ClusterRoleBinding")
        .into_iter()
        .chain(of_kind(docs, "RoleBinding"))
    {
        if b["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["name"] == sa)
        {
            roles.push(b["roleRef"]["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    let mut out = Vec::new();
    for r in of_kind(docs, "ClusterRole")
        .into_iter()
        .chain(of_kind(docs, "Role"))
    {
        if !roles.iter().any(|n| r["metadata"]["name"] == n.as_str()) {
            continue;
        }
        for rule in r["rules"].as_array().into_iter().flatten() {
            for g in strs(&rule["apiGroups"]) {
                for res in strs(&rule["resources"]) {
                    out.push((g.clone(), res, strs(&rule["verbs"])));
                }
            }
        }
    }
    out
}

fn allows(
    rules: &[(String, String, Vec<String>)],
    group: &str,
    resource: &str,
    verb: &str,
) -> bool {
    rules
        .iter()
        .any(|(g, r, v)| g == group && r == resource && v.iter().any(|x| x == verb || x == "*"))
}

fn check_rbac(docs: &[Value], release: &str, case: &str) {
    let pod = verbs_of(docs, release);
    let finalizer = case != "options";
    for (g, r) in [
        ("batch", "jobs"),
        ("", "pods"),
        ("argoproj.io", "workflows"),
    ] {
        for verb in ["get", "list", "watch", "patch", "delete"] {
            assert_eq!(
                allows(&pod, g, r, verb),
                finalizer,
                "{case}: {verb} {g}/{r}"
            );
        }
    }
    assert_eq!(allows(&pod, "events.k8s.io", "events", "create"), finalizer);
    assert_eq!(
        allows(&pod, "coordination.k8s.io", "leases", "update"),
        finalizer
    );
    assert_eq!(
        allows(
            &pod,
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "watch"
        ),
        finalizer
    );
    // Namespaces only when the policy selects by label (the options case).
    assert_eq!(
        allows(&pod, "", "namespaces", "watch"),
        case == "options",
        "{case}"
    );
    for (g, r, v) in &pod {
        assert!(!v.iter().any(|x| x == "*"), "wildcard verb on {g}/{r}");
        assert!(r != "secrets", "the pod must not read Secrets");
    }
    let uninstall = verbs_of(docs, &format!("{release}-uninstall"));
    assert!(allows(
        &uninstall,
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "delete"
    ));
    assert!(allows(&uninstall, "batch", "jobs", "patch"));
    // Only the self-managed certificate mode (the default, also used by "options") runs the
    // certs Job and so has its service account.
    let self_managed = matches!(case, "default" | "options");
    let certs = verbs_of(docs, &format!("{release}-certs"));
    assert_eq!(
        allows(&certs, "", "secrets", "create"),
        self_managed,
        "{case}"
    );
    assert_eq!(
        allows(
            &certs,
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            "patch"
        ),
        self_managed
    );
}

#[tokio::test]
async fn every_rendering_applies_with_server_side_dry_run_and_wires_what_the_binary_needs() {
    let cluster = support::cluster().await;
    let client = cluster.client.clone();
    let ns = TestNamespace::new(&client, "chart").await;
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let mut skipped = Vec::new();
    for (case, values) in CASES {
        for kube_version in ["v1.20.2", "v1.30.0"] {
            // A release name containing the chart name is the fullname itself (chart helper).
            let release = format!("hookguard-{case}");
            let docs = render(&ns.name, &release, kube_version, *values);
            check_webhooks(&docs, kube_version, case);
            check_args(&docs);
            check_rbac(&docs, &release, case);
            if kube_version != "v1.20.2" {
                continue; // the control plane is 1.20: matchConditions would be dropped.
            }
            if *case == "default" {
                check_serve_runs(&docs);
            }
            for d in &docs {
                let obj: DynamicObject = serde_json::from_value(d.clone()).expect("object");
                let types = obj.types.clone().expect("apiVersion/kind");
                let (group, version) = types
                    .api_version
                    .split_once('/')
                    .unwrap_or(("", types.api_version.as_str()));
                let gvk = kube::api::GroupVersionKind::gvk(group, version, &types.kind);
                let Some((ar, caps)) = discovery.resolve_gvk(&gvk) else {
                    skipped.push(format!("{case}: {} (API not served here)", types.kind));
                    continue;
                };
                let api: Api<DynamicObject> = match caps.scope {
                    Scope::Namespaced => Api::namespaced_with(client.clone(), &ns.name, &ar),
                    Scope::Cluster => Api::all_with(client.clone(), &ar),
                };
                let name = obj.metadata.name.clone().expect("name");
                api.patch(
                    &name,
                    &PatchParams::apply("hookguard-test").dry_run().force(),
                    &Patch::Apply(&obj),
                )
                .await
                .unwrap_or_else(|e| panic!("{case}: {} {name} rejected: {e}", types.kind));
            }
        }
    }
    eprintln!("not applied: {skipped:?}");
    // Only cert-manager's own kinds may be missing from this control plane.
    assert!(
        skipped
            .iter()
            .all(|s| s.contains("Issuer") || s.contains("Certificate")),
        "{skipped:?}"
    );
}
