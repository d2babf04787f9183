//! The serving certificate and the rustls configuration.
//!
//! The certificate is resolved for each new TLS handshake (as kubert does): the resolver
//! stats the two files at most once per check interval and reloads them when their identity
//! (device, inode, length, mtime) changed. `std::fs::metadata` follows symlinks, so the
//! `..data` symlink swap of a Kubernetes Secret volume shows up as a new inode. A pair that
//! cannot be read, parsed or does not match keeps the current certificate, is logged with the
//! reason and counted; it is retried when the files change again. There is no watcher task
//! and no state machine: an idle server does no work, a busy one checks once per interval.

use super::metrics::TlsMetrics;
use super::readiness::Condition;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not a PEM certificate chain: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path} is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the certificate and key do not form a usable pair: {0}")]
    Config(#[from] rustls::Error),
    #[error("client CA {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_chain(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// A certificate and key ready to serve, with what the logs and metrics say about it.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub subject: String,
    /// notAfter of the end-entity certificate, Unix seconds.
    pub not_after: i64,
}

impl LoadedCert {
    /// Parses a PEM chain and key and checks that the key belongs to the first certificate.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Self, TlsError> {
        let chain = parse_chain(cert_pem, cert_path)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let (subject, not_after) = {
            let (_, x509) = x509_parser::parse_x509_certificate(&chain[0]).map_err(|e| {
                TlsError::BadCertificate {
                    path: cert_path.to_path_buf(),
                    reason: e.to_string(),
                }
            })?;
            (
                x509.subject().to_string(),
                x509.validity().not_after.timestamp(),
            )
        };
        let signing_key = provider().key_provider.load_private_key(key)?;
        let certified = CertifiedKey::new(chain, signing_key);
        // Strict: `CertifiedKey::from_der` lets an unknown consistency pass; a pair that
        // cannot be checked is not worth swapping in.
        certified.keys_match()?;
        Ok(Self {
            key: Arc::new(certified),
            subject,
            not_after,
        })
    }

    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Self::from_pem(&read(cert)?, &read(key)?, cert, key)
    }

    pub fn describe(&self) -> String {
        format!(
            "serving {} (notAfter {})",
            self.subject,
            rfc3339(self.not_after)
        )
    }
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// The identity of a file's current content, through symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> std::io::Result<FileStamp> {
    let m = std::fs::metadata(path)?;
    let mtime_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(-1);
    #[cfg(unix)]
    let (dev, ino) = {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    };
    #[cfg(not(unix))]
    let (dev, ino) = (0, 0);
    Ok(FileStamp {
        dev,
        ino,
        len: m.len(),
        mtime_ns,
    })
}

#[derive(Debug)]
struct CheckState {
    last_check: Instant,
    seen: Option<(FileStamp, FileStamp)>,
    /// The last stat error, so a missing file is logged once, not every interval.
    last_error: Option<String>,
}

/// Serves the certificate from `cert`/`key`, reloading it when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    interval: Duration,
    current: RwLock<LoadedCert>,
    check: Mutex<CheckState>,
    metrics: Option<TlsMetrics>,
    condition: Option<Condition>,
}

impl ReloadingCert {
    /// Loads the pair now (an error here is a startup error) and reloads it from then on.
    pub fn new(
        cert: &Path,
        key: &Path,
        interval: Duration,
        metrics: Option<TlsMetrics>,
        condition: Option<Condition>,
    ) -> Result<Self, TlsError> {
        let seen = stamp(cert).ok().zip(stamp(key).ok());
        let loaded = match LoadedCert::load(cert, key) {
            Ok(l) => l,
            Err(e) => {
                if let Some(m) = &metrics {
                    m.reload(false);
                }
                if let Some(c) = &condition {
                    c.not_ready(e.to_string());
                }
                return Err(e);
            }
        };
        if let Some(m) = &metrics {
            m.reload(true);
            m.set_not_after(loaded.not_after);
        }
        if let Some(c) = &condition {
            c.ready(loaded.describe());
        }
        tracing::info!(cert = %cert.display(), subject = %loaded.subject, not_after = %rfc3339(loaded.not_after), "serving certificate loaded");
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            interval,
            current: RwLock::new(loaded),
            check: Mutex::new(CheckState {
                last_check: Instant::now(),
                seen,
                last_error: None,
            }),
            metrics,
            condition,
        })
    }

    /// The certificate being served now.
    pub fn current(&self) -> LoadedCert {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reloads if the check interval has passed and the files changed. Only one caller
    /// checks at a time; the others go on with the current certificate.
    pub fn maybe_reload(&self) {
        let Ok(mut state) = self.check.try_lock() else {
            return;
        };
        if state.last_check.elapsed() < self.interval {
            return;
        }
        state.last_check = Instant::now();
        self.check_files(&mut state);
    }

    /// Checks the files now, whatever the interval.
    pub fn check_now(&self) {
        let mut state = self.check.lock().unwrap_or_else(|e| e.into_inner());
        state.last_check = Instant::now();
        self.check_files(&mut state);
    }

    fn check_files(&self, state: &mut CheckState) {
        let stamps = match stamp(&self.cert).and_then(|c| Ok((c, stamp(&self.key)?))) {
            Ok(s) => s,
            Err(e) => {
                let why = e.to_string();
                if state.last_error.as_deref() != Some(why.as_str()) {
                    tracing::warn!(cert = %self.cert.display(), key = %self.key.display(), error = %why,
                        "cannot stat the certificate files; keeping the current certificate");
                    self.count(false);
                    state.last_error = Some(why);
                }
                return;
            }
        };
        state.last_error = None;
        if state.seen == Some(stamps) {
            return;
        }
        // Remember the stamps taken before reading: if the files change while we read them,
        // the next check sees new stamps and reads again.
        state.seen = Some(stamps);
        match LoadedCert::load(&self.cert, &self.key) {
            Ok(loaded) => {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                if loaded.not_after <= now {
                    tracing::warn!(subject = %loaded.subject, not_after = %rfc3339(loaded.not_after),
                        "the new certificate has already expired; serving it anyway as the files say");
                }
                tracing::info!(cert = %self.cert.display(), subject = %loaded.subject,
                    not_after = %rfc3339(loaded.not_after), "serving certificate reloaded");
                if let Some(m) = &self.metrics {
                    m.set_not_after(loaded.not_after);
                }
                if let Some(c) = &self.condition {
                    c.ready(loaded.describe());
                }
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
                self.count(true);
            }
            Err(e) => {
                let serving = self.current();
                tracing::warn!(cert = %self.cert.display(), key = %self.key.display(), error = %e,
                    keeping = %serving.subject,
                    "the certificate files changed but do not hold a usable pair (half-written or mismatched?); keeping the current certificate");
                self.count(false);
            }
        }
    }

    fn count(&self, ok: bool) {
        if let Some(m) = &self.metrics {
            m.reload(ok);
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.maybe_reload();
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .key
                .clone(),
        )
    }
}

