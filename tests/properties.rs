//! Property tests over generated hostile input (issue 9): the webhook's patches, the
//! finalizer's decisions, the policy parser, and lint/translate against the webhook. Plain `cargo test` runs them; 256 cases
//! each. A failing case is shrunk and saved under tests/properties.proptest-regressions.
//!
//! Objects carry random mixes of the six hook annotations (valid items, typos, case
//! variants, empty, whitespace, stray commas, unicode, long values), random labels and
//! finalizers (or none), kinds Job/Pod/Workflow/ConfigMap, wrapped in real
//! `admission.k8s.io/v1` AdmissionReview JSON for CREATE and UPDATE.

use base64::Engine;
use hookguard::admission::{review, AdmissionConfig, Webhook};
use hookguard::finalizer::decide::{
    decide, finalizer_removal_patch, Action, CleanupSettings, Observed, Outcome,
};
use hookguard::hooks::{argo_csv, keys, DeletePolicy};
use hookguard::lint::{Check, Level, ObjectRef};
use hookguard::policy::ActivePolicy;
use hookguard::rules::{Action as RuleAction, RuleId};
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Generators

const ITEMS: &[&str] = &[
    "PreSync",
    "Sync",
    "PostSync",
    "SyncFail",
    "Skip",
    "PreDelete",
    "PostDelete",
    "HookSucceeded",
    "HookFailed",
    "BeforeHookCreation",
    "pre-install",
    "post-install",
    "pre-upgrade",
    "post-upgrade",
    "pre-delete",
    "post-delete",
    "pre-rollback",
    "post-rollback",
    "test",
    "test-success",
    "crd-install",
    "hook-succeeded",
    "hook-failed",
    "before-hook-creation",
    // typos and near misses
    "Presync",
    "PreSnyc",
    "hooksucceeded",
    "Hook-Succeeded",
    "pre_install",
    "BeforeHookCreation\u{200b}",
    "PréSync",
    "\u{202e}PreSync",
];

const NUMBERS: &[&str] = &[
    "0",
    "-5",
    "7",
    "+3",
    " 4",
    "4 ",
    "-0",
    "1e3",
    "0x10",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "٣",
    "--1",
    "",
];

fn item() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(ITEMS).prop_map(str::to_owned),
        2 => prop::sample::select(ITEMS).prop_map(|s| s.to_lowercase()),
        2 => prop::sample::select(ITEMS).prop_map(|s| s.to_uppercase()),
        2 => prop::sample::select(NUMBERS).prop_map(str::to_owned),
        1 => Just(String::new()),
        1 => "[ \t\n]{1,3}",
        1 => "\\PC{0,12}",
        1 => (1usize..5000).prop_map(|n| "a".repeat(n)),
    ]
}

/// One annotation value: items joined by commas, sometimes padded or doubled.
fn value() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(item(), 0..4),
        prop::sample::select(&[",", ", ", " , ", ",,", ";", ", ,"][..]),
        prop::sample::select(&["", " ", ",", "\t"][..]),
        prop::sample::select(&["", " ", ",", "\n"][..]),
    )
        .prop_map(|(items, sep, pre, post)| format!("{pre}{}{post}", items.join(sep)))
}

const OTHER_ANNOTATIONS: &[&str] = &[
    keys::HOOKGUARD_DERIVED,
    "argocd.argoproj.io/tracking-id",
    "argocd.argoproj.io/sync-options",
    "kubectl.kubernetes.io/last-applied-configuration",
    "ArgoCD.ArgoProj.io/Hook",
    "argocd.argoproj.io/hook ",
    "example.com/~tilde/slash",
    "",
];

fn annotations() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    let hook = prop::collection::vec(
        (
            prop::sample::select(&keys::HOOK_ANNOTATIONS[..]).prop_map(str::to_owned),
            value(),
        ),
        0..7,
    );
    let other = prop::collection::vec(
        (
            prop::sample::select(OTHER_ANNOTATIONS).prop_map(str::to_owned),
            value(),
        ),
        0..3,
    );
    prop::option::weighted(
        0.9,
        (hook, other).prop_map(|(h, o)| o.into_iter().chain(h).collect()),
    )
}

fn labels() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    let managed = prop::option::of(prop::sample::select(
        &["true", "false", "TRUE", " true", ""][..],
    ));
    let other = prop::collection::btree_map(
        prop::sample::select(&["app", "app.kubernetes.io/name", "a~b/c", "team"][..])
            .prop_map(str::to_owned),
        "[a-z0-9]{0,8}",
        0..3,
    );
    prop::option::weighted(
        0.8,
        (managed, other).prop_map(|(m, mut o)| {
            if let Some(m) = m {
                o.insert(keys::MANAGED_LABEL.to_owned(), m.to_owned());
            }
            o
        }),
    )
}

