//! Self-managed certificates in a cluster (the chart's default mode): keep or (re)create the
//! serving Secret, then write its CA into every webhook of the named Validating- and
//! MutatingWebhookConfigurations. Idempotent, so the chart can run it on every install and
//! upgrade (and Argo CD on every sync) without rotating a certificate that is still good —
//! unlike Helm's `genCA`, which makes a new CA on every render.

use crate::certs::{self, CertBundle, CA_FILE, CERT_FILE, KEY_FILE};
use anyhow::{Context, Result};
use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;

/// Why a Secret is kept or replaced. Pure: decided from the Secret's bytes and the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    Keep { days_left: i64 },
    Renew(String),
}

/// Keep the existing pair only when all three files are there, the certificate parses,
/// covers every wanted host, and stays valid for more than `renew_before_days` from `now`.
pub fn decide(
    data: Option<&BTreeMap<String, ByteString>>,
    hosts: &[String],
    now_unix: i64,
    renew_before_days: i64,
) -> Renewal {
    let Some(data) = data else {
        return Renewal::Renew("the Secret does not exist".into());
    };
    for f in [CA_FILE, CERT_FILE, KEY_FILE] {
        if data.get(f).is_none_or(|b| b.0.is_empty()) {
            return Renewal::Renew(format!("the Secret has no {f}"));
        }
    }
    let cert_pem = &data[CERT_FILE].0;
    let der = match x509_parser::pem::parse_x509_pem(cert_pem) {
        Ok((_, pem)) => pem.contents,
        Err(e) => return Renewal::Renew(format!("{CERT_FILE} is not PEM: {e}")),
    };
    let cert = match x509_parser::parse_x509_certificate(&der) {
        Ok((_, c)) => c,
        Err(e) => return Renewal::Renew(format!("{CERT_FILE} is not a certificate: {e}")),
    };
    let names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                    4 => Some(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if let Some(missing) = hosts.iter().find(|h| !names.contains(h)) {
        return Renewal::Renew(format!("the certificate does not cover {missing}"));
    }
    let not_after = cert.validity().not_after.timestamp();
    let days_left = (not_after - now_unix).div_euclid(86_400);
    if not_after - now_unix <= renew_before_days * 86_400 {
        return Renewal::Renew(format!(
            "the certificate expires in {days_left} day(s) (renew at {renew_before_days})"
        ));
    }
    Renewal::Keep { days_left }
}

/// The JSON Patch that sets `caBundle` on every webhook of a configuration; each `add` is
/// guarded by a `test` of that webhook's name, so a configuration changed in between is
/// rejected rather than patched at the wrong index.
pub fn ca_bundle_patch(webhook_names: &[String], ca_pem: &[u8]) -> json_patch::Patch {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut ops = Vec::new();
    for (i, name) in webhook_names.iter().enumerate() {
        ops.push(
            serde_json::json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": name}),
        );
        ops.push(serde_json::json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": ca}));
    }
    serde_json::from_value(serde_json::Value::Array(ops)).unwrap_or(json_patch::Patch(Vec::new()))
}

fn secret_data(bundle: &CertBundle) -> BTreeMap<String, ByteString> {
    [
        (CA_FILE, &bundle.ca_pem),
        (CERT_FILE, &bundle.cert_pem),
        (KEY_FILE, &bundle.key_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect()
}

pub struct Request<'a> {
    pub namespace: &'a str,
    pub secret: &'a str,
    pub hosts: &'a [String],
    pub days: u32,
    pub renew_before_days: i64,
    pub webhooks: &'a [String],
    pub require_webhooks: bool,
}

/// Ensures the Secret, returns the CA (PEM) it holds.
async fn ensure_secret(client: &kube::Client, req: &Request<'_>) -> Result<Vec<u8>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), req.namespace);
    // Two runs racing (two hook Jobs, a retry): a create or update conflict re-reads once.
    for attempt in 0..3 {
        let existing = api
            .get_opt(req.secret)
            .await
            .with_context(|| format!("cannot read Secret {}/{}", req.namespace, req.secret))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match decide(
            existing.as_ref().and_then(|s| s.data.as_ref()),
            req.hosts,
            now,
            req.renew_before_days,
        ) {
            Renewal::Keep { days_left } => {
                println!(
                    "Secret {}/{} kept: valid for {days_left} more day(s)",
                    req.namespace, req.secret
                );
                let data = existing.and_then(|s| s.data).unwrap_or_default();
                return Ok(data.get(CA_FILE).map(|b| b.0.clone()).unwrap_or_default());
            }
            Renewal::Renew(why) => {
                let bundle = certs::generate(req.hosts, req.days)?;
                let result = match existing {
                    Some(mut s) => {
                        s.data = Some(secret_data(&bundle));
                        s.string_data = None;
                        api.replace(req.secret, &PostParams::default(), &s).await
                    }
                    None => {
                        let s = Secret {
                            metadata: ObjectMeta {
                                name: Some(req.secret.to_owned()),
                                namespace: Some(req.namespace.to_owned()),
                                labels: Some(BTreeMap::from([(
                                    "app.kubernetes.io/managed-by".to_owned(),
                                    "hookguard-certs".to_owned(),
                                )])),
                                ..Default::default()
                            },
                            type_: Some("kubernetes.io/tls".to_owned()),
                            data: Some(secret_data(&bundle)),
                            ..Default::default()
                        };
                        api.create(&PostParams::default(), &s).await
                    }
                };
                match result {
                    Ok(_) => {
                        println!(
                            "Secret {}/{} written ({why}); hosts {}, valid {} days",
                            req.namespace,
                            req.secret,
                            req.hosts.join(", "),
                            req.days
                        );
                        return Ok(bundle.ca_pem.into_bytes());
                    }
                    Err(kube::Error::Api(e)) if (e.code == 409) && attempt < 2 => continue,
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("cannot write Secret {}/{}", req.namespace, req.secret)
                        })
                    }
                }
            }
        }
    }
    anyhow::bail!(
        "Secret {}/{} kept changing under us",
        req.namespace,
        req.secret
    )
}

