//! The kube-apiserver restarted while the finalizer sidecar cleans hooks: each round creates a
//! batch of hook Jobs, finishes or deletes them, and meanwhile stops the apiserver (SIGTERM in
//! one round, SIGKILL in the other, the order seeded) and starts it again on the same port
//! with the same etcd (`control-plane.sh restart-apiserver`). The sidecar must not exit (by
//! design it retries: its watches back off and re-list, a lease it cannot renew is given up
//! in time), and afterwards every hook due for cleanup is gone, none is stuck Terminating,
//! nothing unmanaged or still wanted was deleted.
//!
//!     FAULT_SEED=2 FAULT_APISERVER_ROUNDS=2 FAULT_APISERVER_HOOKS=12 FAULT_APISERVER_GRACE=15 \
//!       tests/e2e/control-plane.sh run $PWD/target/e2e-control-plane -- cargo test \
//!       --features e2e --test e2e_faults apiserver -- --nocapture

use super::support::{self, Sidecar, TestNamespace};
use super::{
    env_u64, finish, job_manifest, plan_hooks, settle, Fate, Planned, Rng, SERIAL, SIDECAR_FLAGS,
};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Creates a Job, retrying while the apiserver is away; "already exists" is success (a
/// create whose answer was lost in a restart).
async fn create_retrying(jobs: &Api<Job>, job: &Job) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match jobs.create(&PostParams::default(), job).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => return,
            Err(e) if Instant::now() >= deadline => panic!("cannot create a hook: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Finishes or deletes each hook of the batch as planned, through an apiserver outage.
async fn run_fates(jobs: Api<Job>, batch: Vec<(String, Planned)>) {
    for (name, p) in &batch {
        match p.fate {
            Fate::Complete => finish(&jobs, name, "Complete").await,
            Fate::Failed => finish(&jobs, name, "Failed").await,
            Fate::UserDeleted => {
                let deadline = Instant::now() + Duration::from_secs(90);
                loop {
                    match jobs.delete(name, &DeleteParams::background()).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 404 => break,
                        Err(e) if Instant::now() >= deadline => {
                            panic!("cannot delete {name}: {e}")
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
                    }
                }
            }
            Fate::Running => {}
        }
    }
}

/// `control-plane.sh restart-apiserver DIR SIGNAL` with `grace` seconds from SIGTERM to
/// SIGKILL; returns how long it took (stop, start, /readyz) and how the old process ended.
async fn restart_apiserver(signal: &str, grace: u64) -> (Duration, String) {
    let dir = std::env::var("HOOKGUARD_E2E_DIR")
        .expect("HOOKGUARD_E2E_DIR (set by tests/e2e/control-plane.sh run)");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/control-plane.sh");
    let started = Instant::now();
    let out = tokio::process::Command::new(script)
        .args(["restart-apiserver", &dir, signal])
        .env("HOOKGUARD_CP_STOP_GRACE", grace.to_string())
        .output()
        .await
        .expect("run control-plane.sh restart-apiserver");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "restart-apiserver {signal} failed:\n{stderr}"
    );
    // "… PID 1 stopped by SIGTERM+SIGKILL after 15s in 15.1s, PID 2 ready after 6.0s"
    let how = stderr
        .lines()
        .find_map(|l| {
            l.split_once(" stopped by ")?
                .1
                .split_once(" in ")
                .map(|(h, _)| h)
        })
        .unwrap_or(signal)
        .replace(' ', "_");
    (started.elapsed(), how)
}

/// After a failed settle: is the apiserver delivering events to a fresh watch, what does the
/// sidecar hold open, and does a new sidecar clean up what the old one did not?
pub(super) async fn diagnose(
    jobs: &Api<Job>,
    sidecar: &mut Sidecar,
    left: &[String],
    ns: &str,
    planned: &BTreeMap<String, Planned>,
) {
    use futures::StreamExt;
    use kube::api::{Patch, PatchParams, WatchEvent, WatchParams};
    if let Some(pid) = sidecar.pid() {
        let ss = std::process::Command::new("ss").args(["-tnp"]).output();
        let ss = ss.map(|o| String::from_utf8_lossy(&o.stdout).to_string());
        let mine: Vec<String> = ss
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("pid={pid},")))
            .map(str::to_owned)
            .collect();
        eprintln!("faults: sidecar connections:\n{}", mine.join("\n"));
    }
    let rv = jobs
        .list_metadata(&Default::default())
        .await
        .ok()
        .and_then(|l| l.metadata.resource_version)
        .unwrap_or_default();
    let mut stream = jobs
        .watch(&WatchParams::default().timeout(20), &rv)
        .await
        .expect("watch")
        .boxed();
    let patch = serde_json::json!({"metadata": {"annotations": {"e2e.hookguard.io/poke": "1"}}});
    let _ = jobs
        .patch(&left[0], &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = stream.next().await {
            if let Ok(WatchEvent::Modified(j)) = e {
                if j.metadata.name.as_deref() == Some(left[0].as_str()) {
                    return true;
                }
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    eprintln!(
        "faults: a fresh watch from rv {rv} sees a change of {}: {seen}",
        left[0]
    );
    eprintln!(
        "faults: sidecar metrics:\n{}",
        sidecar
            .metrics()
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    sidecar.terminate();
    *sidecar = Sidecar::start(ns, "pod-0", SIDECAR_FLAGS).await;
    let again = settle(jobs, planned, Duration::from_secs(30)).await;
    eprintln!(
        "faults: after a sidecar restart: cleaned {}/{}, left {:?}",
        again.cleaned, again.expected, again.left
    );
}

#[tokio::test]
async fn finalizer_survives_apiserver_restarts_under_load() {
    let _serial = SERIAL.lock().await;
    let seed = env_u64("FAULT_SEED", 1);
    let rounds = env_u64("FAULT_APISERVER_ROUNDS", 2);
    let per_round = env_u64("FAULT_APISERVER_HOOKS", 12);
    // kube-apiserver 1.20 lingers up to 60 s after SIGTERM while watches are open; the
    // kubelet would SIGKILL it after the pod's grace period (30 s by default).
    let grace = env_u64("FAULT_APISERVER_GRACE", 15);
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "hg-faults-api").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let mut sidecar = Sidecar::start(&ns.name, "pod-0", SIDECAR_FLAGS).await;
    let mut rng = Rng::new(seed ^ 0xA915_E7E5);
    let kill_first = rng.below(2) == 0;
    let mut planned: BTreeMap<String, Planned> = BTreeMap::new();
    let mut restarts = Vec::new();
    for round in 0..rounds {
        let mut batch = BTreeMap::new();
        plan_hooks(&mut rng, &format!("a{round}"), per_round, &mut batch);
        for (name, p) in &batch {
            let job: Job =
                serde_json::from_value(job_manifest(name, p.policy, p.managed)).expect("job");
            create_retrying(&jobs, &job).await;
        }
        let fates = tokio::spawn(run_fates(
            jobs.clone(),
            batch.iter().map(|(n, p)| (n.clone(), p.clone())).collect(),
        ));
        planned.extend(batch);
        // The restart lands while hooks are being finished and cleaned.
        tokio::time::sleep(rng.ms(200, 1500)).await;
        let signal = if (round % 2 == 0) == kill_first {
            "KILL"
        } else {
            "TERM"
        };
        eprintln!(
            "faults: restarting the apiserver with SIG{signal} at {}",
            support::now_rfc3339()
        );
        let (took, how) = restart_apiserver(signal, grace).await;
        eprintln!("faults: apiserver back at {}", support::now_rfc3339());
        restarts.push(format!("{how}:{:.1}s", took.as_secs_f64()));
        if let Some(status) = sidecar.exited() {
            panic!("the sidecar exited during the apiserver restart: {status}");
        }
        fates.await.expect("workload");
    }

    let s = settle(&jobs, &planned, Duration::from_secs(90)).await;
    let exited = sidecar.exited();
    if !s.left.is_empty() {
        diagnose(&jobs, &mut sidecar, &s.left, &ns.name, &planned).await;
    }
    println!(
        "FAULTS scenario=apiserver-restart seed={seed} rounds={rounds} hooks={} restarts={} \
         cleaned={}/{} settle_s={:.1} stuck_terminating={} unmanaged_deleted={} \
         kept_hooks_deleted={} outcomes_reasserted={} sidecar_exits={} sidecar_errors={}",
        planned.len(),
        restarts.join(","),
        s.cleaned,
        s.expected,
        s.settle.as_secs_f64(),
        s.stuck.len(),
        s.unmanaged_deleted,
        s.kept_deleted,
        s.reasserted,
        u8::from(exited.is_some()),
        sidecar
            .metric("hookguard_finalizer_errors_total")
            .await
            .abs(),
    );
    assert!(exited.is_none(), "the sidecar exited: {exited:?}");
    assert!(s.stuck.is_empty(), "stuck in Terminating: {:?}", s.stuck);
    assert!(
        s.wrongly_gone.is_empty(),
        "deleted although they should stay: {:?}",
        s.wrongly_gone
    );
    assert!(
        s.left.is_empty(),
        "hooks due for cleanup still there: {:?}",
        s.left
    );
}
