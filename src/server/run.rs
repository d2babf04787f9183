//! The whole webhook process, wired in the library so tests build the same graph as `main`:
//! metrics registry, readiness, reloading certificate, admin plane, HTTPS server, drain.

use super::metrics::{self, Metrics};
use super::readiness::{Condition, Readiness};
use super::tls::{self, ReloadingCert, TlsError};
use super::{admin, router, serve, AppState, ConnectionLimits, Draining};
use crate::admission::AdmissionConfig;
use crate::policy::PolicyStore;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct Settings {
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Require client certificates signed by these CAs.
    pub client_ca: Option<PathBuf>,
    /// How often, at most, the certificate files are checked for changes.
    pub cert_check_interval: Duration,
    pub max_body_bytes: usize,
    pub max_concurrent: usize,
    pub connection: ConnectionLimits,
    /// After readiness goes false, keep serving this long so endpoints stop routing here.
    pub shutdown_delay: Duration,
    /// From the signal to exit, at most (delay + drain).
    pub shutdown_timeout: Duration,
    pub admission: Arc<PolicyStore<AdmissionConfig>>,
}

impl Settings {
    pub fn new(
        tls_cert: PathBuf,
        tls_key: PathBuf,
        admission: Arc<PolicyStore<AdmissionConfig>>,
    ) -> Self {
        Self {
            tls_cert,
            tls_key,
            client_ca: None,
            cert_check_interval: Duration::from_secs(1),
            max_body_bytes: super::DEFAULT_MAX_BODY_BYTES,
            max_concurrent: super::limits::DEFAULT_MAX_CONCURRENT,
            connection: ConnectionLimits::default(),
            shutdown_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(20),
            admission,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot load the TLS certificate: {0}")]
    Tls(#[from] TlsError),
    #[error("admin server failed: {0}")]
    Admin(std::io::Error),
}

/// The registry, metrics and readiness of a webhook process, created before anything is
/// loaded, so the parts around the webhook can hook in: register more metrics in `registry`,
/// add readiness conditions, keep `metrics.policy` for the policy reloader, and put the
/// policy's own condition in `policy` (without one, the configuration from flags counts as
/// loaded).
pub struct Prepared {
    pub registry: Registry,
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub policy: Option<Condition>,
}

impl Prepared {
    pub fn new() -> Self {
        let mut registry = metrics::new_registry();
        let metrics = Metrics::register(&mut registry);
        Self {
            registry,
            metrics,
            readiness: Readiness::new(),
            policy: None,
        }
    }
}

impl Default for Prepared {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs the webhook until `shutdown` resolves, then: readiness false, keep serving for the
/// shutdown delay, stop accepting, drain for the rest of the shutdown timeout, stop the admin
/// plane, return.
///
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    admin_listener: TcpListener,
    prepared: Prepared,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let Prepared {
        registry,
        metrics,
        readiness,
        policy,
    } = prepared;
    let tls_ready = readiness.register("tls", "certificate not loaded yet");
    let _policy = policy.unwrap_or_else(|| {
        let c = readiness.register("policy", "not loaded yet");
        c.ready("built-in rule actions and command-line mutation settings");
        c
    });
    let registry = Arc::new(registry);

    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        registry.clone(),
        readiness.clone(),
        async move {
            let _ = admin_stopped.await;
        },
    ));

    let result = async {
        let certs = ReloadingCert::new(
            &settings.tls_cert,
            &settings.tls_key,
            settings.cert_check_interval,
            Some(metrics.tls.clone()),
            Some(tls_ready),
        )?;
        let config = tls::server_config(Arc::new(certs), settings.client_ca.as_deref())?;
        let state = AppState::with_metrics(
            settings.admission.clone(),
            metrics.admission.clone(),
            settings.max_concurrent,
        );
        let draining = Draining::default();
        let app = router(state, settings.max_body_bytes);
        tracing::info!(
            addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            client_auth = settings.client_ca.is_some(),
            "hookguard webhook serving HTTPS on /validate and /mutate"
        );
        let delay = settings.shutdown_delay.min(settings.shutdown_timeout);
        let drain = settings.shutdown_timeout.saturating_sub(delay);
        let readiness_off = readiness.clone();
        let stop_keep_alive = draining.clone();
        let stop_accepting = async move {
            shutdown.await;
            stop_keep_alive.start();
            readiness_off.shutting_down();
            tracing::info!(
                ?delay,
                ?drain,
                "shutdown requested: readiness is false; still serving for the shutdown delay"
            );
            tokio::time::sleep(delay).await;
        };
        serve(
            listener,
            config,
            app,
            settings.connection,
            draining,
            stop_accepting,
            drain,
        )
        .await;
        Ok::<(), RunError>(())
    }
    .await;

    readiness.shutting_down();
    let _ = admin_stop.send(());
    match admin.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return result.and(Err(RunError::Admin(e))),
        Err(e) => tracing::warn!(error = %e, "admin server task ended abnormally"),
    }
    result
}
