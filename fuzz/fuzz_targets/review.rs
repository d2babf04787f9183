//! The whole AdmissionReview path: decode → decide → patch → encode, for both webhooks.
//! Beyond "no panic": every answer is an AdmissionReview with a boolean `allowed`, and every
//! patch the mutating webhook returns applies to the object it was computed for.
#![no_main]

use base64::Engine;
use hookguard::admission::{review, AdmissionConfig, Webhook};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;

fn config() -> &'static AdmissionConfig {
    static CONFIG: OnceLock<AdmissionConfig> = OnceLock::new();
    CONFIG.get_or_init(AdmissionConfig::default)
}

fuzz_target!(|data: &[u8]| {
    for webhook in [Webhook::Validate, Webhook::Mutate] {
        let out = review(webhook, data, config());
        let answer: Value = serde_json::from_slice(&out.body).expect("answer is JSON");
        let response = &answer["response"];
        assert!(response["allowed"].is_boolean(), "no allowed in {answer}");
        let Some(patch) = response.get("patch").and_then(Value::as_str) else {
            continue;
        };
        assert_eq!(webhook, Webhook::Mutate, "validate returned a patch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("patch is base64");
        let patch: json_patch::Patch =
            serde_json::from_slice(&bytes).expect("patch is a JSON Patch");
        // A patch was only computed for a readable review, so the object is there.
        let request: Value = serde_json::from_slice(data).expect("patched review was JSON");
        let mut object = request["request"]["object"].clone();
        if let Err(e) = json_patch::patch(&mut object, &patch) {
            panic!("patch {patch:?} does not apply: {e}");
        }
    }
});
