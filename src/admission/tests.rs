//! The decision on real captured reviews (tests/fixtures, from kube-apiserver 1.20.2) and on
//! malformed ones.

use super::*;
use base64::Engine;
use serde_json::{json, Value};

fn fixture(n: u32) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/admission/kube-apiserver-1.20.2/{n}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).expect("fixture")
}

fn answer(webhook: Webhook, body: &[u8]) -> (Value, Decision<'_>) {
    let out = review(webhook, body, &AdmissionConfig::default());
    let v: Value = serde_json::from_slice(&out.body).expect("response is JSON");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    (v["response"].clone(), out.decision)
}

/// Applies the response's patch to the request's object.
fn patched(body: &[u8], response: &Value) -> Value {
    let review: Value = serde_json::from_slice(body).unwrap();
    let mut object = review["request"]["object"].clone();
    if let Some(p) = response["patch"].as_str() {
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut object, &patch).expect("patch applies");
    }
    object
}

fn uid(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body).unwrap()["request"]["uid"].clone()
}

#[test]
fn argo_presync_job_is_allowed_and_marked() {
    let body = fixture(2);
    let (v, d) = answer(Webhook::Validate, &body);
    assert_eq!(v["uid"], uid(&body));
    assert_eq!(v["allowed"], true);
    assert!(v.get("warnings").is_none());
    assert_eq!(d.path, Some(Path::Evaluated));

    let (m, d) = answer(Webhook::Mutate, &body);
    assert!(d.patched);
    let obj = patched(&body, &m);
    let meta = &obj["metadata"];
    assert_eq!(meta["labels"]["hookguard.io/managed"], "true");
    assert_eq!(meta["finalizers"], json!(["hookguard.io/cleanup"]));
    assert_eq!(
        meta["annotations"]["argocd.argoproj.io/hook-delete-policy"],
        "HookSucceeded"
    );
    assert!(
        meta["annotations"].get("hookguard.io/derived").is_none(),
        "nothing was derived"
    );
}

#[test]
fn helm_pre_install_job_is_translated() {
    let body = fixture(4);
    let (m, _) = answer(Webhook::Mutate, &body);
    let obj = patched(&body, &m);
    let a = &obj["metadata"]["annotations"];
    assert_eq!(a["argocd.argoproj.io/hook"], "PreSync");
    assert_eq!(a["argocd.argoproj.io/sync-wave"], "-5");
    assert_eq!(
        a["argocd.argoproj.io/hook-delete-policy"],
        "BeforeHookCreation,HookSucceeded"
    );
    assert_eq!(
        obj["metadata"]["labels"],
        json!({"app.kubernetes.io/managed-by": "Helm", "hookguard.io/managed": "true"})
    );
    let (v, _) = answer(Webhook::Validate, &body);
    assert_eq!(v["allowed"], true);
}

#[test]
fn helm_test_pod_is_warned_and_not_managed() {
    let body = fixture(6);
    let (v, d) = answer(Webhook::Validate, &body);
    assert_eq!(v["allowed"], true);
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = warnings[0].as_str().unwrap();
    assert!(w.starts_with("[helm-hook-ignored-by-argo]"), "{w}");
    assert!(w.chars().count() <= 120);
    assert_eq!(d.verdict(), "warned");
    assert_eq!(v["auditAnnotations"]["rules"], "helm-hook-ignored-by-argo");
    let (m, _) = answer(Webhook::Mutate, &body);
    assert!(
        m.get("patch").is_none(),
        "Argo never runs it: nothing to mutate"
    );
}

#[test]
fn generate_name_workflow_with_only_before_hook_creation_is_warned_and_managed() {
    let body = fixture(7);
    let (v, _) = answer(Webhook::Validate, &body);
    assert_eq!(v["allowed"], true);
    let w = v["warnings"][0].as_str().unwrap();
    assert!(w.starts_with("[never-cleaned]"), "{w}");
    let (m, _) = answer(Webhook::Mutate, &body);
    let obj = patched(&body, &m);
    assert_eq!(
        obj["metadata"]["finalizers"],
        json!(["hookguard.io/cleanup"])
    );
    assert_eq!(obj["metadata"]["generateName"], "presync-wf-");
}

