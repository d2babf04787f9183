//! From a live object (as the watch delivers it) to the decision core's `Observed`, and the
//! pruning that keeps the watch cache small: 10 000 hooks must fit in well under 100 MiB, so
//! only the fields the decision reads are kept (reference §2.4 for the status readings).

use super::decide::{Observed, Outcome};
use crate::hooks::keys;
use crate::mutation::KindRef;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// How a kind's outcome is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusReader {
    /// `status.conditions[]` Complete/Failed with status "True".
    Job,
    /// `status.phase` Succeeded/Failed.
    Pod,
    /// Argo Workflow `status.phase` (gitops-engine `health_argo.go`).
    Workflow,
    /// No health check: succeeded as soon as it exists.
    Exists,
}

impl StatusReader {
    pub fn for_kind(kind: &KindRef) -> StatusReader {
        match (kind.group.as_str(), kind.kind.as_str()) {
            ("batch", "Job") => StatusReader::Job,
            ("", "Pod") => StatusReader::Pod,
            ("argoproj.io", "Workflow") => StatusReader::Workflow,
            _ => StatusReader::Exists,
        }
    }
}

/// The annotations kept in the cache: the hook annotations the decision reads, and Argo's
/// tracking id (it scopes a generateName family to one application).
pub const TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// Label-based tracking (Argo CD before v3.0, or configured).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

fn parse_time(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
}

fn latest(times: impl Iterator<Item = Option<Timestamp>>) -> Option<Timestamp> {
    times.flatten().max()
}

/// The hook's outcome and, when known, when it finished. `status` is the object's `status`.
pub fn read_outcome(reader: StatusReader, status: Option<&Value>) -> (Outcome, Option<Timestamp>) {
    let status = status.unwrap_or(&Value::Null);
    match reader {
        StatusReader::Job => {
            let conditions = status.get("conditions").and_then(Value::as_array);
            let find = |kind: &str| {
                conditions.and_then(|cs| {
                    cs.iter().find(|c| {
                        c.get("type").and_then(Value::as_str) == Some(kind)
                            && c.get("status").and_then(Value::as_str) == Some("True")
                    })
                })
            };
            if let Some(c) = find("Failed") {
                return (Outcome::Failed, parse_time(c.get("lastTransitionTime")));
            }
            if let Some(c) = find("Complete") {
                let at = parse_time(status.get("completionTime"))
                    .or_else(|| parse_time(c.get("lastTransitionTime")));
                return (Outcome::Succeeded, at);
            }
            (Outcome::Running, None)
        }
        StatusReader::Pod => {
            let outcome = match status.get("phase").and_then(Value::as_str) {
                Some("Succeeded") => Outcome::Succeeded,
                Some("Failed") => Outcome::Failed,
                _ => return (Outcome::Running, None),
            };
            let terminated = ["containerStatuses", "initContainerStatuses"]
                .iter()
                .filter_map(|k| status.get(*k).and_then(Value::as_array))
                .flatten()
                .map(|cs| parse_time(cs.pointer("/state/terminated/finishedAt")));
            let at = latest(terminated).or_else(|| {
                let conditions = status.get("conditions").and_then(Value::as_array);
                latest(
                    conditions
                        .into_iter()
                        .flatten()
                        .map(|c| parse_time(c.get("lastTransitionTime"))),
                )
            });
            (outcome, at)
        }
        StatusReader::Workflow => {
            let outcome = match status.get("phase").and_then(Value::as_str) {
                None | Some("") | Some("Pending") | Some("Running") => {
                    return (Outcome::Running, None)
                }
                Some("Succeeded") => Outcome::Succeeded,
                // Failed, Error and anything unknown (Argo: Unknown health → Failed).
                Some(_) => Outcome::Failed,
            };
            (outcome, parse_time(status.get("finishedAt")))
        }
        StatusReader::Exists => (Outcome::Succeeded, None),
    }
}

pub fn observe(reader: StatusReader, obj: &DynamicObject) -> Observed {
    let meta = &obj.metadata;
    let (outcome, finished) = read_outcome(reader, obj.data.get("status"));
    Observed::from_parts(
        meta.labels.as_ref(),
        meta.annotations.as_ref(),
        meta.finalizers.as_deref().unwrap_or(&[]),
        meta.deletion_timestamp.as_ref().map(|t| t.0),
        meta.creation_timestamp.as_ref().map(|t| t.0),
        meta.generate_name.as_deref(),
        outcome,
        finished,
    )
}

