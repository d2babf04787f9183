//! The webhook restarted and its certificate rotated while a client creates hook Jobs through
//! the real apiserver, with both webhooks registered `failurePolicy: Fail`: not one admission
//! may fail.
//!
//! The test binds the webhook's port once and hands the listening socket to every generation
//! of `hookguard serve --listen-fd 3` (dup2 onto fd 3, as systemd does). A restart starts the
//! next generation on the same socket, waits for its /readyz, then SIGTERMs the old one, which
//! drains (readiness false, serves on for `--shutdown-delay`, stops accepting, finishes what
//! is in flight, closes idle keep-alives and sends HTTP/2 GOAWAY). Connections arriving
//! meanwhile wait in the shared accept queue, so nothing is refused.
//!
//! Rotations alternate, seeded, between an in-place rewrite (tmp file + rename, key then
//! certificate) and a Secret volume's `..data` symlink swap; each new certificate (same CA,
//! new key, new serial) must be what a fresh TLS connection is served, within seconds.
//!
//!     FAULT_SEED=3 FAULT_WEBHOOK_ROUNDS=4 tests/e2e/control-plane.sh run \
//!       $PWD/target/e2e-control-plane -- cargo test --features e2e --test e2e_faults webhook \
//!       -- --nocapture

use super::support::{self, TestNamespace};
use super::{env_u64, Rng, SERIAL};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SELECT_LABEL: &str = "hookguard.io/e2e-faults-webhook";
const VALIDATING: &str = "validate.faults.e2e.hookguard.io";
const MUTATING: &str = "mutate.faults.e2e.hookguard.io";
const MANAGED: &str = "hookguard.io/managed";

/// A CA kept in memory that signs serving certificates for 127.0.0.1.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A serving certificate and key (PEM) and the certificate's DER, to compare with what a TLS
/// connection is served.
struct Serving {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "hookguard fault-test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA"),
        }
    }

    /// A new key and certificate with this serial.
    fn serving(&self, serial: u64) -> Serving {
        let key = KeyPair::generate().expect("serving key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.serial_number = Some(SerialNumber::from(serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("serving cert");
        Serving {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// A Secret-volume layout: `tls.crt` and `tls.key` are symlinks through `..data`, which points
/// at a timestamped directory.
fn secret_swap(dir: &Path, generation: u64, s: &Serving) {
    let name = format!("..2026_11_21_00_00_{generation:02}.{generation}");
    let target = dir.join(&name);
    std::fs::create_dir(&target).expect("generation dir");
    std::fs::write(target.join("tls.crt"), &s.cert_pem).expect("tls.crt");
    std::fs::write(target.join("tls.key"), &s.key_pem).expect("tls.key");
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&name, &tmp).expect("symlink");
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    for f in ["tls.crt", "tls.key"] {
        let link = dir.join(f);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), &link).expect("file symlink");
        }
    }
    // As the kubelet does: the previous generation goes away after the swap.
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
}

/// Rewrites the files in place (through the symlinks), each as tmp + rename: key first, so a
/// reader sees old+old, new key + old cert (a mismatch, kept out), or new+new.
fn in_place(dir: &Path, s: &Serving) {
    let data = dir.join("..data");
    for (f, content) in [("tls.key", &s.key_pem), ("tls.crt", &s.cert_pem)] {
        let tmp = data.join(format!(".{f}.tmp"));
        std::fs::write(&tmp, content).expect("write tmp");
        std::fs::rename(&tmp, data.join(f)).expect("rename");
    }
}

/// The certificate a new TLS connection to `port` is served.
async fn served(port: u16, ca_pem: &str) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or_else(|| "no peer certificate".to_owned())
}

/// One generation of `hookguard serve`, on the shared socket as fd 3. Killed when dropped.
struct Generation {
    n: u64,
    child: Option<Child>,
    admin: String,
    log: PathBuf,
}

/// Spawns `cmd` with `fd` as its fd 3 (what systemd socket activation passes).
#[allow(unsafe_code)]
fn spawn_with_fd3(cmd: &mut Command, fd: RawFd) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure only calls dup2 and fcntl (async-signal-safe)
    // and allocates nothing (`last_os_error` is a plain errno value). dup2 gives the copy no
    // FD_CLOEXEC; if the socket already is fd 3, its flag is cleared instead.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
    cmd.spawn()
}

