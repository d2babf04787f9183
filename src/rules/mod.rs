//! The rule catalogue and the checks that produce findings. Pure: an object view and its
//! hook model in, findings out. The webhook and `lint` call the same `check`.

mod catalogue;
pub mod suggest;

pub use catalogue::{Action, RuleId, RuleInfo};

use crate::hooks::{keys, ArgoFate, DeletePolicy, HookModel, HookObject, HookType, HookTypes};
use suggest::{closest, shown};

/// One rule that fired on one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: RuleId,
    /// The annotation the finding is about, when there is one.
    pub annotation: Option<&'static str>,
    /// A full sentence for denials and lint: annotation, bad value, consequence, fix.
    pub message: String,
}

impl Finding {
    fn new(rule: RuleId, annotation: Option<&'static str>, message: String) -> Finding {
        Finding {
            rule,
            annotation,
            message,
        }
    }

    /// `[rule-id] message`, the form shown to users.
    pub fn render(&self) -> String {
        format!("[{}] {}", self.rule, self.message)
    }

    /// The same, cut to the 120 characters the apiserver lets a warning have.
    pub fn warning(&self) -> String {
        suggest::truncate_chars(&self.render(), 120)
    }
}

const HOOK_NAMES: [&str; 7] = [
    "PreSync",
    "Sync",
    "PostSync",
    "SyncFail",
    "Skip",
    "PreDelete",
    "PostDelete",
];
const POLICY_NAMES: [&str; 3] = ["HookSucceeded", "HookFailed", "BeforeHookCreation"];
const HELM_POLICY_NAMES: [&str; 3] = ["hook-succeeded", "hook-failed", "before-hook-creation"];
const HELM_EVENT_NAMES: [&str; 10] = [
    "pre-install",
    "post-install",
    "pre-delete",
    "post-delete",
    "pre-upgrade",
    "post-upgrade",
    "pre-rollback",
    "post-rollback",
    "test",
    "test-success",
];
/// At most this many bad items are named in one finding; the rest are counted.
const MAX_ITEMS_NAMED: usize = 3;

fn did_you_mean(item: &str, candidates: &[&str]) -> String {
    match closest(item, candidates) {
        Some(c) => format!("did you mean `{c}`?"),
        None => format!("use one of {}", candidates.join(", ")),
    }
}

/// "`a` (did you mean `A`?), `b` (…) and 4 more".
fn describe_items(items: &[String], candidates: &[&str]) -> String {
    let mut parts: Vec<String> = items
        .iter()
        .take(MAX_ITEMS_NAMED)
        .map(|i| format!("{} ({})", shown(i), did_you_mean(i, candidates)))
        .collect();
    if items.len() > MAX_ITEMS_NAMED {
        parts.push(format!("{} more", items.len() - MAX_ITEMS_NAMED));
    }
    parts.join(", ")
}

fn type_list(types: &[HookType]) -> String {
    let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    names.join(",")
}

/// Every rule of the catalogue over one object. Returns the findings in catalogue order;
/// what to do with each (deny, warn, nothing) is the policy's business.
pub fn check(object: &HookObject, model: &HookModel) -> Vec<Finding> {
    check_for(object, model, &|_| true)
}

/// `check`, writing the message only of the findings whose rule `wants_message` names (the
/// others get an empty message): the webhook shows only denials and warnings, and writing
/// the sentences of rules the policy turns off or audits cost ~1 600 instructions a review.
/// Which findings there are, and in what order, does not depend on it.
pub fn check_for(
    object: &HookObject,
    model: &HookModel,
    wants_message: &dyn Fn(RuleId) -> bool,
) -> Vec<Finding> {
    let mut out = Findings {
        found: Vec::new(),
        wants_message,
    };
    let out = &mut out;
    check_argo_hook(model, out);
    check_argo_delete_policy(model, out);
    check_sync_wave(model, out);
    check_helm_hook(model, out);
    check_helm_delete_policy(model, out);
    check_helm_weight(model, out);
    check_helm_vs_argo(model, out);
    check_skip(model, out);
    check_policy_without_hook(model, out);
    if model.runs_as_hook() {
        check_hook_hazards(object, model, out);
    }
    let mut found = std::mem::take(&mut out.found);
    found.sort_by_key(|f| f.rule);
    found
}

/// The findings of one `check_for`, with the messages it was asked for.
struct Findings<'a> {
    found: Vec<Finding>,
    wants_message: &'a dyn Fn(RuleId) -> bool,
}

