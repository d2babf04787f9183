//! Writing JSON by hand: strings, integers, timestamps and values pushed straight into a byte
//! buffer. Used by the tracing formatter (`cli::logging::JsonLines`), the decision log
//! (`server::decision_log`), the AdmissionReview answer and its JSON Patch — all written once
//! per admission request, so these run on the hot path: no `core::fmt`, no per-piece dynamic
//! dispatch. `special_byte`, the scan for where a string's plain run ends, also serves the
//! admission reader.

/// Starts a log line: `{"timestamp":"…","level":"…"`. The fields follow as `,"name":value`,
/// then `close_line`: the shape of tracing-subscriber's `json().flatten_event(true)`, which
/// every JSON log line hookguard writes has.
pub fn open_line(out: &mut Vec<u8>, now: time::OffsetDateTime, level: &str) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    push_timestamp(out, now);
    out.extend_from_slice(b"\",\"level\":");
    push_string(out, level);
}

/// Ends a log line started by `open_line`: `,"target":"…"}` and the newline.
pub fn close_line(out: &mut Vec<u8>, target: &str) {
    out.extend_from_slice(b",\"target\":");
    push_string(out, target);
    out.extend_from_slice(b"}\n");
}

/// `s` as a JSON string, quotes included.
pub fn push_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_escaped(out, s);
    out.push(b'"');
}

