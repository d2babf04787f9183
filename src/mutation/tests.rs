use super::*;
use crate::hooks::{HookModel, HookObject};
use rstest::rstest;
use serde_json::{json, Value};

fn run(obj: &Value, settings: &MutationSettings, stage: Stage) -> (Patch, Value) {
    let view: HookObject = serde_json::from_value(obj.clone()).unwrap();
    let empty = Default::default();
    let model = HookModel::from_annotations(view.annotations().unwrap_or(&empty));
    let changes = plan(&view, &model, settings, stage);
    let patch = to_json_patch(&view, &changes);
    // What the webhook sends is the same document serde would write.
    let sent: Value = serde_json::from_slice(&patch_json(&patch)).unwrap();
    assert_eq!(sent, serde_json::to_value(&patch).unwrap());
    // The webhook writes the bytes straight from the changes: the same bytes exactly.
    let direct = json_patch_bytes(&view, &changes);
    if patch.0.is_empty() {
        assert!(direct.is_empty());
    } else {
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            String::from_utf8(patch_json(&patch)).unwrap()
        );
    }
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &patch).expect("patch applies");
    (patch, patched)
}

/// Mutates, checks that a second pass adds nothing, returns the patched object.
fn mutate(obj: Value) -> Value {
    let settings = MutationSettings::default();
    let (_, patched) = run(&obj, &settings, Stage::Create);
    let (again, _) = run(&patched, &settings, Stage::Create);
    assert!(again.0.is_empty(), "second pass patched again: {again:?}");
    patched
}

fn job(metadata: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": {}})
}

#[test]
fn helm_hook_is_translated_with_absent_maps() {
    let out = mutate(job(json!({"name": "setup", "annotations": {
        "helm.sh/hook": "pre-install,pre-upgrade", "helm.sh/hook-weight": "-5",
        "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded"}})));
    let a = &out["metadata"]["annotations"];
    assert_eq!(a["argocd.argoproj.io/hook"], "PreSync");
    assert_eq!(a["argocd.argoproj.io/sync-wave"], "-5");
    assert_eq!(
        a["argocd.argoproj.io/hook-delete-policy"],
        "BeforeHookCreation,HookSucceeded"
    );
    assert_eq!(
        a["helm.sh/hook"], "pre-install,pre-upgrade",
        "Helm annotations are kept"
    );
    assert!(a["hookguard.io/derived"]
        .as_str()
        .unwrap()
        .contains("hook=PreSync from helm.sh/hook"));
    assert_eq!(
        out["metadata"]["labels"],
        json!({"hookguard.io/managed": "true"})
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["hookguard.io/cleanup"])
    );
}

#[test]
fn argo_hook_gets_explicit_default_policy_and_keeps_everything_else() {
    let out = mutate(job(json!({"name": "migrate",
        "labels": {"app": "db"},
        "finalizers": ["argocd.argoproj.io/hook-finalizer"],
        "annotations": {"argocd.argoproj.io/hook": "PreSync",
            "argocd.argoproj.io/tracking-id": "app:batch/Job:ns/migrate"}})));
    let m = &out["metadata"];
    assert_eq!(
        m["annotations"]["argocd.argoproj.io/hook-delete-policy"],
        "BeforeHookCreation"
    );
    assert_eq!(
        m["annotations"]["argocd.argoproj.io/tracking-id"],
        "app:batch/Job:ns/migrate"
    );
    assert_eq!(
        m["annotations"]["hookguard.io/derived"],
        "hook-delete-policy=BeforeHookCreation (Argo CD default)"
    );
    assert_eq!(
        m["labels"],
        json!({"app": "db", "hookguard.io/managed": "true"})
    );
    assert_eq!(
        m["finalizers"],
        json!(["argocd.argoproj.io/hook-finalizer", "hookguard.io/cleanup"])
    );
}

