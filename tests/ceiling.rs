//! The reference servers `scripts/load.sh` measures hookguard against (`examples/ceiling.rs`),
//! run as the built example over real TLS: the ceiling answers every review with its constant
//! "allowed" review; the floor (`--check-json`) does too, but answers a body that is not JSON
//! with a 400; a wrong command line is refused with the usage; SIGINT and SIGTERM stop it with
//! exit code 0 (scripts/pgo.sh needs that). If either answered differently, the load test's
//! ratios would compare hookguard with something else.

mod support;

use hookguard::certs;
use serde_json::Value;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::free_port;

/// The example's binary, built (or found up to date) by cargo. `cargo test` builds examples
/// too, but not so that this build finds them fresh: in CI this rebuilds the lib and the
/// example (~1 minute).
fn ceiling_binary() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--example",
            "ceiling",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo build --example ceiling failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        // The example, not this test (whose target is also named `ceiling`).
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "ceiling")
        .filter(|m| m["target"]["kind"][0] == "example")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the ceiling's executable")
}

/// The server process, killed when dropped (also when an assertion fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(bin: &PathBuf, dir: &std::path::Path, flags: &[&str]) -> (Server, u16) {
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("127.0.0.1:{port}"))
        .arg(dir.join(certs::CERT_FILE))
        .arg(dir.join(certs::KEY_FILE))
        .args(flags)
        .spawn()
        .expect("the ceiling starts");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the ceiling never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, port)
}

async fn post(
    client: &reqwest::Client,
    port: u16,
    path: &str,
    body: Vec<u8>,
) -> (u16, String, String) {
    let r = client
        .post(format!("https://127.0.0.1:{port}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("an answer over TLS");
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, r.text().await.expect("a body"))
}

#[tokio::test]
async fn ceiling_allows_every_review_and_the_floor_rejects_what_is_not_json() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = ceiling_binary();
    let dir = tempfile::tempdir().unwrap();
    let bundle = certs::generate(&["127.0.0.1".to_string()], 1).expect("certificates");
    certs::write(dir.path(), &bundle).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(bundle.ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let review = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/admission/kube-apiserver-1.20.2/2.json"
    ))
    .expect("fixture 2, the review load.sh sends");

    // (flags, the status a body that is not JSON gets)
    for (flags, not_json_status) in [(&[][..], 200), (&["--check-json"][..], 400)] {
        let (_server, port) = start(&bin, dir.path(), flags);
        for path in ["/validate", "/mutate"] {
            let (status, content_type, body) = post(&client, port, path, review.clone()).await;
            assert_eq!(
                (status, content_type.as_str()),
                (200, "application/json"),
                "{flags:?} {path}"
            );
            let answer: Value = serde_json::from_str(&body).expect("a JSON answer");
            assert_eq!(answer["kind"], "AdmissionReview", "{body}");
            assert_eq!(answer["response"]["allowed"], true, "{body}");
        }
        let (status, ..) = post(&client, port, "/validate", b"{\"request\": ".to_vec()).await;
        assert_eq!(status, not_json_status, "{flags:?}: a truncated body");
    }
}

#[test]
fn a_wrong_command_line_is_refused_with_the_usage() {
    let out = Command::new(ceiling_binary())
        .args(["127.0.0.1:0", "tls.crt"])
        .output()
        .expect("the ceiling runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("usage: ceiling ADDR TLS_CERT TLS_KEY [--check-json]"),
        "{stderr}"
    );
}

/// `scripts/pgo.sh` stops the instrumented ceiling with SIGINT: only a process that returns
/// from `main` writes its profile, and one killed by the signal would leave none.
#[test]
fn the_ceiling_exits_cleanly_on_sigint_and_sigterm() {
    let bin = ceiling_binary();
    let dir = tempfile::tempdir().unwrap();
    let bundle = certs::generate(&["127.0.0.1".to_string()], 1).expect("certificates");
    certs::write(dir.path(), &bundle).unwrap();
    for signal in ["-INT", "-TERM"] {
        let (mut server, _port) = start(&bin, dir.path(), &[]);
        let sent = Command::new("kill")
            .args([signal, &server.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = server.0.try_wait().expect("the ceiling's status") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the ceiling still runs after {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // Exit code 0: a death by the signal is not a success.
        assert!(status.success(), "after {signal}: {status}");
    }
}
