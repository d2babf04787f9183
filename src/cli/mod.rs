//! The command line: one binary, one subcommand per part. Every flag also reads a
//! `HOOKGUARD_*` environment variable.

pub mod chart;
pub mod finalizer;
pub mod lint;
pub mod logging;
pub mod policy;
pub mod serve;
pub mod translate;

use crate::mutation::KindRef;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
pub use serve::ServeArgs;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "hookguard",
    version,
    about = "Makes Argo CD and Helm resource hooks safe, explicit and cleaned up"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the validating (/validate) and mutating (/mutate) admission webhooks over HTTPS.
    Serve(Box<ServeArgs>),
    /// Create a CA and a serving certificate (ECDSA P-256): ca.crt, tls.crt, tls.key.
    Certs(CertsArgs),
    /// Check a policy file, explain a rule, or print docs/rules.md or the policy JSON Schema.
    Policy(policy::PolicyArgs),
    /// Run the finalizer sidecar: clean up managed hooks and record their outcomes.
    Finalizer(Box<finalizer::FinalizerArgs>),
    /// Remove hookguard's finalizer from every object of the handled kinds.
    ReleaseFinalizers(finalizer::ReleaseArgs),
    /// Check manifests (files, directories, stdin) with the webhook's rules; exit 1 on deny.
    Lint(lint::LintArgs),
    /// Write the mutating webhook's changes into manifests (stdin to stdout by default).
    Translate(translate::TranslateArgs),
    /// Delete the webhook configurations, then release every hookguard finalizer (the chart's
    /// pre-delete hook).
    Uninstall(chart::UninstallArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "HOOKGUARD_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    pub log_format: LogFormat,
    /// Log level or tracing filter (e.g. `info`, `hookguard=debug`).
    #[arg(
        long,
        global = true,
        env = "HOOKGUARD_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, tls.crt and tls.key into (created if missing).
    #[arg(long, env = "HOOKGUARD_CERTS_OUT", required_unless_present = "secret")]
    pub out: Option<PathBuf>,
    /// DNS name or IP address for the serving certificate (repeatable).
    #[arg(
        long = "host",
        env = "HOOKGUARD_CERTS_HOSTS",
        value_delimiter = ',',
        required = true
    )]
    pub hosts: Vec<String>,
    /// Validity in days.
    #[arg(long, env = "HOOKGUARD_CERTS_DAYS", default_value_t = 365)]
    pub days: u32,
    #[command(flatten)]
    pub cluster: chart::ClusterCertArgs,
}

pub(crate) fn parse_kind(s: &str) -> Result<KindRef, String> {
    KindRef::parse(s.trim()).ok_or_else(|| format!("`{s}` is not Kind or Kind.group"))
}

/// `30s`, `5m`, `1h`, `250ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30s, 5m or 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("`{s}` has an unknown unit (use ms, s, m or h)")),
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let _logs = logging::init(&cli.log)?;
    match cli.command {
        Command::Certs(args) => chart::run_certs(args),
        Command::Uninstall(args) => chart::run_uninstall(args),
        Command::Policy(args) => policy::run(args),
        Command::Finalizer(args) => finalizer::run_finalizer(*args),
        Command::ReleaseFinalizers(args) => finalizer::run_release(args),
        Command::Lint(args) => lint::run(args),
        Command::Translate(args) => translate::run(args),
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(serve::run(*args))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn kinds_parse() {
        assert_eq!(parse_kind("Job.batch"), Ok(KindRef::new("batch", "Job")));
        assert_eq!(parse_kind("Pod"), Ok(KindRef::new("", "Pod")));
        assert_eq!(
            parse_kind("Workflow.argoproj.io"),
            Ok(KindRef::new("argoproj.io", "Workflow"))
        );
        assert!(parse_kind("").is_err());
    }
}