/// The application a hook belongs to, for scoping its generateName family: the app name of
/// Argo's tracking id (`<app>:<group>/<kind>:<ns>/<name>`), else the instance label.
pub fn app_of(obj: &DynamicObject) -> Option<&str> {
    let from_annotation = obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TRACKING_ID))
        .and_then(|t| t.split_once(':').map(|(app, _)| app));
    from_annotation.or_else(|| {
        obj.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(INSTANCE_LABEL))
            .map(String::as_str)
    })
}

fn keep_fields(v: Option<&Value>, fields: &[&str]) -> Value {
    let mut out = Map::new();
    if let Some(Value::Object(m)) = v {
        for f in fields {
            if let Some(x) = m.get(*f) {
                out.insert((*f).to_owned(), x.clone());
            }
        }
    }
    Value::Object(out)
}

/// Drops everything the decision and the release step do not read. Applied to every object
/// before it enters the cache (it runs once per watch event).
pub fn prune(reader: StatusReader, obj: &mut DynamicObject) {
    let meta = &mut obj.metadata;
    meta.managed_fields = None;
    meta.owner_references = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|k, _| keys::HOOK_ANNOTATIONS.contains(&k.as_str()) || k == TRACKING_ID);
    }
    if let Some(labels) = meta.labels.as_mut() {
        labels.retain(|k, _| k == keys::MANAGED_LABEL || k == INSTANCE_LABEL);
    }
    let status = obj.data.get("status");
    let pruned = match reader {
        StatusReader::Job => {
            let mut s = keep_fields(status, &["completionTime"]);
            if let Some(cs) = status
                .and_then(|s| s.get("conditions"))
                .and_then(Value::as_array)
            {
                let cs: Vec<Value> = cs
                    .iter()
                    .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
                    .map(|c| keep_fields(Some(c), &["type", "status", "lastTransitionTime"]))
                    .collect();
                s["conditions"] = Value::Array(cs);
            }
            s
        }
        StatusReader::Pod => {
            let (outcome, finished) = read_outcome(reader, status);
            // Keep the phase, and the finish time in a form `read_outcome` reads back.
            let mut s = keep_fields(status, &["phase"]);
            if outcome.is_finished() {
                if let Some(at) = finished {
                    s["conditions"] = json!([{"lastTransitionTime": at.to_string()}]);
                }
            }
            s
        }
        StatusReader::Workflow => keep_fields(status, &["phase", "finishedAt"]),
        StatusReader::Exists => Value::Object(Map::new()),
    };
    obj.data = json!({ "status": pruned });
}

