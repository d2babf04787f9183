//! `hookguard finalizer` and `hookguard release-finalizers`.

use super::parse_duration;
use crate::finalizer::decide::CleanupSettings;
use crate::finalizer::{self, lease, FinalizerConfig};
use crate::mutation::KindRef;
use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn parse_kind(s: &str) -> Result<KindRef, String> {
    KindRef::parse(s.trim()).ok_or_else(|| format!("`{s}` is not Kind or Kind.group"))
}

#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// kubeconfig file (default: in-cluster config, else KUBECONFIG / ~/.kube/config).
    #[arg(long, env = "HOOKGUARD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

impl KubeArgs {
    pub async fn client(&self) -> Result<kube::Client> {
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(
                    kubeconfig,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .with_context(|| format!("kubeconfig {} is not usable", path.display()))?
            }
            None => kube::Config::infer()
                .await
                .context("no in-cluster config and no usable KUBECONFIG / ~/.kube/config")?,
        };
        kube::Client::try_from(config).context("cannot build the Kubernetes client")
    }
}

#[derive(Debug, Clone, Args)]
pub struct CleanupArgs {
    /// Delete a HookSucceeded hook this long after it succeeded.
    #[arg(long, env = "HOOKGUARD_SUCCEEDED_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub succeeded_grace: Duration,
    /// Delete a HookFailed hook this long after it failed (longer, so logs stay readable).
    #[arg(long, env = "HOOKGUARD_FAILED_GRACE", default_value = "1h", value_parser = parse_duration)]
    pub failed_grace: Duration,
    /// Keep only the newest N finished default/BeforeHookCreation hooks per generateName
    /// family (0: keep none of the older finished ones; see --no-family-limit).
    #[arg(long, env = "HOOKGUARD_KEEP_PER_FAMILY", default_value_t = 3)]
    pub keep_per_family: usize,
    /// Do not trim generateName families.
    #[arg(long, env = "HOOKGUARD_NO_FAMILY_LIMIT")]
    pub no_family_limit: bool,
    /// Delete any managed hook older than this (never one Argo CD still waits on).
    #[arg(long, env = "HOOKGUARD_MAX_AGE", value_parser = parse_duration)]
    pub max_age: Option<Duration>,
    /// Never hold a deletion longer than this: release anyway and report.
    #[arg(long, env = "HOOKGUARD_MAX_HOLD", default_value = "60s", value_parser = parse_duration)]
    pub max_hold: Duration,
}

impl CleanupArgs {
    pub fn settings(&self) -> CleanupSettings {
        CleanupSettings {
            succeeded_grace: self.succeeded_grace,
            failed_grace: self.failed_grace,
            keep_per_family: (!self.no_family_limit).then_some(self.keep_per_family),
            max_age: self.max_age,
            max_hold: self.max_hold,
        }
    }
}

#[derive(Debug, Args)]
pub struct FinalizerArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub cleanup: CleanupArgs,
    /// Kinds to clean up, as Kind.group (core group: Kind). Missing CRDs are picked up when
    /// they appear.
    #[arg(
        long,
        env = "HOOKGUARD_FINALIZER_KINDS",
        value_delimiter = ',',
        default_value = "Job.batch,Pod,Workflow.argoproj.io",
        value_parser = parse_kind
    )]
    pub kinds: Vec<KindRef>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "HOOKGUARD_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "HOOKGUARD_LEASE_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "HOOKGUARD_LEASE_NAME",
        default_value = "hookguard-finalizer"
    )]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: POD_NAME, else hostname-pid).
    #[arg(long, env = "HOOKGUARD_IDENTITY")]
    pub identity: Option<String>,
    /// How long a Lease stays valid without renewal.
    #[arg(long, env = "HOOKGUARD_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How often the leader renews (and a candidate retries).
    #[arg(long, env = "HOOKGUARD_LEASE_RENEW", default_value = "5s", value_parser = parse_duration)]
    pub lease_renew: Duration,
    /// Admin plane address (/livez, /readyz, /metrics; plain HTTP).
    #[arg(
        long,
        env = "HOOKGUARD_FINALIZER_ADMIN_ADDR",
        default_value = "0.0.0.0:8081"
    )]
    pub admin_addr: SocketAddr,
    /// Concurrent reconciles per kind.
    #[arg(long, env = "HOOKGUARD_FINALIZER_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Only this namespace.
    #[arg(
        short = 'n',
        long,
        env = "HOOKGUARD_NAMESPACE",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Count only, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Kinds to release, as Kind.group.
    #[arg(
        long,
        env = "HOOKGUARD_FINALIZER_KINDS",
        value_delimiter = ',',
        default_value = "Job.batch,Pod,Workflow.argoproj.io",
        value_parser = parse_kind
    )]
    pub kinds: Vec<KindRef>,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run_finalizer(args: FinalizerArgs) -> Result<()> {
    runtime()?.block_on(async move {
        let client = args.kube.client().await?;
        if args.lease_renew >= args.lease_duration {
            anyhow::bail!("--lease-renew must be shorter than --lease-duration");
        }
        let config = FinalizerConfig {
            kinds: args.kinds.clone(),
            namespace: args.namespace.clone(),
            settings: args.cleanup.settings(),
            lease: lease::LeaseConfig {
                namespace: args.lease_namespace.clone(),
                name: args.lease_name.clone(),
                identity: args.identity.clone().unwrap_or_else(lease::default_identity),
                duration: args.lease_duration,
                renew_every: args.lease_renew,
            },
            admin_addr: args.admin_addr,
            concurrency: args.concurrency.max(1),
        };
        tracing::info!(identity = %config.lease.identity, settings = ?config.settings, "hookguard finalizer starting");
        finalizer::run(client, config, super::shutdown_signal()).await
    })
}

pub fn run_release(args: ReleaseArgs) -> Result<()> {
    if args.namespace.is_none() && !args.all_namespaces {
        anyhow::bail!("say which objects: -n NAMESPACE or --all-namespaces");
    }
    runtime()?.block_on(async move {
        let client = args.kube.client().await?;
        let reports = finalizer::release::release_finalizers(
            &client,
            &args.kinds,
            args.namespace.as_deref(),
            args.dry_run,
        )
        .await?;
        let mut total = 0;
        let mut failed = 0;
        for r in &reports {
            if !r.served {
                println!("{}: not served by this cluster", r.kind);
                continue;
            }
            if args.dry_run {
                println!("{}: {} would be released", r.kind, r.found);
            } else {
                println!("{}: {} released, {} failed", r.kind, r.released, r.failed);
            }
            total += if args.dry_run { r.found } else { r.released };
            failed += r.failed;
        }
        let verb = if args.dry_run {
            "would release"
        } else {
            "released"
        };
        println!("total: {verb} {total} finalizer(s)");
        if failed > 0 {
            anyhow::bail!("{failed} finalizer(s) could not be released");
        }
        Ok(())
    })
}