/// Patches `caBundle` into one configuration kind; Ok(false) when it does not exist.
async fn patch_config<K>(client: &kube::Client, name: &str, ca: &[u8]) -> Result<bool>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let Some(obj) = api
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read {kind} {name}"))?
    else {
        return Ok(false);
    };
    let value = serde_json::to_value(&obj).context("cannot encode the configuration")?;
    let names: Vec<String> = value["webhooks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| w["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        println!("{kind} {name}: no webhooks, nothing to patch");
        return Ok(true);
    }
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Json::<()>(ca_bundle_patch(&names, ca)),
    )
    .await
    .with_context(|| format!("cannot patch caBundle into {kind} {name}"))?;
    println!("{kind} {name}: caBundle set on {} webhook(s)", names.len());
    Ok(true)
}

pub async fn run(client: kube::Client, req: Request<'_>) -> Result<()> {
    let ca = ensure_secret(&client, &req).await?;
    let mut missing = Vec::new();
    for name in req.webhooks {
        if !patch_config::<ValidatingWebhookConfiguration>(&client, name, &ca).await? {
            missing.push(format!("ValidatingWebhookConfiguration {name}"));
        }
        if !patch_config::<MutatingWebhookConfiguration>(&client, name, &ca).await? {
            missing.push(format!("MutatingWebhookConfiguration {name}"));
        }
    }
    if !missing.is_empty() {
        if req.require_webhooks {
            anyhow::bail!("not found: {}", missing.join(", "));
        }
        println!("not there yet (skipped): {}", missing.join(", "));
    }
    Ok(())
}

