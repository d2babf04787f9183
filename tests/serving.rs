//! The webhook served for real: TLS on 127.0.0.1 with rcgen certificates, reqwest (rustls,
//! trusting only the test CAs) and raw TLS/TCP clients where a misbehaving client is needed.
//! Covers the captured fixtures over HTTPS, certificate rotation (in place, by a Secret
//! volume's symlink swap, and half-written/mismatched pairs), graceful drain on SIGTERM,
//! limits, mTLS, old TLS versions and the metrics.

mod support;

use base64::Engine;
use hookguard::admission::AdmissionConfig;
use hookguard::certs::{self, CertBundle};
use hookguard::server::run::{self, Prepared, RunError, Settings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

fn fixture(n: u32) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/admission/kube-apiserver-1.20.2/{n}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).expect("fixture")
}

fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn bundle() -> CertBundle {
    certs::generate(&["127.0.0.1".to_string()], 30).expect("certificates")
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM certificate")
        .to_vec()
}

struct TestServer {
    addr: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
    ca_pems: Vec<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
}

impl TestServer {
    async fn start(configure: impl FnOnce(&mut Settings, &Path)) -> Self {
        Self::start_with(bundle(), configure).await
    }

    async fn start_with(b: CertBundle, configure: impl FnOnce(&mut Settings, &Path)) -> Self {
        install_provider();
        let dir = tempfile::tempdir().unwrap();
        certs::write(dir.path(), &b).unwrap();
        let mut settings = Settings::new(
            dir.path().join(certs::CERT_FILE),
            dir.path().join(certs::KEY_FILE),
            std::sync::Arc::new(AdmissionConfig::store(
                hookguard::policy::ActivePolicy::defaults(),
            )),
        );
        settings.shutdown_timeout = Duration::from_secs(5);
        configure(&mut settings, dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin = admin_listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run::run(
            settings,
            listener,
            admin_listener,
            Prepared::new(),
            async move {
                let _ = stopped.await;
            },
        ));
        let server = Self {
            addr,
            admin,
            dir,
            ca_pems: vec![b.ca_pem],
            stop: Some(stop),
            task,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = admin_get(self.admin, "/readyz").await {
                if r.0 == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "server never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    fn client(&self) -> reqwest::Client {
        client_trusting(&self.ca_pems, None)
    }

    async fn metrics(&self) -> String {
        admin_get(self.admin, "/metrics").await.unwrap().1
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops within its shutdown timeout")
            .expect("server task")
            .expect("server ran without error");
    }
}

fn client_trusting(ca_pems: &[String], identity: Option<reqwest::Identity>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    for ca in ca_pems {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    if let Some(id) = identity {
        b = b.identity(id);
    }
    b.build().unwrap()
}

/// A plain-HTTP GET on the admin plane: (status, body).
async fn admin_get(addr: SocketAddr, path: &str) -> Result<(u16, String), reqwest::Error> {
    let r = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
}

/// The leaf certificate a response was served with.
fn served_cert(r: &reqwest::Response) -> Vec<u8> {
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS info")
        .to_vec()
}

/// A raw TLS connection (HTTP/1.1 by ALPN) for clients that misbehave on purpose.
async fn raw_tls(addr: SocketAddr, ca_pem: &str) -> TlsStream<TcpStream> {
    raw_tls_alpn(addr, ca_pem, b"http/1.1").await
}

async fn raw_tls_alpn(addr: SocketAddr, ca_pem: &str, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

fn request_head(path: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// Reads one HTTP/1.1 response with a Content-Length: (status, body).
async fn read_response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.expect("read response");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("content-length");
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, buf[head_end..head_end + len].to_vec())
}

/// Waits for the peer to close: true if it did within `within`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> bool {
    let mut b = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut b)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn apply_patch(body: &[u8], response: &Value) -> Value {
    let review: Value = serde_json::from_slice(body).unwrap();
    let mut object = review["request"]["object"].clone();
    if let Some(p) = response["patch"].as_str() {
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut object, &patch).expect("patch applies");
    }
    object
}

async fn review(client: &reqwest::Client, url: &str, body: &[u8]) -> Value {
    let r = post(client, url, body.to_vec()).await.expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    let uid = serde_json::from_slice::<Value>(body).unwrap()["request"]["uid"].clone();
    assert_eq!(v["response"]["uid"], uid);
    v["response"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_reviews_are_answered_over_https_h1_and_h2() {
    let s = TestServer::start(|_, _| {}).await;
    let h2 = s.client();
    // Same trust, HTTP/1.1 only.
    let h1 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(s.ca_pems[0].as_bytes()).unwrap())
        .build()
        .unwrap();
    for (client, version) in [
        (&h2, reqwest::Version::HTTP_2),
        (&h1, reqwest::Version::HTTP_11),
    ] {
        let r = post(client, &s.url("/validate"), fixture(2)).await.unwrap();
        assert_eq!(r.version(), version);

        // Argo CD PreSync Job: allowed, labelled, finalizer added, explicit delete policy.
        let body = fixture(2);
        let v = review(client, &s.url("/validate"), &body).await;
        assert_eq!(v["allowed"], true);
        assert!(v.get("warnings").is_none());
        let m = review(client, &s.url("/mutate"), &body).await;
        let obj = apply_patch(&body, &m);
        assert_eq!(obj["metadata"]["labels"]["hookguard.io/managed"], "true");
        assert_eq!(
            obj["metadata"]["finalizers"],
            json!(["hookguard.io/cleanup"])
        );

        // Helm pre-install Job: translated into Argo CD annotations.
        let body = fixture(4);
        let m = review(client, &s.url("/mutate"), &body).await;
        let obj = apply_patch(&body, &m);
        assert_eq!(
            obj["metadata"]["annotations"]["argocd.argoproj.io/hook"],
            "PreSync"
        );
        assert_eq!(
            obj["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"],
            "BeforeHookCreation,HookSucceeded"
        );

        // Helm test Pod: warned, not mutated.
        let body = fixture(6);
        let v = review(client, &s.url("/validate"), &body).await;
        assert_eq!(v["allowed"], true);
        let w = v["warnings"][0].as_str().unwrap();
        assert!(w.starts_with("[helm-hook-ignored-by-argo]"), "{w}");
        let m = review(client, &s.url("/mutate"), &body).await;
        assert!(m.get("patch").is_none());

        // Denied: a typo in the delete policy, with the rule and the fix in the message.
        let mut typo: Value = serde_json::from_slice(&fixture(2)).unwrap();
        typo["request"]["object"]["metadata"]["annotations"] = json!({
            "argocd.argoproj.io/hook": "PreSync",
            "argocd.argoproj.io/hook-delete-policy": "HookSuceeded"});
        let body = serde_json::to_vec(&typo).unwrap();
        let v = review(client, &s.url("/validate"), &body).await;
        assert_eq!(v["allowed"], false);
        let msg = v["status"]["message"].as_str().unwrap();
        assert!(
            msg.contains("[unknown-delete-policy]") && msg.contains("HookSucceeded"),
            "{msg}"
        );

        // Plain objects, UPDATE and dry-run.
        for n in [1, 3, 5, 8, 9, 10] {
            let body = fixture(n);
            let v = review(client, &s.url("/validate"), &body).await;
            assert_eq!(v["allowed"], true, "fixture {n}");
            let m = review(client, &s.url("/mutate"), &body).await;
            apply_patch(&body, &m);
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_traffic() {
    let s = TestServer::start(|st, _| st.max_body_bytes = 64 * 1024).await;
    let c = s.client();
    for _ in 0..2 {
        review(&c, &s.url("/validate"), &fixture(2)).await;
    }
    review(&c, &s.url("/validate"), &fixture(6)).await;
    review(&c, &s.url("/mutate?timeout=10s"), &fixture(10)).await;
    let r = post(&c, &s.url("/validate"), b"{not json".to_vec())
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "an unreadable review is answered, not failed"
    );
    let r = c.post(s.url("/validate")).body("x").send().await.unwrap();
    assert_eq!(r.status(), 415);
    let r = post(&c, &s.url("/mutate"), vec![b' '; 100 * 1024])
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let (status, ready) = admin_get(s.admin, "/readyz").await.unwrap();
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains("[+]tls: serving CN=127.0.0.1"), "{ready}");
    assert_eq!(admin_get(s.admin, "/livez").await.unwrap().0, 200);

    let m = s.metrics().await;
    for line in [
        r#"hookguard_admission_requests_total{webhook="validate",operation="CREATE",kind="Job.batch",decision="allowed",dry_run="false"} 2"#,
        r#"hookguard_admission_requests_total{webhook="validate",operation="CREATE",kind="Pod",decision="warned",dry_run="false"} 1"#,
        r#"hookguard_admission_requests_total{webhook="mutate",operation="CREATE",kind="Job.batch",decision="patched",dry_run="true"} 1"#,
        r#"hookguard_admission_requests_total{webhook="validate",operation="-",kind="-",decision="invalid",dry_run="false"} 1"#,
        r#"hookguard_admission_rule_hits_total{webhook="validate",operation="CREATE",kind="Pod",decision="warned",rule="helm-hook-ignored-by-argo",action="warn",dry_run="false"} 1"#,
        r#"hookguard_admission_duration_seconds_count{webhook="validate",decision="allowed"} 2"#,
        r#"hookguard_admission_rejected_total{webhook="validate",reason="unsupported_media_type"} 1"#,
        r#"hookguard_admission_rejected_total{webhook="mutate",reason="body_too_large"} 1"#,
        r#"hookguard_admission_in_flight 0"#,
        r#"hookguard_tls_certificate_reloads_total{result="success"} 1"#,
        "# TYPE hookguard_admission_duration_seconds histogram",
        r#"hookguard_admission_duration_seconds_bucket{le="0.00005",webhook="validate",decision="allowed"}"#,
        r#"hookguard_admission_duration_seconds_bucket{le="10.0",webhook="validate",decision="allowed"} 2"#,
        "# TYPE hookguard_policy_last_reload_success_timestamp_seconds gauge",
    ] {
        assert!(m.contains(line), "missing {line}\n{m}");
    }
    let not_after: i64 = m
        .lines()
        .find_map(|l| l.strip_prefix("hookguard_tls_certificate_not_after_seconds "))
        .expect("expiry gauge")
        .parse()
        .unwrap();
    let in_30_days = time::OffsetDateTime::now_utc().unix_timestamp() + 30 * 86400;
    assert!(
        (not_after - in_30_days).abs() < 120,
        "{not_after} vs {in_30_days}"
    );
    assert!(m.ends_with("# EOF\n"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_with_precise_statuses() {
    let s = TestServer::start(|st, _| {
        st.max_body_bytes = 64 * 1024;
        st.max_concurrent = 1;
        // Short enough for a quick test, long enough that a slow debug-build TLS handshake on
        // a busy 2-core machine does not trip them (300 ms did, once).
        st.connection.header_read_timeout = Duration::from_millis(1000);
        st.connection.handshake_timeout = Duration::from_millis(1000);
        st.connection.idle_timeout = Duration::from_millis(3000);
    })
    .await;
    let c = s.client();
    let r = post(&c, &s.url("/validate"), vec![b' '; 100 * 1024])
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let text = r.text().await.unwrap();
    assert!(text.contains("over the 65536-byte limit"), "{text}");
    // The same cap on a body of unannounced length (chunked): 413 once it is passed.
    let mut chunked = raw_tls(s.addr, &s.ca_pems[0]).await;
    let head = "POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    chunked.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..5 {
        let chunk = [b' '; 16 * 1024];
        chunked.write_all(b"4000\r\n").await.unwrap();
        chunked.write_all(&chunk).await.unwrap();
        chunked.write_all(b"\r\n").await.unwrap();
    }
    chunked.flush().await.unwrap();
    let (status, text) = read_response(&mut chunked).await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&text));
    // A body that breaks off mid-stream (a chunk size that is not hex): 400, not a 500.
    let mut broken = raw_tls(s.addr, &s.ca_pems[0]).await;
    let head = head.replace("/mutate", "/validate");
    broken.write_all(head.as_bytes()).await.unwrap();
    broken.write_all(b"5\r\n{\"a\":\r\nzz\r\n").await.unwrap();
    broken.flush().await.unwrap();
    let (status, text) = read_response(&mut broken).await;
    let text = String::from_utf8_lossy(&text);
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("the request body could not be read"),
        "{text}"
    );
    let r = c
        .post(s.url("/validate"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("application/json"));
    let r = c.get(s.url("/validate")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = post(&c, &s.url("/nope"), b"{}".to_vec()).await.unwrap();
    assert_eq!(r.status(), 404);

    // Saturation: one request holds the only permit while its body trickles in.
    let body = fixture(2);
    let mut held = raw_tls(s.addr, &s.ca_pems[0]).await;
    held.write_all(request_head("/validate", body.len()).as_bytes())
        .await
        .unwrap();
    held.write_all(&body[..100]).await.unwrap();
    held.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = post(&c, &s.url("/validate"), body.clone()).await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains("concurrency limit (1 requests in flight)"),
        "{text}"
    );
    held.write_all(&body[100..]).await.unwrap();
    let (status, answer) = read_response(&mut held).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_slice::<Value>(&answer).unwrap()["response"]["allowed"] == true);
    // The permit is back.
    review(&c, &s.url("/validate"), &body).await;

    // Deadline: `?timeout=4s` and a body that never completes: 503 after the 3.8 s budget and
    // before the apiserver's 4 s. (With 1 s the budget leaves 50 ms, which a busy machine's
    // scheduling once exceeded.)
    let started = Instant::now();
    held.write_all(request_head("/validate?timeout=4s", body.len()).as_bytes())
        .await
        .unwrap();
    held.write_all(&body[..10]).await.unwrap();
    let (status, text) = read_response(&mut held).await;
    let waited = started.elapsed();
    assert_eq!(status, 503);
    assert!(
        String::from_utf8_lossy(&text).contains("did not arrive within"),
        "{text:?}"
    );
    assert!(
        waited < Duration::from_millis(4000) && waited >= Duration::from_millis(3700),
        "{waited:?}"
    );

    // A client that sends half its headers is cut off.
    let mut slow = raw_tls(s.addr, &s.ca_pems[0]).await;
    slow.write_all(b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)).await,
        "slow header client kept its connection"
    );
    // An idle HTTP/1.1 keep-alive connection is not a slow client: it outlives the header
    // timeout (closing it early races with the client's next request) and is closed only
    // after the idle timeout.
    let mut idle = raw_tls(s.addr, &s.ca_pems[0]).await;
    let body = fixture(2);
    idle.write_all(request_head("/validate", body.len()).as_bytes())
        .await
        .unwrap();
    idle.write_all(&body).await.unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200);
    assert!(
        !closed_within(&mut idle, Duration::from_millis(2000)).await,
        "an idle keep-alive connection was closed by the header timeout"
    );
    idle.write_all(request_head("/validate", body.len()).as_bytes())
        .await
        .unwrap();
    idle.write_all(&body).await.unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200, "reused after idling");
    let idled = std::time::Instant::now();
    assert!(
        closed_within(&mut idle, Duration::from_secs(6)).await,
        "an idle keep-alive connection outlived the idle timeout"
    );
    assert!(
        idled.elapsed() >= Duration::from_millis(2800),
        "{:?}",
        idled.elapsed()
    );

    // Over HTTP/2 as well (hyper has no header timeout there): a client that opens a stream
    // with a HEADERS frame whose CONTINUATION never comes, and one that sends nothing after
    // its preface, are both closed.
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
    // Length 1, type HEADERS, no flags (no END_HEADERS), stream 1; HPACK 0x83 = :method POST.
    const HALF_HEADERS: [u8; 10] = [0, 0, 1, 1, 0, 0, 0, 0, 1, 0x83];
    for frames in [
        &[PREFACE, &EMPTY_SETTINGS, &HALF_HEADERS][..],
        &[PREFACE, &EMPTY_SETTINGS],
    ] {
        let mut h2 = raw_tls_alpn(s.addr, &s.ca_pems[0], b"h2").await;
        assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        for frame in frames {
            h2.write_all(frame).await.unwrap();
        }
        let started = std::time::Instant::now();
        assert!(
            closed_within(&mut h2, Duration::from_secs(5)).await,
            "an HTTP/2 client without a complete request kept its connection ({} frames)",
            frames.len()
        );
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "closed too early"
        );
    }
    // A client that never starts its TLS handshake is cut off too.
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "silent client kept its connection"
    );

    let m = s.metrics().await;
    assert!(
        m.contains(
            r#"hookguard_admission_rejected_total{webhook="validate",reason="saturated"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"hookguard_admission_rejected_total{webhook="validate",reason="deadline"} 1"#),
        "{m}"
    );
    for webhook in ["validate", "mutate"] {
        let line = format!(
            r#"hookguard_admission_rejected_total{{webhook="{webhook}",reason="body_too_large"}} 1"#
        );
        assert!(m.contains(&line), "{line}\n{m}");
    }
    assert!(
        m.contains(r#"hookguard_admission_rejected_total{webhook="validate",reason="bad_body"} 1"#),
        "{m}"
    );
    assert!(m.contains("hookguard_admission_concurrency_limit 1"), "{m}");
    s.stop().await;
}

/// Sends requests on new and on reused connections until stopped; counts failures.
fn background_load(
    s: &TestServer,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let (ok2, failed2) = (ok.clone(), failed.clone());
    let reused = s.client();
    let cas = s.ca_pems.clone();
    let url = s.url("/mutate");
    let task = tokio::spawn(async move {
        let body = fixture(2);
        let mut i = 0u32;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            // Every third request on a fresh connection, the rest on a kept-alive one.
            let client = if i % 3 == 0 {
                client_trusting(&cas, None)
            } else {
                reused.clone()
            };
            match post(&client, &url, body.clone()).await {
                Ok(r) if r.status() == 200 => ok2.fetch_add(1, Ordering::SeqCst),
                Ok(r) => {
                    eprintln!("background request got {}", r.status());
                    failed2.fetch_add(1, Ordering::SeqCst)
                }
                Err(e) => {
                    eprintln!("background request failed: {e:?}");
                    failed2.fetch_add(1, Ordering::SeqCst)
                }
            };
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (ok, failed, task)
}

/// Polls with new connections until `want` is served (or panics after 5 s).
async fn wait_for_cert(s: &TestServer, cas: &[String], want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = post(&client_trusting(cas, None), &s.url("/validate"), fixture(8))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        if served_cert(&r) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn assert_still_served(s: &TestServer, cas: &[String], want: &[u8]) {
    // Several check intervals: the broken pair must not be picked up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let r = post(&client_trusting(cas, None), &s.url("/validate"), fixture(8))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(served_cert(&r), want, "a broken pair replaced the good one");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificates_are_served_without_a_failed_request() {
    let (a, b, c) = (bundle(), bundle(), bundle());
    let mut s = TestServer::start_with(a.clone(), |st, _| {
        st.cert_check_interval = Duration::from_millis(50);
    })
    .await;
    s.ca_pems = vec![a.ca_pem.clone(), b.ca_pem.clone(), c.ca_pem.clone()];
    let cas = s.ca_pems.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed, load) = background_load(&s, stop.clone());

    let first = post(&s.client(), &s.url("/validate"), fixture(8))
        .await
        .unwrap();
    assert_eq!(served_cert(&first), der(&a.cert_pem));

    // Renewal written in place (each file renamed into place, as `hookguard certs` does).
    certs::write(s.dir.path(), &b).unwrap();
    wait_for_cert(&s, &cas, &der(&b.cert_pem)).await;

    // Mismatched pair: the new certificate without its key keeps b.
    std::fs::write(s.dir.path().join(certs::CERT_FILE), &c.cert_pem).unwrap();
    assert_still_served(&s, &cas, &der(&b.cert_pem)).await;
    // Half-written certificate (with the right key already there): still b.
    std::fs::write(s.dir.path().join(certs::KEY_FILE), &c.key_pem).unwrap();
    std::fs::write(
        s.dir.path().join(certs::CERT_FILE),
        &c.cert_pem[..c.cert_pem.len() / 2],
    )
    .unwrap();
    assert_still_served(&s, &cas, &der(&b.cert_pem)).await;
    // Completed: c.
    std::fs::write(s.dir.path().join(certs::CERT_FILE), &c.cert_pem).unwrap();
    wait_for_cert(&s, &cas, &der(&c.cert_pem)).await;

    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during rotation"
    );
    assert!(
        ok.load(Ordering::SeqCst) > 20,
        "too little load to mean anything"
    );
    let m = s.metrics().await;
    assert!(
        m.contains(r#"hookguard_tls_certificate_reloads_total{result="success"} 3"#),
        "{m}"
    );
    assert!(
        m.contains(r#"hookguard_tls_certificate_reloads_total{result="error"}"#),
        "{m}"
    );
    s.stop().await;
}

/// The layout the kubelet gives a Secret volume: files are symlinks through `..data`, which
/// is swapped atomically to a new timestamped directory on update.
fn secret_volume_write(dir: &Path, generation: &str, b: &CertBundle) {
    let target = dir.join(format!("..{generation}"));
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join(certs::CERT_FILE), &b.cert_pem).unwrap();
    std::fs::write(target.join(certs::KEY_FILE), &b.key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in [certs::CERT_FILE, certs::KEY_FILE] {
        let link = dir.join(f);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), &link).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_volume_symlink_swap_is_picked_up() {
    let (a, b) = (bundle(), bundle());
    let volume = tempfile::tempdir().unwrap();
    secret_volume_write(volume.path(), "2026_01_01_00_00_00.1", &a);
    let vol = volume.path().to_path_buf();
    let mut s = TestServer::start_with(a.clone(), move |st, _| {
        st.tls_cert = vol.join(certs::CERT_FILE);
        st.tls_key = vol.join(certs::KEY_FILE);
        st.cert_check_interval = Duration::from_millis(50);
    })
    .await;
    s.ca_pems = vec![a.ca_pem.clone(), b.ca_pem.clone()];
    let cas = s.ca_pems.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (_, failed, load) = background_load(&s, stop.clone());
    let first = post(&s.client(), &s.url("/validate"), fixture(8))
        .await
        .unwrap();
    assert_eq!(served_cert(&first), der(&a.cert_pem));

    secret_volume_write(volume.path(), "2026_02_01_00_00_00.2", &b);
    std::fs::remove_dir_all(volume.path().join("..2026_01_01_00_00_00.1")).unwrap();
    wait_for_cert(&s, &cas, &der(&b.cert_pem)).await;

    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    s.stop().await;
}

/// A client CA and a client certificate (clientAuth) it signed: (ca_pem, cert_pem, key_pem).
fn client_identity(cn: &str) -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "test client CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_when_a_client_ca_is_given() {
    let (ca, cert, key) = client_identity("kube-apiserver");
    let (_, other_cert, other_key) = client_identity("intruder");
    let s = TestServer::start(move |st, dir| {
        let path = dir.join("client-ca.crt");
        std::fs::write(&path, &ca).unwrap();
        st.client_ca = Some(path);
    })
    .await;
    let identity =
        |c: &str, k: &str| reqwest::Identity::from_pem(format!("{c}{k}").as_bytes()).unwrap();

    let good = client_trusting(&s.ca_pems, Some(identity(&cert, &key)));
    let v = review(&good, &s.url("/validate"), &fixture(2)).await;
    assert_eq!(v["allowed"], true);

    let anonymous = s.client();
    assert!(
        post(&anonymous, &s.url("/validate"), fixture(2))
            .await
            .is_err(),
        "no client certificate was accepted"
    );
    let stranger = client_trusting(&s.ca_pems, Some(identity(&other_cert, &other_key)));
    assert!(
        post(&stranger, &s.url("/validate"), fixture(2))
            .await
            .is_err(),
        "a certificate from another CA was accepted"
    );

    // Still serving the good client afterwards.
    review(&good, &s.url("/validate"), &fixture(2)).await;
    s.stop().await;
}

/// A minimal ClientHello offering only `version` (no supported_versions extension), with
/// signature_algorithms so that the server gets as far as choosing a version.
fn legacy_client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    let suites: [u8; 8] = [0xc0, 0x13, 0xc0, 0x14, 0x00, 0x2f, 0x00, 0x35];
    body.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    body.extend_from_slice(&suites);
    body.extend_from_slice(&[1, 0]); // compression: null
                                     // extensions: signature_algorithms(13) = ecdsa_secp256r1_sha256, rsa_pkcs1_sha256
    body.extend_from_slice(&[0, 10, 0, 13, 0, 6, 0, 4, 4, 3, 4, 1]);
    let mut hs = vec![1u8]; // client_hello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_1_2_and_1_3_are_spoken() {
    let s = TestServer::start(|_, _| {}).await;
    for (name, version) in [("TLS 1.0", [3, 1]), ("TLS 1.1", [3, 2])] {
        let mut tcp = TcpStream::connect(s.addr).await.unwrap();
        tcp.write_all(&legacy_client_hello(version)).await.unwrap();
        let mut reply = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut reply))
            .await
            .expect("an answer")
            .expect("an alert");
        // Alert record, fatal (2), protocol_version (70).
        assert_eq!(reply[0], 0x15, "{name}: not an alert: {reply:?}");
        assert_eq!(&reply[5..], &[2, 70], "{name}: {reply:?}");
    }
    // And both supported versions complete a handshake.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(s.ca_pems[0].as_bytes()).unwrap())
        .unwrap();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        let tcp = TcpStream::connect(s.addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.protocol_version(), Some(version.version));
    }
    s.stop().await;
}

