//! End-to-end: hookguard's webhooks registered with a real kube-apiserver.
mod support;

#[tokio::test]
async fn control_plane_is_reachable() {
    let cluster = support::cluster().await;
    let ns = support::TestNamespace::new(&cluster, "hg-smoke").await;
    assert!(ns.name.starts_with("hg-smoke-"));
}
