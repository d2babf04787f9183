//! Namespace labels for policies that select overrides by label.
//!
//! An AdmissionRequest carries the namespace's name but not its labels. hookguard keeps an
//! in-memory copy of every namespace's metadata (a kube-rs metadata-only watch, so no spec or
//! status is transferred) and looks labels up synchronously while deciding. The watch runs
//! only once a policy uses `labels:` in a namespace override, so a webhook whose policy selects
//! by name alone needs no API access at all; with labels it needs `get`/`list`/`watch` on
//! `namespaces` (read-only, metadata only).
//!
//! A namespace that is not (yet) in the cache has unknown labels; resolution then takes the
//! stricter of "override matches" and "override does not match", so a missing label can never
//! weaken enforcement.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

type Labels = BTreeMap<String, String>;

enum Source {
    /// Filled by a kube watch once started.
    Watched {
        store: OnceLock<Store<PartialObjectMeta<Namespace>>>,
        started: AtomicBool,
    },
    /// A fixed table (tests, offline tools).
    Fixed(HashMap<String, Labels>),
}

/// A cheap-to-clone handle to the namespace label cache.
#[derive(Clone)]
pub struct NamespaceLabels(Arc<Source>);

impl Default for NamespaceLabels {
    fn default() -> Self {
        NamespaceLabels::watched()
    }
}

impl std::fmt::Debug for NamespaceLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Source::Watched { started, .. } => f
                .debug_struct("NamespaceLabels::Watched")
                .field("started", &started.load(Ordering::Relaxed))
                .finish(),
            Source::Fixed(m) => f
                .debug_tuple("NamespaceLabels::Fixed")
                .field(&m.len())
                .finish(),
        }
    }
}

impl NamespaceLabels {
    /// An empty cache that `start` fills.
    pub fn watched() -> Self {
        NamespaceLabels(Arc::new(Source::Watched {
            store: OnceLock::new(),
            started: AtomicBool::new(false),
        }))
    }

    pub fn fixed(table: HashMap<String, Labels>) -> Self {
        NamespaceLabels(Arc::new(Source::Fixed(table)))
    }

    /// The namespace's labels, or `None` when they are not known.
    pub fn get(&self, namespace: &str) -> Option<Labels> {
        match &*self.0 {
            Source::Fixed(t) => t.get(namespace).cloned(),
            Source::Watched { store, .. } => {
                let ns = store.get()?.get(&ObjectRef::new(namespace))?;
                Some(ns.metadata.labels.clone().unwrap_or_default())
            }
        }
    }

    /// Starts the namespace watch (once; later calls do nothing). Needs a tokio runtime.
    /// Without cluster credentials the error is logged and labels stay unknown.
    pub fn start(&self) {
        let Source::Watched { started, .. } = &*self.0 else {
            return;
        };
        if started.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let client = match kube::Client::try_default().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "the policy selects namespaces by label, but there is no Kubernetes API access: label-selected overrides are applied as strictly as possible");
                    return;
                }
            };
            this.run(client).await;
        });
    }

    async fn run(&self, client: kube::Client) {
        let Source::Watched { store, .. } = &*self.0 else {
            return;
        };
        let (reader, writer) = reflector::store();
        if store.set(reader).is_err() {
            return;
        }
        tracing::info!("watching namespace labels for the policy's label-selected overrides");
        // `Api<PartialObjectMeta<_>>` makes metadata-only list/watch requests.
        let api: kube::Api<PartialObjectMeta<Namespace>> = kube::Api::all(client);
        let stream =
            reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
                .default_backoff()
                .applied_objects();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "namespace watch error; retrying");
            }
        }
    }
}
