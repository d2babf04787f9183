//! End-to-end tests of `hookguard finalizer` against a real kube-apiserver + etcd +
//! kube-controller-manager (job and garbage-collector controllers; no kubelet, no scheduler).
//! Hooks are created as the mutating webhook would leave them (label, finalizer,
//! annotations); Jobs are finished through the status subresource.
//!
//! Not built by plain `cargo test` (the `e2e` feature gates them); run them with `make e2e` or
//!     tests/e2e/control-plane.sh run DIR -- cargo test --features e2e --test e2e_finalizer

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams, PropagationPolicy,
};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{eventually, Sidecar, TestNamespace};

const MANAGED: &str = "hookguard.io/managed";
const CLEANUP: &str = "hookguard.io/cleanup";

/// A Job as the mutating webhook leaves it: managed label, hookguard's finalizer, hook
/// annotations. `name` ending in `-` means generateName.
fn job_manifest(name: &str, policy: Option<&str>, managed: bool) -> Value {
    let mut annotations = json!({"argocd.argoproj.io/hook": "PostSync"});
    if let Some(p) = policy {
        annotations["argocd.argoproj.io/hook-delete-policy"] = json!(p);
    }
    let mut meta = json!({"annotations": annotations});
    if let Some(prefix) = name.strip_suffix('-') {
        meta["generateName"] = json!(format!("{prefix}-"));
    } else {
        meta["name"] = json!(name);
    }
    if managed {
        meta["labels"] = json!({MANAGED: "true"});
        meta["finalizers"] = json!([CLEANUP]);
    }
    json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "hook", "image": "busybox", "command": ["true"]}]}}}
    })
}

async fn create_job(jobs: &Api<Job>, manifest: Value) -> Job {
    let job: Job = serde_json::from_value(manifest).expect("job manifest");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job")
}

/// The finalizer tests' hooks finish within seconds of being created.
async fn finish_job(jobs: &Api<Job>, name: &str, condition: &str) {
    support::finish_job(jobs, name, condition, Duration::from_secs(20)).await
}

/// `job_gone` for a hook `finish_job` finished. The 1.20 job controller writes the whole status
/// from its informer cache on every sync; a sync from a cache that had not yet seen the test's
/// patch puts the Job back to running, even after `finish_job` saw the outcome stick (seen:
/// sidecar log `WaitUntil(…)`, then `Nothing(NoRule)` a second later, and the hook rightly
/// kept). A real outcome comes from the pod and is never reverted, so it is written again, as
/// the fault tests do (docs/reliability.md).
async fn finished_job_gone(jobs: &Api<Job>, name: &str, condition: &str) -> Result<(), String> {
    match jobs.get_opt(name).await {
        Ok(Some(j))
            if j.metadata.deletion_timestamp.is_none()
                && !support::has_condition(&j, condition) =>
        {
            support::mark_outcome(jobs, name, condition).await?;
            Err(format!(
                "job {name} still exists: the job controller reverted its outcome; written again"
            ))
        }
        _ => job_gone(jobs, name).await,
    }
}

async fn job_gone(jobs: &Api<Job>, name: &str) -> Result<(), String> {
    match jobs.get_opt(name).await {
        Ok(None) => Ok(()),
        Ok(Some(j)) => Err(format!(
            "job {name} still exists (deleting: {}, finalizers {:?})",
            j.metadata.deletion_timestamp.is_some(),
            j.metadata.finalizers
        )),
        Err(e) => Err(e.to_string()),
    }
}

async fn outcome_events(client: &Client, ns: &str, name: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = events
        .list(&ListParams::default())
        .await
        .expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reporting_controller.as_deref() == Some("hookguard.io/finalizer"))
        .collect()
}

