//! The checkpoint signing key: loaded from a PKCS#8 PEM file or environment variable
//! (never logged), and made by `rds-token-broker audit keygen`.

use std::io::Write as _;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use crate::audit::note::{NoteError, SigningKey};
use crate::config::{CheckpointConfig, SigningKeySource};

/// Why the signing key could not be loaded or written. Never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read audit.checkpoints.signing_key_file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The environment variable is not set (or not UTF-8).
    #[error("the environment variable {0} (audit.checkpoints.signing_key_env) is not set")]
    Env(String),
    /// The key is not a usable Ed25519 PKCS#8 key.
    #[error("the checkpoint signing key is unusable")]
    Key(#[source] NoteError),
    /// KMS signing is not implemented.
    #[error("audit.checkpoints.kms_key_id is not supported by this version")]
    Kms,
    /// `keygen`'s output file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The signing key `cfg` names, read now.
pub fn load_signing_key(cfg: &CheckpointConfig) -> Result<SigningKey, KeyError> {
    let pem: SecretString = match &cfg.signing_key {
        SigningKeySource::File(path) => std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            })?,
        SigningKeySource::Env(var) => std::env::var(var)
            .map(SecretString::from)
            .map_err(|_| KeyError::Env(var.clone()))?,
        SigningKeySource::Kms(_) => return Err(KeyError::Kms),
    };
    SigningKey::from_pkcs8_pem(&cfg.key_name, pem.expose_secret().as_bytes()).map_err(KeyError::Key)
}

/// `audit keygen`: writes a new Ed25519 key as PKCS#8 PEM to `out` (mode 0600; an
/// existing file is never overwritten) and returns its verifier key.
pub fn keygen(name: &str, out: &Path) -> Result<String, KeyError> {
    let pem = SigningKey::generate_pkcs8_pem().map_err(KeyError::Key)?;
    let key =
        SigningKey::from_pkcs8_pem(name, pem.expose_secret().as_bytes()).map_err(KeyError::Key)?;
    let write = |source| KeyError::Write {
        path: out.display().to_string(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut file = opts.open(out).map_err(write)?;
    file.write_all(pem.expose_secret().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write)?;
    Ok(key.verifier_key().to_string())
}
