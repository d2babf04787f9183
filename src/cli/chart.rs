//! What the Helm chart runs besides the two containers: `hookguard certs --secret …` (the
//! self-managed certificate mode, in a hook Job) and `hookguard uninstall` (the pre-delete
//! hook Job).

use super::finalizer::KubeArgs;
use super::CertsArgs;
use crate::mutation::KindRef;
use anyhow::{Context, Result};
use clap::Args;

/// In-cluster mode of `hookguard certs` (instead of `--out`).
#[derive(Debug, Args)]
pub struct ClusterCertArgs {
    /// Keep or create this kubernetes.io/tls Secret (NAMESPACE/NAME) instead of writing files.
    #[arg(long, env = "HOOKGUARD_CERTS_SECRET", conflicts_with = "out")]
    pub secret: Option<String>,
    /// Validating- and MutatingWebhookConfiguration name whose webhooks get the CA as
    /// caBundle (repeatable; with --secret).
    #[arg(
        long = "webhook",
        env = "HOOKGUARD_CERTS_WEBHOOKS",
        value_delimiter = ',',
        requires = "secret"
    )]
    pub webhooks: Vec<String>,
    /// Fail when a named webhook configuration does not exist (else it is skipped).
    #[arg(long, requires = "secret")]
    pub require_webhooks: bool,
    /// Replace a kept certificate this many days before it expires.
    #[arg(long, env = "HOOKGUARD_CERTS_RENEW_BEFORE_DAYS", default_value_t = 30)]
    pub renew_before_days: u32,
    #[command(flatten)]
    pub kube: KubeArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run_certs(args: CertsArgs) -> Result<()> {
    if let Some(target) = &args.cluster.secret {
        let (namespace, name) = target
            .split_once('/')
            .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
            .with_context(|| format!("--secret {target:?} is not NAMESPACE/NAME"))?;
        if i64::from(args.cluster.renew_before_days) >= i64::from(args.days) {
            anyhow::bail!("--renew-before-days must be less than --days");
        }
        return runtime()?.block_on(async {
            let client = args.cluster.kube.client().await?;
            crate::certs_cluster::run(
                client,
                crate::certs_cluster::Request {
                    namespace,
                    secret: name,
                    hosts: &args.hosts,
                    days: args.days,
                    renew_before_days: i64::from(args.cluster.renew_before_days),
                    webhooks: &args.cluster.webhooks,
                    require_webhooks: args.cluster.require_webhooks,
                },
            )
            .await
        });
    }
    let Some(out) = &args.out else {
        anyhow::bail!("say where: --out DIR (files) or --secret NAMESPACE/NAME (in a cluster)");
    };
    let bundle = crate::certs::generate(&args.hosts, args.days)?;
    crate::certs::write(out, &bundle)?;
    println!(
        "wrote {0}/ca.crt, {0}/tls.crt, {0}/tls.key for {1}",
        out.display(),
        args.hosts.join(", ")
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Validating- and MutatingWebhookConfiguration to delete first (repeatable).
    #[arg(
        long = "webhook",
        env = "HOOKGUARD_UNINSTALL_WEBHOOKS",
        value_delimiter = ','
    )]
    pub webhooks: Vec<String>,
    /// Kinds whose hookguard finalizer is released in every namespace, as Kind.group.
    #[arg(
        long,
        env = "HOOKGUARD_FINALIZER_KINDS",
        value_delimiter = ',',
        default_value = "Job.batch,Pod,Workflow.argoproj.io",
        value_parser = super::parse_kind
    )]
    pub kinds: Vec<KindRef>,
}

/// Deletes the webhook configurations (so nothing adds the finalizer or blocks any more),
/// then does `release-finalizers --all-namespaces`.
pub fn run_uninstall(args: UninstallArgs) -> Result<()> {
    runtime()?.block_on(async move {
        let client = args.kube.client().await?;
        crate::certs_cluster::delete_webhooks(&client, &args.webhooks).await?;
        let reports =
            crate::finalizer::release::release_finalizers(&client, &args.kinds, None, false)
                .await?;
        let mut failed = 0;
        for r in &reports {
            if r.served {
                println!("{}: {} released, {} failed", r.kind, r.released, r.failed);
            } else {
                println!("{}: not served by this cluster", r.kind);
            }
            failed += r.failed;
        }
        if failed > 0 {
            anyhow::bail!("{failed} finalizer(s) could not be released");
        }
        Ok(())
    })
}
