//! The hook domain: annotation keys, the value enums Argo CD and Helm understand, and the
//! parsers that read annotation values exactly the way those tools do. Pure, no I/O.
//!
//! Sources for every rule here: `../shared/reference/argo-hook-semantics.md` §1–3
//! (gitops-engine `hook.go`, `delete_policy.go`, `helm/*.go`, `annotations.go`,
//! `syncwaves/waves.go`; Helm `manifest_sorter.go`).

use std::borrow::Cow;

mod model;
mod object;

pub use model::{
    ArgoFate, DeletePolicies, HelmView, HookModel, HookTypes, PolicySet, Source, Wave,
};
pub use object::{
    ContainerView, HookObject, Metadata, PodTemplateView, SecurityContextView, SpecView, StringMap,
};

/// Annotation, label and finalizer names.
pub mod keys {
    pub const ARGO_HOOK: &str = "argocd.argoproj.io/hook";
    pub const ARGO_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
    pub const ARGO_SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
    pub const HELM_HOOK: &str = "helm.sh/hook";
    pub const HELM_WEIGHT: &str = "helm.sh/hook-weight";
    pub const HELM_DELETE_POLICY: &str = "helm.sh/hook-delete-policy";

    /// The six annotations hookguard reads. An object with none of them is answered at once.
    pub const HOOK_ANNOTATIONS: [&str; 6] = [
        ARGO_HOOK,
        ARGO_DELETE_POLICY,
        ARGO_SYNC_WAVE,
        HELM_HOOK,
        HELM_WEIGHT,
        HELM_DELETE_POLICY,
    ];

    /// Argo CD's own finalizer on sync-phase hooks (gitops-engine `hook.HookFinalizer`, v3.0+).
    /// hookguard never adds, removes or rewrites it.
    pub const ARGO_HOOK_FINALIZER: &str = "argocd.argoproj.io/hook-finalizer";

    /// Written by the mutating webhook: what was derived and from where, so a reader of the
    /// live object can see why an annotation is there.
    pub const HOOKGUARD_DERIVED: &str = "hookguard.io/derived";
    /// Label the finalizer sidecar selects on.
    pub const MANAGED_LABEL: &str = "hookguard.io/managed";
    pub const MANAGED_LABEL_VALUE: &str = "true";
    /// hookguard's cleanup finalizer.
    pub const CLEANUP_FINALIZER: &str = "hookguard.io/cleanup";
}

/// Argo CD hook types. `PreSync`..`Skip` are gitops-engine's (`common.NewHookType`);
/// `PreDelete` (v3.3+) and `PostDelete` (v2.10+) are recognised only by the Argo CD controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookType {
    PreSync,
    Sync,
    PostSync,
    SyncFail,
    Skip,
    PreDelete,
    PostDelete,
}

impl HookType {
    pub const ALL: [HookType; 7] = [
        HookType::PreSync,
        HookType::Sync,
        HookType::PostSync,
        HookType::SyncFail,
        HookType::Skip,
        HookType::PreDelete,
        HookType::PostDelete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookType::PreSync => "PreSync",
            HookType::Sync => "Sync",
            HookType::PostSync => "PostSync",
            HookType::SyncFail => "SyncFail",
            HookType::Skip => "Skip",
            HookType::PreDelete => "PreDelete",
            HookType::PostDelete => "PostDelete",
        }
    }

    /// Exact, case-sensitive, as Argo CD compares.
    pub fn parse(item: &str) -> Option<HookType> {
        HookType::ALL.into_iter().find(|t| t.as_str() == item)
    }

    /// Types gitops-engine's sync engine knows (`NewHookType`).
    pub fn is_gitops_engine_type(self) -> bool {
        !self.is_delete_hook()
    }

    /// Types the Argo CD controller runs on Application deletion (`controller/hook.go`).
    pub fn is_delete_hook(self) -> bool {
        matches!(self, HookType::PreDelete | HookType::PostDelete)
    }
}

impl std::fmt::Display for HookType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Argo CD delete policies (`common.HookDeletePolicy`), in gitops-engine's declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeletePolicy {
    HookSucceeded,
    HookFailed,
    BeforeHookCreation,
}

