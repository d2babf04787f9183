//! The YAML front end of `lint` and `translate`: a multi-document stream in, one tree per
//! document out, each node with its byte span and line so findings can name a line and
//! `translate` can edit the user's text in place.
//!
//! Parsing is granit-parser's (the event parser under serde-saphyr). Plain scalars are then
//! typed the way Kubernetes tooling types them, not by YAML 1.2: kubectl, Helm and Argo CD
//! all read manifests with sigs.k8s.io/yaml, i.e. go-yaml v2's YAML 1.1 resolution
//! (`yes`/`on` are booleans, `0x1f` and `017` are integers, timestamps stay strings). That is
//! what decides whether `argocd.argoproj.io/sync-wave: 5` is a string (it is not).

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_saphyr::granit_parser::{Event, Options, Parser, ScalarStyle, Span, StructureStyle};
use std::collections::HashMap;
use std::ops::Range;

/// At most this many nodes may be created by expanding aliases in one stream (a "billion
/// laughs" stream is rejected instead of exhausting memory and time). Per stream, not per
/// document: a stream of many small bombs must not add up. Expanding costs ~0.1 µs a node,
/// and translate may parse an edited document twice; 10 000 nodes keep a 633-byte bomb at ~1 ms
/// (at 1 000 000 per document it took 110 ms, found by `make fuzz-replay`), far above what
/// hand-written anchors in manifests expand to.
const MAX_ALIAS_NODES: usize = 10_000;

/// A YAML value as Kubernetes tooling reads it, with mapping order kept.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer beyond i64 (go-yaml falls back to uint64).
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    /// Byte range of the node's text (for quoted scalars including the quotes; for a flow
    /// collection from `{`/`[` to the closing bracket).
    pub span: Range<usize>,
    /// 1-based line and 0-based column of the node's first character.
    pub line: usize,
    pub col: usize,
    /// Flow style (`{…}`, `[…]`) for collections.
    pub flow: bool,
    /// Scalar notation (plain, quoted, block).
    pub scalar_style: Option<ScalarStyle>,
    /// The node carries an anchor or was copied from one by an alias: editing its text would
    /// change other places too.
    pub shared: bool,
    /// A mapping that contains a merge key (`<<`): some entries come from elsewhere.
    pub merged: bool,
}

impl Node {
    /// The value of `key` in a mapping (the last one, as go-yaml keeps the last duplicate).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k.key_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A mapping key as sigs.k8s.io/yaml turns it into a JSON object key.
    pub fn key_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }

    /// What kind of YAML value this is, for messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The JSON value Kubernetes tooling sees.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::UInt(u) => J::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => {
                let mut map = serde_json::Map::with_capacity(entries.len());
                for (k, v) in entries {
                    map.insert(json_key(k), v.to_json());
                }
                J::Object(map)
            }
        }
    }

    /// A node built from a JSON value (for values written by `translate`'s fallback).
    pub fn from_json(value: &serde_json::Value) -> Node {
        use serde_json::Value as J;
        let value = match value {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Value::Int(i),
                (None, Some(u), _) => Value::UInt(u),
                (_, _, Some(f)) => Value::Float(f),
                _ => Value::Null,
            },
            J::String(s) => Value::Str(s.clone()),
            J::Array(items) => Value::Seq(items.iter().map(Node::from_json).collect()),
            J::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| (Node::synthetic(Value::Str(k.clone())), Node::from_json(v)))
                    .collect(),
            ),
        };
        Node::synthetic(value)
    }

    fn synthetic(value: Value) -> Node {
        Node {
            value,
            span: 0..0,
            line: 0,
            col: 0,
            flow: false,
            scalar_style: None,
            shared: true,
            merged: false,
        }
    }
}

/// JSON object keys: sigs.k8s.io/yaml formats non-string keys as text.
pub(crate) fn json_key(k: &Node) -> String {
    match &k.value {
        Value::Str(s) => s.clone(),
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Seq(_) | Value::Map(_) => k.to_json().to_string(),
    }
}

/// JSON output in the document's own key order (used by `translate`'s fallback).
impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.value {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Value::Float(_) => s.serialize_unit(),
            Value::Str(v) => s.serialize_str(v),
            Value::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(&json_key(k), v)?;
                }
                map.end()
            }
        }
    }
}

/// Reads a node with serde directly (no JSON copy): `HookObject::deserialize(NodeDe(&node))`
/// sees what it would see in the object's JSON.
#[derive(Clone, Copy)]
pub struct NodeDe<'a>(pub &'a Node);

/// A mapping key, always read as its JSON object key.
#[derive(Clone, Copy)]
struct KeyDe<'a>(&'a Node);

type DeError = serde::de::value::Error;

impl<'de> serde::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        use serde::de::value::{MapDeserializer, SeqDeserializer};
        match &self.0.value {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(*b),
            Value::Int(i) => v.visit_i64(*i),
            Value::UInt(u) => v.visit_u64(*u),
            Value::Float(f) => v.visit_f64(*f),
            Value::Str(s) => v.visit_borrowed_str(s),
            Value::Seq(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(NodeDe));
                let value = v.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Map(entries) => {
                let mut map =
                    MapDeserializer::new(entries.iter().map(|(k, val)| (KeyDe(k), NodeDe(val))));
                let value = v.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.0.value {
            Value::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> serde::de::IntoDeserializer<'de, DeError> for NodeDe<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for KeyDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.0.value {
            Value::Str(s) => v.visit_borrowed_str(s),
            _ => v.visit_string(json_key(self.0)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> serde::de::IntoDeserializer<'de, DeError> for KeyDe<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// One document of a stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// 0-based position in the stream, empty documents included.
    pub index: usize,
    /// 1-based line where the document's content starts (or its `---` when it is empty).
    pub line: usize,
    /// `None` for an empty document (nothing, or only `null`/`~`): every tool skips those.
    pub root: Option<Node>,
}

/// Bad input: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line and column.
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {} column {}: {}",
            self.line, self.col, self.message
        )
    }
}

