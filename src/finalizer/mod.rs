//! The finalizer sidecar: watches managed hooks (label `hookguard.io/managed=true`) of the
//! handled kinds, deletes them per their delete policy and hookguard's cleanup settings, and
//! on deletion records their outcome before releasing `hookguard.io/cleanup`.
//!
//! `decide` is the pure core; `observe` and `family` turn watch events into its input;
//! `reconcile` is the kube I/O; `lease` the leader election; `admin` the probes and metrics;
//! `release` the `release-finalizers` command.

pub mod admin;
pub mod decide;
pub mod family;
pub mod lease;
pub mod observe;
pub mod reconcile;
pub mod release;

use crate::mutation::KindRef;
use admin::{AdminState, Metrics};
use decide::CleanupSettings;
use family::FamilyIndex;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::discovery::{self, Scope};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::store::Writer;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use observe::StatusReader;
use reconcile::KindContext;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Everything `hookguard finalizer` runs with.
#[derive(Debug, Clone)]
pub struct FinalizerConfig {
    pub kinds: Vec<KindRef>,
    /// Watch one namespace only (`None`: all).
    pub namespace: Option<String>,
    pub settings: CleanupSettings,
    pub lease: lease::LeaseConfig,
    pub admin_addr: SocketAddr,
    /// Concurrent reconciles per kind.
    pub concurrency: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery of {kind}: {source}")]
    Kube {
        kind: String,
        #[source]
        source: kube::Error,
    },
}

fn kind_name(k: &KindRef) -> String {
    if k.group.is_empty() {
        k.kind.clone()
    } else {
        format!("{}.{}", k.kind, k.group)
    }
}

/// Finds the served resource for a kind. `Ok(None)`: not served (e.g. no Workflow CRD).
pub async fn resolve(
    client: &Client,
    kind: &KindRef,
) -> Result<Option<(ApiResource, bool)>, DiscoveryError> {
    match discovery::group(client, &kind.group).await {
        Ok(group) => Ok(group
            .recommended_kind(&kind.kind)
            .map(|(ar, caps)| (ar, caps.scope == Scope::Namespaced))),
        Err(kube::Error::Discovery(_)) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(source) => Err(DiscoveryError::Kube {
            kind: kind_name(kind),
            source,
        }),
    }
}

/// Shared by every kind's controller.
#[derive(Clone)]
struct Shared {
    client: Client,
    config: Arc<FinalizerConfig>,
    metrics: Arc<Metrics>,
    leader: watch::Receiver<bool>,
    /// Kinds started but not yet listed once.
    unsynced: Arc<AtomicUsize>,
    /// Every kind we know of has been started and... (see `update_ready`).
    ready: Arc<AtomicBool>,
    discovery_done: Arc<AtomicBool>,
}

impl Shared {
    fn update_ready(&self) {
        let ready =
            self.discovery_done.load(Ordering::SeqCst) && self.unsynced.load(Ordering::SeqCst) == 0;
        self.ready.store(ready, Ordering::SeqCst);
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One kind's watch + controller, until `shutdown`.
fn run_kind(
    shared: Shared,
    resource: ApiResource,
    reader: StatusReader,
    shutdown: watch::Receiver<bool>,
) -> BoxFuture {
    let client = shared.client.clone();
    let api: Api<DynamicObject> = match &shared.config.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let selector = format!(
        "{}={}",
        crate::hooks::keys::MANAGED_LABEL,
        crate::hooks::keys::MANAGED_LABEL_VALUE
    );
    let wc = watcher::Config::default().labels(&selector);
    let writer: Writer<DynamicObject> = Writer::new(resource.clone());
    let store = writer.as_reader();
    let family = Arc::new(Mutex::new(FamilyIndex::new(reader)));
    let family_for_stream = family.clone();
    let kind = resource.kind.clone();
    shared.unsynced.fetch_add(1, Ordering::SeqCst);
    shared.update_ready();
    // Readiness comes from the first InitDone seen here (Store::wait_until_ready supports a
    // single waiter, and the Controller is already waiting on it).
    let sync_shared = shared.clone();
    let sync_kind = kind.clone();
    let mut synced = false;
    let stream = watcher(api, wc)
        .default_backoff()
        .modify(move |o| observe::prune(reader, o))
        .map_ok(move |event| {
            if let Ok(mut idx) = family_for_stream.lock() {
                idx.apply(&event);
            }
            if !synced && matches!(event, watcher::Event::InitDone) {
                synced = true;
                tracing::info!(kind = %sync_kind, "watch synced");
                sync_shared.unsynced.fetch_sub(1, Ordering::SeqCst);
                sync_shared.update_ready();
            }
            event
        })
        .reflect(writer)
        .applied_objects();
    let (family_tx, family_rx) = futures::channel::mpsc::unbounded();
    let ctx = Arc::new(KindContext {
        client,
        resource: resource.clone(),
        reader,
        settings: shared.config.settings.clone(),
        family,
        family_trigger: family_tx,
        leader: shared.leader.clone(),
        metrics: shared.metrics.clone(),
        identity: shared.config.lease.identity.clone(),
    });
    // Becoming leader: look at everything again (a non-leader only watches).
    let leader_gained = futures::stream::unfold(shared.leader.clone(), |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            if *rx.borrow_and_update() {
                return Some(((), rx));
            }
        }
    });
    let stop = {
        let mut s = shutdown.clone();
        async move {
            let _ = s.wait_for(|v| *v).await;
        }
    };
    let controller = Controller::for_stream_with(stream, store, resource)
        .with_config(ControllerConfig::default().concurrency(shared.config.concurrency))
        .reconcile_on(family_rx)
        .reconcile_all_on(leader_gained)
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller");
            }
        });
    tracing::info!(kind = %kind, "watching managed hooks");
    controller.boxed()
}

