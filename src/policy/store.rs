//! The active policy: swapped atomically on reload, with what the admin plane shows about it.
//!
//! Readers take an `Arc` snapshot (`current()`) and use it for the whole request, so a
//! request never sees half of one policy and half of another. A reload that fails leaves the
//! snapshot untouched and is only counted and remembered.

use super::{Policy, PolicyError};
use crate::recent;
use serde::Serialize;
use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

/// A parsed policy with where it came from.
#[derive(Debug, Clone)]
pub struct ActivePolicy {
    pub policy: Arc<Policy>,
    /// Hex sha256 of the file's bytes (what `sha256sum FILE` prints); of "" for the defaults.
    pub hash: String,
    /// The file path, or `built-in defaults`.
    pub source: String,
    pub loaded_at: SystemTime,
}

impl ActivePolicy {
    /// Parses file contents; the hash is of exactly these bytes.
    pub fn parse(bytes: &[u8], source: &str) -> Result<ActivePolicy, PolicyError> {
        let text = std::str::from_utf8(bytes).map_err(|e| PolicyError::Read {
            source_name: source.to_owned(),
            message: format!("not UTF-8: {e}"),
        })?;
        let policy = Policy::from_yaml(text, source)?;
        Ok(ActivePolicy {
            policy: Arc::new(policy),
            hash: sha256_hex(bytes),
            source: source.to_owned(),
            loaded_at: SystemTime::now(),
        })
    }

    /// The built-in defaults (no `--policy`).
    pub fn defaults() -> ActivePolicy {
        ActivePolicy {
            policy: Arc::new(Policy::default()),
            hash: sha256_hex(b""),
            source: "built-in defaults".to_owned(),
            loaded_at: SystemTime::now(),
        }
    }

    /// The first 12 hex digits of the hash, for log lines.
    pub fn short_hash(&self) -> ShortHash {
        ShortHash::from(self.hash.as_str())
    }
}

/// Up to the first 12 bytes of a policy hash (whole characters), as log lines show it. Held
/// inline because every request's decision carries one: as a `String` it was an allocation
/// and a free per request.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct ShortHash {
    bytes: [u8; ShortHash::LEN],
    len: u8,
}

impl ShortHash {
    const LEN: usize = 12;

    pub fn as_str(&self) -> &str {
        // Always a whole-character prefix of a `str` (see `from`), so this never fails.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl From<&str> for ShortHash {
    fn from(hash: &str) -> Self {
        let mut len = hash.len().min(Self::LEN);
        while !hash.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; Self::LEN];
        bytes[..len].copy_from_slice(&hash.as_bytes()[..len]);
        ShortHash {
            bytes,
            len: len as u8,
        }
    }
}

impl std::fmt::Debug for ShortHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the admin plane shows: `/readyz` detail and metrics such as
/// `hookguard_policy_info{hash,source} 1`, `hookguard_policy_loaded_timestamp_seconds` and
/// `hookguard_policy_reloads_total{result="ok|failed"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    pub hash: String,
    pub source: String,
    /// Seconds since the Unix epoch when the active policy was loaded.
    pub loaded_at_unix: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// The last failed reload's error, cleared by the next successful one.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    ok: u64,
    failed: u64,
    last_error: Option<String>,
    /// Hash of the content that last failed, so an unchanged broken file is reported once.
    failed_hash: Option<String>,
}

struct Snapshot<T> {
    policy: Arc<ActivePolicy>,
    derived: Arc<T>,
}

type Derive<T> = Box<dyn Fn(&Arc<ActivePolicy>) -> T + Send + Sync>;

/// The active policy and a value derived from it once per load (for the webhook: the
/// `AdmissionConfig`), so requests pay nothing for the derivation.
pub struct PolicyStore<T> {
    snapshot: RwLock<Snapshot<T>>,
    /// Tells stores apart in the per-thread snapshot cache (`with_current`); never reused.
    id: u64,
    /// Bumped after each swap of `snapshot`, so per-thread copies know they are stale.
    generation: AtomicU64,
    counters: Mutex<Counters>,
    derive: Derive<T>,
}

/// A thread's copy of a store's derived value: (store id, generation, the value).
type CachedSnapshot = (u64, u64, Arc<dyn Any + Send + Sync>);

thread_local! {
    /// `with_current`'s per-thread copies. A few entries: one store serves a process, more
    /// exist only in tests.
    static SNAPSHOTS: RefCell<Vec<CachedSnapshot>> = const { RefCell::new(Vec::new()) };
}

/// Entries kept in each thread's `SNAPSHOTS`.
const CACHED_SNAPSHOTS: usize = 4;

