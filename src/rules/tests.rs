//! Every catalogue rule, firing and not firing.

use super::*;
use crate::hooks::{HookModel, HookObject};
use rstest::rstest;
use serde_json::{json, Value};

fn object(kind: &str, annotations: &[(&str, &str)], extra: Value) -> HookObject<'static> {
    let (api_version, kind) = match kind {
        "Job" => ("batch/v1", "Job"),
        "Pod" => ("v1", "Pod"),
        "Workflow" => ("argoproj.io/v1alpha1", "Workflow"),
        other => ("v1", other),
    };
    let mut obj = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "hook", "namespace": "ns", "annotations": {}},
        "spec": {}
    });
    for (k, v) in annotations {
        obj["metadata"]["annotations"][*k] = json!(v);
    }
    merge(&mut obj, extra);
    serde_json::from_value(obj).expect("object view")
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn fired(kind: &str, annotations: &[(&str, &str)], extra: Value) -> Vec<Finding> {
    let obj = object(kind, annotations, extra);
    let model = HookModel::from_annotations(obj.annotations().unwrap());
    let all = check(&obj, &model);
    // The webhook asks only for some messages: the same findings, with exactly the messages
    // asked for (every rule fires somewhere in these tests, so this covers each message).
    for wanted in [
        &(|_| false) as &dyn Fn(RuleId) -> bool,
        &|r| r.name().len() % 2 == 0,
        &|r| r.name().len() % 2 == 1,
    ] {
        let some = check_for(&obj, &model, wanted);
        assert_eq!(some.len(), all.len());
        for (s, a) in some.iter().zip(&all) {
            assert_eq!((s.rule, s.annotation), (a.rule, a.annotation));
            let want = if wanted(a.rule) {
                a.message.as_str()
            } else {
                ""
            };
            assert_eq!(s.message, want);
        }
    }
    all
}

fn ids(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.rule.name()).collect()
}

