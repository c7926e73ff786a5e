//! `serve --dev`: a broker that starts in one command, like `vault server -dev`.
//!
//! An in-memory configuration with one demo target, unauthenticated on loopback. It signs
//! with the AWS default credential chain (without the EC2 metadata service, which a laptop
//! does not have) or, when that finds nothing, with AWS's documented example keys, and
//! says loudly that such tokens only demonstrate the API.

use std::net::SocketAddr;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use crate::config::{self, Config};
use crate::{aws, cli, telemetry};

const DEV_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:8443"
allow_unauthenticated = true

[log]
format = "text"

[[targets]]
name = "demo-db"
host = "demo.cluster-abc123example.us-east-1.rds.amazonaws.com"
port = 5432
engine = "postgres"
db_users = ["app_ro", "app_rw"]
"#;

/// AWS's documented example access key id: never a real key.
pub const DUMMY_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const DUMMY_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// What `serve --dev` prints once it listens.
#[derive(Debug)]
pub struct Banner {
    dummy_credentials: bool,
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
        format!(
            "\nrds-token-broker is running in DEV mode: in-memory config, no caller authentication, loopback only.\n\
             {creds}\n\n  Get a token for the demo target:\n\n    \
             curl -s -X POST http://{addr}/v1/tokens -H 'content-type: application/json' \\\n      \
             -d '{{\"target\": \"demo-db\", \"db_user\": \"app_ro\"}}'\n\n  \
             Readiness: curl -s http://{addr}/readyz\n  Stop with Ctrl-C.\n"
        )
    }
}

/// Builds the dev configuration and picks credentials.
pub async fn setup() -> anyhow::Result<(Config, SharedCredentialsProvider, Banner)> {
    let config =
        config::load_str(DEV_CONFIG).map_err(|e| anyhow::anyhow!("built-in dev config: {e}"))?;
    telemetry::init(cli::DEV_LOG_FORMAT);
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
        },
    ))
}