/// The documents of a YAML (or JSON) stream, one at a time, so a large stream never has to
/// be held as trees all at once.
///
/// An empty document written as a bare `---` line, followed by another `---` line or the end
/// of the input, is taken without the parser (granit-parser spends ~3 500 instructions on
/// each, and Helm output or a generated stream can hold thousands). The text between such
/// documents is parsed in pieces, each by a parser of its own (see `next_piece`); should a piece
/// fail to parse, the whole stream is parsed again in one piece from the start, so errors
/// are always the single parser's.
pub struct Documents<'a> {
    text: &'a str,
    /// The parser of the current piece of `text`, if one is open.
    parser: Option<Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>>,
    /// Where the parser's input starts in `text` (a line start), and the lines before it:
    /// its byte offsets and lines are relative to that.
    base: usize,
    base_lines: usize,
    /// Where the parser's input ends in `text`.
    piece_end: usize,
    /// Where the text not yet read starts (a line start) when no parser is open, and its
    /// 1-based line.
    pos: usize,
    pos_line: usize,
    /// Empty documents may be taken without the parser (off once the stream is parsed whole).
    split: bool,
    index: usize,
    done: bool,
    /// Build only what lint reads (see `for_lint`).
    lint_only: bool,
    /// Nodes aliases may still create in this stream.
    alias_budget: usize,
}

/// Top-level keys lint reads of any object (`HookObject`'s fields and `items`).
const LINT_KEYS: [&str; 4] = ["apiVersion", "kind", "metadata", "items"];

