//! The pure decision core of the finalizer sidecar: one observed hook, its rank in its
//! generateName family, the cleanup settings and the current time in; one action out.
//!
//! Everything that touches the API server lives in `reconcile.rs`; this file has no I/O so
//! every combination of outcome × delete policy × Argo finalizer × deletion can be tested
//! as a table (reference §2, §4).

use crate::hooks::{keys, DeletePolicies, DeletePolicy, HookModel};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::time::Duration;

/// What a hook's own status says (reference §2.4, per hook, not per Argo operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Not finished yet (Job without a True Complete/Failed condition, Pod Pending/Running,
    /// Workflow ""/Pending/Running).
    Running,
    Succeeded,
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Running, Outcome::Succeeded, Outcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "Running",
            Outcome::Succeeded => "Succeeded",
            Outcome::Failed => "Failed",
        }
    }

    pub fn is_finished(self) -> bool {
        self != Outcome::Running
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the decision needs to know about one live object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Carries `hookguard.io/managed=true`. Without it hookguard never deletes the object.
    pub managed: bool,
    /// Argo CD runs it as a hook (gitops-engine `IsHook`); delete policies only matter then.
    pub is_hook: bool,
    /// Effective delete policies (Argo ∪ Helm, BeforeHookCreation by default).
    pub policies: DeletePolicies,
    pub outcome: Outcome,
    pub has_cleanup_finalizer: bool,
    pub has_argo_finalizer: bool,
    pub deletion: Option<Timestamp>,
    pub created: Option<Timestamp>,
    /// When the hook finished; `None` when unknown (then `created` stands in).
    pub finished: Option<Timestamp>,
    /// `metadata.generateName`, when the object has one.
    pub generate_name: Option<String>,
}

impl Observed {
    /// Reads the hook-relevant parts of the metadata. `outcome` and `finished` come from the
    /// kind-specific status reading in `observe.rs`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        labels: Option<&std::collections::BTreeMap<String, String>>,
        annotations: Option<&std::collections::BTreeMap<String, String>>,
        finalizers: &[String],
        deletion: Option<Timestamp>,
        created: Option<Timestamp>,
        generate_name: Option<&str>,
        outcome: Outcome,
        finished: Option<Timestamp>,
    ) -> Observed {
        let empty = std::collections::BTreeMap::new();
        let model = HookModel::from_annotations(annotations.unwrap_or(&empty));
        Observed {
            managed: labels
                .and_then(|l| l.get(keys::MANAGED_LABEL))
                .is_some_and(|v| v == keys::MANAGED_LABEL_VALUE),
            is_hook: model.is_hook,
            policies: model.delete_policies.policies,
            outcome,
            has_cleanup_finalizer: finalizers.iter().any(|f| f == keys::CLEANUP_FINALIZER),
            has_argo_finalizer: finalizers.iter().any(|f| f == keys::ARGO_HOOK_FINALIZER),
            deletion,
            created,
            finished,
            generate_name: generate_name.filter(|g| !g.is_empty()).map(str::to_owned),
        }
    }

    fn finished_at(&self) -> Option<Timestamp> {
        self.finished.or(self.created)
    }

    /// Counts in its generateName family's "keep newest N" (default/BeforeHookCreation hooks).
    pub fn in_family(&self) -> bool {
        self.managed
            && self.is_hook
            && self.deletion.is_none()
            && self.generate_name.is_some()
            && self.policies.contains(&DeletePolicy::BeforeHookCreation)
    }
}

/// Cleanup timings and limits. One struct, filled from flags/env today and from the policy
/// file's `cleanup:` section later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupSettings {
    /// A HookSucceeded hook is deleted this long after it succeeded.
    pub succeeded_grace: Duration,
    /// A HookFailed hook is deleted this long after it failed (longer: logs stay readable).
    pub failed_grace: Duration,
    /// Finished default/BeforeHookCreation hooks of one generateName family beyond the newest
    /// N are deleted. `None`: never.
    pub keep_per_family: Option<usize>,
    /// Any managed hook older than this is deleted (unless Argo still waits on it). `None`: off.
    pub max_age: Option<Duration>,
    /// hookguard's finalizer is never held longer than this after deletion was requested.
    pub max_hold: Duration,
}

impl Default for CleanupSettings {
    fn default() -> Self {
        CleanupSettings {
            succeeded_grace: Duration::from_secs(60),
            failed_grace: Duration::from_secs(3600),
            keep_per_family: Some(3),
            max_age: None,
            max_hold: Duration::from_secs(60),
        }
    }
}

/// Why hookguard deletes a hook (also the metric label and the Event reason's suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeleteReason {
    HookSucceeded,
    HookFailed,
    FamilyLimit,
    MaxAge,
}

impl DeleteReason {
    pub const ALL: [DeleteReason; 4] = [
        DeleteReason::HookSucceeded,
        DeleteReason::HookFailed,
        DeleteReason::FamilyLimit,
        DeleteReason::MaxAge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeleteReason::HookSucceeded => "HookSucceeded",
            DeleteReason::HookFailed => "HookFailed",
            DeleteReason::FamilyLimit => "FamilyLimit",
            DeleteReason::MaxAge => "MaxAge",
        }
    }
}