#[test]
fn explicit_valid_policy_needs_no_annotation_change() {
    let obj = job(
        json!({"name": "m", "annotations": {"argocd.argoproj.io/hook": "Sync",
        "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}}),
    );
    let (patch, out) = run(&obj, &MutationSettings::default(), Stage::Update);
    assert!(
        patch.0.is_empty(),
        "UPDATE of a fully explicit hook changes nothing: {patch:?}"
    );
    assert_eq!(out, obj);
}

#[rstest]
#[case(json!({"argocd.argoproj.io/hook": "PreSync", "argocd.argoproj.io/hook-delete-policy": "HookSuceeded"}))]
#[case(json!({"argocd.argoproj.io/hook": "PreSync", "argocd.argoproj.io/hook-delete-policy": ""}))]
#[case(json!({"argocd.argoproj.io/hook": "PreSync", "argocd.argoproj.io/sync-wave": "1_0", "helm.sh/hook-weight": "3",
    "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}))]
fn invalid_user_values_are_never_overwritten(#[case] annotations: Value) {
    let obj = job(json!({"name": "m", "annotations": annotations.clone()}));
    let (_, out) = run(&obj, &MutationSettings::default(), Stage::Update);
    for (k, v) in annotations.as_object().unwrap() {
        assert_eq!(&out["metadata"]["annotations"][k], v, "{k} was changed");
    }
}

#[test]
fn helm_policies_are_added_to_a_valid_argo_policy() {
    let out = mutate(job(
        json!({"name": "m", "annotations": {"argocd.argoproj.io/hook": "PostSync",
        "argocd.argoproj.io/hook-delete-policy": "HookFailed", "helm.sh/hook-delete-policy": "hook-succeeded"}}),
    ));
    assert_eq!(
        out["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"],
        "HookFailed,HookSucceeded"
    );
}

#[rstest]
#[case(json!({"argocd.argoproj.io/hook": "Skip"}))]
#[case(json!({"argocd.argoproj.io/hook": "presync"}))]
#[case(json!({"helm.sh/hook": "test"}))]
#[case(json!({"helm.sh/hook": "crd-install"}))]
#[case(json!({"argocd.argoproj.io/sync-wave": "2", "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}))]
#[case(json!({"unrelated": "x"}))]
fn objects_argo_does_not_run_as_hooks_are_untouched(#[case] annotations: Value) {
    let obj = job(json!({"name": "m", "annotations": annotations}));
    let (patch, _) = run(&obj, &MutationSettings::default(), Stage::Create);
    assert!(patch.0.is_empty(), "{patch:?}");
}

#[test]
fn label_and_finalizer_only_on_create_for_managed_kinds() {
    let obj = job(
        json!({"name": "m", "annotations": {"argocd.argoproj.io/hook": "PreSync",
        "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}}),
    );
    let (patch, _) = run(&obj, &MutationSettings::default(), Stage::Update);
    assert!(patch.0.is_empty());
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c",
        "annotations": {"argocd.argoproj.io/hook": "PreSync", "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}}});
    let (patch, _) = run(&cm, &MutationSettings::default(), Stage::Create);
    assert!(
        patch.0.is_empty(),
        "ConfigMap is not a managed kind: {patch:?}"
    );
    let wf = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "wf-",
        "annotations": {"argocd.argoproj.io/hook": "PreSync", "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}}});
    let out = mutate(wf);
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["hookguard.io/cleanup"])
    );
}

#[test]
fn finalizer_switch_and_opt_out_label() {
    let obj = job(
        json!({"name": "m", "annotations": {"argocd.argoproj.io/hook": "PreSync",
        "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}}),
    );
    let settings = MutationSettings {
        add_finalizer: false,
        ..Default::default()
    };
    let (_, out) = run(&obj, &settings, Stage::Create);
    assert_eq!(out["metadata"]["labels"]["hookguard.io/managed"], "true");
    assert!(out["metadata"].get("finalizers").is_none());

    let opted_out = job(
        json!({"name": "m", "labels": {"hookguard.io/managed": "false"},
        "annotations": {"argocd.argoproj.io/hook": "PreSync", "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}}),
    );
    let (patch, _) = run(&opted_out, &MutationSettings::default(), Stage::Create);
    assert!(patch.0.is_empty());
}

#[test]
fn nothing_is_added_to_an_object_being_deleted() {
    let obj = job(
        json!({"name": "m", "deletionTimestamp": "2026-11-21T00:00:00Z",
        "annotations": {"helm.sh/hook": "pre-install"}}),
    );
    let (patch, _) = run(&obj, &MutationSettings::default(), Stage::Create);
    assert!(patch.0.is_empty());
}

#[test]
fn keys_are_escaped_in_pointers() {
    let obj = job(
        json!({"name": "m", "annotations": {"helm.sh/hook": "post-install"}, "labels": {}, "finalizers": []}),
    );
    let (patch, _) = run(&obj, &MutationSettings::default(), Stage::Create);
    let text = serde_json::to_string(&patch).unwrap();
    assert!(
        text.contains("/metadata/annotations/argocd.argoproj.io~1hook"),
        "{text}"
    );
    assert!(
        text.contains("/metadata/labels/hookguard.io~1managed"),
        "{text}"
    );
    assert!(text.contains("/metadata/finalizers/-"), "{text}");
    let tilde = pointer(&["metadata", "annotations", "a~b/c"]);
    assert_eq!(tilde.as_str(), "/metadata/annotations/a~0b~1c");
}

#[test]
fn offline_stage_adds_label_only_when_asked() {
    let obj = job(json!({"name": "m", "annotations": {"helm.sh/hook": "post-install"}}));
    let (_, out) = run(
        &obj,
        &MutationSettings::default(),
        Stage::Offline { managed: false },
    );
    assert!(out["metadata"].get("labels").is_none());
    assert_eq!(
        out["metadata"]["annotations"]["argocd.argoproj.io/hook"],
        "PostSync"
    );
    let (_, out) = run(
        &obj,
        &MutationSettings::default(),
        Stage::Offline { managed: true },
    );
    assert_eq!(out["metadata"]["labels"]["hookguard.io/managed"], "true");
}

#[test]
fn delete_hooks_are_made_explicit() {
    let out = mutate(job(
        json!({"name": "cleanup", "annotations": {"helm.sh/hook": "post-delete",
        "helm.sh/hook-delete-policy": "hook-succeeded"}}),
    ));
    assert_eq!(
        out["metadata"]["annotations"]["argocd.argoproj.io/hook"],
        "PostDelete"
    );
    assert_eq!(
        out["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"],
        "HookSucceeded"
    );
}

#[test]
fn hand_written_patches_match_serde_for_every_operation() {
    let patch: Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/metadata/annotations/argocd.argoproj.io~1hook", "value": "PreSync"},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "a~b\"c"},
        {"op": "add", "path": "/metadata/labels", "value": {"k": "v", "n": 1, "l": [true, null]}},
        {"op": "remove", "path": "/metadata/x"},
        {"op": "test", "path": "/kind", "value": "Job"}
    ]))
    .unwrap();
    let ours: Value = serde_json::from_slice(&patch_json(&patch)).unwrap();
    assert_eq!(ours, serde_json::to_value(&patch).unwrap());
    assert_eq!(patch_json(&Patch(Vec::new())), b"[]");
}

/// `json_patch_bytes` against `patch_json(&to_json_patch(..))` for changes `plan` does not
/// make on its own (annotation map for absent annotations, no metadata, odd keys), over
/// every shape of metadata.
#[test]
fn direct_patch_bytes_match_the_patch_for_every_shape() {
    let metadatas = [
        None,
        Some(json!({})),
        Some(json!({"annotations": {}})),
        Some(json!({"annotations": {"x": "y"}, "labels": {}, "finalizers": []})),
        Some(json!({"labels": {"a": "b"}})),
        Some(json!({"finalizers": ["f"]})),
    ];
    let annotation_sets: [Vec<(&'static str, String)>; 4] = [
        vec![],
        vec![(crate::hooks::keys::ARGO_HOOK, "PreSync".into())],
        vec![
            (crate::hooks::keys::ARGO_HOOK, "PreSync,PostSync".into()),
            (crate::hooks::keys::ARGO_SYNC_WAVE, "-3".into()),
            (
                crate::hooks::keys::ARGO_DELETE_POLICY,
                "HookSucceeded".into(),
            ),
            (
                crate::hooks::keys::HOOKGUARD_DERIVED,
                "hook=PreSync from helm.sh/hook; \"quoted\" \\ \u{1} é".into(),
            ),
        ],
        vec![
            ("z~/\"odd\"/~key", "v".into()),
            ("a/b~c", "line\nbreak".into()),
        ],
    ];
    let mut cases = 0;
    for metadata in &metadatas {
        let mut obj = json!({"apiVersion": "batch/v1", "kind": "Job"});
        if let Some(m) = metadata {
            obj["metadata"] = m.clone();
        }
        let view: HookObject = serde_json::from_value(obj).unwrap();
        for annotations in &annotation_sets {
            for add_managed_label in [false, true] {
                for add_finalizer in [false, true] {
                    let changes = MetadataChanges {
                        annotations: annotations.clone(),
                        add_managed_label,
                        add_finalizer,
                    };
                    let patch = to_json_patch(&view, &changes);
                    let direct = json_patch_bytes(&view, &changes);
                    if patch.0.is_empty() {
                        assert!(direct.is_empty(), "{changes:?}");
                    } else {
                        assert_eq!(
                            String::from_utf8(direct).unwrap(),
                            String::from_utf8(patch_json(&patch)).unwrap(),
                            "{metadata:?} {changes:?}"
                        );
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 6 * 4 * 4);
}
