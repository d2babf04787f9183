//! Test support for the end-to-end tests against a real control plane
//! (`tests/e2e/control-plane.sh run DIR -- cargo test --features e2e --test …`).
//!
//! A test that finds no control plane fails with a message saying how to get one; it never
//! passes silently.
#![allow(dead_code)] // each e2e target uses a different part of this module

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The control plane the harness started.
pub struct Cluster {
    pub client: Client,
    pub kubeconfig: PathBuf,
}

/// Connects to the control plane named by `HOOKGUARD_E2E_KUBECONFIG`, or panics saying why.
pub async fn cluster() -> Cluster {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = std::env::var_os("HOOKGUARD_E2E_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "HOOKGUARD_E2E_KUBECONFIG is not set: no control plane for the end-to-end tests. \
             Run them with `make e2e` (tests/e2e/control-plane.sh run DIR -- cargo test …)."
            )
        });
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {}: {e}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {} is not usable: {e}", path.display()));
    let client = Client::try_from(config).expect("kube client");
    let version = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .unwrap_or_else(|_| panic!("the apiserver of {} does not answer", path.display()))
        .unwrap_or_else(|e| panic!("the apiserver of {} does not answer: {e}", path.display()));
    assert!(!version.git_version.is_empty());
    Cluster {
        client,
        kubeconfig: path,
    }
}

static NAMESPACES: AtomicUsize = AtomicUsize::new(0);

/// A fresh namespace for one test, deleted when dropped (best effort, in the background of
/// the apiserver: namespace deletion is asynchronous anyway).
pub struct TestNamespace {
    pub name: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    pub async fn new(cluster: &Cluster, prefix: &str) -> TestNamespace {
        let client = &cluster.client;
        let n = NAMESPACES.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"hookguard.io/e2e": "true"}}
        }))
        .expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
        TestNamespace {
            name,
            kubeconfig: cluster.kubeconfig.clone(),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let name = self.name.clone();
        // Drop cannot await, and the test's client is bound to the test's runtime (which this
        // thread is blocking): delete from a short-lived thread with its own runtime and client.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(kc) = Kubeconfig::read_from(&kubeconfig) else {
                    return;
                };
                let Ok(config) =
                    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await
                else {
                    return;
                };
                let Ok(client) = Client::try_from(config) else {
                    return;
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    Api::<Namespace>::all(client).delete(&name, &DeleteParams::background()),
                )
                .await;
            });
        })
        .join();
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A hookguard subcommand running as a child process, killed when dropped.
pub struct Process {
    pub child: Child,
}

impl Process {
    /// Starts `hookguard ARGS…` (the binary cargo built for this test run).
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Process {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookguard"));
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start hookguard");
        Process { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `timeout` for exit, then SIGKILL.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
