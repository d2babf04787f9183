//! Shared support for the integration tests: `free_port()` for any test that starts a server,
//! and for end-to-end tests against the real control plane brought up by
//! `tests/e2e/control-plane.sh run DIR -- CMD` (which exports HOOKGUARD_E2E_KUBECONFIG):
//!
//! - `client()`: a kube Client for that control plane; with no control plane the test FAILS
//!   with a message saying how to run it (it never passes vacuously).
//! - `TestNamespace`: one fresh namespace per test, deleted afterwards (also on panic), with
//!   hookguard's finalizers released first so deletion cannot hang.
//! - `eventually(timeout, || async { … })`: poll until the closure returns `Ok`.
//! - `Sidecar`: the built `hookguard` binary as a child process, killed on drop.

#![allow(dead_code)]

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const KUBECONFIG_ENV: &str = "HOOKGUARD_E2E_KUBECONFIG";

pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os(KUBECONFIG_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "{KUBECONFIG_ENV} is not set: this end-to-end test needs the real control plane. Run it with\n  \
             tests/e2e/control-plane.sh run /tmp/hookguard-e2e -- cargo test --test e2e_finalizer -- --ignored\n\
             (or `make e2e`)."
        ),
    }
}

pub async fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = kubeconfig_path();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("kubeconfig {} is not usable: {e}", path.display()));
    let client = Client::try_from(config).expect("kube client");
    client.apiserver_version().await.unwrap_or_else(|e| {
        panic!(
            "the control plane at {} does not answer: {e}",
            path.display()
        )
    });
    client
}

/// Polls `check` every 100 ms until it returns `Ok`, or panics with its last error.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{:x}", std::process::id(), nanos % 0xfffff)
}

/// A namespace for one test. Dropping it releases hookguard's finalizers in it and deletes it
/// (on a helper thread, so it also works while a test panics).
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> TestNamespace {
        let name = unique(prefix);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("hookguard.io/e2e".to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
        TestNamespace { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        with_fresh_client(move |client| async move {
            let kinds = hookguard::mutation::KindRef::default_managed();
            let _ = hookguard::finalizer::release::release_finalizers(
                &client,
                &kinds,
                Some(&name),
                false,
            )
            .await;
            let _ = Api::<Namespace>::all(client)
                .delete(&name, &DeleteParams::default())
                .await;
        });
    }
}

/// Runs `f` with a fresh client on a helper thread with its own runtime, and waits for it:
/// for cleanup in `Drop`, which cannot await, and where the test's client is bound to the
/// test's runtime, which is blocked in that drop.
pub fn with_fresh_client<F, Fut>(f: F)
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let cleanup = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move { f(client().await).await });
    });
    let _ = cleanup.join();
}

/// Writes the outcome (`Complete` or `Failed`) the job controller would write for a finished
/// pod: the tests have no kubelet, so they play pods' outcomes through the status subresource.
pub async fn mark_outcome(
    jobs: &Api<k8s_openapi::api::batch::v1::Job>,
    name: &str,
    condition: &str,
) -> Result<(), String> {
    let now = now_rfc3339();
    let mut patch = serde_json::json!({"status": {"conditions": [{
        "type": condition, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
        "reason": "E2E", "message": "set by the e2e test"}]}});
    if condition == "Complete" {
        patch["status"]["completionTime"] = serde_json::json!(now);
        patch["status"]["succeeded"] = serde_json::json!(1);
    } else {
        patch["status"]["failed"] = serde_json::json!(1);
    }
    jobs.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .map(drop)
    .map_err(|e| format!("cannot set status {condition}: {e}"))
}

