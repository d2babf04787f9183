//! The mutating webhook's decision, shared with `translate`: which metadata to write on a
//! hook, and the RFC 6902 JSON Patch that writes it. Pure.
//!
//! Invariants (tested): the patch applies to the object it was computed for even when
//! `metadata.annotations`, `labels` or `finalizers` are absent; keys are escaped per RFC 6901;
//! a second pass over the patched object yields no patch; nothing the user wrote is
//! overwritten (an annotation with an invalid value is left for the validating webhook to
//! report); Argo CD's tracking metadata and its hook finalizer are never touched.

use crate::hooks::{keys, HookModel, HookObject, Source};
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use serde_json::{json, Map, Value};

/// A Kubernetes kind by API group and kind name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindRef {
    pub group: String,
    pub kind: String,
}

impl KindRef {
    pub fn new(group: &str, kind: &str) -> KindRef {
        KindRef {
            group: group.to_owned(),
            kind: kind.to_owned(),
        }
    }

    /// The kinds the finalizer sidecar cleans up by default: Job, Pod, Argo Workflow.
    pub fn default_managed() -> Vec<KindRef> {
        vec![
            KindRef::new("batch", "Job"),
            KindRef::new("", "Pod"),
            KindRef::new("argoproj.io", "Workflow"),
        ]
    }

    /// `Kind.group` (or `Kind` for the core group), the form used on the command line.
    pub fn parse(s: &str) -> Option<KindRef> {
        let (kind, group) = s.split_once('.').unwrap_or((s, ""));
        (!kind.is_empty()).then(|| KindRef::new(group, kind))
    }
}

/// The mutation switches (the policy file's `mutation` section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutationSettings {
    /// Write explicit Argo annotations derived from Helm's.
    pub translate_helm: bool,
    /// Write `BeforeHookCreation` when no valid delete policy is given.
    pub explicit_default_policy: bool,
    /// Add the managed label on CREATE.
    pub mark_managed: bool,
    /// Add the cleanup finalizer on CREATE (off where the sidecar does not run yet).
    pub add_finalizer: bool,
    /// Kinds that get the label and finalizer.
    pub managed_kinds: Vec<KindRef>,
}

impl Default for MutationSettings {
    fn default() -> Self {
        MutationSettings {
            translate_helm: true,
            explicit_default_policy: true,
            mark_managed: true,
            add_finalizer: true,
            managed_kinds: KindRef::default_managed(),
        }
    }
}

/// Whether the object is being created (label and finalizer are added only then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Create,
    Update,
    /// Offline translation: annotations only, and label/finalizer only when asked.
    Offline {
        managed: bool,
    },
}

/// What to write into the object's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataChanges {
    /// Annotations to set, in a stable order.
    pub annotations: Vec<(&'static str, String)>,
    pub add_managed_label: bool,
    pub add_finalizer: bool,
}

impl MetadataChanges {
    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty() && !self.add_managed_label && !self.add_finalizer
    }
}

/// Decides the metadata changes for one object.
pub fn plan(
    object: &HookObject,
    model: &HookModel,
    settings: &MutationSettings,
    stage: Stage,
) -> MetadataChanges {
    let mut changes = MetadataChanges::default();
    if !model.runs_as_hook() || object.is_being_deleted() {
        return changes;
    }
    // `hookguard.io/derived`, written as it grows (a `format!` per part and a `join` were a
    // third of `plan`'s time).
    let mut derived = String::new();

    if settings.translate_helm && model.argo_hook.is_none() {
        let types = model.helm_types_for_argo();
        if !types.is_empty() {
            let value: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
            let value = value.join(",");
            note(&mut derived, &["hook=", &value, " from helm.sh/hook"]);
            changes.annotations.push((keys::ARGO_HOOK, value));
        }
    }

    if settings.translate_helm
        && !object
            .annotations()
            .is_some_and(|a| a.contains_key(keys::ARGO_SYNC_WAVE))
        && model.wave.source == Source::Helm
    {
        let value = model.wave.value.to_string();
        note(
            &mut derived,
            &["sync-wave=", &value, " from helm.sh/hook-weight"],
        );
        changes.annotations.push((keys::ARGO_SYNC_WAVE, value));
    }

    let set = &model.delete_policies;
    let argo_value_is_clean = match &model.argo_delete_policy {
        None => true,
        // Only a value whose every item Argo reads may be rewritten: a typo stays visible.
        Some(_) => set.argo_unknown.is_empty() && !set.from_argo.is_empty(),
    };
    let adds_helm =
        settings.translate_helm && set.from_helm.iter().any(|p| !set.from_argo.contains(p));
    let writes_default = settings.explicit_default_policy && set.defaulted;
    if argo_value_is_clean && (adds_helm || writes_default) {
        let value = set.to_argo_value();
        let source = if set.defaulted {
            " (Argo CD default)"
        } else {
            " from helm.sh/hook-delete-policy"
        };
        note(&mut derived, &["hook-delete-policy=", &value, source]);
        changes.annotations.push((keys::ARGO_DELETE_POLICY, value));
    }

    if !derived.is_empty() {
        changes.annotations.push((keys::HOOKGUARD_DERIVED, derived));
    }

    let manage = match stage {
        Stage::Create => true,
        Stage::Update => false,
        Stage::Offline { managed } => managed,
    };
    let kind_managed = settings
        .managed_kinds
        .iter()
        .any(|k| object.is_kind(&k.group, &k.kind));
    let meta = object.metadata.as_ref();
    let label = meta
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get(keys::MANAGED_LABEL));
    // A user-set label with another value (e.g. "false") opts the object out.
    let opted_out = label.is_some_and(|v| v != keys::MANAGED_LABEL_VALUE);
    if manage && kind_managed && !opted_out {
        changes.add_managed_label = settings.mark_managed && label.is_none();
        let has_finalizer = meta
            .and_then(|m| m.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == keys::CLEANUP_FINALIZER));
        changes.add_finalizer = settings.add_finalizer && settings.mark_managed && !has_finalizer;
    }
    changes
}