async fn pods_of(client: &Client, ns: &str, job_uid: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.list(&ListParams::default().labels(&format!("controller-uid={job_uid}")))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn exists_now(r: Result<Option<Job>, kube::Error>) -> Job {
    r.expect("get job").expect("job must still exist")
}

#[tokio::test]
async fn succeeded_hook_is_deleted_after_the_grace_with_its_outcome_event() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "hg-succ").await;
    let _sidecar = Sidecar::start(&ns.name, "a", &["--succeeded-grace", "3s"]).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let job = create_job(&jobs, job_manifest("migrate", Some("HookSucceeded"), true)).await;
    let uid = job.metadata.uid.clone().expect("uid");
    // The job controller creates its pod (it stays Pending: no scheduler).
    eventually(Duration::from_secs(15), "the job's pod", || async {
        if pods_of(&client, &ns.name, &uid).await.is_empty() {
            Err("no pod yet".into())
        } else {
            Ok(())
        }
    })
    .await;
    // Taken before the outcome is written: the grace runs from the outcome's time as the Job
    // records it (whole seconds, rounded), never more than half a second before this, while
    // `finish_job` returns only once the outcome is seen to stick, well after it was written.
    let finished = Instant::now();
    finish_job(&jobs, "migrate", "Complete").await;

    // Inside the grace: still there, not being deleted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let live = exists_now(jobs.get_opt("migrate").await);
    assert!(
        live.metadata.deletion_timestamp.is_none(),
        "deleted before the grace ended"
    );

    eventually(
        Duration::from_secs(15),
        "the succeeded hook to be deleted",
        || finished_job_gone(&jobs, "migrate", "Complete"),
    )
    .await;
    let took = finished.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "deleted too early: {took:?}"
    );

    let events = outcome_events(&client, &ns.name, "migrate").await;
    let outcome = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("HookSucceeded"))
        .unwrap_or_else(|| panic!("no outcome Event for the hook; events: {events:?}"));
    assert_eq!(outcome.type_.as_deref(), Some("Normal"));
    assert!(
        outcome.note.as_deref().unwrap_or("").contains("Succeeded"),
        "{outcome:?}"
    );
    assert_eq!(
        outcome.regarding.as_ref().and_then(|r| r.uid.as_deref()),
        Some(uid.as_str())
    );
    eventually(
        Duration::from_secs(10),
        "the job's pods to be gone",
        || async {
            let left = pods_of(&client, &ns.name, &uid).await;
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{} pods left", left.len()))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn failed_hook_is_kept_until_its_longer_grace() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "hg-fail").await;
    let sidecar = Sidecar::start(
        &ns.name,
        "a",
        &["--succeeded-grace", "1s", "--failed-grace", "5s"],
    )
    .await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    create_job(&jobs, job_manifest("check", Some("HookFailed"), true)).await;
    // HookFailed only: a success is never deleted by policy.
    create_job(&jobs, job_manifest("ok", Some("HookFailed"), true)).await;
    // Before the outcome is written, as in the succeeded-hook test: measured after both jobs
    // were seen finished, "deleted before the failed grace" fired on a correct deletion at the
    // grace (CI: the outcome recorded at 17:41:34, deleted at 17:41:39.03, yet less than 4 s
    // after finishing the second job).
    let finished = Instant::now();
    finish_job(&jobs, "check", "Failed").await;
    finish_job(&jobs, "ok", "Complete").await;

    tokio::time::sleep(Duration::from_secs(3)).await;
    let live = exists_now(jobs.get_opt("check").await);
    assert!(
        live.metadata.deletion_timestamp.is_none(),
        "failed hook deleted inside its grace"
    );

    eventually(
        Duration::from_secs(15),
        "the failed hook to be deleted",
        || finished_job_gone(&jobs, "check", "Failed"),
    )
    .await;
    assert!(
        finished.elapsed() >= Duration::from_secs(4),
        "deleted before the failed grace"
    );
    let events = outcome_events(&client, &ns.name, "check").await;
    let ev = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("HookFailed"))
        .unwrap_or_else(|| panic!("no HookFailed outcome Event: {events:?}"));
    assert_eq!(ev.type_.as_deref(), Some("Warning"));

    let ok = exists_now(jobs.get_opt("ok").await);
    assert!(
        ok.metadata.deletion_timestamp.is_none(),
        "a succeeded HookFailed-only hook must stay"
    );
    assert_eq!(
        sidecar.metric("hookguard_finalizer_deletions_total").await,
        1.0
    );
}

