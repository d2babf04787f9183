use super::*;
use std::collections::BTreeMap;

const T0: i64 = 1_700_000_000;

fn ts(secs_after_t0: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs_after_t0).expect("valid timestamp")
}

fn settings() -> CleanupSettings {
    CleanupSettings {
        succeeded_grace: Duration::from_secs(60),
        failed_grace: Duration::from_secs(600),
        keep_per_family: Some(2),
        max_age: None,
        max_hold: Duration::from_secs(60),
    }
}

fn labels(managed: bool) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    if managed {
        l.insert(keys::MANAGED_LABEL.to_owned(), "true".to_owned());
    }
    l
}

fn hook(policy: Option<&str>, outcome: Outcome, argo_finalizer: bool, deleting: bool) -> Observed {
    let mut annotations = BTreeMap::new();
    annotations.insert(keys::ARGO_HOOK.to_owned(), "PreSync".to_owned());
    if let Some(p) = policy {
        annotations.insert(keys::ARGO_DELETE_POLICY.to_owned(), p.to_owned());
    }
    let mut finalizers = vec![keys::CLEANUP_FINALIZER.to_owned()];
    if argo_finalizer {
        finalizers.insert(0, keys::ARGO_HOOK_FINALIZER.to_owned());
    }
    Observed::from_parts(
        Some(&labels(true)),
        Some(&annotations),
        &finalizers,
        deleting.then(|| ts(10)),
        Some(ts(0)),
        None,
        outcome,
        outcome.is_finished().then(|| ts(10)),
    )
}

/// Every delete-policy combination, as written in `argocd.argoproj.io/hook-delete-policy`
/// (`None`: no annotation, Argo's default BeforeHookCreation).
const POLICIES: [Option<&str>; 8] = [
    None,
    Some("HookSucceeded"),
    Some("HookFailed"),
    Some("BeforeHookCreation"),
    Some("HookSucceeded,HookFailed"),
    Some("HookSucceeded,BeforeHookCreation"),
    Some("HookFailed,BeforeHookCreation"),
    Some("HookSucceeded,HookFailed,BeforeHookCreation"),
];

/// Expected action for a hook that is NOT being deleted and has no Argo finalizer, early
/// (finished + 20 s: inside both graces) and late (finished + 1 h: past both).
/// Written out row by row rather than computed, so the table is the spec.
fn expected_live(outcome: Outcome, policy: Option<&str>) -> (Action, Action) {
    use Action::*;
    let succeeded_due = WaitUntil(ts(10 + 60));
    let failed_due = WaitUntil(ts(10 + 600));
    let idle = Nothing(Idle::NoRule);
    match (outcome, policy) {
        (Outcome::Running, _) => (idle.clone(), idle),
        (Outcome::Succeeded, None) => (idle.clone(), idle),
        (Outcome::Succeeded, Some("HookSucceeded")) => {
            (succeeded_due, Delete(DeleteReason::HookSucceeded))
        }
        (Outcome::Succeeded, Some("HookFailed")) => (idle.clone(), idle),
        (Outcome::Succeeded, Some("BeforeHookCreation")) => (idle.clone(), idle),
        (Outcome::Succeeded, Some("HookSucceeded,HookFailed")) => {
            (succeeded_due, Delete(DeleteReason::HookSucceeded))
        }
        (Outcome::Succeeded, Some("HookSucceeded,BeforeHookCreation")) => {
            (succeeded_due, Delete(DeleteReason::HookSucceeded))
        }
        (Outcome::Succeeded, Some("HookFailed,BeforeHookCreation")) => (idle.clone(), idle),
        (Outcome::Succeeded, Some("HookSucceeded,HookFailed,BeforeHookCreation")) => {
            (succeeded_due, Delete(DeleteReason::HookSucceeded))
        }
        (Outcome::Failed, None) => (idle.clone(), idle),
        (Outcome::Failed, Some("HookSucceeded")) => (idle.clone(), idle),
        (Outcome::Failed, Some("HookFailed")) => (failed_due, Delete(DeleteReason::HookFailed)),
        (Outcome::Failed, Some("BeforeHookCreation")) => (idle.clone(), idle),
        (Outcome::Failed, Some("HookSucceeded,HookFailed")) => {
            (failed_due, Delete(DeleteReason::HookFailed))
        }
        (Outcome::Failed, Some("HookSucceeded,BeforeHookCreation")) => (idle.clone(), idle),
        (Outcome::Failed, Some("HookFailed,BeforeHookCreation")) => {
            (failed_due, Delete(DeleteReason::HookFailed))
        }
        (Outcome::Failed, Some("HookSucceeded,HookFailed,BeforeHookCreation")) => {
            (failed_due, Delete(DeleteReason::HookFailed))
        }
        (o, p) => panic!("row missing from the table: {o:?} {p:?}"),
    }
}

