//! `translate`: the mutating webhook's metadata changes, written into the manifests.
//!
//! The changes are the webhook's own: `mutation::plan` decides them and
//! `mutation::metadata_adds` turns them into the RFC 6902 `add` operations of the webhook's
//! patch (`to_json_patch`), with their paths as tokens. translate applies those operations to
//! the user's *text*, not to a re-serialised copy, so comments, key order, quoting and
//! document separators survive:
//! - a key added to an existing block mapping becomes a new line just before the mapping's
//!   first key, at its indentation; a key added to a flow mapping (`{…}`, JSON)
//!   goes right after its `{`; a finalizer is appended after the last list item;
//! - a value that replaces an existing one (only `hook-delete-policy`, when Helm adds
//!   policies to a clean Argo value) replaces that scalar's text;
//! - values are written double-quoted (JSON strings), which every YAML 1.1/1.2 reader and JSON
//!   read as strings (`"-5"` must not become the integer -5).
//!
//! Edits of a few shapes read back as the patch by construction (new lines before a block
//! mapping's first key, entries right after a flow mapping's `{`, a `- "…"` line after a block
//! list's last item, an item before a flow list's `]`, a one-line scalar replaced; keys and values printable ASCII; see
//! `Editor::by_construction`). Any other edited document is parsed again and compared with
//! the original document patched by `json_patch::patch` (debug builds, i.e. tests and fuzzing,
//! re-parse every edited document and assert the proven ones pass). If they differ, or the
//! text is laid out in a way the editor does not handle (anchors/aliases, merge keys,
//! multi-line or block scalars being replaced, a mapping that shares its first line with a
//! `- `), that document alone is re-emitted as indented JSON (a subset of YAML) in its
//! original key order. Its comments are then lost; nothing else is.
//! Documents without changes are copied byte for byte, so translate of its own output is
//! the identity (the webhook's plan adds nothing the second time).

use super::yaml::{self, Documents, Node, Value};
use super::{decode, objects_of, InputError};
use crate::hooks::{HookModel, HookObject};
use crate::mutation::{self, MetadataAdd, MutationSettings, Stage};
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The translated stream and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub text: String,
    /// Objects that received changes.
    pub changed_objects: usize,
    /// Documents that had to be re-emitted as JSON.
    pub reemitted_documents: usize,
}

/// Applies the webhook's metadata changes to every hook in a YAML/JSON stream.
/// `managed` adds the managed label and cleanup finalizer, as on CREATE.
pub fn translate(
    bytes: &[u8],
    settings: &MutationSettings,
    managed: bool,
) -> Result<Translated, InputError> {
    let text = decode(bytes)?;
    let stage = Stage::Offline { managed };
    let mut edits: Vec<Edit> = Vec::new();
    let mut changed_objects = 0;
    let mut reemitted_documents = 0;
    for doc in Documents::new(text) {
        let doc = doc.map_err(|e| InputError {
            line: Some(e.line),
            col: Some(e.col),
            message: format!("YAML syntax error: {}", e.message),
        })?;
        let Some(root) = &doc.root else { continue };
        // Documents lint would reject are passed through untouched: translate changes hooks
        // and nothing else.
        let Ok(objects) = objects_of(&doc) else {
            continue;
        };
        let is_list = matches!(root.get("items").map(|i| &i.value), Some(Value::Seq(_)));
        let mut patches: Vec<(Vec<String>, &Node, Vec<MetadataAdd>)> = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            let patch = object_patch(object, settings, stage);
            if !patch.is_empty() {
                let prefix = if is_list {
                    vec!["items".to_owned(), i.to_string()]
                } else {
                    Vec::new()
                };
                patches.push((prefix, object, patch));
            }
        }
        if patches.is_empty() {
            continue;
        }
        changed_objects += patches.len();
        match edit_in_place(text, root, &patches) {
            Some(doc_edits) => edits.extend(doc_edits),
            None => {
                reemitted_documents += 1;
                edits.push(reemit(root, &patches));
            }
        }
    }
    Ok(Translated {
        text: apply_edits(text, &edits),
        changed_objects,
        reemitted_documents,
    })
}