impl DeletePolicy {
    pub const ALL: [DeletePolicy; 3] = [
        DeletePolicy::HookSucceeded,
        DeletePolicy::HookFailed,
        DeletePolicy::BeforeHookCreation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeletePolicy::HookSucceeded => "HookSucceeded",
            DeletePolicy::HookFailed => "HookFailed",
            DeletePolicy::BeforeHookCreation => "BeforeHookCreation",
        }
    }

    /// The Helm spelling that Argo maps onto this policy (`helm/delete_policy.go`).
    pub fn helm_str(self) -> &'static str {
        match self {
            DeletePolicy::HookSucceeded => "hook-succeeded",
            DeletePolicy::HookFailed => "hook-failed",
            DeletePolicy::BeforeHookCreation => "before-hook-creation",
        }
    }

    /// `argocd.argoproj.io/hook-delete-policy` item: exact, case-sensitive.
    pub fn parse_argo(item: &str) -> Option<DeletePolicy> {
        DeletePolicy::ALL.into_iter().find(|p| p.as_str() == item)
    }

    /// `helm.sh/hook-delete-policy` item as Argo CD reads it: exact, case-sensitive.
    pub fn parse_helm_for_argo(item: &str) -> Option<DeletePolicy> {
        DeletePolicy::ALL.into_iter().find(|p| p.helm_str() == item)
    }
}

impl std::fmt::Display for DeletePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Helm 3 hook events (`pkg/release/v1/hook.go`); `test-success` is Helm's alias of `test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HelmEvent {
    PreInstall,
    PostInstall,
    PreDelete,
    PostDelete,
    PreUpgrade,
    PostUpgrade,
    PreRollback,
    PostRollback,
    Test,
}

impl HelmEvent {
    pub const ALL: [HelmEvent; 9] = [
        HelmEvent::PreInstall,
        HelmEvent::PostInstall,
        HelmEvent::PreDelete,
        HelmEvent::PostDelete,
        HelmEvent::PreUpgrade,
        HelmEvent::PostUpgrade,
        HelmEvent::PreRollback,
        HelmEvent::PostRollback,
        HelmEvent::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HelmEvent::PreInstall => "pre-install",
            HelmEvent::PostInstall => "post-install",
            HelmEvent::PreDelete => "pre-delete",
            HelmEvent::PostDelete => "post-delete",
            HelmEvent::PreUpgrade => "pre-upgrade",
            HelmEvent::PostUpgrade => "post-upgrade",
            HelmEvent::PreRollback => "pre-rollback",
            HelmEvent::PostRollback => "post-rollback",
            HelmEvent::Test => "test",
        }
    }

    /// An item as Helm 3 reads it, already trimmed and lowercased.
    pub fn parse_helm(lowercased: &str) -> Option<HelmEvent> {
        if lowercased == "test-success" {
            return Some(HelmEvent::Test);
        }
        HelmEvent::ALL
            .into_iter()
            .find(|e| e.as_str() == lowercased)
    }

    /// What Argo CD runs for this event: gitops-engine `helm/type.go` for the sync phases,
    /// `controller/hook.go` for the delete hooks. Rollback and test hooks are never run.
    pub fn argo_type(self) -> Option<HookType> {
        match self {
            HelmEvent::PreInstall | HelmEvent::PreUpgrade => Some(HookType::PreSync),
            HelmEvent::PostInstall | HelmEvent::PostUpgrade => Some(HookType::PostSync),
            HelmEvent::PreDelete => Some(HookType::PreDelete),
            HelmEvent::PostDelete => Some(HookType::PostDelete),
            HelmEvent::PreRollback | HelmEvent::PostRollback | HelmEvent::Test => None,
        }
    }
}

/// Argo CD's `GetAnnotationCSVs`: split on `,`, trim (Unicode whitespace, like Go's
/// `strings.TrimSpace`), drop empty items, de-duplicate keeping the first occurrence.
pub fn argo_csv(value: &str) -> Vec<&str> {
    let mut items: Vec<&str> = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        if !item.is_empty() && !items.contains(&item) {
            items.push(item);
        }
    }
    items
}

/// Helm's annotation list reading (`manifest_sorter.go`): split on `,`, trim, lowercase.
/// Empty items are kept: for `helm.sh/hook` an empty item is an unknown event.
pub fn helm_csv(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|i| helm_item(i).into_owned())
        .collect()
}

/// One item of `helm_csv`, trimmed and lowercased; borrowed when lowercasing changes nothing
/// (every real value: `HookModel` reads `helm.sh/hook` in each review, and a `String` per
/// item was most of that).
pub fn helm_item(item: &str) -> Cow<'_, str> {
    let item = item.trim();
    if item
        .bytes()
        .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
    {
        Cow::Owned(item.to_lowercase())
    } else {
        Cow::Borrowed(item)
    }
}

