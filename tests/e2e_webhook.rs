//! End-to-end: hookguard's webhooks registered with a real kube-apiserver.
//!
//! Every test starts its own `hookguard serve` (a child process, certificates from
//! `hookguard certs`, a free port on 127.0.0.1), registers a Validating- and a
//! MutatingWebhookConfiguration by URL with that CA, and uses a fresh namespace. The
//! configurations select only that namespace (by a label carrying the namespace's own name), so
//! tests running in parallel, and other e2e targets, never see each other's webhooks. The
//! configurations are deleted when the test ends, also when it fails.
//!
//! Run with `make e2e` (E2E_TESTS='--test e2e_webhook').
mod support;

use hookguard::hooks::keys;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::{eventually_some as eventually, Cluster, Process, TestNamespace};

/// The namespace label the webhook configurations of one test select on (value: the
/// namespace's name, unique per test).
const SELECT_LABEL: &str = "hookguard.io/e2e-webhook";
const VALIDATING_WEBHOOK: &str = "validate.e2e.hookguard.io";
const MUTATING_WEBHOOK: &str = "mutate.e2e.hookguard.io";
/// How long the apiserver may take to start calling a freshly registered webhook.
const ACTIVATION_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// harness

/// One test's webhook: `hookguard serve`, its two webhook configurations and its namespace.
struct Env {
    cluster: Cluster,
    ns: TestNamespace,
    configs: Option<String>,
    // Dropped after `ns` (fields drop in declaration order): the server keeps answering while
    // the namespace is being deleted.
    _server: Process,
    _certs: tempfile::TempDir,
}

impl Env {
    /// A webhook that is active for the test's namespace.
    async fn start(prefix: &str, serve_flags: &[&str]) -> Env {
        let env = Env::start_inactive(prefix, serve_flags).await;
        env.activate().await;
        env
    }

    /// A webhook that is registered but does not select the namespace until `activate`.
    async fn start_inactive(prefix: &str, serve_flags: &[&str]) -> Env {
        let cluster = support::cluster().await;
        let ns = TestNamespace::new(&cluster.client, prefix).await;
        let certs = tempfile::tempdir().expect("temporary directory for certificates");
        make_certs(certs.path());
        let port = support::free_port();
        let addr = format!("127.0.0.1:{port}");
        // Each test's server has its own admin port too (the default 0.0.0.0:8080 is shared).
        let admin_addr = format!("127.0.0.1:{}", support::free_port());
        let cert = certs.path().join("tls.crt");
        let key = certs.path().join("tls.key");
        let mut args = vec![
            "serve",
            "--addr",
            &addr,
            "--tls-cert",
            cert.to_str().expect("utf-8 path"),
            "--tls-key",
            key.to_str().expect("utf-8 path"),
            "--admin-addr",
            &admin_addr,
            "--shutdown-timeout",
            "1s",
            "--shutdown-delay",
            "0s",
        ];
        args.extend_from_slice(serve_flags);
        let server = Process::start(&args, &[("HOOKGUARD_LOG_LEVEL", "warn")]);
        let mut env = Env {
            cluster,
            ns,
            configs: None,
            _server: server,
            _certs: certs,
        };
        eventually(
            Duration::from_secs(15),
            "hookguard serve to listen",
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        let ca = std::fs::read(env._certs.path().join("ca.crt")).expect("ca.crt");
        let name = format!("hookguard-e2e-{}", env.ns.name);
        env.configs = Some(name.clone());
        register(&env.cluster.client, &name, &env.ns.name, port, &ca).await;
        env
    }

    fn client(&self) -> Client {
        self.cluster.client.clone()
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client(), &self.ns.name)
    }

