//! `hookguard policy …` and the policy wiring of `serve`.

use super::ServeArgs;
use crate::admission::AdmissionConfig;
use crate::policy::namespaces::NamespaceLabels;
use crate::policy::{docs, schema, watch, ActivePolicy, PolicyStore};
use crate::rules::RuleId;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
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

pub fn run(args: PolicyArgs) -> Result<()> {
    match args.command {
        PolicyCommand::Check { file } => {
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
            println!("# {name}: valid (sha256 {})", active.hash);
            println!("# effective policy, every default written out:");
            print!("{}", active.policy.effective().to_yaml());
            Ok(())
        }
        PolicyCommand::Explain { list: true, .. } => {
            for rule in RuleId::ALL {
                let i = rule.info();
                println!("{:<28} {:<5} {}", i.name, i.default_action, i.summary);
            }
            Ok(())
        }
        PolicyCommand::Explain { rule, .. } => {
            let name = rule.unwrap_or_default();
            let Some(rule) = RuleId::from_name(name.trim()) else {
                let known: Vec<&str> = RuleId::ALL.iter().map(|r| r.name()).collect();
                bail!("unknown rule `{name}`; known rules: {}", known.join(", "));
            };
            print!("{}", docs::explain(rule));
            Ok(())
        }
        PolicyCommand::Docs => {
            print!("{}", docs::rules_markdown());
            Ok(())
        }
        PolicyCommand::Schema => {
            print!("{}", schema::policy_schema_json());
            Ok(())
        }
    }
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
