//! Offline `lint` and `translate`: the webhook's rules (`rules::check`) and mutation plan
//! (`mutation::plan` / `to_json_patch`) over manifests, before anything reaches a cluster.
//!
//! Pure: bytes in, a report (or translated text) out. Reading files and printing live in
//! `cli::lint` / `cli::translate`.
//!
//! On top of the catalogue, lint reports two things only a check of the manifests can see:
//! - `argo-drops-object` (info): Argo CD drops an object whose hook annotations give no hook
//!   type it runs, before applying it, so the webhook never sees it;
//! - `annotation-not-string` (error, not a catalogue rule): an annotation value that YAML
//!   types as a number, boolean or null (`argocd.argoproj.io/sync-wave: 5`). The apiserver
//!   refuses to decode such an object and Argo CD reads *no* annotation of it (unstructured
//!   `GetAnnotations` fails on a non-string value), so the webhook can never see it either and
//!   no policy can make it acceptable: it is always an error, never configurable.

pub mod report;
mod translate;
pub mod yaml;

pub use translate::{translate, Translated};

use crate::hooks::{keys, ArgoFate, HookModel, HookObject};
use crate::rules::{self, Action, Finding, RuleId};
use serde::Deserialize;
use std::collections::BTreeMap;
use yaml::{Document, Documents, Node, Value};

/// What produced a diagnostic: a catalogue rule, or one of lint's own checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    Rule(RuleId),
    /// An annotation value that is not a string (see the module docs).
    AnnotationNotString,
    /// Argo CD will drop the object from the sync.
    ArgoDropsObject,
}

impl Check {
    pub fn name(self) -> &'static str {
        match self {
            Check::Rule(rule) => rule.name(),
            Check::AnnotationNotString => "annotation-not-string",
            Check::ArgoDropsObject => "argo-drops-object",
        }
    }
}

/// How serious a diagnostic is. `Error` and `Deny` fail lint (exit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The object is broken whatever the policy says.
    Error,
    Deny,
    Warn,
    /// What Argo CD will do; never changes the exit code.
    Info,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Deny => "deny",
            Level::Warn => "warn",
            Level::Info => "info",
        }
    }

    pub fn fails(self) -> bool {
        matches!(self, Level::Error | Level::Deny)
    }
}

/// The object a diagnostic is about, as a reader finds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: Option<String>,
    /// `metadata.name`, else `metadata.generateName` followed by `*`.
    pub name: Option<String>,
    /// 1-based line where the object starts (the document, or the `kind: List` item).
    pub line: usize,
}

impl ObjectRef {
    fn of(node: &Node) -> ObjectRef {
        let meta = node.get("metadata");
        fn text(n: Option<&Node>) -> Option<&str> {
            n.and_then(Node::as_str).filter(|s| !s.is_empty())
        }
        let name = text(meta.and_then(|m| m.get("name")))
            .map(str::to_owned)
            .or_else(|| text(meta.and_then(|m| m.get("generateName"))).map(|g| format!("{g}*")));
        ObjectRef {
            kind: text(node.get("kind")).unwrap_or("").to_owned(),
            namespace: text(meta.and_then(|m| m.get("namespace"))).map(str::to_owned),
            name,
            line: node.line,
        }
    }

    /// `Job ns/name`, `Job name`, `Job (no name)`.
    pub fn display(&self) -> String {
        let kind = if self.kind.is_empty() {
            "(no kind)"
        } else {
            &self.kind
        };
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => format!("{kind} {ns}/{name}"),
            (None, Some(name)) => format!("{kind} {name}"),
            (_, None) => format!("{kind} (no name)"),
        }
    }
}

/// One finding on one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub object: ObjectRef,
    pub check: Check,
    pub level: Level,
    /// The annotation the finding is about and the line it is written on.
    pub annotation: Option<String>,
    pub annotation_line: Option<usize>,
    pub message: String,
}

/// Input that cannot be read as a manifest stream (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub message: String,
}

