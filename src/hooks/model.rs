//! What Argo CD (and Helm) will do with an object, computed from its six hook annotations.

use super::{argo_csv, go_atoi, helm_item, keys, DeletePolicy, HelmEvent, HookType};
use smallvec::SmallVec;
use std::borrow::Borrow;
use std::collections::BTreeMap;

/// Hook types, held inline: there are seven, and the lists are de-duplicated, so a model of
/// a review allocates none of its lists (each was an allocation and a free per review).
pub type HookTypes = SmallVec<[HookType; 8]>;
/// Delete policies (three, de-duplicated), held inline like `HookTypes`.
pub type DeletePolicies = SmallVec<[DeletePolicy; 3]>;

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Argo,
    Helm,
    Default,
}

/// What Argo CD does with the object as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgoFate {
    /// No hook annotation (or `helm.sh/hook: crd-install` alone): a normal resource.
    NotAHook,
    /// `Skip` is the only valid type: kept in the desired state, never applied.
    Skipped,
    /// A hook run in these phases (sync phases first, then delete hooks), in Argo's order.
    Hook(HookTypes),
    /// A hook annotation with no valid type and no Helm fallback: Argo CD silently drops the
    /// object from the sync (`ignore.Ignore`), it is never applied.
    Dropped,
}

/// `helm.sh/hook` as each tool reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HelmView {
    /// Helm 3's reading: events of the trimmed, lowercased items.
    pub events: SmallVec<[HelmEvent; 4]>,
    /// Items Helm 3 does not know (lowercased); any makes Helm skip the whole resource.
    pub unknown: Vec<String>,
    /// Items (trimmed, original case) that Helm accepts but Argo CD's case-sensitive reading
    /// ignores, e.g. `Pre-Install`.
    pub miscased_for_argo: Vec<String>,
    /// The Argo types from Argo's own reading (trim, exact match, de-duplicated).
    pub argo_types: HookTypes,
    /// `crd-install` exactly: not a hook for Argo CD, unknown to Helm 3.
    pub crd_install_only: bool,
}

impl HelmView {
    fn parse(value: &str) -> HelmView {
        let mut view = HelmView {
            crd_install_only: value == "crd-install",
            ..HelmView::default()
        };
        for raw in value.split(',').map(str::trim) {
            let lower = helm_item(raw);
            match HelmEvent::parse_helm(&lower) {
                Some(event) => {
                    if !view.events.contains(&event) {
                        view.events.push(event);
                    }
                    // Argo compares the trimmed item exactly (`helm.Types`, `isHookOfType`).
                    let argo_reads_it = HelmEvent::ALL.iter().any(|e| e.as_str() == raw);
                    if !argo_reads_it && raw != "test-success" {
                        view.miscased_for_argo.push(raw.to_owned());
                    }
                }
                None => view.unknown.push(lower.into_owned()),
            }
        }
        each_argo_item(value, |item| {
            if let Some(t) = HelmEvent::ALL
                .into_iter()
                .find(|e| e.as_str() == item)
                .and_then(HelmEvent::argo_type)
            {
                if !view.argo_types.contains(&t) {
                    view.argo_types.push(t);
                }
            }
        });
        view
    }

    /// Helm 3 skips the resource entirely (neither hook nor normal resource).
    pub fn skipped_by_helm(&self) -> bool {
        !self.unknown.is_empty()
    }
}

/// The effective delete policies and how they were obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySet {
    /// In Argo's order: the Argo annotation's items, then the mapped Helm ones.
    pub policies: DeletePolicies,
    pub from_argo: DeletePolicies,
    pub from_helm: DeletePolicies,
    /// Items of the Argo annotation that Argo ignores (trimmed).
    pub argo_unknown: Vec<String>,
    /// Items of the Helm annotation that Argo ignores (trimmed, original case).
    pub helm_unknown: Vec<String>,
    /// Neither annotation gave a valid policy: Argo assumes BeforeHookCreation.
    pub defaulted: bool,
}

