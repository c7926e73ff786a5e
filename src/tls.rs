//! Serving TLS (rustls) from `server.tls_cert` / `server.tls_key`, reloaded when the files
//! change so certificates rotate (cert-manager, ACME) without a restart.
//!
//! Handshakes run in each connection's own task with a time limit (see `http::serve`), so
//! a slow or silent client never holds up accepting others.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// How often the certificate files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);

/// Reads a PEM certificate chain and private key into a rustls `CertifiedKey`.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "{} and {} do not belong together: {e}",
            cert.display(),
            key.display()
        )
    })?;
    Ok(certified)
}

/// Answers every handshake with the current certificate.
#[derive(Debug)]
struct Current(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// An acceptor answering with the certificate in `cert`/`key` (an error if it is unusable)
/// and the files watched, so a renewed certificate is served without a restart. The
/// watcher stops when the acceptor is dropped.
pub fn acceptor(cert: PathBuf, key: PathBuf) -> Result<TlsAcceptor, String> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let current = Arc::new(Current(ArcSwap::from_pointee(load(&cert, &key)?)));
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(current.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio::spawn(watch(current, cert, key));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn watch(current: Arc<Current>, cert: PathBuf, key: PathBuf) {
    let mut seen = (stamp(&cert), stamp(&key));
    loop {
        tokio::time::sleep(RELOAD_POLL).await;
        if Arc::strong_count(&current) == 1 {
            return; // the listener is gone
        }
        let now = (stamp(&cert), stamp(&key));
        if now == seen {
            continue;
        }
        seen = now;
        match load(&cert, &key) {
            Ok(k) => {
                current.0.store(Arc::new(k));
                tracing::info!(cert = %cert.display(), "reloaded the TLS certificate");
            }
            // Often a half-written pair during rotation: keep serving the old one.
            Err(e) => {
                tracing::warn!(error = %e, "the new TLS certificate is unusable; keeping the current one")
            }
        }
    }
}