/// Why hookguard's finalizer is being removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseReason {
    /// The outcome can be recorded now.
    Recorded,
    /// `max_hold` passed while still waiting: release anyway and report.
    HoldTimeout,
}

/// Why nothing happens (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Idle {
    /// No `hookguard.io/managed=true` label: never deleted by hookguard.
    Unmanaged,
    /// Not a hook for Argo CD: delete policies do not apply.
    NotAHook,
    /// Unfinished and still carrying Argo's hook finalizer: Argo is waiting on it.
    ArgoWaiting,
    /// Nothing in the settings or policies applies (yet); a status change retriggers.
    NoRule,
    /// Being deleted and not holding hookguard's finalizer: nothing to release.
    NotHolding,
}

/// What to do with one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Nothing(Idle),
    /// Look again at this time (a grace period, the max age or the max hold ends then).
    WaitUntil(Timestamp),
    /// DELETE with background propagation.
    Delete(DeleteReason),
    /// Record the outcome (Event, log, metric), make sure the hook's pods are gone, then
    /// remove only `hookguard.io/cleanup` with a `test`-guarded JSON Patch.
    Release(ReleaseReason),
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    // Saturate instead of failing: a huge grace just means "never" in practice.
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The decision. `family_rank` is the hook's position among the live (not deleting) members
/// of its generateName family, newest first (0 = newest), when it belongs to one.
pub fn decide(
    hook: &Observed,
    family_rank: Option<usize>,
    settings: &CleanupSettings,
    now: Timestamp,
) -> Action {
    if let Some(deleted_at) = hook.deletion {
        return decide_deleting(hook, deleted_at, settings, now);
    }
    if !hook.managed {
        return Action::Nothing(Idle::Unmanaged);
    }
    if !hook.is_hook {
        return Action::Nothing(Idle::NotAHook);
    }
    if hook.outcome == Outcome::Running && hook.has_argo_finalizer {
        return Action::Nothing(Idle::ArgoWaiting);
    }

    // Every rule that applies gives a due time; the earliest due one wins.
    let mut due: Vec<(Timestamp, DeleteReason)> = Vec::new();
    if let Some(finished) = hook
        .outcome
        .is_finished()
        .then(|| hook.finished_at())
        .flatten()
    {
        if hook.outcome == Outcome::Succeeded
            && hook.policies.contains(&DeletePolicy::HookSucceeded)
        {
            due.push((
                plus(finished, settings.succeeded_grace),
                DeleteReason::HookSucceeded,
            ));
        }
        if hook.outcome == Outcome::Failed && hook.policies.contains(&DeletePolicy::HookFailed) {
            due.push((
                plus(finished, settings.failed_grace),
                DeleteReason::HookFailed,
            ));
        }
        if let (Some(keep), Some(rank)) = (settings.keep_per_family, family_rank) {
            if hook.in_family() && rank >= keep {
                due.push((finished, DeleteReason::FamilyLimit));
            }
        }
    }
    if let (Some(max_age), Some(created)) = (settings.max_age, hook.created) {
        due.push((plus(created, max_age), DeleteReason::MaxAge));
    }
    due.sort();
    match due.first() {
        None => Action::Nothing(Idle::NoRule),
        Some((at, reason)) if *at <= now => Action::Delete(*reason),
        Some((at, _)) => Action::WaitUntil(*at),
    }
}

fn decide_deleting(
    hook: &Observed,
    deleted_at: Timestamp,
    settings: &CleanupSettings,
    now: Timestamp,
) -> Action {
    if !hook.has_cleanup_finalizer {
        return Action::Nothing(Idle::NotHolding);
    }
    let hold_until = plus(deleted_at, settings.max_hold);
    // Argo reads the final status of an unfinished hook through its own finalizer (§4):
    // hold ours too, so the outcome hookguard records is the real one — but never past
    // max_hold.
    if hook.outcome == Outcome::Running && hook.has_argo_finalizer {
        if now >= hold_until {
            return Action::Release(ReleaseReason::HoldTimeout);
        }
        return Action::WaitUntil(hold_until);
    }
    Action::Release(ReleaseReason::Recorded)
}

/// Past the hold: the executor calls this when the release work (pods still going away,
/// API errors) keeps failing, to know when to give up waiting and release anyway.
pub fn hold_expired(deleted_at: Timestamp, settings: &CleanupSettings, now: Timestamp) -> bool {
    now >= plus(deleted_at, settings.max_hold)
}

/// The JSON Patch that removes hookguard's finalizer and nothing else: `test` the whole
/// array as observed (so a concurrent change by any other writer makes the patch fail with
/// 422 instead of removing the wrong entry), then `remove` its index. `None` when the
/// finalizer is not there.
pub fn finalizer_removal_patch(finalizers: &[String]) -> Option<json_patch::Patch> {
    let index = finalizers
        .iter()
        .position(|f| f == keys::CLEANUP_FINALIZER)?;
    let patch = serde_json::json!([
        {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
        {"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": keys::CLEANUP_FINALIZER},
        {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
    ]);
    serde_json::from_value(patch).ok()
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
