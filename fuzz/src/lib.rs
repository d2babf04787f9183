//! The fuzz targets' bodies, shared by the libFuzzer binaries (`fuzz_targets/*.rs`, built with
//! sanitizers by `cargo fuzz`) and the replay timer (`examples/replay.rs`, an optimised build
//! without them), so both run exactly the same code on an input.
//!
//! Each function takes any bytes and panics only when an invariant is broken.

pub mod gen;
mod lint_target;

use base64::Engine;
use hookguard::admission::{review as answer, AdmissionConfig, Webhook};
use hookguard::hooks::{argo_csv, go_atoi, helm_csv, keys, HookModel, HookObject};
use hookguard::mutation::{plan, to_json_patch, MutationSettings, Stage};
use hookguard::policy::ActivePolicy;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

pub use lint_target::lint;

/// What a fuzz target (or an entry point the replay times) runs on one input.
pub type Body = fn(&[u8]);

/// Every target, by the name `cargo fuzz run` knows it by.
pub const TARGETS: &[(&str, Body)] = &[
    ("review", review),
    ("annotations", annotations),
    ("policy", policy),
    ("lint", lint),
];

/// How many product calls a target body makes on one input, for the replay's time budget of
/// a body row (the 10 ms limit is per product call): `lint` lints the input, translates it
/// four times (input and output, with and without `--managed`) and lints each changed output.
/// Bodies not listed make one.
pub const PASSES: &[(&str, u32)] = &[("lint", 7)];

pub fn passes(target: &str) -> u32 {
    PASSES
        .iter()
        .find(|(t, _)| *t == target)
        .map_or(1, |&(_, n)| n)
}

/// The product's entry points timed on their own by the replay (a target body runs several
/// of them to check invariants): `(target whose inputs they take, name, function)`.
pub const ENTRY_POINTS: &[(&str, &str, Body)] = &[
    ("review", "review:validate", review_validate),
    ("review", "review:mutate", review_mutate),
    ("lint", "lint:lint_bytes", lint_target::lint_once),
    ("lint", "lint:translate", lint_target::translate_once),
];

fn review_validate(data: &[u8]) {
    let _ = answer(Webhook::Validate, data, config());
}

fn review_mutate(data: &[u8]) {
    let _ = answer(Webhook::Mutate, data, config());
}

fn config() -> &'static AdmissionConfig {
    static CONFIG: OnceLock<AdmissionConfig> = OnceLock::new();
    CONFIG.get_or_init(AdmissionConfig::default)
}

/// The whole AdmissionReview path: decode → decide → patch → encode, for both webhooks.
/// Beyond "no panic": the review is read as the serde reader would read it, every answer is an
/// AdmissionReview with a boolean `allowed`, and every patch the mutating webhook returns
/// applies to the object it was computed for.
pub fn review(data: &[u8]) {
    // The webhook reads reviews with its own JSON reader; the serde derive reader it replaced
    // must read every input the same way (or differ only as `admission::read` lists).
    if let Err(e) = hookguard::admission::differential::fast_matches_serde(data) {
        panic!("the JSON reader and the serde reader disagree: {e}");
    }
    for webhook in [Webhook::Validate, Webhook::Mutate] {
        let out = answer(webhook, data, config());
        let reply: Value = serde_json::from_slice(&out.body).expect("answer is JSON");
        let response = &reply["response"];
        assert!(response["allowed"].is_boolean(), "no allowed in {reply}");
        let Some(patch) = response.get("patch").and_then(Value::as_str) else {
            continue;
        };
        assert_eq!(webhook, Webhook::Mutate, "validate returned a patch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("patch is base64");
        let patch: json_patch::Patch =
            serde_json::from_slice(&bytes).expect("patch is a JSON Patch");
        // The webhook reads only the fields it needs, so a review may be answered although a
        // string it skips (say in managedFields) is not UTF-8 or holds a lone surrogate
        // escape; the apiserver never sends either (Go's encoder writes U+FFFD). The object
        // the patch is checked against is the review read strictly, else with invalid
        // UTF-8 replaced as Go would; failing both, only the paths are checked.
        let request: Option<Value> = serde_json::from_slice(data)
            .ok()
            .or_else(|| serde_json::from_str(&String::from_utf8_lossy(data)).ok());
        match request {
            Some(request) => {
                let mut object = request["request"]["object"].clone();
                if let Err(e) = json_patch::patch(&mut object, &patch) {
                    panic!("patch {patch:?} does not apply: {e}");
                }
            }
            None => {
                for op in &patch.0 {
                    let path = op.path().to_string();
                    assert!(
                        [
                            "/metadata/annotations",
                            "/metadata/labels",
                            "/metadata/finalizers"
                        ]
                        .iter()
                        .any(|p| path.starts_with(p)),
                        "patch writes outside metadata: {path}"
                    );
                }
            }
        }
    }
}

/// The annotation parsers and everything that reads them: `HookModel::from_annotations`,
/// `argo_csv`/`helm_csv`/`go_atoi`, the rule catalogue, the mutation plan and its patch.
/// Input: NUL-separated `key=value` entries; a key that is one digit 0-5 stands for the
/// corresponding hook annotation, so the fuzzer reaches all six without guessing them.
pub fn annotations(data: &[u8]) {
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
}

/// The policy file parser (YAML → `Policy`, defaults, validation), as the file watcher calls
/// it on whatever bytes it finds on disk. A policy that parses must serialise (`policy
/// check` prints the effective policy), and what it prints must read back as the same policy.
pub fn policy(data: &[u8]) {
    let Ok(active) = ActivePolicy::parse(data, "fuzz.yaml") else {
        return;
    };
    let effective = active.policy.effective();
    let yaml = effective.to_yaml();
    match ActivePolicy::parse(yaml.as_bytes(), "effective.yaml") {
        Ok(again) => assert_eq!(
            again.policy.effective(),
            effective,
            "the printed effective policy reads back differently:\n{yaml}"
        ),
        Err(e) => panic!("the printed effective policy does not parse ({e}):\n{yaml}"),
    }
}