#[tokio::test]
async fn generate_name_family_keeps_the_newest_n() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "hg-fam").await;
    let _sidecar = Sidecar::start(&ns.name, "a", &["--keep-per-family", "2"]).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    // The oldest member is still running: beyond N, but never trimmed.
    let running = create_job(&jobs, job_manifest("seed-", None, true))
        .await
        .name_any();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut names = Vec::new();
    for _ in 0..4 {
        // Default policy (BeforeHookCreation). creationTimestamp has 1 s resolution.
        let j = create_job(&jobs, job_manifest("seed-", None, true)).await;
        let name = j.name_any();
        finish_job(&jobs, &name, "Complete").await;
        names.push(name);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let other_family = create_job(&jobs, job_manifest("other-", None, true)).await;
    finish_job(&jobs, &other_family.name_any(), "Complete").await;

    for old in &names[..2] {
        eventually(
            Duration::from_secs(15),
            "old family members to be deleted",
            || finished_job_gone(&jobs, old, "Complete"),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for new in &names[2..] {
        let j = exists_now(jobs.get_opt(new).await);
        assert!(
            j.metadata.deletion_timestamp.is_none(),
            "newest member {new} must stay"
        );
    }
    let r = exists_now(jobs.get_opt(&running).await);
    assert!(
        r.metadata.deletion_timestamp.is_none(),
        "a running member is never trimmed"
    );
    let o = exists_now(jobs.get_opt(&other_family.name_any()).await);
    assert!(
        o.metadata.deletion_timestamp.is_none(),
        "another family is not trimmed"
    );
    for old in &names[..2] {
        let events = outcome_events(&client, &ns.name, old).await;
        assert!(!events.is_empty(), "outcome of {old} recorded");
    }
}

async fn user_deletion(propagation: PropagationPolicy, prefix: &str) {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, prefix).await;
    let sidecar = Sidecar::start(&ns.name, "a", &[]).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let job = create_job(&jobs, job_manifest("running", Some("HookSucceeded"), true)).await;
    let uid = job.metadata.uid.clone().expect("uid");
    eventually(Duration::from_secs(15), "the job's pod", || async {
        if pods_of(&client, &ns.name, &uid).await.is_empty() {
            Err("no pod yet".into())
        } else {
            Ok(())
        }
    })
    .await;

    let started = Instant::now();
    let params = DeleteParams {
        propagation_policy: Some(propagation.clone()),
        ..DeleteParams::default()
    };
    jobs.delete("running", &params)
        .await
        .expect("user deletes the hook");
    eventually(
        Duration::from_secs(15),
        "the deleted hook to be released",
        || job_gone(&jobs, "running"),
    )
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "release took {took:?} (max hold is 60 s: it must not wait for it)"
    );

    let events = outcome_events(&client, &ns.name, "running").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("HookUnfinished")),
        "outcome Event of the unfinished hook: {events:?}"
    );
    eventually(Duration::from_secs(15), "no pods left", || async {
        let left = pods_of(&client, &ns.name, &uid).await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{} pods left", left.len()))
        }
    })
    .await;
    assert_eq!(
        sidecar
            .metric("hookguard_finalizer_hold_timeouts_total")
            .await,
        0.0
    );
    assert_eq!(
        sidecar.metric("hookguard_finalizer_releases_total").await,
        1.0
    );
    if matches!(propagation, PropagationPolicy::Orphan) {
        // The garbage collector leaves orphaned pods alone: hookguard removed them.
        assert!(
            sidecar
                .metric("hookguard_finalizer_orphaned_pods_deleted_total")
                .await
                >= 1.0
        );
    }
}

#[tokio::test]
async fn user_deletion_foreground_is_released_promptly() {
    user_deletion(PropagationPolicy::Foreground, "hg-fg").await;
}

#[tokio::test]
async fn user_deletion_orphan_is_released_promptly_and_pods_removed() {
    user_deletion(PropagationPolicy::Orphan, "hg-orph").await;
}

#[tokio::test]
async fn unmanaged_job_is_never_touched() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "hg-unm").await;
    let sidecar = Sidecar::start(
        &ns.name,
        "a",
        &["--succeeded-grace", "1s", "--max-age", "2s"],
    )
    .await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    create_job(&jobs, job_manifest("plain", Some("HookSucceeded"), false)).await;
    create_job(&jobs, job_manifest("managed", Some("HookSucceeded"), true)).await;
    finish_job(&jobs, "plain", "Complete").await;
    finish_job(&jobs, "managed", "Complete").await;
    let before = exists_now(jobs.get_opt("plain").await);
    eventually(
        Duration::from_secs(15),
        "the managed neighbour to be deleted",
        || finished_job_gone(&jobs, "managed", "Complete"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = exists_now(jobs.get_opt("plain").await);
    assert!(after.metadata.deletion_timestamp.is_none());
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "the unmanaged job was modified"
    );
    assert!(outcome_events(&client, &ns.name, "plain").await.is_empty());
    assert_eq!(
        sidecar.metric("hookguard_finalizer_deletions_total").await,
        1.0
    );
}

