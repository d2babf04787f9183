//! The policy file: how strict hookguard is, per cluster and per namespace, what the mutating
//! webhook writes, and the finalizer sidecar's cleanup timings. One YAML file shared by
//! `serve`, `lint` and `finalizer`.
//!
//! Pure types, parsing and resolution live here (`resolve`: rule + namespace → what happens);
//! the edges are `store` (the active policy, swapped atomically, with reload status),
//! `watch` (polls the file) and `namespaces` (namespace labels from a kube watch).

pub mod docs;
mod duration;
mod glob;
pub mod namespaces;
mod resolve;
pub mod schema;
mod store;
pub mod watch;

pub use duration::HumanDuration;
pub use resolve::{verdict, Effect, Hit, Labels, NamespaceRef, Resolved, Verdict};
pub use store::{ActivePolicy, PolicyStatus, PolicyStore, ShortHash};

use crate::mutation::{KindRef, MutationSettings};
use crate::rules::{Action, RuleId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How the actions of fired rules take effect.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `deny` rules deny, `warn` rules warn.
    #[default]
    Enforce,
    /// Every `deny` becomes a warning (the object is admitted; the user sees why it would not be).
    Warn,
    /// Everything is admitted without warnings; findings are only logged, counted and written
    /// to the apiserver audit log.
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "hookguard policy")]
pub struct Policy {
    /// Cluster-wide mode: `enforce` (default), `warn` or `audit`.
    #[serde(default)]
    pub mode: Mode,
    /// Per-rule actions (`deny`, `warn`, `off`); rules not listed keep their catalogue
    /// default (see `hookguard policy explain RULE` and docs/rules.md).
    #[serde(default)]
    #[schemars(schema_with = "schema::rule_actions")]
    pub rules: BTreeMap<RuleId, Action>,
    /// Per-namespace overrides, selected by namespace name (glob) and/or namespace labels.
    /// Every override that matches applies, in file order: a later one wins over an earlier one.
    #[serde(default)]
    pub namespaces: Vec<NamespaceOverride>,
    /// What the mutating webhook writes.
    #[serde(default)]
    pub mutation: MutationPolicy,
    /// When the finalizer sidecar deletes managed hooks.
    #[serde(default)]
    pub cleanup: CleanupPolicy,
}

/// Overrides for the namespaces a selector matches. At least one of `names` and `labels` is
/// required; with both, a namespace must match both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    try_from = "OverrideFields"
)]
pub struct NamespaceOverride {
    /// Namespace name globs (`*` any run of characters, `?` one character); any may match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Namespace labels that must all be present with these values (like `matchLabels`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Mode for these namespaces (replaces the global mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Rule actions for these namespaces (replace the global ones, rule by rule).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<RuleId, Action>,
}

/// The fields of an override as written, checked by `TryFrom` so an error points at the item.
/// (The schema of `NamespaceOverride` is this one's.)
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    description = "Overrides for the namespaces a selector matches. At least one of `names` and `labels` is required; with both, a namespace must match both.",
    extend("anyOf" = [{"required": ["names"]}, {"required": ["labels"]}])
)]
struct OverrideFields {
    /// Namespace name globs (`*` any run of characters, `?` one character); any may match.
    #[serde(default)]
    #[schemars(extend("items" = {"type": "string", "pattern": "^[a-z0-9*?-]+$"}))]
    names: Vec<String>,
    /// Namespace labels that must all be present with these values (like `matchLabels`).
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Mode for these namespaces (replaces the global mode).
    #[serde(default)]
    mode: Option<Mode>,
    /// Rule actions for these namespaces (replace the global ones, rule by rule).
    #[serde(default)]
    #[schemars(schema_with = "schema::rule_actions")]
    rules: BTreeMap<RuleId, Action>,
}

impl JsonSchema for NamespaceOverride {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NamespaceOverride".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        OverrideFields::json_schema(generator)
    }
}

impl TryFrom<OverrideFields> for NamespaceOverride {
    type Error = String;

