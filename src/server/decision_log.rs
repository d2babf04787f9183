//! The decision log: one line per admission request with everything an operator asks about
//! it (uid, kind, namespace, name, operation, user, decision, rules fired, dry-run, latency).
//!
//! With `--log-format json` the line is written straight into the log's batch, bypassing
//! tracing's field machinery: a 16-field event through tracing cost ~9 000 instructions, as
//! much as a fifth of a whole request, and the decision log is the one line written per
//! request. tracing still decides whether the line is wanted (`--log-level`), and without
//! the JSON sink (plain format, or a library user with its own subscriber) the same fields go
//! through a tracing event.

use crate::admission::{Decision, Webhook};
use crate::jsonline::{close_line, open_line, push_digits, push_string};
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

/// The target the line is logged under (and filtered by, e.g. `hookguard::server=warn`).
const TARGET: &str = "hookguard::server";

/// Appends a line to the log: called with a writer, which it runs on the log's batch (under
/// the batch's lock), so the line is written where it goes, without a buffer of its own to
/// fill, copy and free per request.
type Sink = Box<dyn Fn(&mut dyn FnMut(&mut Vec<u8>)) + Send + Sync>;

/// Where JSON lines go, once `cli::logging::init` set it up for `--log-format json`.
static JSON_SINK: OnceLock<Sink> = OnceLock::new();

/// Sends JSON decision lines to `sink` from now on (first call wins; false after that).
/// `sink` calls the writer it is given once, with the buffer the line is to be appended to.
pub fn set_json_sink(sink: impl Fn(&mut dyn FnMut(&mut Vec<u8>)) + Send + Sync + 'static) -> bool {
    JSON_SINK.set(Box::new(sink)).is_ok()
}

pub fn log_decision(webhook: Webhook, d: &Decision, latency: Duration) {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let fields = fields(webhook, d, latency);
    match JSON_SINK.get() {
        Some(sink) => {
            // Taken before the sink's lock, so the time under it is only the writing.
            let now = time::OffsetDateTime::now_utc();
            sink(&mut |out| write_json_line(out, &fields, now));
        }
        None => tracing::info!(target: TARGET, "admission decision {}", Plain(&fields)),
    }
}

