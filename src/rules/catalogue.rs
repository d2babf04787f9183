//! The rule catalogue: one entry per rule, with its stable id, default action and the
//! documentation `policy explain` and docs/rules.md are rendered from.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What happens when a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Deny,
    Warn,
    Off,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Warn => "warn",
            Action::Off => "off",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! rules {
    ($( $variant:ident => $id:literal, $default:ident, $summary:literal, $why:literal, $fix:literal; )*) => {
        /// Stable rule ids (the SPEC catalogue, plus `helm2-crd-install`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId { $($variant,)* }

        impl RuleId {
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant,)*];

            pub fn info(self) -> &'static RuleInfo {
                match self {
                    $(RuleId::$variant => &RuleInfo {
                        id: RuleId::$variant,
                        name: $id,
                        default_action: Action::$default,
                        summary: $summary,
                        why: $why,
                        fix: $fix,
                    },)*
                }
            }
        }
    };
}

/// Documentation of one rule.
#[derive(Debug)]
pub struct RuleInfo {
    pub id: RuleId,
    pub name: &'static str,
    pub default_action: Action,
    /// When it fires.
    pub summary: &'static str,
    /// Why it matters: what Argo CD or Helm does otherwise.
    pub why: &'static str,
    /// How to fix a finding.
    pub fix: &'static str,
}

rules! {
    UnknownHookType => "unknown-hook-type", Deny,
        "An item of argocd.argoproj.io/hook is not one of PreSync, Sync, Skip, PostSync, SyncFail, PreDelete, PostDelete (case-sensitive), or the value is empty.",
        "Argo CD compares hook types exactly and ignores unknown items without a word; with no valid type left it drops the object from the sync entirely.",
        "Use the exact spelling, e.g. `PreSync` rather than `presync`.";
    UnknownDeletePolicy => "unknown-delete-policy", Deny,
        "An item of argocd.argoproj.io/hook-delete-policy is not HookSucceeded, HookFailed or BeforeHookCreation, or the value is empty.",
        "Argo CD ignores unknown policies silently and falls back to BeforeHookCreation, so a typo like `HookSuceeded` means the hook is never cleaned up.",
        "Use the exact spelling, e.g. `HookSucceeded`.";
    InvalidSyncWave => "invalid-sync-wave", Deny,
        "argocd.argoproj.io/sync-wave is not a plain signed decimal integer (Go Atoi: no spaces, no `_`, 64-bit range).",
        "Argo CD silently falls back to helm.sh/hook-weight or wave 0, so the object runs in a different order than written.",
        "Write a plain integer such as `-1`, `0` or `5`.";
    UnknownHelmHook => "unknown-helm-hook", Deny,
        "An item of helm.sh/hook is not a Helm 3 event, or is one Argo CD cannot read because of its case.",
        "Helm skips the whole resource on any unknown item; Argo CD reads the items case-sensitively and drops objects left without a type.",
        "Use the lowercase Helm event names: pre-install, post-install, pre-upgrade, post-upgrade, pre-delete, post-delete.";
    UnknownHelmDeletePolicy => "unknown-helm-delete-policy", Deny,
        "An item of helm.sh/hook-delete-policy is not before-hook-creation, hook-succeeded or hook-failed (as Argo CD reads it: case-sensitive).",
        "Both tools ignore unknown delete policies silently, so the hook is not cleaned up as intended.",
        "Use before-hook-creation, hook-succeeded or hook-failed, in lowercase.";
    InvalidHookWeight => "invalid-hook-weight", Deny,
        "helm.sh/hook-weight is not an integer.",
        "Helm and Argo CD silently use 0 (Argo CD also uses the weight as the sync wave).",
        "Write a plain integer such as `-5` or `10`.";
    HelmHookIgnoredByArgo => "helm-hook-ignored-by-argo", Warn,
        "helm.sh/hook names pre-rollback, post-rollback, test or test-success.",
        "Argo CD never runs rollback or test hooks; an object with only those is silently dropped from the sync.",
        "Add an explicit argocd.argoproj.io/hook, or render the chart with tests skipped.";
    ArgoOverridesHelm => "argo-overrides-helm", Warn,
        "Both argocd.argoproj.io/hook and helm.sh/hook are present and name different phases.",
        "When the Argo annotation yields a valid type, Argo CD ignores helm.sh/hook entirely (except that a delete-hook-only Argo value still falls back to the Helm types).",
        "Make the two annotations agree, or drop the one that does not apply.";
    SkipCombined => "skip-combined", Warn,
        "argocd.argoproj.io/hook combines Skip with other types.",
        "Skip only skips when it is the only valid type; `Skip,PreSync` is a PreSync hook.",
        "Use `Skip` alone to skip the object, or remove `Skip`.";
    DeletePolicyWithoutHook => "delete-policy-without-hook", Warn,
        "A delete policy is set on an object that is not a hook.",
        "Argo CD applies delete policies only to hooks; on other objects the annotation has no effect.",
        "Add argocd.argoproj.io/hook or remove the delete policy.";
    JobTtlRace => "job-ttl-race", Warn,
        "A hook Job sets spec.ttlSecondsAfterFinished.",
        "The TTL controller can delete the Job before Argo CD reads its result, and the sync hangs or fails (argo-cd #21055, #6880).",
        "Remove ttlSecondsAfterFinished and use a hook delete policy.";
    PodNeverCompletes => "pod-never-completes", Deny,
        "A hook Pod has restartPolicy Always (the default).",
        "A Pod that always restarts never reaches Succeeded, so Argo CD waits for the hook forever.",
        "Set restartPolicy: Never or OnFailure.";
    NeverCleaned => "never-cleaned", Warn,
        "A hook whose delete policies can never delete it: a SyncFail hook with only HookSucceeded, a generateName hook with only BeforeHookCreation, a PostDelete hook without HookSucceeded/HookFailed.",
        "Argo CD evaluates policies per operation and by name: such hooks pile up in the cluster.",
        "Add HookSucceeded (and HookFailed where the hook can fail), or use a fixed name.";
    MissingDeletePolicy => "missing-delete-policy", Off,
        "A hook has no explicit delete policy.",
        "Argo CD then assumes BeforeHookCreation, which readers of the manifest cannot see.",
        "Set argocd.argoproj.io/hook-delete-policy explicitly.";
    JobMissingDeadline => "job-missing-deadline", Off,
        "A hook Job has no spec.activeDeadlineSeconds.",
        "A stuck hook Job blocks the sync until someone terminates it; hooks should be light and bounded.",
        "Set spec.activeDeadlineSeconds.";
    PrivilegedHook => "privileged-hook", Off,
        "A hook's pod runs privileged, or as root (explicitly, or by not requiring non-root).",
        "Hooks run with the application's rights on every sync; privileged hooks widen that to the node.",
        "Set securityContext.runAsNonRoot: true and drop privileged.";
    Helm2CrdInstall => "helm2-crd-install", Warn,
        "helm.sh/hook is exactly `crd-install` (a Helm 2 hook).",
        "Helm 3 skips such a resource as an unknown hook, while Argo CD applies it as a normal resource.",
        "Move the CRD to the chart's crds/ directory and drop the annotation.";
}

impl RuleId {
    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn default_action(self) -> Action {
        self.info().default_action
    }

    pub fn from_name(name: &str) -> Option<RuleId> {
        RuleId::ALL.iter().copied().find(|r| r.name() == name)
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        RuleId::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = RuleId::ALL.iter().map(|r| r.name()).collect();
            serde::de::Error::custom(format!(
                "unknown rule `{name}`; known rules: {}",
                known.join(", ")
            ))
        })
    }
}