/// Waits for missing kinds (e.g. the Workflow CRD) to be served: watches CRD metadata and
/// re-runs discovery on any change, then starts their controllers. Event-driven, no polling.
async fn await_missing(
    shared: Shared,
    mut missing: Vec<KindRef>,
    shutdown: watch::Receiver<bool>,
) -> Vec<BoxFuture> {
    // Metadata only: CRD schemas can be large.
    let crds: Api<PartialObjectMeta<CustomResourceDefinition>> = Api::all(shared.client.clone());
    let stream = watcher(crds, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    tokio::pin!(stream);
    let mut started = Vec::new();
    let mut stop = shutdown.clone();
    let mut logged_error = false;
    while !missing.is_empty() {
        tokio::select! {
            _ = stop.wait_for(|v| *v) => break,
            item = stream.next() => match item {
                None => break,
                Some(Err(e)) => {
                    if !logged_error {
                        tracing::warn!(error = %e, "cannot watch CustomResourceDefinitions; missing kinds are picked up after a restart");
                        logged_error = true;
                    }
                    continue;
                }
                Some(Ok(_)) => {}
            }
        }
        let mut still = Vec::new();
        for kind in missing {
            match resolve(&shared.client, &kind).await {
                Ok(Some((ar, _))) => {
                    tracing::info!(kind = %kind_name(&kind), "kind is now served, starting its watch");
                    let reader = StatusReader::for_kind(&kind);
                    let fut = run_kind(shared.clone(), ar, reader, shutdown.clone());
                    started.push(tokio::spawn(fut).map(|_| ()).boxed());
                }
                Ok(None) => still.push(kind),
                Err(e) => {
                    tracing::warn!(error = %e, "discovery failed");
                    still.push(kind);
                }
            }
        }
        missing = still;
    }
    started
}

/// Runs the sidecar until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: FinalizerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (leader_tx, leader_rx) = watch::channel(false);

    let listener = tokio::net::TcpListener::bind(config.admin_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.admin_addr))?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(config.admin_addr), "admin plane on /livez /readyz /metrics");
    let admin_state = AdminState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let admin_stop = {
        let mut s = stop_rx.clone();
        async move {
            let _ = s.wait_for(|v| *v).await;
        }
    };
    let admin = tokio::spawn(admin::serve(listener, admin_state, admin_stop));

    let shared = Shared {
        client: client.clone(),
        config: config.clone(),
        metrics: metrics.clone(),
        leader: leader_rx.clone(),
        unsynced: Arc::new(AtomicUsize::new(0)),
        ready: ready.clone(),
        discovery_done: Arc::new(AtomicBool::new(false)),
    };

    // Leadership metric follows the election.
    let leader_metric = {
        let metrics = metrics.clone();
        let mut rx = leader_rx.clone();
        tokio::spawn(async move {
            loop {
                metrics.leader.set(i64::from(*rx.borrow_and_update()));
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
    };
    let election = {
        let client = client.clone();
        let lease_cfg = config.lease.clone();
        let mut s = stop_rx.clone();
        tokio::spawn(lease::run(client, lease_cfg, leader_tx, async move {
            let _ = s.wait_for(|v| *v).await;
        }))
    };

    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut missing = Vec::new();
    let mut seen: Vec<&KindRef> = Vec::new();
    for kind in &config.kinds {
        if seen.contains(&kind) {
            continue;
        }
        seen.push(kind);
        match resolve(&client, kind).await? {
            Some((ar, _namespaced)) => {
                let reader = StatusReader::for_kind(kind);
                tasks.push(tokio::spawn(run_kind(
                    shared.clone(),
                    ar,
                    reader,
                    stop_rx.clone(),
                )));
            }
            None => {
                tracing::warn!(kind = %kind_name(kind), "kind is not served by this cluster (yet); watching for its CRD");
                missing.push(kind.clone());
            }
        }
    }
    shared.discovery_done.store(true, Ordering::SeqCst);
    shared.update_ready();
    let late = if missing.is_empty() {
        None
    } else {
        Some(tokio::spawn(await_missing(
            shared.clone(),
            missing,
            stop_rx.clone(),
        )))
    };

    shutdown.await;
    tracing::info!("shutting down: stepping down and releasing the lease");
    let _ = stop_tx.send(true);
    let _ = election.await;
    for t in tasks {
        let _ = t.await;
    }
    if let Some(late) = late {
        if let Ok(started) = late.await {
            futures::future::join_all(started).await;
        }
    }
    leader_metric.abort();
    let _ = admin.await;
    Ok(())
}
