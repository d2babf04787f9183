//! The kube I/O around the decision core: one reconcile per watch event (or requeue), which
//! observes, asks `decide`, and carries the action out. Every write is guarded: deletes carry
//! uid + resourceVersion preconditions, finalizer removal is a `test`-guarded JSON Patch, and
//! the outcome Event has a deterministic name so a retry or a restart never duplicates it.

use super::admin::Metrics;
use super::decide::{
    self, Action as Decision, CleanupSettings, DeleteReason, Observed, Outcome, ReleaseReason,
};
use super::family::FamilyIndex;
use super::observe::{observe, StatusReader};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams,
    PostParams, Preconditions, PropagationPolicy,
};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How soon to look again while the release work waits on something (pods going away).
const RELEASE_RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {kind} {namespace}/{name}: {source}")]
    Kube {
        op: &'static str,
        kind: String,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Everything one kind's reconciler needs.
pub struct KindContext {
    pub client: Client,
    pub resource: ApiResource,
    pub reader: StatusReader,
    pub settings: CleanupSettings,
    pub family: Arc<Mutex<FamilyIndex>>,
    pub family_trigger: futures::channel::mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
    pub leader: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    /// Who we are in Events (`reportingInstance`) and logs.
    pub identity: String,
}

impl KindContext {
    fn kind(&self) -> &str {
        &self.resource.kind
    }

    fn labels(&self, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut l = vec![("kind", self.kind().to_owned())];
        l.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        l
    }

    fn api(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &self.resource),
            None => Api::all_with(self.client.clone(), &self.resource),
        }
    }

    fn err(&self, op: &'static str, obj: &DynamicObject, source: kube::Error) -> Error {
        self.metrics
            .errors
            .get_or_create(&self.labels(&[("op", op)]))
            .inc();
        Error::Kube {
            op,
            kind: self.kind().to_owned(),
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
            source,
        }
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn until(at: Timestamp, now: Timestamp) -> Action {
    if at == Timestamp::MAX {
        return Action::await_change();
    }
    let wait = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
    // A few ms of slack so the due time has surely passed when we look again.
    Action::requeue(wait + Duration::from_millis(20))
}

pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<KindContext>) -> Result<Action, Error> {
    ctx.metrics.reconciles.get_or_create(&ctx.labels(&[])).inc();
    if !*ctx.leader.borrow() {
        // Leadership gained later triggers a full reconcile (`reconcile_all_on`).
        return Ok(Action::await_change());
    }
    let observed = observe(ctx.reader, &obj);
    let namespace = obj.namespace();
    let name = obj.name_any();
    let rank = if observed.in_family() {
        let ranked = ctx.family.lock().ok().and_then(|idx| {
            idx.rank(
                namespace.as_deref().unwrap_or(""),
                &name,
                ctx.settings.keep_per_family,
            )
        });
        ranked.map(|(rank, beyond)| {
            // The newest member makes older ones excess: look at them again.
            if rank == 0 {
                for other in beyond.into_iter().filter(|n| *n != name) {
                    let mut r = ObjectRef::new_with(&other, ctx.resource.clone());
                    if let Some(ns) = &namespace {
                        r = r.within(ns);
                    }
                    let _ = ctx.family_trigger.unbounded_send(r);
                }
            }
            rank
        })
    } else {
        None
    };
    let now = Timestamp::now();
    let decision = decide::decide(&observed, rank, &ctx.settings, now);
    tracing::debug!(kind = ctx.kind(), namespace = ?namespace, name = %name, ?decision, "decided");
    match decision {
        Decision::Nothing(_) => Ok(Action::await_change()),
        Decision::WaitUntil(at) => Ok(until(at, now)),
        Decision::Delete(reason) => delete(&obj, &observed, reason, &ctx).await,
        Decision::Release(reason) => release(&obj, &observed, reason, &ctx, now).await,
    }
}

pub fn error_policy(_obj: Arc<DynamicObject>, err: &Error, _ctx: Arc<KindContext>) -> Action {
    tracing::warn!(error = %err, "reconcile failed, retrying");
    // Short and bounded: the max hold is measured from deletionTimestamp, so retries never
    // extend a hold beyond it.
    Action::requeue(Duration::from_secs(1))
}

