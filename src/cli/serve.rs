//! `hookguard serve`: the admission webhook over HTTPS plus its admin plane.

use super::{parse_duration, parse_kind};
use crate::admission::AdmissionConfig;
use crate::mutation::{KindRef, MutationSettings};
use crate::policy::namespaces::NamespaceLabels;
use crate::policy::{ActivePolicy, PolicyStore};
use crate::server::{self, limits, run::Prepared, run::Settings, ConnectionLimits};
use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod listen_fd;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HOOKGUARD_ADDR", default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// Serve on this inherited listening TCP socket (a file descriptor number) instead of
    /// binding --addr: systemd socket activation (3), or a zero-downtime restart where the
    /// next process takes over the same socket before the old one drains.
    #[arg(long, env = "HOOKGUARD_LISTEN_FD")]
    pub listen_fd: Option<i32>,
    /// PEM certificate chain for TLS.
    #[arg(long, env = "HOOKGUARD_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// PEM private key for TLS (PKCS#8, PKCS#1 or SEC1; ECDSA or RSA).
    #[arg(long, env = "HOOKGUARD_TLS_KEY")]
    pub tls_key: PathBuf,
    /// Largest accepted request body, in bytes (larger requests get 413).
    #[arg(long, env = "HOOKGUARD_MAX_BODY_BYTES", default_value_t = server::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Do not add the cleanup finalizer (for clusters where the finalizer sidecar does not run).
    #[arg(long, env = "HOOKGUARD_NO_FINALIZER")]
    pub no_finalizer: bool,
    /// Do not mark hooks as managed (no label, no finalizer).
    #[arg(long, env = "HOOKGUARD_NO_MANAGED_LABEL")]
    pub no_managed_label: bool,
    /// Do not write Argo CD annotations derived from Helm's.
    #[arg(long, env = "HOOKGUARD_NO_TRANSLATE_HELM")]
    pub no_translate_helm: bool,
    /// Do not write BeforeHookCreation when no delete policy is given.
    #[arg(long, env = "HOOKGUARD_NO_EXPLICIT_DEFAULT_POLICY")]
    pub no_explicit_default_policy: bool,
    /// Kinds that get the managed label and finalizer, as Kind.group (core group: Kind);
    /// replaces the policy's `mutation.kinds` (default Job.batch,Pod,Workflow.argoproj.io).
    #[arg(long, env = "HOOKGUARD_MANAGED_KINDS", value_delimiter = ',', value_parser = parse_kind)]
    pub managed_kinds: Option<Vec<KindRef>>,
    /// Policy file (YAML; see `hookguard policy check`). Reloaded when it changes; without it
    /// the built-in defaults apply.
    #[arg(long, env = "HOOKGUARD_POLICY")]
    pub policy: Option<PathBuf>,
    /// How often to check the policy file for changes.
    #[arg(long, env = "HOOKGUARD_POLICY_POLL_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub policy_poll_interval: Duration,
    /// Address of the plain-HTTP admin plane (/livez, /readyz, /metrics).
    #[arg(long, env = "HOOKGUARD_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Require client certificates signed by a CA in this PEM file (e.g. the apiserver's).
    #[arg(long, env = "HOOKGUARD_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// How often, at most, to check the certificate files for a renewed pair.
    #[arg(long, env = "HOOKGUARD_CERT_CHECK_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub cert_check_interval: Duration,
    /// Most admission requests handled at once; more are answered 503 at once.
    #[arg(long, env = "HOOKGUARD_MAX_CONCURRENT_REQUESTS", default_value_t = limits::DEFAULT_MAX_CONCURRENT)]
    pub max_concurrent_requests: usize,
    /// How long a client may take to send a request's headers once it has started (HTTP/1.1),
    /// and how long an HTTP/2 connection may go without a request before it gets a GOAWAY.
    #[arg(long, env = "HOOKGUARD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// How long an HTTP/1.1 keep-alive connection may sit idle before it is closed; keep it
    /// above the apiserver's own idle timeout (Go: 90s) so the apiserver closes first.
    #[arg(long, env = "HOOKGUARD_IDLE_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// How long a client may take to finish the TLS handshake.
    #[arg(long, env = "HOOKGUARD_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// On SIGTERM/SIGINT, keep serving this long after readiness goes false, so the Service
    /// stops sending new connections before the listener closes.
    #[arg(long, env = "HOOKGUARD_SHUTDOWN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// Bound from SIGTERM/SIGINT to exit: the shutdown delay plus draining requests in flight.
    #[arg(long, env = "HOOKGUARD_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