/// `s` as the inside of a JSON string.
pub fn push_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    loop {
        let i = special_byte(bytes, start);
        out.extend_from_slice(&bytes[start..i]);
        let Some(&b) = bytes.get(i) else { return };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        // Only ASCII bytes are special, so every cut is on a char boundary.
        start = i + 1;
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The first index from `start` holding `"`, `\` or a control byte (or the end): where a JSON
/// string's plain run ends, for the writers here (what to escape) and for the admission
/// reader (where a string ends or has an escape). Strings are most of a review and of a log
/// line, so this loop is most of their time: sixteen bytes at a time with SSE2 (part of every
/// x86_64 CPU, through `safe_arch`'s safe wrappers), so that the usual string (a review's
/// average ~10 bytes) is settled by one block; then eight bytes at a time.
#[inline(always)]
pub fn special_byte(bytes: &[u8], start: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = start;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(block) = bytes.get(at..at.wrapping_add(16)) {
        use safe_arch::*;
        // `get` of sixteen bytes yields sixteen bytes, so the fallback is never taken.
        let v = load_unaligned_m128i(block.try_into().unwrap_or(&[0; 16]));
        let quote = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'"' as i8));
        let backslash = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'\\' as i8));
        // Unsigned b <= 0x1f is max(b, 0x1f) == 0x1f.
        let control = cmp_eq_mask_i8_m128i(
            max_u8_m128i(v, set_splat_i8_m128i(0x1f)),
            set_splat_i8_m128i(0x1f),
        );
        let found = move_mask_i8_m128i(bitor_m128i(bitor_m128i(quote, backslash), control));
        if found != 0 {
            return at + found.trailing_zeros() as usize;
        }
        at += 16;
    }
    while let Some(chunk) = bytes.get(at..at.wrapping_add(8)) {
        // `get` of eight bytes yields eight bytes, so the fallback is never taken.
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // "Has a byte less than n" tests: b ^ 0x02 < 0x21 is exactly b < 0x20 or b == '"',
        // and b ^ '\\' < 1 is b == '\\'. A borrow can flag bytes above a real match, never
        // below one, so the lowest flag is always a real match.
        let a = w ^ (ONES * 0x02);
        let b = w ^ (ONES * u64::from(b'\\'));
        let found = ((a.wrapping_sub(ONES * 0x21) & !a) | (b.wrapping_sub(ONES) & !b)) & HIGH;
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return at;
        }
        at += 1;
    }
    at.min(bytes.len())
}

/// `value` as compact JSON: what serde_json writes, except that the control characters
/// U+0008 and U+000C are escaped as `\u0008` and `\u000c` (serde_json: `\b`, `\f`), which
/// every JSON reader reads as the same string.
pub fn push_value(out: &mut Vec<u8>, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => push_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_string(out, key);
                out.push(b':');
                push_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// `n` in decimal, left-padded with zeros to at least `width` digits.
pub fn push_digits(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    while n > 0 || digits.len() - i < width.max(1) {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[i..]);
}

/// RFC 3339 in UTC with microseconds: `2026-11-21T16:00:00.123456Z`.
pub fn push_timestamp(out: &mut Vec<u8>, t: time::OffsetDateTime) {
    let t = t.to_offset(time::UtcOffset::UTC);
    // The calendar date of a Unix second is computed once per second and thread: a
    // per-request log line otherwise spends most of its timestamp's cost on it.
    thread_local! {
        static LAST_SECOND: std::cell::Cell<(i64, [u8; 19])> = const { std::cell::Cell::new((i64::MIN, [0; 19])) };
    }
    let second = t.unix_timestamp();
    let (cached, text) = LAST_SECOND.get();
    if cached == second {
        out.extend_from_slice(&text);
    } else {
        let start = out.len();
        push_date_and_second(out, t);
        if let Ok(text) = out[start..].try_into() {
            LAST_SECOND.set((second, text));
        }
    }
    out.push(b'.');
    push_digits(out, t.microsecond().into(), 6);
    out.push(b'Z');
}

/// `2026-11-21T16:00:00` (19 bytes for years 0–9999, which is all `push_timestamp` writes).
fn push_date_and_second(out: &mut Vec<u8>, t: time::OffsetDateTime) {
    push_digits(out, t.year().clamp(0, 9999) as u64, 4);
    out.push(b'-');
    push_digits(out, u8::from(t.month()).into(), 2);
    out.push(b'-');
    push_digits(out, t.day().into(), 2);
    out.push(b'T');
    push_digits(out, t.hour().into(), 2);
    out.push(b':');
    push_digits(out, t.minute().into(), 2);
    out.push(b':');
    push_digits(out, t.second().into(), 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        push_escaped(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    /// The word-at-a-time scan against the byte-by-byte definition: every byte value at every
    /// offset of every start in buffers of up to 40 bytes (so every chunk boundary and tail).
    #[test]
    fn special_byte_finds_the_first_special_byte_from_any_start() {
        let reference = |bytes: &[u8], start: usize| {
            (start..bytes.len())
                .find(|&i| matches!(bytes[i], b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(bytes.len())
        };
        for len in 0..=40 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    for start in 0..=len + 1 {
                        assert_eq!(
                            special_byte(&bytes, start),
                            reference(&bytes, start.min(len)),
                            "len {len}, byte {b:#x} at {at}, start {start}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn escaping_round_trips_through_a_json_parser() {
        let long = "x".repeat(37);
        for s in [
            "plain",
            "quote \" and backslash \\",
            "lines\nand\ttabs\r",
            "control \u{1} \u{1f} \u{7f}",
            "unicode é ✓ 𝄞 and more unicode ü",
            "",
            "\"",
            "12345678\"",
            "1234567\u{0}",
            "\u{ff}\u{80}é\"\\",
            &long,
        ] {
            let json = format!("\"{}\"", escaped(s));
            let back: String = serde_json::from_str(&json).unwrap();
            assert_eq!(back, s, "{json}");
        }
        assert_eq!(escaped("a\u{1}b"), "a\\u0001b");
        assert_eq!(escaped("é\u{1f}"), "é\\u001f");
    }

    #[test]
    fn every_byte_position_in_a_word_is_checked() {
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
            for pos in 0..20 {
                let mut s: String = "a".repeat(20);
                s.replace_range(pos..pos + 1, &special.to_string());
                let json = format!("\"{}\"", escaped(&s));
                let back: String = serde_json::from_str(&json).unwrap();
                assert_eq!(back, s);
            }
        }
        // Bytes >= 0x80 next to special ones (multi-byte UTF-8 must not look like control
        // characters or hide them).
        let s = "ééééé\u{1}éééé\"";
        let back: String = serde_json::from_str(&format!("\"{}\"", escaped(s))).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn values_are_written_as_serde_writes_them() {
        let value = serde_json::json!({
            "s": "quote \" backslash \\ newline \n control \u{1} é",
            "n": [0, -1, 1.5, u64::MAX, i64::MIN],
            "b": [true, false, null],
            "nested": {"": [], "k": {}},
            "key \"odd\"": "v"
        });
        let mut out = Vec::new();
        push_value(&mut out, &value);
        let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, value);
        assert_eq!(out, serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn digits_and_timestamps() {
        let mut out = Vec::new();
        push_digits(&mut out, 0, 1);
        out.push(b' ');
        push_digits(&mut out, u64::MAX, 1);
        out.push(b' ');
        push_digits(&mut out, 7, 3);
        assert_eq!(out, b"0 18446744073709551615 007");

        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_795_276_800_123_456_789).unwrap();
        let mut out = Vec::new();
        push_timestamp(&mut out, t);
        assert_eq!(out, b"2026-11-21T16:00:00.123456Z");
        let early = time::OffsetDateTime::from_unix_timestamp(-62_135_596_800).unwrap();
        let mut out = Vec::new();
        push_timestamp(&mut out, early);
        assert_eq!(out, b"0001-01-01T00:00:00.000000Z");
        // The cached second is used only for the same second.
        let same = t + time::Duration::microseconds(5);
        let next = t + time::Duration::seconds(1);
        for (t, want) in [
            (t, &b"2026-11-21T16:00:00.123456Z"[..]),
            (same, b"2026-11-21T16:00:00.123461Z"),
            (next, b"2026-11-21T16:00:01.123456Z"),
        ] {
            let mut out = Vec::new();
            push_timestamp(&mut out, t);
            assert_eq!(out, want);
        }
    }
}
