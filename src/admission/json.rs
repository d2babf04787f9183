//! A small, strict JSON pull reader for the one job that dominates the webhook's CPU time:
//! reading an AdmissionReview body. serde_json's generic visitor machinery and its
//! `ignore_value` cost ~41 000 instructions on a 2 KB review; with this reader the whole parse
//! (validation and the typed view) costs ~26 000 (measured when the view still owned its
//! strings; it now borrows them), and the reader itself allocates only for strings with
//! escapes.
//!
//! It accepts exactly what `serde_json::from_str` accepts (RFC 8259; whitespace is space, tab,
//! LF and CR only), with the same distinctions the review reader depends on:
//!
//! - strings that are *read* ([`Reader::read_str`], and every object key read by
//!   [`Object::next_key`]) must hold valid UTF-16 surrogate pairs in `\u` escapes, as serde's
//!   `parse_str`; strings that are *skipped* only need four hex digits after `\u`, as serde's
//!   `ignore_str` (a lone surrogate in managedFields must not make a review unreadable);
//! - numbers that are *read* ([`Reader::read_number`]) are classified as serde_json's
//!   `deserialize_any` does (u64, else negative i64, else f64) and are an error when the f64
//!   overflows; skipped numbers are only checked against the grammar.
//!
//! Nesting of the containers the caller reads is limited to [`MAX_DEPTH`], as serde_json
//! limits the values it deserialises; skipped values may nest to any depth, as serde_json's
//! `ignore_value` allows. Nothing here recurses; the caller's typed reading recurses only
//! along its schema (`spec.template.spec...`), which that limit bounds.

use crate::jsonline::special_byte;
use std::borrow::Cow;
use std::fmt;

/// At most this many arrays and objects may be open at once, minus one: serde_json's
/// `remaining_depth` starts at 128 and opening the container that brings it to 0 fails.
pub(crate) const MAX_DEPTH: usize = 128;

/// Whether a failure is in the JSON itself or in what a well-formed value means to the
/// reader (serde_json's `Category::Syntax`/`Eof` against `Category::Data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    Syntax,
    /// The nesting limit on containers the caller reads (serde_json's recursion limit, also a
    /// syntax error there).
    TooDeep,
    Data,
    /// An array where the review reader expects a strict struct: a data error, told apart as
    /// the differential test's one deliberate difference (see `read`).
    ArrayForStruct,
}

/// Boxed, so the readers' `Result`s stay one word wide on the hot path.
#[derive(Debug)]
pub(crate) struct Error(Box<ErrorInner>);

#[derive(Debug)]
struct ErrorInner {
    kind: ErrorKind,
    /// Byte offset of the offending byte (or of the end of input).
    offset: usize,
    message: String,
    /// Line and column (both from 1, the column in bytes) of `offset`.
    line: usize,
    column: usize,
}

impl Error {
    pub(crate) fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    pub(crate) fn offset(&self) -> usize {
        self.0.offset
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        write!(
            f,
            "{} at line {} column {} (byte {})",
            e.message, e.line, e.column, e.offset
        )
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A number read as serde_json's `deserialize_any` would hand it to a visitor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::U64(n) => write!(f, "integer `{n}`"),
            Number::I64(n) => write!(f, "integer `{n}`"),
            Number::F64(n) => write!(f, "floating point `{n}`"),
        }
    }
}

/// What the next value is: scalars are read in full, containers are only peeked at (the
/// reader stands on their `{` or `[`).
#[derive(Debug, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Object,
    Array,
}

impl Value<'_> {
    /// "a string", "an object", ...: for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Number(n) => n.to_string(),
            Value::Str(s) => format!("string {s:?}"),
            Value::Object => "an object".into(),
            Value::Array => "an array".into(),
        }
    }
}