impl<'a> Documents<'a> {
    /// Every node of every document (what `translate` needs).
    pub fn new(text: &'a str) -> Documents<'a> {
        Documents {
            text,
            parser: None,
            base: 0,
            base_lines: 0,
            piece_end: 0,
            pos: 0,
            pos_line: 1,
            split: true,
            index: 0,
            done: false,
            lint_only: false,
            alias_budget: MAX_ALIAS_NODES,
        }
    }

    /// `new` with one parser over the whole stream from the start (what the pieces must
    /// read as; for tests).
    #[cfg(test)]
    fn whole(text: &'a str) -> Documents<'a> {
        let mut docs = Documents::new(text);
        docs.split = false;
        docs
    }

    /// Every document is still parsed in full (syntax errors are found anywhere), but only
    /// the parts lint reads become nodes: `apiVersion`, `kind`, `metadata`, `items`, and
    /// `spec` when the document mentions a hook annotation at all. Other top-level values
    /// (a Deployment's spec, a ConfigMap's data) are read as `null`. This is what makes lint
    /// fast on streams that are mostly not hooks.
    pub fn for_lint(text: &'a str) -> Documents<'a> {
        Documents {
            lint_only: true,
            ..Documents::new(text)
        }
    }
}

/// The end of the document starting at `from`: the next line that starts with `---` or
/// `...` followed by a space or line break (YAML forbids such a line inside any content), or
/// the end of the text.
fn document_extent(text: &str, from: usize) -> usize {
    let bytes = text.as_bytes();
    let mut at = from;
    while let Some(i) = memchr::memchr(b'\n', &bytes[at..]) {
        let line = at + i + 1;
        if is_marker(text, line, b"---") || is_marker(text, line, b"...") {
            return line;
        }
        at = line;
    }
    text.len()
}

/// Whether a document may need its `spec` for lint: it names a hook annotation, or it has
/// anchors (an alias could pull skipped content into what lint reads).
fn needs_spec(doc: &str) -> bool {
    let b = doc.as_bytes();
    memchr::memmem::find(b, b"argocd.argoproj.io").is_some()
        || memchr::memmem::find(b, b"helm.sh").is_some()
        || memchr::memchr(b'&', b).is_some()
}

/// Whether the line starting at `at` is the marker `---` (document start) or `...` (document
/// end): the three characters followed by a space, a tab, a line break or the end of the
/// input (as granit-parser's scanner reads them at column 0; a NUL after it is left to the
/// parser).
fn is_marker(text: &str, at: usize, marker: &[u8; 3]) -> bool {
    let rest = &text.as_bytes()[at..];
    rest.starts_with(marker)
        && rest
            .get(3)
            .is_none_or(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
}

fn is_document_start(text: &str, at: usize) -> bool {
    is_marker(text, at, b"---")
}

/// Where a line starting at `at` with `---` goes on after the marker and the spaces after
/// it; `None` if the line does not start with `---`.
fn after_start_marker(bytes: &[u8], at: usize) -> Option<usize> {
    if !bytes[at..].starts_with(b"---") {
        return None;
    }
    let mut i = at + 3;
    while bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    Some(i)
}

/// An empty document at the line start `at`: `---`, maybe spaces, then the end of the input,
/// or a line break followed by the end of the input or another document start marker.
/// Returns where the next line starts.
fn empty_document(text: &str, at: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let i = after_start_marker(bytes, at)?;
    let next = match bytes.get(i) {
        None => return Some(i),
        Some(b'\n') => i + 1,
        Some(b'\r') if bytes.get(i + 1) == Some(&b'\n') => i + 2,
        Some(_) => return None,
    };
    (next == bytes.len() || is_document_start(text, next)).then_some(next)
}

/// The first line start after the line start `from` where a document that needs no parser
/// starts (an empty one, or JSON `JsonDocument` reads), or the end of the text.
fn next_fast_document(text: &str, from: usize) -> usize {
    let bytes = text.as_bytes();
    let mut at = from;
    loop {
        match memchr::memchr(b'\n', &bytes[at..]) {
            Some(i) => at += i + 1,
            None => return text.len(),
        }
        if is_document_start(text, at)
            && (empty_document(text, at).is_some()
                || JsonDocument::read(text, at, 1, false).is_some())
        {
            return at;
        }
    }
}

/// A document written as compact JSON at the line start `at` (the start of the input, or a
/// `---` line): an object, then a line break and another document start marker or the end
/// of the input. Read without the parser when it stays within a subset whose YAML reading
/// is plain: only spaces and `\n` between tokens; strings of printable ASCII without escapes
/// (keys under 1 000 bytes, so always an implicit key, followed by `: `); JSON numbers,
/// `true`, `false` and `null` (typed by `resolve_scalar`, as the parser's plain scalars are);
/// at most 64 levels. The nodes are those the parser's events make (flow collections from
/// bracket to bracket, quoted scalars with their quotes, lint's skipped values as a null at
/// their closing bracket). Anything else is left to the parser.
struct JsonDocument<'t> {
    text: &'t str,
    at: usize,
    line: usize,
    line_start: usize,
    /// In lint mode, whether the document's `spec` is kept (see `Documents::for_lint`).
    lint_keep_spec: Option<bool>,
}

const JSON_MAX_DEPTH: usize = 64;

impl<'t> JsonDocument<'t> {
    /// The document at the line start `at` (of 1-based line `line`): its root and where the
    /// next line starts.
    fn read(text: &'t str, at: usize, line: usize, lint_only: bool) -> Option<(Node, usize)> {
        let bytes = text.as_bytes();
        let (doc_start, body) = if let Some(i) = after_start_marker(bytes, at) {
            if bytes.get(i) != Some(&b'\n') {
                return None;
            }
            (at, i + 1)
        } else if at == 0 {
            (0, 0)
        } else {
            return None;
        };
        if bytes.get(body) != Some(&b'{') {
            return None;
        }
        let mut reader = JsonDocument {
            text,
            at: body,
            line: if body == at { line } else { line + 1 },
            line_start: body,
            lint_keep_spec: lint_only.then(|| {
                let end = document_extent(text, doc_start);
                needs_spec(&text[doc_start..end])
            }),
        };
        let root = reader.value(0)?;
        while bytes.get(reader.at) == Some(&b' ') {
            reader.at += 1;
        }
        let next = match bytes.get(reader.at) {
            None => return Some((root, reader.at)),
            Some(b'\n') => reader.at + 1,
            Some(_) => return None,
        };
        (next == bytes.len() || is_document_start(text, next)).then_some((root, next))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Spaces and line breaks.
    fn blank(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' => self.at += 1,
                b'\n' => {
                    self.at += 1;
                    self.line += 1;
                    self.line_start = self.at;
                }
                _ => break,
            }
        }
    }

    /// A node starting at the current position (all ASCII: the column is the byte count).
    fn node(&self, value: Value, start: usize) -> Node {
        Node {
            value,
            span: start..start,
            line: self.line,
            col: start - self.line_start,
            flow: false,
            scalar_style: None,
            shared: false,
            merged: false,
        }
    }

    fn value(&mut self, depth: usize) -> Option<Node> {
        match self.peek()? {
            b'{' | b'[' => self.collection(depth),
            b'"' => self.string(),
            _ => self.plain(),
        }
    }

    fn string(&mut self) -> Option<Node> {
        let start = self.at;
        let body = &self.text.as_bytes()[start + 1..];
        let len = body
            .iter()
            .position(|&b| !matches!(b, 0x20..=0x7e) || b == b'"' || b == b'\\')?;
        if body[len] != b'"' {
            return None;
        }
        let text = &self.text[start + 1..start + 1 + len];
        let mut node = self.node(resolve_scalar(text, ScalarStyle::DoubleQuoted, None), start);
        node.scalar_style = Some(ScalarStyle::DoubleQuoted);
        self.at = start + len + 2;
        node.span.end = self.at;
        Some(node)
    }

    /// A JSON number, `true`, `false` or `null`, followed by a space, a line break, `,`, `]`
    /// or `}`.
    fn plain(&mut self) -> Option<Node> {
        let start = self.at;
        let bytes = &self.text.as_bytes()[start..];
        let len = bytes
            .iter()
            .position(|b| matches!(b, b' ' | b'\n' | b',' | b']' | b'}'))?;
        let text = &self.text[start..start + len];
        if !matches!(text, "true" | "false" | "null") && !is_json_number(text) {
            return None;
        }
        let mut node = self.node(resolve_scalar(text, ScalarStyle::Plain, None), start);
        node.scalar_style = Some(ScalarStyle::Plain);
        self.at = start + len;
        node.span.end = self.at;
        Some(node)
    }

    fn collection(&mut self, depth: usize) -> Option<Node> {
        if depth >= JSON_MAX_DEPTH {
            return None;
        }
        let map = self.peek()? == b'{';
        let close = if map { b'}' } else { b']' };
        let mut node = self.node(Value::Null, self.at);
        node.flow = true;
        self.at += 1;
        self.blank();
        let mut items = Vec::new();
        let mut entries = Vec::new();
        if self.peek()? != close {
            loop {
                if map {
                    if self.peek()? != b'"' {
                        return None;
                    }
                    let key = self.string()?;
                    if key.span.len() >= 1000 || !self.text[self.at..].starts_with(": ") {
                        return None;
                    }
                    self.at += 2;
                    while self.peek()? == b' ' {
                        self.at += 1;
                    }
                    let mut value = self.value(depth + 1)?;
                    if let (Some(keep_spec), 0, Value::Map(_) | Value::Seq(_)) =
                        (self.lint_keep_spec, depth, &value.value)
                    {
                        let wanted = key
                            .key_str()
                            .is_some_and(|k| LINT_KEYS.contains(&k) || (keep_spec && k == "spec"));
                        if !wanted {
                            value = self.skipped(&value);
                        }
                    }
                    entries.push((key, value));
                } else {
                    items.push(self.value(depth + 1)?);
                }
                self.blank();
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        self.blank();
                    }
                    b if b == close => break,
                    _ => return None,
                }
            }
        }
        self.at += 1;
        node.span.end = self.at;
        node.value = if map {
            Value::Map(entries)
        } else {
            Value::Seq(items)
        };
        Some(node)
    }

    /// What lint keeps of a top-level value it does not read: a null at the value's closing
    /// bracket (the parser's end event), just read.
    fn skipped(&self, value: &Node) -> Node {
        let close = value.span.end - 1;
        let line_start = self.text[..close].rfind('\n').map_or(0, |i| i + 1);
        let line = self.line - self.text[close..self.at].matches('\n').count();
        Node {
            value: Value::Null,
            span: close..close + 1,
            line,
            col: close - line_start,
            flow: false,
            scalar_style: None,
            shared: true,
            merged: false,
        }
    }
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(b, &mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(b, &mut i) == 0 {
            return false;
        }
    }
    exponent(b, &mut i) && i == b.len()
}