const FINALIZERS: &[&str] = &[
    keys::CLEANUP_FINALIZER,
    keys::ARGO_HOOK_FINALIZER,
    "foregroundDeletion",
    "orphan",
    "example.com/protect",
    "hookguard.io/cleanup-other",
    "Hookguard.io/Cleanup",
];

fn finalizers() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(FINALIZERS).prop_map(str::to_owned),
        0..5,
    )
}

#[derive(Debug, Clone)]
struct Gen {
    kind: usize,
    annotations: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    finalizers: Option<Vec<String>>,
    generate_name: bool,
    deleting: bool,
    update: bool,
    /// UPDATE only: how the old object differs (0 same, 1 other finalizers, 2 other labels).
    old_variant: u8,
    uid: String,
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        0usize..4,
        annotations(),
        labels(),
        prop::option::weighted(0.6, finalizers()),
        any::<bool>(),
        prop::bool::weighted(0.1),
        any::<bool>(),
        0u8..3,
        "[a-f0-9-]{1,36}",
    )
        .prop_map(
            |(
                kind,
                annotations,
                labels,
                finalizers,
                generate_name,
                deleting,
                update,
                old_variant,
                uid,
            )| Gen {
                kind,
                annotations,
                labels,
                finalizers,
                generate_name,
                deleting,
                update,
                old_variant,
                uid,
            },
        )
}

const KINDS: [(&str, &str, &str, &str); 4] = [
    ("batch", "v1", "Job", "jobs"),
    ("", "v1", "Pod", "pods"),
    ("argoproj.io", "v1alpha1", "Workflow", "workflows"),
    ("", "v1", "ConfigMap", "configmaps"),
];

fn object(g: &Gen) -> Value {
    let (group, version, kind, _) = KINDS[g.kind];
    let api_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let mut meta = serde_json::Map::new();
    if g.generate_name {
        meta.insert("generateName".into(), json!("migrate-"));
    } else {
        meta.insert("name".into(), json!("migrate"));
    }
    meta.insert("namespace".into(), json!("apps"));
    meta.insert("uid".into(), json!("0b6c2a4e-0000-4000-8000-000000000001"));
    if let Some(a) = &g.annotations {
        meta.insert("annotations".into(), json!(a));
    }
    if let Some(l) = &g.labels {
        meta.insert("labels".into(), json!(l));
    }
    if let Some(f) = &g.finalizers {
        meta.insert("finalizers".into(), json!(f));
    }
    if g.deleting {
        meta.insert("deletionTimestamp".into(), json!("2026-11-21T10:00:00Z"));
    }
    let pod_spec = json!({
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"]}]
    });
    let body = match kind {
        "Job" => json!({"spec": {"backoffLimit": 0, "template": {"spec": pod_spec}}}),
        "Pod" => json!({"spec": pod_spec}),
        "Workflow" => {
            json!({"spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox:1.36"}}]}})
        }
        _ => json!({"data": {"key": "value"}}),
    };
    let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": meta});
    for (k, v) in body.as_object().into_iter().flatten() {
        obj[k] = v.clone();
    }
    obj
}

fn admission_review(g: &Gen, obj: &Value, old: Option<&Value>) -> Vec<u8> {
    let (group, version, kind, resource) = KINDS[g.kind];
    let mut request = json!({
        "uid": g.uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "namespace": "apps",
        "operation": if g.update { "UPDATE" } else { "CREATE" },
        "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller"},
        "object": obj,
        "dryRun": false
    });
    if let Some(name) = obj["metadata"]["name"].as_str() {
        request["name"] = json!(name);
    }
    if let Some(old) = old {
        request["oldObject"] = old.clone();
    }
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request
    }))
    .expect("serialise review")
}

fn old_object(g: &Gen, obj: &Value) -> Value {
    let mut old = obj.clone();
    match g.old_variant {
        1 => old["metadata"]["finalizers"] = json!([keys::ARGO_HOOK_FINALIZER]),
        2 => old["metadata"]["labels"] = json!({"previous": "yes"}),
        _ => {}
    }
    old
}

fn review_body(g: &Gen, obj: &Value) -> Vec<u8> {
    let old = g.update.then(|| old_object(g, obj));
    admission_review(g, obj, old.as_ref())
}