/// What a reload attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Same bytes as the active policy (or as the last failed attempt): nothing to do.
    Unchanged,
    Applied {
        hash: String,
    },
    Rejected {
        error: String,
    },
}

impl<T> PolicyStore<T> {
    pub fn new(
        initial: ActivePolicy,
        derive: impl Fn(&Arc<ActivePolicy>) -> T + Send + Sync + 'static,
    ) -> Self {
        let policy = Arc::new(initial);
        let derived = Arc::new(derive(&policy));
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        PolicyStore {
            snapshot: RwLock::new(Snapshot { policy, derived }),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            counters: Mutex::new(Counters::default()),
            derive: Box::new(derive),
        }
    }

    /// The derived value of the active policy; hold it for the whole request.
    pub fn current(&self) -> Arc<T> {
        // A poisoned lock still holds a complete snapshot: swaps are a single assignment.
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .derived
            .clone()
    }

    /// Runs `f` on the derived value of the active policy, as `current()` would give it, but
    /// from this thread's copy while no reload happened since it was taken. `current()` takes
    /// a read lock and clones an `Arc`: four atomic writes per request to cache lines every
    /// worker thread writes too. Here a request only reads the generation, which changes
    /// once per reload. A reload is seen by the next call after it on every thread.
    pub fn with_current<R>(&self, f: impl FnOnce(&T) -> R) -> R
    where
        T: Send + Sync + 'static,
    {
        // Read before the snapshot is taken: the copy is then at least this new.
        let generation = self.generation.load(Ordering::Acquire);
        SNAPSHOTS.with(|cell| {
            // Nested in another call's `f` (not done today), the list is in use: go direct.
            let Ok(mut cache) = cell.try_borrow_mut() else {
                return f(&self.current());
            };
            let fresh = || -> CachedSnapshot { (self.id, generation, self.current()) };
            let i = recent::find_or_add(
                &mut cache,
                CACHED_SNAPSHOTS,
                |(id, ..)| *id == self.id,
                fresh,
            );
            // A stale copy is refreshed in place.
            if cache[i].1 != generation {
                cache[i] = fresh();
            }
            match cache[i].2.downcast_ref::<T>() {
                Some(value) => f(value),
                // Unreachable: an id belongs to one store, of one `T`.
                None => f(&self.current()),
            }
        })
    }

    pub fn policy(&self) -> Arc<ActivePolicy> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .policy
            .clone()
    }

    /// Offers new file contents (or a read error). A valid, different policy replaces the
    /// active one; anything else keeps it.
    pub fn offer(&self, read: Result<Vec<u8>, PolicyError>, source: &str) -> ReloadOutcome {
        let bytes = match read {
            Ok(b) => b,
            Err(e) => return self.reject(None, e.to_string()),
        };
        let hash = sha256_hex(&bytes);
        if hash == self.policy().hash {
            // Back to the active content (e.g. a bad edit was reverted): clear the error.
            let mut c = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
            c.failed_hash = None;
            c.last_error = None;
            return ReloadOutcome::Unchanged;
        }
        {
            let c = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
            if c.failed_hash.as_deref() == Some(hash.as_str()) {
                return ReloadOutcome::Unchanged;
            }
        }
        match ActivePolicy::parse(&bytes, source) {
            Ok(active) => {
                let policy = Arc::new(active);
                // Derive outside the lock; the swap itself is one assignment.
                let derived = Arc::new((self.derive)(&policy));
                *self
                    .snapshot
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Snapshot { policy, derived };
                self.generation.fetch_add(1, Ordering::Release);
                let mut c = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
                c.ok += 1;
                c.last_error = None;
                c.failed_hash = None;
                ReloadOutcome::Applied { hash }
            }
            Err(e) => self.reject(Some(hash), e.to_string()),
        }
    }

    fn reject(&self, hash: Option<String>, error: String) -> ReloadOutcome {
        let mut c = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if hash.is_none() && c.last_error.as_deref() == Some(error.as_str()) {
            // The same read error again (e.g. the file is still missing): count it once.
            return ReloadOutcome::Unchanged;
        }
        c.failed += 1;
        c.last_error = Some(error.clone());
        c.failed_hash = hash;
        ReloadOutcome::Rejected { error }
    }

    pub fn status(&self) -> PolicyStatus {
        let p = self.policy();
        let c = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        PolicyStatus {
            hash: p.hash.clone(),
            source: p.source.clone(),
            loaded_at_unix: p
                .loaded_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            reloads_ok: c.ok,
            reloads_failed: c.failed,
            last_error: c.last_error.clone(),
        }
    }
}