/// The webhook's patch for one object (empty when it is not a hook or needs nothing).
fn object_patch(node: &Node, settings: &MutationSettings, stage: Stage) -> Vec<MetadataAdd> {
    if !super::is_hook_candidate(node) {
        return Vec::new();
    }
    let Ok(view) = HookObject::deserialize(yaml::NodeDe(node)) else {
        return Vec::new();
    };
    let empty = BTreeMap::new();
    let annotations = view.annotations().unwrap_or(&empty);
    if !HookModel::has_hook_annotations(annotations) {
        return Vec::new();
    }
    let model = HookModel::from_annotations(annotations);
    let changes = mutation::plan(&view, &model, settings, stage);
    mutation::metadata_adds(&view, &changes)
}

/// Replace `range` of the input with `text`.
#[derive(Debug, Clone)]
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut edits: Vec<&Edit> = edits.iter().collect();
    // Stable: several insertions at one point keep the order they were made in.
    edits.sort_by_key(|e| e.start);
    let mut out =
        String::with_capacity(text.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
    let mut at = 0;
    for e in edits {
        if e.start < at {
            continue; // cannot happen: edits of one document never overlap (checked there)
        }
        out.push_str(&text[at..e.start]);
        out.push_str(&e.text);
        at = e.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Textual edits for one document, verified by re-parsing; `None` when the document must be
/// re-emitted instead.
fn edit_in_place(
    text: &str,
    root: &Node,
    patches: &[(Vec<String>, &Node, Vec<MetadataAdd>)],
) -> Option<Vec<Edit>> {
    let mut editor = Editor {
        text,
        edits: Vec::new(),
        inserts: Vec::new(),
        by_construction: true,
    };
    for (_, object, patch) in patches {
        for add in patch {
            editor.add(object, add.path(), &add.value)?;
        }
    }
    let (mut edits, by_construction) = editor.finish()?;
    // Edits must stay inside the document and must not overlap.
    edits.sort_by_key(|e| e.start);
    let mut at = root.span.start;
    for e in &edits {
        if e.start < at || e.end > root.span.end || e.start > e.end {
            return None;
        }
        at = e.end;
    }
    // Edits of the shapes `Editor` proves correct need no re-parse (the re-parse was half of
    // translate's time). Debug builds (tests, fuzzing) still re-parse them and insist the
    // proof holds.
    if by_construction && !cfg!(debug_assertions) {
        return Some(edits);
    }
    let verified = reads_as_patched(text, root, patches, &edits);
    debug_assert!(
        verified || !by_construction,
        "an edit proved correct by construction does not read back as the patch:\n{}",
        &text[root.span.clone()]
    );
    verified.then_some(edits)
}

/// The full check: the edited document, parsed again, reads as the original document patched
/// by `json_patch::patch`.
fn reads_as_patched(
    text: &str,
    root: &Node,
    patches: &[(Vec<String>, &Node, Vec<MetadataAdd>)],
    edits: &[Edit],
) -> bool {
    let check = || -> Option<bool> {
        let mut expected = root.to_json();
        for (prefix, _, patch) in patches {
            let ops: Vec<PatchOperation> = patch
                .iter()
                .map(|add| {
                    PatchOperation::Add(AddOperation {
                        path: PointerBuf::from_tokens(full_path(prefix, add)),
                        value: add.value.clone(),
                    })
                })
                .collect();
            json_patch::patch(&mut expected, &Patch(ops)).ok()?;
        }
        let shifted: Vec<Edit> = edits
            .iter()
            .map(|e| Edit {
                start: e.start - root.span.start,
                end: e.end - root.span.start,
                text: e.text.clone(),
            })
            .collect();
        let edited = apply_edits(&text[root.span.clone()], &shifted);
        let reparsed = Documents::new(&edited).next()?.ok()?.root?;
        Some(reparsed.to_json() == expected)
    };
    check().unwrap_or(false)
}

/// A string whose JSON form is printable ASCII: written double-quoted, every YAML reader reads
/// it back as exactly this string (no raw line breaks, no characters YAML 1.1 and 1.2 read
/// differently such as U+0085 or U+2028, none YAML forbids such as U+007F).
fn safe_string(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// A mapping key `translate` writes that reads back as itself: safe characters, and short
/// enough for an implicit key (YAML limits those to 1024 characters, quotes included).
fn safe_key(key: &str) -> bool {
    key.len() <= 1000 && safe_string(key)
}

/// A value whose rendering (`render_block_entry`, or JSON in a flow mapping) provably reads
/// back as itself: strings of safe characters, and maps and lists of those. Numbers,
/// booleans and nulls (which the webhook's patches do not contain) go through the re-parse.
fn safe_value(value: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match value {
        J::String(s) => safe_string(s),
        J::Object(map) => map.iter().all(|(k, v)| safe_key(k) && safe_value(v)),
        J::Array(items) => items.iter().all(safe_value),
        J::Null | J::Bool(_) | J::Number(_) => false,
    }
}

struct Editor<'t> {
    text: &'t str,
    edits: Vec<Edit>,
    /// New entries per mapping (keyed by the mapping's start), rendered together at the end.
    inserts: Vec<(usize, Insert<'t>)>,
    /// Every edit so far has a shape that reads back as the patch by construction, so the
    /// document need not be parsed again to verify it. The shapes:
    /// - new entries (safe keys and values) on lines of their own just before a block
    ///   mapping's first key, at its indentation (a mapping without anchors or merge keys
    ///   whose first key starts its line after spaces only; `render_insert` checks that);
    /// - new entries right after a flow mapping's `{` (the same conditions);
    /// - a safe string appended as a line `- "…"` after the line of a block sequence's last
    ///   item, a one-line string, at the first item's `- ` indentation (`append` checks it);
    /// - a safe string appended to a flow sequence, before its `]`, when only whitespace
    ///   separates it from the last item (a scalar) or the `[`;
    /// - a one-line plain or quoted scalar, with nothing (no tag) between it and its key's
    ///   `:`, replaced by a safe string.
    ///
    /// Anything else (other layouts, other values, other characters) is re-parsed.
    by_construction: bool,
}

struct Insert<'t> {
    map: &'t Node,
    /// Indentation step for nested values.
    step: usize,
    entries: Vec<(String, serde_json::Value)>,
}

impl<'t> Editor<'t> {
    /// One `add` operation relative to `object`.
    fn add(&mut self, object: &'t Node, path: &[&str], value: &serde_json::Value) -> Option<()> {
        let (last, parents) = path.split_last()?;
        let mut parent = object;
        let mut step = 2;
        for token in parents {
            let child = parent.get(token)?;
            if child.col > parent.col && !parent.flow {
                step = child.col - parent.col;
            }
            parent = child;
        }
        if parent.shared || parent.merged {
            return None;
        }
        match &parent.value {
            Value::Map(_) => match parent.get(last) {
                Some(existing) => {
                    self.replace(existing, value)?;
                    self.by_construction &= self.replaced_by_construction(existing, value);
                    Some(())
                }
                None => {
                    self.insert(parent, step, last, value);
                    Some(())
                }
            },
            Value::Seq(items) if *last == "-" => self.append(parent, items, value),
            _ => None,
        }
    }

    /// A replacement `replace` made is one of the proven shapes (see `by_construction`).
    fn replaced_by_construction(&self, existing: &Node, value: &serde_json::Value) -> bool {
        use serde_saphyr::granit_parser::ScalarStyle;
        let style_ok = matches!(
            existing.scalar_style,
            Some(ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted)
        );
        let after_colon = self.text[..existing.span.start]
            .trim_end_matches(' ')
            .ends_with(':');
        style_ok && after_colon && matches!(value, serde_json::Value::String(s) if safe_string(s))
    }

    fn replace(&mut self, existing: &Node, value: &serde_json::Value) -> Option<()> {
        let scalar = matches!(
            existing.value,
            Value::Null
                | Value::Bool(_)
                | Value::Int(_)
                | Value::UInt(_)
                | Value::Float(_)
                | Value::Str(_)
        );
        let raw = &self.text[existing.span.clone()];
        if !scalar || existing.shared || raw.contains('\n') {
            return None;
        }
        use serde_saphyr::granit_parser::ScalarStyle;
        if matches!(
            existing.scalar_style,
            Some(ScalarStyle::Literal | ScalarStyle::Folded)
        ) {
            return None;
        }
        let mut text = serde_json::to_string(value).ok()?;
        if existing.span.is_empty() {
            // `key:` with nothing after it: the span sits right after the colon.
            text.insert(0, ' ');
        }
        self.edits.push(Edit {
            start: existing.span.start,
            end: existing.span.end,
            text,
        });
        Some(())
    }

    fn insert(&mut self, map: &'t Node, step: usize, key: &str, value: &serde_json::Value) {
        let at = map.span.start;
        match self.inserts.iter_mut().find(|(start, _)| *start == at) {
            Some((_, insert)) => insert.entries.push((key.to_owned(), value.clone())),
            None => self.inserts.push((
                at,
                Insert {
                    map,
                    step,
                    entries: vec![(key.to_owned(), value.clone())],
                },
            )),
        }
    }

    fn append(&mut self, seq: &Node, items: &[Node], value: &serde_json::Value) -> Option<()> {
        let json = serde_json::to_string(value).ok()?;
        if seq.flow {
            // Before the closing `]`.
            let close = seq.span.end.checked_sub(1)?;
            if self.text.as_bytes().get(close) != Some(&b']') {
                return None;
            }
            // Proven when only whitespace separates the new item from the previous one (or
            // from `[`): `[a, b,]` would become `[a, b,, "x"]`, and a comment may hide a comma.
            // (An alias's copy carries its anchor's span: not proven.)
            let after = match items.last() {
                None => Some(seq.span.start + 1),
                Some(last) if last.scalar_style.is_some() && !last.shared => Some(last.span.end),
                Some(_) => None,
            };
            let gap_is_blank = after
                .and_then(|a| self.text.get(a..close))
                .is_some_and(|gap| gap.bytes().all(|b| b" \t\r\n".contains(&b)));
            self.by_construction &= gap_is_blank && value.is_string() && safe_value(value);
            let text = if items.is_empty() {
                json
            } else {
                format!(", {json}")
            };
            self.edits.push(Edit {
                start: close,
                end: close,
                text,
            });
            return Some(());
        }
        let last = items.last()?;
        if !matches!(last.value, Value::Str(_)) || self.text[last.span.clone()].contains('\n') {
            return None;
        }
        let indent = dash_prefix(self.text, seq.span.start)?;
        // After the end of the line the last item is on.
        let (at, lead) = match self.text[last.span.end..].find('\n') {
            Some(i) => (last.span.end + i + 1, ""),
            None => (self.text.len(), "\n"),
        };
        // A lone `\r` also ends a line in YAML: then the `\n` found may be lines further on.
        let rest_of_line = &self.text[last.span.end..at];
        let rest_of_line = rest_of_line
            .strip_suffix("\r\n")
            .or(rest_of_line.strip_suffix('\n'))
            .unwrap_or(rest_of_line);
        self.by_construction &=
            value.is_string() && safe_value(value) && !rest_of_line.contains('\r');
        self.edits.push(Edit {
            start: at,
            end: at,
            text: format!("{lead}{indent}- {json}\n"),
        });
        Some(())
    }

    /// The edits, and whether all of them are of the proven shapes.
    fn finish(mut self) -> Option<(Vec<Edit>, bool)> {
        for (_, insert) in std::mem::take(&mut self.inserts) {
            let edit = render_insert(self.text, &insert)?;
            // A key that is not a string (`true:`, `5:`) has a JSON name too: a new key with the
            // same name would leave two, and the later one wins.
            let Value::Map(existing) = &insert.map.value else {
                return None;
            };
            self.by_construction &= insert.entries.iter().all(|(k, v)| {
                safe_key(k)
                    && safe_value(v)
                    && !existing
                        .iter()
                        .any(|(ek, _)| ek.key_str().is_none() && yaml::json_key(ek) == *k)
            });
            self.edits.push(edit);
        }
        Some((self.edits, self.by_construction))
    }
}

/// The whitespace before `at` on its line, if only whitespace precedes it.
fn line_prefix(text: &str, at: usize) -> Option<&str> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let prefix = &text[line_start..at];
    prefix.bytes().all(|b| b == b' ').then_some(prefix)
}

/// The indentation of the `- ` that introduces a block sequence starting at `at`: an indented
/// sequence's span starts at its first `-`, an indentless one's (`key:` and `- a` on the next
/// line at the same column) at its first item's content.
fn dash_prefix(text: &str, at: usize) -> Option<&str> {
    let rest = text.as_bytes().get(at..)?;
    if rest.first() == Some(&b'-') && rest.get(1).is_none_or(|b| b" \t\r\n".contains(b)) {
        return line_prefix(text, at);
    }
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = text[line_start..at]
        .trim_end_matches(' ')
        .strip_suffix('-')?;
    before.bytes().all(|b| b == b' ').then_some(before)
}

fn render_insert(text: &str, insert: &Insert<'_>) -> Option<Edit> {
    let map = insert.map;
    let Value::Map(existing) = &map.value else {
        return None;
    };
    if map.flow {
        if text.as_bytes().get(map.span.start) != Some(&b'{') {
            return None;
        }
        let mut parts = Vec::new();
        for (k, v) in &insert.entries {
            parts.push(format!(
                "{}: {}",
                serde_json::to_string(k).ok()?,
                serde_json::to_string(v).ok()?
            ));
        }
        // Pretty-printed JSON (`{` ends its line): one entry per line, at the entries' indent.
        let after = &text[map.span.start + 1..];
        let indent: String = after
            .strip_prefix('\n')
            .map(|rest| rest.chars().take_while(|c| *c == ' ').collect())
            .unwrap_or_default();
        let out = if !existing.is_empty() && !indent.is_empty() {
            parts
                .iter()
                .map(|p| format!("\n{indent}{p},"))
                .collect::<String>()
        } else if !existing.is_empty() {
            format!("{}, ", parts.join(", "))
        } else {
            parts.join(", ")
        };
        return Some(Edit {
            start: map.span.start + 1,
            end: map.span.start + 1,
            text: out,
        });
    }
    if existing.is_empty() {
        return None;
    }
    // A block mapping's first key starts a line of its own (under its parent key): the new
    // entries go on lines just before it, at the same indentation.
    let indent = line_prefix(text, map.span.start)?;
    let line_start = map.span.start - indent.len();
    // Bytes, so that serde_json writes the values straight into them (`io::Write`), with no
    // `String` of their own; one UTF-8 check at the end (all the pieces are `str`s).
    let mut out = Vec::with_capacity(256);
    for (k, v) in &insert.entries {
        render_block_entry(&mut out, indent, insert.step, k, v)?;
    }
    Some(Edit {
        start: line_start,
        end: line_start,
        text: String::from_utf8(out).ok()?,
    })
}

fn render_block_entry(
    out: &mut Vec<u8>,
    indent: &str,
    step: usize,
    key: &str,
    value: &serde_json::Value,
) -> Option<()> {
    let key = yaml_key(key)?;
    // Straight into `out` (a `format!` per line, and the nested indentation made for every
    // entry, were a fifth of translate's own time on a stream of hooks).
    let line_start = |out: &mut Vec<u8>| {
        out.extend_from_slice(indent.as_bytes());
        out.extend_from_slice(key.as_bytes());
        out.push(b':');
    };
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            line_start(out);
            out.push(b'\n');
            let inner = format!("{indent}{}", " ".repeat(step.max(1)));
            for (k, v) in map {
                render_block_entry(out, &inner, step, k, v)?;
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            line_start(out);
            out.push(b'\n');
            for item in items {
                out.extend_from_slice(indent.as_bytes());
                out.extend(std::iter::repeat_n(b' ', step.max(1)));
                out.extend_from_slice(b"- ");
                serde_json::to_writer(&mut *out, item).ok()?;
                out.push(b'\n');
            }
        }
        other => {
            line_start(out);
            out.push(b' ');
            serde_json::to_writer(&mut *out, other).ok()?;
            out.push(b'\n');
        }
    }
    Some(())
}