/// Marks a Job finished (`Complete` or `Failed`) as its pod would, with `mark_outcome`, and
/// waits until the outcome is seen to stick; panics after `timeout`. The 1.20 job controller
/// rewrites the whole status on its first sync, so the outcome is written only after that
/// sync (`startTime` set), and again if a sync overwrote it. A Job deleted, or being deleted,
/// meanwhile counts as finished (the sidecar may remove a hook at once). Errors, e.g. from an
/// apiserver that is restarting, are retried.
pub async fn finish_job(
    jobs: &Api<k8s_openapi::api::batch::v1::Job>,
    name: &str,
    condition: &str,
    timeout: Duration,
) {
    eventually(
        timeout,
        &format!("job {name} to be {condition}"),
        || async {
            let job = match jobs.get_opt(name).await.map_err(|e| e.to_string())? {
                Some(job) if job.metadata.deletion_timestamp.is_none() => job,
                _ => return Ok(()),
            };
            if job.status.as_ref().is_none_or(|s| s.start_time.is_none()) {
                return Err("the job controller has not synced the job yet".into());
            }
            if has_condition(&job, condition) {
                return Ok(());
            }
            mark_outcome(jobs, name, condition).await?;
            // Looked at again after a while: a sync in between may have overwritten it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            Err("the outcome was written; not yet seen to stick".into())
        },
    )
    .await
}

/// The Job has the `condition` (`Complete` or `Failed`) set to `True`.
pub fn has_condition(job: &k8s_openapi::api::batch::v1::Job, condition: &str) -> bool {
    job.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == condition && c.status == "True")
}

/// Now, as Kubernetes writes times (RFC 3339, whole seconds).
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// The `hookguard finalizer` binary running as a child process.
pub struct Sidecar {
    child: Option<Child>,
    pub admin: String,
    pub identity: String,
    pub log: PathBuf,
}

pub fn log_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

impl Sidecar {
    /// Starts `hookguard finalizer` for `namespace` (watch and lease there) with `extra`
    /// flags; waits until /readyz answers 200.
    pub async fn start(namespace: &str, identity: &str, extra: &[&str]) -> Sidecar {
        let port = free_port();
        let admin = format!("127.0.0.1:{port}");
        let log = log_dir().join(format!("{namespace}-{identity}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_hookguard"))
            .arg("finalizer")
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .args(["--namespace", namespace, "--lease-namespace", namespace])
            .args(["--identity", identity, "--admin-addr", &admin])
            .args(extra)
            .env("HOOKGUARD_LOG_LEVEL", "info,hookguard=debug")
            .env_remove("POD_NAME")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("start hookguard finalizer");
        let sidecar = Sidecar {
            child: Some(child),
            admin,
            identity: identity.to_owned(),
            log,
        };
        let url = format!("http://{}/readyz", sidecar.admin);
        let log_path = sidecar.log.display().to_string();
        eventually(
            Duration::from_secs(30),
            &format!("sidecar ready (log {log_path})"),
            || {
                let url = url.clone();
                async move {
                    let r = reqwest::get(&url).await.map_err(|e| e.to_string())?;
                    if r.status().is_success() {
                        Ok(())
                    } else {
                        Err(format!("readyz {}", r.status()))
                    }
                }
            },
        )
        .await;
        sidecar
    }

    pub async fn metrics(&self) -> Result<String, String> {
        let r = reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .map_err(|e| e.to_string())?;
        r.text().await.map_err(|e| e.to_string())
    }

    /// Sum of a counter/gauge over all its label sets (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await.unwrap_or_default();
        metric_sum(&text, name)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no chance to release anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status if the process has exited by itself (None while it runs).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- sidecar {} log ({}) ---\n{}",
                self.identity,
                self.log.display(),
                self.log_text()
            );
        }
    }
}

pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<f64>().ok())
        .sum()
}

/// `eventually` for checks that say "not yet" with `None`.
pub async fn eventually_some<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually(timeout, what, || {
        let pending = check();
        async move { pending.await.ok_or_else(|| "not yet".to_owned()) }
    })
    .await
}

/// The control plane the harness started: a client and the kubeconfig it came from.
pub struct Cluster {
    pub client: Client,
    pub kubeconfig: PathBuf,
}

/// Connects to the control plane named by `HOOKGUARD_E2E_KUBECONFIG`, or fails the test.
pub async fn cluster() -> Cluster {
    Cluster {
        client: client().await,
        kubeconfig: kubeconfig_path(),
    }
}

/// A hookguard subcommand (the binary cargo built for this test run) as a child process,
/// killed when dropped.
pub struct Process {
    pub child: std::process::Child,
}

impl Process {
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Process {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hookguard"));
        cmd.args(args).stdin(std::process::Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Process {
            child: cmd.spawn().expect("start hookguard"),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