/// Go's `strconv.Atoi` on a 64-bit build: optional `+`/`-`, ASCII decimal digits only,
/// no whitespace, no `_`, within i64. Rust's `i64::from_str` has exactly these rules.
pub fn go_atoi(value: &str) -> Option<i64> {
    value.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("PreSync", &["PreSync"])]
    #[case(" PreSync , PostSync ", &["PreSync", "PostSync"])]
    #[case("Sync,Sync", &["Sync"])]
    #[case("Sync,,Garbage,", &["Sync", "Garbage"])]
    #[case("", &[])]
    #[case(" , ,", &[])]
    #[case("\u{a0}PreSync\t", &["PreSync"])]
    #[case("PostSync,PreSync,PostSync", &["PostSync", "PreSync"])]
    fn argo_csv_splits_trims_dedups(#[case] value: &str, #[case] want: &[&str]) {
        assert_eq!(argo_csv(value), want);
    }

    #[rstest]
    #[case("pre-install", &["pre-install"])]
    #[case(" Pre-Install , POST-upgrade", &["pre-install", "post-upgrade"])]
    #[case("pre-install,", &["pre-install", ""])]
    #[case("", &[""])]
    fn helm_csv_lowercases_and_keeps_empty(#[case] value: &str, #[case] want: &[&str]) {
        assert_eq!(helm_csv(value), want);
    }

    #[rstest]
    #[case("0", Some(0))]
    #[case("5", Some(5))]
    #[case("-5", Some(-5))]
    #[case("+5", Some(5))]
    #[case("007", Some(7))]
    #[case("-0", Some(0))]
    #[case("9223372036854775807", Some(i64::MAX))]
    #[case("-9223372036854775808", Some(i64::MIN))]
    #[case("9223372036854775808", None)]
    #[case("", None)]
    #[case("+", None)]
    #[case("-", None)]
    #[case(" 5", None)]
    #[case("5 ", None)]
    #[case("1_000", None)]
    #[case("1.5", None)]
    #[case("0x10", None)]
    #[case("1e3", None)]
    #[case("٣", None)]
    #[case("--5", None)]
    fn go_atoi_matches_strconv(#[case] value: &str, #[case] want: Option<i64>) {
        assert_eq!(go_atoi(value), want);
    }

    #[test]
    fn hook_types_are_case_sensitive() {
        for t in HookType::ALL {
            assert_eq!(HookType::parse(t.as_str()), Some(t));
            assert_eq!(HookType::parse(&t.as_str().to_lowercase()), None);
            assert_eq!(HookType::parse(&t.as_str().to_uppercase()), None);
        }
        assert!(HookType::PreDelete.is_delete_hook());
        assert!(!HookType::Skip.is_delete_hook());
        assert!(HookType::SyncFail.is_gitops_engine_type());
    }

    #[rstest]
    #[case("pre-install", Some(HookType::PreSync))]
    #[case("pre-upgrade", Some(HookType::PreSync))]
    #[case("post-install", Some(HookType::PostSync))]
    #[case("post-upgrade", Some(HookType::PostSync))]
    #[case("pre-delete", Some(HookType::PreDelete))]
    #[case("post-delete", Some(HookType::PostDelete))]
    #[case("pre-rollback", None)]
    #[case("post-rollback", None)]
    #[case("test", None)]
    #[case("test-success", None)]
    fn helm_to_argo_mapping(#[case] event: &str, #[case] want: Option<HookType>) {
        let event = HelmEvent::parse_helm(event).expect("a Helm 3 event");
        assert_eq!(event.argo_type(), want);
    }

    #[rstest]
    #[case("test-failure")]
    #[case("crd-install")]
    #[case("pre-instal")]
    #[case("")]
    fn not_helm3_events(#[case] item: &str) {
        assert_eq!(HelmEvent::parse_helm(item), None);
    }

    #[test]
    fn delete_policies_in_both_spellings() {
        for p in DeletePolicy::ALL {
            assert_eq!(DeletePolicy::parse_argo(p.as_str()), Some(p));
            assert_eq!(DeletePolicy::parse_helm_for_argo(p.helm_str()), Some(p));
            assert_eq!(DeletePolicy::parse_argo(p.helm_str()), None);
            assert_eq!(
                DeletePolicy::parse_helm_for_argo(&p.helm_str().to_uppercase()),
                None
            );
        }
    }
}