impl PolicySet {
    pub fn is_only(&self, policy: DeletePolicy) -> bool {
        *self.policies == [policy]
    }

    pub fn contains(&self, policy: DeletePolicy) -> bool {
        self.policies.contains(&policy)
    }

    /// The Argo spelling of the whole set, as hookguard writes it.
    pub fn to_argo_value(&self) -> String {
        let names: Vec<&str> = self.policies.iter().map(|p| p.as_str()).collect();
        names.join(",")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wave {
    pub value: i64,
    pub source: Source,
}

/// A typed description of what Argo CD will do with an object, from its annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookModel<'a> {
    /// The raw `argocd.argoproj.io/hook` value, when the key is present. The raw values
    /// borrow from the annotations the model was made from.
    pub argo_hook: Option<&'a str>,
    /// Valid items of `argocd.argoproj.io/hook`, in order, de-duplicated.
    pub argo_types: HookTypes,
    /// Items Argo ignores (trimmed, de-duplicated).
    pub argo_unknown: Vec<String>,
    /// The raw `helm.sh/hook` value and its readings.
    pub helm_hook: Option<&'a str>,
    pub helm: HelmView,
    /// gitops-engine `hook.Types`: Argo's valid types, else the mapped Helm types.
    pub sync_types: HookTypes,
    pub types_source: Option<Source>,
    /// gitops-engine `hook.IsHook`.
    pub is_hook: bool,
    pub fate: ArgoFate,
    pub delete_policies: PolicySet,
    pub wave: Wave,
    /// `argocd.argoproj.io/sync-wave` is present but is not an Atoi integer.
    pub wave_invalid: Option<String>,
    /// `helm.sh/hook-weight` parsed, or the raw value when it is not an integer.
    pub helm_weight: Option<Result<i64, String>>,
    /// The raw `argocd.argoproj.io/hook-delete-policy` and `helm.sh/hook-delete-policy`.
    pub argo_delete_policy: Option<&'a str>,
    pub helm_delete_policy: Option<&'a str>,
}

impl<'a> HookModel<'a> {
    /// True when any of the six hook annotations is present.
    pub fn has_hook_annotations<K: Borrow<str> + Ord, V>(annotations: &BTreeMap<K, V>) -> bool {
        keys::HOOK_ANNOTATIONS
            .iter()
            .any(|k| annotations.contains_key(*k))
    }

