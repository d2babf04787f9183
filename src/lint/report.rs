//! Rendering lint results: text for people, JSON for tools, GitHub workflow commands for
//! annotations on pull requests.

use super::{Diagnostic, InputError, Level, StreamReport};
use serde_json::json;
use std::fmt::Write;

/// The result for one input, named as the user named it (`<stdin>` for `-`).
#[derive(Debug, Clone)]
pub struct FileResult {
    pub path: String,
    pub report: StreamReport,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub files: usize,
    pub documents: usize,
    pub objects: usize,
    pub errors: usize,
    pub deny: usize,
    pub warn: usize,
    pub info: usize,
    pub input_errors: usize,
}

impl Totals {
    pub fn of(results: &[FileResult]) -> Totals {
        let mut t = Totals {
            files: results.len(),
            ..Totals::default()
        };
        for r in results {
            t.documents += r.report.documents;
            t.objects += r.report.objects;
            t.input_errors += usize::from(r.report.error.is_some());
            for d in &r.report.diagnostics {
                match d.level {
                    Level::Error => t.errors += 1,
                    Level::Deny => t.deny += 1,
                    Level::Warn => t.warn += 1,
                    Level::Info => t.info += 1,
                }
            }
        }
        t
    }

    /// 2: some input could not be read; 1: a deny or an error finding; 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.input_errors > 0 {
            2
        } else if self.errors + self.deny > 0 {
            1
        } else {
            0
        }
    }
}

fn location(path: &str, line: Option<usize>, col: Option<usize>) -> String {
    match (line, col) {
        (Some(l), Some(c)) => format!("{path}:{l}:{c}"),
        (Some(l), None) => format!("{path}:{l}"),
        _ => path.to_owned(),
    }
}

/// `file:line: level rule: Kind ns/name: message`, one line per finding, then a summary.
/// Input errors are included (the CLI prints this to stdout; errors also go to stderr).
pub fn text(results: &[FileResult]) -> String {
    let mut out = String::new();
    for r in results {
        for d in &r.report.diagnostics {
            let _ = writeln!(
                out,
                "{}: {} {}: {}: {}",
                location(&r.path, Some(d.object.line), None),
                d.level.as_str(),
                d.check.name(),
                d.object.display(),
                d.message
            );
        }
        if let Some(e) = &r.report.error {
            let _ = writeln!(
                out,
                "{}: {}",
                location(&r.path, e.line, e.col),
                input_error_text(e)
            );
        }
    }
    let t = Totals::of(results);
    let _ = writeln!(
        out,
        "hookguard lint: {} object{} in {} document{} of {} input{}: {} error, {} deny, {} warn, {} info{}",
        t.objects,
        plural(t.objects),
        t.documents,
        plural(t.documents),
        t.files,
        plural(t.files),
        t.errors,
        t.deny,
        t.warn,
        t.info,
        if t.input_errors > 0 {
            format!("; {} unreadable input{}", t.input_errors, plural(t.input_errors))
        } else {
            String::new()
        }
    );
    out
}

fn input_error_text(e: &InputError) -> String {
    format!("error: {}", e.message)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn diagnostic_json(path: &str, d: &Diagnostic) -> serde_json::Value {
    json!({
        "file": path,
        "line": d.object.line,
        "kind": d.object.kind,
        "namespace": d.object.namespace,
        "name": d.object.name,
        "rule": d.check.name(),
        "action": d.level.as_str(),
        "annotation": d.annotation,
        "annotationLine": d.annotation_line,
        "message": d.message,
    })
}

/// `{"findings": […], "errors": […], "summary": {…}}`.
pub fn json(results: &[FileResult]) -> String {
    let mut findings = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        findings.extend(
            r.report
                .diagnostics
                .iter()
                .map(|d| diagnostic_json(&r.path, d)),
        );
        if let Some(e) = &r.report.error {
            errors.push(
                json!({"file": r.path, "line": e.line, "column": e.col, "message": e.message}),
            );
        }
    }
    let t = Totals::of(results);
    let doc = json!({
        "findings": findings,
        "errors": errors,
        "summary": {
            "files": t.files, "documents": t.documents, "objects": t.objects,
            "error": t.errors, "deny": t.deny, "warn": t.warn, "info": t.info,
            "unreadable": t.input_errors, "exitCode": t.exit_code(),
        },
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

/// GitHub Actions workflow commands (`::error file=…,line=…,title=…::message`): failing
/// findings as errors, warnings as warnings, Argo CD's fate as notices.
pub fn github(results: &[FileResult]) -> String {
    let mut out = String::new();
    for r in results {
        for d in &r.report.diagnostics {
            let command = match d.level {
                Level::Error | Level::Deny => "error",
                Level::Warn => "warning",
                Level::Info => "notice",
            };
            let line = d.annotation_line.unwrap_or(d.object.line);
            let _ = writeln!(
                out,
                "::{command} file={},line={},title={}::{}",
                escape_property(&r.path),
                line,
                escape_property(&format!(
                    "hookguard {} ({})",
                    d.check.name(),
                    d.level.as_str()
                )),
                escape_data(&format!("{}: {}", d.object.display(), d.message))
            );
        }
        if let Some(e) = &r.report.error {
            let line = e.line.map(|l| format!(",line={l}")).unwrap_or_default();
            let col = e.col.map(|c| format!(",col={c}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "::error file={}{line}{col},title=hookguard: unreadable input::{}",
                escape_property(&r.path),
                escape_data(&e.message)
            );
        }
    }
    out
}

// https://github.com/actions/toolkit/blob/main/packages/core/src/command.ts
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_escapes() {
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        assert_eq!(escape_data("a:b,c"), "a:b,c");
    }

    #[test]
    fn exit_codes() {
        let mut t = Totals::default();
        assert_eq!(t.exit_code(), 0);
        t.warn = 3;
        assert_eq!(t.exit_code(), 0);
        t.deny = 1;
        assert_eq!(t.exit_code(), 1);
        t.input_errors = 1;
        assert_eq!(t.exit_code(), 2);
    }
}
