//! `hookguard policy …` and the policy wiring of `serve`.

use super::ServeArgs;
use crate::admission::AdmissionConfig;
use crate::policy::namespaces::NamespaceLabels;
use crate::policy::{docs, schema, watch, ActivePolicy, Labels, NamespaceRef, Policy, PolicyStore};
use crate::rules::RuleId;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file and print the effective policy (every default written out).
    Check {
        /// The policy file (`-` for standard input).
        file: PathBuf,
        /// Also show how every rule resolves in this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// The namespace's labels as key=value (repeatable); without any, label-selected
        /// overrides resolve as strictly as possible, as in the webhook before it knows them.
        #[arg(long = "label", value_delimiter = ',', requires = "namespace")]
        labels: Vec<String>,
    },
    /// What a rule checks, why it matters and how to fix its findings.
    Explain {
        /// A rule id, e.g. unknown-hook-type (`hookguard policy explain --list` for all).
        #[arg(required_unless_present = "list")]
        rule: Option<String>,
        /// List every rule with its default action.
        #[arg(long)]
        list: bool,
    },
    /// Print the rule reference (docs/rules.md).
    Docs,
    /// Print the policy file's JSON Schema (schema/policy.schema.json).
    Schema,
}

/// Appends to the output buffer (written once at the end, see `emit`).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}
macro_rules! outp {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = write!($out, $($arg)*);
    }};
}

/// Writes the output; a closed pipe (`… | head`) is not an error.
fn emit(out: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

pub fn run(args: PolicyArgs) -> Result<()> {
    let mut out = String::new();
    run_into(args, &mut out)?;
    emit(&out)
}

fn run_into(args: PolicyArgs, out: &mut String) -> Result<()> {
    match args.command {
        PolicyCommand::Check {
            file,
            namespace,
            labels,
        } => {
            let (bytes, name) = if file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                    .context("cannot read standard input")?;
                (b, "<stdin>".to_owned())
            } else {
                let b = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                (b, file.display().to_string())
            };
            let active = ActivePolicy::parse(&bytes, &name)?;
            outln!(out, "# {name}: valid (sha256 {})", active.hash);
            outln!(out, "# effective policy, every default written out:");
            outp!(out, "{}", active.policy.effective().to_yaml());
            if let Some(ns) = namespace {
                print_resolution(out, &active.policy, &ns, &labels)?;
            }
            Ok(())
        }
        PolicyCommand::Explain { list: true, .. } => {
            for rule in RuleId::ALL {
                let i = rule.info();
                outln!(
                    out,
                    "{:<28} {:<5} {}",
                    i.name,
                    i.default_action.to_string(),
                    i.summary
                );
            }
            Ok(())
        }
        PolicyCommand::Explain { rule, .. } => {
            let name = rule.unwrap_or_default();
            let Some(rule) = RuleId::from_name(name.trim()) else {
                let known: Vec<&str> = RuleId::ALL.iter().map(|r| r.name()).collect();
                bail!("unknown rule `{name}`; known rules: {}", known.join(", "));
            };
            outp!(out, "{}", docs::explain(rule));
            Ok(())
        }
        PolicyCommand::Docs => {
            outp!(out, "{}", docs::rules_markdown());
            Ok(())
        }
        PolicyCommand::Schema => {
            outp!(out, "{}", schema::policy_schema_json());
            Ok(())
        }
    }
}

fn print_resolution(out: &mut String, policy: &Policy, ns: &str, labels: &[String]) -> Result<()> {
    let mut map = BTreeMap::new();
    for l in labels {
        let Some((k, v)) = l.split_once('=') else {
            bail!("--label {l:?} is not key=value");
        };
        map.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let known = if labels.is_empty() {
        Labels::Unknown
    } else {
        Labels::Known(&map)
    };
    let ns_ref = NamespaceRef::new(ns, known);
    outln!(
        out,
        "# in namespace {ns}: rule, configured action, mode, effect"
    );
    for rule in RuleId::ALL {
        let r = policy.resolve(*rule, &ns_ref);
        outln!(
            out,
            "# {:<28} {:<5} {:<8} {}",
            rule.name(),
            r.action.to_string(),
            r.mode.as_str(),
            r.effect.as_str()
        );
    }
    Ok(())
}

/// Loads the policy for `serve` (an invalid file is an error), and starts what keeps it
/// current: the file poller and, when overrides select by label, the namespace watch.
pub async fn start_store(args: Arc<ServeArgs>) -> Result<Arc<PolicyStore<AdmissionConfig>>> {
    let initial = match &args.policy {
        Some(path) => {
            let bytes = watch::read(path).await?;
            ActivePolicy::parse(&bytes, &path.display().to_string())?
        }
        None => ActivePolicy::defaults(),
    };
    let namespaces = NamespaceLabels::watched();
    let derive = {
        let args = args.clone();
        let namespaces = namespaces.clone();
        move |p: &Arc<ActivePolicy>| args.admission_config(p, &namespaces)
    };
    let store = Arc::new(PolicyStore::new(initial, derive));
    let active = store.policy();
    tracing::info!(policy = %active.source, hash = %active.hash, mode = %active.policy.mode, "policy loaded");
    if active.policy.uses_namespace_labels() {
        namespaces.start();
    }
    if let Some(path) = args.policy.clone() {
        let on_applied = move |s: &PolicyStore<AdmissionConfig>| {
            if s.policy().policy.uses_namespace_labels() {
                namespaces.start();
            }
        };
        tokio::spawn(watch::run(
            store.clone(),
            path,
            args.policy_poll_interval,
            on_applied,
            std::future::pending(),
        ));
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn run_args(args: &[&str]) -> Result<String> {
        let cli = crate::cli::Cli::try_parse_from(
            std::iter::once("hookguard").chain(args.iter().copied()),
        )?;
        let crate::cli::Command::Policy(p) = cli.command else {
            unreachable!("a policy command")
        };
        let mut out = String::new();
        run_into(p, &mut out)?;
        Ok(out)
    }

    #[test]
    fn check_prints_the_effective_policy_or_the_located_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(
            &good,
            "mode: warn\nnamespaces:\n  - names: [prod-*]\n    mode: enforce\n",
        )
        .unwrap();
        let out = run_args(&[
            "policy",
            "check",
            good.to_str().unwrap(),
            "--namespace",
            "prod-a",
        ])
        .unwrap();
        assert!(out.contains(": valid (sha256 "), "{out}");
        assert!(out.contains("\n  job-missing-deadline: \"off\"\n"), "{out}");
        assert!(
            out.contains("# unknown-hook-type            deny  enforce  deny\n"),
            "{out}"
        );

        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "mode: warn\nrules:\n  job-ttl-race: maybe\n").unwrap();
        let e = run_args(&["policy", "check", bad.to_str().unwrap()]).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.ends_with("bad.yaml:3:17: unknown variant `maybe`, expected one of deny, warn, off"),
            "{e}"
        );
    }

    #[test]
    fn explain_knows_every_rule_and_lists_them_for_a_typo() {
        let out = run_args(&["policy", "explain", "never-cleaned"]).unwrap();
        assert!(out.starts_with("never-cleaned (default: warn)\n"), "{out}");
        let e = run_args(&["policy", "explain", "never-clean"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown rule `never-clean`; known rules: unknown-hook-type"),
            "{e}"
        );
        let out = run_args(&["policy", "explain", "--list"]).unwrap();
        assert_eq!(out.lines().count(), RuleId::ALL.len());
    }
}