/// Skips the digits at `*i`; how many there were.
fn digits(b: &[u8], i: &mut usize) -> usize {
    let start = *i;
    while b.get(*i).is_some_and(u8::is_ascii_digit) {
        *i += 1;
    }
    *i - start
}

/// Skips an exponent (`[eE][-+]?[0-9]+`) at `*i` if there is one; false when one starts but
/// has no digit. JSON and go-yaml's float pattern write it alike.
fn exponent(b: &[u8], i: &mut usize) -> bool {
    if matches!(b.get(*i), Some(b'e' | b'E')) {
        *i += 1;
        if matches!(b.get(*i), Some(b'+' | b'-')) {
            *i += 1;
        }
        if digits(b, i) == 0 {
            return false;
        }
    }
    true
}

/// Line breaks as YAML counts them: `\r\n`, `\n`, and a `\r` alone.
fn line_breaks(text: &str) -> usize {
    let bytes = text.as_bytes();
    memchr::memchr2_iter(b'\n', b'\r', bytes)
        .filter(|&i| bytes[i] == b'\n' || bytes.get(i + 1) != Some(&b'\n'))
        .count()
}

impl Iterator for Documents<'_> {
    type Item = Result<Document, SyntaxError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.next_document();
        match result {
            Ok(Some(doc)) => Some(Ok(doc)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// An open collection: its node (value filled in at the end), its anchor id (0 for none)
/// and what it has so far.
enum Frame {
    Seq(Node, usize, Vec<Node>),
    Map(Node, usize, Vec<(Node, Node)>, Option<Node>),
}

impl<'a> Documents<'a> {
    fn options() -> Options {
        let mut options = Options::default();
        options.set_emit_comments(false);
        options
    }

    /// The parser reads the whole stream: its errors are the stream's.
    fn reads_whole_stream(&self) -> bool {
        self.base == 0 && self.piece_end == self.text.len()
    }

    fn next_document(&mut self) -> Result<Option<Document>, SyntaxError> {
        loop {
            if self.parser.is_some() {
                let budget = self.alias_budget;
                match self.parse_document() {
                    Ok(Some(doc)) => return Ok(Some(doc)),
                    Ok(None) if self.piece_end == self.text.len() => return Ok(None),
                    Ok(None) => {
                        // The piece ends where an empty document starts.
                        self.parser = None;
                        self.pos_line = self.base_lines
                            + 1
                            + line_breaks(&self.text[self.base..self.piece_end]);
                        self.pos = self.piece_end;
                    }
                    Err(e) if self.reads_whole_stream() => return Err(e),
                    Err(_) => {
                        self.alias_budget = budget;
                        self.parse_whole_stream()?;
                    }
                }
                continue;
            }
            if self.pos == self.text.len() && self.pos > 0 {
                return Ok(None);
            }
            if self.split {
                if let Some(next) = empty_document(self.text, self.pos) {
                    let doc = Document {
                        index: self.index,
                        line: self.pos_line,
                        root: None,
                    };
                    self.index += 1;
                    self.pos_line += line_breaks(&self.text[self.pos..next]);
                    self.pos = next;
                    return Ok(Some(doc));
                }
                if let Some((root, next)) =
                    JsonDocument::read(self.text, self.pos, self.pos_line, self.lint_only)
                {
                    let doc = Document {
                        index: self.index,
                        line: root.line,
                        root: Some(root),
                    };
                    self.index += 1;
                    self.pos_line += line_breaks(&self.text[self.pos..next]);
                    self.pos = next;
                    return Ok(Some(doc));
                }
            }
            let end = if self.split {
                next_fast_document(self.text, self.pos)
            } else {
                self.text.len()
            };
            self.next_piece(self.pos, self.pos_line, end);
        }
    }

    /// A parser of its own for `text[start..end]`: `start` is a line start (the start of the
    /// input or a document start marker after a line break) and `end` the start of an empty
    /// document (or the end of the input). At such an `end`, a parser of the whole stream
    /// ends the document it is in (a `---` at column 0 ends a plain or block scalar and
    /// closes every block collection, and is an error inside a quoted scalar or a flow
    /// collection), so the piece reads as the same events, only relative to `start`; any
    /// error makes `next_document` parse the whole stream instead.
    fn next_piece(&mut self, start: usize, line: usize, end: usize) {
        self.parser = Some(Parser::new_from_str_with_options(
            &self.text[start..end],
            Self::options(),
        ));
        self.base = start;
        self.base_lines = line - 1;
        self.piece_end = end;
    }

    /// After an error in a piece: one parser over the whole stream, past the documents
    /// already read.
    fn parse_whole_stream(&mut self) -> Result<(), SyntaxError> {
        self.split = false;
        self.next_piece(0, 1, self.text.len());
        let mut ended = 0;
        while ended < self.index {
            let Some(event) = self.parser.as_mut().and_then(|p| p.next_event()) else {
                return Ok(());
            };
            match event.map_err(|e| self.parse_error(&e))? {
                (Event::DocumentEnd, _) => ended += 1,
                (Event::StreamEnd, _) => return Ok(()),
                _ => {}
            }
        }
        Ok(())
    }

    fn parse_error(&self, e: &serde_saphyr::granit_parser::ScanError) -> SyntaxError {
        SyntaxError {
            line: self.base_lines + e.marker().line(),
            col: e.marker().col() + 1,
            message: e.info(),
        }
    }

    /// The next document of the open parser; `None` at the end of its input.
    fn parse_document(&mut self) -> Result<Option<Document>, SyntaxError> {
        let mut doc_line = None;
        let mut stack: Vec<Frame> = Vec::new();
        let mut anchors: HashMap<usize, Node> = HashMap::new();
        let mut root: Option<Node> = None;
        // In lint mode: the top-level keys to build, and how deep we are in a skipped value.
        let mut keep_spec = true;
        let mut skipping = 0usize;
        loop {
            let Some(event) = self.parser.as_mut().and_then(|p| p.next_event()) else {
                return Ok(None);
            };
            let (event, span) = event.map_err(|e| self.parse_error(&e))?;
            if skipping > 0 {
                match event {
                    Event::SequenceStart(..) | Event::MappingStart(..) => skipping += 1,
                    Event::SequenceEnd | Event::MappingEnd => skipping -= 1,
                    _ => {}
                }
                if skipping > 0 {
                    continue;
                }
                // The skipped value stands as a null under its key.
                if let Some(Frame::Map(_, _, entries, pending)) = stack.last_mut() {
                    if let Some(key) = pending.take() {
                        let mut node = self.node(Value::Null, &span);
                        node.shared = true;
                        entries.push((key, node));
                    }
                }
                continue;
            }
            if self.lint_only
                && stack.len() == 1
                && matches!(event, Event::SequenceStart(..) | Event::MappingStart(..))
            {
                if let Some(Frame::Map(_, _, _, Some(key))) = stack.last() {
                    let wanted = key
                        .key_str()
                        .is_some_and(|k| LINT_KEYS.contains(&k) || (keep_spec && k == "spec"));
                    if !wanted {
                        skipping = 1;
                        continue;
                    }
                }
            }
            let complete = match event {
                Event::StreamStart => None,
                Event::StreamEnd => return Ok(None),
                Event::DocumentStart(..) => {
                    doc_line = Some(self.base_lines + span.start.line());
                    if self.lint_only {
                        let start = (self.base + span.start.byte_offset().unwrap_or(0))
                            .min(self.text.len());
                        let end = document_extent(self.text, start);
                        keep_spec = needs_spec(&self.text[start..end]);
                    }
                    None
                }
                Event::DocumentEnd => {
                    let index = self.index;
                    self.index += 1;
                    let line = root
                        .as_ref()
                        .map(|r| r.line)
                        .or(doc_line)
                        .unwrap_or(self.base_lines + span.start.line());
                    let root = root.filter(|r| r.value != Value::Null);
                    return Ok(Some(Document { index, line, root }));
                }
                Event::Alias(id) => {
                    let Some(target) = anchors.get(&id) else {
                        return Err(self.error_at(&span, "alias to an unknown anchor"));
                    };
                    let size = count_nodes(target);
                    if size > self.alias_budget {
                        return Err(self.error_at(
                            &span,
                            "aliases expand to too many nodes (refusing a \"billion laughs\" document)",
                        ));
                    }
                    self.alias_budget -= size;
                    let mut copy = target.clone();
                    copy.shared = true;
                    Some(copy)
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let tag = tag
                        .as_ref()
                        .and_then(|t| t.core_suffix().map(str::to_owned));
                    let value = resolve_scalar(&text, style, tag.as_deref());
                    let mut node = self.node(value, &span);
                    node.scalar_style = Some(style);
                    node.shared = anchor != 0;
                    if anchor != 0 {
                        anchors.insert(anchor, node.clone());
                    }
                    Some(node)
                }
                Event::SequenceStart(style, anchor, _) => {
                    let mut node = self.node(Value::Null, &span);
                    node.flow = style == StructureStyle::Flow;
                    node.shared = anchor != 0;
                    stack.push(Frame::Seq(node, anchor, Vec::new()));
                    None
                }
                Event::MappingStart(style, anchor, _) => {
                    let mut node = self.node(Value::Null, &span);
                    node.flow = style == StructureStyle::Flow;
                    node.shared = anchor != 0;
                    stack.push(Frame::Map(node, anchor, Vec::new(), None));
                    None
                }
                Event::SequenceEnd => match stack.pop() {
                    Some(Frame::Seq(node, anchor, items)) => {
                        Some(self.finish(node, anchor, Value::Seq(items), &span, &mut anchors))
                    }
                    _ => return Err(self.error_at(&span, "unbalanced sequence end")),
                },
                Event::MappingEnd => match stack.pop() {
                    Some(Frame::Map(mut node, anchor, entries, _)) => {
                        let entries = merge_keys(entries, &mut node);
                        Some(self.finish(node, anchor, Value::Map(entries), &span, &mut anchors))
                    }
                    _ => return Err(self.error_at(&span, "unbalanced mapping end")),
                },
                _ => None,
            };
            let Some(node) = complete else { continue };
            match stack.last_mut() {
                None => root = Some(node),
                Some(Frame::Seq(_, _, items)) => items.push(node),
                Some(Frame::Map(_, _, entries, pending)) => match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => entries.push((key, node)),
                },
            }
        }
    }

    fn node(&self, value: Value, span: &Span) -> Node {
        let start = span.start.byte_offset().unwrap_or(0);
        let end = span.end.byte_offset().unwrap_or(start).max(start);
        Node {
            value,
            span: self.base + start..self.base + end,
            line: self.base_lines + span.start.line(),
            col: span.start.col(),
            flow: false,
            scalar_style: None,
            shared: false,
            merged: false,
        }
    }

    /// Closes a collection: its span runs to the end event, and an anchored one is recorded.
    fn finish(
        &self,
        mut node: Node,
        anchor: usize,
        value: Value,
        end: &Span,
        anchors: &mut HashMap<usize, Node>,
    ) -> Node {
        node.value = value;
        let end = if node.flow {
            end.end.byte_offset()
        } else {
            end.start.byte_offset()
        };
        node.span.end = end
            .map_or(node.span.end, |e| self.base + e)
            .clamp(node.span.start, self.text.len());
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        node
    }

    fn error_at(&self, span: &Span, message: &str) -> SyntaxError {
        SyntaxError {
            line: self.base_lines + span.start.line(),
            col: span.start.col() + 1,
            message: message.to_owned(),
        }
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// YAML merge keys (`<<: *base` or `<<: [*a, *b]`), as go-yaml v2 supports them: the merged
/// mapping's entries fill in keys the mapping does not set itself.
fn merge_keys(entries: Vec<(Node, Node)>, node: &mut Node) -> Vec<(Node, Node)> {
    let is_merge =
        |k: &Node| k.scalar_style == Some(ScalarStyle::Plain) && k.as_str() == Some("<<");
    if !entries.iter().any(|(k, _)| is_merge(k)) {
        return entries;
    }
    node.merged = true;
    let mut own: Vec<(Node, Node)> = Vec::new();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in entries {
        if is_merge(&k) {
            let sources: Vec<Node> = match v.value {
                Value::Map(_) => vec![v],
                Value::Seq(items) => items,
                _ => Vec::new(),
            };
            for source in sources {
                if let Value::Map(src) = source.value {
                    for (sk, sv) in src {
                        merged.push((sk, sv));
                    }
                }
            }
        } else {
            own.push((k, v));
        }
    }
    for (k, v) in merged {
        let key = k.key_str().map(str::to_owned);
        let taken = own
            .iter()
            .any(|(ok, _)| ok.key_str().map(str::to_owned) == key);
        if !taken {
            own.push((k, v));
        }
    }
    own
}

/// Whether `text`, written as a plain scalar, reads back as the string `text` (not a number,
/// boolean or null): what `translate` needs to write a mapping key unquoted.
pub(crate) fn plain_reads_as_string(text: &str) -> bool {
    !text.is_empty()
        && matches!(
            resolve_scalar(text, ScalarStyle::Plain, None),
            Value::Str(_)
        )
}

/// Types a scalar the way go-yaml v2 does (sigs.k8s.io/yaml, used by kubectl, Helm and
/// Argo CD): only plain scalars are typed; quoted and block scalars are strings.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::Str(text.to_owned()),
        Some("null") => return Value::Null,
        Some("bool") => {
            if let Some(b) = yaml11_bool(text) {
                return Value::Bool(b);
            }
        }
        Some("int") | Some("float") => {
            if let Some(v) = yaml11_number(text) {
                return v;
            }
        }
        _ => {}
    }
    if style != ScalarStyle::Plain || tag.is_some() {
        return Value::Str(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        _ => {}
    }
    if let Some(b) = yaml11_bool(text) {
        return Value::Bool(b);
    }
    let first = text.as_bytes()[0];
    if matches!(first, b'+' | b'-' | b'.' | b'0'..=b'9') {
        if let Some(v) = yaml11_number(text) {
            return v;
        }
    }
    Value::Str(text.to_owned())
}

fn yaml11_bool(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            Some(false)
        }
        _ => None,
    }
}