impl Findings<'_> {
    fn push(
        &mut self,
        rule: RuleId,
        annotation: Option<&'static str>,
        message: impl FnOnce() -> String,
    ) {
        let message = if (self.wants_message)(rule) {
            message()
        } else {
            String::new()
        };
        self.found.push(Finding::new(rule, annotation, message));
    }
}

fn check_argo_hook(m: &HookModel, out: &mut Findings<'_>) {
    let Some(raw) = &m.argo_hook else { return };
    let consequence = if m.fate == ArgoFate::Dropped {
        "Argo CD silently drops this object from the sync"
    } else {
        "Argo CD silently ignores it"
    };
    if m.argo_types.is_empty() && m.argo_unknown.is_empty() {
        out.push(RuleId::UnknownHookType, Some(keys::ARGO_HOOK), || {
            format!(
                "{} is empty ({}): {consequence}; set one of {}",
                keys::ARGO_HOOK,
                shown(raw),
                HOOK_NAMES.join(", ")
            )
        });
    } else if !m.argo_unknown.is_empty() {
        out.push(
            RuleId::UnknownHookType,
            Some(keys::ARGO_HOOK),
            || format!(
                "{} has {} that Argo CD does not know (hook types are case-sensitive): {}; {consequence}",
                keys::ARGO_HOOK,
                plural(m.argo_unknown.len(), "a value", "values"),
                describe_items(&m.argo_unknown, &HOOK_NAMES)
            ),
        );
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        one.to_owned()
    } else {
        format!("{n} {many}")
    }
}

fn check_argo_delete_policy(m: &HookModel, out: &mut Findings<'_>) {
    let Some(raw) = &m.argo_delete_policy else {
        return;
    };
    let set = &m.delete_policies;
    // Written only with a message that says it (most objects have a valid policy).
    let fallback = || {
        if set.defaulted {
            "Argo CD ignores it and falls back to BeforeHookCreation".to_owned()
        } else {
            format!("Argo CD ignores it and uses only {}", set.to_argo_value())
        }
    };
    if set.from_argo.is_empty() && set.argo_unknown.is_empty() {
        out.push(
            RuleId::UnknownDeletePolicy,
            Some(keys::ARGO_DELETE_POLICY),
            || {
                format!(
                    "{} is empty ({}): {}; set one of {}",
                    keys::ARGO_DELETE_POLICY,
                    shown(raw),
                    fallback(),
                    POLICY_NAMES.join(", ")
                )
            },
        );
    } else if !set.argo_unknown.is_empty() {
        out.push(
            RuleId::UnknownDeletePolicy,
            Some(keys::ARGO_DELETE_POLICY),
            || {
                format!(
                    "{} has {} that Argo CD does not know (case-sensitive): {}; {}",
                    keys::ARGO_DELETE_POLICY,
                    plural(set.argo_unknown.len(), "a value", "values"),
                    describe_items(&set.argo_unknown, &POLICY_NAMES),
                    fallback()
                )
            },
        );
    }
}

/// A likely intended integer for a value Atoi rejects.
fn integer_fix(raw: &str) -> String {
    let cleaned: String = raw.trim().chars().filter(|c| *c != '_').collect();
    match crate::hooks::go_atoi(&cleaned) {
        Some(v) => format!("write `{v}`"),
        None => "write a plain integer such as `0` or `-1`".to_owned(),
    }
}

fn check_sync_wave(m: &HookModel, out: &mut Findings<'_>) {
    let Some(raw) = &m.wave_invalid else { return };
    let used = match m.wave.source {
        crate::hooks::Source::Helm => format!("the helm.sh/hook-weight value {}", m.wave.value),
        _ => "wave 0".to_owned(),
    };
    out.push(
        RuleId::InvalidSyncWave,
        Some(keys::ARGO_SYNC_WAVE),
        || format!(
            "{} {} is not an integer (optional sign and digits only, no spaces or `_`): Argo CD silently uses {used}; {}",
            keys::ARGO_SYNC_WAVE,
            shown(raw),
            integer_fix(raw)
        ),
    );
}

