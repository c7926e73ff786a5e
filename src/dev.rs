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

/// Builds the dev configuration and issuer, and picks credentials.
pub async fn setup() -> anyhow::Result<(Config, SharedCredentialsProvider, Banner)> {
    telemetry::init(cli::DEV_LOG_FORMAT);
    let issuer = DevIssuer::generate()?;
    let jwks_path = std::env::temp_dir().join(format!(
        "rds-token-broker-dev-{}.jwks.json",
        std::process::id()
    ));
    std::fs::write(&jwks_path, issuer.jwks()?.to_string())
        .with_context(|| format!("cannot write the dev JWKS to {}", jwks_path.display()))?;
    let path = jwks_path.to_string_lossy().replace('\\', "/");
    let audit_path = std::env::temp_dir().join(format!(
        "rds-token-broker-dev-{}.audit.db",
        std::process::id()
    ));
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
    Ok((
        config,
        credentials,
        Banner {
            dummy_credentials: dummy,
            jwt,
        },
    ))
}