    /// Labels the namespace so the configurations select it, then waits until the apiserver
    /// calls both webhooks for it.
    async fn activate(&self) {
        let patch = json!({"metadata": {"labels": {SELECT_LABEL: self.ns.name}}});
        Api::<Namespace>::all(self.client())
            .patch(
                &self.ns.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .expect("label the test namespace");
        let jobs = self.jobs();
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        eventually(
            ACTIVATION_TIMEOUT,
            "both webhooks to be called for the test namespace",
            || async {
                let valid = job("probe", json!({keys::ARGO_HOOK: "PreSync"}));
                let mutated = match jobs.create(&dry_run, &valid).await {
                    Ok(job) => job.labels().contains_key(keys::MANAGED_LABEL),
                    Err(_) => false,
                };
                let typo = job(
                    "probe",
                    json!({keys::ARGO_HOOK: "PreSync", keys::ARGO_DELETE_POLICY: "HookSuceeded"}),
                );
                let validated = matches!(
                    jobs.create(&dry_run, &typo).await,
                    Err(kube::Error::Api(s)) if s.message.contains(VALIDATING_WEBHOOK)
                );
                (mutated && validated).then_some(())
            },
        )
        .await;
    }
}

impl Drop for Env {
    /// Removes the finalizers from what the test left behind (so the namespace can go away even
    /// after a failed test), then deletes the webhook configurations.
    fn drop(&mut self) {
        let Some(configs) = self.configs.take() else {
            return;
        };
        let ns = self.ns.name.clone();
        // Bounded: a cleanup that hangs must not hang the test run.
        support::with_fresh_client(move |client| async move {
            let cleanup = async move {
                release_all(&Api::<Job>::namespaced(client.clone(), &ns)).await;
                release_all(&Api::<Pod>::namespaced(client.clone(), &ns)).await;
                let workflows = workflow_resource();
                release_all(&Api::<DynamicObject>::namespaced_with(
                    client.clone(),
                    &ns,
                    &workflows,
                ))
                .await;
                let dp = DeleteParams::default();
                let _ = Api::<ValidatingWebhookConfiguration>::all(client.clone())
                    .delete(&configs, &dp)
                    .await;
                let _ = Api::<MutatingWebhookConfiguration>::all(client)
                    .delete(&configs, &dp)
                    .await;
            };
            let _ = tokio::time::timeout(Duration::from_secs(20), cleanup).await;
        });
    }
}

/// `hookguard certs` for 127.0.0.1 into `dir` (ca.crt, tls.crt, tls.key).
fn make_certs(dir: &Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookguard"))
        .args(["certs", "--out"])
        .arg(dir)
        .args(["--host", "127.0.0.1", "--days", "1"])
        .output()
        .expect("run hookguard certs");
    assert!(
        out.status.success(),
        "hookguard certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Registers both webhooks by URL, selecting only namespaces labelled for this test.
async fn register(client: &Client, name: &str, ns: &str, port: u16, ca_pem: &[u8]) {
    use base64::Engine;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let webhook = |webhook_name: &str, path: &str| {
        json!({
            "name": webhook_name,
            "clientConfig": {"url": format!("https://127.0.0.1:{port}{path}"), "caBundle": ca_bundle},
            "rules": [
                {"apiGroups": ["batch"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["jobs"], "scope": "Namespaced"},
                {"apiGroups": [""], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["pods"], "scope": "Namespaced"},
                {"apiGroups": ["argoproj.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["workflows"], "scope": "Namespaced"},
            ],
            "namespaceSelector": {"matchLabels": {"hookguard.io/e2e": "true", SELECT_LABEL: ns}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
        })
    };
    let meta = json!({"name": name, "labels": {"hookguard.io/e2e": "true"}});
    let validating: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": meta,
        "webhooks": [webhook(VALIDATING_WEBHOOK, "/validate")],
    }))
    .expect("ValidatingWebhookConfiguration");
    let mutating: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": meta,
        "webhooks": [webhook(MUTATING_WEBHOOK, "/mutate")],
    }))
    .expect("MutatingWebhookConfiguration");
    let pp = PostParams::default();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&pp, &validating)
        .await
        .unwrap_or_else(|e| panic!("cannot create ValidatingWebhookConfiguration {name}: {e}"));
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&pp, &mutating)
        .await
        .unwrap_or_else(|e| panic!("cannot create MutatingWebhookConfiguration {name}: {e}"));
}

/// A Job that never gets to run anywhere (there are no nodes), with these annotations.
fn job(name: &str, annotations: Value) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
            }},
        },
    }))
    .expect("Job")
}