#[test]
fn objects_without_hook_annotations_are_answered_at_once() {
    for n in [1, 3, 5, 8] {
        let body = fixture(n);
        for webhook in [Webhook::Validate, Webhook::Mutate] {
            let (v, d) = answer(webhook, &body);
            assert_eq!(v["allowed"], true, "fixture {n}");
            assert!(v.get("patch").is_none());
            assert_eq!(d.path, Some(Path::NoHookAnnotations), "fixture {n}");
        }
    }
}

#[test]
fn update_of_an_explicit_hook_needs_no_patch() {
    let body = fixture(9);
    let (v, d) = answer(Webhook::Validate, &body);
    assert_eq!(v["allowed"], true);
    assert_eq!(d.operation, "UPDATE");
    let (m, _) = answer(Webhook::Mutate, &body);
    assert!(m.get("patch").is_none(), "{m}");
}

#[test]
fn dry_run_gets_the_same_answer() {
    let body = fixture(10);
    let (m, d) = answer(Webhook::Mutate, &body);
    assert!(d.dry_run);
    let obj = patched(&body, &m);
    assert_eq!(
        obj["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"],
        "BeforeHookCreation"
    );
    assert_eq!(
        obj["metadata"]["finalizers"],
        json!(["hookguard.io/cleanup"])
    );
    // Same request without dryRun: same patch.
    let mut review: Value = serde_json::from_slice(&body).unwrap();
    review["request"]["dryRun"] = json!(false);
    let (m2, _) = answer(Webhook::Mutate, &serde_json::to_vec(&review).unwrap());
    assert_eq!(m["patch"], m2["patch"]);
}

fn with_annotations(n: u32, annotations: Value) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&fixture(n)).unwrap();
    review["request"]["object"]["metadata"]["annotations"] = annotations;
    serde_json::to_vec(&review).unwrap()
}

#[test]
fn typo_in_delete_policy_is_denied_with_rule_and_fix() {
    let body = with_annotations(
        2,
        json!({"argocd.argoproj.io/hook": "PreSync",
        "argocd.argoproj.io/hook-delete-policy": "HookSuceeded"}),
    );
    let (v, d) = answer(Webhook::Validate, &body);
    assert_eq!(v["allowed"], false);
    assert_eq!(v["status"]["code"], 403);
    assert_eq!(v["status"]["reason"], "Forbidden");
    let msg = v["status"]["message"].as_str().unwrap();
    assert!(msg.contains("[unknown-delete-policy]"), "{msg}");
    assert!(msg.contains("`HookSuceeded`"), "{msg}");
    assert!(msg.contains("did you mean `HookSucceeded`?"), "{msg}");
    assert_eq!(d.verdict(), "denied");
    // The mutating webhook leaves the typo for the user to see.
    let (m, _) = answer(Webhook::Mutate, &body);
    let obj = patched(&body, &m);
    assert_eq!(
        obj["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"],
        "HookSuceeded"
    );
}

#[test]
fn several_denials_are_reported_together() {
    let body = with_annotations(
        2,
        json!({"argocd.argoproj.io/hook": "presync",
        "argocd.argoproj.io/sync-wave": "one"}),
    );
    let (v, _) = answer(Webhook::Validate, &body);
    let msg = v["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("[unknown-hook-type]") && msg.contains("[invalid-sync-wave]"),
        "{msg}"
    );
}

#[test]
fn rule_actions_are_configurable() {
    let body = with_annotations(2, json!({"argocd.argoproj.io/hook": "presync"}));
    let with = |yaml: &str| {
        let active = crate::policy::ActivePolicy::parse(yaml.as_bytes(), "test").unwrap();
        AdmissionConfig::from_policy(std::sync::Arc::new(active))
    };
    let out = review(
        Webhook::Validate,
        &body,
        &with("rules: {unknown-hook-type: warn}"),
    );
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["response"]["allowed"], true);
    assert!(v["response"]["warnings"][0]
        .as_str()
        .unwrap()
        .starts_with("[unknown-hook-type]"));
    let out = review(
        Webhook::Validate,
        &body,
        &with("rules: {unknown-hook-type: off}"),
    );
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert!(v["response"].get("warnings").is_none());
}

