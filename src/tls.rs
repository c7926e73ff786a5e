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

/// Why a certificate and key cannot be served. Each message names the file; the cause
/// says what is wrong with it (never the key's contents).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read or is not PEM.
    #[error("{}", .0.display())]
    Certificate(PathBuf, #[source] rustls_pki_types::pem::Error),
    /// The certificate file holds no certificate.
    #[error("{}: no certificate in it", .0.display())]
    NoCertificate(PathBuf),
    /// The key file cannot be read, is not PEM, or holds no private key.
    #[error("{}", .0.display())]
    Key(PathBuf, #[source] rustls_pki_types::pem::Error),
    /// The key is of a type rustls cannot sign with.
    #[error("{}", .0.display())]
    UnsupportedKey(PathBuf, #[source] rustls::Error),
    /// The key is not the certificate's.
    #[error("{} and {} do not belong together", .cert.display(), .key.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
}

/// Reads a PEM certificate chain and private key into a rustls `CertifiedKey`.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let bad_cert = |e| TlsError::Certificate(cert.to_owned(), e);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(bad_cert)?
        .collect::<Result<_, _>>()
        .map_err(bad_cert)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key(key.to_owned(), e))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der)
        .map_err(|e| TlsError::UnsupportedKey(key.to_owned(), e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|source| TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
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
pub fn acceptor(cert: PathBuf, key: PathBuf) -> Result<TlsAcceptor, TlsError> {
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
                tracing::warn!(error = %crate::report::Report(&e), "the new TLS certificate is unusable; keeping the current one")
            }
        }
    }
}