/// The `response` of an AdmissionReview, checked for shape.
fn response(body: &[u8], uid: Option<&str>) -> Result<Value, TestCaseError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TestCaseError::fail(format!("response is not JSON: {e}")))?;
    prop_assert_eq!(v["apiVersion"].as_str(), Some("admission.k8s.io/v1"));
    prop_assert_eq!(v["kind"].as_str(), Some("AdmissionReview"));
    let r = v["response"].clone();
    prop_assert!(r["allowed"].is_boolean(), "no allowed: {}", r);
    prop_assert!(r["uid"].is_string(), "no uid: {}", r);
    if let Some(uid) = uid {
        prop_assert_eq!(r["uid"].as_str(), Some(uid));
    }
    if r["allowed"] == json!(false) {
        let msg = r["status"]["message"].as_str().unwrap_or("");
        prop_assert!(!msg.is_empty(), "denied without a message: {}", r);
    }
    Ok(r)
}

/// The decoded patch of a mutate response, if any.
fn patch_of(r: &Value) -> Result<Option<json_patch::Patch>, TestCaseError> {
    let Some(b64) = r.get("patch").and_then(Value::as_str) else {
        prop_assert!(r.get("patchType").is_none(), "patchType without patch");
        return Ok(None);
    };
    prop_assert_eq!(r["patchType"].as_str(), Some("JSONPatch"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| TestCaseError::fail(format!("patch is not base64: {e}")))?;
    let patch: json_patch::Patch = serde_json::from_slice(&bytes)
        .map_err(|e| TestCaseError::fail(format!("patch is not a JSON Patch: {e}")))?;
    prop_assert!(!patch.0.is_empty(), "empty patch sent");
    Ok(Some(patch))
}

fn without_written_metadata(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["annotations", "labels", "finalizers"] {
            m.remove(k);
        }
    }
    v
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("<not a string>").to_owned()))
        .collect()
}

fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap_or("<not a string>").to_owned())
        .collect()
}

/// Every item of an Argo delete-policy value is one Argo reads: only then may hookguard
/// rewrite it (a typo stays for the validating webhook to report).
fn argo_policy_is_clean(value: &str) -> bool {
    let items = argo_csv(value);
    !items.is_empty() && items.iter().all(|i| DeletePolicy::parse_argo(i).is_some())
}