pub(crate) struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Open arrays and objects.
    depth: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Reader {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
        }
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    /// An error at `offset`, with its line and column worked out (errors are rare, so the
    /// newlines are counted only now).
    #[cold]
    #[inline(never)]
    pub(crate) fn error_at(&self, kind: ErrorKind, offset: usize, message: String) -> Error {
        let offset = offset.min(self.bytes.len());
        let before = self.bytes.get(..offset).unwrap_or_default();
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        Error(Box::new(ErrorInner {
            kind,
            offset,
            message,
            line,
            column: offset - line_start + 1,
        }))
    }

    #[cold]
    #[inline(never)]
    fn syntax(&self, message: &str) -> Error {
        self.error_at(ErrorKind::Syntax, self.pos, message.to_owned())
    }

    /// A well-formed value that means the wrong thing, reported where it starts.
    #[cold]
    #[inline(never)]
    pub(crate) fn data_error(&self, offset: usize, message: String) -> Error {
        self.error_at(ErrorKind::Data, offset, message)
    }

    /// The next byte after whitespace, not consumed.
    #[inline(always)]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.pos = skip_ws(self.bytes, self.pos);
        self.bytes.get(self.pos).copied()
    }

    /// Succeeds when only whitespace is left.
    pub(crate) fn end(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.syntax("trailing characters after the JSON value")),
        }
    }

    #[inline]
    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(self.too_deep());
        }
        Ok(())
    }

    /// Consumes the `{` the reader stands on; the caller then reads the members.
    pub(crate) fn begin_object(&mut self) -> Result<Object> {
        self.pos += 1;
        self.enter()?;
        Ok(Object { first: true })
    }

    /// Consumes the `[` the reader stands on; the caller then reads the elements.
    pub(crate) fn begin_array(&mut self) -> Result<Array> {
        self.pos += 1;
        self.enter()?;
        Ok(Array { first: true })
    }

    /// The next value: scalars read in full (strings validated, numbers classified),
    /// containers left for the caller. Inlined for its common cases (an unescaped string, an
    /// object or array right after the colon); the rest goes the long way.
    #[inline(always)]
    pub(crate) fn value(&mut self) -> Result<Value<'a>> {
        match self.bytes.get(self.pos) {
            Some(b'{') => Ok(Value::Object),
            Some(b'[') => Ok(Value::Array),
            Some(b'"') => {
                let start = self.pos + 1;
                if let Some(end) = plain_string_end(self.bytes, start) {
                    if let Some(s) = self.text.get(start..end - 1) {
                        self.pos = end;
                        return Ok(Value::Str(Cow::Borrowed(s)));
                    }
                }
                self.value_slow()
            }
            _ => self.value_slow(),
        }
    }

    #[inline(never)]
    fn value_slow(&mut self) -> Result<Value<'a>> {
        match self.peek() {
            Some(b'{') => Ok(Value::Object),
            Some(b'[') => Ok(Value::Array),
            Some(b'"') => {
                self.pos += 1;
                self.read_str().map(Value::Str)
            }
            Some(b'-' | b'0'..=b'9') => self.read_number().map(Value::Number),
            Some(b't') => self.literal(b"true").map(|()| Value::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Value::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Value::Null),
            Some(_) => Err(self.syntax("expected a value")),
            None => Err(self.syntax("end of input where a value was expected")),
        }
    }

    /// Skips the container the reader stands on (as returned by [`Reader::value`]) the way a
    /// lenient reader does with an unexpected object or array: an object's keys are read
    /// (and so validated), its values and an array's elements are skipped.
    pub(crate) fn drain(&mut self, what: &Value<'_>) -> Result<()> {
        match what {
            Value::Object => {
                let mut obj = self.begin_object()?;
                while obj.next_key(self)?.is_some() {
                    self.colon()?;
                    self.skip_value()?;
                }
                Ok(())
            }
            Value::Array => {
                let mut arr = self.begin_array()?;
                while arr.next(self)? {
                    self.skip_value()?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<()> {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end) == Some(word) {
            self.pos = end;
            return Ok(());
        }
        // Point at the first byte that differs, as serde_json does.
        let mut at = self.pos;
        for &w in word {
            match self.bytes.get(at) {
                Some(&b) if b == w => at += 1,
                Some(_) => break,
                None => {
                    self.pos = at;
                    return Err(self.syntax("end of input inside a literal"));
                }
            }
        }
        self.pos = at;
        Err(self.syntax("expected `true`, `false` or `null`"))
    }

    /// The `:` after a key.
    #[inline]
    pub(crate) fn colon(&mut self) -> Result<()> {
        match self.peek() {
            Some(b':') => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.syntax("expected `:`")),
            None => Err(self.syntax("end of input inside an object")),
        }
    }

    // ---- strings ----------------------------------------------------------------------

    /// Reads a string whose opening quote has been consumed: borrowed unless it has escapes.
    #[inline(always)]
    pub(crate) fn read_str(&mut self) -> Result<Cow<'a, str>> {
        let start = self.pos;
        let end = special_byte(self.bytes, start);
        if self.bytes.get(end) == Some(&b'"') {
            self.pos = end + 1;
            return match self.text.get(start..end) {
                Some(s) => Ok(Cow::Borrowed(s)),
                None => Err(self.syntax("string not on a character boundary")),
            };
        }
        self.pos = end;
        self.read_escaped(start).map(Cow::Owned)
    }

    /// The slow path of `read_str`, from the first escape (or error) on.
    #[cold]
    #[inline(never)]
    fn read_escaped(&mut self, start: usize) -> Result<String> {
        let mut out = String::new();
        let mut run = start;
        loop {
            let i = special_byte(self.bytes, self.pos);
            out.push_str(self.text.get(run..i).unwrap_or_default());
            self.pos = i;
            match self.bytes.get(i) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.escape()?;
                    out.push(c);
                    run = self.pos;
                }
                Some(_) => return Err(self.syntax("control character in a string")),
                None => return Err(self.syntax("end of input inside a string")),
            }
        }
    }

    /// Decodes the escape after a `\`, pairing surrogates strictly.
    fn escape(&mut self) -> Result<char> {
        let Some(&c) = self.bytes.get(self.pos) else {
            return Err(self.syntax("end of input inside a string"));
        };
        self.pos += 1;
        let simple = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(),
            _ => {
                self.pos -= 1;
                return Err(self.syntax("invalid escape"));
            }
        };
        Ok(simple)
    }

    fn unicode_escape(&mut self) -> Result<char> {
        let n = self.hex4()?;
        let code = match n {
            0xDC00..=0xDFFF => return Err(self.syntax("lone trailing surrogate in a \\u escape")),
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.syntax("lone leading surrogate in a \\u escape"));
                }
                self.pos += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.syntax("lone leading surrogate in a \\u escape"));
                }
                0x1_0000 + ((u32::from(n) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
            }
            _ => u32::from(n),
        };
        char::from_u32(code).ok_or_else(|| self.syntax("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u16> {
        let Some(digits) = self.bytes.get(self.pos..self.pos + 4) else {
            self.pos = self.bytes.len();
            return Err(self.syntax("end of input inside a \\u escape"));
        };
        let mut n: u16 = 0;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.syntax("invalid \\u escape")),
            };
            n = (n << 4) | u16::from(v);
        }
        self.pos += 4;
        Ok(n)
    }

    /// Skips a string whose opening quote has been consumed: escapes are checked for form
    /// only (any four hex digits after `\u`), as serde_json's `ignore_str`.
    #[inline(always)]
    fn skip_str(&mut self) -> Result<()> {
        match plain_string_end(self.bytes, self.pos) {
            Some(end) => {
                self.pos = end;
                Ok(())
            }
            None => self.skip_escaped(),
        }
    }

    /// The slow path of `skip_str`, from the first escape (or error) on.
    #[cold]
    #[inline(never)]
    fn skip_escaped(&mut self) -> Result<()> {
        loop {
            let i = special_byte(self.bytes, self.pos);
            self.pos = i;
            match self.bytes.get(i) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.bytes.get(self.pos) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            self.hex4()?;
                        }
                        Some(_) => return Err(self.syntax("invalid escape")),
                        None => return Err(self.syntax("end of input inside a string")),
                    }
                }
                Some(_) => return Err(self.syntax("control character in a string")),
                None => return Err(self.syntax("end of input inside a string")),
            }
        }
    }

    // ---- numbers ----------------------------------------------------------------------

    fn digit_at(&self, i: usize) -> Option<u8> {
        match self.bytes.get(i) {
            Some(&b @ b'0'..=b'9') => Some(b - b'0'),
            _ => None,
        }
    }

    /// Skips a number (the reader stands on `-` or a digit), checking only its form.
    fn skip_number(&mut self) -> Result<()> {
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.digit_at(self.pos) {
            Some(0) => {
                self.pos += 1;
                if self.digit_at(self.pos).is_some() {
                    return Err(self.syntax("invalid number: leading zero"));
                }
            }
            Some(_) => {
                self.pos += 1;
                while self.digit_at(self.pos).is_some() {
                    self.pos += 1;
                }
            }
            None => return Err(self.syntax("invalid number: no digit")),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digit_at(self.pos).is_none() {
                return Err(self.syntax("invalid number: no digit after `.`"));
            }
            while self.digit_at(self.pos).is_some() {
                self.pos += 1;
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if self.digit_at(self.pos).is_none() {
                return Err(self.syntax("invalid number: no digit in the exponent"));
            }
            while self.digit_at(self.pos).is_some() {
                self.pos += 1;
            }
        }
        Ok(())
    }

    /// Reads a number (the reader stands on `-` or a digit) as serde_json's `deserialize_any`
    /// does (without its `float_roundtrip` and `arbitrary_precision` features): an integer
    /// that fits u64 is a u64, a negative one that fits i64 an i64, anything else (`-0`,
    /// fractions, exponents, overflowing integers) an f64, which must be finite. The steps
    /// follow serde_json's `parse_integer` and friends exactly, so the same inputs overflow.
    pub(crate) fn read_number(&mut self) -> Result<Number> {
        let positive = if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
            false
        } else {
            true
        };
        let significand = match self.digit_at(self.pos) {
            Some(0) => {
                self.pos += 1;
                if self.digit_at(self.pos).is_some() {
                    return Err(self.syntax("invalid number: leading zero"));
                }
                0
            }
            Some(d) => {
                self.pos += 1;
                let mut significand = u64::from(d);
                while let Some(d) = self.digit_at(self.pos) {
                    match significand
                        .checked_mul(10)
                        .and_then(|s| s.checked_add(u64::from(d)))
                    {
                        Some(s) => significand = s,
                        None => return self.long_integer(positive, significand).map(Number::F64),
                    }
                    self.pos += 1;
                }
                significand
            }
            None => return Err(self.syntax("invalid number: no digit")),
        };
        match self.bytes.get(self.pos) {
            Some(b'.') => self.decimal(positive, significand, 0).map(Number::F64),
            Some(b'e' | b'E') => self.exponent(positive, significand, 0).map(Number::F64),
            _ if positive => Ok(Number::U64(significand)),
            _ => {
                // As serde_json: `-0` and integers below i64::MIN become floats.
                let neg = (significand as i64).wrapping_neg();
                if neg >= 0 {
                    Ok(Number::F64(-(significand as f64)))
                } else {
                    Ok(Number::I64(neg))
                }
            }
        }
    }

    /// serde_json's `parse_long_integer`: the digits that no longer fit only scale.
    fn long_integer(&mut self, positive: bool, significand: u64) -> Result<f64> {
        let mut exponent: i32 = 0;
        while self.digit_at(self.pos).is_some() {
            self.pos += 1;
            exponent = exponent.saturating_add(1);
        }
        match self.bytes.get(self.pos) {
            Some(b'.') => self.decimal(positive, significand, exponent),
            Some(b'e' | b'E') => self.exponent(positive, significand, exponent),
            _ => self.f64_from_parts(positive, significand, exponent),
        }
    }

    /// serde_json's `parse_decimal` (the reader stands on the `.`).
    fn decimal(&mut self, positive: bool, mut significand: u64, before: i32) -> Result<f64> {
        self.pos += 1;
        let mut after: i32 = 0;
        while let Some(d) = self.digit_at(self.pos) {
            match significand
                .checked_mul(10)
                .and_then(|s| s.checked_add(u64::from(d)))
            {
                Some(s) => significand = s,
                None => {
                    // serde_json's `parse_decimal_overflow`: further digits are dropped.
                    while self.digit_at(self.pos).is_some() {
                        self.pos += 1;
                    }
                    let exponent = before.saturating_add(after);
                    return match self.bytes.get(self.pos) {
                        Some(b'e' | b'E') => self.exponent(positive, significand, exponent),
                        _ => self.f64_from_parts(positive, significand, exponent),
                    };
                }
            }
            self.pos += 1;
            after -= 1;
        }
        if after == 0 {
            return Err(self.syntax("invalid number: no digit after `.`"));
        }
        let exponent = before.saturating_add(after);
        match self.bytes.get(self.pos) {
            Some(b'e' | b'E') => self.exponent(positive, significand, exponent),
            _ => self.f64_from_parts(positive, significand, exponent),
        }
    }

    /// serde_json's `parse_exponent` (the reader stands on the `e`).
    fn exponent(&mut self, positive: bool, significand: u64, starting: i32) -> Result<f64> {
        self.pos += 1;
        let positive_exp = match self.bytes.get(self.pos) {
            Some(b'+') => {
                self.pos += 1;
                true
            }
            Some(b'-') => {
                self.pos += 1;
                false
            }
            _ => true,
        };
        let Some(first) = self.digit_at(self.pos) else {
            return Err(self.syntax("invalid number: no digit in the exponent"));
        };
        self.pos += 1;
        let mut exp = i32::from(first);
        while let Some(d) = self.digit_at(self.pos) {
            self.pos += 1;
            match exp
                .checked_mul(10)
                .and_then(|e| e.checked_add(i32::from(d)))
            {
                Some(e) => exp = e,
                None => {
                    // serde_json's `parse_exponent_overflow`: infinity is an error, zero is not.
                    if significand != 0 && positive_exp {
                        return Err(self.syntax("number out of range"));
                    }
                    while self.digit_at(self.pos).is_some() {
                        self.pos += 1;
                    }
                    return Ok(if positive { 0.0 } else { -0.0 });
                }
            }
        }
        let exponent = if positive_exp {
            starting.saturating_add(exp)
        } else {
            starting.saturating_sub(exp)
        };
        self.f64_from_parts(positive, significand, exponent)
    }

    /// serde_json's `f64_from_parts` without `float_roundtrip`: the same products and
    /// quotients, so the same numbers overflow to infinity (an error).
    fn f64_from_parts(&self, positive: bool, significand: u64, mut exponent: i32) -> Result<f64> {
        let mut f = significand as f64;
        loop {
            match pow10(exponent.unsigned_abs()) {
                Some(pow) => {
                    if exponent >= 0 {
                        f *= pow;
                        if f.is_infinite() {
                            return Err(self.syntax("number out of range"));
                        }
                    } else {
                        f /= pow;
                    }
                    break;
                }
                None => {
                    if f == 0.0 {
                        break;
                    }
                    if exponent >= 0 {
                        return Err(self.syntax("number out of range"));
                    }
                    f /= 1e308;
                    exponent += 308;
                }
            }
        }
        Ok(if positive { f } else { -f })
    }

    // ---- skipping ---------------------------------------------------------------------

    /// Skips one value of any shape, validating it as serde_json's `ignore_value` does, without
    /// recursion and, like it, at any depth (a deeply nested field hookguard does not read
    /// must not make a review unreadable): the kind of each open container is one bit of a
    /// 128-bit stack, spilled to the heap past 128 levels. This loop runs over most of a
    /// review (managedFields) token by token, so the position lives in a local and each token
    /// is one dispatch on its first byte, whitespace being only the rare case of that dispatch.
    pub(crate) fn skip_value(&mut self) -> Result<()> {
        let bytes = self.bytes;
        let mut pos = self.pos;
        let mut level = 0usize;
        // The innermost open container of this value is an object (else an array) ...
        let mut in_object = false;
        // ... and so are those around it whose bit is set (innermost in bit 0), `outer_bits`
        // of them; further out, full 128-bit words in `spilled` (innermost last).
        let mut outer: u128 = 0;
        let mut outer_bits = 0u32;
        let mut spilled: Vec<u128> = Vec::new();
        loop {
            // A value.
            match bytes.get(pos) {
                Some(b'"') => {
                    pos = match plain_string_end(bytes, pos + 1) {
                        Some(end) => end,
                        None => self.skip_str_from(pos + 1)?,
                    }
                }
                Some(b'{') if bytes.get(pos + 1) == Some(&b'}') => {
                    // `{}`, most values in managedFields: no need to push and pop.
                    pos += 2;
                }
                Some(&open @ (b'{' | b'[')) => {
                    pos += 1;
                    if level > 0 {
                        if outer_bits == u128::BITS {
                            spilled.push(outer);
                            outer_bits = 0;
                        }
                        outer = (outer << 1) | u128::from(in_object);
                        outer_bits += 1;
                    }
                    level += 1;
                    in_object = open == b'{';
                    pos = skip_ws(bytes, pos);
                    let close = if in_object { b'}' } else { b']' };
                    if bytes.get(pos) != Some(&close) {
                        if in_object {
                            pos = match plain_key_end(bytes, pos) {
                                Some(end) => end,
                                None => self.skip_key_from(pos)?,
                            };
                        }
                        continue;
                    }
                    // Empty: closed below.
                }
                Some(b' ' | b'\n' | b'\t' | b'\r') => {
                    pos = skip_ws(bytes, pos);
                    continue;
                }
                Some(_) => {
                    // Numbers and literals: rare enough in skipped values to go the long way.
                    self.pos = pos;
                    self.skip_scalar()?;
                    pos = self.pos;
                }
                None => {
                    self.pos = pos;
                    return Err(self.syntax("end of input where a value was expected"));
                }
            }
            // After a value (or standing on the end of an empty container): a comma (and in an
            // object the next key), or closing brackets.
            loop {
                if level == 0 {
                    self.pos = pos;
                    return Ok(());
                }
                match bytes.get(pos) {
                    Some(b',') => {
                        pos += 1;
                        if in_object {
                            pos = match plain_key_end(bytes, pos) {
                                Some(end) => end,
                                None => self.skip_key_from(pos)?,
                            };
                        }
                        break;
                    }
                    Some(b'}') if in_object => {}
                    Some(b']') if !in_object => {}
                    Some(b' ' | b'\n' | b'\t' | b'\r') => {
                        pos = skip_ws(bytes, pos);
                        continue;
                    }
                    found => {
                        self.pos = pos;
                        return Err(self.syntax(match (found, in_object) {
                            (None, _) => "end of input inside an array or object",
                            (Some(_), true) => "expected `,` or `}`",
                            (Some(_), false) => "expected `,` or `]`",
                        }));
                    }
                }
                pos += 1;
                level -= 1;
                if level > 0 {
                    in_object = outer & 1 != 0;
                    outer >>= 1;
                    outer_bits -= 1;
                    if outer_bits == 0 {
                        if let Some(word) = spilled.pop() {
                            outer = word;
                            outer_bits = u128::BITS;
                        }
                    }
                }
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&self) -> Error {
        self.error_at(
            ErrorKind::TooDeep,
            self.pos,
            format!("more than {} nested arrays and objects", MAX_DEPTH - 1),
        )
    }

    /// Skips the string starting at `start` (after its quote) the slow way; the position
    /// after it.
    #[cold]
    #[inline(never)]
    fn skip_str_from(&mut self, start: usize) -> Result<usize> {
        self.pos = start;
        self.skip_str()?;
        Ok(self.pos)
    }

    /// Skips a key of a skipped object and its colon from `pos` the slow way (whitespace,
    /// escapes, errors); the position after them.
    #[cold]
    #[inline(never)]
    fn skip_key_from(&mut self, pos: usize) -> Result<usize> {
        self.pos = pos;
        self.skip_key()?;
        Ok(self.pos)
    }

    /// Skips a number or literal the reader stands on (anything else is an error).
    #[inline(never)]
    fn skip_scalar(&mut self) -> Result<()> {
        match self.bytes.get(self.pos) {
            Some(b'-' | b'0'..=b'9') => self.skip_number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => Err(self.syntax("expected a value")),
        }
    }

    /// A key of a skipped object and its colon.
    #[inline(always)]
    fn skip_key(&mut self) -> Result<()> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.skip_str()?;
                self.colon()
            }
            Some(_) => Err(self.syntax("expected a string key")),
            None => Err(self.syntax("end of input inside an object")),
        }
    }
}

