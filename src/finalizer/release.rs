//! `hookguard release-finalizers`: remove `hookguard.io/cleanup` from every object of the
//! handled kinds (uninstall, or a sidecar that is gone for good). Same guarded JSON Patch as
//! the sidecar; metadata-only paged lists so it scales to large clusters.

use super::decide::finalizer_removal_patch;
use super::resolve;
use crate::hooks::keys;
use crate::mutation::KindRef;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindReport {
    pub kind: String,
    /// `false` when the kind is not served by the cluster.
    pub served: bool,
    /// Objects that carried the finalizer.
    pub found: usize,
    /// Finalizers removed (0 on a dry run).
    pub released: usize,
    pub failed: usize,
}

pub async fn release_finalizers(
    client: &Client,
    kinds: &[KindRef],
    namespace: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<Vec<KindReport>> {
    let mut reports = Vec::new();
    for kind in kinds {
        let name = if kind.group.is_empty() {
            kind.kind.clone()
        } else {
            format!("{}.{}", kind.kind, kind.group)
        };
        let mut report = KindReport {
            kind: name,
            served: false,
            found: 0,
            released: 0,
            failed: 0,
        };
        let Some((ar, namespaced)) = resolve(client, kind).await? else {
            reports.push(report);
            continue;
        };
        report.served = true;
        let list_api: Api<DynamicObject> = match namespace {
            Some(ns) if namespaced => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let mut params = ListParams::default().limit(500);
        loop {
            let page = list_api.list_metadata(&params).await?;
            for obj in &page.items {
                let finalizers = obj.metadata.finalizers.clone().unwrap_or_default();
                if !finalizers.iter().any(|f| f == keys::CLEANUP_FINALIZER) {
                    continue;
                }
                report.found += 1;
                if dry_run {
                    continue;
                }
                let api: Api<DynamicObject> = match obj.namespace() {
                    Some(ns) => Api::namespaced_with(client.clone(), &ns, &ar),
                    None => Api::all_with(client.clone(), &ar),
                };
                if release_one(&api, &obj.name_any(), finalizers).await {
                    report.released += 1;
                } else {
                    report.failed += 1;
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Guarded removal with a few re-reads when another writer changes the list meanwhile.
async fn release_one(api: &Api<DynamicObject>, name: &str, mut finalizers: Vec<String>) -> bool {
    for _ in 0..5 {
        let Some(patch) = finalizer_removal_patch(&finalizers) else {
            return true;
        };
        match api
            .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => return true,
            Err(kube::Error::Api(s)) if s.code == 404 => return true,
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 409 => {
                match api.get_metadata_opt(name).await {
                    Ok(Some(fresh)) => finalizers = fresh.metadata.finalizers.unwrap_or_default(),
                    Ok(None) => return true,
                    Err(e) => {
                        tracing::warn!(name, error = %e, "cannot re-read");
                        return false;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(name, error = %e, "cannot remove the finalizer");
                return false;
            }
        }
    }
    false
}
