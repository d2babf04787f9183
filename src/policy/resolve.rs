//! Resolution: (rule, namespace) → what happens, and findings → verdict. The one place that
//! decides; the webhook and `lint` both call `verdict`.
//!
//! Two questions, answered separately:
//! - the rule's **action** (`deny`/`warn`/`off`): the last matching namespace override that
//!   lists the rule, else the global `rules`, else the catalogue default;
//! - the **mode** (`enforce`/`warn`/`audit`): the last matching override that sets `mode`,
//!   else the global `mode`.
//!
//! Then the mode decides the effect of the action: enforce keeps it; warn turns deny into warn;
//! audit turns deny and warn into audit (admitted, no warning, logged and counted). `off` is
//! off in every mode.

use super::{Mode, NamespaceOverride, Policy};
use crate::rules::{Action, Finding, RuleId};
use std::collections::BTreeMap;

/// The namespace labels as far as they are known.
#[derive(Debug, Clone, Copy)]
pub enum Labels<'a> {
    Known(&'a BTreeMap<String, String>),
    /// Not known (no namespace watch, or the namespace is not in its cache yet). Overrides
    /// that select by label are then assumed to match or not, whichever is stricter.
    Unknown,
}

/// The namespace a request or manifest is in. Cluster-scoped objects have the name `""`.
#[derive(Debug, Clone, Copy)]
pub struct NamespaceRef<'a> {
    pub name: &'a str,
    pub labels: Labels<'a>,
}

impl<'a> NamespaceRef<'a> {
    pub fn new(name: &'a str, labels: Labels<'a>) -> Self {
        NamespaceRef { name, labels }
    }
}

/// What a fired rule does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// Nothing (the rule is off).
    Off,
    /// Admitted; only logged, counted and written to the audit annotations.
    Audit,
    /// Admitted with a warning to the client.
    Warn,
    /// Refused.
    Deny,
}

impl Effect {
    pub fn of(mode: Mode, action: Action) -> Effect {
        match (mode, action) {
            (_, Action::Off) => Effect::Off,
            (Mode::Enforce, Action::Deny) => Effect::Deny,
            (Mode::Enforce, Action::Warn) | (Mode::Warn, _) => Effect::Warn,
            (Mode::Audit, _) => Effect::Audit,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Off => "off",
            Effect::Audit => "audit",
            Effect::Warn => "warn",
            Effect::Deny => "deny",
        }
    }
}

/// How one rule resolves in one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The configured action (before the mode).
    pub action: Action,
    pub mode: Mode,
    pub effect: Effect,
}

impl Resolved {
    /// A `deny` the mode softened: what `warn` and `audit` modes report as "would deny".
    pub fn would_deny(&self) -> bool {
        self.action == Action::Deny && self.effect != Effect::Deny
    }
}

fn resolve_with<'p>(
    policy: &Policy,
    rule: RuleId,
    applied: impl Iterator<Item = &'p NamespaceOverride>,
) -> Resolved {
    let mut action = policy
        .rules
        .get(&rule)
        .copied()
        .unwrap_or(rule.default_action());
    let mut mode = policy.mode;
    for o in applied {
        if let Some(a) = o.rules.get(&rule) {
            action = *a;
        }
        if let Some(m) = o.mode {
            mode = m;
        }
    }
    Resolved {
        action,
        mode,
        effect: Effect::of(mode, action),
    }
}

impl Policy {
    /// How `rule` resolves in `ns`. With unknown labels, each override that selects by label
    /// (and matches by name) is tried on top of the certain ones, and the strictest result
    /// wins: an unknown label can never weaken enforcement.
    pub fn resolve(&self, rule: RuleId, ns: &NamespaceRef<'_>) -> Resolved {
        let decided: Vec<(usize, Option<bool>)> = self
            .namespaces
            .iter()
            .enumerate()
            .map(|(i, o)| (i, o.matches(ns)))
            .collect();
        let certain = || {
            decided
                .iter()
                .filter(|(_, m)| *m == Some(true))
                .map(|(i, _)| &self.namespaces[*i])
        };
        let mut best = resolve_with(self, rule, certain());
        for (maybe, _) in decided.iter().filter(|(_, m)| m.is_none()) {
            let with = decided
                .iter()
                .filter(|(i, m)| *m == Some(true) || i == maybe)
                .map(|(i, _)| &self.namespaces[*i]);
            let r = resolve_with(self, rule, with);
            if (r.effect, r.action) > (best.effect, best.action) {
                best = r;
            }
        }
        best
    }

    /// The mode in `ns` (for logs): the mode of the resolution of a rule that denies by default.
    pub fn mode_for(&self, ns: &NamespaceRef<'_>) -> Mode {
        let mut mode = self.mode;
        for o in &self.namespaces {
            if o.matches(ns) == Some(true) {
                if let Some(m) = o.mode {
                    mode = m;
                }
            }
        }
        mode
    }
}

/// One finding with what the policy made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub finding: Finding,
    pub resolved: Resolved,
}

/// Findings sorted by effect. `off` findings are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub denials: Vec<Hit>,
    pub warnings: Vec<Hit>,
    /// Findings admitted silently because the mode is `audit`.
    pub audits: Vec<Hit>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.denials.is_empty()
    }

    /// Every hit, in the order deny, warn, audit.
    pub fn hits(&self) -> impl Iterator<Item = &Hit> {
        self.denials
            .iter()
            .chain(&self.warnings)
            .chain(&self.audits)
    }

    /// Rules whose configured action was `deny` but whose effect was softened by the mode.
    pub fn would_deny(&self) -> impl Iterator<Item = RuleId> + '_ {
        self.hits()
            .filter(|h| h.resolved.would_deny())
            .map(|h| h.finding.rule)
    }
}

/// Findings + policy + namespace → verdict. The webhook and `lint` call this, so the same
/// policy gives the same verdict in both.
pub fn verdict(findings: &[Finding], policy: &Policy, ns: &NamespaceRef<'_>) -> Verdict {
    let mut v = Verdict::default();
    for finding in findings {
        let resolved = policy.resolve(finding.rule, ns);
        let hit = Hit {
            finding: finding.clone(),
            resolved,
        };
        match resolved.effect {
            Effect::Off => {}
            Effect::Audit => v.audits.push(hit),
            Effect::Warn => v.warnings.push(hit),
            Effect::Deny => v.denials.push(hit),
        }
    }
    v
}