/// `true` when the object carries hookguard's managed label (the watch selects on it, but a
/// cache can still hold stale entries after a relabel).
pub fn is_managed(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(keys::MANAGED_LABEL))
        .is_some_and(|v| v == keys::MANAGED_LABEL_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).expect("a valid object")
    }

    fn t(s: &str) -> Option<Timestamp> {
        Some(s.parse().expect("timestamp"))
    }

    #[test]
    fn job_conditions_need_status_true() {
        let st = json!({"conditions": [{"type": "Complete", "status": "False", "lastTransitionTime": "2024-01-01T00:00:00Z"}]});
        assert_eq!(
            read_outcome(StatusReader::Job, Some(&st)),
            (Outcome::Running, None)
        );
        let st = json!({"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2024-01-01T00:00:05Z"}],
                        "completionTime": "2024-01-01T00:00:04Z"});
        assert_eq!(
            read_outcome(StatusReader::Job, Some(&st)),
            (Outcome::Succeeded, t("2024-01-01T00:00:04Z"))
        );
        let st = json!({"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": "2024-01-01T00:01:00Z"}]});
        assert_eq!(
            read_outcome(StatusReader::Job, Some(&st)),
            (Outcome::Failed, t("2024-01-01T00:01:00Z"))
        );
        let st = json!({"conditions": [{"type": "Suspended", "status": "True"}]});
        assert_eq!(
            read_outcome(StatusReader::Job, Some(&st)).0,
            Outcome::Running
        );
        assert_eq!(read_outcome(StatusReader::Job, None).0, Outcome::Running);
        // Garbage never panics.
        let st = json!({"conditions": "nope"});
        assert_eq!(
            read_outcome(StatusReader::Job, Some(&st)).0,
            Outcome::Running
        );
    }

    #[test]
    fn pod_phases() {
        for (phase, want) in [
            ("Pending", Outcome::Running),
            ("Running", Outcome::Running),
            ("Unknown", Outcome::Running),
            ("Succeeded", Outcome::Succeeded),
            ("Failed", Outcome::Failed),
        ] {
            assert_eq!(
                read_outcome(StatusReader::Pod, Some(&json!({"phase": phase}))).0,
                want,
                "{phase}"
            );
        }
        let st = json!({"phase": "Failed", "containerStatuses": [
            {"state": {"terminated": {"finishedAt": "2024-01-01T00:00:03Z"}}},
            {"state": {"terminated": {"finishedAt": "2024-01-01T00:00:09Z"}}}]});
        assert_eq!(
            read_outcome(StatusReader::Pod, Some(&st)),
            (Outcome::Failed, t("2024-01-01T00:00:09Z"))
        );
    }

    #[test]
    fn workflow_phases() {
        for (phase, want) in [
            ("", Outcome::Running),
            ("Pending", Outcome::Running),
            ("Running", Outcome::Running),
            ("Succeeded", Outcome::Succeeded),
            ("Failed", Outcome::Failed),
            ("Error", Outcome::Failed),
            ("Weird", Outcome::Failed),
        ] {
            assert_eq!(
                read_outcome(StatusReader::Workflow, Some(&json!({"phase": phase}))).0,
                want,
                "{phase}"
            );
        }
        assert_eq!(
            read_outcome(StatusReader::Workflow, None).0,
            Outcome::Running
        );
    }

    #[test]
    fn kinds_without_health_succeed_on_existence() {
        assert_eq!(
            read_outcome(StatusReader::Exists, None),
            (Outcome::Succeeded, None)
        );
        assert_eq!(
            StatusReader::for_kind(&KindRef::new("", "ConfigMap")),
            StatusReader::Exists
        );
        assert_eq!(
            StatusReader::for_kind(&KindRef::new("batch", "Job")),
            StatusReader::Job
        );
    }

    #[test]
    fn prune_keeps_what_the_decision_reads() {
        let full = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": "migrate-abc", "namespace": "ns", "uid": "u-1", "generateName": "migrate-",
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "labels": {"hookguard.io/managed": "true", "controller-uid": "x", "app.kubernetes.io/instance": "app"},
                "annotations": {"argocd.argoproj.io/hook": "PreSync",
                                "argocd.argoproj.io/hook-delete-policy": "HookSucceeded",
                                "kubectl.kubernetes.io/last-applied-configuration": "{...huge...}",
                                "argocd.argoproj.io/tracking-id": "shop:batch/Job:ns/migrate"},
                "finalizers": ["argocd.argoproj.io/hook-finalizer", "hookguard.io/cleanup"],
                "managedFields": [{"manager": "kubectl"}]
            },
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
            "status": {"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2024-01-01T00:00:05Z", "message": "long"}],
                       "completionTime": "2024-01-01T00:00:05Z", "succeeded": 1}
        });
        let mut o = obj(full.clone());
        let before = observe(StatusReader::Job, &o);
        prune(StatusReader::Job, &mut o);
        assert_eq!(observe(StatusReader::Job, &o), before);
        assert_eq!(before.outcome, Outcome::Succeeded);
        assert!(before.has_argo_finalizer && before.has_cleanup_finalizer && before.managed);
        assert_eq!(app_of(&o), Some("shop"));
        assert!(o.data.get("spec").is_none());
        assert!(o.metadata.managed_fields.is_none());
        let annotations = o.metadata.annotations.as_ref().expect("kept");
        assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert_eq!(o.metadata.uid.as_deref(), Some("u-1"));

        for (reader, status) in [
            (
                StatusReader::Pod,
                json!({"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"finishedAt": "2024-01-01T00:00:09Z"}}}]}),
            ),
            (
                StatusReader::Workflow,
                json!({"phase": "Error", "finishedAt": "2024-01-01T00:00:09Z", "nodes": {}}),
            ),
            (StatusReader::Exists, json!({"whatever": 1})),
        ] {
            let mut v = full.clone();
            v["status"] = status;
            let mut o = obj(v);
            let before = observe(reader, &o);
            prune(reader, &mut o);
            assert_eq!(observe(reader, &o), before, "{reader:?}");
        }
    }
}
