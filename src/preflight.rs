//! What `check-config` checks beyond the file itself: that the files it names exist and
//! parse ([`files`]), and with `--online` that the services it names answer ([`online`]).
//! Each problem comes with its fix.
//!
//! Nothing here prints a secret: URLs are shown as host and port only (a DSN's password
//! never appears), keys and credentials are loaded but never shown.

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::provider::ProvideCredentials as _;

use crate::auth::jwks::IssuerKeys;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, IssuerConfig};
use crate::report::Report;

/// How long one online check may take.
const ONLINE_TIMEOUT: Duration = Duration::from_secs(10);

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The configuration key checked (`server.tls_cert`, `issuers[1].jwks_uri`, ...).
    pub key: String,
    /// What was found: on success what works, otherwise what is wrong (with its causes).
    pub message: String,
    /// What to do about it; `None` when the check passed.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            fix: None,
        }
    }

    fn problem(key: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        self.fix.is_none()
    }
}

/// The files `config` names: the TLS certificate and key, `jwks_file`s, the SQLite audit
/// store's directory and a CA file in a PostgreSQL `audit.url` (`sslrootcert`), the audit
/// mirror's directory. Relative paths are relative to the working directory, as for `serve`.
pub async fn files(config: &Config) -> Vec<Finding> {
    let mut found = Vec::new();
    if let Some((cert, key)) = &config.server.tls {
        found.push(match crate::tls::load(cert, key) {
            Ok(_) => Finding::ok(
                "server.tls_cert, server.tls_key",
                format!(
                    "{} and {} load and belong together",
                    cert.display(),
                    key.display()
                ),
            ),
            Err(e) => Finding::problem(
                "server.tls_cert, server.tls_key",
                Report(&e).to_string(),
                "point server.tls_cert at a PEM certificate chain and server.tls_key at its \
                 PEM private key, both readable by the broker's user",
            ),
        });
    }
    let clock: SharedClock = Arc::new(SystemClock);
    for (i, issuer) in config.issuers.iter().enumerate() {
        if issuer.jwks_file.is_some() {
            found.push(issuer_keys(i, issuer, &clock).await);
        }
    }
    if let Some(audit) = &config.audit {
        found.extend(audit_files(&audit.url));
        if let Some(mirror) = audit.mirror.as_deref().filter(|m| *m != "stdout") {
            found.push(directory_of(
                "audit.mirror",
                Path::new(mirror),
                "create the directory, or point audit.mirror at a file in one that exists",
            ));
        }
        if let Some(cp) = &audit.checkpoints {
            found.extend(checkpoint_files(cp));
        }
    }
    found
}

/// `[audit.checkpoints]`: the signing key loads, and the file sink's directory exists.
fn checkpoint_files(cp: &crate::config::CheckpointConfig) -> Vec<Finding> {
    use crate::audit::checkpoint::keys::load_signing_key;
    let key = "audit.checkpoints.signing_key_file";
    let mut found = vec![match load_signing_key(cp) {
        Ok(k) => Finding::ok(
            key,
            format!("the signing key loads; verifier key {}", k.verifier_key()),
        ),
        Err(e) => Finding::problem(
            key,
            Report(&e).to_string(),
            "make a key with `rds-token-broker audit keygen --name NAME --out FILE` and \
             point signing_key_file at it (or signing_key_env at a variable holding it)",
        ),
    }];
    if let Some(file) = &cp.file {
        found.push(directory_of(
            "audit.checkpoints.file",
            file,
            "create the directory, or point audit.checkpoints.file at a file in one that exists",
        ));
    }
    found
}

/// The services `config` names: the PostgreSQL audit store, Redis, each issuer's keys
/// (`jwks_uri` or discovery), and the AWS credentials of the default chain.
pub async fn online(config: &Config) -> Vec<Finding> {
    let mut found = Vec::new();
    if let Some(audit) = &config.audit
        && !audit.url.starts_with("sqlite:")
    {
        found.push(postgres(&audit.url).await);
    }
    if let Some(url) = &config.rate_limit.redis_url {
        found.push(redis(url).await);
    }
    let clock: SharedClock = Arc::new(SystemClock);
    for (i, issuer) in config.issuers.iter().enumerate() {
        if issuer.jwks_file.is_none() {
            found.push(issuer_keys(i, issuer, &clock).await);
        }
    }
    found.push(aws_credentials(config).await);
    found
}