fn check_helm_hook(m: &HookModel, out: &mut Findings<'_>) {
    let Some(raw) = &m.helm_hook else { return };
    let h = &m.helm;
    if h.crd_install_only {
        out.push(
            RuleId::Helm2CrdInstall,
            Some(keys::HELM_HOOK),
            || "helm.sh/hook `crd-install` is a Helm 2 hook: Helm 3 skips this resource, Argo CD applies it as a normal resource (not a hook); put CRDs in the chart's crds/ directory".to_owned(),
        );
        return;
    }
    let argo_consequence = if m.fate == ArgoFate::Dropped {
        "Argo CD silently drops this object from the sync"
    } else {
        "Argo CD ignores it"
    };
    if raw.trim().is_empty() {
        out.push(
            RuleId::UnknownHelmHook,
            Some(keys::HELM_HOOK),
            || format!(
                "helm.sh/hook is empty: Helm skips the resource and {argo_consequence}; set a Helm hook event such as `pre-install`"
            ),
        );
        return;
    }
    if h.skipped_by_helm() {
        let unknown: Vec<String> = h
            .unknown
            .iter()
            .map(|u| {
                if u.is_empty() {
                    "(empty item)".to_owned()
                } else {
                    u.clone()
                }
            })
            .collect();
        out.push(
            RuleId::UnknownHelmHook,
            Some(keys::HELM_HOOK),
            || format!(
                "helm.sh/hook has {} that Helm 3 does not know: {}; Helm skips the whole resource and {argo_consequence}",
                plural(unknown.len(), "an event", "events"),
                describe_items(&unknown, &HELM_EVENT_NAMES)
            ),
        );
    }
    if !h.miscased_for_argo.is_empty() {
        let fixes: Vec<String> = h
            .miscased_for_argo
            .iter()
            .take(MAX_ITEMS_NAMED)
            .map(|i| format!("{} (write `{}`)", shown(i), i.to_lowercase()))
            .collect();
        out.push(
            RuleId::UnknownHelmHook,
            Some(keys::HELM_HOOK),
            || format!(
                "helm.sh/hook is read case-sensitively by Argo CD, so {} is ignored by Argo CD although Helm accepts it; {argo_consequence}",
                fixes.join(", ")
            ),
        );
    }
}

fn check_helm_delete_policy(m: &HookModel, out: &mut Findings<'_>) {
    let Some(raw) = &m.helm_delete_policy else {
        return;
    };
    let set = &m.delete_policies;
    if raw.trim().is_empty() {
        out.push(
            RuleId::UnknownHelmDeletePolicy,
            Some(keys::HELM_DELETE_POLICY),
            || {
                format!(
                "helm.sh/hook-delete-policy is empty: Helm and Argo CD ignore it; set one of {}",
                HELM_POLICY_NAMES.join(", ")
            )
            },
        );
        return;
    }
    if set.helm_unknown.is_empty() {
        return;
    }
    let (miscased, unknown): (Vec<String>, Vec<String>) = set
        .helm_unknown
        .iter()
        .cloned()
        .partition(|i| DeletePolicy::parse_helm_for_argo(&i.to_lowercase()).is_some());
    let fallback = if set.defaulted {
        "Argo CD falls back to BeforeHookCreation"
    } else {
        "Argo CD ignores it"
    };
    if !unknown.is_empty() {
        out.push(
            RuleId::UnknownHelmDeletePolicy,
            Some(keys::HELM_DELETE_POLICY),
            || format!(
                "helm.sh/hook-delete-policy has {} that Helm and Argo CD do not know: {}; {fallback}",
                plural(unknown.len(), "a value", "values"),
                describe_items(&unknown, &HELM_POLICY_NAMES)
            ),
        );
    }
    if !miscased.is_empty() {
        let fixes: Vec<String> = miscased
            .iter()
            .take(MAX_ITEMS_NAMED)
            .map(|i| format!("{} (write `{}`)", shown(i), i.to_lowercase()))
            .collect();
        out.push(
            RuleId::UnknownHelmDeletePolicy,
            Some(keys::HELM_DELETE_POLICY),
            || format!(
                "helm.sh/hook-delete-policy is read case-sensitively by Argo CD, so {} is ignored by Argo CD although Helm accepts it; {fallback}",
                fixes.join(", ")
            ),
        );
    }
}

fn check_helm_weight(m: &HookModel, out: &mut Findings<'_>) {
    let Some(Err(raw)) = &m.helm_weight else {
        return;
    };
    out.push(RuleId::InvalidHookWeight, Some(keys::HELM_WEIGHT), || {
        format!(
            "helm.sh/hook-weight {} is not an integer: Helm and Argo CD silently use 0; {}",
            shown(raw),
            integer_fix(raw)
        )
    });
}