impl InputError {
    fn at(line: usize, message: String) -> InputError {
        InputError {
            line: Some(line),
            col: None,
            message,
        }
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.col) {
            (Some(l), Some(c)) => write!(f, "line {l} column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Everything lint found in one input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamReport {
    pub documents: usize,
    pub objects: usize,
    pub diagnostics: Vec<Diagnostic>,
    /// Set when the input stopped being readable; diagnostics before it are kept.
    pub error: Option<InputError>,
}

/// Who decides a rule's action for an object: `cli::lint::policy_action` (the policy file's
/// resolution for the object's namespace, the same as the webhook's) or a fixed table in tests.
pub type ActionResolver<'a> = &'a dyn Fn(RuleId, &ObjectRef) -> Action;

/// The one place a finding gets its action; `Off` findings are dropped.
pub fn verdict(
    findings: Vec<Finding>,
    object: &ObjectRef,
    resolve: ActionResolver<'_>,
) -> Vec<(Finding, Action)> {
    findings
        .into_iter()
        .map(|f| {
            let action = resolve(f.rule, object);
            (f, action)
        })
        .filter(|(_, action)| *action != Action::Off)
        .collect()
}

/// UTF-8 text of an input (a leading byte-order mark is dropped, as kubectl does).
pub fn decode(bytes: &[u8]) -> Result<&str, InputError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = 1 + memchr::memchr_iter(b'\n', valid).count();
        let col = 1 + valid.len() - valid.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        InputError {
            line: Some(line),
            col: Some(col),
            message: format!(
                "not UTF-8 (invalid byte 0x{:02x} at offset {}): manifests must be UTF-8",
                bytes[e.valid_up_to()],
                e.valid_up_to()
            ),
        }
    })
}

/// Lints one input: a YAML or JSON stream, possibly of many documents.
pub fn lint_bytes(bytes: &[u8], resolve: ActionResolver<'_>) -> StreamReport {
    match decode(bytes) {
        Ok(text) => lint_text(text, resolve),
        Err(error) => StreamReport {
            error: Some(error),
            ..StreamReport::default()
        },
    }
}

pub fn lint_text(text: &str, resolve: ActionResolver<'_>) -> StreamReport {
    let mut report = StreamReport::default();
    for doc in Documents::for_lint(text) {
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => {
                report.error = Some(InputError {
                    line: Some(e.line),
                    col: Some(e.col),
                    message: format!("YAML syntax error: {}", e.message),
                });
                break;
            }
        };
        report.documents += 1;
        let objects = match objects_of(&doc) {
            Ok(objects) => objects,
            Err(e) => {
                report.error = Some(e);
                break;
            }
        };
        for object in objects {
            report.objects += 1;
            lint_object(object, resolve, &mut report.diagnostics);
        }
    }
    report
}

/// The Kubernetes objects of a document, as Argo CD's repo server reads them: an object with
/// an `items` list is a list and stands for its items (`IsList`/`EachListItem`); a list with
/// `items: null` stands for nothing. Anything else that is not an object with a `kind` makes
/// Argo CD (and kubectl) reject the whole stream.
pub fn objects_of(doc: &Document) -> Result<Vec<&Node>, InputError> {
    let Some(root) = &doc.root else {
        return Ok(Vec::new());
    };
    let Value::Map(_) = root.value else {
        return Err(InputError::at(
            doc.line,
            format!(
                "document {} is {}, not a Kubernetes object: kubectl and Argo CD reject the whole stream",
                doc.index + 1,
                root.type_name()
            ),
        ));
    };
    match root.get("items") {
        Some(Node {
            value: Value::Seq(items),
            ..
        }) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_map() {
                    return Err(InputError::at(
                        item.line,
                        format!(
                            "item {} of the list in document {} is {}, not a Kubernetes object: Argo CD rejects the whole stream",
                            i + 1,
                            doc.index + 1,
                            item.type_name()
                        ),
                    ));
                }
            }
            Ok(items.iter().collect())
        }
        Some(Node {
            value: Value::Null, ..
        }) if root.get("spec").is_none() && root.get("status").is_none() => Ok(Vec::new()),
        _ => {
            if root
                .get("kind")
                .and_then(Node::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(InputError::at(
                    doc.line,
                    format!(
                        "document {} has no `kind`, so it is not a Kubernetes object: kubectl and Argo CD reject the whole stream (\"Object 'Kind' is missing\")",
                        doc.index + 1
                    ),
                ));
            }
            Ok(vec![root])
        }
    }
}