#[tokio::test]
async fn killed_mid_way_and_restarted_loses_nothing() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "hg-kill").await;
    let flags = [
        "--succeeded-grace",
        "4s",
        "--lease-duration",
        "3s",
        "--lease-renew",
        "1s",
    ];
    let mut first = Sidecar::start(&ns.name, "pod-0", &flags).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    for name in ["k1", "k2", "k3"] {
        create_job(&jobs, job_manifest(name, Some("HookSucceeded"), true)).await;
        finish_job(&jobs, name, "Complete").await;
    }
    create_job(&jobs, job_manifest("held", Some("HookFailed"), true)).await;
    // Wait until it leads (it would then act), then kill it without any cleanup.
    eventually(Duration::from_secs(10), "first sidecar to lead", || async {
        if first.metric("hookguard_finalizer_leader").await == 1.0 {
            Ok(())
        } else {
            Err("not leader".into())
        }
    })
    .await;
    first.kill();
    // While it is down: a user deletes a hook (held by hookguard's finalizer), and the graces
    // of the others pass.
    jobs.delete("held", &DeleteParams::background())
        .await
        .expect("delete");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = exists_now(jobs.get_opt("held").await);
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "held by the finalizer while no sidecar runs"
    );

    // Restarted pod, same name: takes its lease back at once and catches up.
    let second = Sidecar::start(&ns.name, "pod-0", &flags).await;
    for name in ["k1", "k2", "k3", "held"] {
        eventually(
            Duration::from_secs(15),
            "every hook to be handled after the restart",
            // `held` never finished: a user deleted it.
            || async {
                if name == "held" {
                    job_gone(&jobs, name).await
                } else {
                    finished_job_gone(&jobs, name, "Complete").await
                }
            },
        )
        .await;
        let events = outcome_events(&client, &ns.name, name).await;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.reason.as_deref() != Some("HoldTimeout"))
                .count(),
            1,
            "{name}: exactly one outcome Event: {events:?}"
        );
    }
    assert_eq!(
        second.metric("hookguard_finalizer_deletions_total").await,
        3.0
    );
}

async fn leader_of(a: &Sidecar, b: &Sidecar) -> Result<usize, String> {
    let mut leaders = Vec::new();
    for (i, s) in [a, b].into_iter().enumerate() {
        if s.metric("hookguard_finalizer_leader").await == 1.0 {
            leaders.push(i);
        }
    }
    match leaders.as_slice() {
        [one] => Ok(*one),
        other => Err(format!("leaders: {other:?}")),
    }
}

#[tokio::test]
async fn two_sidecars_only_one_acts_and_the_other_takes_over() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "hg-two").await;
    let flags = [
        "--succeeded-grace",
        "1s",
        "--lease-duration",
        "3s",
        "--lease-renew",
        "1s",
    ];
    let mut a = Sidecar::start(&ns.name, "replica-a", &flags).await;
    let mut b = Sidecar::start(&ns.name, "replica-b", &flags).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let leader = eventually(Duration::from_secs(10), "exactly one leader", || {
        leader_of(&a, &b)
    })
    .await;
    for name in ["t1", "t2", "t3", "t4"] {
        create_job(&jobs, job_manifest(name, Some("HookSucceeded"), true)).await;
        finish_job(&jobs, name, "Complete").await;
    }
    for name in ["t1", "t2", "t3", "t4"] {
        eventually(Duration::from_secs(15), "hooks deleted", || {
            finished_job_gone(&jobs, name, "Complete")
        })
        .await;
    }
    let (leading, standby) = if leader == 0 { (&a, &b) } else { (&b, &a) };
    assert_eq!(
        leading.metric("hookguard_finalizer_deletions_total").await,
        4.0
    );
    assert_eq!(
        standby.metric("hookguard_finalizer_deletions_total").await,
        0.0
    );
    assert_eq!(
        standby.metric("hookguard_finalizer_releases_total").await,
        0.0
    );
    for name in ["t1", "t2", "t3", "t4"] {
        for e in outcome_events(&client, &ns.name, name).await {
            assert_eq!(
                e.reporting_instance.as_deref(),
                Some(leading.identity.as_str())
            );
        }
    }

    // The leader dies without releasing the lease: the other takes over after it expires.
    let leader_identity = leading.identity.clone();
    if leader == 0 {
        a.kill();
    } else {
        b.kill();
    }
    let survivor = if leader == 0 { &b } else { &a };
    let killed_at = Instant::now();
    eventually(
        Duration::from_secs(15),
        "the standby to take over",
        || async {
            if survivor.metric("hookguard_finalizer_leader").await == 1.0 {
                Ok(())
            } else {
                Err("not yet".into())
            }
        },
    )
    .await;
    assert!(killed_at.elapsed() < Duration::from_secs(10));
    create_job(&jobs, job_manifest("after", Some("HookSucceeded"), true)).await;
    finish_job(&jobs, "after", "Complete").await;
    eventually(Duration::from_secs(15), "the new leader to act", || {
        finished_job_gone(&jobs, "after", "Complete")
    })
    .await;
    let lease: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let l = lease.get("hookguard-finalizer").await.expect("lease");
    let holder = l.spec.and_then(|s| s.holder_identity);
    assert_ne!(holder.as_deref(), Some(leader_identity.as_str()));

    // SIGTERM releases the lease (empty holder) instead of letting it expire.
    if leader == 0 {
        b.terminate();
    } else {
        a.terminate();
    }
    let l = lease.get("hookguard-finalizer").await.expect("lease");
    let holder = l.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    assert!(
        holder.is_empty(),
        "lease still held by {holder} after SIGTERM"
    );
}