fn workflow_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"),
        "workflows",
    )
}

/// Installs a minimal `workflows.argoproj.io` CRD (schema-less, like Argo's own "minimal"
/// CRDs) unless one exists, and waits until the apiserver serves it. Shared by all tests and
/// e2e targets on the control plane, so it is never deleted.
async fn ensure_workflow_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "workflows.argoproj.io"},
        "spec": {
            "group": "argoproj.io",
            "names": {"kind": "Workflow", "listKind": "WorkflowList", "plural": "workflows",
                      "singular": "workflow", "shortNames": ["wf"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                }},
            }],
        },
    }))
    .expect("CustomResourceDefinition");
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("cannot create the Workflow CRD: {e}"),
    }
    let workflows: Api<DynamicObject> = Api::all_with(client.clone(), &workflow_resource());
    eventually(
        Duration::from_secs(30),
        "the Workflow CRD to be served",
        || async {
            let established = crds
                .get("workflows.argoproj.io")
                .await
                .ok()
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            (established && workflows.list(&ListParams::default()).await.is_ok()).then_some(())
        },
    )
    .await;
}

/// Best effort: removes every finalizer (hookguard's, and Argo's that some tests add) from the
/// objects `api` lists. Only used on a test's own namespace, where the test made everything.
async fn release_all<K>(api: &Api<K>)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + ResourceExt,
{
    let Ok(list) = api.list(&ListParams::default()).await else {
        return;
    };
    let patch = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    for object in list.iter().filter(|o| !o.finalizers().is_empty()) {
        let _ = api
            .patch(&object.name_any(), &PatchParams::default(), &patch)
            .await;
    }
}

/// Removes hookguard's finalizer with a JSON Patch guarded by `test` (as the sidecar does).
async fn release_finalizer<K>(api: &Api<K>, name: &str, finalizers: &[String]) -> kube::Result<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let index = finalizers
        .iter()
        .position(|f| f == keys::CLEANUP_FINALIZER)
        .unwrap_or_else(|| panic!("{name} does not carry {}", keys::CLEANUP_FINALIZER));
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": keys::CLEANUP_FINALIZER},
        {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
    ]))
    .expect("JSON Patch");
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
}

