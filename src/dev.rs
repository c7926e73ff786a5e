//! `serve --dev`: a broker that starts in one command, like `vault server -dev`.
//!
//! An in-memory configuration with one demo target on loopback, and an ephemeral local
//! JWT issuer: a fresh ES256 key per start, its public JWKS in a temporary file, and a
//! signed dev JWT printed with a ready-to-paste curl. It signs RDS tokens with the AWS
//! default credential chain (without the EC2 metadata service, which a laptop does not
//! have) or, when that finds nothing, with AWS's documented example keys, and says loudly
//! that such tokens only demonstrate the API.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::{aws, cli, telemetry};

const DEV_ISSUER: &str = "https://rds-token-broker.dev.invalid";
const DEV_AUDIENCE: &str = "rds-token-broker";
const DEV_SUBJECT: &str = "dev-user";
const DEV_KID: &str = "dev-key-1";
/// How long the printed dev JWT works.
const DEV_JWT_LIFETIME: Duration = Duration::from_secs(12 * 3600);

fn dev_config(jwks_file: &str, audit_file: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:8443"

[log]
format = "text"

[audit]
url = "sqlite://{audit_file}"

[[issuers]]
name = "dev"
issuer = "{DEV_ISSUER}"
jwks_file = "{jwks_file}"
audiences = ["{DEV_AUDIENCE}"]
algorithms = ["ES256"]

[[targets]]
name = "demo-db"
host = "demo.cluster-abc123example.us-east-1.rds.amazonaws.com"
port = 5432
engine = "postgres"
db_users = ["app_ro", "app_rw"]

[[grants]]
issuer = "dev"
subject = "{DEV_SUBJECT}"
targets = ["demo-db"]
db_users = ["app_ro", "app_rw"]

[[auditors]]
issuer = "dev"
subject = "{DEV_SUBJECT}"
"#
    )
}

/// AWS's documented example access key id: never a real key.
pub const DUMMY_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const DUMMY_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// What `serve --dev` prints once it listens.
#[derive(Debug)]
pub struct Banner {
    dummy_credentials: bool,
    jwt: String,
}

impl Banner {
    /// The text, with the address actually bound.
    pub fn render(&self, addr: SocketAddr) -> String {
        let creds = if self.dummy_credentials {
            format!(
                "  !! No AWS credentials found: signing with DUMMY credentials ({DUMMY_ACCESS_KEY_ID}).\n  \
                 !! Tokens are well-formed but no database accepts them; they are for trying the API only."
            )
        } else {
            "  Signing with credentials from the AWS default chain: tokens are real.".to_owned()
        };
        let jwt = &self.jwt;
        format!(
            "\nrds-token-broker is running in DEV mode: in-memory config, ephemeral JWT issuer, loopback only.\n\
             {creds}\n\n  A dev JWT for subject \"{DEV_SUBJECT}\" (valid 12 hours, only for this process):\n\n    \
             export RDS_TOKEN_BROKER_JWT={jwt}\n\n  Get a token for the demo target:\n\n    \
             curl -s -X POST http://{addr}/v1/tokens -H \"Authorization: Bearer $RDS_TOKEN_BROKER_JWT\" \\\n      \
             -H 'content-type: application/json' -d '{{\"target\": \"demo-db\", \"db_user\": \"app_ro\"}}'\n\n  \
             Or with the CLI (`cargo install --locked --path .` puts rds-token-broker on PATH):\n\n    \
             export RDS_TOKEN_BROKER_URL=http://{addr}\n    \
             rds-token-broker token --target demo-db --db-user app_ro\n    \
             rds-token-broker targets\n\n  \
             What you may request: curl -s http://{addr}/v1/targets -H \"Authorization: Bearer $RDS_TOKEN_BROKER_JWT\"\n  \
             Readiness: curl -s http://{addr}/readyz\n  \
             Audit console: http://{addr}/ui/ (sign in with the dev JWT; the trail is a temporary SQLite file)\n  \
             Stop with Ctrl-C.\n"
        )
    }
}

/// A fresh ES256 key: its public JWKS and a signer.
struct DevIssuer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl DevIssuer {
    fn generate() -> anyhow::Result<Self> {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow::anyhow!("cannot generate the dev signing key"))?;
        Ok(Self {
            key,
            rng: SystemRandom::new(),
        })
    }

    fn jwks(&self) -> anyhow::Result<serde_json::Value> {
        // Uncompressed point: 0x04 || X (32 bytes) || Y (32 bytes).
        let point = self.key.public_key().as_ref();
        let (x, y) = (point.get(1..33), point.get(33..65));
        let (Some(x), Some(y)) = (x, y) else {
            anyhow::bail!("unexpected dev public key encoding");
        };
        Ok(json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": DEV_KID,
            "x": B64.encode(x), "y": B64.encode(y),
        }]}))
    }

    fn jwt(&self, now: SystemTime) -> anyhow::Result<String> {
        let iat = now.duration_since(SystemTime::UNIX_EPOCH)?.as_secs();
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": DEV_KID});
        let claims = json!({
            "iss": DEV_ISSUER, "sub": DEV_SUBJECT, "aud": DEV_AUDIENCE,
            "iat": iat, "exp": iat + DEV_JWT_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("cannot sign the dev JWT"))?;
        Ok(format!("{signing_input}.{}", B64.encode(sig.as_ref())))
    }
}