#[tokio::test]
async fn workflow_crd_appearing_later_is_picked_up() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "hg-wf").await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // On a control plane reused across runs the CRD may already exist: then only the
    // pick-up is tested, not the "logged once, picked up later" part.
    let crd_was_there = crds
        .get_opt("workflows.argoproj.io")
        .await
        .expect("get CRD")
        .is_some();
    let sidecar = Sidecar::start(&ns.name, "a", &["--succeeded-grace", "1s"]).await;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "workflows.argoproj.io"},
        "spec": {"group": "argoproj.io", "scope": "Namespaced",
                 "names": {"kind": "Workflow", "plural": "workflows", "singular": "workflow", "listKind": "WorkflowList"},
                 "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .expect("crd");
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create CRD: {e}"),
    }
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"),
        "workflows",
    );
    let wfs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &ar);
    let wf: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "wf", "labels": {MANAGED: "true"}, "finalizers": [CLEANUP],
                     "annotations": {"argocd.argoproj.io/hook": "PostSync",
                                     "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}},
        "spec": {}, "status": {"phase": "Succeeded", "finishedAt": support::now_rfc3339()}
    }))
    .expect("workflow");
    eventually(
        Duration::from_secs(20),
        "the Workflow CRD to be served",
        || async {
            match wfs.create(&PostParams::default(), &wf).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "the succeeded Workflow hook to be deleted",
        || async {
            match wfs.get_opt("wf").await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err("still there".into()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    let log = sidecar.log_text();
    assert_eq!(
        log.matches("kind is not served by this cluster").count(),
        if crd_was_there { 0 } else { 1 },
        "logged once:\n{log}"
    );
    assert!(!outcome_events(&client, &ns.name, "wf").await.is_empty());
}

#[tokio::test]
async fn release_finalizers_command_counts_and_releases() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "hg-rel").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    for name in ["r1", "r2"] {
        let mut m = job_manifest(name, None, true);
        m["metadata"]["finalizers"] = json!(["example.com/keep", CLEANUP]);
        create_job(&jobs, m).await;
    }
    let run = |dry: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hookguard"));
        cmd.arg("release-finalizers")
            .arg("--kubeconfig")
            .arg(support::kubeconfig_path())
            .args(["-n", &ns.name, "--kinds", "Job.batch"]);
        if dry {
            cmd.arg("--dry-run");
        }
        let out = cmd.output().expect("run release-finalizers");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dry = run(true);
    assert!(dry.contains("Job.batch: 2 would be released"), "{dry}");
    let j = exists_now(jobs.get_opt("r1").await);
    assert!(
        j.finalizers().contains(&CLEANUP.to_owned()),
        "dry run changed nothing"
    );
    let real = run(false);
    assert!(real.contains("Job.batch: 2 released, 0 failed"), "{real}");
    for name in ["r1", "r2"] {
        let j = exists_now(jobs.get_opt(name).await);
        assert_eq!(
            j.finalizers(),
            &["example.com/keep".to_owned()],
            "only hookguard's finalizer removed"
        );
        // Let the namespace go.
        let patch = json!([{"op": "remove", "path": "/metadata/finalizers"}]);
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("patch");
        jobs.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
            .expect("drop test finalizer");
    }
}