/// Every outcome × every policy combination × Argo's finalizer present or not × deleting or
/// not, at two instants.
#[test]
fn exhaustive_matrix() {
    let s = settings();
    let mut rows = 0;
    for outcome in Outcome::ALL {
        for policy in POLICIES {
            for argo in [false, true] {
                for deleting in [false, true] {
                    let h = hook(policy, outcome, argo, deleting);
                    let early = decide(&h, None, &s, ts(30));
                    let late = decide(&h, None, &s, ts(3600));
                    let (want_early, want_late) = match (deleting, outcome, argo) {
                        // Argo still waits for this hook's result: hold, bounded by max_hold
                        // (deleted at +10 s, so the hold ends at +70 s).
                        (true, Outcome::Running, true) => (
                            Action::WaitUntil(ts(70)),
                            Action::Release(ReleaseReason::HoldTimeout),
                        ),
                        (true, _, _) => (
                            Action::Release(ReleaseReason::Recorded),
                            Action::Release(ReleaseReason::Recorded),
                        ),
                        (false, Outcome::Running, true) => (
                            Action::Nothing(Idle::ArgoWaiting),
                            Action::Nothing(Idle::ArgoWaiting),
                        ),
                        // A finished hook may still carry Argo's finalizer: deleting it is
                        // safe (Argo reads its status through its own finalizer).
                        (false, _, _) => expected_live(outcome, policy),
                    };
                    assert_eq!(
                        early, want_early,
                        "early: {outcome:?} {policy:?} argo={argo} deleting={deleting}"
                    );
                    assert_eq!(
                        late, want_late,
                        "late: {outcome:?} {policy:?} argo={argo} deleting={deleting}"
                    );
                    rows += 1;
                }
            }
        }
    }
    assert_eq!(rows, 3 * 8 * 2 * 2);
}

#[test]
fn helm_policies_count_like_argo_ones() {
    let mut annotations = BTreeMap::new();
    annotations.insert(keys::HELM_HOOK.to_owned(), "post-install".to_owned());
    annotations.insert(
        keys::HELM_DELETE_POLICY.to_owned(),
        "hook-succeeded".to_owned(),
    );
    let h = Observed::from_parts(
        Some(&labels(true)),
        Some(&annotations),
        &[],
        None,
        Some(ts(0)),
        None,
        Outcome::Succeeded,
        Some(ts(0)),
    );
    assert_eq!(
        decide(&h, None, &settings(), ts(61)),
        Action::Delete(DeleteReason::HookSucceeded)
    );
    // A typo falls back to BeforeHookCreation, as in Argo: no HookSucceeded deletion.
    annotations.insert(
        keys::ARGO_DELETE_POLICY.to_owned(),
        "HookSuceeded".to_owned(),
    );
    annotations.remove(keys::HELM_DELETE_POLICY);
    let h = Observed::from_parts(
        Some(&labels(true)),
        Some(&annotations),
        &[],
        None,
        Some(ts(0)),
        None,
        Outcome::Succeeded,
        Some(ts(0)),
    );
    assert_eq!(
        decide(&h, None, &settings(), ts(99_999)),
        Action::Nothing(Idle::NoRule)
    );
}

#[test]
fn never_deletes_without_the_managed_label() {
    let mut s = settings();
    s.max_age = Some(Duration::from_secs(1));
    for outcome in Outcome::ALL {
        for policy in POLICIES {
            let mut h = hook(policy, outcome, false, false);
            h.managed = false;
            h.generate_name = Some("job-".into());
            for rank in [None, Some(0), Some(50)] {
                for now in [ts(0), ts(30), ts(1_000_000)] {
                    assert_eq!(decide(&h, rank, &s, now), Action::Nothing(Idle::Unmanaged));
                }
            }
        }
    }
}

