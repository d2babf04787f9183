//! Scale measurement of `hookguard finalizer` on the real control plane: creates N managed
//! Job hooks (default 10 000) in a fresh namespace, starts the sidecar binary, and reports
//! - time to ready (every watch has listed all hooks),
//! - full-resync time (process start → every hook reconciled once as leader),
//! - RSS after the resync and peak RSS (VmHWM).
//!
//! Run through scripts/finalizer-scale.sh (it brings the control plane up and builds the
//! release binary), or by hand:
//!   HOOKGUARD_E2E_KUBECONFIG=… HOOKGUARD_BIN=target/release/hookguard \
//!     cargo run --release --example finalizer_scale -- 10000

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn metric(admin: &str, name: &str) -> f64 {
    let Ok(r) = reqwest::get(format!("http://{admin}/metrics")).await else {
        return -1.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let kubeconfig = std::env::var("HOOKGUARD_E2E_KUBECONFIG").map_err(|_| {
        anyhow::anyhow!("HOOKGUARD_E2E_KUBECONFIG is not set (use scripts/finalizer-scale.sh)")
    })?;
    let bin = std::env::var("HOOKGUARD_BIN").unwrap_or_else(|_| "target/release/hookguard".into());
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    config.read_timeout = Some(Duration::from_secs(120));
    let client = Client::try_from(config)?;

    let ns_name = format!("hg-scale-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": ns_name}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns_name);

    // A realistic hook: a ~1 KiB last-applied annotation, a pod template, hook annotations.
    // parallelism 0: the job controller creates no pods (10 000 pods would measure the
    // control plane, not the sidecar).
    let filler = "x".repeat(1024);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let jobs = jobs.clone();
            let filler = filler.clone();
            async move {
                let policy = ["HookSucceeded", "BeforeHookCreation", "HookFailed"][i % 3];
                let job: Job = serde_json::from_value(json!({
                    "metadata": {"name": format!("hook-{i:05}"),
                                 "labels": {"hookguard.io/managed": "true", "app.kubernetes.io/instance": "scale"},
                                 "finalizers": ["hookguard.io/cleanup"],
                                 "annotations": {"argocd.argoproj.io/hook": "PreSync",
                                                 "argocd.argoproj.io/hook-delete-policy": policy,
                                                 "kubectl.kubernetes.io/last-applied-configuration": filler}},
                    "spec": {"parallelism": 0, "backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                        "containers": [{"name": "migrate", "image": "registry.example/migrate:1.2.3",
                                        "command": ["/bin/migrate", "--all"],
                                        "env": [{"name": "MODE", "value": "up"}]}]}}}
                }))
                .expect("job");
                jobs.create(&PostParams::default(), &job).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    println!(
        "created {n} managed Job hooks in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let admin = format!("127.0.0.1:{port}");
    let t0 = Instant::now();
    let mut child = Command::new(&bin)
        .args([
            "finalizer",
            "--kubeconfig",
            &kubeconfig,
            "--namespace",
            &ns_name,
            "--lease-namespace",
            &ns_name,
        ])
        .args(["--identity", "scale", "--admin-addr", &admin])
        .env("HOOKGUARD_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .spawn()?;
    let pid = child.id();

    let mut ready_at = None;
    let mut resynced_at = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if ready_at.is_none() {
            if let Ok(r) = reqwest::get(format!("http://{admin}/readyz")).await {
                if r.status().is_success() {
                    ready_at = Some(t0.elapsed());
                }
            }
        }
        if metric(&admin, "hookguard_finalizer_reconciles_total").await >= n as f64 {
            resynced_at = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_kib(pid, "VmRSS:");
    let hwm = rss_kib(pid, "VmHWM:");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = child.wait();

    let mib = |k: Option<u64>| {
        k.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".into())
    };
    println!("hooks:              {n}");
    println!(
        "time to ready:      {}",
        ready_at
            .map(|d| format!("{:.2}s", d.as_secs_f64()))
            .unwrap_or("timeout".into())
    );
    println!(
        "full resync:        {}",
        resynced_at
            .map(|d| format!("{:.2}s", d.as_secs_f64()))
            .unwrap_or("timeout".into())
    );
    println!("RSS after resync:   {}", mib(rss));
    println!("peak RSS (VmHWM):   {}", mib(hwm));

    // Leave nothing behind: release the finalizers, then drop the namespace.
    let kinds = vec![hookguard::mutation::KindRef::new("batch", "Job")];
    hookguard::finalizer::release::release_finalizers(&client, &kinds, Some(&ns_name), false)
        .await?;
    namespaces
        .delete(&ns_name, &DeleteParams::background())
        .await?;
    if resynced_at.is_none() {
        anyhow::bail!("the sidecar did not reconcile every hook within 300 s");
    }
    Ok(())
}
