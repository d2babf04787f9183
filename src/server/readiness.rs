//! Readiness: a small registry of named conditions, all of which must hold for `/readyz`.
//!
//! Each part that must be loaded before the process can answer (the serving certificate, the
//! policy, the finalizer's informer cache) registers a condition and flips it with a detail
//! that `/readyz` shows (e.g. the policy hash and when it was loaded). Shutdown makes the whole
//! set unready at once, before the listener stops accepting, so the endpoint is taken out of
//! the Service while requests still succeed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionState {
    pub ready: bool,
    pub detail: String,
}

#[derive(Debug, Default)]
struct Inner {
    conditions: RwLock<BTreeMap<String, ConditionState>>,
    shutting_down: AtomicBool,
}

/// The set of readiness conditions. Cheap to clone; all clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    inner: Arc<Inner>,
}

/// A handle on one named condition.
#[derive(Debug, Clone)]
pub struct Condition {
    name: String,
    inner: Arc<Inner>,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub ready: bool,
    pub shutting_down: bool,
    pub conditions: Vec<(String, ConditionState)>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or takes over) a condition, initially not ready with `detail`.
    pub fn register(&self, name: impl Into<String>, detail: impl Into<String>) -> Condition {
        let name = name.into();
        self.inner.write_conditions().insert(
            name.clone(),
            ConditionState {
                ready: false,
                detail: detail.into(),
            },
        );
        Condition {
            name,
            inner: self.inner.clone(),
        }
    }

    /// Makes the process unready for good: called first thing on SIGTERM.
    pub fn shutting_down(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.report().ready
    }

    pub fn report(&self) -> Report {
        let shutting_down = self.inner.shutting_down.load(Ordering::SeqCst);
        let conditions: Vec<_> = self
            .inner
            .read_conditions()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // No condition registered yet means nothing has been loaded: not ready.
        let ready =
            !shutting_down && !conditions.is_empty() && conditions.iter().all(|(_, c)| c.ready);
        Report {
            ready,
            shutting_down,
            conditions,
        }
    }
}

impl Condition {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn set(&self, ready: bool, detail: impl Into<String>) {
        self.inner.write_conditions().insert(
            self.name.clone(),
            ConditionState {
                ready,
                detail: detail.into(),
            },
        );
    }

    pub fn ready(&self, detail: impl Into<String>) {
        self.set(true, detail);
    }

    pub fn not_ready(&self, detail: impl Into<String>) {
        self.set(false, detail);
    }
}

impl Inner {
    // A panic while holding the lock cannot leave the map half-updated (single inserts), so a
    // poisoned lock is still usable.
    fn write_conditions(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ConditionState>> {
        self.conditions.write().unwrap_or_else(|e| e.into_inner())
    }
    fn read_conditions(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ConditionState>> {
        self.conditions.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Report {
    /// The body of `/readyz`, in the style of the Kubernetes apiserver's `?verbose` output.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, c) in &self.conditions {
            let mark = if c.ready { "+" } else { "-" };
            out.push_str(&format!("[{mark}]{name}: {}\n", c.detail));
        }
        if self.shutting_down {
            out.push_str("[-]shutdown: draining, not accepting new work\n");
        }
        if self.conditions.is_empty() {
            out.push_str("[-]nothing loaded yet\n");
        }
        out.push_str(if self.ready {
            "readyz check passed\n"
        } else {
            "readyz check failed\n"
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_conditions_must_hold_and_shutdown_wins() {
        let r = Readiness::new();
        assert!(!r.is_ready(), "nothing registered is not ready");
        let tls = r.register("tls", "not loaded");
        let policy = r.register("policy", "not loaded");
        assert!(!r.is_ready());
        tls.ready("CN=x");
        assert!(!r.is_ready());
        policy.ready("sha256:abc loaded 2026-01-01T00:00:00Z");
        assert!(r.is_ready());
        let body = r.report().render();
        assert!(body.contains("[+]policy: sha256:abc"), "{body}");
        assert!(body.ends_with("readyz check passed\n"));
        policy.not_ready("reload failed");
        assert!(!r.is_ready());
        policy.ready("ok");
        r.shutting_down();
        assert!(!r.is_ready());
        assert!(r.report().render().contains("[-]shutdown"));
    }
}