#[test]
fn delete_and_finalizer_only_updates_are_always_allowed() {
    // DELETE with a garbage hook annotation on oldObject.
    let mut review_v: Value = serde_json::from_slice(&fixture(9)).unwrap();
    review_v["request"]["operation"] = json!("DELETE");
    review_v["request"]["object"] = Value::Null;
    review_v["request"]["oldObject"]["metadata"]["annotations"]["argocd.argoproj.io/hook"] =
        json!("garbage");
    let body = serde_json::to_vec(&review_v).unwrap();
    let (v, d) = answer(Webhook::Validate, &body);
    assert_eq!(v["allowed"], true);
    assert_eq!(d.path, Some(Path::Exempt));
    let (m, _) = answer(Webhook::Mutate, &serde_json::to_vec(&review_v).unwrap());
    assert!(
        m.get("patch").is_none(),
        "a patch on DELETE is rejected by the apiserver"
    );

    // UPDATE removing finalizers from a hook whose annotations are invalid.
    let mut review_v: Value = serde_json::from_slice(&fixture(9)).unwrap();
    for o in ["object", "oldObject"] {
        review_v["request"][o]["metadata"]["annotations"]
            ["argocd.argoproj.io/hook-delete-policy"] = json!("Typo");
    }
    review_v["request"]["oldObject"]["metadata"]["finalizers"] =
        json!(["argocd.argoproj.io/hook-finalizer", "hookguard.io/cleanup"]);
    review_v["request"]["object"]["metadata"]["finalizers"] = json!(["hookguard.io/cleanup"]);
    // Make the objects otherwise identical (the fixture's UPDATE also adds an annotation).
    review_v["request"]["object"]["metadata"]["annotations"] =
        review_v["request"]["oldObject"]["metadata"]["annotations"].clone();
    review_v["request"]["object"]["metadata"]["managedFields"] = json!([]);
    let spec = review_v["request"]["oldObject"]["spec"].clone();
    review_v["request"]["object"]["spec"] = spec;
    let status = review_v["request"]["oldObject"]["status"].clone();
    review_v["request"]["object"]["status"] = status;
    let body = serde_json::to_vec(&review_v).unwrap();
    let (v, d) = answer(Webhook::Validate, &body);
    assert_eq!(v["allowed"], true, "{v}");
    assert_eq!(d.path, Some(Path::Exempt));

    // The same UPDATE that also changes a label is evaluated (and denied for the typo).
    review_v["request"]["object"]["metadata"]["labels"]["x"] = json!("y");
    let (v, _) = answer(Webhook::Validate, &serde_json::to_vec(&review_v).unwrap());
    assert_eq!(v["allowed"], false);

    // Any UPDATE of an object with deletionTimestamp is allowed.
    review_v["request"]["object"]["metadata"]["deletionTimestamp"] = json!("2026-11-21T14:20:00Z");
    let body = serde_json::to_vec(&review_v).unwrap();
    let (v, d) = answer(Webhook::Validate, &body);
    assert_eq!(v["allowed"], true);
    assert_eq!(d.path, Some(Path::Exempt));
}