/// Reads a PEM bundle of CA certificates for verifying clients.
pub fn client_verifier(
    path: &Path,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let pem = read(path)?;
    let bad = |reason: String| TlsError::ClientCa {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in parse_chain(&pem, path)? {
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| bad(e.to_string()))
}

/// TLS 1.3 and 1.2 only (1.0 and 1.1 are refused with a protocol_version alert), ALPN h2 and
/// http/1.1, the certificate from `certs`, and client certificates required and verified
/// against `client_ca` if given.
pub fn server_config(
    certs: Arc<dyn ResolvesServerCert>,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let mut config = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca)?),
        None => builder.with_no_client_auth(),
    }
    .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A fixed certificate from PEM files (no reloading), e.g. for tools and examples.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_from_pem(&read(cert)?, &read(key)?, cert, key)
}

pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let loaded = LoadedCert::from_pem(cert_pem, key_pem, cert_path, key_path)?;
    server_config(Arc::new(FixedCert(loaded.key)), None)
}

/// Always the same certificate.
#[derive(Debug)]
pub struct FixedCert(pub Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs;

    fn write_pair(dir: &Path, host: &str) -> certs::CertBundle {
        let b = certs::generate(&[host.to_string()], 30).unwrap();
        certs::write(dir, &b).unwrap();
        b
    }

    #[test]
    fn reloads_changed_files_and_keeps_the_old_pair_when_broken() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "one.example");
        let mut registry = super::super::metrics::new_registry();
        let metrics = TlsMetrics::register(&mut registry);
        let r = ReloadingCert::new(
            &dir.path().join(certs::CERT_FILE),
            &dir.path().join(certs::KEY_FILE),
            Duration::from_millis(0),
            Some(metrics),
            None,
        )
        .unwrap();
        assert_eq!(r.current().subject, "CN=one.example");

        write_pair(dir.path(), "two.example");
        r.check_now();
        assert_eq!(r.current().subject, "CN=two.example");

        // A new certificate with the old key: mismatched, keep serving two.example.
        let three = certs::generate(&["three.example".to_string()], 30).unwrap();
        std::fs::write(dir.path().join(certs::CERT_FILE), &three.cert_pem).unwrap();
        r.check_now();
        assert_eq!(r.current().subject, "CN=two.example");
        // Then the key arrives: the pair is whole again.
        std::fs::write(dir.path().join(certs::KEY_FILE), &three.key_pem).unwrap();
        r.check_now();
        assert_eq!(r.current().subject, "CN=three.example");

        // Half a certificate.
        let four = certs::generate(&["four.example".to_string()], 30).unwrap();
        std::fs::write(dir.path().join(certs::KEY_FILE), &four.key_pem).unwrap();
        std::fs::write(dir.path().join(certs::CERT_FILE), &four.cert_pem[..200]).unwrap();
        r.check_now();
        assert_eq!(r.current().subject, "CN=three.example");

        let text = super::super::metrics::encode(&registry);
        assert!(
            text.contains("hookguard_tls_certificate_reloads_total{result=\"success\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("hookguard_tls_certificate_reloads_total{result=\"error\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn unusable_pairs_fail_at_startup_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(dir.path(), "a.example");
        let b = certs::generate(&["b.example".to_string()], 30).unwrap();
        let cert = dir.path().join(certs::CERT_FILE);
        let key = dir.path().join(certs::KEY_FILE);
        std::fs::write(&key, &b.key_pem).unwrap();
        let e = ReloadingCert::new(&cert, &key, Duration::ZERO, None, None).unwrap_err();
        assert!(matches!(e, TlsError::Config(_)), "{e}");
        std::fs::write(&key, "not a key").unwrap();
        let e = ReloadingCert::new(&cert, &key, Duration::ZERO, None, None).unwrap_err();
        assert!(matches!(e, TlsError::BadKey { .. }), "{e}");
        std::fs::write(&key, &a.key_pem).unwrap();
        std::fs::write(&cert, "").unwrap();
        let e = ReloadingCert::new(&cert, &key, Duration::ZERO, None, None).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        let e = ReloadingCert::new(
            &dir.path().join("missing"),
            &key,
            Duration::ZERO,
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
    }
}