async fn issuer_keys(i: usize, issuer: &IssuerConfig, clock: &SharedClock) -> Finding {
    let key = match (&issuer.jwks_file, &issuer.jwks_uri) {
        (Some(_), _) => format!("issuers[{i}].jwks_file"),
        (None, Some(_)) => format!("issuers[{i}].jwks_uri"),
        (None, None) => format!("issuers[{i}].issuer"),
    };
    let fix = match (&issuer.jwks_file, &issuer.jwks_uri) {
        (Some(_), _) => "point jwks_file at the issuer's JWKS document (JSON with \"keys\"; for \
             Kubernetes: kubectl get --raw /openid/v1/jwks), readable by the broker's user"
            .to_owned(),
        (None, Some(_)) => "check that jwks_uri is right and reachable from the broker's \
             network, and that it serves the issuer's JWKS document"
            .to_owned(),
        (None, None) => format!(
            "check that {}/.well-known/openid-configuration is reachable from the broker's \
             network and names this issuer, or set jwks_uri or jwks_file",
            issuer.issuer.trim_end_matches('/')
        ),
    };
    let http = match crate::auth::jwks::http_client() {
        Ok(h) => h,
        Err(e) => return Finding::problem(key, Report(&e).to_string(), fix),
    };
    let keys = IssuerKeys::new(issuer.clone(), http, clock.clone());
    match tokio::time::timeout(ONLINE_TIMEOUT, keys.refresh()).await {
        Ok(Ok(n)) => Finding::ok(
            key,
            format!(
                "{n} signing key{} for issuer {:?}",
                if n == 1 { "" } else { "s" },
                issuer.name
            ),
        ),
        Ok(Err(e)) => {
            let mut message = Report(&e).to_string();
            // A parse error names neither the file nor the URL.
            let source = issuer
                .jwks_file
                .as_ref()
                .map(|f| f.display().to_string())
                .or_else(|| issuer.jwks_uri.clone());
            if let Some(source) = source
                && !message.contains(&source)
            {
                message = format!("{source}: {message}");
            }
            Finding::problem(key, message, fix)
        }
        Err(_) => Finding::problem(
            key,
            format!("no answer within {} s", ONLINE_TIMEOUT.as_secs()),
            fix,
        ),
    }
}

/// SQLite: the database's directory. PostgreSQL: the `sslrootcert` file, if any.
fn audit_files(url: &str) -> Vec<Finding> {
    if url.starts_with("sqlite:") {
        let Ok(opts) = sqlx::sqlite::SqliteConnectOptions::from_str(url) else {
            return Vec::new(); // The configuration check owns the URL's syntax.
        };
        let file = opts.get_filename();
        if file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:") {
            return Vec::new();
        }
        return vec![directory_of(
            "audit.url",
            file,
            "create the directory (the broker creates the database file), or change audit.url",
        )];
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Vec::new();
    };
    let Some((_, ca)) = parsed.query_pairs().find(|(k, _)| k == "sslrootcert") else {
        return Vec::new();
    };
    let ca = Path::new(ca.as_ref());
    let fix = "point sslrootcert in audit.url at the PEM file of the CA that signed the \
               database's certificate (for RDS: the region's bundle from \
               https://truststore.pki.rds.amazonaws.com)";
    let finding = match std::fs::read(ca) {
        Err(e) => Finding::problem(
            "audit.url (sslrootcert)",
            format!("cannot read {}: {e}", ca.display()),
            fix,
        ),
        Ok(pem) => match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => Finding::ok(
                "audit.url (sslrootcert)",
                format!(
                    "{}: {} CA certificate{}",
                    ca.display(),
                    certs.len(),
                    if certs.len() == 1 { "" } else { "s" }
                ),
            ),
            _ => Finding::problem(
                "audit.url (sslrootcert)",
                format!("{}: no PEM certificate in it", ca.display()),
                fix,
            ),
        },
    };
    vec![finding]
}