#[test]
fn unreadable_reviews_get_invalid_responses() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not JSON"),
        (b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Admis".to_vec(), "not JSON"),
        (b"[]".to_vec(), "not an AdmissionReview"),
        (b"{}".to_vec(), "apiVersion"),
        (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u1"}}"#.to_vec(), "expected \"admission.k8s.io/v1\""),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"u1"}}"#.to_vec(), "kind"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), "no request"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#.to_vec(), "no uid"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","operation":"PATCH"}}"#.to_vec(), "unknown operation"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","operation":"CREATE","object":null}}"#.to_vec(), "null on CREATE"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","operation":"CREATE","object":"helm.sh"}}"#.to_vec(), "not a readable object"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#.to_vec(), "not an AdmissionReview"),
        (vec![0xff, 0xfe, 0x00], "not JSON"),
    ];
    for (body, expected) in cases {
        for webhook in [Webhook::Validate, Webhook::Mutate] {
            let (v, d) = answer(webhook, &body);
            assert_eq!(v["allowed"], false, "{}", String::from_utf8_lossy(&body));
            assert_eq!(v["status"]["code"], 400);
            let msg = v["status"]["message"].as_str().unwrap();
            assert!(msg.contains(expected), "{expected:?} not in {msg:?}");
            assert_eq!(d.verdict(), "invalid");
        }
    }
    // A byte that is not UTF-8, even in a field hookguard never reads, makes the body
    // unreadable (JSON is UTF-8; the apiserver never sends such bytes); the uid is still echoed.
    let mut body = fixture(2);
    let at = body
        .windows(8)
        .position(|w| w == b"kubectl-")
        .expect("managedFields manager in fixture 2");
    body[at] = 0xff;
    for webhook in [Webhook::Validate, Webhook::Mutate] {
        let (v, d) = answer(webhook, &body);
        assert_eq!(v["allowed"], false);
        assert_eq!(v["uid"], "9674415a-c099-41d3-b2d4-51bc1758b54a");
        let msg = v["status"]["message"].as_str().unwrap();
        assert!(msg.contains("not UTF-8"), "{msg}");
        // std's second look says where.
        assert!(msg.contains(&format!("from index {at}")), "{msg}");
        assert_eq!(d.verdict(), "invalid");
    }
    // The uid is echoed whenever it could be read.
    let (v, _) = answer(
        Webhook::Validate,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","operation":"CREATE"}}"#,
    );
    assert_eq!(v["uid"], "u1");
}

#[test]
fn hostile_annotation_values_are_handled() {
    let huge = "PreSync,".repeat(100_000);
    let body = with_annotations(
        2,
        json!({"argocd.argoproj.io/hook": huge,
        "argocd.argoproj.io/hook-delete-policy": ",".repeat(10_000),
        "helm.sh/hook": "pré-install😀\u{0}",
        "argocd.argoproj.io/sync-wave": "٣"}),
    );
    let (v, _) = answer(Webhook::Validate, &body);
    assert_eq!(v["allowed"], false);
    let msg = v["status"]["message"].as_str().unwrap();
    assert!(msg.len() < 4000, "{}", msg.len());
    let (m, _) = answer(Webhook::Mutate, &body);
    patched(&body, &m);
}

/// The body's UTF-8 is checked byte for byte wherever a byte sits: simdutf8 works in blocks
/// of 64 bytes, so each piece is tried at 65 consecutive offsets, which puts every multi-byte
/// one across a block's end at least once. A well-formed sequence reads back as written, a
/// malformed one makes the body unreadable and the message says where it starts.
#[test]
fn utf8_is_checked_at_every_offset() {
    const PLACE: &str = "@@";
    let good = ["é", "€", "😀", "\u{7f}", "\u{10ffff}"];
    // Overlong `/`, a UTF-16 surrogate, a cut-off three-byte sequence, above U+10FFFF, a
    // lone continuation byte.
    let bad: [&[u8]; 5] = [
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xe2\x82",
        b"\xf4\x90\x80\x80",
        b"\x80",
    ];
    for pad in 0..=64 {
        let note = |value: &str| {
            with_annotations(
                2,
                json!({"argocd.argoproj.io/hook": "PreSync", "note": value}),
            )
        };
        for piece in good {
            let value = format!("{}{piece}", "x".repeat(pad));
            let body = note(&value);
            let Ok(Request {
                object: WireObject::Object(object),
                ..
            }) = Request::parse(&body)
            else {
                panic!("{value:?} not read");
            };
            let read = object.annotations().and_then(|a| a.get("note"));
            assert_eq!(read.map(|v| &**v), Some(&*value));
            assert_eq!(answer(Webhook::Validate, &body).0["allowed"], true);
        }
        for piece in bad {
            let mut body = note(&format!("{}{PLACE}", "x".repeat(pad)));
            let at = body
                .windows(PLACE.len())
                .position(|w| w == PLACE.as_bytes())
                .expect("the placeholder");
            body.splice(at..at + PLACE.len(), piece.iter().copied());
            let (v, d) = answer(Webhook::Validate, &body);
            assert_eq!(v["allowed"], false);
            let msg = v["status"]["message"].as_str().unwrap();
            assert!(msg.contains("not UTF-8"), "{msg}");
            assert!(
                msg.contains(&format!("from index {at}")),
                "{piece:?} at {at}: {msg}"
            );
            assert_eq!(d.verdict(), "invalid");
        }
    }
}