/// go-yaml v2 `resolve`: `_` is dropped, then Go's `ParseInt(s, 0, 64)` (decimal, `0x`,
/// `0o`, `0b`, leading-`0` octal), then `ParseUint`, then a float pattern and `.inf`/`.nan`.
fn yaml11_number(text: &str) -> Option<Value> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Value::Float(f64::INFINITY))
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Value::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Value::Float(f64::NAN)),
        _ => {}
    }
    let plain: String = text.chars().filter(|c| *c != '_').collect();
    if let Some(v) = go_parse_int(&plain) {
        return Some(v);
    }
    if is_yaml11_float(&plain) {
        return plain.parse::<f64>().ok().map(Value::Float);
    }
    None
}

fn go_parse_int(s: &str) -> Option<Value> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, body) = if let Some(rest) = digits.strip_prefix("0x").or(digits.strip_prefix("0X"))
    {
        (16, rest)
    } else if let Some(rest) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        (2, rest)
    } else if let Some(rest) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        (8, rest)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(body, radix).ok()?;
    if negative {
        let v = i128::try_from(magnitude).ok().map(|m| -m)?;
        i64::try_from(v).ok().map(Value::Int)
    } else if let Ok(v) = i64::try_from(magnitude) {
        Some(Value::Int(v))
    } else {
        u64::try_from(magnitude).ok().map(Value::UInt)
    }
}