    fn try_from(f: OverrideFields) -> Result<Self, String> {
        if f.names.is_empty() && f.labels.is_empty() {
            return Err(
                "a namespace override needs `names` (globs) and/or `labels` to select namespaces"
                    .into(),
            );
        }
        for name in &f.names {
            glob::validate(name)?;
        }
        for (key, value) in &f.labels {
            if key.is_empty() {
                return Err("a label key in `labels` is empty".into());
            }
            if value.len() > 63 {
                return Err(format!(
                    "label value for `{key}` is longer than 63 characters"
                ));
            }
        }
        if f.mode.is_none() && f.rules.is_empty() {
            return Err(
                "a namespace override sets neither `mode` nor `rules`: it would change nothing"
                    .into(),
            );
        }
        Ok(NamespaceOverride {
            names: f.names,
            labels: f.labels,
            mode: f.mode,
            rules: f.rules,
        })
    }
}

impl NamespaceOverride {
    /// Whether the selector matches; `None` when that depends on labels that are not known.
    pub fn matches(&self, ns: &NamespaceRef<'_>) -> Option<bool> {
        if !self.names.is_empty() && !self.names.iter().any(|g| glob::matches(g, ns.name)) {
            return Some(false);
        }
        if self.labels.is_empty() {
            return Some(true);
        }
        match ns.labels {
            Labels::Known(labels) => Some(
                self.labels
                    .iter()
                    .all(|(k, v)| labels.get(k).is_some_and(|have| have == v)),
            ),
            Labels::Unknown => None,
        }
    }
}

/// The mutating webhook's switches (maps onto `mutation::MutationSettings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MutationPolicy {
    /// Write explicit Argo CD annotations derived from Helm's (hook, sync-wave, delete policy).
    #[serde(default = "yes")]
    pub translate_helm: bool,
    /// Write `BeforeHookCreation` when no valid delete policy is given (what Argo CD assumes).
    #[serde(default = "yes")]
    pub explicit_default_policy: bool,
    /// Add the `hookguard.io/managed: "true"` label on CREATE (the sidecar selects on it).
    #[serde(default = "yes")]
    pub managed_label: bool,
    /// Add the `hookguard.io/cleanup` finalizer on CREATE (needs `managedLabel`; turn off where
    /// the finalizer sidecar does not run).
    #[serde(default = "yes")]
    pub finalizer: bool,
    /// Kinds that get the label and finalizer, as `Kind.group` (core group: `Kind`).
    #[serde(default = "KindRef::default_managed")]
    #[schemars(schema_with = "schema::kinds")]
    pub kinds: Vec<KindRef>,
}

fn yes() -> bool {
    true
}

impl Default for MutationPolicy {
    fn default() -> Self {
        MutationPolicy {
            translate_helm: true,
            explicit_default_policy: true,
            managed_label: true,
            finalizer: true,
            kinds: KindRef::default_managed(),
        }
    }
}

impl MutationPolicy {
    pub fn settings(&self) -> MutationSettings {
        MutationSettings {
            translate_helm: self.translate_helm,
            explicit_default_policy: self.explicit_default_policy,
            mark_managed: self.managed_label,
            add_finalizer: self.finalizer,
            managed_kinds: self.kinds.clone(),
        }
    }
}

/// The finalizer sidecar's timings. Durations are written `90s`, `15m`, `2h`, `7d` (or `500ms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CleanupPolicy {
    /// How long after a hook succeeded (with `HookSucceeded`) it is deleted. Long enough for
    /// Argo CD to read the result before the object goes.
    #[serde(default = "CleanupPolicy::default_succeeded_grace")]
    pub succeeded_grace: HumanDuration,
    /// How long after a hook failed (with `HookFailed`) it is deleted: longer, so people can
    /// read its logs.
    #[serde(default = "CleanupPolicy::default_failed_grace")]
    pub failed_grace: HumanDuration,
    /// Of the finished hooks of one `generateName` family (same namespace, kind and
    /// generateName), keep at most this many newest; older ones are deleted whatever their
    /// policy. `null` keeps all.
    #[serde(default = "CleanupPolicy::default_keep_newest")]
    pub keep_newest: Option<u32>,
    /// Delete any finished managed hook older than this, whatever its policy. `null`: no limit.
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
    /// The longest hookguard's finalizer may hold up a deletion (retries included) before it
    /// is released anyway and the failure is reported.
    #[serde(default = "CleanupPolicy::default_max_hold")]
    pub max_hold: HumanDuration,
}