fn annotations_of(meta: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn api_error(result: kube::Result<impl std::fmt::Debug>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected the apiserver to refuse, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_hook_job_is_stored_explicit_managed_and_finalized() {
    let env = Env::start("hg-argo", &[]).await;
    let jobs = env.jobs();
    let mut hook = job("db-migrate", json!({keys::ARGO_HOOK: "PreSync"}));
    // Argo CD (v3+) puts its own finalizer on sync hooks: hookguard must leave it alone.
    hook.metadata.finalizers = Some(vec![keys::ARGO_HOOK_FINALIZER.to_owned()]);
    jobs.create(&PostParams::default(), &hook)
        .await
        .expect("create the hook Job");

    let stored = jobs.get("db-migrate").await.expect("the stored Job");
    assert_eq!(
        annotations_of(stored.annotations()),
        vec![
            (keys::ARGO_HOOK, "PreSync"),
            (keys::ARGO_DELETE_POLICY, "BeforeHookCreation"),
            (
                keys::HOOKGUARD_DERIVED,
                "hook-delete-policy=BeforeHookCreation (Argo CD default)"
            ),
        ]
    );
    assert_eq!(
        stored.labels().get(keys::MANAGED_LABEL).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        stored.finalizers(),
        [keys::ARGO_HOOK_FINALIZER, keys::CLEANUP_FINALIZER]
    );

    // Releasing hookguard's finalizer is a finalizer-only UPDATE: allowed, Argo's stays.
    let released = release_finalizer(&jobs, "db-migrate", stored.finalizers())
        .await
        .expect("remove hookguard's finalizer");
    assert_eq!(released.finalizers(), [keys::ARGO_HOOK_FINALIZER]);
    jobs.patch(
        "db-migrate",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove Argo's finalizer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_hook_job_is_stored_translated() {
    let env = Env::start("hg-helm", &["--no-finalizer"]).await;
    let jobs = env.jobs();
    let hook = job(
        "seed",
        json!({
            keys::HELM_HOOK: "pre-install,pre-upgrade",
            keys::HELM_WEIGHT: "-5",
            keys::HELM_DELETE_POLICY: "before-hook-creation,hook-succeeded",
        }),
    );
    jobs.create(&PostParams::default(), &hook)
        .await
        .expect("create the Helm hook Job");

    let stored = jobs.get("seed").await.expect("the stored Job");
    assert_eq!(
        annotations_of(stored.annotations()),
        vec![
            (keys::ARGO_HOOK, "PreSync"),
            (keys::ARGO_DELETE_POLICY, "BeforeHookCreation,HookSucceeded"),
            (keys::ARGO_SYNC_WAVE, "-5"),
            (keys::HELM_HOOK, "pre-install,pre-upgrade"),
            (keys::HELM_DELETE_POLICY, "before-hook-creation,hook-succeeded"),
            (keys::HELM_WEIGHT, "-5"),
            (
                keys::HOOKGUARD_DERIVED,
                "hook=PreSync from helm.sh/hook; sync-wave=-5 from helm.sh/hook-weight; \
                 hook-delete-policy=BeforeHookCreation,HookSucceeded from helm.sh/hook-delete-policy"
            ),
        ]
    );
    assert_eq!(
        stored.labels().get(keys::MANAGED_LABEL).map(String::as_str),
        Some("true")
    );
    // --no-finalizer: marked as managed, but nothing holds its deletion.
    assert!(stored.finalizers().is_empty(), "{:?}", stored.finalizers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typo_in_delete_policy_is_rejected_with_rule_and_fix() {
    let env = Env::start("hg-typo", &["--no-finalizer"]).await;
    let jobs = env.jobs();
    let hook = job(
        "cleanup",
        json!({keys::ARGO_HOOK: "PostSync", keys::ARGO_DELETE_POLICY: "HookSuceeded"}),
    );
    let status = api_error(jobs.create(&PostParams::default(), &hook).await);
    assert_eq!(status.code, 403, "{status:?}");
    assert_eq!(status.reason, "Forbidden", "{status:?}");
    let message = &status.message;
    assert!(
        message.contains(&format!(
            "admission webhook \"{VALIDATING_WEBHOOK}\" denied the request"
        )),
        "{message}"
    );
    assert!(message.contains("[unknown-delete-policy]"), "{message}");
    assert!(
        message.contains("did you mean `HookSucceeded`?"),
        "{message}"
    );
    assert!(
        jobs.get_opt("cleanup").await.expect("get").is_none(),
        "a denied Job must not be stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_rule_warning_reaches_the_client() {
    let env = Env::start("hg-warn", &["--no-finalizer"]).await;
    // Both hook annotations, with different types: Argo's wins, Helm's is ignored (warn).
    let hook = job(
        "smoke",
        json!({keys::ARGO_HOOK: "PreSync", keys::HELM_HOOK: "post-install"}),
    );
    // kube's typed API drops response headers: send the request raw and read `Warning`.
    let request = kube::core::Request::new(Job::url_path(&(), Some(&env.ns.name)))
        .create(
            &PostParams::default(),
            serde_json::to_vec(&hook).expect("json"),
        )
        .expect("request");
    let response = env
        .client()
        .send(request.map(kube::client::Body::from))
        .await
        .expect("send the create request");
    let status = response.status();
    let warnings: Vec<String> = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 20)
        .await
        .expect("response body");
    assert_eq!(
        status.as_u16(),
        201,
        "a warning must not block the create: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("299 - \"[argo-overrides-helm] ")
                && w.contains("takes precedence")),
        "no argo-overrides-helm warning in {warnings:?}"
    );
    let stored = env.jobs().get("smoke").await.expect("the stored Job");
    assert_eq!(
        stored
            .annotations()
            .get(keys::ARGO_HOOK)
            .map(String::as_str),
        Some("PreSync")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_custom_resource_is_handled() {
    let env = Env::start("hg-wf", &[]).await;
    ensure_workflow_crd(&env.client()).await;
    let workflows: Api<DynamicObject> =
        Api::namespaced_with(env.client(), &env.ns.name, &workflow_resource());
    let spec = json!({
        "entrypoint": "main",
        "templates": [{"name": "main", "container": {"image": "busybox:1.36", "command": ["true"]}}],
    });
    let wf = |annotations: Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": "smoke-test-", "annotations": annotations},
            "spec": spec,
        }))
        .expect("Workflow")
    };

    let created = workflows
        .create(
            &PostParams::default(),
            &wf(json!({keys::ARGO_HOOK: "PostSync", keys::ARGO_DELETE_POLICY: "HookSucceeded"})),
        )
        .await
        .expect("create the hook Workflow");
    let name = created.name_any();
    assert!(
        name.starts_with("smoke-test-") && name.len() > "smoke-test-".len(),
        "{name}"
    );
    let stored = workflows.get(&name).await.expect("the stored Workflow");
    assert_eq!(
        annotations_of(stored.annotations()),
        vec![
            (keys::ARGO_HOOK, "PostSync"),
            (keys::ARGO_DELETE_POLICY, "HookSucceeded"),
        ],
        "explicit and valid: nothing to derive"
    );
    assert_eq!(
        stored.labels().get(keys::MANAGED_LABEL).map(String::as_str),
        Some("true")
    );
    assert_eq!(stored.finalizers(), [keys::CLEANUP_FINALIZER]);
    assert_eq!(stored.data["spec"], spec, "the spec is not touched");

    // The validating webhook sees Workflows too.
    let status = api_error(
        workflows
            .create(
                &PostParams::default(),
                &wf(json!({keys::ARGO_HOOK: "postsync"})),
            )
            .await,
    );
    assert!(status.message.contains("[unknown-hook-type]"), "{status:?}");
    assert!(
        status.message.contains("did you mean `PostSync`?"),
        "{status:?}"
    );

    release_finalizer(&workflows, &name, stored.finalizers())
        .await
        .expect("remove hookguard's finalizer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_dry_run_is_mutated_and_not_stored() {
    let env = Env::start("hg-dry", &[]).await;
    let jobs = env.jobs();
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answer = jobs
        .create(&dry_run, &job("preview", json!({keys::ARGO_HOOK: "Sync"})))
        .await
        .expect("dry-run create");
    assert_eq!(
        annotations_of(answer.annotations()),
        vec![
            (keys::ARGO_HOOK, "Sync"),
            (keys::ARGO_DELETE_POLICY, "BeforeHookCreation"),
            (
                keys::HOOKGUARD_DERIVED,
                "hook-delete-policy=BeforeHookCreation (Argo CD default)"
            ),
        ]
    );
    assert_eq!(
        answer.labels().get(keys::MANAGED_LABEL).map(String::as_str),
        Some("true")
    );
    assert_eq!(answer.finalizers(), [keys::CLEANUP_FINALIZER]);
    assert!(
        jobs.get_opt("preview").await.expect("get").is_none(),
        "a dry-run create must not be stored"
    );

    // Dry-run gets the same decision: a typo is refused without creating anything.
    let status = api_error(
        jobs.create(
            &dry_run,
            &job(
                "preview",
                json!({keys::ARGO_HOOK: "Sync", keys::ARGO_SYNC_WAVE: "1_0"}),
            ),
        )
        .await,
    );
    assert!(status.message.contains("[invalid-sync-wave]"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizer_only_update_goes_through_even_when_annotations_are_invalid() {
    // The hook is stored before the webhook selects its namespace (as with objects that exist
    // when hookguard is installed), so it keeps a delete-policy typo.
    let env = Env::start_inactive("hg-fin", &[]).await;
    let jobs = env.jobs();
    let mut broken = job(
        "legacy",
        json!({keys::ARGO_HOOK: "PreSync", keys::ARGO_DELETE_POLICY: "HookSuceeded"}),
    );
    broken.metadata.finalizers = Some(vec![keys::CLEANUP_FINALIZER.to_owned()]);
    let stored = jobs
        .create(&PostParams::default(), &broken)
        .await
        .expect("create before the webhook is active");
    assert!(
        !stored.labels().contains_key(keys::MANAGED_LABEL),
        "the webhook must not be active yet"
    );
    env.activate().await;

    // Any other update of this object is refused now…
    let status = api_error(
        jobs.patch(
            "legacy",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "data"}}})),
        )
        .await,
    );
    assert!(
        status.message.contains("[unknown-delete-policy]"),
        "{status:?}"
    );
    // …but removing the finalizer is not: it must never be blocked.
    let released = release_finalizer(&jobs, "legacy", stored.finalizers())
        .await
        .expect("a finalizer-only update must be allowed");
    assert!(released.finalizers().is_empty(), "{released:?}");
    assert!(!released.labels().contains_key("team"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_deletion_waits_for_the_finalizer_then_completes() {
    let env = Env::start("hg-del", &[]).await;
    let jobs = env.jobs();
    jobs.create(
        &PostParams::default(),
        &job("report", json!({keys::ARGO_HOOK: "PostSync"})),
    )
    .await
    .expect("create the hook Job");

    let deleted = jobs
        .delete("report", &DeleteParams::background())
        .await
        .expect("delete the hook");
    let pending = deleted
        .left()
        .expect("with a finalizer, DELETE returns the object, not a Status");
    assert!(pending.metadata.deletion_timestamp.is_some(), "{pending:?}");
    let terminating = jobs.get("report").await.expect("still stored");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.finalizers(), [keys::CLEANUP_FINALIZER]);

    // Removing the finalizer from an object being deleted is allowed, and completes deletion.
    release_finalizer(&jobs, "report", terminating.finalizers())
        .await
        .expect("remove the finalizer from a terminating hook");
    eventually(
        Duration::from_secs(20),
        "the hook Job to be gone",
        || async { matches!(jobs.get_opt("report").await, Ok(None)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_without_hook_annotations_is_stored_untouched() {
    let env = Env::start("hg-plain", &[]).await;
    let jobs = env.jobs();
    let mut plain = job("nightly", json!({"example.com/owner": "team-a"}));
    plain.metadata.labels = Some(BTreeMap::from([("app".to_owned(), "batch".to_owned())]));
    jobs.create(&PostParams::default(), &plain)
        .await
        .expect("create a plain Job");
    let stored = jobs.get("nightly").await.expect("the stored Job");
    assert_eq!(
        annotations_of(stored.annotations()),
        vec![("example.com/owner", "team-a")]
    );
    assert_eq!(
        stored.labels(),
        &BTreeMap::from([("app".to_owned(), "batch".to_owned())])
    );
    assert!(stored.finalizers().is_empty(), "{:?}", stored.finalizers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_pods_are_managed_and_never_completing_ones_rejected() {
    let env = Env::start("hg-pod", &[]).await;
    // The ServiceAccount admission plugin refuses pods until the namespace's default
    // ServiceAccount exists (the controller-manager makes it).
    let accounts: Api<ServiceAccount> = Api::namespaced(env.client(), &env.ns.name);
    eventually(
        Duration::from_secs(30),
        "the default ServiceAccount",
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(env.client(), &env.ns.name);
    let pod = |name: &str, restart: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {keys::ARGO_HOOK: "PreSync",
                                                        keys::ARGO_DELETE_POLICY: "HookSucceeded"}},
            "spec": {"restartPolicy": restart,
                     "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}]},
        }))
        .expect("Pod")
    };

    let status = api_error(
        pods.create(&PostParams::default(), &pod("forever", "Always"))
            .await,
    );
    assert!(
        status.message.contains("[pod-never-completes]"),
        "{status:?}"
    );
    assert!(
        status
            .message
            .contains("set restartPolicy: Never or OnFailure"),
        "{status:?}"
    );

    pods.create(&PostParams::default(), &pod("once", "Never"))
        .await
        .expect("create a hook Pod");
    let stored = pods.get("once").await.expect("the stored Pod");
    assert_eq!(
        stored.labels().get(keys::MANAGED_LABEL).map(String::as_str),
        Some("true")
    );
    assert_eq!(stored.finalizers(), [keys::CLEANUP_FINALIZER]);
    release_finalizer(&pods, "once", stored.finalizers())
        .await
        .expect("remove hookguard's finalizer");
}
