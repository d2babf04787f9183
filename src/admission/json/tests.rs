//! The reader on its own: strings, escapes, numbers, literals, skipping, depth, trailing input.

use super::*;

fn read_string(json: &str) -> Result<Cow<'_, str>> {
    let mut r = Reader::new(json);
    match r.value()? {
        Value::Str(s) => {
            r.end()?;
            Ok(s)
        }
        other => panic!("not a string: {other:?}"),
    }
}

fn number(json: &str) -> Result<Number> {
    let mut r = Reader::new(json);
    match r.value()? {
        Value::Number(n) => {
            r.end()?;
            Ok(n)
        }
        other => panic!("not a number: {other:?}"),
    }
}

fn skip(json: &str) -> Result<()> {
    let mut r = Reader::new(json);
    r.skip_value()?;
    r.end()
}

#[test]
fn plain_strings_are_borrowed() {
    for s in [
        "",
        "a",
        "hooks-lab",
        "exactly8",
        "more than eight bytes long",
        "é😀 ünï",
    ] {
        let json = format!("\"{s}\"");
        let got = read_string(&json).unwrap();
        assert!(matches!(got, Cow::Borrowed(_)), "{s}");
        assert_eq!(got, s);
    }
}

#[test]
fn escapes_are_decoded() {
    let cases = [
        (r#""\"\\\/\b\f\n\r\t""#, "\"\\/\u{8}\u{c}\n\r\t"),
        (r#""a\u0041b""#, "aAb"),
        (r#""\u00e9\u00E9""#, "éé"),
        (r#""\ud83d\ude00""#, "😀"),
        (r#""x\uD83D\uDE00y""#, "x😀y"),
        (r#""\u0000""#, "\0"),
        (
            r#""long run before the escape \n and after it too""#,
            "long run before the escape \n and after it too",
        ),
    ];
    for (json, want) in cases {
        let got = read_string(json).unwrap();
        assert!(matches!(got, Cow::Owned(_)), "{json}");
        assert_eq!(got, want, "{json}");
    }
}

#[test]
fn bad_strings_are_syntax_errors() {
    for json in [
        r#""\ud800""#,       // lone leading surrogate
        r#""\udc00""#,       // lone trailing surrogate
        r#""\ud800\u0041""#, // leading surrogate, then no trailing one
        r#""\ud800x""#,
        r#""\ud800\n""#,
        r#""\x""#,   // unknown escape
        r#""\u12""#, // short \u
        r#""\u12g4""#,
        "\"a\u{1}b\"", // control characters are not allowed raw
        "\"tab\there\"",
        "\"0123456789\n\"", // found by the 8-byte scan
        "\"unterminated",
        "\"unterminated\\",
        "\"",
    ] {
        let e = read_string(json).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Syntax, "{json:?}");
    }
}

#[test]
fn skipped_strings_need_only_well_formed_escapes() {
    // As serde_json's `ignore_str`: lone surrogates pass when the value is skipped.
    for json in [
        r#""\ud800""#,
        r#""\udc00x""#,
        r#""\ud800\u0041""#,
        r#""\/\b""#,
    ] {
        skip(json).unwrap();
    }
    for json in [r#""\x""#, r#""\u12""#, "\"a\u{1f}\"", "\"open"] {
        assert_eq!(
            skip(json).unwrap_err().kind(),
            ErrorKind::Syntax,
            "{json:?}"
        );
    }
}

#[test]
fn numbers_are_classified_like_serde_json() {
    use Number::*;
    let cases = [
        ("0", U64(0)),
        ("7", U64(7)),
        ("18446744073709551615", U64(u64::MAX)),
        ("18446744073709551616", F64(18446744073709551616.0)),
        ("-1", I64(-1)),
        ("-9223372036854775808", I64(i64::MIN)),
        ("-9223372036854775809", F64(-9223372036854775809.0)),
        ("-0", F64(-0.0)),
        ("1.5", F64(1.5)),
        ("-2.5e2", F64(-250.0)),
        ("1E+2", F64(100.0)),
        ("1e-2", F64(0.01)),
        ("0e999999999999", F64(0.0)),
        ("1e-400", F64(0.0)),
        ("1e308", F64(1e308)),
        ("123456789012345678901234567890", F64(1.2345678901234568e29)),
    ];
    for (json, want) in cases {
        let got = number(json).unwrap();
        assert_eq!(got, want, "{json}");
        // serde_json agrees, exactly.
        let serde: serde_json::Value = serde_json::from_str(json).unwrap();
        match got {
            U64(n) => assert_eq!(serde.as_u64(), Some(n), "{json}"),
            I64(n) => assert_eq!(serde.as_i64(), Some(n), "{json}"),
            F64(n) => {
                assert!(serde.is_f64(), "{json}");
                assert_eq!(
                    serde.as_f64().map(f64::to_bits),
                    Some(n.to_bits()),
                    "{json}"
                );
            }
        }
    }
}

#[test]
fn bad_and_overflowing_numbers_are_syntax_errors() {
    for json in [
        "01",
        "-01",
        "00",
        "-",
        "1.",
        "1.e5",
        "1e",
        "1e+",
        "1E-",
        "-a",
        "1e309",
        "-1e309",
        "1e99999999999",
        "1.7976931348623159e308",
    ] {
        let e = number(json).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Syntax, "{json}");
        assert!(
            serde_json::from_str::<serde_json::Value>(json).is_err(),
            "{json}"
        );
    }
    // Not numbers at all.
    for json in ["+1", ".5", "NaN", "Infinity"] {
        let e = Reader::new(json).value().map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Syntax, "{json}");
    }
    // A skipped number is checked for form only: huge exponents pass, bad forms do not.
    skip("1e999").unwrap();
    // `0x10` is the number 0 and then trailing input.
    assert!(skip("0x10").is_err());
    for json in ["01", "1.", "-", "1e+"] {
        assert!(skip(json).is_err(), "{json}");
    }
}

#[test]
fn literals() {
    let mut r = Reader::new(" true ");
    assert_eq!(r.value().unwrap(), Value::Bool(true));
    assert_eq!(Reader::new("false").value().unwrap(), Value::Bool(false));
    assert_eq!(Reader::new("null").value().unwrap(), Value::Null);
    for json in ["tru", "nul", "fals", "truE", "nil", "True"] {
        assert_eq!(
            Reader::new(json).value().unwrap_err().kind(),
            ErrorKind::Syntax,
            "{json}"
        );
    }
}

#[test]
fn skip_reads_nested_values_and_stops_after_one() {
    let json =
        r#"{"a":[1,{"b":[]},{},"x\"y",null,true,false,-0.5e3],"c":{"d":{"e":[[]]}}} ,"next""#;
    let mut r = Reader::new(json);
    r.skip_value().unwrap();
    assert_eq!(r.depth, 0);
    assert_eq!(r.peek(), Some(b','));
    for json in [
        "[1,]",
        "[1 2]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":}",
        "{1:2}",
        "[",
        "{",
        "[}",
        "{]",
        "{\"a\":1]",
        "[1}",
        "",
        "]",
        "{\"a\"",
        "[\"a\",",
    ] {
        assert_eq!(
            skip(json).unwrap_err().kind(),
            ErrorKind::Syntax,
            "{json:?}"
        );
    }
    for json in ["[]", "{}", " [ ] ", "[[],[[]],{}]", "{\"\":{\"\":[]}}"] {
        skip(json).unwrap();
    }
}

#[test]
fn skipped_values_nest_to_any_depth_without_recursion() {
    let nested =
        |n: usize, open: &str, close: &str| format!("{}{}", open.repeat(n), close.repeat(n));
    // serde_json's `ignore_value` has no depth limit, and neither has skipping: a deeply
    // nested field hookguard does not read must not make a review unreadable.
    for n in [127, 128, 129, 255, 256, 257, 1_000_000] {
        skip(&nested(n, "[", "]")).unwrap_or_else(|e| panic!("{n}: {e}"));
    }
    let objects = format!("{}1{}", "{\"a\":".repeat(300), "}".repeat(300));
    skip(&objects).unwrap();
    // Unbalanced at any depth is still an error (the spilled stack is checked too).
    for n in [127, 128, 129, 300] {
        let unbalanced = format!("{}{}", "[".repeat(n), "]".repeat(n - 1));
        assert_eq!(
            skip(&unbalanced).unwrap_err().kind(),
            ErrorKind::Syntax,
            "{n}"
        );
    }
}

#[test]
fn the_caller_s_own_nesting_is_limited() {
    // serde_json's limit on values it deserialises: 127 open containers pass, the 128th
    // fails.
    assert_eq!(MAX_DEPTH, 128);
    let open = "[".repeat(MAX_DEPTH);
    let mut r = Reader::new(&open);
    for _ in 0..MAX_DEPTH - 2 {
        r.begin_array().unwrap();
    }
    r.peek();
    r.begin_array().unwrap();
    assert_eq!(r.begin_array().unwrap_err().kind(), ErrorKind::TooDeep);
}

#[test]
fn mixed_brackets_must_match_in_skipped_values() {
    // The bit stack remembers the kind of every open container, also past the 128 levels
    // that fit in one word (spilled to the heap).
    const N: usize = 400;
    let mut json = String::new();
    for i in 0..N {
        json.push_str(if i % 3 == 0 { "{\"k\":" } else { "[" });
    }
    let mut close = String::new();
    for i in (0..N).rev() {
        close.push(if i % 3 == 0 { '}' } else { ']' });
    }
    skip(&format!("{json}0{close}")).unwrap();
    for at in [0, 1, 50, 127, 128, 129, 255, 256, 257, 271, N - 1] {
        let mut wrong: Vec<char> = close.chars().collect();
        wrong[at] = if wrong[at] == '}' { ']' } else { '}' };
        let wrong: String = wrong.into_iter().collect();
        assert!(skip(&format!("{json}0{wrong}")).is_err(), "{at}");
    }
}

#[test]
fn trailing_input_is_an_error() {
    skip(" {} \n\t\r").unwrap();
    for json in ["{} x", "{}{}", "1 2", "\"a\"\"b\"", "{}\u{a0}", "null\u{0}"] {
        assert_eq!(
            skip(json).unwrap_err().kind(),
            ErrorKind::Syntax,
            "{json:?}"
        );
    }
}

#[test]
fn errors_say_where() {
    let e = skip("{\"a\":\n  [1, 2,, 3]}").unwrap_err();
    assert_eq!(e.offset(), 14);
    assert_eq!(
        e.to_string(),
        "expected a value at line 2 column 9 (byte 14)"
    );
}

#[test]
fn objects_and_arrays_are_read_member_by_member() {
    let mut r = Reader::new(r#"{"a\u0062": [1, "x"], "c": {}}"#);
    assert_eq!(r.value().unwrap(), Value::Object);
    let mut obj = r.begin_object().unwrap();
    assert_eq!(obj.next_key(&mut r).unwrap().as_deref(), Some("ab"));
    r.colon().unwrap();
    assert_eq!(r.value().unwrap(), Value::Array);
    let mut arr = r.begin_array().unwrap();
    assert!(arr.next(&mut r).unwrap());
    assert_eq!(r.value().unwrap(), Value::Number(Number::U64(1)));
    assert!(arr.next(&mut r).unwrap());
    assert_eq!(r.value().unwrap(), Value::Str(Cow::Borrowed("x")));
    assert!(!arr.next(&mut r).unwrap());
    assert_eq!(obj.next_key(&mut r).unwrap().as_deref(), Some("c"));
    r.colon().unwrap();
    let v = r.value().unwrap();
    r.drain(&v).unwrap();
    assert_eq!(obj.next_key(&mut r).unwrap(), None);
    r.end().unwrap();
    assert_eq!(r.depth, 0);
    // Keys are read strictly, so a lone surrogate in a key is an error.
    let mut r = Reader::new(r#"{"\udc00": 1}"#);
    r.value().unwrap();
    let mut obj = r.begin_object().unwrap();
    assert!(obj.next_key(&mut r).is_err());
}