impl Generation {
    async fn start(n: u64, fd: RawFd, certs: &Path, ns: &str) -> Generation {
        let admin = format!("127.0.0.1:{}", support::free_port());
        let log = support::log_dir().join(format!("{ns}-webhook-gen{n}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookguard"));
        cmd.arg("serve")
            .args(["--listen-fd", "3", "--admin-addr", &admin])
            .arg("--tls-cert")
            .arg(certs.join("tls.crt"))
            .arg("--tls-key")
            .arg(certs.join("tls.key"))
            .args(["--cert-check-interval", "200ms", "--no-finalizer"])
            .args(["--shutdown-delay", "1s", "--shutdown-timeout", "10s"])
            .env("HOOKGUARD_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out);
        let child = spawn_with_fd3(&mut cmd, fd).expect("start hookguard serve --listen-fd 3");
        let mut g = Generation {
            n,
            child: Some(child),
            admin,
            log,
        };
        let url = format!("http://{}/readyz", g.admin);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(&url).await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Some(Ok(Some(status))) = g.child.as_mut().map(Child::try_wait) {
                panic!(
                    "webhook generation {n} exited before it was ready ({status}):\n{}",
                    std::fs::read_to_string(&g.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "webhook generation {n} not ready within 30 s (log {})",
                g.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        g
    }

    /// SIGTERM and wait (off the runtime) for the drain to end; returns how long it took.
    async fn terminate(mut self) -> Duration {
        let mut child = self.child.take().expect("running generation");
        let n = self.n;
        let log = self.log.clone();
        let started = Instant::now();
        let status = tokio::task::spawn_blocking(move || {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(status);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            None
        })
        .await
        .expect("wait for the old generation");
        match status {
            Some(s) if s.success() => started.elapsed(),
            other => panic!(
                "webhook generation {n} did not drain and exit cleanly ({other:?}); log {}",
                log.display()
            ),
        }
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The two webhook configurations, deleted when dropped (on a thread with a client of its
/// own: the test's client belongs to the runtime that is blocked in drop).
struct Registration {
    name: String,
}

impl Registration {
    async fn create(client: &Client, ns: &str, port: u16, ca_pem: &str) -> Registration {
        use base64::Engine;
        let name = format!("hookguard-e2e-faults-{ns}");
        let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
        let webhook = |webhook_name: &str, path: &str| {
            json!({
                "name": webhook_name,
                "clientConfig": {"url": format!("https://127.0.0.1:{port}{path}"), "caBundle": ca_bundle},
                "rules": [{"apiGroups": ["batch"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                           "resources": ["jobs"], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"hookguard.io/e2e": "true", SELECT_LABEL: ns}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
            })
        };
        let meta = json!({"name": name, "labels": {"hookguard.io/e2e": "true"}});
        let validating: ValidatingWebhookConfiguration = serde_json::from_value(
            json!({"metadata": meta, "webhooks": [webhook(VALIDATING, "/validate")]}),
        )
        .expect("ValidatingWebhookConfiguration");
        let mutating: MutatingWebhookConfiguration = serde_json::from_value(
            json!({"metadata": meta, "webhooks": [webhook(MUTATING, "/mutate")]}),
        )
        .expect("MutatingWebhookConfiguration");
        let pp = PostParams::default();
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .create(&pp, &validating)
            .await
            .expect("create ValidatingWebhookConfiguration");
        let registration = Registration { name };
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .create(&pp, &mutating)
            .await
            .expect("create MutatingWebhookConfiguration");
        registration
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let name = self.name.clone();
        support::with_fresh_client(move |client| async move {
            let dp = DeleteParams::default();
            let _ = Api::<ValidatingWebhookConfiguration>::all(client.clone())
                .delete(&name, &dp)
                .await;
            let _ = Api::<MutatingWebhookConfiguration>::all(client)
                .delete(&name, &dp)
                .await;
        });
    }
}

/// A hook Job that creates no pods (parallelism 0); `typo` gives it a delete policy the
/// validating webhook denies.
fn hook_job(name: &str, typo: bool) -> Job {
    let policy = if typo {
        "HookSuceeded"
    } else {
        "HookSucceeded"
    };
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "annotations": {
            "argocd.argoproj.io/hook": "PostSync",
            "argocd.argoproj.io/hook-delete-policy": policy,
        }},
        "spec": {"parallelism": 0, "backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "hook", "image": "busybox", "command": ["true"]}]}}}
    }))
    .expect("job")
}

#[derive(Default)]
struct Tally {
    attempted: AtomicU64,
    allowed: AtomicU64,
    denied_expected: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, at: Duration, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut f) = self.failures.lock() {
            if f.len() < 10 {
                f.push(format!("t={:.2}s {what}", at.as_secs_f64()));
            }
        }
    }
}

/// Creates hooks until `stop`, classifying every answer: allowed and mutated, or denied by the
/// validating webhook for the typo it was given, is right; anything else (a transport error,
/// a timeout, the webhook not called, a wrong verdict) is a failed admission.
async fn creator(
    jobs: Api<Job>,
    id: u64,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    t0: Instant,
) {
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let typo = rng.below(10) == 0;
        let name = format!("c{id}-{i}");
        tally.attempted.fetch_add(1, Ordering::SeqCst);
        let result = tokio::time::timeout(
            Duration::from_secs(20),
            jobs.create(&PostParams::default(), &hook_job(&name, typo)),
        )
        .await;
        match result {
            Err(_) => tally.fail(t0.elapsed(), format!("{name}: no answer within 20 s")),
            Ok(Ok(job)) if !typo && job.labels().get(MANAGED).is_some_and(|v| v == "true") => {
                tally.allowed.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Ok(_)) if typo => tally.fail(t0.elapsed(), format!("{name}: typo admitted")),
            Ok(Ok(_)) => tally.fail(t0.elapsed(), format!("{name}: admitted but not mutated")),
            Ok(Err(kube::Error::Api(s))) if typo && s.message.contains(VALIDATING) => {
                tally.denied_expected.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Err(e)) => tally.fail(t0.elapsed(), format!("{name}: {e}")),
        }
        tokio::time::sleep(rng.ms(5, 30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_survives_webhook_restarts_and_certificate_rotation() {
    let _serial = SERIAL.lock().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seed = env_u64("FAULT_SEED", 1);
    let rounds = env_u64("FAULT_WEBHOOK_ROUNDS", 4);
    let clients = env_u64("FAULT_WEBHOOK_CLIENTS", 2);
    let mut rng = Rng::new(seed ^ 0x3EB_400C);
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "hg-faults-wh").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);

    let ca = Ca::new();
    let ca_pem = ca.issuer.pem();
    let certs = tempfile::tempdir().expect("certificate dir");
    let mut serial = 1;
    let mut current = ca.serving(serial);
    secret_swap(certs.path(), serial, &current);

    // Bound once, here; every generation serves on this socket.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the webhook port");
    let port = listener.local_addr().expect("addr").port();
    let fd = listener.as_raw_fd();
    let mut generation = Generation::start(1, fd, certs.path(), &ns.name).await;
    let _registration = Registration::create(&client, &ns.name, port, &ca_pem).await;

    // Select the namespace, then wait until the apiserver calls both webhooks for it.
    let patch = json!({"metadata": {"labels": {SELECT_LABEL: ns.name}}});
    Api::<Namespace>::all(client.clone())
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label the namespace");
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    support::eventually(
        Duration::from_secs(30),
        "both webhooks called for the namespace",
        || async {
            let mutated = jobs
                .create(&dry_run, &hook_job("probe", false))
                .await
                .map_err(|e| e.to_string())?
                .labels()
                .contains_key(MANAGED);
            let denied = matches!(jobs.create(&dry_run, &hook_job("probe", true)).await,
                Err(kube::Error::Api(s)) if s.message.contains(VALIDATING));
            (mutated && denied)
                .then_some(())
                .ok_or_else(|| "not yet".to_owned())
        },
    )
    .await;

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let load: Vec<_> = (0..clients)
        .map(|id| {
            tokio::spawn(creator(
                jobs.clone(),
                id,
                Rng::new(seed.wrapping_add(id) ^ 0xC1E4),
                stop.clone(),
                tally.clone(),
                t0,
            ))
        })
        .collect();

    let (mut in_place_rotations, mut swaps, mut restarts) = (0, 0, 0);
    let mut rotation_ms = Vec::new();
    let mut drain_ms = Vec::new();
    for _ in 0..rounds {
        tokio::time::sleep(rng.ms(500, 2000)).await;
        // Rotate: same CA, new key, new serial.
        serial += 1;
        current = ca.serving(serial);
        if rng.below(2) == 0 {
            in_place(certs.path(), &current);
            in_place_rotations += 1;
        } else {
            secret_swap(certs.path(), serial, &current);
            swaps += 1;
        }
        let rotated = Instant::now();
        support::eventually(
            Duration::from_secs(10),
            &format!("certificate serial {serial} served"),
            || async {
                let der = served(port, &ca_pem).await?;
                (der == current.der)
                    .then_some(())
                    .ok_or_else(|| "old certificate".to_owned())
            },
        )
        .await;
        rotation_ms.push(rotated.elapsed().as_millis());

        tokio::time::sleep(rng.ms(300, 1500)).await;
        // Restart: the next generation takes the socket, then the old one drains.
        let next = Generation::start(generation.n + 1, fd, certs.path(), &ns.name).await;
        let old = std::mem::replace(&mut generation, next);
        drain_ms.push(old.terminate().await.as_millis());
        restarts += 1;
        let der = served(port, &ca_pem).await.expect("TLS after the restart");
        assert!(
            der == current.der,
            "after the restart the webhook serves another certificate than serial {serial}"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.expect("creator");
    }
    let failures = tally.failures.lock().map(|f| f.clone()).unwrap_or_default();
    println!(
        "FAULTS scenario=webhook-restart-rotation seed={seed} rounds={rounds} clients={clients} \
         restarts={restarts} rotations={} (in_place={in_place_rotations} secret_swap={swaps}) \
         rotation_served_ms={rotation_ms:?} old_generation_exit_ms={drain_ms:?} \
         admissions_attempted={} allowed={} denied_as_expected={} admissions_failed={} duration_s={:.1}",
        in_place_rotations + swaps,
        tally.attempted.load(Ordering::SeqCst),
        tally.allowed.load(Ordering::SeqCst),
        tally.denied_expected.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst),
        t0.elapsed().as_secs_f64(),
    );
    assert_eq!(
        tally.failed.load(Ordering::SeqCst),
        0,
        "failed admissions: {failures:#?}"
    );
    // Dropped in reverse order: the registration goes before the last generation stops.
}