/// What the mutating webhook may do to metadata, and nothing more.
fn check_only_allowed_changes(
    before: &Value,
    after: &Value,
    create: bool,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        without_written_metadata(before),
        without_written_metadata(after),
        "the patch touched more than annotations/labels/finalizers"
    );
    let (m0, m1) = (&before["metadata"], &after["metadata"]);

    let (a0, a1) = (
        string_map(&m0["annotations"]),
        string_map(&m1["annotations"]),
    );
    for (k, v) in &a0 {
        let Some(new) = a1.get(k) else {
            return Err(TestCaseError::fail(format!("annotation {k:?} removed")));
        };
        if new != v {
            let allowed = k == keys::HOOKGUARD_DERIVED
                || (k == keys::ARGO_DELETE_POLICY && argo_policy_is_clean(v));
            prop_assert!(allowed, "annotation {:?} changed: {:?} -> {:?}", k, v, new);
        }
    }
    for k in a1.keys().filter(|k| !a0.contains_key(*k)) {
        prop_assert!(
            [
                keys::ARGO_HOOK,
                keys::ARGO_SYNC_WAVE,
                keys::ARGO_DELETE_POLICY,
                keys::HOOKGUARD_DERIVED
            ]
            .contains(&k.as_str()),
            "unexpected annotation added: {:?}",
            k
        );
    }

    let (l0, l1) = (string_map(&m0["labels"]), string_map(&m1["labels"]));
    for (k, v) in &l0 {
        prop_assert_eq!(l1.get(k), Some(v), "label {:?} removed or changed", k);
    }
    for (k, v) in l1.iter().filter(|(k, _)| !l0.contains_key(*k)) {
        prop_assert!(create, "label added on UPDATE");
        prop_assert_eq!(k.as_str(), keys::MANAGED_LABEL);
        prop_assert_eq!(v.as_str(), keys::MANAGED_LABEL_VALUE);
    }

    let (f0, f1) = (
        string_list(&m0["finalizers"]),
        string_list(&m1["finalizers"]),
    );
    prop_assert!(f1.starts_with(&f0), "finalizers reordered or removed");
    let added = &f1[f0.len()..];
    prop_assert!(added.len() <= 1, "several finalizers added: {:?}", added);
    if let Some(f) = added.first() {
        prop_assert!(create, "finalizer added on UPDATE");
        prop_assert_eq!(f.as_str(), keys::CLEANUP_FINALIZER);
        prop_assert!(!f0.iter().any(|f| f == keys::CLEANUP_FINALIZER), "doubled");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Webhook properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The patch applies cleanly, changes only what it may, and a second pass adds nothing.
    #[test]
    fn mutate_patch_applies_is_minimal_and_idempotent(g in gen()) {
        let config = AdmissionConfig::default();
        let obj = object(&g);
        let body = review_body(&g, &obj);
        let out = review(Webhook::Mutate, &body, &config);
        let r = response(&out.body, Some(&g.uid))?;
        prop_assert_eq!(r["allowed"].as_bool(), Some(true), "mutate never denies: {}", r);
        let Some(patch) = patch_of(&r)? else {
            return Ok(());
        };
        prop_assert!(!g.deleting, "patched an object being deleted");
        let mut patched = obj.clone();
        json_patch::patch(&mut patched, &patch)
            .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}; patch {patch:?}")))?;
        check_only_allowed_changes(&obj, &patched, !g.update)?;
        if KINDS[g.kind].2 == "ConfigMap" {
            prop_assert!(patched["metadata"]["labels"].get(keys::MANAGED_LABEL)
                == obj["metadata"]["labels"].get(keys::MANAGED_LABEL), "ConfigMap marked managed");
        }

        // mutate(mutate(x)) adds nothing, as the same operation.
        let body = review_body(&g, &patched);
        let again = review(Webhook::Mutate, &body, &config);
        let r2 = response(&again.body, Some(&g.uid))?;
        prop_assert_eq!(patch_of(&r2)?.map(|p| format!("{p:?}")), None,
            "second pass patched {}", patched);
        // ... and as an UPDATE of the patched object by a later writer.
        let later = Gen { update: true, old_variant: 0, ..g.clone() };
        let body = review_body(&later, &patched);
        let again = review(Webhook::Mutate, &body, &config);
        let r3 = response(&again.body, Some(&g.uid))?;
        prop_assert_eq!(patch_of(&r3)?.map(|p| format!("{p:?}")), None,
            "update after create patched {}", patched);
    }

    /// Validation never panics, echoes the uid, explains a denial and never patches.
    #[test]
    fn validate_answers_every_generated_object(g in gen()) {
        let body = review_body(&g, &object(&g));
        let out = review(Webhook::Validate, &body, &AdmissionConfig::default());
        let r = response(&out.body, Some(&g.uid))?;
        prop_assert!(r.get("patch").is_none());
        prop_assert_eq!(&*out.decision.uid, g.uid.as_str());
        prop_assert_eq!(out.decision.allowed, r["allowed"].as_bool().unwrap_or(true));
    }

    /// Arbitrary bytes: an answer, never a panic.
    #[test]
    fn arbitrary_bodies_get_an_answer(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        for webhook in [Webhook::Validate, Webhook::Mutate] {
            let out = review(webhook, &body, &AdmissionConfig::default());
            response(&out.body, None)?;
        }
    }

    /// Structurally damaged reviews (a field replaced by a wrong type): an answer with the
    /// uid whenever the uid itself is intact.
    #[test]
    fn damaged_reviews_get_an_answer(
        g in gen(),
        path in prop::sample::select(&[
            "/request/object", "/request/oldObject", "/request/object/metadata",
            "/request/object/metadata/annotations", "/request/object/metadata/labels",
            "/request/object/metadata/finalizers", "/request/operation", "/request/kind",
            "/request/object/kind", "/request/object/apiVersion", "/request/userInfo",
            "/request/dryRun", "/apiVersion", "/request",
        ][..]),
        replacement in prop::sample::select(&[
            "null", "1", "\"x\"", "[]", "{}", "[null]", "{\"a\":1}", "true", "-0.5e400",
        ][..]),
    ) {
        let mut v: Value = serde_json::from_slice(&review_body(&g, &object(&g))).expect("json");
        let replacement: Value = serde_json::from_str(replacement).unwrap_or(Value::Null);
        if let Some(slot) = v.pointer_mut(path) {
            *slot = replacement;
        }
        let body = serde_json::to_vec(&v).expect("json");
        for webhook in [Webhook::Validate, Webhook::Mutate] {
            let out = review(webhook, &body, &AdmissionConfig::default());
            let uid_intact = path != "/request" && path != "/apiVersion";
            response(&out.body, uid_intact.then_some(g.uid.as_str()))?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Finalizer properties

#[derive(Debug, Clone)]
struct Hook {
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    finalizers: Vec<String>,
    deletion: Option<i64>,
    created: Option<i64>,
    finished: Option<i64>,
    generate_name: Option<String>,
    outcome: Outcome,
    family_rank: Option<usize>,
    settings: CleanupSettings,
    now: i64,
}

const T0: i64 = 1_790_000_000;

fn secs() -> impl Strategy<Value = Duration> {
    prop_oneof![
        8 => (0u64..20_000).prop_map(Duration::from_secs),
        1 => Just(Duration::ZERO),
        1 => Just(Duration::MAX),
    ]
}

fn time() -> impl Strategy<Value = i64> {
    T0 - 50_000..T0 + 50_000
}

fn hook() -> impl Strategy<Value = Hook> {
    let settings = (
        secs(),
        secs(),
        prop::option::of(0usize..5),
        prop::option::of(secs()),
        secs(),
    )
        .prop_map(
            |(succeeded_grace, failed_grace, keep_per_family, max_age, max_hold)| CleanupSettings {
                succeeded_grace,
                failed_grace,
                keep_per_family,
                max_age,
                max_hold,
            },
        );
    (
        (labels(), annotations(), finalizers()),
        (
            prop::option::of(time()),
            prop::option::of(time()),
            prop::option::of(time()),
        ),
        prop::option::of(prop::sample::select(&["", "migrate-"][..]).prop_map(str::to_owned)),
        prop::sample::select(&Outcome::ALL[..]),
        prop::option::of(0usize..8),
        settings,
        time(),
    )
        .prop_map(
            |(
                (labels, annotations, finalizers),
                (deletion, created, finished),
                generate_name,
                outcome,
                family_rank,
                settings,
                now,
            )| Hook {
                labels,
                annotations,
                finalizers,
                deletion,
                created,
                finished,
                generate_name,
                outcome,
                family_rank,
                settings,
                now,
            },
        )
}

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).expect("timestamp in range")
}

