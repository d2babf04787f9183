//! Large inputs (just under 64 KiB) built to find the slow paths the fuzzer's small inputs
//! rarely reach: long annotation values, many items, many keys, deep nesting, many documents,
//! alias expansion. Used by the replay timer next to the corpora.

use serde_json::{json, Map, Value};

/// libFuzzer's `-max_len` in `make fuzz`; every generated input stays below it.
pub const MAX_LEN: usize = 65536;

/// `(name, bytes)` for one target (empty for an unknown target).
pub fn large_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let inputs = match target {
        "review" => review(),
        "annotations" => annotations(),
        "policy" => policy(),
        "lint" => lint(),
        _ => Vec::new(),
    };
    for (name, bytes) in &inputs {
        assert!(
            bytes.len() < MAX_LEN,
            "generated {target}/{name} is {} bytes",
            bytes.len()
        );
    }
    inputs
}

/// `unit` repeated to fill `budget` bytes (at least once).
fn fill(unit: &str, budget: usize) -> String {
    unit.repeat((budget / unit.len().max(1)).max(1))
}

/// Repeats `make(i)` while the result stays within `budget` bytes.
fn fill_with(budget: usize, mut make: impl FnMut(usize) -> String) -> String {
    let mut out = String::new();
    for i in 0.. {
        let next = make(i);
        if out.len() + next.len() > budget {
            break;
        }
        out.push_str(&next);
    }
    out
}

// --- review ------------------------------------------------------------------------------

fn job(metadata: Value) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox:1.36"}]}}}
    })
}

fn admission(operation: &str, object: Value, old: Option<Value>) -> Vec<u8> {
    let mut request = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "batch", "version": "v1", "kind": "Job"},
        "resource": {"group": "batch", "version": "v1", "resource": "jobs"},
        "namespace": "apps", "name": "migrate", "operation": operation,
        "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller"},
        "object": object, "dryRun": false
    });
    if let Some(old) = old {
        request["oldObject"] = old;
    }
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request
    }))
    .unwrap_or_default()
}

fn meta(annotations: Value) -> Value {
    json!({"name": "migrate", "namespace": "apps", "annotations": annotations})
}

const BUDGET: usize = 60_000;