#[test]
fn not_a_hook_is_left_alone() {
    let h = Observed::from_parts(
        Some(&labels(true)),
        None,
        &[],
        None,
        Some(ts(0)),
        None,
        Outcome::Succeeded,
        Some(ts(0)),
    );
    assert_eq!(
        decide(&h, Some(9), &settings(), ts(99_999)),
        Action::Nothing(Idle::NotAHook)
    );
}

#[test]
fn deleting_without_our_finalizer_is_not_held() {
    let mut h = hook(Some("HookSucceeded"), Outcome::Running, true, true);
    h.has_cleanup_finalizer = false;
    assert_eq!(
        decide(&h, None, &settings(), ts(30)),
        Action::Nothing(Idle::NotHolding)
    );
}

#[test]
fn deleting_unmanaged_but_holding_is_still_released() {
    // Someone removed the label: hookguard's finalizer must not be stuck forever.
    let mut h = hook(None, Outcome::Succeeded, false, true);
    h.managed = false;
    assert_eq!(
        decide(&h, None, &settings(), ts(30)),
        Action::Release(ReleaseReason::Recorded)
    );
}

fn family_member(policy: Option<&str>, outcome: Outcome, argo: bool) -> Observed {
    let mut h = hook(policy, outcome, argo, false);
    h.generate_name = Some("migrate-".into());
    h
}

#[test]
fn family_keeps_the_newest_n_finished() {
    let s = settings(); // keep 2
    let h = family_member(None, Outcome::Succeeded, false);
    assert_eq!(
        decide(&h, Some(0), &s, ts(30)),
        Action::Nothing(Idle::NoRule)
    );
    assert_eq!(
        decide(&h, Some(1), &s, ts(30)),
        Action::Nothing(Idle::NoRule)
    );
    assert_eq!(
        decide(&h, Some(2), &s, ts(30)),
        Action::Delete(DeleteReason::FamilyLimit)
    );
    let failed = family_member(Some("BeforeHookCreation"), Outcome::Failed, false);
    assert_eq!(
        decide(&failed, Some(5), &s, ts(30)),
        Action::Delete(DeleteReason::FamilyLimit)
    );
    // Running members are never trimmed, with or without Argo's finalizer.
    let running = family_member(None, Outcome::Running, false);
    assert_eq!(
        decide(&running, Some(5), &s, ts(30)),
        Action::Nothing(Idle::NoRule)
    );
    let waiting = family_member(None, Outcome::Running, true);
    assert_eq!(
        decide(&waiting, Some(5), &s, ts(30)),
        Action::Nothing(Idle::ArgoWaiting)
    );
    // Only default/BeforeHookCreation hooks form families.
    let hs = family_member(Some("HookFailed"), Outcome::Succeeded, false);
    assert_eq!(
        decide(&hs, Some(5), &s, ts(30)),
        Action::Nothing(Idle::NoRule)
    );
    // Switched off.
    let off = CleanupSettings {
        keep_per_family: None,
        ..settings()
    };
    assert_eq!(
        decide(&h, Some(5), &off, ts(30)),
        Action::Nothing(Idle::NoRule)
    );
    // keep 0: every finished member goes.
    let zero = CleanupSettings {
        keep_per_family: Some(0),
        ..settings()
    };
    assert_eq!(
        decide(&h, Some(0), &zero, ts(30)),
        Action::Delete(DeleteReason::FamilyLimit)
    );
}

#[test]
fn family_needs_a_generate_name() {
    let h = hook(None, Outcome::Succeeded, false, false);
    assert!(!h.in_family());
    assert_eq!(
        decide(&h, Some(7), &settings(), ts(30)),
        Action::Nothing(Idle::NoRule)
    );
}

#[test]
fn max_age() {
    let s = CleanupSettings {
        max_age: Some(Duration::from_secs(3600)),
        ..settings()
    };
    let running = hook(None, Outcome::Running, false, false);
    assert_eq!(
        decide(&running, None, &s, ts(30)),
        Action::WaitUntil(ts(3600))
    );
    assert_eq!(
        decide(&running, None, &s, ts(3600)),
        Action::Delete(DeleteReason::MaxAge)
    );
    // Argo still waits on it: never acted on, whatever its age.
    let waiting = hook(None, Outcome::Running, true, false);
    assert_eq!(
        decide(&waiting, None, &s, ts(999_999)),
        Action::Nothing(Idle::ArgoWaiting)
    );
    // The earliest rule wins: the failed grace (+610 s) comes before the max age.
    let failed = hook(Some("HookFailed"), Outcome::Failed, false, false);
    assert_eq!(
        decide(&failed, None, &s, ts(30)),
        Action::WaitUntil(ts(610))
    );
    assert_eq!(
        decide(&failed, None, &s, ts(700)),
        Action::Delete(DeleteReason::HookFailed)
    );
}

