//! The differential test: review-shaped documents from the captured fixtures, mutated at the
//! value level (types swapped, nulls, duplicated known and unknown fields, escapes and
//! unicode in keys and values, numbers of every shape, extra nesting) and at the byte level
//! (truncation, byte flips), read by both readers.

use super::*;
use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("fixture dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission");
    let mut out = Vec::new();
    walk(&root, &mut out);
    out.sort();
    assert!(out.len() >= 10, "fixtures missing: {out:?}");
    out
}

fn fixtures() -> Vec<Vec<u8>> {
    fixture_files()
        .iter()
        .map(|p| std::fs::read(p).expect("fixture"))
        .collect()
}

fn agree(body: &[u8]) -> Result<(), TestCaseError> {
    fast_matches_serde(body).map_err(|e| {
        TestCaseError::fail(format!(
            "readers disagree on {:?}:\n{e}",
            String::from_utf8_lossy(body)
        ))
    })
}

#[test]
fn every_fixture_reads_the_same_and_is_readable() {
    for path in fixture_files() {
        let body = std::fs::read(&path).expect("fixture");
        fast_matches_serde(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let request = Request::parse(&body).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        assert!(
            matches!(request.object, crate::admission::WireObject::Object(_)),
            "{}",
            path.display()
        );
    }
}

/// The fuzz target's seed inputs (odd, hand-made and found reviews).
#[test]
fn every_fuzz_corpus_input_reads_the_same() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/review");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let body = std::fs::read(&path).expect("corpus file");
        fast_matches_serde(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn every_prefix_and_every_deleted_byte_of_a_fixture() {
    for body in fixtures().iter().take(3) {
        for end in 0..body.len() {
            fast_matches_serde(&body[..end]).unwrap_or_else(|e| panic!("prefix {end}: {e}"));
        }
        for i in 0..body.len() {
            let mut b = body.clone();
            b.remove(i);
            fast_matches_serde(&b).unwrap_or_else(|e| panic!("without byte {i}: {e}"));
        }
    }
}

/// Hand-picked cases, each with the answer both readers must give.
#[test]
fn known_cases() {
    let review = |request: &str| {
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{request}}}"#
        )
    };
    let ok = r#"{"uid":"u","operation":"CREATE","object":{"kind":"Job"}}"#;
    let not_json = |e: &ReviewError| matches!(e, ReviewError::NotJson(_));
    let not_a_review = |e: &ReviewError| matches!(e, ReviewError::NotAReview(_));
    type Check = fn(&ReviewError) -> bool;
    let cases: Vec<(String, Option<Check>)> = vec![
        (review(ok), None),
        (format!(" \n{}\t", review(ok)), None),
        // A duplicated known field is an error at the key, before anything after it.
        (review(r#"{"uid":"u","uid":"#), Some(not_a_review)),
        (
            review(r#"{"uid":"u","operation":"CREATE","object":{"kind":"a","kind":"b"}}"#),
            Some(not_a_review),
        ),
        (
            review(
                r#"{"uid":"u","operation":"CREATE","object":{"metadata":{"labels":1,"labels":{}}}}"#,
            ),
            Some(not_a_review),
        ),
        // Duplicated unknown fields and map keys are fine; the later string wins in a map.
        (
            review(
                r#"{"uid":"u","operation":"CREATE","x":1,"x":2,"object":{"metadata":{"annotations":{"a":"1","a":"2","a":3}}}}"#,
            ),
            None,
        ),
        // Wrong types: strict in the envelope, absent in the object view.
        (review(r#"{"uid":5}"#), Some(not_a_review)),
        (review(r#"{"uid":"u","dryRun":"true"}"#), Some(not_a_review)),
        (
            review(r#"{"uid":"u","kind":{"group":null}}"#),
            Some(not_a_review),
        ),
        (review(r#"{"uid":"u","userInfo":"me"}"#), Some(not_a_review)),
        (
            review(
                r#"{"uid":"u","uid2":{"deep":[1,2,{"x":null}]},"operation":"CREATE","object":{"apiVersion":7,"kind":["Job"],"spec":{"template":[1],"containers":[1,{"name":2},{"name":"c"}],"ttlSecondsAfterFinished":1.5,"activeDeadlineSeconds":18446744073709551615}}}"#,
            ),
            None,
        ),
        // A type error wins over later broken JSON; broken JSON before it wins over it.
        (review(r#"{"uid":{"#), Some(not_a_review)),
        (review(r#"{"uid":01}"#), Some(not_json)),
        (review(r#"{"uid":1e400}"#), Some(not_json)),
        // Numbers read by the object view are range-checked, skipped ones are not.
        (
            review(
                r#"{"uid":"u","operation":"CREATE","object":{"spec":{"ttlSecondsAfterFinished":1e400}}}"#,
            ),
            Some(not_json),
        ),
        (
            review(r#"{"uid":"u","operation":"CREATE","object":{"spec":{"x":1e400}}}"#),
            None,
        ),
        // Strings read are surrogate-checked, skipped ones are not; keys always are.
        (
            review(r#"{"uid":"u","operation":"CREATE","object":{"kind":"\ud800"}}"#),
            Some(not_json),
        ),
        (
            review(r#"{"uid":"u","operation":"CREATE","object":{"status":"\ud800"}}"#),
            None,
        ),
        (
            review(r#"{"uid":"u","operation":"CREATE","object":{"kind":{"\ud800":1}}}"#),
            Some(not_json),
        ),
        (
            review(r#"{"uid":"u","operation":"CREATE","object":{"kind":{"a":"\ud800"}}}"#),
            None,
        ),
        (
            review(r#"{"uid":"u","operation":"CREATE","object":{"kind":["\ud800"]}}"#),
            None,
        ),
        (
            review(r#"{"uid":"u","operation":"CREATE","object":{"status":{"\ud800":1}}}"#),
            None,
        ),
        (
            review(r#"{"u\u0069d":"\u0075","operation":"CREATE","object":{}}"#),
            None,
        ),
        // Not a review at all.
        ("null".to_owned(), Some(not_a_review)),
        ("\"x\"".to_owned(), Some(not_a_review)),
        ("".to_owned(), Some(not_json)),
        ("{} {}".to_owned(), Some(not_json)),
        (review(ok) + "x", Some(not_json)),
        (
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}"#
                .to_owned(),
            Some(not_json),
        ),
    ];
    for (body, want) in cases {
        fast_matches_serde(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
        match (Request::parse(body.as_bytes()), want) {
            (Ok(_), None) => {}
            (Err((_, e)), Some(check)) if check(&e) => {}
            (got, _) => panic!("{body}: unexpected {got:?}"),
        }
    }
}

/// The two deliberate differences, and that the checker excludes nothing else.
#[test]
fn deliberate_differences_are_recognised() {
    let array_review = br#"["admission.k8s.io/v1","AdmissionReview",null]"#;
    assert!(matches!(
        Request::parse_with_serde(array_review),
        Err((_, ReviewError::MissingRequest))
    ));
    assert!(matches!(
        Request::parse(array_review),
        Err((_, ReviewError::NotAReview(_)))
    ));
    fast_matches_serde(array_review).unwrap();
    let gvk = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","kind":["batch","Job"],"object":{}}}"#;
    assert!(Request::parse_with_serde(gvk).is_ok());
    fast_matches_serde(gvk).unwrap();

    let deep = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","operation":"CREATE","object":{{}},"x":{}{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    // A skipped field nested deeper than serde_json's recursion limit: both readers accept it
    // (serde_json skips any depth), so a deep CRD field hookguard does not read is no reason
    // to refuse a review.
    assert!(Request::parse_with_serde(deep.as_bytes()).is_ok());
    assert!(Request::parse(deep.as_bytes()).is_ok());
    fast_matches_serde(deep.as_bytes()).unwrap();
    // Typed nesting (spec.template.spec...) hits serde_json's own limit at the same depth:
    // 2n + 3 (+ 1) open objects, so these reach 126 to 130.
    for n in [61, 62, 63] {
        for innermost in ["{}", r#"{"spec":{}}"#] {
            let chain = format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","operation":"CREATE","object":{}{innermost}{}}}}}"#,
                r#"{"spec":{"template":"#.repeat(n),
                "}}".repeat(n)
            );
            fast_matches_serde(chain.as_bytes()).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
    }
}

// ---- generated documents ----------------------------------------------------------------

/// A document as text pieces, able to hold what `serde_json::Value` cannot: duplicate keys,
/// raw (possibly invalid) scalars and escaped keys.
#[derive(Clone, Debug)]
enum J {
    Raw(String),
    Arr(Vec<J>),
    /// Keys as raw JSON string text, quotes included.
    Obj(Vec<(String, J)>),
}

fn from_value(v: &Value) -> J {
    match v {
        Value::Array(items) => J::Arr(items.iter().map(from_value).collect()),
        Value::Object(map) => J::Obj(map.iter().map(|(k, v)| (quote(k), from_value(v))).collect()),
        scalar => J::Raw(scalar.to_string()),
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "request",
    "uid",
    "name",
    "namespace",
    "operation",
    "userInfo",
    "username",
    "group",
    "object",
    "oldObject",
    "dryRun",
    "metadata",
    "spec",
    "annotations",
    "labels",
    "finalizers",
    "generateName",
    "deletionTimestamp",
    "creationTimestamp",
    "ttlSecondsAfterFinished",
    "activeDeadlineSeconds",
    "template",
    "restartPolicy",
    "securityContext",
    "containers",
    "initContainers",
    "privileged",
    "runAsUser",
    "runAsNonRoot",
    "managedFields",
    "status",
    "x",
    "",
    "é",
    "a\"b",
    "Kind",
    "uid ",
];

/// Raw scalar and small container texts, valid and not.
const SCALARS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "7",
    "1.5",
    "-2.5e2",
    "1e5",
    "1E+2",
    "-1e-5",
    "0.0",
    "1e-400",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "1e308",
    "1e309",
    "-1e400",
    "0e999999999999",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "123456789012345678901234567890",
    "184467440737095516150.5e-3",
    "2.5e-324",
    "01",
    "-",
    "1.",
    ".5",
    "+1",
    "1e",
    "1e+",
    "0x10",
    "-01",
    "1.e5",
    "NaN",
    "true",
    "false",
    "null",
    "tru",
    "nul",
    "fals",
    "\"\"",
    "\"x\"",
    "\"CREATE\"",
    "\"UPDATE\"",
    "\"DELETE\"",
    "\"CONNECT\"",
    "\"create\"",
    "\"admission.k8s.io/v1\"",
    "\"AdmissionReview\"",
    "\"Job\"",
    "\"batch/v1\"",
    "\"batch\"",
    "\"Pod\"",
    "\"v1\"",
    "\"PreSync\"",
    "\"2026-11-21T14:16:33Z\"",
    r#""\ud800""#,
    r#""\udc00""#,
    r#""\ud83d\ude00""#,
    r#""\u0041""#,
    r#""a\nb""#,
    r#""\x""#,
    r#""\u12""#,
    r#""\ud800\u0041""#,
    r#""t\tab\"q\\\/""#,
    "\"\u{1}\"",
    "\"é😀\u{200b}\"",
    "[]",
    "{}",
    "[1,2]",
    "[\"x\",null]",
    "{\"a\":null}",
    "[\"\\ud800\"]",
    "{\"\\ud800\":1}",
    "{\"a\":\"\\ud800\"}",
    "[[[]]]",
    "{\"kind\":\"Job\"}",
    "[1,]",
    "{\"a\":1,}",
    "[}",
];

/// A string's raw text with random characters written as `\u` escapes.
fn escaped(s: &str, rng: &mut Rng) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if rng.chance(30) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            let q = quote(&c.to_string());
            out.push_str(&q[1..q.len() - 1]);
        }
    }
    out.push('"');
    out
}

fn random_key(rng: &mut Rng) -> String {
    let key = *rng.pick(KEYS);
    if rng.chance(20) {
        escaped(key, rng)
    } else {
        quote(key)
    }
}

fn random_scalar(rng: &mut Rng) -> J {
    J::Raw((*rng.pick(SCALARS)).to_owned())
}

/// A node to mutate: the walk prefers keys the readers know, to reach the object view.
fn pick_node<'a>(j: &'a mut J, rng: &mut Rng) -> &'a mut J {
    let mut path = Vec::new();
    let mut node: &J = j;
    while rng.chance(85) {
        match node {
            J::Obj(members) if !members.is_empty() => {
                let known: Vec<usize> = (0..members.len())
                    .filter(|&i| KEYS[..32].iter().any(|k| quote(k) == members[i].0))
                    .collect();
                let i = if !known.is_empty() && rng.chance(80) {
                    *rng.pick(&known)
                } else {
                    rng.below(members.len())
                };
                path.push(i);
                node = &members[i].1;
            }
            J::Arr(items) if !items.is_empty() => {
                let i = rng.below(items.len());
                path.push(i);
                node = &items[i];
            }
            _ => break,
        }
    }
    let mut node = j;
    for i in path {
        node = match node {
            J::Obj(members) => &mut members[i].1,
            J::Arr(items) => &mut items[i],
            raw => raw,
        };
    }
    node
}

/// Paths to the values the readers treat specially, for mutations aimed at them.
const PATHS: &[&[&str]] = &[
    &["request"],
    &["request", "uid"],
    &["request", "kind"],
    &["request", "kind", "group"],
    &["request", "userInfo"],
    &["request", "userInfo", "username"],
    &["request", "operation"],
    &["request", "dryRun"],
    &["request", "object"],
    &["request", "oldObject"],
    &["request", "object", "kind"],
    &["request", "object", "metadata"],
    &["request", "object", "metadata", "annotations"],
    &["request", "object", "metadata", "labels"],
    &["request", "object", "metadata", "finalizers"],
    &["request", "object", "metadata", "managedFields"],
    &["request", "object", "spec"],
    &["request", "object", "spec", "template"],
    &["request", "object", "spec", "template", "spec"],
    &[
        "request",
        "object",
        "spec",
        "template",
        "spec",
        "containers",
    ],
    &["request", "object", "spec", "containers"],
    &["request", "object", "spec", "securityContext"],
];

/// The value at `path`, or at the longest prefix of it that exists.
fn at_path<'a>(node: &'a mut J, path: &[&str]) -> &'a mut J {
    // Indices first, then one mutable walk (the borrow checker cannot follow a conditional
    // reborrow in a loop).
    let mut indices = Vec::new();
    let mut probe: &J = node;
    for key in path {
        let quoted = quote(key);
        let J::Obj(members) = probe else { break };
        let Some(i) = members.iter().position(|(k, _)| *k == quoted) else {
            break;
        };
        indices.push(i);
        probe = &members[i].1;
    }
    let mut node = node;
    for i in indices {
        node = match node {
            J::Obj(members) => &mut members[i].1,
            other => other,
        };
    }
    node
}

fn mutate(doc: &mut J, rng: &mut Rng) {
    let node = if rng.chance(40) {
        let path = *rng.pick(PATHS);
        at_path(doc, path)
    } else {
        pick_node(doc, rng)
    };
    match rng.below(10) {
        0 => *node = random_scalar(rng),
        1 => *node = J::Raw("null".into()),
        2 => {
            // Type swap between containers, or wrapping.
            *node = match rng.below(4) {
                0 => J::Arr(vec![node.clone()]),
                1 => J::Obj(vec![(random_key(rng), node.clone())]),
                2 => J::Arr(vec![]),
                _ => J::Obj(vec![]),
            }
        }
        3 | 4 => {
            if let J::Obj(members) = node {
                // A known or unknown key, maybe one already there: duplicates.
                let key = if !members.is_empty() && rng.chance(50) {
                    members[rng.below(members.len())].0.clone()
                } else {
                    random_key(rng)
                };
                let value = if !members.is_empty() && rng.chance(40) {
                    members[rng.below(members.len())].1.clone()
                } else {
                    random_scalar(rng)
                };
                let at = rng.below(members.len() + 1);
                members.insert(at, (key, value));
            } else if let J::Arr(items) = node {
                let value = if !items.is_empty() && rng.chance(50) {
                    items[rng.below(items.len())].clone()
                } else {
                    random_scalar(rng)
                };
                items.insert(rng.below(items.len() + 1), value);
            } else {
                *node = random_scalar(rng);
            }
        }
        5 => {
            // Escapes in keys and string values.
            match node {
                J::Obj(members) if !members.is_empty() => {
                    let i = rng.below(members.len());
                    if let Ok(key) = serde_json::from_str::<String>(&members[i].0) {
                        members[i].0 = escaped(&key, rng);
                    }
                }
                J::Raw(text) => {
                    if let Ok(s) = serde_json::from_str::<String>(text) {
                        const EXTRA: [&str; 8] =
                            ["", "é", "😀", "\n", "\u{1}", "\"", "\\", "\u{ffff}"];
                        let extra = *rng.pick(&EXTRA);
                        *text = escaped(&format!("{s}{extra}"), rng);
                    }
                }
                _ => {}
            }
        }
        6 => {
            // Extra nesting, sometimes past serde_json's recursion limit (which applies only
            // to values it deserialises).
            let n = *rng.pick(&[1usize, 2, 5, 60, 110, 120, 126, 127, 128, 140]);
            let object = rng.chance(50);
            for _ in 0..n {
                *node = if object {
                    J::Obj(vec![(quote("a"), node.clone())])
                } else {
                    J::Arr(vec![node.clone()])
                };
            }
        }
        7 => match node {
            J::Obj(members) if !members.is_empty() => {
                members.remove(rng.below(members.len()));
            }
            J::Arr(items) if !items.is_empty() => {
                items.remove(rng.below(items.len()));
            }
            _ => {}
        },
        8 => *node = J::Raw((*rng.pick(&SCALARS[..27])).to_owned()),
        _ => {
            // A string where a number or object is expected, and so on.
            *node = J::Raw(quote(&rng.next().to_string()));
        }
    }
}

fn render(j: &J, rng: &mut Rng, spaced: bool, out: &mut String) {
    let ws = |rng: &mut Rng, out: &mut String| {
        if spaced && rng.chance(20) {
            const SPACES: [&str; 5] = [" ", "\n", "\t", "\r\n  ", "  "];
            let space = *rng.pick::<&str>(&SPACES);
            out.push_str(space);
        }
    };
    match j {
        J::Raw(text) => out.push_str(text),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                render(item, rng, spaced, out);
                ws(rng, out);
            }
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                out.push_str(key);
                ws(rng, out);
                out.push(':');
                ws(rng, out);
                render(value, rng, spaced, out);
                ws(rng, out);
            }
            out.push('}');
        }
    }
}

const BYTES: &[u8] = b"\"\\[]{},:0-e.+ \n\x01\xffntu9}";

fn generated(fixture: usize, seed: u64, mutations: usize, bytes: u8) -> Vec<u8> {
    thread_local! {
        static DOCS: Vec<J> = fixtures()
            .iter()
            .map(|b| from_value(&serde_json::from_slice(b).expect("fixture JSON")))
            .collect();
    }
    let mut rng = Rng(seed | 1);
    let mut doc = DOCS.with(|docs| docs[fixture % docs.len()].clone());
    for _ in 0..mutations {
        mutate(&mut doc, &mut rng);
    }
    let mut text = String::new();
    let spaced = rng.chance(30);
    render(&doc, &mut rng, spaced, &mut text);
    let mut body = text.into_bytes();
    // Byte-level damage: `bytes` is 0 most of the time.
    for _ in 0..bytes % 4 {
        if body.is_empty() {
            break;
        }
        let i = rng.below(body.len());
        match rng.below(3) {
            0 => body[i] = *rng.pick(BYTES),
            1 => body[i] = rng.next() as u8,
            _ => {
                body.remove(i);
            }
        }
    }
    if bytes >= 200 {
        let end = rng.below(body.len() + 1);
        body.truncate(end);
    } else if bytes >= 100 {
        // A bracket of the other kind, somewhere (most are in skipped values).
        let brackets: Vec<usize> = (0..body.len())
            .filter(|&i| b"[]{}".contains(&body[i]))
            .collect();
        if !brackets.is_empty() {
            let i = *rng.pick(&brackets);
            body[i] = match body[i] {
                b'[' => b'{',
                b'{' => b'[',
                b']' => b'}',
                _ => b']',
            };
        }
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn fast_reader_agrees_with_serde(
        fixture in 0usize..64,
        seed in any::<u64>(),
        mutations in 0usize..8,
        bytes in prop_oneof![6 => Just(0u8), 2 => 1u8..4, 1 => 100u8..200, 2 => 200u8..=255],
    ) {
        let body = generated(fixture, seed, mutations, bytes);
        agree(&body)?;
    }

    #[test]
    fn fast_reader_agrees_with_serde_on_any_bytes(
        body in prop::collection::vec(prop::sample::select(BYTES), 0..64),
    ) {
        agree(&body)?;
    }
}

/// The generator does reach the interesting answers (else the property would prove little).
#[test]
fn generated_documents_cover_every_outcome() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..3000u64 {
        let body = generated(
            seed as usize,
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            (seed % 8) as usize,
            (seed % 7) as u8,
        );
        let outcome = match Request::parse_traced(&body) {
            Ok(r) => match r.object {
                crate::admission::WireObject::Object(_) => "object",
                crate::admission::WireObject::Absent => "absent",
                crate::admission::WireObject::NotAnObject(_) => "not an object",
            },
            Err(f) => match (f.error, f.json) {
                (_, Some((ErrorKind::TooDeep, _))) => "too deep",
                (_, Some((ErrorKind::ArrayForStruct, _))) => "array for struct",
                (ReviewError::NotJson(_), _) => "not json",
                (ReviewError::NotAReview(m), _) if m.contains("duplicate") => "duplicate",
                (ReviewError::NotAReview(_), _) => "not a review",
                _ => "other review error",
            },
        };
        seen.insert(outcome);
    }
    let want = [
        "object",
        "absent",
        "not an object",
        "not json",
        "duplicate",
        "not a review",
        "other review error",
    ];
    for w in want {
        assert!(seen.contains(w), "never generated: {w} (saw {seen:?})");
    }
}