/// Keys hookguard writes are plain-safe (`argocd.argoproj.io/hook`); anything else is quoted.
fn yaml_key(key: &str) -> Option<Cow<'_, str>> {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_'))
        // These characters make one plain scalar; it must not read as a number, boolean or
        // null (`y`, `1e3`).
        && super::yaml::plain_reads_as_string(key);
    if plain {
        Some(Cow::Borrowed(key))
    } else {
        serde_json::to_string(key).ok().map(Cow::Owned)
    }
}

/// The fallback: the whole document as indented JSON, patched, in its original key order.
fn reemit(root: &Node, patches: &[(Vec<String>, &Node, Vec<MetadataAdd>)]) -> Edit {
    let mut doc = root.clone();
    for (prefix, _, patch) in patches {
        for add in patch {
            let full: Vec<&str> = full_path(prefix, add).collect();
            apply_add(&mut doc, &full, &add.value);
        }
    }
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    if !root.flow {
        text.push('\n');
    }
    Edit {
        start: root.span.start,
        end: root.span.end,
        text,
    }
}

/// `add`'s path from the document's root: the object's place in it (`prefix`, empty or
/// `items`, index), then the path within the object.
fn full_path<'a>(prefix: &'a [String], add: &'a MetadataAdd) -> impl Iterator<Item = &'a str> {
    prefix
        .iter()
        .map(String::as_str)
        .chain(add.path().iter().copied())
}