fn check_helm_vs_argo(m: &HookModel, out: &mut Findings<'_>) {
    if m.helm_hook.is_none() || m.helm.crd_install_only {
        return;
    }
    let ignored: Vec<&str> = m
        .helm
        .events
        .iter()
        .filter(|e| e.argo_type().is_none())
        .map(|e| e.as_str())
        .collect();
    if !ignored.is_empty() && !m.argo_hook_is_valid() {
        let what = || {
            if m.fate == ArgoFate::Dropped {
                "Argo CD never runs them and silently drops this object from the sync".to_owned()
            } else {
                format!(
                    "Argo CD never runs them (it runs this hook as {} only)",
                    type_list(m.phases())
                )
            }
        };
        out.push(RuleId::HelmHookIgnoredByArgo, Some(keys::HELM_HOOK), || {
            format!("helm.sh/hook names {}: {}", ignored.join(", "), what())
        });
    }
    if !m.argo_hook_is_valid() {
        return;
    }
    let mut argo: HookTypes = m
        .argo_types
        .iter()
        .copied()
        .filter(|t| *t != HookType::Skip)
        .collect();
    argo.sort();
    let helm = m.helm_types_for_argo();
    if argo == helm {
        return;
    }
    let argo_has_sync_type = m.argo_types.iter().any(|t| t.is_gitops_engine_type());
    let message = || {
        if !argo_has_sync_type && m.types_source == Some(crate::hooks::Source::Helm) {
            format!(
                "{} names only delete hooks, so Argo CD also runs the helm.sh/hook types: this object runs as {}; write every type in {} to make that explicit",
                keys::ARGO_HOOK,
                type_list(m.phases()),
                keys::ARGO_HOOK
            )
        } else {
            format!(
                "{} ({}) takes precedence: the helm.sh/hook value {} is ignored by Argo CD, which runs this object as {}",
                keys::ARGO_HOOK,
                type_list(&argo),
                shown(m.helm_hook.unwrap_or_default()),
                if m.phases().is_empty() { "nothing".to_owned() } else { type_list(m.phases()) }
            )
        }
    };
    out.push(RuleId::ArgoOverridesHelm, Some(keys::ARGO_HOOK), message);
}

fn check_skip(m: &HookModel, out: &mut Findings<'_>) {
    if !m.argo_types.contains(&HookType::Skip) || m.argo_types.len() < 2 {
        return;
    }
    let message = || {
        if m.fate == ArgoFate::Skipped {
            format!(
                "{} combines Skip with {}: Argo CD still skips the sync, but the other types only take effect elsewhere; keep only `Skip`",
                keys::ARGO_HOOK,
                type_list(&m.argo_types.iter().copied().filter(|t| *t != HookType::Skip).collect::<Vec<_>>())
            )
        } else {
            format!(
                "{} combines Skip with other types, so it is not skipped at all: Argo CD runs it as a {} hook; use `Skip` alone to skip it",
                keys::ARGO_HOOK,
                type_list(m.phases())
            )
        }
    };
    out.push(RuleId::SkipCombined, Some(keys::ARGO_HOOK), message);
}

fn check_policy_without_hook(m: &HookModel, out: &mut Findings<'_>) {
    if m.runs_as_hook() || m.fate == ArgoFate::Dropped {
        return;
    }
    let key = if m.argo_delete_policy.is_some() {
        keys::ARGO_DELETE_POLICY
    } else if m.helm_delete_policy.is_some() {
        keys::HELM_DELETE_POLICY
    } else {
        return;
    };
    let why = if m.fate == ArgoFate::Skipped {
        "this object is skipped (hook type Skip), not a hook"
    } else {
        "this object is not a hook"
    };
    out.push(
        RuleId::DeletePolicyWithoutHook,
        Some(key),
        || format!(
            "{key} has no effect: {why}, and Argo CD applies delete policies to hooks only; add {} or remove the policy",
            keys::ARGO_HOOK
        ),
    );
}