/// go-yaml v2's float pattern: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml11_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(b, &mut i) == 0 {
            return false;
        }
    } else {
        if digits(b, &mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(b, &mut i);
        }
    }
    exponent(b, &mut i) && i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<Document> {
        Documents::new(text)
            .collect::<Result<_, _>>()
            .expect("parses")
    }

    #[test]
    fn scalars_are_typed_like_go_yaml_v2() {
        let d = docs("a: 5\nb: '5'\nc: yes\nd: on\ne: 0x1f\nf: 017\ng: 1.5\nh: ~\ni:\nj: 2024-01-01\nk: 1_000\nl: -5\nm: .inf\nnn: \"true\"\no: !!str 7\np: 18446744073709551615\nq: 5e3\nr: PreSync\n");
        let root = docs_root(&d[0]);
        let get = |k: &str| root.get(k).expect(k).value.clone();
        assert_eq!(get("a"), Value::Int(5));
        assert_eq!(get("b"), Value::Str("5".into()));
        assert_eq!(get("c"), Value::Bool(true));
        assert_eq!(get("d"), Value::Bool(true));
        assert_eq!(get("e"), Value::Int(31));
        assert_eq!(get("f"), Value::Int(15));
        assert_eq!(get("g"), Value::Float(1.5));
        assert_eq!(get("h"), Value::Null);
        assert_eq!(get("i"), Value::Null);
        assert_eq!(get("j"), Value::Str("2024-01-01".into()));
        assert_eq!(get("k"), Value::Int(1000));
        assert_eq!(get("l"), Value::Int(-5));
        assert_eq!(get("m"), Value::Float(f64::INFINITY));
        assert_eq!(get("nn"), Value::Str("true".into()));
        // YAML 1.1: even the key `y` is a boolean.
        assert_eq!(docs_root(&docs("y: 1\n")[0]).get("y"), None);
        assert_eq!(get("o"), Value::Str("7".into()));
        assert_eq!(get("p"), Value::UInt(u64::MAX));
        assert_eq!(get("q"), Value::Float(5000.0));
        assert_eq!(get("r"), Value::Str("PreSync".into()));
    }

    fn docs_root(d: &Document) -> &Node {
        d.root.as_ref().expect("a root")
    }

    #[test]
    fn documents_lines_and_empties() {
        let text = "# lead\n---\na: 1\n---\n---\n# only a comment\n---\n- x\n...\n---\nb: 2\n";
        let d = docs(text);
        let summary: Vec<(usize, usize, bool)> = d
            .iter()
            .map(|d| (d.index, d.line, d.root.is_some()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, 3, true),
                (1, 4, false),
                (2, 5, false),
                (3, 8, true),
                (4, 11, true)
            ]
        );
    }

    #[test]
    fn spans_point_at_the_text() {
        let text = "metadata:\n  annotations:\n    a: \"q\"\n  labels: {x: y}\n";
        let d = docs(text);
        let root = docs_root(&d[0]);
        let ann = root.get("metadata").unwrap().get("annotations").unwrap();
        assert_eq!(ann.col, 4);
        assert_eq!(&text[ann.get("a").unwrap().span.clone()], "\"q\"");
        let labels = root.get("metadata").unwrap().get("labels").unwrap();
        assert!(labels.flow);
        assert_eq!(&text[labels.span.clone()], "{x: y}");
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let d = docs("base: &b {x: 1, z: 2}\nother:\n  <<: *b\n  z: 3\n");
        let root = docs_root(&d[0]);
        let other = root.get("other").unwrap();
        assert!(other.merged);
        assert_eq!(other.get("x").unwrap().value, Value::Int(1));
        assert_eq!(other.get("z").unwrap().value, Value::Int(3));
        assert!(root.get("base").unwrap().shared);
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in ['b', 'c', 'd', 'e', 'f', 'g', 'h'] {
            text.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = name;
        }
        let err = Documents::new(&text)
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(err.message.contains("too many nodes"), "{err}");
    }

    /// Found by `make fuzz-replay`: small bombs, each under a per-document limit, added up
    /// to 110 ms for 633 bytes. The budget is per stream now.
    #[test]
    fn alias_budget_is_per_stream() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n";
        // One document expands to ~1 100 nodes: fine alone.
        assert!(Documents::new(bomb).all(|d| d.is_ok()));
        let stream = vec![bomb; 20].join("---\n");
        let err = Documents::new(&stream)
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(err.message.contains("too many nodes"), "{err}");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let err = Documents::new("a: 1\n---\nb: [1, 2\nc: 3\n")
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(err.line >= 3, "{err}");
    }

    #[test]
    fn json_is_yaml() {
        let d = docs("{\"kind\": \"Job\", \"metadata\": {\"annotations\": {\"x\": \"1\"}}}\n");
        let root = docs_root(&d[0]);
        assert!(root.flow);
        assert_eq!(root.get("kind").unwrap().as_str(), Some("Job"));
    }

    /// Every document and error, as text (a NaN is not equal to itself).
    fn read_all(docs: Documents<'_>) -> Vec<String> {
        docs.map(|d| format!("{d:?}")).collect()
    }

    /// Streams read in pieces, between empty documents taken without the parser, read
    /// exactly as one parser of the whole stream reads them: the same documents, lines,
    /// spans and errors, in both modes.
    fn assert_pieces_read_as_whole(text: &str) {
        assert_eq!(
            read_all(Documents::new(text)),
            read_all(Documents::whole(text)),
            "translate mode:\n{text}"
        );
        let mut lint_whole = Documents::for_lint(text);
        lint_whole.split = false;
        assert_eq!(
            read_all(Documents::for_lint(text)),
            read_all(lint_whole),
            "lint mode:\n{text}"
        );
    }

    #[test]
    fn empty_documents_and_pieces_read_as_the_whole_stream() {
        let job = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n  annotations:\n    helm.sh/hook: pre-install\n";
        let mut cases: Vec<String> = vec![
            String::new(),
            "---".into(),
            "---\n".into(),
            "--- \n---  \n---".into(),
            "---\r\n---\r\n".into(),
            "---\n".repeat(50),
            format!("---\n---\n{job}---\n---\n---\n{job}"),
            format!("{job}---\n---\n---\n{job}---\n"),
            format!("# lead\n---\n---\n{job}...\n---\n---\n"),
            // Directives before a document: the piece before them cannot parse alone.
            format!("{job}...\n%YAML 1.2\n---\n---\n{job}"),
            "%YAML 1.2\n---\n---\na: 1\n".into(),
            "%TAG !e! tag:example.com,2000:\n---\n---\n!e!x a\n".into(),
            // Scalars running up to an empty document.
            "a: |\n  text\n\n---\n---\nb: 1\n".into(),
            "a: |+\n  text\n\n\n---\n---\n".into(),
            "--- |\nfoo\nbar\n---\n---\n".into(),
            "--- >\n folded\n text\n---\n".into(),
            "foo\nbar\n---\n---\n".into(),
            "a: \"open\n---\n---\n".into(),
            "a: 'open\n---\n---\n".into(),
            "a: [1,\n---\n---\n".into(),
            "{\"a\": 1,\n---\n---\n".into(),
            "a:\n  - x\n  - y\n---\n---\n- z\n".into(),
            "a: 1\nfoo\n---\n---\n".into(),
            // Anchors, aliases and the per-stream alias budget across pieces.
            "a: &x [1, 2]\nb: *x\n---\n---\nc: *x\n".into(),
            "a: &x 1\n---\n---\nb: &x 2\nc: *x\n".into(),
            // Line breaks: a lone `\r` is one too.
            "a: 1\r---\n---\r\nb: 2\r\n---\n---\n".into(),
            "a: 1\r\n\r\n---\r\n---\r\nb: [1,\r\n 2]\r\n".into(),
            // Not empty documents: content, a comment, a tag, a tab.
            "--- # c\n---\n--- a\n---\t\n---\n--- !!null\n---\n".into(),
            "---\n...\n---\n---\n".into(),
            "---\n--- \n...\n".into(),
            "---\n----\n---\n".into(),
            "---\n---\0\n".into(),
            "\u{feff}---\n---\n".into(),
            "---\nkind: [\n---\n---\n".into(),
            "---\n---\nkind: Job\nspec: {a: [1}\n---\n---\n".into(),
            "---\n---\n- a\n- b: c\n  d: e\n---\n".into(),
            format!("---\n{job}---\n---\n{}", "x: *nope\n"),
        ];
        // JSON documents, read without the parser when they stay in `JsonDocument`'s subset.
        let json = r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j0", "annotations": {"helm.sh/hook": "post-install"}}}"#;
        let json_cases = [
            json.to_owned(),
            format!("{json}\n"),
            format!("{json}\n---\n{json}\n---\n"),
            format!("---\n{json}\n---  \n{json}\n...\n---\n{json}\n"),
            format!("a: 1\n---\n{json}\n---\nb: [1, 2]\n---\n{json}"),
            // Every kind of value, nesting, blank lines inside, and lint's skipped values.
            "{\"kind\": \"Job\", \"spec\": {\"a\": [1, -2, 3.5, 1e3, -0, 0.5E-2, true, false, null, \"\", \"x y\"], \"b\": {}}, \"data\": [], \"status\": [[{\"x\": 1}]], \"n\": 5, \"f\": 1.0}\n---\n".into(),
            "{\"kind\": \"Job\", \"metadata\": {\"annotations\": {\"helm.sh/hook\": \"x\"}}, \"spec\": {\"a\": [1,\n  2]\n  }\n, \"data\": {\"k\": [\n]\n}}\n---\n".into(),
            "{\n  \"kind\": \"Job\",\n  \"spec\": {\n    \"x\": [\n      1,\n      {\"y\": null}\n    ]\n  },\n  \"data\": {\"a\": \"b\"}\n}\n---\n{\"kind\":   \"A\" , \"b\": 1 }  \n".into(),
            "{\"\": 1, \"a\": \"\", \"yes\": \"no\", \"0x1f\": 017, \"k\": 18446744073709551616}\n---\n".into(),
            // Outside the subset: left to the parser (which may accept or refuse them).
            "{\"a\":1}\n---\n{\"a\" : 1}\n---\n{\"a\": 01}\n---\n{\"a\": \"\\n\"}\n---\n{\"a\": +1}\n".into(),
            "{\"a\": 1,}\n---\n{\"a\": [1,]}\n---\n{\"a\": .5}\n---\n{\"a\": \"é\"}\n---\n{\"a\": 1} # c\n".into(),
            "{\"a\": 1}\n{\"b\": 2}\n---\n{\"a\":\t1}\n---\n{\"a\": 1}\r\n---\n{\"a\": yes}\n---\n[1, 2]\n".into(),
            "{\"a\": [1, 2}\n---\n{\"b\": 1}\n".into(),
            "{\"a\": 1}\n---\n{\"b\": {\"c\": \"unclosed}\n---\n{\"d\": 1}\n".into(),
            format!("{{\"k\": \"{}\"}}\n---\n{{\"{}\": 1}}\n", "x".repeat(5000), "k".repeat(1100)),
            format!("{}{}\n---\n", "{\"a\": ".repeat(70), "}".repeat(70)),
            format!("{}1{}\n---\n{json}\n", "{\"a\": [".repeat(40), "]}".repeat(40)),
        ];
        cases.extend(json_cases);
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n";
        cases.push([bomb; 20].join("---\n---\n"));
        cases.push([bomb; 5].join("---\n---\n"));
        for text in &cases {
            assert_pieces_read_as_whole(text);
        }
        // The fuzz corpus and the golden inputs, and each with empty documents around it.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["fuzz/corpus/lint", "tests/golden/inputs"] {
            let mut stack = vec![root.join(dir)];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else {
                        files.push(path);
                    }
                }
            }
        }
        assert!(files.len() > 10, "{files:?}");
        for path in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            assert_pieces_read_as_whole(&text);
            assert_pieces_read_as_whole(&format!("---\n---\n{text}\n---\n---\n{text}"));
        }
    }

    #[test]
    fn json_and_empty_documents_need_no_parser() {
        let json = r#"{"kind": "Job", "metadata": {"name": "j"}, "spec": {"a": [1]}}"#;
        let text = format!("{json}\n---\n---\n{json}\n---\n");
        let mut docs = Documents::for_lint(&text);
        let read: Vec<Document> = docs.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(read.len(), 4);
        assert!(docs.parser.is_none(), "a parser was opened");
        let root = read[0].root.as_ref().unwrap();
        assert_eq!(root.get("spec").unwrap().value, Value::Null);
        assert_eq!(read[3].line, 5);
    }

    #[test]
    fn lint_mode_builds_only_what_lint_reads() {
        let text = "kind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: [1, {x: 2}]\ndata: {a: b}\n---\nkind: Job\nmetadata:\n  annotations: {helm.sh/hook: pre-install}\nspec: {ttlSecondsAfterFinished: 0}\nstatus: {a: [1]}\n---\nkind: Job\nspec: &s {a: 1}\nmetadata: {name: *s}\n";
        let docs: Vec<Document> = Documents::for_lint(text).collect::<Result<_, _>>().unwrap();
        let plain = docs[0].root.as_ref().unwrap();
        assert_eq!(plain.get("spec").unwrap().value, Value::Null);
        assert_eq!(plain.get("data").unwrap().value, Value::Null);
        assert_eq!(
            plain.get("metadata").unwrap().get("name").unwrap().as_str(),
            Some("d")
        );
        let hook = docs[1].root.as_ref().unwrap();
        assert!(hook.get("spec").unwrap().is_map());
        assert_eq!(hook.get("status").unwrap().value, Value::Null);
        // Anchors keep the whole document, so aliases resolve.
        let anchored = docs[2].root.as_ref().unwrap();
        assert!(anchored
            .get("metadata")
            .unwrap()
            .get("name")
            .unwrap()
            .is_map());
        // Syntax errors inside skipped values are still found.
        assert!(Documents::for_lint("kind: A\nspec: {a: [1}\n").any(|d| d.is_err()));
        assert_eq!(document_extent("a: 1\n---\nb: 2\n", 0), 5);
        assert_eq!(document_extent("a: |\n  ---x\n---x: 1\n", 0), 20);
    }
}