#[test]
fn unknown_completion_time_counts_from_creation() {
    let mut h = hook(Some("HookSucceeded"), Outcome::Succeeded, false, false);
    h.finished = None;
    assert_eq!(
        decide(&h, None, &settings(), ts(30)),
        Action::WaitUntil(ts(60))
    );
    assert_eq!(
        decide(&h, None, &settings(), ts(60)),
        Action::Delete(DeleteReason::HookSucceeded)
    );
}

#[test]
fn huge_graces_saturate() {
    let s = CleanupSettings {
        succeeded_grace: Duration::from_secs(u64::MAX),
        ..settings()
    };
    let h = hook(Some("HookSucceeded"), Outcome::Succeeded, false, false);
    assert_eq!(
        decide(&h, None, &s, ts(30)),
        Action::WaitUntil(Timestamp::MAX)
    );
}

#[test]
fn hold_expiry() {
    assert!(!hold_expired(ts(0), &settings(), ts(59)));
    assert!(hold_expired(ts(0), &settings(), ts(60)));
}

fn apply(
    doc: &serde_json::Value,
    patch: &json_patch::Patch,
) -> Result<serde_json::Value, json_patch::PatchError> {
    let mut doc = doc.clone();
    json_patch::patch(&mut doc, patch)?;
    Ok(doc)
}

#[test]
fn finalizer_patch_removes_only_ours() {
    let finalizers: Vec<String> = vec![
        keys::ARGO_HOOK_FINALIZER.into(),
        keys::CLEANUP_FINALIZER.into(),
        "foregroundDeletion".into(),
    ];
    let patch = finalizer_removal_patch(&finalizers).expect("ours is present");
    let doc = serde_json::json!({"metadata": {"finalizers": finalizers}});
    let out = apply(&doc, &patch).expect("applies to the observed object");
    assert_eq!(
        out["metadata"]["finalizers"],
        serde_json::json!([keys::ARGO_HOOK_FINALIZER, "foregroundDeletion"])
    );
    // Someone else changed the list meanwhile (Argo removed its finalizer): the test fails
    // instead of removing the wrong index.
    let moved = serde_json::json!({"metadata": {"finalizers": [keys::CLEANUP_FINALIZER, "foregroundDeletion"]}});
    assert!(apply(&moved, &patch).is_err());
    let gone = serde_json::json!({"metadata": {"finalizers": ["foregroundDeletion"]}});
    assert!(apply(&gone, &patch).is_err());
}

#[test]
fn finalizer_patch_none_when_absent() {
    assert!(finalizer_removal_patch(&[]).is_none());
    assert!(finalizer_removal_patch(&[keys::ARGO_HOOK_FINALIZER.to_owned()]).is_none());
}

#[test]
fn finalizer_patch_never_adds() {
    // Exhaustively for small lists: the result is the input minus exactly one
    // `hookguard.io/cleanup` entry, never anything added.
    let pool = [
        keys::CLEANUP_FINALIZER,
        keys::ARGO_HOOK_FINALIZER,
        "orphan",
        "foregroundDeletion",
    ];
    for a in pool {
        for b in pool {
            for c in pool {
                let list: Vec<String> = [a, b, c].iter().map(|s| s.to_string()).collect();
                let Some(patch) = finalizer_removal_patch(&list) else {
                    assert!(!list.iter().any(|f| f == keys::CLEANUP_FINALIZER));
                    continue;
                };
                let doc = serde_json::json!({"metadata": {"finalizers": list}});
                let out = apply(&doc, &patch).expect("applies");
                let out: Vec<String> =
                    serde_json::from_value(out["metadata"]["finalizers"].clone()).expect("list");
                assert_eq!(out.len(), list.len() - 1);
                let mut expected = list.clone();
                let i = expected
                    .iter()
                    .position(|f| f == keys::CLEANUP_FINALIZER)
                    .expect("present");
                expected.remove(i);
                assert_eq!(out, expected);
            }
        }
    }
}