    /// Generic over the map's string types: the admission review's borrow from the request
    /// body, the finalizer's are the Kubernetes client's `String`s.
    pub fn from_annotations<K, V>(annotations: &'a BTreeMap<K, V>) -> HookModel<'a>
    where
        K: Borrow<str> + Ord,
        V: AsRef<str>,
    {
        let get = |k: &str| annotations.get(k).map(V::as_ref);
        let argo_hook = get(keys::ARGO_HOOK);
        let helm_hook = get(keys::HELM_HOOK);

        let mut argo_types = HookTypes::new();
        let mut argo_unknown = Vec::new();
        each_argo_item(argo_hook.unwrap_or(""), |item| {
            match HookType::parse(item) {
                Some(t) => argo_types.push(t),
                None => argo_unknown.push(item.to_owned()),
            }
        });
        let helm = helm_hook.map(HelmView::parse).unwrap_or_default();

        // gitops-engine `Types`: the Argo types NewHookType accepts, else the Helm fallback.
        let gitops_argo: HookTypes = argo_types
            .iter()
            .copied()
            .filter(|t| t.is_gitops_engine_type())
            .collect();
        let helm_sync: HookTypes = helm
            .argo_types
            .iter()
            .copied()
            .filter(|t| t.is_gitops_engine_type())
            .collect();
        let (sync_types, types_source) = if !gitops_argo.is_empty() {
            (gitops_argo, Some(Source::Argo))
        } else if !helm_sync.is_empty() {
            (helm_sync, Some(Source::Helm))
        } else {
            (HookTypes::new(), None)
        };
        let skip = *sync_types == [HookType::Skip];
        let is_hook = match (argo_hook, helm_hook) {
            (Some(_), _) => !skip,
            (None, Some(h)) => h != "crd-install",
            (None, None) => false,
        };

        // Argo CD controller `isHookOfType`: either annotation names the delete hook.
        let mut delete_hooks = HookTypes::new();
        for t in [HookType::PreDelete, HookType::PostDelete] {
            if argo_types.contains(&t) || helm.argo_types.contains(&t) {
                delete_hooks.push(t);
            }
        }

        let fate = if skip {
            ArgoFate::Skipped
        } else if !is_hook {
            ArgoFate::NotAHook
        } else {
            let mut phases: HookTypes = sync_types
                .iter()
                .copied()
                .filter(|t| *t != HookType::Skip)
                .collect();
            phases.sort();
            phases.extend(delete_hooks.iter().copied());
            if phases.is_empty() {
                ArgoFate::Dropped
            } else {
                ArgoFate::Hook(phases)
            }
        };

        let argo_delete_policy = get(keys::ARGO_DELETE_POLICY);
        let helm_delete_policy = get(keys::HELM_DELETE_POLICY);
        let delete_policies = delete_policies(argo_delete_policy, helm_delete_policy);

        let helm_weight = get(keys::HELM_WEIGHT).map(|w| go_atoi(w).ok_or_else(|| w.to_owned()));
        let wave_raw = get(keys::ARGO_SYNC_WAVE);
        let wave_parsed = wave_raw.and_then(go_atoi);
        let wave = match (wave_parsed, &helm_weight) {
            (Some(v), _) => Wave {
                value: v,
                source: Source::Argo,
            },
            (None, Some(Ok(w))) => Wave {
                value: *w,
                source: Source::Helm,
            },
            _ => Wave {
                value: 0,
                source: Source::Default,
            },
        };
        let wave_invalid = match (wave_raw, wave_parsed) {
            (Some(raw), None) => Some(raw.to_owned()),
            _ => None,
        };

        HookModel {
            argo_hook,
            argo_types,
            argo_unknown,
            helm_hook,
            helm,
            sync_types,
            types_source,
            is_hook,
            fate,
            delete_policies,
            wave,
            wave_invalid,
            helm_weight,
            argo_delete_policy,
            helm_delete_policy,
        }
    }

    /// The phases Argo CD runs this object in; empty when it is not run as a hook.
    pub fn phases(&self) -> &[HookType] {
        match &self.fate {
            ArgoFate::Hook(phases) => phases,
            _ => &[],
        }
    }

    /// Argo CD runs this object as a hook in at least one phase.
    pub fn runs_as_hook(&self) -> bool {
        !self.phases().is_empty()
    }

    /// The Argo types written in `argocd.argoproj.io/hook` are all Argo needs: no Helm
    /// fallback is involved.
    pub fn argo_hook_is_valid(&self) -> bool {
        self.argo_types
            .iter()
            .any(|t| t.is_gitops_engine_type() || t.is_delete_hook())
    }

    /// The hook types hookguard writes when it makes a Helm hook explicit: what Argo runs,
    /// mapped from Helm, in Argo's phase order.
    pub fn helm_types_for_argo(&self) -> HookTypes {
        let mut types = self.helm.argo_types.clone();
        types.sort();
        types
    }
}

/// `argo_csv(value)`'s items in order, without collecting them: a value of up to eight
/// items (every real one) is de-duplicated in an array on the stack, saving `argo_csv`'s
/// Vec (an allocation and a free, ~200 instructions) for each annotation read per review.
fn each_argo_item<'a>(value: &'a str, mut f: impl FnMut(&'a str)) {
    const INLINE: usize = 8;
    if value.bytes().filter(|b| *b == b',').count() >= INLINE {
        argo_csv(value).into_iter().for_each(f);
        return;
    }
    let mut seen = [""; INLINE];
    let mut n = 0;
    for item in value.split(',') {
        let item = item.trim();
        if !item.is_empty() && !seen[..n].contains(&item) {
            seen[n] = item;
            n += 1;
            f(item);
        }
    }
}

/// gitops-engine `hook.DeletePolicies`: the union of both annotations, Argo's first, with
/// BeforeHookCreation when neither gives a valid one.
fn delete_policies(argo: Option<&str>, helm: Option<&str>) -> PolicySet {
    let mut set = PolicySet {
        policies: DeletePolicies::new(),
        from_argo: DeletePolicies::new(),
        from_helm: DeletePolicies::new(),
        argo_unknown: Vec::new(),
        helm_unknown: Vec::new(),
        defaulted: false,
    };
    each_argo_item(argo.unwrap_or(""), |item| {
        match DeletePolicy::parse_argo(item) {
            Some(p) => set.from_argo.push(p),
            None => set.argo_unknown.push(item.to_owned()),
        }
    });
    each_argo_item(
        helm.unwrap_or(""),
        |item| match DeletePolicy::parse_helm_for_argo(item) {
            Some(p) => {
                if !set.from_helm.contains(&p) {
                    set.from_helm.push(p)
                }
            }
            None => set.helm_unknown.push(item.to_owned()),
        },
    );
    for p in set.from_argo.iter().chain(set.from_helm.iter()) {
        if !set.policies.contains(p) {
            set.policies.push(*p);
        }
    }
    if set.policies.is_empty() {
        set.policies.push(DeletePolicy::BeforeHookCreation);
        set.defaulted = true;
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use smallvec::smallvec;
    use HookType::*;

    /// The model borrows from its map, which each test keeps (leaked) for as long as it runs.
    fn model(pairs: &[(&str, &str)]) -> HookModel<'static> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HookModel::from_annotations(Box::leak(Box::new(map)))
    }

    // The classification table of the reference, §1.2, plus the Helm rows of §3.1.
    #[rstest]
    #[case(&[("argocd.argoproj.io/hook", "PreSync")], true, ArgoFate::Hook(smallvec![PreSync]))]
    #[case(&[("argocd.argoproj.io/hook", " PreSync , PostSync ")], true, ArgoFate::Hook(smallvec![PreSync, PostSync]))]
    #[case(&[("argocd.argoproj.io/hook", "PostSync,PreSync")], true, ArgoFate::Hook(smallvec![PreSync, PostSync]))]
    #[case(&[("argocd.argoproj.io/hook", "Sync,Sync")], true, ArgoFate::Hook(smallvec![Sync]))]
    #[case(&[("argocd.argoproj.io/hook", "Sync,Garbage")], true, ArgoFate::Hook(smallvec![Sync]))]
    #[case(&[("argocd.argoproj.io/hook", "presync")], true, ArgoFate::Dropped)]
    #[case(&[("argocd.argoproj.io/hook", "Garbage")], true, ArgoFate::Dropped)]
    #[case(&[("argocd.argoproj.io/hook", "")], true, ArgoFate::Dropped)]
    #[case(&[("argocd.argoproj.io/hook", "Skip")], false, ArgoFate::Skipped)]
    #[case(&[("argocd.argoproj.io/hook", "Skip,Garbage")], false, ArgoFate::Skipped)]
    #[case(&[("argocd.argoproj.io/hook", "Skip,PreSync")], true, ArgoFate::Hook(smallvec![PreSync]))]
    #[case(&[("argocd.argoproj.io/hook", "PreDelete")], true, ArgoFate::Hook(smallvec![PreDelete]))]
    #[case(&[("argocd.argoproj.io/hook", "PostDelete")], true, ArgoFate::Hook(smallvec![PostDelete]))]
    #[case(&[("argocd.argoproj.io/hook", "PreDelete"), ("helm.sh/hook", "pre-install")], true, ArgoFate::Hook(smallvec![PreSync, PreDelete]))]
    #[case(&[("argocd.argoproj.io/hook", "PostSync,PostDelete")], true, ArgoFate::Hook(smallvec![PostSync, PostDelete]))]
    #[case(&[("argocd.argoproj.io/hook", "SyncFail")], true, ArgoFate::Hook(smallvec![SyncFail]))]
    #[case(&[("helm.sh/hook", "pre-install")], true, ArgoFate::Hook(smallvec![PreSync]))]
    #[case(&[("helm.sh/hook", "pre-install,pre-upgrade")], true, ArgoFate::Hook(smallvec![PreSync]))]
    #[case(&[("helm.sh/hook", "post-install,post-upgrade")], true, ArgoFate::Hook(smallvec![PostSync]))]
    #[case(&[("helm.sh/hook", "pre-delete")], true, ArgoFate::Hook(smallvec![PreDelete]))]
    #[case(&[("helm.sh/hook", "post-delete")], true, ArgoFate::Hook(smallvec![PostDelete]))]
    #[case(&[("helm.sh/hook", "pre-rollback")], true, ArgoFate::Dropped)]
    #[case(&[("helm.sh/hook", "post-rollback")], true, ArgoFate::Dropped)]
    #[case(&[("helm.sh/hook", "test")], true, ArgoFate::Dropped)]
    #[case(&[("helm.sh/hook", "test-success")], true, ArgoFate::Dropped)]
    #[case(&[("helm.sh/hook", "crd-install")], false, ArgoFate::NotAHook)]
    #[case(&[("helm.sh/hook", "crd-install,pre-install")], true, ArgoFate::Hook(smallvec![PreSync]))]
    #[case(&[("helm.sh/hook", "Pre-Install")], true, ArgoFate::Dropped)]
    #[case(&[("argocd.argoproj.io/hook", "Sync"), ("helm.sh/hook", "pre-install")], true, ArgoFate::Hook(smallvec![Sync]))]
    #[case(&[("argocd.argoproj.io/hook", "sync"), ("helm.sh/hook", "pre-install")], true, ArgoFate::Hook(smallvec![PreSync]))]
    #[case(&[("argocd.argoproj.io/sync-wave", "3")], false, ArgoFate::NotAHook)]
    #[case(&[], false, ArgoFate::NotAHook)]
    fn classification(
        #[case] annotations: &[(&str, &str)],
        #[case] is_hook: bool,
        #[case] fate: ArgoFate,
    ) {
        let m = model(annotations);
        assert_eq!(m.is_hook, is_hook, "{annotations:?}");
        assert_eq!(m.fate, fate, "{annotations:?}");
    }

    #[test]
    fn each_argo_item_gives_argo_csv_items() {
        let mut values: Vec<String> = [
            "",
            ",",
            " , ,",
            "PreSync",
            " PreSync , PostSync ",
            "a,a,b,a,b,c",
            "a,,b, ,c,",
            "a,b,c,d,e,f,g,h",
            "a,b,c,d,e,f,g,h,i",
            "a,b,c,d,e,f,g,a,a",
            "a,a,a,a,a,a,a,a,a,b",
        ]
        .iter()
        .map(|v| v.to_string())
        .collect();
        for n in 0..20 {
            values.push(
                (0..n)
                    .map(|i| format!("x{}", i % 5))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            values.push(
                (0..n)
                    .map(|i| format!(" y{i} "))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        for value in &values {
            let mut items = Vec::new();
            each_argo_item(value, |i| items.push(i));
            assert_eq!(items, argo_csv(value), "{value:?}");
        }
    }

    #[test]
    fn helm_fallback_only_without_valid_argo_type() {
        let m = model(&[
            ("argocd.argoproj.io/hook", "Sync"),
            ("helm.sh/hook", "post-install"),
        ]);
        assert_eq!(m.types_source, Some(Source::Argo));
        let m = model(&[
            ("argocd.argoproj.io/hook", "Synk"),
            ("helm.sh/hook", "post-install"),
        ]);
        assert_eq!(m.types_source, Some(Source::Helm));
        assert_eq!(*m.sync_types, [PostSync]);
    }

    #[rstest]
    #[case(None, None, &[DeletePolicy::BeforeHookCreation], true)]
    #[case(Some("HookSucceeded"), None, &[DeletePolicy::HookSucceeded], false)]
    #[case(Some("HookSuceeded"), None, &[DeletePolicy::BeforeHookCreation], true)]
    #[case(Some(" HookFailed ,HookSucceeded,HookFailed"), None, &[DeletePolicy::HookFailed, DeletePolicy::HookSucceeded], false)]
    #[case(None, Some("hook-succeeded"), &[DeletePolicy::HookSucceeded], false)]
    #[case(None, Some("Hook-Succeeded"), &[DeletePolicy::BeforeHookCreation], true)]
    #[case(Some("HookFailed"), Some("hook-succeeded,before-hook-creation"), &[DeletePolicy::HookFailed, DeletePolicy::HookSucceeded, DeletePolicy::BeforeHookCreation], false)]
    #[case(Some("HookSucceeded"), Some("hook-succeeded"), &[DeletePolicy::HookSucceeded], false)]
    #[case(Some(""), Some(""), &[DeletePolicy::BeforeHookCreation], true)]
    fn delete_policy_union_and_default(
        #[case] argo: Option<&str>,
        #[case] helm: Option<&str>,
        #[case] want: &[DeletePolicy],
        #[case] defaulted: bool,
    ) {
        let set = delete_policies(argo, helm);
        assert_eq!(*set.policies, *want);
        assert_eq!(set.defaulted, defaulted);
    }

    #[rstest]
    #[case(Some("5"), None, 5, Source::Argo)]
    #[case(Some("-3"), Some("7"), -3, Source::Argo)]
    #[case(Some("x"), Some("7"), 7, Source::Helm)]
    #[case(Some(" 1"), None, 0, Source::Default)]
    #[case(None, Some("+2"), 2, Source::Helm)]
    #[case(None, Some("two"), 0, Source::Default)]
    #[case(None, None, 0, Source::Default)]
    fn wave_falls_back_to_helm_weight(
        #[case] wave: Option<&str>,
        #[case] weight: Option<&str>,
        #[case] value: i64,
        #[case] source: Source,
    ) {
        let mut pairs = Vec::new();
        if let Some(w) = wave {
            pairs.push(("argocd.argoproj.io/sync-wave", w));
        }
        if let Some(w) = weight {
            pairs.push(("helm.sh/hook-weight", w));
        }
        let m = model(&pairs);
        assert_eq!(m.wave, Wave { value, source });
    }

    #[test]
    fn helm_reading_differs_from_argo_reading() {
        let m = model(&[("helm.sh/hook", " Pre-Install ,post-upgrade")]);
        assert_eq!(
            *m.helm.events,
            [HelmEvent::PreInstall, HelmEvent::PostUpgrade]
        );
        assert_eq!(m.helm.miscased_for_argo, vec!["Pre-Install".to_string()]);
        assert_eq!(*m.helm.argo_types, [PostSync]);
        assert!(!m.helm.skipped_by_helm());

        let m = model(&[("helm.sh/hook", "pre-install,pre-instal")]);
        assert!(m.helm.skipped_by_helm());
        assert_eq!(m.helm.unknown, vec!["pre-instal".to_string()]);
        // Argo still runs the valid item.
        assert_eq!(m.fate, ArgoFate::Hook(smallvec![PreSync]));

        let m = model(&[("helm.sh/hook", "pre-install,")]);
        assert!(
            m.helm.skipped_by_helm(),
            "Helm treats an empty item as unknown"
        );
    }
}