impl ServeArgs {
    /// The admission config for one policy: the policy's mutation switches, where the
    /// `--no-*` flags can only switch things off and `--managed-kinds` replaces the kinds.
    pub fn admission_config(
        &self,
        policy: &Arc<ActivePolicy>,
        namespaces: &NamespaceLabels,
    ) -> AdmissionConfig {
        let m = &policy.policy.mutation;
        AdmissionConfig {
            mutation: MutationSettings {
                translate_helm: m.translate_helm && !self.no_translate_helm,
                explicit_default_policy: m.explicit_default_policy
                    && !self.no_explicit_default_policy,
                mark_managed: m.managed_label && !self.no_managed_label,
                add_finalizer: m.finalizer && !self.no_finalizer,
                managed_kinds: self
                    .managed_kinds
                    .clone()
                    .unwrap_or_else(|| m.kinds.clone()),
            },
            policy: policy.clone(),
            namespaces: namespaces.clone(),
        }
    }

    pub fn settings(&self, admission: Arc<PolicyStore<AdmissionConfig>>) -> Settings {
        Settings {
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            client_ca: self.client_ca.clone(),
            cert_check_interval: self.cert_check_interval,
            max_body_bytes: self.max_body_bytes,
            max_concurrent: self.max_concurrent_requests,
            connection: ConnectionLimits {
                handshake_timeout: self.handshake_timeout,
                header_read_timeout: self.header_read_timeout,
                idle_timeout: self.idle_timeout,
            },
            shutdown_delay: self.shutdown_delay,
            shutdown_timeout: self.shutdown_timeout,
            admission,
        }
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let args = Arc::new(args);
    // A bad policy file stops the start, before anything listens.
    let store = super::policy::start_store(args.clone()).await?;
    let listener = match args.listen_fd {
        Some(fd) => tokio::net::TcpListener::from_std(listen_fd::take(fd)?)
            .with_context(|| format!("cannot serve on --listen-fd {fd}"))?,
        None => tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?,
    };
    let admin = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("cannot listen on --admin-addr {}", args.admin_addr))?;
    tracing::info!(addr = %args.admin_addr, "admin plane serving HTTP on /livez, /readyz and /metrics");
    let mut prepared = Prepared::new();
    let condition = prepared.readiness.register("policy", "not loaded yet");
    tokio::spawn(mirror_policy_status(
        store.clone(),
        condition.clone(),
        prepared.metrics.policy.clone(),
    ));
    prepared.policy = Some(condition);
    server::run::run(
        args.settings(store),
        listener,
        admin,
        prepared,
        super::shutdown_signal(),
    )
    .await?;
    tracing::info!("hookguard stopped");
    Ok(())
}

/// Keeps the `policy` readiness detail and the policy metrics in step with the store: the
/// active hash and load time, and reloads by result. The policy is loaded before the server
/// starts, so the condition is ready from the first look.
async fn mirror_policy_status(
    store: Arc<PolicyStore<AdmissionConfig>>,
    condition: server::readiness::Condition,
    metrics: server::metrics::PolicyMetrics,
) {
    let (mut ok, mut failed) = (0, 0);
    metrics.reload("success");
    loop {
        let status = store.status();
        let mut detail = format!(
            "{} sha256:{} loaded at {} (unix)",
            status.source, status.hash, status.loaded_at_unix
        );
        if let Some(e) = &status.last_error {
            detail.push_str(&format!("; last reload failed, previous policy kept: {e}"));
        }
        condition.ready(detail);
        metrics.set_active(&status.hash);
        for _ in ok..status.reloads_ok {
            metrics.reload("success");
        }
        for _ in failed..status.reloads_failed {
            metrics.reload("error");
        }
        (ok, failed) = (status.reloads_ok, status.reloads_failed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings(args: &[&str]) -> Settings {
        let argv = [
            "hookguard",
            "serve",
            "--tls-cert",
            "t.crt",
            "--tls-key",
            "t.key",
        ];
        let cli = crate::cli::Cli::try_parse_from(argv.iter().chain(args)).expect("valid flags");
        let crate::cli::Command::Serve(serve) = cli.command else {
            panic!("not serve");
        };
        serve.settings(Arc::new(AdmissionConfig::store(ActivePolicy::defaults())))
    }

    #[test]
    fn connection_timeouts_come_from_their_flags() {
        let defaults = settings(&[]).connection;
        assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
        assert_eq!(defaults.idle_timeout, Duration::from_secs(120));
        assert_eq!(defaults.handshake_timeout, Duration::from_secs(10));
        let set = settings(&[
            "--header-read-timeout",
            "3s",
            "--idle-timeout",
            "95s",
            "--handshake-timeout",
            "4s",
        ])
        .connection;
        assert_eq!(set.header_read_timeout, Duration::from_secs(3));
        assert_eq!(set.idle_timeout, Duration::from_secs(95));
        assert_eq!(set.handshake_timeout, Duration::from_secs(4));
    }
}