fn check_hook_hazards(object: &HookObject, m: &HookModel, out: &mut Findings<'_>) {
    let is_job = object.is_kind("batch", "Job");
    let is_pod = object.is_kind("", "Pod");
    let phases = m.phases();
    let policies = &m.delete_policies;

    if is_job {
        let ttl = object
            .spec
            .as_ref()
            .and_then(|s| s.ttl_seconds_after_finished);
        if let Some(ttl) = ttl {
            out.push(
                RuleId::JobTtlRace,
                None,
                || format!(
                    "hook Job sets spec.ttlSecondsAfterFinished={ttl}: the TTL controller can delete it before Argo CD reads its result and the sync hangs; use {} instead",
                    keys::ARGO_DELETE_POLICY
                ),
            );
        }
        let deadline = object.spec.as_ref().and_then(|s| s.active_deadline_seconds);
        if deadline.is_none() {
            out.push(
                RuleId::JobMissingDeadline,
                None,
                || "hook Job has no spec.activeDeadlineSeconds: a stuck hook blocks the sync forever; set a deadline".to_owned(),
            );
        }
    }

    if is_pod {
        let restart = object.pod_spec().and_then(|p| p.restart_policy.as_deref());
        if restart.is_none_or(|r| r == "Always") {
            out.push(
                RuleId::PodNeverCompletes,
                None,
                || format!(
                    "hook Pod has restartPolicy {}: it never completes, so Argo CD waits for it forever; set restartPolicy: Never or OnFailure",
                    restart.map(|r| format!("`{r}`")).unwrap_or_else(|| "`Always` (the default)".to_owned())
                ),
            );
        }
    }

    if phases.contains(&HookType::SyncFail) && policies.is_only(DeletePolicy::HookSucceeded) {
        out.push(
            RuleId::NeverCleaned,
            Some(keys::ARGO_DELETE_POLICY),
            || "SyncFail hook whose only delete policy is HookSucceeded is never deleted: SyncFail runs only when the sync fails, and HookSucceeded needs the whole sync to succeed; add HookFailed".to_owned(),
        );
    }
    let generated = object
        .generate_name()
        .is_some_and(|g| object.name().is_none_or(|n| n.starts_with(g)));
    if generated && policies.is_only(DeletePolicy::BeforeHookCreation) {
        out.push(
            RuleId::NeverCleaned,
            Some(keys::ARGO_DELETE_POLICY),
            || format!(
                "generateName hook whose only delete policy is BeforeHookCreation{}: every run gets a new name, so old runs are never deleted; add HookSucceeded or use a fixed name",
                if policies.defaulted { " (the default)" } else { "" }
            ),
        );
    }
    if phases.contains(&HookType::PostDelete)
        && !policies.contains(DeletePolicy::HookSucceeded)
        && !policies.contains(DeletePolicy::HookFailed)
    {
        out.push(
            RuleId::NeverCleaned,
            Some(keys::ARGO_DELETE_POLICY),
            || "PostDelete hook without HookSucceeded or HookFailed stays in the cluster after the Application is deleted; add HookSucceeded".to_owned(),
        );
    }

    if m.argo_delete_policy.is_none() && m.helm_delete_policy.is_none() {
        out.push(
            RuleId::MissingDeletePolicy,
            Some(keys::ARGO_DELETE_POLICY),
            || format!(
                "hook has no delete policy, so Argo CD assumes BeforeHookCreation; set {} explicitly",
                keys::ARGO_DELETE_POLICY
            ),
        );
    }

    if let Some(pod) = object.pod_spec() {
        if let Some(reason) = privileged_reason(pod) {
            let reason = || reason.describe();
            out.push(RuleId::PrivilegedHook, None, || {
                format!(
                    "hook {}; run hooks unprivileged with runAsNonRoot: true",
                    reason()
                )
            });
        }
    }
}

/// Why a container runs privileged or (possibly) as root, with its name: described only
/// when the message is written.
enum RootRisk<'a> {
    Privileged(&'a str),
    Root(&'a str),
    MaybeRoot(&'a str),
}

impl RootRisk<'_> {
    fn describe(&self) -> String {
        match self {
            RootRisk::Privileged(name) => format!("container `{name}` runs privileged"),
            RootRisk::Root(name) => format!("container `{name}` runs as root (runAsUser: 0)"),
            RootRisk::MaybeRoot(name) => format!(
                "container `{name}` may run as root (neither runAsNonRoot: true nor a non-zero runAsUser)"
            ),
        }
    }
}

/// Why a pod spec runs privileged or (possibly) as root, if it does.
fn privileged_reason<'p>(pod: &'p crate::hooks::SpecView<'_>) -> Option<RootRisk<'p>> {
    let pod_ctx = pod.security_context.as_ref();
    let containers = pod
        .containers
        .iter()
        .flatten()
        .chain(pod.init_containers.iter().flatten());
    for c in containers {
        let name = c.name.as_deref().unwrap_or("?");
        let ctx = c.security_context.as_ref();
        if ctx.and_then(|s| s.privileged) == Some(true) {
            return Some(RootRisk::Privileged(name));
        }
        let run_as_user = ctx
            .and_then(|s| s.run_as_user)
            .or(pod_ctx.and_then(|s| s.run_as_user));
        let non_root = ctx
            .and_then(|s| s.run_as_non_root)
            .or(pod_ctx.and_then(|s| s.run_as_non_root));
        match run_as_user {
            Some(0) => return Some(RootRisk::Root(name)),
            Some(_) => {}
            None if non_root != Some(true) => return Some(RootRisk::MaybeRoot(name)),
            None => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