/// Deletes the named Validating- and MutatingWebhookConfigurations (missing ones are fine).
pub async fn delete_webhooks(client: &kube::Client, names: &[String]) -> Result<()> {
    let dp = kube::api::DeleteParams::default();
    for name in names {
        let v: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let m: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        for (kind, res) in [
            (
                "ValidatingWebhookConfiguration",
                v.delete(name, &dp).await.map(|_| ()),
            ),
            (
                "MutatingWebhookConfiguration",
                m.delete(name, &dp).await.map(|_| ()),
            ),
        ] {
            match res {
                Ok(()) => println!("{kind} {name} deleted"),
                Err(kube::Error::Api(e)) if e.code == 404 => println!("{kind} {name}: not there"),
                Err(e) => return Err(e).with_context(|| format!("cannot delete {kind} {name}")),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(bundle: &CertBundle) -> BTreeMap<String, ByteString> {
        secret_data(bundle)
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_missing_or_incomplete_secret_is_renewed() {
        let hosts = vec!["hg.ns.svc".to_owned()];
        assert!(matches!(decide(None, &hosts, now(), 30), Renewal::Renew(_)));
        let bundle = certs::generate(&hosts, 365).unwrap();
        let mut d = data(&bundle);
        d.remove(KEY_FILE);
        assert_eq!(
            decide(Some(&d), &hosts, now(), 30),
            Renewal::Renew("the Secret has no tls.key".into())
        );
        let mut d = data(&bundle);
        d.insert(CERT_FILE.into(), ByteString(b"garbage".to_vec()));
        assert!(
            matches!(decide(Some(&d), &hosts, now(), 30), Renewal::Renew(r) if r.contains("not PEM"))
        );
    }

    #[test]
    fn a_valid_secret_is_kept_until_thirty_days_before_expiry() {
        let hosts = vec!["hg.ns.svc".to_owned(), "hg.ns.svc.cluster.local".to_owned()];
        let bundle = certs::generate(&hosts, 365).unwrap();
        let d = data(&bundle);
        assert!(matches!(
            decide(Some(&d), &hosts, now(), 30),
            Renewal::Keep { days_left } if (363..=365).contains(&days_left)
        ));
        // 334 days later 31 days are left: kept; 336 days later 29 are left: renewed.
        assert!(matches!(
            decide(Some(&d), &hosts, now() + 334 * 86_400, 30),
            Renewal::Keep { .. }
        ));
        assert!(matches!(
            decide(Some(&d), &hosts, now() + 336 * 86_400, 30),
            Renewal::Renew(r) if r.contains("expires")
        ));
    }

    #[test]
    fn a_secret_for_other_hosts_is_renewed() {
        let bundle = certs::generate(&["old.ns.svc".to_owned()], 365).unwrap();
        let want = vec!["hg.ns.svc".to_owned()];
        assert_eq!(
            decide(Some(&data(&bundle)), &want, now(), 30),
            Renewal::Renew("the certificate does not cover hg.ns.svc".into())
        );
    }

    #[test]
    fn the_ca_bundle_patch_tests_each_name_and_applies() {
        let mut doc = serde_json::json!({"webhooks": [
            {"name": "a.hookguard.io", "clientConfig": {"service": {"name": "x"}}},
            {"name": "b.hookguard.io", "clientConfig": {"caBundle": "b2xk"}}
        ]});
        let names = vec!["a.hookguard.io".to_owned(), "b.hookguard.io".to_owned()];
        json_patch::patch(&mut doc, &ca_bundle_patch(&names, b"CA")).unwrap();
        assert_eq!(doc["webhooks"][0]["clientConfig"]["caBundle"], "Q0E=");
        assert_eq!(doc["webhooks"][1]["clientConfig"]["caBundle"], "Q0E=");
        // A reordered configuration fails the test op instead of patching the wrong webhook.
        let swapped = vec!["b.hookguard.io".to_owned(), "a.hookguard.io".to_owned()];
        assert!(json_patch::patch(&mut doc, &ca_bundle_patch(&swapped, b"CA")).is_err());
    }
}