fn review() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |name: &str, object: Value| {
        out.push((format!("gen-{name}"), admission("CREATE", object, None)));
    };
    add(
        "hook-many-items",
        job(meta(
            json!({"argocd.argoproj.io/hook": fill("PreSync,", BUDGET)}),
        )),
    );
    add(
        "hook-many-typos",
        job(meta(
            json!({"argocd.argoproj.io/hook": fill("PreSnyc,", BUDGET),
            "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}),
        )),
    );
    add(
        "hook-one-long-item",
        job(meta(json!({"argocd.argoproj.io/hook": fill("P", BUDGET)}))),
    );
    add(
        "delete-policy-many-items",
        job(meta(json!({"argocd.argoproj.io/hook": "PreSync",
            "argocd.argoproj.io/hook-delete-policy": fill("HookSucceeded,hooksucceeded,", BUDGET)}))),
    );
    add(
        "helm-hook-many-items",
        job(meta(
            json!({"helm.sh/hook": fill("pre-install,post-upgrade,", BUDGET),
            "helm.sh/hook-delete-policy": "before-hook-creation"}),
        )),
    );
    add(
        "helm-weight-long-number",
        job(meta(
            json!({"helm.sh/hook": "pre-install", "helm.sh/hook-weight": fill("9", BUDGET)}),
        )),
    );
    add(
        "sync-wave-long-number",
        job(meta(json!({"argocd.argoproj.io/hook": "PreSync",
            "argocd.argoproj.io/sync-wave": format!("-{}", fill("0", BUDGET))}))),
    );
    let mut many = Map::new();
    for i in 0..1300 {
        many.insert(format!("Argocd.Argoproj.io/Hook-{i}"), json!("PreSync"));
    }
    many.insert("argocd.argoproj.io/hook".into(), json!("PreSync"));
    add("many-annotations", job(meta(Value::Object(many))));
    let mut m = meta(json!({"argocd.argoproj.io/hook": "Sync"}));
    m["finalizers"] = json!((0..2000)
        .map(|i| format!("example.com/f{i}"))
        .collect::<Vec<_>>());
    m["labels"] = json!((0..800)
        .map(|i| (format!("l{i}"), json!("v")))
        .collect::<Map<String, Value>>());
    add("many-finalizers-and-labels", job(m));
    // Deep nesting in the spec: the decoder reads and keeps it (serde_json's limit is 128).
    let mut deep = json!("leaf");
    for _ in 0..120 {
        deep = json!({ "a": [deep] });
    }
    let mut object = job(meta(json!({"argocd.argoproj.io/hook": "PreSync"})));
    object["spec"]["deep"] = deep;
    object["spec"]["big"] = json!(fill("\u{202e}\\\"\u{0}x", 20_000));
    add("deep-and-escaped-spec", object);
    // UPDATE: both objects are compared for the finalizer-only exemption.
    let mut object = job(meta(json!({"argocd.argoproj.io/hook": "PreSync"})));
    object["metadata"]["finalizers"] =
        json!((0..1200).map(|i| format!("f{i}")).collect::<Vec<_>>());
    let mut old = object.clone();
    old["metadata"]["finalizers"] = json!((0..1199).map(|i| format!("f{i}")).collect::<Vec<_>>());
    out.push((
        "gen-update-many-finalizers".into(),
        admission("UPDATE", object, Some(old)),
    ));
    out
}

// --- annotations ---------------------------------------------------------------------------

fn annotations() -> Vec<(String, Vec<u8>)> {
    let entries: Vec<(&str, String)> = vec![
        (
            "argo-hook-many-items",
            format!("0={}", fill("PreSync,", BUDGET)),
        ),
        (
            "argo-hook-many-typos",
            format!("0={}\01=HookSucceeded", fill("PreSnyc,Skip,", BUDGET)),
        ),
        (
            "delete-policy-many-items",
            format!(
                "0=PreSync\01={}",
                fill("HookSucceeded,BeforeHookCreation,", BUDGET)
            ),
        ),
        (
            "helm-hook-many-items",
            format!("3={}", fill("pre-install,test,", BUDGET)),
        ),
        (
            "helm-delete-policy-many-items",
            format!(
                "3=pre-install\04={}",
                fill("hook-succeeded,before-hook-creation,", BUDGET)
            ),
        ),
        (
            "helm-weight-long",
            format!("3=pre-install\05={}", fill("7", BUDGET)),
        ),
        (
            "sync-wave-long",
            format!("0=Sync\02=+{}", fill("1", BUDGET)),
        ),
        (
            "many-keys",
            fill_with(BUDGET, |i| format!("Argocd.argoproj.io/hook{i}=PreSync\0")) + "0=PreSync",
        ),
        ("one-long-item", format!("0={}", fill("s", BUDGET))),
        (
            "many-empty-items",
            format!("0={}PreSync", fill(", ,", BUDGET)),
        ),
    ];
    entries
        .into_iter()
        .map(|(name, text)| (format!("gen-{name}"), text.into_bytes()))
        .collect()
}

// --- policy --------------------------------------------------------------------------------

fn policy() -> Vec<(String, Vec<u8>)> {
    let overrides = fill_with(BUDGET, |i| {
        format!(
            "  - names: [\"team-{i}-*\", \"ns{i}\"]\n    labels: {{tier: t{i}}}\n    mode: warn\n    rules:\n      argo-hook-typo: warn\n"
        )
    });
    let aliases = {
        // Nine levels of nine aliases each (9^9 nodes if expanded naively).
        let mut s = String::from("mode: enforce\nx0: &a0 [\"lol\"]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            s.push_str(&format!("x{i}: &a{i} [{}]\n", vec![prev; 9].join(", ")));
        }
        s
    };
    let inputs: Vec<(&str, String)> = vec![
        (
            "many-namespace-overrides",
            format!("mode: enforce\nnamespaces:\n{overrides}"),
        ),
        (
            "long-comment-lines",
            fill_with(BUDGET, |i| format!("# {i} {}\n", fill("comment ", 200))) + "mode: audit\n",
        ),
        (
            "deep-flow-nesting",
            format!("mode: {}{}", fill("[", 20_000), fill("]", 20_000)),
        ),
        (
            "deep-block-nesting",
            fill_with(BUDGET, |i| format!("{}k{i}:\n", " ".repeat(i))),
        ),
        ("alias-expansion", aliases),
        (
            "long-scalar",
            format!("mode: {}\n", fill("enforce", BUDGET)),
        ),
        (
            "many-rule-keys",
            format!(
                "rules:\n{}",
                fill_with(BUDGET, |i| format!("  rule-{i}: deny\n"))
            ),
        ),
    ];
    inputs
        .into_iter()
        .map(|(name, text)| (format!("gen-{name}"), text.into_bytes()))
        .collect()
}

// --- lint ----------------------------------------------------------------------------------

const HOOK_JOB: &str = "apiVersion: batch/v1
kind: Job
metadata:
  name: migrate-{i}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: \"-5\"
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
";

fn lint() -> Vec<(String, Vec<u8>)> {
    let job_doc = |i: usize| format!("---\n{}", HOOK_JOB.replace("{i}", &i.to_string()));
    let list_item = |i: usize| {
        format!(
            "- apiVersion: batch/v1\n  kind: Job\n  metadata:\n    name: m{i}\n    annotations:\n      argocd.argoproj.io/hook: PreSnyc,PostSync\n      argocd.argoproj.io/hook-delete-policy: hooksucceeded\n"
        )
    };
    let aliases = {
        let mut s = String::from(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\n  annotations:\n    argocd.argoproj.io/hook: PreSync\ndata:\n  x0: &a0 [\"lol\"]\n",
        );
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            s.push_str(&format!("  x{i}: &a{i} [{}]\n", vec![prev; 9].join(", ")));
        }
        s
    };
    let inputs: Vec<(&str, String)> = vec![
        ("many-hook-documents", fill_with(BUDGET, job_doc)),
        ("list-many-items", format!("apiVersion: v1\nkind: List\nitems:\n{}", fill_with(BUDGET, list_item))),
        ("many-empty-documents", fill("---\n", BUDGET)),
        (
            "long-annotation-value",
            format!(
                "kind: Job\nmetadata:\n  name: x\n  annotations:\n    argocd.argoproj.io/hook: {}\n",
                fill("PreSync,", BUDGET)
            ),
        ),
        (
            "many-annotations",
            format!(
                "kind: Job\nmetadata:\n  name: x\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n{}",
                fill_with(BUDGET, |i| format!("    example.com/a{i}: \"v\"\n"))
            ),
        ),
        (
            "many-non-string-annotations",
            format!(
                "kind: Job\nmetadata:\n  name: x\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n{}",
                fill_with(BUDGET, |i| format!("    example.com/a{i}: {i}\n"))
            ),
        ),
        (
            "many-finalizers-translate",
            format!(
                "kind: Job\napiVersion: batch/v1\nmetadata:\n  name: x\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n  finalizers:\n{}",
                fill_with(BUDGET, |i| format!("  - example.com/f{i}\n"))
            ),
        ),
        ("deep-flow-nesting", format!("kind: Job\nspec: {}{}", fill("[", 20_000), fill("]", 20_000))),
        (
            "deep-block-nesting",
            format!(
                "kind: Job\nmetadata:\n  annotations:\n    argocd.argoproj.io/hook: PreSync\nspec:\n{}",
                fill_with(BUDGET, |i| format!("{}k{i}:\n", " ".repeat(i + 1)))
            ),
        ),
        ("alias-expansion", aliases),
        (
            "json-stream",
            fill_with(BUDGET, |i| {
                format!(
                    "{{\"apiVersion\": \"batch/v1\", \"kind\": \"Job\", \"metadata\": {{\"name\": \"j{i}\", \"annotations\": {{\"helm.sh/hook\": \"post-install\"}}}}}}\n---\n"
                )
            }),
        ),
        ("one-long-line", format!("kind: Job\nmetadata: {{name: {}}}\n", fill("x", BUDGET))),
    ];
    inputs
        .into_iter()
        .map(|(name, text)| (format!("gen-{name}"), text.into_bytes()))
        .collect()
}
