//! The lint YAML front end: the bytes `hookguard lint` and `hookguard translate` read from a
//! manifest stream (a file, a Helm post-renderer's stdin). Beyond "no panic":
//! - every line a lint finding or input error names is inside the input;
//! - translate of translate's output is the identity (the webhook's plan adds nothing the
//!   second time), for both `--managed` and not;
//! - translate changes nothing in a stream where it reports no changed object, keeps every
//!   document lint could read readable (same document and object counts), and, when it edited
//!   in place (no document re-emitted), keeps all but the lines it edited, in order.

use hookguard::cli::lint::policy_action;
use hookguard::lint::{self, ObjectRef};
use hookguard::mutation::MutationSettings;
use hookguard::policy::ActivePolicy;
use hookguard::rules::{Action, RuleId};
use std::sync::OnceLock;

fn policy() -> &'static ActivePolicy {
    static POLICY: OnceLock<ActivePolicy> = OnceLock::new();
    POLICY.get_or_init(ActivePolicy::defaults)
}

/// At most this many add operations per object in a webhook patch (hook, delete policy,
/// derived marker, managed label, finalizer — some with their parent map), each of which
/// edits at most one existing line in place.
const MAX_EDITS_PER_OBJECT: usize = 8;

pub fn lint(data: &[u8]) {
    let resolve = |rule: RuleId, object: &ObjectRef| -> Action {
        policy_action(
            &policy().policy,
            rule,
            object.namespace.as_deref().unwrap_or(""),
        )
    };
    let report = lint::lint_bytes(data, &resolve);
    let text = lint::decode(data).ok();
    // Lines of the input as YAML counts them (`\r\n`, `\n` and a lone `\r` end a line; the
    // one after a final break counts, an error at the end of the input is reported there).
    // Bytes, not text: a non-UTF-8 input's error names a line too.
    let lines = 1 + data
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && data.get(i + 1) != Some(&b'\n')))
        .count();
    for d in &report.diagnostics {
        assert!(
            (1..=lines).contains(&d.object.line),
            "object line {} outside 1..={lines}: {d:?}",
            d.object.line
        );
        if let Some(l) = d.annotation_line {
            assert!(
                (1..=lines).contains(&l),
                "annotation line {l} outside 1..={lines}: {d:?}"
            );
        }
    }
    if let Some(e) = &report.error {
        if let Some(l) = e.line {
            assert!(
                (1..=lines).contains(&l),
                "error line {l} outside 1..={lines}: {e:?}"
            );
        }
    }

    let Some(text) = text else { return };
    let settings = MutationSettings::default();
    for managed in [false, true] {
        let Ok(once) = lint::translate(data, &settings, managed) else {
            continue;
        };
        let twice = lint::translate(once.text.as_bytes(), &settings, managed)
            .unwrap_or_else(|e| panic!("translate's own output is unreadable: {e}\n{}", once.text));
        assert_eq!(
            twice.changed_objects, 0,
            "second translate changed objects:\n{}",
            once.text
        );
        assert_eq!(twice.text, once.text, "translate is not idempotent");
        if once.changed_objects == 0 {
            assert_eq!(
                once.text, text,
                "translate changed a stream with no changes"
            );
            continue;
        }
        let after = lint::lint_text(&once.text, &resolve);
        if report.error.is_none() {
            assert!(
                after.error.is_none(),
                "translate broke the stream: {:?}",
                after.error
            );
            assert_eq!(
                (after.documents, after.objects),
                (report.documents, report.objects),
                "translate changed the stream's shape"
            );
        }
        if once.reemitted_documents == 0 {
            let missing = unmatched_lines(text, &once.text);
            assert!(
                missing <= MAX_EDITS_PER_OBJECT * once.changed_objects,
                "{missing} input lines lost editing {} objects in place:\n{}",
                once.changed_objects,
                once.text
            );
        }
    }
}

/// Input lines not found, in order, among the output's lines (a line edited in place is not).
fn unmatched_lines(input: &str, output: &str) -> usize {
    let out: Vec<&str> = output.split('\n').collect();
    let mut at = 0;
    let mut missing = 0;
    for line in input.split('\n') {
        match out[at..].iter().position(|l| *l == line) {
            Some(i) => at += i + 1,
            None => missing += 1,
        }
    }
    missing
}

/// `hookguard lint` on one input, default policy.
pub(crate) fn lint_once(data: &[u8]) {
    let resolve = |rule: RuleId, object: &ObjectRef| -> Action {
        policy_action(
            &policy().policy,
            rule,
            object.namespace.as_deref().unwrap_or(""),
        )
    };
    let _ = lint::lint_bytes(data, &resolve);
}

/// `hookguard translate --managed` on one input.
pub(crate) fn translate_once(data: &[u8]) {
    let _ = lint::translate(data, &MutationSettings::default(), true);
}