/// The position after the closing quote of a string starting at `start` (after its opening
/// quote), if it has no escapes (and no errors): the fast path of skipping.
#[inline(always)]
fn plain_string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let end = special_byte(bytes, start);
    (bytes.get(end) == Some(&b'"')).then_some(end + 1)
}

/// The position after `"key":` at `pos`, if written without whitespace or escapes.
#[inline(always)]
fn plain_key_end(bytes: &[u8], pos: usize) -> Option<usize> {
    if bytes.get(pos) != Some(&b'"') {
        return None;
    }
    let end = plain_string_end(bytes, pos + 1)?;
    (bytes.get(end) == Some(&b':')).then_some(end + 1)
}

/// The first index from `pos` that is not JSON whitespace. Reviews are compact, so the
/// usual answer is `pos` itself: every byte above the space is not whitespace, and that one
/// comparison settles it before the four-way test.
#[inline(always)]
fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(&b) = bytes.get(pos) {
        if b > b' ' || !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
            break;
        }
        pos += 1;
    }
    pos
}

/// 10^n as the nearest f64 for n ≤ 308: what the literal `1e{n}` in serde_json's table is.
/// Parsing the literal gives exactly that value; only numbers with a fraction or an exponent
/// that are read (rare: the fields hookguard reads hold integers) get here.
fn pow10(n: u32) -> Option<f64> {
    if n > 308 {
        return None;
    }
    let digit = |d: u32| b'0' + (d % 10) as u8;
    let literal = [b'1', b'e', digit(n / 100), digit(n / 10), digit(n)];
    std::str::from_utf8(&literal).ok()?.parse().ok()
}