/// The annotations of an object that are strings, and diagnostics for those that are not.
fn read_annotations<'n>(
    node: &'n Node,
    object: &ObjectRef,
    out: &mut Vec<Diagnostic>,
) -> Option<&'n Node> {
    let annotations = node.get("metadata")?.get("annotations")?;
    match &annotations.value {
        Value::Map(entries) => {
            for (key, value) in entries {
                if matches!(value.value, Value::Str(_)) {
                    continue;
                }
                let key = key.key_str().unwrap_or("?");
                let raw = value_text(value);
                let consequence = if value.value == Value::Null {
                    "Argo CD then reads no annotation of this object at all (so no hook annotation either)"
                } else {
                    "the apiserver rejects the object (annotation values must be strings) and Argo CD reads no annotation of it at all"
                };
                out.push(Diagnostic {
                    object: object.clone(),
                    check: Check::AnnotationNotString,
                    level: Level::Error,
                    annotation: Some(key.to_owned()),
                    annotation_line: Some(value.line.max(1)),
                    message: format!(
                        "annotation {key} is {} ({raw}), not a string: {consequence}; quote the value: {key}: \"{}\"",
                        value.type_name(),
                        quoted_hint(&raw)
                    ),
                });
            }
            Some(annotations)
        }
        Value::Null => None,
        _ => {
            out.push(Diagnostic {
                object: object.clone(),
                check: Check::AnnotationNotString,
                level: Level::Error,
                annotation: None,
                annotation_line: Some(annotations.line),
                message: format!(
                    "metadata.annotations is {}, not a mapping of strings: the apiserver rejects the object and Argo CD reads no annotation of it",
                    annotations.type_name()
                ),
            });
            None
        }
    }
}

/// How a scalar was written, for messages (`5`, `yes`, `null`).
fn value_text(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => s.clone(),
        Value::Seq(_) => "a list".to_owned(),
        Value::Map(_) => "a mapping".to_owned(),
    }
}

fn quoted_hint(raw: &str) -> String {
    match raw {
        "null" | "a list" | "a mapping" => String::new(),
        _ => raw.to_owned(),
    }
}

/// Every check on one object.
fn lint_object(node: &Node, resolve: ActionResolver<'_>, out: &mut Vec<Diagnostic>) {
    let object = ObjectRef::of(node);
    let Some(annotations) = read_annotations(node, &object, out) else {
        return;
    };
    if !has_hook_annotation(annotations) {
        return;
    }
    // The lenient view drops non-string annotations: the rules then judge what the user
    // meant to write, next to the error about the value itself.
    let Ok(view) = HookObject::deserialize(yaml::NodeDe(node)) else {
        return;
    };
    let empty = BTreeMap::new();
    let model = HookModel::from_annotations(view.annotations().unwrap_or(&empty));
    let line_of = |key: &str| annotations.get(key).map(|v| v.line);
    for (finding, action) in verdict(rules::check(&view, &model), &object, resolve) {
        out.push(Diagnostic {
            object: object.clone(),
            check: Check::Rule(finding.rule),
            level: match action {
                Action::Deny => Level::Deny,
                _ => Level::Warn,
            },
            annotation: finding.annotation.map(str::to_owned),
            annotation_line: finding.annotation.and_then(line_of),
            message: finding.message,
        });
    }
    if model.fate == ArgoFate::Dropped {
        let key = if model.argo_hook.is_some() {
            keys::ARGO_HOOK
        } else {
            keys::HELM_HOOK
        };
        out.push(Diagnostic {
            object: object.clone(),
            check: Check::ArgoDropsObject,
            level: Level::Info,
            annotation: Some(key.to_owned()),
            annotation_line: line_of(key),
            message: format!(
                "Argo CD will silently drop this object from the sync: {}",
                drop_reason(&model)
            ),
        });
    }
}

/// Any of the six hook annotations, with a string value, in an annotations mapping.
fn has_hook_annotation(annotations: &Node) -> bool {
    match &annotations.value {
        Value::Map(entries) => entries.iter().any(|(k, v)| {
            matches!(v.value, Value::Str(_))
                && k.key_str()
                    .is_some_and(|k| keys::HOOK_ANNOTATIONS.contains(&k))
        }),
        _ => false,
    }
}

/// The object's annotations mapping carries a hook annotation (cheap: no JSON view built).
pub(crate) fn is_hook_candidate(node: &Node) -> bool {
    node.get("metadata")
        .and_then(|m| m.get("annotations"))
        .is_some_and(has_hook_annotation)
}

/// Why an object that is a hook for Argo CD has no phase it runs in.
fn drop_reason(model: &HookModel) -> String {
    let mut parts = Vec::new();
    if let Some(argo) = &model.argo_hook {
        parts.push(format!("no valid hook type in `{}`", argo.trim()));
    }
    if let Some(helm) = &model.helm_hook {
        parts.push(format!(
            "helm.sh/hook `{}` maps to no Argo CD hook type",
            helm.trim()
        ));
    }
    parts.join(", and ")
}

#[cfg(test)]
mod tests;