/// Appends one part, made of `pieces`, to the `hookguard.io/derived` value: parts are
/// separated by `; `.
fn note(derived: &mut String, pieces: &[&str]) {
    if derived.is_empty() {
        // Room for the usual three parts (~130 bytes) at once.
        derived.reserve(160);
    } else {
        derived.push_str("; ");
    }
    for piece in pieces {
        derived.push_str(piece);
    }
}

/// One `add` operation of the metadata patch, its path as unescaped tokens: what
/// `to_json_patch` writes as a `PatchOperation`, and what `translate` applies to the text
/// directly (building each JSON Pointer, then decoding it back into tokens, cost ~2 700
/// instructions an operation, more than translate's own editing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataAdd {
    /// Up to three tokens (`metadata`, a field, a key or `-`): the first `len` are the path.
    tokens: [&'static str; 3],
    len: usize,
    pub value: Value,
}

impl MetadataAdd {
    fn new(path: &[&'static str], value: Value) -> MetadataAdd {
        let mut tokens = [""; 3];
        tokens[..path.len()].copy_from_slice(path);
        MetadataAdd {
            tokens,
            len: path.len(),
            value,
        }
    }

    /// The path's tokens, unescaped.
    pub fn path(&self) -> &[&'static str] {
        &self.tokens[..self.len]
    }
}

fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

/// The JSON Patch that applies `changes` to `object`'s current metadata.
pub fn to_json_patch(object: &HookObject, changes: &MetadataChanges) -> Patch {
    Patch(
        metadata_adds(object, changes)
            .into_iter()
            .map(|add| {
                PatchOperation::Add(AddOperation {
                    path: pointer(add.path()),
                    value: add.value,
                })
            })
            .collect(),
    )
}

/// The `add` operations of `to_json_patch`, in its order.
pub fn metadata_adds(object: &HookObject, changes: &MetadataChanges) -> Vec<MetadataAdd> {
    let add = MetadataAdd::new;
    let mut ops = Vec::new();
    if changes.is_empty() {
        return ops;
    }
    let Some(meta) = object.metadata.as_ref() else {
        // No metadata at all (only possible offline): write it whole.
        let mut m = Map::new();
        if !changes.annotations.is_empty() {
            m.insert("annotations".into(), annotation_map(changes));
        }
        if changes.add_managed_label {
            m.insert(
                "labels".into(),
                json!({ keys::MANAGED_LABEL: keys::MANAGED_LABEL_VALUE }),
            );
        }
        if changes.add_finalizer {
            m.insert("finalizers".into(), json!([keys::CLEANUP_FINALIZER]));
        }
        ops.push(add(&["metadata"], Value::Object(m)));
        return ops;
    };

    if !changes.annotations.is_empty() {
        if meta.annotations.is_some() {
            for (key, value) in &changes.annotations {
                ops.push(add(&["metadata", "annotations", *key], json!(value)));
            }
        } else {
            ops.push(add(&["metadata", "annotations"], annotation_map(changes)));
        }
    }
    if changes.add_managed_label {
        if meta.labels.is_some() {
            ops.push(add(
                &["metadata", "labels", keys::MANAGED_LABEL],
                json!(keys::MANAGED_LABEL_VALUE),
            ));
        } else {
            ops.push(add(
                &["metadata", "labels"],
                json!({ keys::MANAGED_LABEL: keys::MANAGED_LABEL_VALUE }),
            ));
        }
    }
    if changes.add_finalizer {
        if meta.finalizers.is_some() {
            ops.push(add(
                &["metadata", "finalizers", "-"],
                json!(keys::CLEANUP_FINALIZER),
            ));
        } else {
            ops.push(add(
                &["metadata", "finalizers"],
                json!([keys::CLEANUP_FINALIZER]),
            ));
        }
    }
    ops
}

/// The patch as the JSON the webhook sends. Written by hand for the `add` operations this
/// module makes (serde's serialiser cost ~3 000 instructions a patch, more than building it);
/// any other operation goes through serde. A test checks both give the same document.
pub fn patch_json(patch: &Patch) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(b'[');
    for (i, op) in patch.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match op {
            PatchOperation::Add(add) => {
                out.extend_from_slice(b"{\"op\":\"add\",\"path\":");
                crate::jsonline::push_string(&mut out, add.path.as_str());
                out.extend_from_slice(b",\"value\":");
                crate::jsonline::push_value(&mut out, &add.value);
                out.push(b'}');
            }
            // Serialising a patch operation of strings and maps cannot fail.
            other => out.extend(serde_json::to_vec(other).unwrap_or_default()),
        }
    }
    out.push(b']');
    out
}