async fn delete(
    obj: &DynamicObject,
    observed: &Observed,
    reason: DeleteReason,
    ctx: &KindContext,
) -> Result<Action, Error> {
    let api = ctx.api(obj.namespace().as_deref());
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        // Exactly the object we decided on: not a same-name successor, not a changed one.
        preconditions: Some(Preconditions {
            uid: obj.metadata.uid.clone(),
            resource_version: obj.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(&obj.name_any(), &params).await {
        Ok(_) => {}
        // Gone already, or changed since we looked (the watch brings the new version).
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => return Ok(Action::await_change()),
        Err(e) => return Err(ctx.err("delete", obj, e)),
    }
    ctx.metrics
        .deletions
        .get_or_create(&ctx.labels(&[("reason", reason.as_str())]))
        .inc();
    tracing::info!(
        kind = ctx.kind(),
        namespace = obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        reason = reason.as_str(),
        outcome = observed.outcome.as_str(),
        "deleted hook"
    );
    Ok(Action::await_change())
}

/// Job → its pods by `controller-uid` (and the 1.27+ prefixed label); Workflow → its pods by
/// `workflows.argoproj.io/workflow`. Other kinds have no pods of their own.
fn pod_selectors(reader: StatusReader, obj: &DynamicObject) -> Vec<String> {
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    match reader {
        StatusReader::Job if !uid.is_empty() => {
            vec![
                format!("controller-uid={uid}"),
                format!("batch.kubernetes.io/controller-uid={uid}"),
            ]
        }
        StatusReader::Workflow => {
            vec![format!("workflows.argoproj.io/workflow={}", obj.name_any())]
        }
        _ => Vec::new(),
    }
}

/// Deletes the hook's leftover pods (orphan propagation leaves them running). Returns how
/// many pods are still there and not yet being deleted.
async fn remove_pods(obj: &DynamicObject, ctx: &KindContext) -> Result<usize, Error> {
    let Some(ns) = obj.namespace() else {
        return Ok(0);
    };
    let selectors = pod_selectors(ctx.reader, obj);
    if selectors.is_empty() {
        return Ok(0);
    }
    let owner_uid = obj.metadata.uid.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut seen = std::collections::HashSet::new();
    let mut remaining = 0;
    for selector in selectors {
        let list = pods
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| ctx.err("list-pods", obj, e))?;
        for pod in list.items {
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            if !seen.insert(uid.clone()) || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            // Never touch a pod another controller owns (a label can be copied).
            let owned_elsewhere = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid != owner_uid);
            if owned_elsewhere {
                continue;
            }
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match pods.delete(&pod.name_any(), &params).await {
                Ok(either) => {
                    ctx.metrics
                        .orphaned_pods_deleted
                        .get_or_create(&ctx.labels(&[]))
                        .inc();
                    // Left: still terminating (a kubelet will finish it); right: gone.
                    if either.is_left() {
                        tracing::debug!(pod = %pod.name_any(), "leftover pod is terminating");
                    }
                }
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                Err(e) => {
                    remaining += 1;
                    tracing::warn!(pod = %pod.name_any(), error = %e, "cannot delete a leftover pod");
                }
            }
        }
    }
    Ok(remaining)
}

fn event_name(obj: &DynamicObject, suffix: &str) -> String {
    let uid = obj.metadata.uid.as_deref().unwrap_or("nouid");
    let mut base = obj.name_any();
    // Event names are DNS subdomains (≤ 253 chars): keep room for the uid and suffix.
    base.truncate(253 - uid.len() - suffix.len() - 2);
    format!("{base}.{uid}.{suffix}")
}