enum Value<'a> {
    /// Text from the request (or an error message): escaped as JSON needs.
    Str(&'a str),
    /// hookguard's own words (webhook, operation, verdict, mode, policy hash): identifiers
    /// with nothing to escape, so the JSON line copies them without scanning each byte.
    Word(&'a str),
    Bool(bool),
    U64(u64),
    /// `rule=action,…` of the rules that fired, audited ones as `rule=audit(action)`.
    Fired(&'a Decision<'a>),
    /// The rules whose denial the mode softened, comma-separated.
    WouldDeny(&'a Decision<'a>),
}

/// A field's name, and the same name as it opens the field in a JSON line (`,"name":`), both
/// made by `name!` from one literal: the JSON line then copies one piece per field instead of
/// three.
#[derive(Clone, Copy)]
struct Name {
    plain: &'static str,
    json_key: &'static str,
}

macro_rules! name {
    ($name:literal) => {
        Name {
            plain: $name,
            json_key: concat!(",\"", $name, "\":"),
        }
    };
}

/// The line's fields, in order: the one list both formats write.
fn fields<'a>(webhook: Webhook, d: &'a Decision, latency: Duration) -> [(Name, Value<'a>); 16] {
    use Value::*;
    [
        (name!("webhook"), Word(webhook.as_str())),
        (name!("uid"), Str(&d.uid)),
        (name!("operation"), Word(d.operation)),
        (name!("kind"), Str(&d.kind)),
        (name!("namespace"), Str(&d.namespace)),
        (name!("name"), Str(&d.name)),
        (name!("user"), Str(&d.user)),
        (name!("dry_run"), Bool(d.dry_run)),
        (name!("decision"), Word(d.verdict())),
        (name!("rules"), Fired(d)),
        (
            name!("mode"),
            Word(d.mode.map(|m| m.as_str()).unwrap_or("")),
        ),
        (name!("would_deny"), WouldDeny(d)),
        (name!("policy"), Word(d.policy_hash.as_str())),
        (name!("patched"), Bool(d.patched)),
        (name!("error"), Str(d.error.as_deref().unwrap_or(""))),
        (
            name!("latency_us"),
            U64(latency.as_micros().try_into().unwrap_or(u64::MAX)),
        ),
    ]
}

/// Calls `piece` with each part of a list-valued field's text.
fn each_piece(value: &Value<'_>, mut piece: impl FnMut(&str)) {
    match value {
        Value::Fired(d) => {
            let fired = d.rules.iter().map(|(r, a)| (r, "", a, ""));
            let audited = d.audited.iter().map(|(r, a)| (r, "audit(", a, ")"));
            for (i, (rule, open, action, close)) in fired.chain(audited).enumerate() {
                if i > 0 {
                    piece(",");
                }
                for part in [rule.name(), "=", open, action.as_str(), close] {
                    piece(part);
                }
            }
        }
        Value::WouldDeny(d) => {
            for (i, rule) in d.would_deny.iter().enumerate() {
                if i > 0 {
                    piece(",");
                }
                piece(rule.name());
            }
        }
        Value::Str(s) | Value::Word(s) => piece(s),
        Value::Bool(_) | Value::U64(_) => {}
    }
}

/// Appends the line to `line`, framed as every JSON log line (`jsonline::open_line`).
fn write_json_line(
    line: &mut Vec<u8>,
    fields: &[(Name, Value<'_>); 16],
    now: time::OffsetDateTime,
) {
    open_line(line, now, "INFO");
    line.extend_from_slice(b",\"message\":\"admission decision\"");
    for (name, value) in fields {
        line.extend_from_slice(name.json_key.as_bytes());
        match value {
            Value::Bool(b) => line.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::U64(n) => push_digits(line, *n, 1),
            Value::Str(s) => push_string(line, s),
            // Words, and the lists of rule and action names, are copied as they are.
            word_or_list => {
                line.push(b'"');
                each_piece(word_or_list, |p| line.extend_from_slice(p.as_bytes()));
                line.push(b'"');
            }
        }
    }
    close_line(line, TARGET);
}

/// `name=value …` for the plain format: strings quoted as tracing writes them, lists bare.
struct Plain<'a, 'b>(&'b [(Name, Value<'a>)]);

impl fmt::Display for Plain<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            let name = name.plain;
            match value {
                Value::Str(s) | Value::Word(s) => write!(f, "{sep}{name}={s:?}")?,
                Value::Bool(b) => write!(f, "{sep}{name}={b}")?,
                Value::U64(n) => write!(f, "{sep}{name}={n}")?,
                list => {
                    write!(f, "{sep}{name}=")?;
                    let mut result = Ok(());
                    each_piece(list, |p| result = result.and_then(|()| f.write_str(p)));
                    result?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Path;
    use crate::jsonline::push_escaped;
    use crate::policy::Mode;
    use crate::rules::{Action, RuleId};

    fn decision() -> Decision<'static> {
        Decision {
            uid: "u-1".into(),
            operation: "CREATE",
            kind: "Job.batch".into(),
            namespace: "ns".into(),
            name: "a \"quoted\"\nname".into(),
            user: "system:serviceaccount:argocd:argocd-application-controller".into(),
            dry_run: true,
            allowed: false,
            rules: vec![
                (RuleId::UnknownHookType, Action::Deny),
                (RuleId::UnknownDeletePolicy, Action::Warn),
            ],
            audited: vec![(RuleId::NeverCleaned, Action::Warn)],
            would_deny: vec![RuleId::UnknownHookType, RuleId::UnknownDeletePolicy],
            mode: Some(Mode::Enforce),
            policy_hash: "0123456789ab".into(),
            patched: false,
            path: Some(Path::Evaluated),
            error: None,
        }
    }

    #[test]
    fn json_lines_carry_every_field_and_parse_back() {
        let d = decision();
        let now = time::OffsetDateTime::from_unix_timestamp(1_795_276_800).unwrap();
        let fields = fields(Webhook::Validate, &d, Duration::from_micros(1234));
        let mut line = Vec::new();
        write_json_line(&mut line, &fields, now);
        assert!(line.ends_with(b"}\n"));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["timestamp"], "2026-11-21T16:00:00.000000Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "admission decision");
        assert_eq!(v["target"], "hookguard::server");
        assert_eq!(v["webhook"], "validate");
        assert_eq!(v["uid"], "u-1");
        assert_eq!(v["operation"], "CREATE");
        assert_eq!(v["kind"], "Job.batch");
        assert_eq!(v["namespace"], "ns");
        assert_eq!(v["name"], "a \"quoted\"\nname");
        assert_eq!(
            v["user"],
            "system:serviceaccount:argocd:argocd-application-controller"
        );
        assert_eq!(v["dry_run"], true);
        assert_eq!(v["decision"], "denied");
        let rules = format!(
            "{}=deny,{}=warn,{}=audit(warn)",
            RuleId::UnknownHookType.name(),
            RuleId::UnknownDeletePolicy.name(),
            RuleId::NeverCleaned.name()
        );
        assert_eq!(v["rules"], rules.as_str());
        assert_eq!(v["mode"], "enforce");
        let would = format!(
            "{},{}",
            RuleId::UnknownHookType.name(),
            RuleId::UnknownDeletePolicy.name()
        );
        assert_eq!(v["would_deny"], would.as_str());
        assert_eq!(v["policy"], "0123456789ab");
        assert_eq!(v["patched"], false);
        assert_eq!(v["error"], "");
        assert_eq!(v["latency_us"], 1234);
        assert_eq!(v.as_object().unwrap().len(), 20, "{v}");
        for (name, _) in &fields {
            assert!(
                name.plain
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                name.plain
            );
            assert_eq!(name.json_key, format!(",\"{}\":", name.plain));
        }
    }

    /// The line as it was built before it was written in place: in a buffer of its own.
    fn json_line_in_own_buffer(fields: &[(Name, Value<'_>)], now: time::OffsetDateTime) -> Vec<u8> {
        let mut line = Vec::with_capacity(512);
        open_line(&mut line, now, "INFO");
        line.extend_from_slice(b",\"message\":\"admission decision\"");
        for (name, value) in fields {
            line.extend_from_slice(b",\"");
            line.extend_from_slice(name.plain.as_bytes());
            line.extend_from_slice(b"\":");
            match value {
                Value::Bool(b) => line.extend_from_slice(if *b { b"true" } else { b"false" }),
                Value::U64(n) => push_digits(&mut line, *n, 1),
                Value::Str(s) => push_string(&mut line, s),
                list => {
                    line.push(b'"');
                    each_piece(list, |p| push_escaped(&mut line, p));
                    line.push(b'"');
                }
            }
        }
        close_line(&mut line, TARGET);
        line
    }

    #[test]
    fn lines_written_in_place_are_the_lines_built_apart() {
        let now =
            time::OffsetDateTime::from_unix_timestamp_nanos(1_795_276_800_123_456_789).unwrap();
        let mut decisions = vec![decision(), Decision::default()];
        let mut escapes = decision();
        escapes.uid = "\\\"\t\r\u{1}\u{1f}é\u{7f}".into();
        escapes.kind = "Kind\u{0}".into();
        escapes.error = Some("bad \"input\"\n".into());
        escapes.mode = None;
        escapes.rules.clear();
        escapes.patched = true;
        decisions.push(escapes);
        // One batch with lines already in it, as the log's batch usually is.
        let mut batch = b"{\"earlier\":1}\n".to_vec();
        let mut expected = batch.clone();
        for (i, d) in decisions.iter().enumerate() {
            let webhook = [Webhook::Validate, Webhook::Mutate][i % 2];
            let latency = Duration::from_micros([0, 1, 987_654_321][i % 3]);
            let fields = fields(webhook, d, latency);
            write_json_line(&mut batch, &fields, now);
            expected.extend_from_slice(&json_line_in_own_buffer(&fields, now));
        }
        assert_eq!(
            String::from_utf8(batch).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    /// The words the JSON line copies without escaping: every one that can occur.
    #[test]
    fn words_copied_as_they_are_need_no_escaping() {
        use crate::admission::Operation;
        use crate::rules::Action;
        let mut words: Vec<&str> = RuleId::ALL.iter().map(|r| r.name()).collect();
        words.extend([Action::Deny, Action::Warn, Action::Off].map(Action::as_str));
        words.extend([Mode::Enforce, Mode::Warn, Mode::Audit].map(Mode::as_str));
        words.extend([Webhook::Validate, Webhook::Mutate].map(Webhook::as_str));
        let operations = [
            Operation::Create,
            Operation::Update,
            Operation::Delete,
            Operation::Connect,
        ];
        words.extend(operations.map(Operation::as_str));
        // `Decision::verdict`'s words, and the policy hash (hex digits).
        words.extend([
            "invalid", "denied", "warned", "audited", "patched", "allowed",
        ]);
        words.extend(["=", ",", "audit(", ")"]);
        let hash = crate::policy::ShortHash::from("0123456789abcdef");
        words.push(hash.as_str());
        for word in words {
            let mut escaped = Vec::new();
            push_escaped(&mut escaped, word);
            assert_eq!(escaped, word.as_bytes(), "{word:?} needs escaping");
        }
    }

    #[test]
    fn plain_lines_name_every_field() {
        let d = decision();
        let fields = fields(Webhook::Mutate, &d, Duration::from_micros(7));
        let text = Plain(&fields).to_string();
        assert!(text.starts_with("webhook=\"mutate\" uid=\"u-1\" operation=\"CREATE\""));
        assert!(text.contains(r#" name="a \"quoted\"\nname" "#), "{text}");
        assert!(text.contains(" dry_run=true "), "{text}");
        assert!(
            text.contains(&format!(" rules={}=deny,", RuleId::UnknownHookType.name())),
            "{text}"
        );
        assert!(text.ends_with(" latency_us=7"), "{text}");
    }
}