/// The built binary's `hookguard [GLOBAL…] serve` on 127.0.0.1 with the certificates in `dir`;
/// the caller adds its own flags and spawns it.
fn serve_command(
    global: &[&str],
    dir: &Path,
    port: u16,
    admin_port: u16,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookguard"));
    cmd.args(global)
        .arg("serve")
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-addr")
        .arg(format!("127.0.0.1:{admin_port}"))
        .arg("--tls-cert")
        .arg(dir.join(certs::CERT_FILE))
        .arg("--tls-key")
        .arg(dir.join(certs::KEY_FILE));
    cmd
}

/// The real binary and a real SIGTERM: readiness goes false, requests in flight finish, idle
/// keep-alive connections (HTTP/1.1 and HTTP/2) are closed, and the process exits well within
/// its shutdown timeout (it would wait the whole timeout if an idle connection stayed open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_requests_in_flight_and_closes_idle_connections() {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle();
    certs::write(dir.path(), &b).unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let mut child = serve_command(&["--log-format", "json"], dir.path(), port, admin_port)
        .args(["--shutdown-delay", "500ms", "--shutdown-timeout", "15s"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(admin_get(admin, "/readyz").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "binary never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Idle keep-alive connections: one HTTP/1.1, one HTTP/2 (reqwest's pool).
    let body = fixture(2);
    let mut idle_h1 = raw_tls(addr, &b.ca_pem).await;
    idle_h1
        .write_all(request_head("/validate", body.len()).as_bytes())
        .await
        .unwrap();
    idle_h1.write_all(&body).await.unwrap();
    assert_eq!(read_response(&mut idle_h1).await.0, 200);
    let h2 = client_trusting(std::slice::from_ref(&b.ca_pem), None);
    let r = post(
        &h2,
        &format!("https://127.0.0.1:{port}/mutate"),
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);

    // Requests in flight: headers and half of the body sent.
    let mut in_flight = Vec::new();
    for _ in 0..10 {
        let mut c = raw_tls(addr, &b.ca_pem).await;
        c.write_all(request_head("/mutate", body.len()).as_bytes())
            .await
            .unwrap();
        c.write_all(&body[..body.len() / 2]).await.unwrap();
        c.flush().await.unwrap();
        in_flight.push(c);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    let pid = child.id().expect("pid").to_string();
    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());

    // Readiness goes false at once, while the delay keeps serving.
    let deadline = Instant::now() + Duration::from_millis(400);
    loop {
        if let Ok((503, text)) = admin_get(admin, "/readyz").await {
            assert!(text.contains("[-]shutdown"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "readiness did not go false");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Past the delay the listener is closed; the requests in flight still finish.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after the shutdown delay"
    );
    for c in &mut in_flight {
        c.write_all(&body[body.len() / 2..]).await.unwrap();
    }
    for c in &mut in_flight {
        let (status, answer) = read_response(c).await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(v["response"]["allowed"], true);
    }
    assert!(
        closed_within(&mut idle_h1, Duration::from_secs(2)).await,
        "idle HTTP/1.1 connection left open"
    );

    let exit = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits long before the 15 s shutdown timeout: idle connections were closed")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(signalled.elapsed() < Duration::from_secs(6));
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    assert!(
        logs.contains("\"message\":\"all connections closed\""),
        "{logs}"
    );
    // Every decision is logged with its fields (JSON format).
    let decision = logs
        .lines()
        .find(|l| l.contains("\"admission decision\""))
        .expect("a decision log line");
    let v: Value = serde_json::from_str(decision).unwrap();
    for field in [
        "uid",
        "kind",
        "namespace",
        "name",
        "operation",
        "user",
        "decision",
        "rules",
        "dry_run",
        "latency_us",
    ] {
        assert!(v.get(field).is_some(), "{field} missing in {decision}");
    }
    assert_eq!(v["uid"], "9674415a-c099-41d3-b2d4-51bc1758b54a");
    assert_eq!(v["namespace"], "hooks-lab");
    drop(h2);
}

/// From the shutdown signal on, HTTP/1.1 answers carry `Connection: close` and the server
/// closes the connection right after them (well before the shutdown delay ends), so a client
/// never sends on a keep-alive connection the drain is about to close (the apiserver reports
/// a request caught that way as `EOF`, a failed admission; tests/faults/webhook.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_after_the_shutdown_signal_close_their_http1_connection() {
    let mut s = TestServer::start(|st, _| st.shutdown_delay = Duration::from_secs(3)).await;
    let body = fixture(2);
    let mut c = raw_tls(s.addr, &s.ca_pems[0]).await;
    c.write_all(request_head("/validate", body.len()).as_bytes())
        .await
        .unwrap();
    c.write_all(&body).await.unwrap();
    assert_eq!(read_response(&mut c).await.0, 200);

    let _ = s.stop.take().expect("running").send(());
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(admin_get(s.admin, "/readyz").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "readiness never went false");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    c.write_all(request_head("/validate", body.len()).as_bytes())
        .await
        .unwrap();
    c.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), c.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("the connection stayed open after its answer"),
        }
    }
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "closed by the drain, not the answer"
    );
    s.stop().await;
}