/// Creates the Event once: a deterministic name makes a second attempt (a retry, a restart,
/// another replica) a harmless AlreadyExists.
async fn record_event(
    obj: &DynamicObject,
    ctx: &KindContext,
    suffix: &str,
    warning: bool,
    reason: &str,
    note: String,
) -> Result<(), kube::Error> {
    let Some(ns) = obj.namespace() else {
        return Ok(());
    };
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    let event = Event {
        metadata: ObjectMeta {
            name: Some(event_name(obj, suffix)),
            namespace: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(Timestamp::now())),
        action: Some("Release".to_owned()),
        reason: Some(reason.to_owned()),
        note: Some(note.chars().take(1000).collect()),
        type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
        reporting_controller: Some("hookguard.io/finalizer".to_owned()),
        reporting_instance: Some(ctx.identity.chars().take(128).collect()),
        regarding: Some(ObjectReference {
            api_version: Some(ctx.resource.api_version.clone()),
            kind: Some(ctx.resource.kind.clone()),
            name: Some(obj.name_any()),
            namespace: Some(ns),
            uid: obj.metadata.uid.clone(),
            resource_version: obj.metadata.resource_version.clone(),
            field_path: None,
        }),
        ..Event::default()
    };
    match events.create(&PostParams::default(), &event).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reason of the outcome Event, per outcome.
pub fn outcome_reason(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "HookSucceeded",
        Outcome::Failed => "HookFailed",
        Outcome::Running => "HookUnfinished",
    }
}

async fn release(
    obj: &DynamicObject,
    observed: &Observed,
    mut reason: ReleaseReason,
    ctx: &KindContext,
    now: Timestamp,
) -> Result<Action, Error> {
    let deleted_at = observed.deletion.unwrap_or(now);
    let expired = decide::hold_expired(deleted_at, &ctx.settings, now);
    let held_for = now.duration_since(deleted_at);
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();

    // 1. The outcome Event. A failure holds the finalizer (bounded by max_hold).
    let finished = observed
        .finished
        .map(|t| t.to_string())
        .unwrap_or_else(|| "-".to_owned());
    let note = format!(
        "{} {}/{} outcome {} (finished {}); deletion held {:.1}s by hookguard",
        ctx.kind(),
        ns,
        name,
        observed.outcome,
        finished,
        held_for.as_secs_f64()
    );
    let outcome_warning = observed.outcome != Outcome::Succeeded;
    if let Err(e) = record_event(
        obj,
        ctx,
        "outcome",
        outcome_warning,
        outcome_reason(observed.outcome),
        note,
    )
    .await
    {
        let err = ctx.err("record-event", obj, e);
        if !expired {
            return Err(err);
        }
        tracing::warn!(error = %err, "releasing without the outcome Event: max hold reached");
        reason = ReleaseReason::HoldTimeout;
    }

    // 2. The Job's (or Workflow's) pods must be gone.
    match remove_pods(obj, ctx).await {
        Ok(0) => {}
        Ok(left) if !expired => {
            tracing::debug!(left, "pods still present, holding");
            return Ok(Action::requeue(RELEASE_RETRY));
        }
        Ok(left) => {
            tracing::warn!(left, "releasing with pods left: max hold reached");
            reason = ReleaseReason::HoldTimeout;
        }
        Err(e) if !expired => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "releasing without pod cleanup: max hold reached");
            reason = ReleaseReason::HoldTimeout;
        }
    }

    // 3. Remove only hookguard's finalizer.
    match remove_finalizer(obj, ctx).await? {
        Removal::Removed => {}
        // Released already (a reconcile on a stale cache entry, or release-finalizers):
        // recorded once, by whoever removed it.
        Removal::NotThere => return Ok(Action::await_change()),
        Removal::Retry => return Ok(Action::requeue(RELEASE_RETRY)),
    }

    if reason == ReleaseReason::HoldTimeout {
        ctx.metrics
            .hold_timeouts
            .get_or_create(&ctx.labels(&[]))
            .inc();
        let note = format!(
            "hookguard released its finalizer after {:.1}s (max hold {:?}) without seeing the hook finish",
            held_for.as_secs_f64(),
            ctx.settings.max_hold
        );
        if let Err(e) = record_event(obj, ctx, "hold-timeout", true, "HoldTimeout", note).await {
            tracing::warn!(error = %e, "cannot record the HoldTimeout Event");
        }
    }
    let reason_str = match reason {
        ReleaseReason::Recorded => "Recorded",
        ReleaseReason::HoldTimeout => "HoldTimeout",
    };
    ctx.metrics
        .releases
        .get_or_create(&ctx.labels(&[("reason", reason_str)]))
        .inc();
    ctx.metrics
        .outcomes_recorded
        .get_or_create(&ctx.labels(&[("outcome", observed.outcome.as_str())]))
        .inc();
    tracing::info!(
        kind = ctx.kind(),
        namespace = %ns,
        name = %name,
        uid = obj.metadata.uid.as_deref().unwrap_or(""),
        outcome = observed.outcome.as_str(),
        finished = %finished,
        held_ms = held_for.as_millis() as i64,
        release = reason_str,
        "hook outcome recorded, finalizer released"
    );
    Ok(Action::await_change())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// This call removed it.
    Removed,
    /// It was not there any more (or the object is gone).
    NotThere,
    /// Conflicting writers twice in a row: look again soon.
    Retry,
}

