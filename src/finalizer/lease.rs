//! Leader election on a `coordination.k8s.io/v1` Lease, in the style of client-go's
//! leaderelection and kubert's `lease.rs`: every write is a replace carrying the
//! resourceVersion that was read (optimistic concurrency), so two candidates can never both
//! win the same round; a lease is free when its holder is empty or its `renewTime` plus
//! `leaseDurationSeconds` has passed; the holder gives it up on shutdown by writing an empty
//! holder, so a successor takes over at once instead of after expiry.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub duration: Duration,
    /// How often the holder renews and a candidate retries.
    pub renew_every: Duration,
}

/// What one round found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// We hold the lease (acquired, taken over, or renewed).
    Held,
    /// Someone else holds a valid lease, or won the race for it.
    Lost,
}

/// The decision of one round on an observed lease (pure): may we write ourselves in?
fn may_take(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration =
        SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0)));
    renewed
        .0
        .checked_add(duration)
        .map(|expiry| expiry < now)
        .unwrap_or(true)
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

async fn round(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<Round, kube::Error> {
    let now = Timestamp::now();
    let existing = api.get_opt(&cfg.name).await?;
    let Some(mut lease) = existing else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some(cfg.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(seconds(cfg.duration)),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Round::Held),
            Err(e) if is_conflict(&e) => Ok(Round::Lost),
            Err(e) => Err(e),
        };
    };
    if !may_take(lease.spec.as_ref(), &cfg.identity, now) {
        return Ok(Round::Lost);
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let renewing = spec.holder_identity.as_deref() == Some(cfg.identity.as_str());
    if !renewing {
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        spec.holder_identity = Some(cfg.identity.clone());
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(seconds(cfg.duration));
    // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(Round::Held),
        Err(e) if is_conflict(&e) => Ok(Round::Lost),
        Err(e) => Err(e),
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Gives the lease up if we hold it: empty holder, 1 s duration (as client-go's
/// ReleaseOnCancel), so the next candidate's round succeeds immediately.
async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    api.replace(&cfg.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

/// Runs the election until `shutdown` resolves, publishing leadership on `leader`; then
/// steps down and releases the lease.
pub async fn run(
    client: Client,
    cfg: LeaseConfig,
    leader: watch::Sender<bool>,
    shutdown: impl Future<Output = ()>,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    tokio::pin!(shutdown);
    let mut last_renewed: Option<Instant> = None;
    loop {
        match round(&api, &cfg).await {
            Ok(Round::Held) => {
                last_renewed = Some(Instant::now());
                if !*leader.borrow() {
                    tracing::info!(identity = %cfg.identity, lease = %cfg.name, "became leader");
                    leader.send_replace(true);
                }
            }
            Ok(Round::Lost) => {
                last_renewed = None;
                if *leader.borrow() {
                    tracing::warn!(identity = %cfg.identity, "lost the lease to another replica");
                }
                leader.send_replace(false);
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease round failed");
                // Keep acting only while our last renewal is surely still valid: step down
                // a renew period before the lease could expire for the others.
                let valid =
                    last_renewed.is_some_and(|t| t.elapsed() + cfg.renew_every < cfg.duration);
                if !valid && *leader.borrow() {
                    tracing::warn!("could not renew the lease in time: stepping down");
                    leader.send_replace(false);
                    last_renewed = None;
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(cfg.renew_every) => {}
        }
    }
    let was_leader = leader.send_replace(false);
    if was_leader {
        match release(&api, &cfg).await {
            Ok(()) => tracing::info!(identity = %cfg.identity, "released the lease"),
            Err(e) => {
                tracing::warn!(error = %e, "could not release the lease; it expires by itself")
            }
        }
    }
}

/// The identity of this replica: the pod name, else the host name, plus the process id so
/// two processes on one host never share one.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME") {
        if !pod.is_empty() {
            return pod;
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "hookguard".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn who_may_take_the_lease() {
        let now = Timestamp::now();
        assert!(may_take(None, "me", now), "no lease yet");
        assert!(may_take(Some(&spec(None, 0, 15)), "me", now), "released");
        assert!(
            may_take(Some(&spec(Some(""), 0, 15)), "me", now),
            "released"
        );
        assert!(
            may_take(Some(&spec(Some("me"), 0, 15)), "me", now),
            "renewal"
        );
        assert!(
            may_take(Some(&spec(Some("me"), 100, 15)), "me", now),
            "our own expired lease"
        );
        assert!(
            !may_take(Some(&spec(Some("other"), 5, 15)), "me", now),
            "held and valid"
        );
        assert!(
            may_take(Some(&spec(Some("other"), 16, 15)), "me", now),
            "expired"
        );
        let no_times = LeaseSpec {
            holder_identity: Some("other".into()),
            ..LeaseSpec::default()
        };
        assert!(may_take(Some(&no_times), "me", now), "never renewed");
    }
}
