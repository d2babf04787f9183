//! `hookguard translate [PATH…|-]`: the mutating webhook's metadata changes written into the
//! manifests (standard input to standard output, so it works as a Helm post-renderer and in
//! an Argo CD config-management plugin).

use super::lint::{inputs, Exit, Input};
use crate::mutation::{KindRef, MutationSettings};
use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// Files and directories (searched recursively for .yaml, .yml and .json); `-` or
    /// nothing reads standard input. Several inputs are written one after another,
    /// separated by `---`.
    pub paths: Vec<PathBuf>,
    /// Also add the managed label and cleanup finalizer (as the webhook does on CREATE), for
    /// clusters where the hookguard finalizer sidecar runs.
    #[arg(long, env = "HOOKGUARD_TRANSLATE_MANAGED")]
    pub managed: bool,
    /// Do not write Argo CD annotations derived from Helm's.
    #[arg(long, env = "HOOKGUARD_NO_TRANSLATE_HELM")]
    pub no_translate_helm: bool,
    /// Do not write BeforeHookCreation when no delete policy is given.
    #[arg(long, env = "HOOKGUARD_NO_EXPLICIT_DEFAULT_POLICY")]
    pub no_explicit_default_policy: bool,
    /// Kinds that get the managed label and finalizer with --managed, as Kind.group.
    #[arg(
        long,
        env = "HOOKGUARD_MANAGED_KINDS",
        value_delimiter = ',',
        default_value = "Job.batch,Pod,Workflow.argoproj.io",
        value_parser = super::parse_kind
    )]
    pub managed_kinds: Vec<KindRef>,
}

impl TranslateArgs {
    fn settings(&self) -> MutationSettings {
        MutationSettings {
            translate_helm: !self.no_translate_helm,
            explicit_default_policy: !self.no_explicit_default_policy,
            mark_managed: true,
            add_finalizer: true,
            managed_kinds: self.managed_kinds.clone(),
        }
    }
}

pub fn run(args: TranslateArgs) -> Result<()> {
    let settings = args.settings();
    let inputs = inputs(&args.paths);
    // Everything is translated before anything is written: a post-renderer that fails
    // half-way must not hand Helm half a stream.
    let mut out = String::new();
    let mut failed = false;
    for (i, input) in inputs.iter().enumerate() {
        let translated = input
            .read()
            .and_then(|bytes| crate::lint::translate(&bytes, &settings, args.managed));
        match translated {
            Ok(t) => {
                if i > 0 {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str("---\n");
                }
                out.push_str(&t.text);
                if t.reemitted_documents > 0 {
                    eprintln!(
                        "hookguard translate: {}: {} document{} could not be edited in place and {} re-emitted as JSON (comments in {} are lost)",
                        input.name(),
                        t.reemitted_documents,
                        if t.reemitted_documents == 1 { "" } else { "s" },
                        if t.reemitted_documents == 1 { "was" } else { "were" },
                        if t.reemitted_documents == 1 { "it" } else { "them" },
                    );
                }
            }
            Err(e) => {
                let name = match input {
                    Input::Stdin => "<stdin>".to_owned(),
                    Input::File { .. } => input.name(),
                };
                eprintln!("hookguard translate: {name}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(Exit(2).into());
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
