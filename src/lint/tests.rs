use super::*;

use crate::mutation::MutationSettings;

fn defaults(rule: RuleId, _: &ObjectRef) -> Action {
    rule.default_action()
}

fn lint(text: &str) -> StreamReport {
    lint_bytes(text.as_bytes(), &defaults)
}

fn checks(report: &StreamReport) -> Vec<(usize, &'static str, &'static str)> {
    report
        .diagnostics
        .iter()
        .map(|d| (d.object.line, d.check.name(), d.level.as_str()))
        .collect()
}

fn translate_text(text: &str, managed: bool) -> String {
    let out =
        translate(text.as_bytes(), &MutationSettings::default(), managed).expect("translates");
    let again =
        translate(out.text.as_bytes(), &MutationSettings::default(), managed).expect("translates");
    assert_eq!(again.text, out.text, "translate is not idempotent");
    assert_eq!(again.changed_objects, 0);
    out.text
}

#[test]
fn dropped_object_is_reported_with_argo_fate() {
    let r = lint("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: m\n  annotations:\n    argocd.argoproj.io/hook: presync\n");
    assert_eq!(
        checks(&r),
        vec![
            (1, "unknown-hook-type", "deny"),
            (1, "argo-drops-object", "info")
        ]
    );
    assert_eq!(
        r.diagnostics[1].message,
        "Argo CD will silently drop this object from the sync: no valid hook type in `presync`"
    );
    assert_eq!(r.diagnostics[0].annotation_line, Some(6));
}

#[test]
fn the_resolver_decides_actions() {
    let text = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: m\n  annotations:\n    argocd.argoproj.io/hook: presync\n";
    let all_warn = |_: RuleId, _: &ObjectRef| Action::Warn;
    let r = lint_bytes(text.as_bytes(), &all_warn);
    assert_eq!(checks(&r)[0], (1, "unknown-hook-type", "warn"));
    let off = |_: RuleId, _: &ObjectRef| Action::Off;
    let r = lint_bytes(text.as_bytes(), &off);
    // Argo CD's fate is a fact, not a rule: it is still reported.
    assert_eq!(checks(&r), vec![(1, "argo-drops-object", "info")]);
}

#[test]
fn non_string_annotations_are_errors() {
    let r = lint("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    argocd.argoproj.io/sync-wave: 5\n    helm.sh/resource-policy: keep\n    enabled: yes\n    empty:\nspec: {restartPolicy: Never}\n");
    let names: Vec<_> = r
        .diagnostics
        .iter()
        .filter(|d| d.check == Check::AnnotationNotString)
        .map(|d| (d.annotation.clone().unwrap_or_default(), d.level))
        .collect();
    assert_eq!(
        names,
        vec![
            ("argocd.argoproj.io/sync-wave".to_owned(), Level::Error),
            ("enabled".to_owned(), Level::Error),
            ("empty".to_owned(), Level::Error),
        ]
    );
}

#[test]
fn lists_are_unpacked_with_item_lines() {
    let r = lint("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: a\n    annotations: {argocd.argoproj.io/hook: Sync}\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: b\n    annotations: {argocd.argoproj.io/hook: Sync}\n  spec: {restartPolicy: Never}\n");
    assert_eq!(r.objects, 2);
    assert_eq!(checks(&r), vec![(4, "pod-never-completes", "deny")]);
    assert_eq!(lint("kind: List\napiVersion: v1\nitems: null\n").objects, 0);
}

#[test]
fn unreadable_streams() {
    let r = lint("a: [1\n");
    assert!(r
        .error
        .as_ref()
        .is_some_and(|e| e.message.starts_with("YAML syntax error")));
    let r = lint("kind: Pod\n---\n- a\n- b\n");
    assert_eq!(r.error.as_ref().and_then(|e| e.line), Some(3));
    let r = lint("metadata: {name: x}\n");
    assert!(r
        .error
        .as_ref()
        .is_some_and(|e| e.message.contains("no `kind`")));
    let r = lint_bytes(b"kind: Pod\nmetadata: {name: \"\xff\"}\n", &defaults);
    let e = r.error.expect("an error");
    assert_eq!((e.line, e.col), (Some(2), Some(19)));
    // Empty documents and a byte-order mark are fine.
    let r = lint("\u{feff}---\n---\n# nothing\n...\n");
    assert_eq!((r.error, r.objects), (None, 0));
}

#[test]
fn translate_block_yaml_keeps_comments_and_order() {
    let text = "# lead comment\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: setup # trailing\n  annotations:\n    helm.sh/hook: pre-install\n    helm.sh/hook-weight: \"-5\"\nspec:\n  template: {}\n";
    let out = translate_text(text, false);
    assert_eq!(
        out,
        "# lead comment\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: setup # trailing\n  annotations:\n    argocd.argoproj.io/hook: \"PreSync\"\n    argocd.argoproj.io/sync-wave: \"-5\"\n    argocd.argoproj.io/hook-delete-policy: \"BeforeHookCreation\"\n    hookguard.io/derived: \"hook=PreSync from helm.sh/hook; sync-wave=-5 from helm.sh/hook-weight; hook-delete-policy=BeforeHookCreation (Argo CD default)\"\n    helm.sh/hook: pre-install\n    helm.sh/hook-weight: \"-5\"\nspec:\n  template: {}\n"
    );
}