impl CleanupPolicy {
    fn default_succeeded_grace() -> HumanDuration {
        HumanDuration(Duration::from_secs(60))
    }
    fn default_failed_grace() -> HumanDuration {
        HumanDuration(Duration::from_secs(3600))
    }
    fn default_keep_newest() -> Option<u32> {
        Some(5)
    }
    fn default_max_hold() -> HumanDuration {
        HumanDuration(Duration::from_secs(300))
    }
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy {
            succeeded_grace: Self::default_succeeded_grace(),
            failed_grace: Self::default_failed_grace(),
            keep_newest: Self::default_keep_newest(),
            max_age: None,
            max_hold: Self::default_max_hold(),
        }
    }
}

/// A policy file that cannot be used; the message names the line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{source_name}: cannot read: {message}")]
    Read {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: the policy file is empty; write at least `mode: enforce` to use the defaults")]
    Empty { source_name: String },
    #[error("{source_name}:{line}:{column}: {message}")]
    Invalid {
        source_name: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{source_name}: {message}")]
    InvalidNoLocation {
        source_name: String,
        message: String,
    },
}

impl Policy {
    /// Parses a policy file. `source_name` (usually the path) prefixes error messages.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Policy, PolicyError> {
        let has_content = text.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && t != "---"
        });
        if !has_content {
            return Err(PolicyError::Empty {
                source_name: source_name.to_owned(),
            });
        }
        serde_saphyr::from_str::<Policy>(text).map_err(|e| {
            let message = first_line_message(&e.to_string());
            match e.location() {
                Some(loc) if loc.line() > 0 => PolicyError::Invalid {
                    source_name: source_name.to_owned(),
                    line: loc.line(),
                    column: loc.column(),
                    message,
                },
                _ => PolicyError::InvalidNoLocation {
                    source_name: source_name.to_owned(),
                    message,
                },
            }
        })
    }

    /// Whether any override selects by namespace labels (then labels must be looked up).
    pub fn uses_namespace_labels(&self) -> bool {
        self.namespaces.iter().any(|o| !o.labels.is_empty())
    }

    /// The policy with every default written out: every rule's cluster-wide action is listed.
    pub fn effective(&self) -> Policy {
        let mut p = self.clone();
        for rule in RuleId::ALL {
            p.rules.entry(*rule).or_insert(rule.default_action());
        }
        p
    }

    /// The effective policy as YAML (what `policy check` prints).
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// serde-saphyr renders `error: line L column C: message` plus a source snippet; the location
/// is reported separately, so keep only the message.
fn first_line_message(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or(rendered);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match first.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => {
            rest.to_owned()
        }
        _ => first.to_owned(),
    }
}

/// `Kind.group` on the wire, like the `--managed-kinds` flag.
impl Serialize for KindRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.group.is_empty() {
            s.serialize_str(&self.kind)
        } else {
            s.serialize_str(&format!("{}.{}", self.kind, self.group))
        }
    }
}

impl<'de> Deserialize<'de> for KindRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let valid = |k: &KindRef| {
            k.kind
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase())
                && k.kind.chars().all(|c| c.is_ascii_alphanumeric())
                && k.group
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        };
        KindRef::parse(s.trim()).filter(valid).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a kind: write Kind.group, e.g. Job.batch, Pod, Workflow.argoproj.io"
            ))
        })
    }
}

#[cfg(test)]
mod tests;
