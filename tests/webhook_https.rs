//! The real server over real TLS on 127.0.0.1: captured AdmissionReviews from kube-apiserver
//! 1.20.2 (tests/fixtures) and hostile requests, through a client that trusts only the test CA.

use base64::Engine;
use hookguard::admission::AdmissionConfig;
use hookguard::policy::ActivePolicy;
use hookguard::server::{self, AppState};
use serde_json::{json, Value};
use std::time::Duration;

struct Webhook {
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    async fn start(max_body: usize) -> Webhook {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let bundle =
            hookguard::certs::generate(&["127.0.0.1".into(), "localhost".into()], 1).unwrap();
        hookguard::certs::write(dir.path(), &bundle).unwrap();
        let tls = server::tls::load_server_config(
            &dir.path().join("tls.crt"),
            &dir.path().join("tls.key"),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(std::sync::Arc::new(AdmissionConfig::store(
            ActivePolicy::defaults(),
        )));
        let app = server::router(state, max_body);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server::serve(
                listener,
                tls,
                app,
                server::ConnectionLimits::default(),
                server::Draining::default(),
                async {
                    let _ = stopped.await;
                },
                Duration::from_secs(5),
            )
            .await;
        });
        let ca = reqwest::Certificate::from_pem(bundle.ca_pem.as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Webhook {
            base: format!("https://127.0.0.1:{}", addr.port()),
            client,
            stop: Some(stop),
            task,
        }
    }

    async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// POSTs a review and returns the AdmissionResponse, asserting HTTP 200 JSON.
    async fn review(&self, path: &str, body: &[u8]) -> Value {
        let resp = self.post(path, "application/json", body.to_vec()).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let v: Value = resp.json().await.unwrap();
        v["response"].clone()
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn fixture(n: u32) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/admission/kube-apiserver-1.20.2/{n}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn request_object(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body).unwrap()["request"]["object"].clone()
}

fn apply(body: &[u8], response: &Value) -> Value {
    let mut object = request_object(body);
    if let Some(p) = response["patch"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut object, &patch).expect("the returned patch applies");
    }
    object
}

/// Only the metadata a patch may change: annotations, labels, finalizers.
fn without_mutable_metadata(mut v: Value) -> Value {
    let meta = v["metadata"].as_object_mut().unwrap();
    meta.remove("annotations");
    meta.remove("labels");
    meta.remove("finalizers");
    v
}

#[tokio::test]
async fn captured_reviews_are_answered_as_the_spec_says() {
    let hook = Webhook::start(server::DEFAULT_MAX_BODY_BYTES).await;

    // 2: Argo PreSync Job with HookSucceeded.
    let body = fixture(2);
    let v = hook.review("/validate", &body).await;
    assert_eq!(
        v["uid"],
        serde_json::from_slice::<Value>(&body).unwrap()["request"]["uid"]
    );
    assert_eq!(v["allowed"], true);
    let m = hook.review("/mutate", &body).await;
    let patched = apply(&body, &m);
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"hookguard.io/managed": "true"})
    );
    assert_eq!(
        patched["metadata"]["finalizers"],
        json!(["hookguard.io/cleanup"])
    );
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({"argocd.argoproj.io/hook": "PreSync", "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"})
    );
    assert_eq!(
        without_mutable_metadata(patched),
        without_mutable_metadata(request_object(&body))
    );

    // 4: Helm pre-install Job: translated to explicit Argo annotations.
    let body = fixture(4);
    let m = hook.review("/mutate", &body).await;
    let patched = apply(&body, &m);
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({
            "helm.sh/hook": "pre-install,pre-upgrade",
            "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
            "helm.sh/hook-weight": "-5",
            "argocd.argoproj.io/hook": "PreSync",
            "argocd.argoproj.io/sync-wave": "-5",
            "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation,HookSucceeded",
            "hookguard.io/derived": "hook=PreSync from helm.sh/hook; sync-wave=-5 from helm.sh/hook-weight; hook-delete-policy=BeforeHookCreation,HookSucceeded from helm.sh/hook-delete-policy"
        })
    );
    // Idempotent: the patched object, sent again, gets no patch.
    let mut again: Value = serde_json::from_slice(&body).unwrap();
    again["request"]["object"] = patched;
    let m2 = hook
        .review("/mutate", &serde_json::to_vec(&again).unwrap())
        .await;
    assert!(m2.get("patch").is_none(), "{m2}");

    // 6: Helm test Pod: allowed with a warning, not mutated.
    let body = fixture(6);
    let v = hook.review("/validate", &body).await;
    assert_eq!(v["allowed"], true);
    let warning = v["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("helm-hook-ignored-by-argo") && warning.contains("test"),
        "{warning}"
    );
    assert!(hook.review("/mutate", &body).await.get("patch").is_none());

    // 8: plain Pod: allowed untouched.
    let body = fixture(8);
    let v = hook.review("/validate", &body).await;
    assert_eq!(v["allowed"], true);
    assert!(v.get("warnings").is_none());
    assert!(hook.review("/mutate", &body).await.get("patch").is_none());

    // 10: dry-run create: same mutation as a real one.
    let body = fixture(10);
    let m = hook.review("/mutate", &body).await;
    let patched = apply(&body, &m);
    assert_eq!(
        patched["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"],
        "BeforeHookCreation"
    );

    hook.stop().await;
}