fn observe(h: &Hook) -> Observed {
    Observed::from_parts(
        h.labels.as_ref(),
        h.annotations.as_ref(),
        &h.finalizers,
        h.deletion.map(ts),
        h.created.map(ts),
        h.generate_name.as_deref(),
        h.outcome,
        h.finished.map(ts),
    )
}

fn apply_removal(finalizers: &[String], patch: &json_patch::Patch) -> Option<Vec<String>> {
    let mut obj = json!({"metadata": {"name": "x", "finalizers": finalizers}});
    json_patch::patch(&mut obj, patch).ok()?;
    Some(string_list(&obj["metadata"]["finalizers"]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Never deletes what is not labelled as hookguard's, never deletes what is already
    /// being deleted, and never holds a deletion past max_hold.
    #[test]
    fn finalizer_deletes_only_managed_and_never_blocks(h in hook()) {
        let observed = observe(&h);
        let action = decide(&observed, h.family_rank, &h.settings, ts(h.now));
        let labelled = h.labels.as_ref()
            .and_then(|l| l.get(keys::MANAGED_LABEL))
            .is_some_and(|v| v == keys::MANAGED_LABEL_VALUE);
        match &action {
            Action::Delete(reason) => {
                prop_assert!(labelled, "deletes an unmanaged object ({:?})", reason);
                prop_assert!(h.deletion.is_none(), "deletes an object being deleted");
            }
            Action::Release(_) => {
                prop_assert!(h.deletion.is_some(), "releases an object not being deleted");
                prop_assert!(h.finalizers.iter().any(|f| f == keys::CLEANUP_FINALIZER));
            }
            Action::WaitUntil(at) => {
                prop_assert!(*at > ts(h.now), "waits until a time already past");
                if let Some(d) = h.deletion {
                    let limit = ts(d).checked_add(
                        k8s_openapi::jiff::SignedDuration::try_from(h.settings.max_hold)
                            .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX),
                    ).unwrap_or(Timestamp::MAX);
                    prop_assert!(*at <= limit, "holds a deletion past max_hold");
                }
            }
            Action::Nothing(_) => {}
        }
        // Being deleted and holding our finalizer: released at once or by max_hold.
        if let (Some(d), true) = (h.deletion, observed.has_cleanup_finalizer) {
            prop_assert!(matches!(action, Action::Release(_) | Action::WaitUntil(_)),
                "deleting hook left holding: {:?}", action);
            let hold = h.settings.max_hold.as_secs().min(1 << 40) as i64;
            if h.now >= d.saturating_add(hold) && h.settings.max_hold != Duration::MAX {
                prop_assert!(matches!(action, Action::Release(_)), "held past max_hold");
            }
        }
    }

    /// The removal patch removes exactly one `hookguard.io/cleanup` and nothing else, and
    /// fails (instead of removing the wrong entry) when another writer changed the list.
    #[test]
    fn finalizer_removal_removes_only_its_own(
        fins in finalizers(),
        other in prop::sample::select(FINALIZERS),
        at in 0usize..6,
    ) {
        let Some(patch) = finalizer_removal_patch(&fins) else {
            prop_assert!(!fins.iter().any(|f| f == keys::CLEANUP_FINALIZER));
            return Ok(());
        };
        let after = apply_removal(&fins, &patch).ok_or_else(|| TestCaseError::fail("does not apply"))?;
        let mut expected = fins.clone();
        let i = expected.iter().position(|f| f == keys::CLEANUP_FINALIZER).expect("present");
        expected.remove(i);
        prop_assert_eq!(&after, &expected);

        // A concurrent writer added a finalizer: the guarded patch must not apply.
        let mut changed = fins.clone();
        changed.insert(at.min(changed.len()), other.to_owned());
        prop_assert!(apply_removal(&changed, &patch).is_none(),
            "patch applied to a list changed behind its back: {:?}", changed);
        // ... or removed one.
        let mut shorter = fins.clone();
        shorter.remove(at.min(shorter.len() - 1));
        prop_assert!(apply_removal(&shorter, &patch).is_none());
    }
}

// ---------------------------------------------------------------------------------------
// Policy parser

const POLICY_FRAGMENTS: &[&str] = &[
    "mode: warn\n",
    "mode: enforce\n",
    "mode: audit\n",
    "mode: [warn]\n",
    "rules:\n  missing-delete-policy: warn\n",
    "rules:\n  job-ttl-race: deny\n",
    "rules: {nope: deny}\n",
    "namespaces:\n  - names: [prod-*, payments]\n    mode: enforce\n",
    "namespaces:\n  - labels: {tier: relaxed}\n    rules: {pod-never-completes: warn}\n",
    "namespaces:\n  - names: ['[', '**', '*?*']\n",
    "mutation:\n  finalizer: false\n  kinds: [Job.batch, Pod, .x, '']\n",
    "cleanup:\n  failedGrace: 2h\n  keepNewest: null\n  maxAge: 7d\n",
    "cleanup:\n  failedGrace: 99999999999999999999d\n",
    "cleanup:\n  maxAge: -1s\n  keepNewest: -3\n",
    "&a [*a, *a]\n",
    "? {a: 1}\n: b\n",
    "---\n",
    "!!binary aGVsbG8=\n",
    "\t- x\n",
    "\u{feff}mode: warn\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn policy_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let _ = ActivePolicy::parse(&bytes, "fuzz.yaml");
    }

    #[test]
    fn policy_parser_never_panics_on_yaml_like_text(
        parts in prop::collection::vec(prop::sample::select(POLICY_FRAGMENTS), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let text = parts.concat();
        let _ = ActivePolicy::parse(text.as_bytes(), "fuzz.yaml");
        // Truncated at any byte: a partial write seen by the file watcher.
        let end = cut.index(text.len() + 1);
        let _ = ActivePolicy::parse(&text.as_bytes()[..end], "fuzz.yaml");
    }
}

/// Regression (found by `damaged_reviews_get_an_answer`): a field of the wrong type made the
/// whole review unreadable and the answer carried an empty uid, which the apiserver rejects
/// as a uid mismatch instead of showing hookguard's explanation.
#[test]
fn wrong_typed_field_still_echoes_the_uid() {
    let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
        "request":{"uid":"abc-1","operation":1,"object":{}}}"#;
    for webhook in [Webhook::Validate, Webhook::Mutate] {
        let out = review(webhook, body, &AdmissionConfig::default());
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(v["response"]["uid"], "abc-1");
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["code"], 400);
    }
}