/// The patch the webhook sends, as `patch_json(&to_json_patch(object, changes))` writes it
/// (a test checks every case byte for byte), but written straight from the changes: building
/// the `Patch` first cost ~2 600 instructions a review (pointers, `Value`s) and dropping it
/// ~900 more, for a document of three or four `add`s. Empty when `changes` is.
pub fn json_patch_bytes(object: &HookObject, changes: &MetadataChanges) -> Vec<u8> {
    let Some(meta) = object.metadata.as_ref() else {
        // No metadata at all: only offline objects, never a review with hook annotations.
        let patch = to_json_patch(object, changes);
        return if patch.0.is_empty() {
            Vec::new()
        } else {
            patch_json(&patch)
        };
    };
    if changes.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(256);
    out.push(b'[');
    let mut first = true;
    // An operation's start, to its value: `path` is a pointer needing no escapes, `key` a
    // last token that may.
    let mut open = |out: &mut Vec<u8>, path: &[u8], key: Option<&str>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"op\":\"add\",\"path\":\"");
        out.extend_from_slice(path);
        if let Some(key) = key {
            push_pointer_token(out, key);
        }
        out.extend_from_slice(b"\",\"value\":");
    };
    if !changes.annotations.is_empty() {
        if meta.annotations.is_some() {
            for (key, value) in &changes.annotations {
                open(&mut out, b"/metadata/annotations/", Some(key));
                crate::jsonline::push_string(&mut out, value);
                out.push(b'}');
            }
        } else {
            // One map: serde_json's `Map` keeps its keys sorted.
            let mut sorted: Vec<&(&str, String)> = changes.annotations.iter().collect();
            sorted.sort_by_key(|(k, _)| *k);
            open(&mut out, b"/metadata/annotations", None);
            out.push(b'{');
            for (i, (key, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                crate::jsonline::push_string(&mut out, key);
                out.push(b':');
                crate::jsonline::push_string(&mut out, value);
            }
            out.extend_from_slice(b"}}");
        }
    }
    if changes.add_managed_label {
        if meta.labels.is_some() {
            open(&mut out, b"/metadata/labels/", Some(keys::MANAGED_LABEL));
            crate::jsonline::push_string(&mut out, keys::MANAGED_LABEL_VALUE);
        } else {
            open(&mut out, b"/metadata/labels", None);
            out.push(b'{');
            crate::jsonline::push_string(&mut out, keys::MANAGED_LABEL);
            out.push(b':');
            crate::jsonline::push_string(&mut out, keys::MANAGED_LABEL_VALUE);
            out.push(b'}');
        }
        out.push(b'}');
    }
    if changes.add_finalizer {
        if meta.finalizers.is_some() {
            open(&mut out, b"/metadata/finalizers/-", None);
            crate::jsonline::push_string(&mut out, keys::CLEANUP_FINALIZER);
        } else {
            open(&mut out, b"/metadata/finalizers", None);
            out.push(b'[');
            crate::jsonline::push_string(&mut out, keys::CLEANUP_FINALIZER);
            out.push(b']');
        }
        out.push(b'}');
    }
    out.push(b']');
    out
}

/// One RFC 6901 reference token (`~` as `~0`, `/` as `~1`), escaped for a JSON string.
fn push_pointer_token(out: &mut Vec<u8>, token: &str) {
    let mut start = 0;
    for (i, b) in token.bytes().enumerate() {
        if b == b'~' || b == b'/' {
            // Both are ASCII, so `i` is on a char boundary.
            crate::jsonline::push_escaped(out, &token[start..i]);
            out.extend_from_slice(if b == b'~' { b"~0" } else { b"~1" });
            start = i + 1;
        }
    }
    crate::jsonline::push_escaped(out, &token[start..]);
}

fn annotation_map(changes: &MetadataChanges) -> Value {
    let map: Map<String, Value> = changes
        .annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests;