#[test]
fn translate_replaces_a_clean_argo_policy_in_place() {
    let text = "kind: Job\napiVersion: batch/v1\nmetadata:\n  name: j\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n    argocd.argoproj.io/hook-delete-policy: HookSucceeded   # keep\n    helm.sh/hook-delete-policy: hook-failed\n";
    let out = translate_text(text, false);
    assert!(
        out.contains(
            "argocd.argoproj.io/hook-delete-policy: \"HookSucceeded,HookFailed\"   # keep\n"
        ),
        "{out}"
    );
}

#[test]
fn translate_managed_adds_label_and_finalizer() {
    let text = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n  labels:\n    app: x\n  finalizers:\n  - example.com/keep\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n    argocd.argoproj.io/hook-delete-policy: HookSucceeded\n";
    let out = translate_text(text, true);
    assert_eq!(
        out,
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n  labels:\n    hookguard.io/managed: \"true\"\n    app: x\n  finalizers:\n  - example.com/keep\n  - \"hookguard.io/cleanup\"\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n    argocd.argoproj.io/hook-delete-policy: HookSucceeded\n"
    );
    // Without --managed nothing is needed here.
    assert_eq!(translate_text(text, false), text);
    // Absent maps are created.
    let bare = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    argocd.argoproj.io/hook: Sync\n    argocd.argoproj.io/hook-delete-policy: HookSucceeded\nspec:\n  restartPolicy: Never\n";
    let out = translate_text(bare, true);
    assert!(out.contains("  labels:\n    hookguard.io/managed: \"true\"\n  finalizers:\n    - \"hookguard.io/cleanup\"\n"), "{out}");
}

#[test]
fn translate_json_stays_json() {
    let text = "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\",\n  \"metadata\": {\n    \"name\": \"p\",\n    \"annotations\": {\"helm.sh/hook\": \"post-install\"},\n    \"finalizers\": []\n  }\n}\n";
    let out = translate_text(text, true);
    let value: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
    assert_eq!(
        value["metadata"]["annotations"]["argocd.argoproj.io/hook"],
        "PostSync"
    );
    assert_eq!(
        value["metadata"]["finalizers"],
        serde_json::json!(["hookguard.io/cleanup"])
    );
    assert_eq!(value["metadata"]["labels"]["hookguard.io/managed"], "true");
}

#[test]
fn translate_lists_and_untouched_documents() {
    let text = "---\n# not a hook\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n\n---\napiVersion: v1\nkind: List\nitems:\n  - apiVersion: batch/v1\n    kind: Job\n    metadata:\n      name: a\n      annotations:\n        helm.sh/hook: post-upgrade\n";
    let out = translate_text(text, false);
    assert!(out.starts_with(
        "---\n# not a hook\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n\n---\n"
    ));
    assert!(
        out.contains("      annotations:\n        argocd.argoproj.io/hook: \"PostSync\"\n"),
        "{out}"
    );
}

#[test]
fn translate_falls_back_to_json_for_shared_nodes() {
    let text = "x-common: &ann\n  helm.sh/hook: pre-install\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n  annotations: *ann\n";
    let out = translate(text.as_bytes(), &MutationSettings::default(), false).expect("translates");
    assert_eq!(out.reemitted_documents, 1);
    let value: serde_json::Value = serde_json::from_str(&out.text).expect("JSON");
    assert_eq!(
        value["metadata"]["annotations"]["argocd.argoproj.io/hook"],
        "PreSync"
    );
    assert_eq!(
        value["x-common"]["helm.sh/hook"], "pre-install",
        "the anchor itself is unchanged"
    );
    // Key order is the document's.
    assert!(out.text.find("\"x-common\"") < out.text.find("\"apiVersion\""));
    let again = translate(out.text.as_bytes(), &MutationSettings::default(), false).unwrap();
    assert_eq!(again.text, out.text);
}

#[test]
fn translate_refuses_unreadable_input() {
    assert!(translate(b"a: [\n", &MutationSettings::default(), false).is_err());
    assert!(translate(b"kind: Pod\n\xfe\n", &MutationSettings::default(), false).is_err());
    // Non-objects are passed through untouched.
    assert_eq!(translate_text("- a\n- b\n", false), "- a\n- b\n");
}

#[test]
fn translate_leaves_typos_for_lint() {
    let text = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n  annotations:\n    argocd.argoproj.io/hook: presync\n";
    assert_eq!(translate_text(text, true), text);
}