// ---------------------------------------------------------------------------------------
// lint and translate against the webhook
//
// The generated objects above, written out as a manifest stream the way people write them:
// block YAML (keys plain where YAML reads them as the same string, values double-quoted,
// sequences indented or not, a comment line), compact JSON, or pretty JSON.

/// How one object is written in the stream.
#[derive(Debug, Clone, Copy)]
enum Style {
    /// Block YAML; `true`: sequence items indented under their key.
    Yaml(bool),
    Json,
    JsonPretty,
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        3 => any::<bool>().prop_map(Style::Yaml),
        1 => Just(Style::Json),
        1 => Just(Style::JsonPretty),
    ]
}

/// A YAML double-quoted scalar; everything outside printable ASCII is escaped, so the text
/// reads back as exactly this string whatever the YAML version's idea of line breaks.
fn yaml_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn yaml_key(k: &str) -> String {
    let plain = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_'))
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain {
        k.to_owned()
    } else {
        yaml_quoted(k)
    }
}

fn yaml_flow_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => yaml_quoted(s),
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        other => other.to_string(),
    }
}

fn non_empty_container(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

/// Block YAML lines for a non-empty mapping or sequence at `indent`.
fn yaml_block(v: &Value, indent: usize, seq_indent: bool, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                out.push_str(&format!("{pad}{}:", yaml_key(k)));
                match child {
                    Value::Object(_) if non_empty_container(child) => {
                        out.push('\n');
                        yaml_block(child, indent + 2, seq_indent, out);
                    }
                    Value::Array(_) if non_empty_container(child) => {
                        out.push('\n');
                        let at = if seq_indent { indent + 2 } else { indent };
                        yaml_block(child, at, seq_indent, out);
                    }
                    _ => out.push_str(&format!(" {}\n", yaml_flow_scalar(child))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if non_empty_container(item) {
                    // The item's first line goes right after its `- `.
                    let mut inner = String::new();
                    yaml_block(item, indent + 2, seq_indent, &mut inner);
                    out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                } else {
                    out.push_str(&format!("{pad}- {}\n", yaml_flow_scalar(item)));
                }
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", yaml_flow_scalar(v))),
    }
}

fn render(obj: &Value, style: Style) -> String {
    match style {
        Style::Yaml(seq_indent) => {
            let mut out = String::from("# generated hook\n");
            yaml_block(obj, 0, seq_indent, &mut out);
            out
        }
        Style::Json => format!("{obj}\n"),
        Style::JsonPretty => serde_json::to_string_pretty(obj).expect("serialise object") + "\n",
    }
}

fn stream(objects: &[(Value, Style)]) -> String {
    objects
        .iter()
        .map(|(o, s)| format!("---\n{}", render(o, *s)))
        .collect()
}

/// The documents of a stream as JSON (what kubectl would send), empty documents skipped.
fn parse_stream(text: &str) -> Result<Vec<Value>, TestCaseError> {
    let mut out = Vec::new();
    for doc in hookguard::lint::yaml::Documents::new(text) {
        let doc = doc.map_err(|e| TestCaseError::fail(format!("unreadable: {e}\n{text}")))?;
        if let Some(root) = doc.root {
            out.push(root.to_json());
        }
    }
    Ok(out)
}

/// The object after the mutating webhook's patch: CREATE when `managed` (label and finalizer
/// too), else an UPDATE that changes nothing (annotations only), as translate promises.
fn webhook_mutated(g: &Gen, obj: &Value, managed: bool) -> Result<(Value, bool), TestCaseError> {
    let g = Gen {
        update: !managed,
        old_variant: 0,
        ..g.clone()
    };
    let body = review_body(&g, obj);
    let out = review(Webhook::Mutate, &body, &AdmissionConfig::default());
    let r = response(&out.body, Some(&g.uid))?;
    let mut patched = obj.clone();
    let patch = patch_of(&r)?;
    if let Some(patch) = &patch {
        json_patch::patch(&mut patched, patch)
            .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}")))?;
    }
    Ok((patched, patch.is_some()))
}

#[derive(Debug, Clone)]
struct GenPolicy {
    mode: &'static str,
    rules: Vec<(usize, &'static str)>,
    /// An override: 0 none, 1 names the request's namespace, 2 a glob matching it, 3 another
    /// namespace, 4 selects by labels (unknown offline and to the webhook without a cache).
    selector: u8,
    override_mode: Option<&'static str>,
    override_rules: Vec<(usize, &'static str)>,
}

fn gen_policy() -> impl Strategy<Value = GenPolicy> {
    let mode = prop::sample::select(&["enforce", "warn", "audit"][..]);
    let action = prop::sample::select(&["deny", "warn", "off"][..]);
    // A map: a policy names each rule once.
    let rules = prop::collection::btree_map(0..RuleId::ALL.len(), action.clone(), 0..6)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>());
    (
        mode.clone(),
        rules.clone(),
        0u8..5,
        prop::option::of(mode),
        rules,
    )
        .prop_map(
            |(mode, rules, selector, override_mode, override_rules)| GenPolicy {
                mode,
                rules,
                selector,
                override_mode,
                override_rules,
            },
        )
}

fn policy_yaml(p: &GenPolicy) -> String {
    let rules = |rules: &[(usize, &str)], pad: &str| -> String {
        rules
            .iter()
            .map(|(i, a)| format!("{pad}{}: {a}\n", RuleId::ALL[*i].name()))
            .collect()
    };
    let mut y = format!("mode: {}\nrules:\n{}", p.mode, rules(&p.rules, "  "));
    if p.rules.is_empty() {
        y = format!("mode: {}\n", p.mode);
    }
    let selector = match p.selector {
        1 => "names: [apps]",
        2 => "names: [\"ap*\"]",
        3 => "names: [payments]",
        4 => "labels: {team: payments}",
        _ => return y,
    };
    y.push_str(&format!("namespaces:\n  - {selector}\n"));
    // An override must change something (the parser refuses an empty one).
    let mode = p
        .override_mode
        .or(p.override_rules.is_empty().then_some("warn"));
    if let Some(m) = mode {
        y.push_str(&format!("    mode: {m}\n"));
    }
    if !p.override_rules.is_empty() {
        y.push_str(&format!(
            "    rules:\n{}",
            rules(&p.override_rules, "      ")
        ));
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// translate(translate(x)) == translate(x), and translate writes exactly the webhook's
    /// changes: the stream it prints reads as the objects patched by the mutating webhook
    /// (CREATE with --managed, else annotations only), and keeps the comments when it could
    /// edit in place.
    #[test]
    fn translate_is_idempotent_and_writes_the_webhooks_patch(
        objects in prop::collection::vec((gen(), style()), 1..4),
    ) {
        let docs: Vec<(Value, Style)> = objects.iter().map(|(g, s)| (object(g), *s)).collect();
        let text = stream(&docs);
        prop_assert_eq!(
            parse_stream(&text)?,
            docs.iter().map(|(o, _)| o.clone()).collect::<Vec<_>>(),
            "the generator's YAML does not read back as the object:\n{}", text
        );
        let settings = hookguard::mutation::MutationSettings::default();
        for managed in [false, true] {
            let once = hookguard::lint::translate(text.as_bytes(), &settings, managed)
                .map_err(|e| TestCaseError::fail(format!("translate failed: {e}\n{text}")))?;
            let twice = hookguard::lint::translate(once.text.as_bytes(), &settings, managed)
                .map_err(|e| TestCaseError::fail(format!("translate of its output failed: {e}")))?;
            prop_assert_eq!(&twice.text, &once.text, "not idempotent (managed {})", managed);
            prop_assert_eq!(twice.changed_objects, 0);

            let mut expected = Vec::new();
            let mut changed = 0;
            for (g, _) in &objects {
                let (patched, was_patched) = webhook_mutated(g, &object(g), managed)?;
                expected.push(patched);
                changed += usize::from(was_patched);
            }
            prop_assert_eq!(once.changed_objects, changed);
            prop_assert_eq!(parse_stream(&once.text)?, expected,
                "translate (managed {}) differs from the webhook's patch:\n{}\n=>\n{}",
                managed, text, once.text);
            if changed == 0 {
                prop_assert_eq!(&once.text, &text, "changed a stream with nothing to change");
            }
            if once.reemitted_documents == 0 {
                let comments = text.lines().filter(|l| l.starts_with('#')).count();
                let kept = once.text.lines().filter(|l| l.starts_with('#')).count();
                prop_assert_eq!(comments, kept, "comments lost while editing in place");
            }
        }
    }

    /// lint and the validating webhook agree on every generated object under the same
    /// policy: the same rules fire with the same effect (lint shows `audit` as a warning, as
    /// the webhook admits), and lint fails exactly when the webhook denies.
    #[test]
    fn lint_and_webhook_agree(g in gen(), style in style(), p in gen_policy()) {
        let g = Gen { update: false, ..g };
        let obj = object(&g);
        let yaml = policy_yaml(&p);
        let active = ActivePolicy::parse(yaml.as_bytes(), "generated.yaml")
            .map_err(|e| TestCaseError::fail(format!("generated policy rejected: {e}\n{yaml}")))?;
        let config = AdmissionConfig::from_policy(std::sync::Arc::new(active.clone()));
        let body = review_body(&g, &obj);
        let out = review(Webhook::Validate, &body, &config);
        response(&out.body, Some(&g.uid))?;
        let mut webhook: Vec<(RuleId, bool)> = out.decision.rules.iter()
            .map(|(r, a)| (*r, *a == RuleAction::Deny))
            .chain(out.decision.audited.iter().map(|(r, _)| (*r, false)))
            .collect();
        webhook.sort();

        let resolve = |rule: RuleId, o: &ObjectRef| -> RuleAction {
            hookguard::cli::lint::policy_action(&active.policy, rule, o.namespace.as_deref().unwrap_or(""))
        };
        let manifest = render(&obj, style);
        let report = hookguard::lint::lint_bytes(manifest.as_bytes(), &resolve);
        prop_assert!(report.error.is_none(), "lint could not read {}: {:?}", manifest, report.error);
        prop_assert_eq!(report.objects, 1);
        let mut lint: Vec<(RuleId, bool)> = Vec::new();
        for d in &report.diagnostics {
            match d.check {
                Check::Rule(rule) => lint.push((rule, d.level == Level::Deny)),
                Check::ArgoDropsObject => prop_assert_eq!(d.level, Level::Info),
                Check::AnnotationNotString => {
                    return Err(TestCaseError::fail(format!("string annotation reported as not a string: {d:?}")));
                }
            }
        }
        lint.sort();
        prop_assert_eq!(&lint, &webhook, "policy:\n{}\nobject:\n{}", yaml, manifest);
        prop_assert_eq!(lint.iter().any(|(_, deny)| *deny), !out.decision.allowed);
    }
}