/// What `serve --dev` sets up: the configuration, the credentials to sign with, the banner,
/// and the temporary directory holding the dev JWKS and audit trail (removed when dropped,
/// so keep it until the broker has stopped).
#[derive(Debug)]
pub struct Dev {
    /// The in-memory configuration.
    pub config: Config,
    /// The AWS default chain, or dummy credentials.
    pub credentials: SharedCredentialsProvider,
    /// What to print once the broker listens.
    pub banner: Banner,
    /// `$TMPDIR/rds-token-broker-dev-<pid>-<random>/`.
    pub files: tempfile::TempDir,
}

/// The name every dev directory starts with, followed by the owning process id and `-`.
const DEV_DIR_PREFIX: &str = "rds-token-broker-dev-";

/// Builds the dev configuration and issuer, and picks credentials.
pub async fn setup() -> anyhow::Result<Dev> {
    telemetry::init(cli::DEV_LOG_FORMAT);
    let tmp = std::env::temp_dir();
    let files = tempfile::Builder::new()
        .prefix(&format!("{DEV_DIR_PREFIX}{}-", std::process::id()))
        .tempdir_in(&tmp)
        .with_context(|| format!("cannot create a directory in {}", tmp.display()))?;
    remove_stale(&tmp, files.path());
    let issuer = DevIssuer::generate()?;
    let jwks_path = files.path().join("jwks.json");
    std::fs::write(&jwks_path, issuer.jwks()?.to_string())
        .with_context(|| format!("cannot write the dev JWKS to {}", jwks_path.display()))?;
    let path = jwks_path.to_string_lossy().replace('\\', "/");
    let audit_path = files.path().join("audit.db");
    let audit = audit_path.to_string_lossy().replace('\\', "/");
    let config = config::load_str(&dev_config(&path, &audit))
        .map_err(|e| anyhow::anyhow!("built-in dev config: {e}"))?;
    let jwt = issuer.jwt(SystemClock.now())?;

    let chain = aws::dev_chain();
    let (credentials, dummy) = match chain.provide_credentials().await {
        Ok(_) => (chain, false),
        Err(_) => {
            tracing::warn!("no AWS credentials found; DEV mode signs with dummy credentials");
            let dummy = Credentials::new(
                DUMMY_ACCESS_KEY_ID,
                DUMMY_SECRET_ACCESS_KEY,
                None,
                None,
                "dev-dummy",
            );
            (SharedCredentialsProvider::new(dummy), true)
        }
    };
    Ok(Dev {
        config,
        credentials,
        banner: Banner {
            dummy_credentials: dummy,
            jwt,
        },
        files,
    })
}

/// Removes what earlier dev brokers left in `tmp` (killed ones cannot clean up): their
/// directories, and the files older releases wrote straight into `tmp`
/// (`rds-token-broker-dev-<pid>.jwks.json`, `.audit.db` and its `-wal`/`-shm`). Only
/// entries whose process is gone, and only those owned by the user that owns `ours`.
fn remove_stale(tmp: &std::path::Path, ours: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let owner = owner_of(ours);
    let mut removed = 0usize;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, is_dir)) = name.to_str().and_then(stale_name) else {
            continue;
        };
        if pid == std::process::id() || process_exists(pid) {
            continue;
        }
        let path = entry.path();
        // Not following links: a link planted in a shared /tmp is not a way in.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if owner.is_none() || owner_of(&path) != owner || meta.is_dir() != is_dir {
            continue;
        }
        let done = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match done {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "cannot remove a stale dev file")
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %tmp.display(), "removed files of dev brokers that are no longer running");
    }
}

/// A dev broker's entry: `rds-token-broker-dev-<pid>-<random>` (a directory) or
/// `rds-token-broker-dev-<pid>.<jwks.json|audit.db[-wal|-shm]>` (a file): its pid, and
/// whether it is a directory.
fn stale_name(name: &str) -> Option<(u32, bool)> {
    let rest = name.strip_prefix(DEV_DIR_PREFIX)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    let (pid, tail) = rest.split_at(end);
    let pid = pid.parse().ok()?;
    if tail.len() > 1 && tail.starts_with('-') {
        return Some((pid, true));
    }
    let file = matches!(
        tail,
        ".jwks.json" | ".audit.db" | ".audit.db-wal" | ".audit.db-shm" | ".audit.db-journal"
    );
    file.then_some((pid, false))
}

#[cfg(unix)]
fn owner_of(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(path).ok().map(|m| m.uid())
}

#[cfg(not(unix))]
fn owner_of(_: &std::path::Path) -> Option<u32> {
    None
}

/// Whether a process with this id runs. Only Linux can tell (`/proc`); elsewhere every
/// process is assumed to run, and nothing is removed.
fn process_exists(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dev_entries_are_recognised() {
        assert_eq!(
            stale_name("rds-token-broker-dev-42-a1B2c3"),
            Some((42, true))
        );
        assert_eq!(
            stale_name("rds-token-broker-dev-42.jwks.json"),
            Some((42, false))
        );
        assert_eq!(
            stale_name("rds-token-broker-dev-7.audit.db-wal"),
            Some((7, false))
        );
        for other in [
            "rds-token-broker-dev-42",
            "rds-token-broker-dev-42-",
            "rds-token-broker-dev-.jwks.json",
            "rds-token-broker-dev-42.txt",
            "rds-token-broker-dev-x-1",
            "rds-token-broker-42-abc",
            "something-else",
        ] {
            assert_eq!(stale_name(other), None, "{other}");
        }
    }
}