/// Removes `hookguard.io/cleanup` with a guarded JSON Patch. On a failed `test` (someone
/// changed the finalizer list since the watch delivered it) re-reads once and retries.
async fn remove_finalizer(obj: &DynamicObject, ctx: &KindContext) -> Result<Removal, Error> {
    let api = ctx.api(obj.namespace().as_deref());
    let name = obj.name_any();
    let mut current = obj.clone();
    for attempt in 0..2 {
        if current.metadata.uid != obj.metadata.uid {
            return Ok(Removal::NotThere); // a new object with the same name: ours is gone
        }
        let finalizers = current.metadata.finalizers.clone().unwrap_or_default();
        let Some(patch) = decide::finalizer_removal_patch(&finalizers) else {
            return Ok(Removal::NotThere);
        };
        match api
            .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => return Ok(Removal::Removed),
            Err(e) if is_status(&e, 404) => return Ok(Removal::NotThere),
            // 422: a `test` failed; 409: conflicting write. Re-read and try once more.
            Err(e) if (is_status(&e, 422) || is_status(&e, 409)) && attempt == 0 => {
                match api.get_opt(&name).await {
                    Ok(Some(fresh)) => current = fresh,
                    Ok(None) => return Ok(Removal::NotThere),
                    Err(e) => return Err(ctx.err("get", obj, e)),
                }
            }
            Err(e) if is_status(&e, 422) || is_status(&e, 409) => return Ok(Removal::Retry),
            Err(e) => return Err(ctx.err("patch-finalizers", obj, e)),
        }
    }
    Ok(Removal::Retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_deterministic_and_bounded() {
        let mut obj = DynamicObject::new("x", &ApiResource::erase::<Pod>(&()));
        obj.metadata.uid = Some("0b1c2d3e-aaaa-bbbb-cccc-000000000000".into());
        assert_eq!(
            event_name(&obj, "outcome"),
            "x.0b1c2d3e-aaaa-bbbb-cccc-000000000000.outcome"
        );
        obj.metadata.name = Some("n".repeat(253));
        let long = event_name(&obj, "hold-timeout");
        assert_eq!(long.len(), 253);
        assert!(long.ends_with(".0b1c2d3e-aaaa-bbbb-cccc-000000000000.hold-timeout"));
    }

    #[test]
    fn pod_selectors_per_kind() {
        let mut obj = DynamicObject::new("j", &ApiResource::erase::<Pod>(&()));
        obj.metadata.uid = Some("u1".into());
        assert_eq!(
            pod_selectors(StatusReader::Job, &obj),
            vec!["controller-uid=u1", "batch.kubernetes.io/controller-uid=u1"]
        );
        assert_eq!(
            pod_selectors(StatusReader::Workflow, &obj),
            vec!["workflows.argoproj.io/workflow=j"]
        );
        assert!(pod_selectors(StatusReader::Pod, &obj).is_empty());
        assert!(pod_selectors(StatusReader::Exists, &obj).is_empty());
    }

    #[test]
    fn requeue_until() {
        let now = Timestamp::from_second(1000).expect("ts");
        let at = Timestamp::from_second(1002).expect("ts");
        assert_eq!(until(at, now), Action::requeue(Duration::from_millis(2020)));
        assert_eq!(until(now, at), Action::requeue(Duration::from_millis(20)));
        assert_eq!(until(Timestamp::MAX, now), Action::await_change());
    }
}
