//! `hookguard lint [PATH…|-]`: the webhook's rules over manifests, for CI and pre-commit.

use crate::lint::report::{self, FileResult, Totals};
use crate::lint::{self, InputError, ObjectRef, StreamReport};
use crate::policy::{ActivePolicy, Effect, Labels, NamespaceRef, Policy};
use crate::rules::{Action, RuleId};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// GitHub Actions workflow commands (annotations on the pull request).
    Github,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Files and directories (searched recursively for .yaml, .yml and .json); `-` or
    /// nothing reads standard input.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(
        long,
        env = "HOOKGUARD_LINT_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub format: Format,
    /// Policy file (the same file `serve` uses): rule actions, mode and namespace overrides.
    /// Without it the catalogue defaults apply.
    #[arg(long, env = "HOOKGUARD_POLICY")]
    pub policy: Option<PathBuf>,
    /// Namespace assumed for objects that do not name one (as `kubectl apply -n`), for the
    /// policy's namespace overrides. Namespace labels are unknown offline: label-selected
    /// overrides are resolved the stricter way, exactly as the webhook does without labels.
    #[arg(
        long,
        short = 'n',
        env = "HOOKGUARD_LINT_NAMESPACE",
        default_value = ""
    )]
    pub namespace: String,
}

/// The action lint reports for one finding: the policy's effect for the object's namespace.
/// `audit` never denies (the webhook admits), so lint shows it as a warning and exits 0.
pub fn policy_action(policy: &Policy, rule: RuleId, namespace: &str) -> Action {
    match policy
        .resolve(rule, &NamespaceRef::new(namespace, Labels::Unknown))
        .effect
    {
        Effect::Deny => Action::Deny,
        Effect::Warn | Effect::Audit => Action::Warn,
        Effect::Off => Action::Off,
    }
}

/// Ends the process with this exit code, after the output has been written.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// One input to read: standard input or a file, and whether it was found by walking a
/// directory (then files that are not manifests are skipped, as Argo CD skips them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File { path: PathBuf, walked: bool },
}

impl Input {
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_owned(),
            Input::File { path, .. } => path.display().to_string(),
        }
    }

    pub fn read(&self) -> Result<Vec<u8>, InputError> {
        let mut bytes = Vec::new();
        let result = match self {
            Input::Stdin => std::io::stdin().lock().read_to_end(&mut bytes).map(|_| ()),
            Input::File { path, .. } => std::fs::read(path).map(|b| bytes = b),
        };
        result.map(|_| bytes).map_err(|e| InputError {
            line: None,
            col: None,
            message: format!("cannot read: {e}"),
        })
    }
}

/// The inputs named on the command line, directories expanded (sorted, so output is stable).
/// A path that does not exist is kept: reading it reports the error in order.
pub fn inputs(paths: &[PathBuf]) -> Vec<Input> {
    if paths.is_empty() {
        return vec![Input::Stdin];
    }
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(Input::Stdin);
        } else if path.is_dir() {
            walk(path, &mut out);
        } else {
            out.push(Input::File {
                path: path.clone(),
                walked: false,
            });
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<Input>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        out.push(Input::File {
            path: dir.to_path_buf(),
            walked: false,
        });
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(Input::File { path, walked: true });
        }
    }
}

/// Argo CD's directory source ignores a YAML file that does not parse into objects unless it
/// looks like a manifest (`apiVersion:`, `kind:` and `metadata:` all appear in it).
fn looks_like_manifest(bytes: &[u8]) -> bool {
    ["apiVersion", "kind", "metadata"]
        .iter()
        .all(|k| memchr::memmem::find(bytes, k.as_bytes()).is_some())
}

/// Lints one input; `None` when a walked file is not a manifest and is skipped.
pub fn lint_input(input: &Input, resolve: lint::ActionResolver<'_>) -> Option<StreamReport> {
    let bytes = match input.read() {
        Ok(bytes) => bytes,
        Err(error) => {
            return Some(StreamReport {
                error: Some(error),
                ..StreamReport::default()
            })
        }
    };
    let report = lint::lint_bytes(&bytes, resolve);
    let walked = matches!(input, Input::File { walked: true, .. });
    if walked && report.error.is_some() && report.objects == 0 && !looks_like_manifest(&bytes) {
        return None;
    }
    Some(report)
}

pub fn run(args: LintArgs) -> Result<()> {
    // Rule actions: the policy file's (the same resolution the webhook uses), else the
    // catalogue defaults. An unreadable or invalid policy is a usage error (exit 2).
    let active = match &args.policy {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read policy file {}", path.display()))
                .map_err(|e| usage_error(&e))?;
            ActivePolicy::parse(&bytes, &path.display().to_string())
                .map_err(|e| usage_error(&anyhow::anyhow!(e)))?
        }
        None => ActivePolicy::defaults(),
    };
    let resolve = |rule: RuleId, object: &ObjectRef| -> Action {
        let ns = object.namespace.as_deref().unwrap_or(&args.namespace);
        policy_action(&active.policy, rule, ns)
    };

    let mut results = Vec::new();
    for input in inputs(&args.paths) {
        if let Some(report) = lint_input(&input, &resolve) {
            results.push(FileResult {
                path: input.name(),
                report,
            });
        }
    }
    let output = match args.format {
        Format::Text => report::text(&results),
        Format::Json => report::json(&results),
        Format::Github => report::github(&results),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(output.as_bytes())?;
    stdout.flush()?;
    if args.format != Format::Text {
        // Text output already names unreadable inputs; other formats are for machines, so
        // say it on stderr for the person reading the CI log.
        for r in &results {
            if let Some(e) = &r.report.error {
                eprintln!("hookguard lint: {}: {e}", r.path);
            }
        }
    }
    match Totals::of(&results).exit_code() {
        0 => Ok(()),
        code => Err(Exit(code).into()),
    }
}

/// Prints a usage-level error (bad policy file) and turns it into exit status 2.
fn usage_error(error: &anyhow::Error) -> anyhow::Error {
    eprintln!("hookguard lint: {error:#}");
    Exit(2).into()
}
