//! Live reload: poll the policy file and offer changed contents to the store.
//!
//! Polling (every ~2 s) instead of inotify because a ConfigMap volume updates by swapping a
//! `..data` symlink in the directory: the file path itself never changes, and reading through
//! the symlink always yields one complete version. Comparing content hashes makes a poll that
//! finds nothing new cost one small read.

use super::store::{PolicyStore, ReloadOutcome};
use super::PolicyError;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Reads the policy file (following symlinks).
pub async fn read(path: &Path) -> Result<Vec<u8>, PolicyError> {
    tokio::fs::read(path).await.map_err(|e| PolicyError::Read {
        source_name: path.display().to_string(),
        message: e.to_string(),
    })
}

/// One poll: read and offer at once. Logs what happened.
pub async fn poll_once<T>(store: &PolicyStore<T>, path: &Path) -> ReloadOutcome {
    offer_logged(store, read(path).await, path)
}

fn offer_logged<T>(
    store: &PolicyStore<T>,
    read: Result<Vec<u8>, PolicyError>,
    path: &Path,
) -> ReloadOutcome {
    let source = path.display().to_string();
    let outcome = store.offer(read, &source);
    match &outcome {
        ReloadOutcome::Unchanged => {}
        ReloadOutcome::Applied { hash } => {
            tracing::info!(policy = %source, hash = %hash, "policy reloaded; applies from the next request");
        }
        ReloadOutcome::Rejected { error } => {
            tracing::error!(policy = %source, error = %error, active = %store.policy().hash,
                "policy reload rejected; the previous policy stays in force");
        }
    }
    outcome
}

/// Polls `path` every `interval` until `shutdown` resolves; calls `on_applied` after each
/// successful reload (e.g. to start the namespace watch when labels become needed).
///
/// New content is offered only once two consecutive polls read the same bytes: an editor or
/// `kubectl cp` that writes the file in place can be caught half-way, and a truncated file
/// can still be valid YAML that is weaker than the whole one. (A ConfigMap swap is atomic;
/// the wait costs one interval.)
pub async fn run<T: Send + Sync + 'static>(
    store: Arc<PolicyStore<T>>,
    path: PathBuf,
    interval: Duration,
    on_applied: impl Fn(&PolicyStore<T>) + Send + 'static,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_read: Option<Result<Vec<u8>, PolicyError>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = read(&path).await;
                let stable = last_read.as_ref() == Some(&now);
                last_read = Some(now.clone());
                if !stable {
                    continue;
                }
                if let ReloadOutcome::Applied { .. } = offer_logged(&store, now, &path) {
                    on_applied(&store);
                }
            }
            () = &mut shutdown => return,
        }
    }
}