/// Members of an object being read; see [`Object::next_key`].
#[derive(Debug)]
pub(crate) struct Object {
    first: bool,
}

impl Object {
    /// The next key (read, so validated), or `None` after the closing `}`. The caller must
    /// then call [`Reader::colon`] and read or skip the value: the colon is checked only
    /// then, so that a duplicate key is reported before anything after it, as serde derive
    /// does.
    #[inline(always)]
    pub(crate) fn next_key<'a>(&mut self, r: &mut Reader<'a>) -> Result<Option<Cow<'a, str>>> {
        let bytes = r.bytes;
        let mut pos = skip_ws(bytes, r.pos);
        match bytes.get(pos) {
            Some(b'}') => {
                r.pos = pos + 1;
                r.depth -= 1;
                return Ok(None);
            }
            Some(b',') if !self.first => pos = skip_ws(bytes, pos + 1),
            Some(_) if self.first => {}
            found => {
                r.pos = pos;
                return Err(r.syntax(match found {
                    None => "end of input inside an object",
                    Some(_) => "expected `,` or `}`",
                }));
            }
        }
        self.first = false;
        if bytes.get(pos) == Some(&b'"') {
            // The common key: no escapes, borrowed.
            let start = pos + 1;
            let end = special_byte(bytes, start);
            if bytes.get(end) == Some(&b'"') {
                if let Some(key) = r.text.get(start..end) {
                    r.pos = end + 1;
                    return Ok(Some(Cow::Borrowed(key)));
                }
            }
            r.pos = start;
            return r.read_str().map(Some);
        }
        r.pos = pos;
        Err(r.syntax(match bytes.get(pos) {
            Some(b'}') => "trailing comma",
            Some(_) => "expected a string key",
            None => "end of input inside an object",
        }))
    }
}

/// Elements of an array being read; see [`Array::next`].
#[derive(Debug)]
pub(crate) struct Array {
    first: bool,
}

impl Array {
    /// Whether another element follows (the reader then stands before it); `false` after
    /// the closing `]`.
    pub(crate) fn next(&mut self, r: &mut Reader<'_>) -> Result<bool> {
        match r.peek() {
            Some(b']') => {
                r.pos += 1;
                r.depth -= 1;
                return Ok(false);
            }
            Some(b',') if !self.first => {
                r.pos += 1;
                if r.peek() == Some(b']') {
                    return Err(r.syntax("trailing comma"));
                }
            }
            Some(_) if self.first => {}
            Some(_) => return Err(r.syntax("expected `,` or `]`")),
            None => return Err(r.syntax("end of input inside an array")),
        }
        self.first = false;
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