/// The patch the webhook sends, written straight from the changes and base64-encoded by
/// hand, is byte for byte what the `Patch` path (`to_json_patch`, `patch_json`, the
/// `base64` crate) writes, on every captured review.
#[test]
fn sent_patches_match_the_patch_path_on_every_fixture() {
    let config = AdmissionConfig::default();
    let mut patched_reviews = 0;
    for n in 1..=10 {
        let body = fixture(n);
        let out = review(Webhook::Mutate, &body, &config);
        let v: Value = serde_json::from_slice(&out.body).unwrap();
        let sent = v["response"]["patch"].as_str();
        let want = match Request::parse(&body) {
            Ok(Request {
                object: WireObject::Object(object),
                operation,
                ..
            }) if out.decision.path == Some(Path::Evaluated) => {
                let empty = BTreeMap::new();
                let model = HookModel::from_annotations(object.annotations().unwrap_or(&empty));
                let stage = if operation == Operation::Create {
                    Stage::Create
                } else {
                    Stage::Update
                };
                let changes = mutation::plan(&object, &model, &config.mutation, stage);
                let patch = mutation::to_json_patch(&object, &changes);
                (!patch.0.is_empty()).then(|| {
                    base64::engine::general_purpose::STANDARD.encode(mutation::patch_json(&patch))
                })
            }
            _ => None,
        };
        assert_eq!(sent, want.as_deref(), "fixture {n}");
        patched_reviews += usize::from(sent.is_some());
    }
    assert!(patched_reviews >= 2, "{patched_reviews}");
}

/// The review's strings are the body's own bytes unless the JSON escaped them (then they are
/// unescaped copies), so a review costs no copies of its names, annotations or user.
#[test]
fn strings_are_borrowed_from_the_body_unless_escaped() {
    use std::borrow::Cow;
    let borrowed = |s: &Cow<'_, str>| matches!(s, Cow::Borrowed(_));
    let body = fixture(2);
    let req = Request::parse(&body).unwrap();
    assert!(borrowed(&req.uid) && borrowed(&req.name) && borrowed(&req.namespace));
    assert!(borrowed(&req.user));
    // `Kind.group` is joined, so it is the one string of its own.
    assert_eq!(req.kind, "Job.batch");
    let WireObject::Object(object) = &req.object else {
        panic!("fixture 2 has an object")
    };
    let annotations = object.annotations().unwrap();
    assert!(annotations.iter().all(|(k, v)| borrowed(k) && borrowed(v)));
    assert_eq!(
        object.annotation(crate::hooks::keys::ARGO_HOOK),
        Some("PreSync")
    );

    let mut review_v: Value = serde_json::from_slice(&body).unwrap();
    review_v["request"]["name"] = json!("a\"b");
    review_v["request"]["object"]["metadata"]["annotations"]["x\ty"] = json!("\u{e9}\n");
    let body = serde_json::to_vec(&review_v).unwrap();
    let req = Request::parse(&body).unwrap();
    assert_eq!(req.name, "a\"b");
    assert!(!borrowed(&req.name));
    let WireObject::Object(object) = &req.object else {
        panic!("the object is still there")
    };
    assert_eq!(object.annotation("x\ty"), Some("\u{e9}\n"));
    let out = review(Webhook::Validate, &body, &AdmissionConfig::default());
    assert_eq!(out.decision.name, "a\"b");
}