/// Whether the directory `file` would be created in exists.
fn directory_of(key: &str, file: &Path, fix: &str) -> Finding {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Finding::ok(key, format!("directory {} exists", dir.display()))
    } else {
        Finding::problem(
            key,
            format!("directory {} does not exist", dir.display()),
            fix,
        )
    }
}

/// `host:port` of a URL, for messages: never its user or password.
fn endpoint(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => "(no host)".to_owned(),
        },
        Err(_) => "(not a URL)".to_owned(),
    }
}

async fn postgres(url: &str) -> Finding {
    use sqlx::Connection as _;
    let at = endpoint(url);
    let fix = "check that the database is reachable from the broker's network, that the user, \
               password and database in audit.url exist, and its sslmode; the user needs the \
               privileges docs/operating.md lists";
    let opts = match sqlx::postgres::PgConnectOptions::from_str(url) {
        Ok(o) => o,
        Err(e) => return Finding::problem("audit.url", Report(&e).to_string(), fix),
    };
    let check = async {
        let mut conn = sqlx::PgConnection::connect_with(&opts).await?;
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        conn.close().await
    };
    match tokio::time::timeout(ONLINE_TIMEOUT, check).await {
        Ok(Ok(())) => Finding::ok("audit.url", format!("PostgreSQL at {at} answers")),
        Ok(Err(e)) => Finding::problem(
            "audit.url",
            format!("PostgreSQL at {at}: {}", Report(&e)),
            fix,
        ),
        Err(_) => Finding::problem(
            "audit.url",
            format!(
                "PostgreSQL at {at}: no answer within {} s",
                ONLINE_TIMEOUT.as_secs()
            ),
            fix,
        ),
    }
}

async fn redis(url: &str) -> Finding {
    let at = endpoint(url);
    let fix = "check that Redis is reachable from the broker's network and that \
               rate_limit.redis_url has the right scheme (rediss:// for TLS), password and \
               database; without Redis each replica paces alone";
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = match redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => {
            return Finding::problem(
                "rate_limit.redis_url",
                format!("Redis at {at}: {}", Report(&e)),
                fix,
            );
        }
    };
    let check = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(ONLINE_TIMEOUT, check).await {
        Ok(Ok(_)) => Finding::ok("rate_limit.redis_url", format!("Redis at {at} answers")),
        Ok(Err(e)) => Finding::problem(
            "rate_limit.redis_url",
            format!("Redis at {at}: {}", Report(&e)),
            fix,
        ),
        Err(_) => Finding::problem(
            "rate_limit.redis_url",
            format!(
                "Redis at {at}: no answer within {} s",
                ONLINE_TIMEOUT.as_secs()
            ),
            fix,
        ),
    }
}

async fn aws_credentials(config: &Config) -> Finding {
    const KEY: &str = "(AWS credentials)";
    let fix = "give the broker an identity: an IAM role (IRSA or EKS Pod Identity, an \
               instance profile, an ECS task role), a profile (AWS_PROFILE), or \
               AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
    let chain = crate::aws::default_chain(config.aws.region.as_ref()).await;
    match tokio::time::timeout(ONLINE_TIMEOUT, chain.provide_credentials()).await {
        // Found, never shown.
        Ok(Ok(_)) => Finding::ok(KEY, "the AWS default chain found credentials"),
        Ok(Err(e)) => Finding::problem(
            KEY,
            // "no AWS credentials: ..." in fixed words.
            crate::aws::describe(&e).to_string(),
            fix,
        ),
        Err(_) => Finding::problem(
            KEY,
            format!(
                "the AWS default chain gave no answer within {} s",
                ONLINE_TIMEOUT.as_secs()
            ),
            fix,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_never_show_a_password() {
        assert_eq!(
            endpoint("postgres://broker:s3cret@db.internal:5432/audit?sslmode=verify-full"),
            "db.internal:5432"
        );
        assert_eq!(
            endpoint("rediss://:s3cret@redis.internal"),
            "redis.internal"
        );
        assert_eq!(endpoint("not a url s3cret"), "(not a URL)");
    }
}