/// A check of the /readyz and /metrics texts.
type ReadyAndMetrics = dyn Fn(&str, &str) -> bool + Send;

/// The real binary with a policy file: /readyz and /metrics follow the active policy, a
/// good reload and a bad one (which keeps the previous policy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_reloads_show_in_readyz_and_metrics() {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle();
    certs::write(dir.path(), &b).unwrap();
    let policy = dir.path().join("policy.yaml");
    let first = "mode: warn\n";
    std::fs::write(&policy, first).unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let _child = serve_command(&[], dir.path(), port, admin_port)
        .arg("--policy")
        .arg(&policy)
        .args(["--policy-poll-interval", "100ms"])
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let sha = |text: &str| -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    };
    // Waits until /readyz and /metrics both show what `want` asks for.
    let wait_for = |what: &'static str, want: Box<ReadyAndMetrics>| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = admin_get(admin, "/readyz").await;
            let metrics = admin_get(admin, "/metrics").await;
            if let (Ok((_, ready)), Ok((200, metrics))) = (&ready, &metrics) {
                if want(ready, metrics) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "never saw {what}: {ready:?} {metrics:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    let hash1 = sha(first);
    let h = hash1.clone();
    wait_for(
        "the first policy",
        Box::new(move |ready, metrics| {
            ready.contains(&format!("sha256:{h}"))
                && metrics.contains(&format!("hookguard_policy_active{{hash=\"{h}\"}} 1"))
                && metrics.contains("hookguard_policy_reloads_total{result=\"success\"} 1")
        }),
    )
    .await;

    let second = "mode: audit\n";
    std::fs::write(&policy, second).unwrap();
    let hash2 = sha(second);
    let (h1, h2) = (hash1.clone(), hash2.clone());
    wait_for(
        "the reloaded policy",
        Box::new(move |ready, metrics| {
            ready.contains(&format!("sha256:{h2}"))
                && metrics.contains(&format!("hookguard_policy_active{{hash=\"{h2}\"}} 1"))
                && !metrics.contains(&h1)
                && metrics.contains("hookguard_policy_reloads_total{result=\"success\"} 2")
        }),
    )
    .await;

    std::fs::write(&policy, "mode: [not, a, mode]\n").unwrap();
    let h2 = hash2.clone();
    wait_for(
        "the failed reload",
        Box::new(move |ready, metrics| {
            ready.contains(&format!("sha256:{h2}"))
                && ready.contains("last reload failed, previous policy kept")
                && metrics.contains(&format!("hookguard_policy_active{{hash=\"{h2}\"}} 1"))
                && metrics.contains("hookguard_policy_reloads_total{result=\"error\"} 1")
        }),
    )
    .await;
}