/// RFC 6902 `add` on the ordered tree: set a mapping key (replacing its value) or append to a
/// list with `-`. The webhook's patches use nothing else.
fn apply_add(node: &mut Node, path: &[&str], value: &serde_json::Value) {
    let Some((first, rest)) = path.split_first() else {
        *node = Node::from_json(value);
        return;
    };
    match &mut node.value {
        Value::Map(entries) => {
            if let Some((_, child)) = entries
                .iter_mut()
                .rev()
                .find(|(k, _)| k.key_str() == Some(*first))
            {
                apply_add(child, rest, value);
            } else if rest.is_empty() {
                entries.push((
                    Node::from_json(&serde_json::Value::String((*first).to_owned())),
                    Node::from_json(value),
                ));
            }
        }
        Value::Seq(items) => {
            if *first == "-" && rest.is_empty() {
                items.push(Node::from_json(value));
            } else if let Some(child) = first.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                apply_add(child, rest, value);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For each document with changes: whether its edits were proven by construction, and
    /// whether the full check (re-parse) accepts them. Runs the same steps as `translate`.
    fn classify(text: &str) -> Vec<(bool, bool)> {
        let settings = MutationSettings::default();
        let stage = Stage::Offline { managed: true };
        let mut out = Vec::new();
        for doc in Documents::new(text) {
            let doc = doc.expect("parses");
            let Some(root) = &doc.root else { continue };
            let objects = objects_of(&doc).expect("objects");
            let is_list = root.get("items").is_some();
            let mut patches = Vec::new();
            for (i, object) in objects.iter().enumerate() {
                let patch = object_patch(object, &settings, stage);
                if !patch.is_empty() {
                    let prefix = if is_list {
                        vec!["items".to_owned(), i.to_string()]
                    } else {
                        Vec::new()
                    };
                    patches.push((prefix, *object, patch));
                }
            }
            if patches.is_empty() {
                continue;
            }
            let mut editor = Editor {
                text,
                edits: Vec::new(),
                inserts: Vec::new(),
                by_construction: true,
            };
            let mut ok = true;
            for (_, object, patch) in &patches {
                for add in patch {
                    ok &= editor.add(object, add.path(), &add.value).is_some();
                }
            }
            let Some((edits, proven)) = editor.finish().filter(|_| ok) else {
                out.push((false, false));
                continue;
            };
            out.push((proven, reads_as_patched(text, root, &patches, &edits)));
        }
        out
    }

    const HOOK: &str = "    argocd.argoproj.io/hook: PreSync\n";

    #[test]
    fn proven_shapes_read_back_as_the_patch() {
        let cases = [
            // Block mappings and lists, LF and CRLF.
            format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n  labels:\n    a: b\n  finalizers:\n  - x\n  annotations:\n{HOOK}"),
            format!("apiVersion: batch/v1\r\nkind: Job\r\nmetadata:\r\n  name: j\r\n  finalizers:\r\n    - x # c\r\n  annotations:\r\n{}", HOOK.replace('\n', "\r\n")),
            // New `labels` and `finalizers` (a map and a list as values); Helm's policy
            // replacing a plain and a quoted value.
            format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n    annotations:\n  {HOOK}"),
            format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  annotations:\n{HOOK}    argocd.argoproj.io/hook-delete-policy: HookSucceeded  # c\n    helm.sh/hook-delete-policy: hook-failed\n"),
            format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  annotations:\n{HOOK}    argocd.argoproj.io/hook-delete-policy: 'HookSucceeded'\n    helm.sh/hook-delete-policy: hook-failed\n"),
            // JSON, compact and pretty.
            r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "finalizers": [], "annotations": {"helm.sh/hook": "pre-install"}}}"#.to_owned(),
            "{\n  \"apiVersion\": \"batch/v1\",\n  \"kind\": \"Job\",\n  \"metadata\": {\n    \"annotations\": {\n      \"helm.sh/hook\": \"pre-install\"\n    }\n  }\n}\n".to_owned(),
        ];
        for text in &cases {
            for (proven, verified) in classify(text) {
                assert!(proven && verified, "({proven}, {verified}) for:\n{text}");
            }
        }
    }

    #[test]
    fn other_shapes_are_re_parsed() {
        let cases = [
            // A flow list with a trailing comma: appending would write `,,`.
            format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  finalizers: [x,]\n  annotations:\n{HOOK}"),
            // A lone `\r` ends a line in YAML: the next `\n` is lines further on.
            format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  finalizers:\r  - x\r  labels: {{}}\n  annotations:\n{HOOK}"),
        ];
        for text in &cases {
            let classes = classify(text);
            assert!(!classes.is_empty(), "no changes for:\n{text}");
            for (proven, _) in classes {
                assert!(!proven, "proven by construction:\n{text}");
            }
            let once =
                translate(text.as_bytes(), &MutationSettings::default(), true).expect("translates");
            let again = translate(once.text.as_bytes(), &MutationSettings::default(), true)
                .expect("translates its output");
            assert_eq!(again.changed_objects, 0, "{}", once.text);
        }
        // A tag before the value being replaced: either its span covers the tag (then
        // replacing it is right) or the edit is re-parsed.
        let tagged = format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  annotations:\n{HOOK}    argocd.argoproj.io/hook-delete-policy: !!str HookSucceeded\n    helm.sh/hook-delete-policy: hook-failed\n");
        for (proven, verified) in classify(&tagged) {
            assert!(!proven || verified, "{tagged}");
        }
    }
}
