//! The annotation parsers and everything that reads them: `HookModel::from_annotations`,
//! `argo_csv`/`helm_csv`/`go_atoi`, the rule catalogue, the mutation plan and its patch.
//! Input: NUL-separated `key=value` entries; a key that is one digit 0-5 stands for the
//! corresponding hook annotation, so the fuzzer reaches all six without guessing them.
#![no_main]

use hookguard::hooks::{argo_csv, go_atoi, helm_csv, keys, HookModel, HookObject};
use hookguard::mutation::{plan, to_json_patch, MutationSettings, Stage};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut annotations = BTreeMap::new();
    for entry in text.split('\0') {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        let key = match key.parse::<usize>() {
            Ok(i) if i < keys::HOOK_ANNOTATIONS.len() => keys::HOOK_ANNOTATIONS[i].to_owned(),
            _ => key.to_owned(),
        };
        let _ = argo_csv(value);
        let _ = helm_csv(value);
        let _ = go_atoi(value);
        annotations.insert(key, value.to_owned());
    }
    let model = HookModel::from_annotations(&annotations);
    let _ = model.phases();
    let _ = model.helm_types_for_argo();

    let object_json = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "h", "annotations": annotations, "finalizers": ["x"]},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}}
    });
    let object: HookObject = serde_json::from_value(object_json.clone()).expect("object");
    let _ = hookguard::rules::check(&object, &model);

    for stage in [Stage::Create, Stage::Update] {
        let changes = plan(&object, &model, &MutationSettings::default(), stage);
        let patch = to_json_patch(&object, &changes);
        let mut patched = object_json.clone();
        json_patch::patch(&mut patched, &patch).expect("plan's patch applies");
        // A second pass over the patched object has nothing left to do.
        let again: HookObject = serde_json::from_value(patched).expect("patched object");
        let model2 = HookModel::from_annotations(again.annotations().expect("annotations"));
        let second = plan(&again, &model2, &MutationSettings::default(), stage);
        assert!(
            second.is_empty(),
            "second pass changes {second:?} after {changes:?}"
        );
    }
});