/// A well-formed Job hook fires nothing (with the off-by-default rules' needs met).
fn good_job() -> Value {
    json!({"spec": {"activeDeadlineSeconds": 600, "template": {"spec": {"restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]}}}})
}

const HOOK: &str = "argocd.argoproj.io/hook";
const POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
const WAVE: &str = "argocd.argoproj.io/sync-wave";
const HELM: &str = "helm.sh/hook";
const WEIGHT: &str = "helm.sh/hook-weight";
const HELM_POLICY: &str = "helm.sh/hook-delete-policy";

#[rstest]
// unknown-hook-type
#[case("Job", &[(HOOK, "presync"), (POLICY, "HookSucceeded")], &["unknown-hook-type"], "did you mean `PreSync`?")]
#[case("Job", &[(HOOK, "PreSynch"), (POLICY, "HookSucceeded")], &["unknown-hook-type"], "silently drops this object")]
#[case("Job", &[(HOOK, ""), (POLICY, "HookSucceeded")], &["unknown-hook-type"], "is empty")]
#[case("Job", &[(HOOK, "Sync,Garbage"), (POLICY, "HookSucceeded")], &["unknown-hook-type"], "silently ignores it")]
// unknown-delete-policy
#[case("Job", &[(HOOK, "PreSync"), (POLICY, "HookSuceeded")], &["unknown-delete-policy"], "did you mean `HookSucceeded`?")]
#[case("Job", &[(HOOK, "PreSync"), (POLICY, "HookSuceeded")], &["unknown-delete-policy"], "falls back to BeforeHookCreation")]
#[case("Job", &[(HOOK, "PreSync"), (POLICY, "HookFailed,hooksucceeded")], &["unknown-delete-policy"], "uses only HookFailed")]
#[case("Job", &[(HOOK, "PreSync"), (POLICY, " ")], &["unknown-delete-policy"], "is empty")]
// invalid-sync-wave
#[case("Job", &[(HOOK, "PreSync"), (POLICY, "HookSucceeded"), (WAVE, " 5")], &["invalid-sync-wave"], "write `5`")]
#[case("Job", &[(HOOK, "PreSync"), (POLICY, "HookSucceeded"), (WAVE, "1_000")], &["invalid-sync-wave"], "write `1000`")]
#[case("Job", &[(HOOK, "PreSync"), (POLICY, "HookSucceeded"), (WAVE, "first"), (WEIGHT, "4")], &["invalid-sync-wave"], "hook-weight value 4")]
// unknown-helm-hook
#[case("Job", &[(HELM, "pre-instal"), (HELM_POLICY, "hook-succeeded")], &["unknown-helm-hook"], "did you mean `pre-install`?")]
#[case("Job", &[(HELM, "Pre-Install"), (HELM_POLICY, "hook-succeeded")], &["unknown-helm-hook"], "write `pre-install`")]
#[case("Job", &[(HELM, "pre-install,"), (HELM_POLICY, "hook-succeeded")], &["unknown-helm-hook"], "(empty item)")]
#[case("Job", &[(HELM, "test-failure"), (HELM_POLICY, "hook-succeeded")], &["unknown-helm-hook"], "Helm skips the whole resource")]
// unknown-helm-delete-policy
#[case("Job", &[(HELM, "pre-install"), (HELM_POLICY, "hook-suceeded")], &["unknown-helm-delete-policy"], "did you mean `hook-succeeded`?")]
#[case("Job", &[(HELM, "pre-install"), (HELM_POLICY, "Hook-Succeeded")], &["unknown-helm-delete-policy"], "write `hook-succeeded`")]
// invalid-hook-weight
#[case("Job", &[(HELM, "pre-install"), (HELM_POLICY, "hook-succeeded"), (WEIGHT, "high")], &["invalid-hook-weight"], "silently use 0")]
// helm-hook-ignored-by-argo
#[case("Job", &[(HELM, "pre-rollback"), (HELM_POLICY, "hook-succeeded")], &["helm-hook-ignored-by-argo"], "silently drops")]
#[case("Pod", &[(HELM, "test"), (HELM_POLICY, "hook-succeeded")], &["helm-hook-ignored-by-argo"], "never runs")]
#[case("Job", &[(HELM, "pre-upgrade,post-rollback"), (HELM_POLICY, "hook-succeeded")], &["helm-hook-ignored-by-argo"], "as PreSync only")]
// argo-overrides-helm
#[case("Job", &[(HOOK, "Sync"), (HELM, "post-install"), (POLICY, "HookSucceeded")], &["argo-overrides-helm"], "is ignored by Argo CD")]
#[case("Job", &[(HOOK, "PreDelete"), (HELM, "pre-install"), (POLICY, "HookSucceeded")], &["argo-overrides-helm"], "runs as PreSync,PreDelete")]
// skip-combined
#[case("Job", &[(HOOK, "Skip,PreSync"), (POLICY, "HookSucceeded")], &["skip-combined"], "not skipped at all")]
// delete-policy-without-hook
#[case("Job", &[(POLICY, "HookSucceeded")], &["delete-policy-without-hook"], "not a hook")]
#[case("Job", &[(HOOK, "Skip"), (POLICY, "HookSucceeded")], &["delete-policy-without-hook"], "skipped")]
#[case("Job", &[(HELM_POLICY, "hook-succeeded")], &["delete-policy-without-hook"], "helm.sh/hook-delete-policy has no effect")]
// never-cleaned
#[case("Job", &[(HOOK, "SyncFail"), (POLICY, "HookSucceeded")], &["never-cleaned"], "add HookFailed")]
#[case("Job", &[(HOOK, "PostDelete"), (POLICY, "BeforeHookCreation")], &["never-cleaned"], "stays in the cluster")]
// helm2-crd-install
#[case("CustomResourceDefinition", &[(HELM, "crd-install")], &["helm2-crd-install"], "crds/ directory")]
fn annotation_rules_fire(
    #[case] kind: &str,
    #[case] annotations: &[(&str, &str)],
    #[case] want: &[&str],
    #[case] message_part: &str,
) {
    let extra = if kind == "Job" {
        good_job()
    } else if kind == "Pod" {
        json!({"spec": {"restartPolicy": "Never", "securityContext": {"runAsNonRoot": true}}})
    } else {
        json!({})
    };
    let findings = fired(kind, annotations, extra);
    assert_eq!(ids(&findings), want, "{annotations:?}: {findings:#?}");
    assert!(
        findings.iter().any(|f| f.message.contains(message_part)),
        "{message_part:?} not in {findings:#?}"
    );
}

#[rstest]
#[case(&[(HOOK, "PreSync"), (POLICY, "HookSucceeded")])]
#[case(&[(HOOK, "PreSync,PostSync"), (POLICY, "BeforeHookCreation,HookSucceeded"), (WAVE, "-2")])]
#[case(&[(HOOK, "SyncFail"), (POLICY, "HookSucceeded,HookFailed")])]
#[case(&[(HELM, "pre-install,pre-upgrade"), (HELM_POLICY, "before-hook-creation,hook-succeeded"), (WEIGHT, "-5")])]
#[case(&[(HELM, "post-delete"), (HELM_POLICY, "hook-succeeded")])]
#[case(&[(HOOK, "PreSync"), (HELM, "pre-install"), (POLICY, "HookSucceeded")])]
#[case(&[(HOOK, "PreSync"), (HELM, "pre-install,pre-upgrade"), (POLICY, "HookSucceeded")])]
#[case(&[(HOOK, "Skip")])]
#[case(&[(WAVE, "+3")])]
#[case(&[(HOOK, " PreSync , Sync "), (POLICY, " HookFailed ,HookSucceeded")])]
fn well_formed_annotations_fire_nothing(#[case] annotations: &[(&str, &str)]) {
    let findings = fired("Job", annotations, good_job());
    assert!(findings.is_empty(), "{annotations:?}: {findings:#?}");
}

#[test]
fn job_ttl_race() {
    let mut extra = good_job();
    extra["spec"]["ttlSecondsAfterFinished"] = json!(0);
    let f = fired(
        "Job",
        &[(HOOK, "PreSync"), (POLICY, "HookSucceeded")],
        extra,
    );
    assert_eq!(ids(&f), ["job-ttl-race"]);
    assert!(f[0].message.contains("ttlSecondsAfterFinished=0"));
    // Not a hook: no hazard rules at all.
    let mut extra = good_job();
    extra["spec"]["ttlSecondsAfterFinished"] = json!(0);
    assert!(fired("Job", &[(WAVE, "1")], extra).is_empty());
}

#[test]
fn pod_never_completes() {
    let ok =
        json!({"spec": {"restartPolicy": "OnFailure", "securityContext": {"runAsNonRoot": true}}});
    assert!(fired("Pod", &[(HOOK, "PostSync"), (POLICY, "HookSucceeded")], ok).is_empty());
    let always =
        json!({"spec": {"restartPolicy": "Always", "securityContext": {"runAsNonRoot": true}}});
    let f = fired(
        "Pod",
        &[(HOOK, "PostSync"), (POLICY, "HookSucceeded")],
        always,
    );
    assert_eq!(ids(&f), ["pod-never-completes"]);
    let default = json!({"spec": {"securityContext": {"runAsNonRoot": true}}});
    let f = fired(
        "Pod",
        &[(HOOK, "PostSync"), (POLICY, "HookSucceeded")],
        default,
    );
    assert_eq!(ids(&f), ["pod-never-completes"]);
    assert!(f[0].message.contains("(the default)"));
    // A Job's pods cannot have Always; the rule is about hook Pods only.
    assert!(fired(
        "Job",
        &[(HOOK, "PostSync"), (POLICY, "HookSucceeded")],
        good_job()
    )
    .is_empty());
}

#[test]
fn never_cleaned_generate_name() {
    let mut extra = good_job();
    extra["metadata"] = json!({"name": null, "generateName": "migrate-"});
    let f = fired("Job", &[(HOOK, "PreSync")], extra.clone());
    assert_eq!(ids(&f), ["never-cleaned", "missing-delete-policy"]);
    assert!(f[0].message.contains("(the default)"));
    // A validating webhook sees the generated name filled in: still a generateName hook.
    extra["metadata"]["name"] = json!("migrate-x7k2p");
    let f = fired(
        "Job",
        &[(HOOK, "PreSync"), (POLICY, "BeforeHookCreation")],
        extra.clone(),
    );
    assert_eq!(ids(&f), ["never-cleaned"]);
    let f = fired(
        "Job",
        &[
            (HOOK, "PreSync"),
            (POLICY, "BeforeHookCreation,HookSucceeded"),
        ],
        extra,
    );
    assert!(f.is_empty());
}

#[test]
fn off_by_default_rules_fire_when_applicable() {
    let bare = json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}}});
    let f = fired("Job", &[(HOOK, "PreSync")], bare);
    assert_eq!(
        ids(&f),
        [
            "missing-delete-policy",
            "job-missing-deadline",
            "privileged-hook"
        ]
    );
    assert!(f[2].message.contains("may run as root"));
    let privileged = json!({"spec": {"activeDeadlineSeconds": 5, "template": {"spec": {"restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": true},
        "containers": [{"name": "c", "securityContext": {"privileged": true}}]}}}});
    let f = fired(
        "Job",
        &[(HOOK, "PreSync"), (POLICY, "HookSucceeded")],
        privileged,
    );
    assert_eq!(ids(&f), ["privileged-hook"]);
    assert!(f[0].message.contains("`c` runs privileged"));
    let root = json!({"spec": {"restartPolicy": "Never", "securityContext": {"runAsUser": 0}}});
    let f = fired("Pod", &[(HOOK, "PreSync"), (POLICY, "HookSucceeded")], root);
    // A pod without containers in the view has nothing to run as root.
    assert!(f.is_empty());
}

#[test]
fn every_rule_is_exercised_by_these_tests() {
    // Guards the catalogue: adding a rule without a test case here fails.
    let source = include_str!("tests.rs");
    for rule in RuleId::ALL {
        assert!(
            source.contains(&format!("\"{}\"", rule.name())),
            "no test for {rule}"
        );
    }
}

#[test]
fn huge_and_hostile_values_give_bounded_messages() {
    let huge = "x".repeat(100_000);
    let commas = ",".repeat(50_000) + "presync";
    let many = (0..1000)
        .map(|i| format!("bad{i}"))
        .collect::<Vec<_>>()
        .join(",");
    for value in [
        huge.as_str(),
        commas.as_str(),
        many.as_str(),
        "\u{0}\u{7}ñ😀",
        "PreSync\nPostSync",
    ] {
        let findings = fired(
            "Job",
            &[(HOOK, value), (POLICY, value), (WAVE, value), (HELM, value)],
            good_job(),
        );
        assert!(!findings.is_empty());
        for f in &findings {
            assert!(
                f.message.len() < 800,
                "{} bytes: {}",
                f.message.len(),
                f.message
            );
            assert!(!f.message.contains('\n'));
            assert!(f.warning().chars().count() <= 120);
        }
    }
}
