//! `hookguard serve`: the admission webhook over HTTPS plus its admin plane.

use super::{parse_duration, parse_kind, shutdown_signal};
use crate::admission::AdmissionConfig;
use crate::mutation::{KindRef, MutationSettings};
use crate::server::{self, limits, run::Prepared, run::Settings, ConnectionLimits};
use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HOOKGUARD_ADDR", default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
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
    /// Kinds that get the managed label and finalizer, as Kind.group (core group: Kind).
    #[arg(
        long,
        env = "HOOKGUARD_MANAGED_KINDS",
        value_delimiter = ',',
        default_value = "Job.batch,Pod,Workflow.argoproj.io",
        value_parser = parse_kind
    )]
    pub managed_kinds: Vec<KindRef>,
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
    /// How long an HTTP/1.1 client may take to send request headers (also the h1 idle timeout).
    #[arg(long, env = "HOOKGUARD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
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
    pub fn admission_config(&self) -> AdmissionConfig {
        AdmissionConfig {
            mutation: MutationSettings {
                translate_helm: !self.no_translate_helm,
                explicit_default_policy: !self.no_explicit_default_policy,
                mark_managed: !self.no_managed_label,
                add_finalizer: !self.no_finalizer,
                managed_kinds: self.managed_kinds.clone(),
            },
            ..AdmissionConfig::default()
        }
    }

    pub fn settings(&self) -> Settings {
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
            },
            shutdown_delay: self.shutdown_delay,
            shutdown_timeout: self.shutdown_timeout,
            admission: self.admission_config(),
        }
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let admin = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("cannot listen on --admin-addr {}", args.admin_addr))?;
    tracing::info!(addr = %args.admin_addr, "admin plane serving HTTP on /livez, /readyz and /metrics");
    server::run::run(
        args.settings(),
        listener,
        admin,
        Prepared::new(),
        shutdown_signal(),
    )
    .await?;
    tracing::info!("hookguard stopped");
    Ok(())
}