#[tokio::test]
async fn a_typo_is_denied_with_a_sentence_naming_rule_value_and_fix() {
    let hook = Webhook::start(server::DEFAULT_MAX_BODY_BYTES).await;
    let mut review: Value = serde_json::from_slice(&fixture(2)).unwrap();
    review["request"]["object"]["metadata"]["annotations"]["argocd.argoproj.io/hook"] =
        json!("presync");
    let v = hook
        .review("/validate", &serde_json::to_vec(&review).unwrap())
        .await;
    assert_eq!(v["allowed"], false);
    assert_eq!(v["status"]["code"], 403);
    let msg = v["status"]["message"].as_str().unwrap();
    assert!(msg.contains("[unknown-hook-type]"), "{msg}");
    assert!(msg.contains("argocd.argoproj.io/hook"), "{msg}");
    assert!(msg.contains("`presync`"), "{msg}");
    assert!(msg.contains("did you mean `PreSync`?"), "{msg}");
    hook.stop().await;
}

#[tokio::test]
async fn bad_requests_get_precise_answers_never_500() {
    let hook = Webhook::start(64 * 1024).await;
    // Unreadable reviews: HTTP 200 with an invalid response.
    for body in [
        &b"not json"[..],
        b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"x\"",
        b"{}",
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","object":null}}"#,
    ] {
        let v = hook.review("/validate", body).await;
        assert_eq!(v["allowed"], false);
        assert_eq!(v["status"]["code"], 400);
    }
    // Over the body limit: 413.
    let big = vec![b' '; 65 * 1024];
    assert_eq!(
        hook.post("/validate", "application/json", big)
            .await
            .status(),
        413
    );
    // Wrong content type: 415.
    assert_eq!(
        hook.post("/mutate", "text/plain", fixture(2))
            .await
            .status(),
        415
    );
    assert_eq!(
        hook.post("/mutate", "application/json; charset=utf-8", fixture(2))
            .await
            .status(),
        200
    );
    // Wrong method: 405; unknown path: 404.
    let get = hook
        .client
        .get(format!("{}/validate", hook.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(
        hook.post("/nope", "application/json", fixture(2))
            .await
            .status(),
        404
    );
    // Still serving afterwards.
    assert_eq!(hook.review("/validate", &fixture(2)).await["allowed"], true);
    hook.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let hook = Webhook::start(server::DEFAULT_MAX_BODY_BYTES).await;
    let other = hookguard::certs::generate(&["127.0.0.1".into()], 1).unwrap();
    let stranger = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(other.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let err = stranger
        .post(format!("{}/validate", hook.base))
        .body(fixture(2))
        .send()
        .await;
    assert!(
        err.is_err(),
        "a certificate from another CA must not verify"
    );
    hook.stop().await;
}
