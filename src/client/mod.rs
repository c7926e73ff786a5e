//! The client side: talking to a running broker from the command line (`token`, `exec`,
//! `targets`, `audit`). Errors are written for the person at the terminal: what went wrong and what
//! to do about it, never the bearer token or a database token.

pub mod audit;
pub mod aws_iam;
pub mod output;
pub mod targets;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The Kubernetes service-account token, the last place a bearer token is looked for.
pub const K8S_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How to reach the broker and who the caller is.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// The broker's base URL, e.g. `https://rds-token-broker.internal:8443`.
    #[arg(long, value_name = "URL", env = "RDS_TOKEN_BROKER_URL")]
    pub broker: String,
    /// File holding the caller's JWT (read first).
    #[arg(long, value_name = "FILE")]
    pub jwt_file: Option<PathBuf>,
    /// Kubernetes service-account token file, used when neither --jwt-file nor
    /// RDS_TOKEN_BROKER_JWT is given (a projected token may live elsewhere).
    #[arg(
        long,
        value_name = "FILE",
        env = "RDS_TOKEN_BROKER_K8S_TOKEN_FILE",
        default_value = K8S_TOKEN_FILE
    )]
    pub k8s_token_file: PathBuf,
    /// PEM file of the CA(s) that signed the broker's TLS certificate, trusted in
    /// addition to the system's roots.
    #[arg(long, value_name = "FILE", env = "RDS_TOKEN_BROKER_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Give up on the broker after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// Allow an http:// --broker that is not on loopback. The JWT (or signed AWS identity)
    /// and the database token then travel in cleartext: only for networks you trust.
    #[arg(long)]
    pub insecure_http: bool,
    /// Authenticate with this machine's AWS identity (default credential chain) instead of
    /// a JWT: sends a signed sts:GetCallerIdentity, never the credentials.
    #[arg(long, requires = "iam_server_id", conflicts_with = "jwt_file")]
    pub aws_iam: bool,
    /// The broker's aws.iam_server_id (signed into the request, so it is only good for
    /// that broker).
    #[arg(long, value_name = "ID", env = "RDS_TOKEN_BROKER_IAM_SERVER_ID")]
    pub iam_server_id: Option<String>,
    /// STS endpoint to sign for (default: the region's, or the global one).
    #[arg(long, value_name = "URL", env = "RDS_TOKEN_BROKER_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
}

/// A failure the user can act on; every message is safe to print (no token, no JWT).
/// Print it with [`crate::report::Report`], which adds the causes.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Explained in full: a usage mistake, or what the broker answered and what to do.
    #[error("{0}")]
    Message(String),
    /// Something the client tried (`what`) failed because of `source`.
    #[error("{what}")]
    Failed {
        /// What failed, for the user.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn fail(msg: impl Into<String>) -> ClientError {
    ClientError::Message(msg.into())
}

/// `what` failed because of `source`.
pub(crate) fn failed(
    what: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> ClientError {
    ClientError::Failed {
        what: what.into(),
        source: source.into(),
    }
}

/// Where the bearer token came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerSource {
    /// `--jwt-file`.
    File(PathBuf),
    /// `RDS_TOKEN_BROKER_JWT`.
    Env,
    /// The Kubernetes service-account token.
    Kubernetes(PathBuf),
    /// A signed GetCallerIdentity (`--aws-iam`).
    AwsIam,
    /// Nothing found: the request goes out without `Authorization`.
    None,
}

impl std::fmt::Display for BearerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "the JWT in {}", p.display()),
            Self::Env => f.write_str("the JWT in RDS_TOKEN_BROKER_JWT"),
            Self::Kubernetes(p) => write!(f, "the service-account token in {}", p.display()),
            Self::AwsIam => f.write_str("your AWS identity (--aws-iam)"),
            Self::None => f.write_str("no credentials"),
        }
    }
}

/// The JWT in `text`: surrounding whitespace and a `Bearer ` prefix (as copied from an
/// `Authorization` header; any case) removed. A JWT never contains a space, so the prefix
/// cannot be part of one.
fn bare_jwt(text: &str) -> &str {
    let text = text.trim();
    if text.eq_ignore_ascii_case("bearer") {
        return "";
    }
    match text.get(..6).zip(text.get(6..)) {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("bearer") && rest.starts_with(char::is_whitespace) =>
        {
            rest.trim_start()
        }
        _ => text,
    }
}

fn read_bearer_file(path: &Path) -> Result<SecretString, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| failed(format!("cannot read the JWT file {}", path.display()), e))?;
    let text = bare_jwt(&text);
    if text.is_empty() {
        return Err(fail(format!(
            "the JWT file {} is empty (or holds only \"Bearer\")",
            path.display()
        )));
    }
    Ok(SecretString::from(text.to_owned()))
}

/// Finds the bearer token: `--jwt-file`, then `RDS_TOKEN_BROKER_JWT`, then the Kubernetes
/// service-account token file. None of them: `BearerSource::None`.
pub fn resolve_bearer(
    args: &BrokerArgs,
    env_jwt: Option<String>,
) -> Result<(Option<SecretString>, BearerSource), ClientError> {
    if let Some(path) = &args.jwt_file {
        return Ok((
            Some(read_bearer_file(path)?),
            BearerSource::File(path.clone()),
        ));
    }
    if let Some(jwt) = env_jwt {
        let jwt = bare_jwt(&jwt);
        if jwt.is_empty() {
            return Err(fail(
                "RDS_TOKEN_BROKER_JWT is set but empty (or holds only \"Bearer\")",
            ));
        }
        return Ok((Some(SecretString::from(jwt.to_owned())), BearerSource::Env));
    }
    if args.k8s_token_file.exists() {
        return Ok((
            Some(read_bearer_file(&args.k8s_token_file)?),
            BearerSource::Kubernetes(args.k8s_token_file.clone()),
        ));
    }
    Ok((None, BearerSource::None))
}

/// Parses `--broker`: an https:// URL, or http:// on loopback (`localhost`, 127.0.0.0/8,
/// `::1`); http:// elsewhere only with `insecure_http`, since the caller's credentials
/// would cross the network in cleartext.
pub fn broker_url(url: &str, insecure_http: bool) -> Result<Url, ClientError> {
    let base = Url::parse(url).map_err(|e| {
        fail(format!(
            "--broker {url}: not a URL ({e}); expected e.g. https://broker.example:8443"
        ))
    })?;
    if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
        return Err(fail(format!(
            "--broker {url}: must be an http:// or https:// URL with a host"
        )));
    }
    let host = base.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if base.scheme() == "http" && !loopback && !insecure_http {
        return Err(fail(format!(
            "--broker {url}: plain http:// to a host that is not loopback would send your \
             credentials and the database token in cleartext. Use the broker's https:// URL \
             (with --ca-file for a private CA), or pass --insecure-http if this network is \
             trusted."
        )));
    }
    Ok(base)
}

/// An RFC 9457 problem from the broker (never contains secrets, by the broker's contract).
#[derive(Debug, Default, Deserialize)]
struct Problem {
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    limit: Option<String>,
}

/// A connection to one broker as one caller.
#[derive(Debug)]
pub struct BrokerClient {
    base: Url,
    http: reqwest::Client,
    bearer: Option<SecretString>,
    iam: Option<aws_iam::IamSigner>,
    source: BearerSource,
}

impl BrokerClient {
    /// Checks the URL, loads the CA file and finds the bearer token. Nothing is sent
    /// before the URL is accepted.
    pub async fn new(args: &BrokerArgs) -> Result<Self, ClientError> {
        let mut base = broker_url(&args.broker, args.insecure_http)?;
        let (bearer, source, iam) = if args.aws_iam {
            let id = args.iam_server_id.as_deref().unwrap_or_default();
            let signer = aws_iam::IamSigner::new(id, args.sts_endpoint.as_deref()).await?;
            (None, BearerSource::AwsIam, Some(signer))
        } else {
            let env_jwt = std::env::var("RDS_TOKEN_BROKER_JWT").ok();
            let (bearer, source) = resolve_bearer(args, env_jwt)?;
            (bearer, source, None)
        };
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(args.timeout.clamp(1, 10)))
            .timeout(Duration::from_secs(args.timeout.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rds-token-broker-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &args.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| failed(format!("cannot read --ca-file {}", path.display()), e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                failed(
                    format!("--ca-file {}: not a PEM certificate bundle", path.display()),
                    e,
                )
            })?;
            if certs.is_empty() {
                return Err(fail(format!(
                    "--ca-file {}: no certificate in it",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| failed("cannot set up the HTTP client", e))?;
        Ok(Self {
            base,
            http,
            bearer,
            iam,
            source,
        })
    }

    /// A request to `path` (relative to the broker URL) with the bearer token.
    pub async fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, ClientError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| failed(format!("cannot build the URL for {path}"), e))?;
        let mut req = self.http.request(method, url);
        if let Some(bearer) = &self.bearer {
            req = req.bearer_auth(bearer.expose_secret());
        }
        if let Some(iam) = &self.iam {
            req = req.header(reqwest::header::AUTHORIZATION, iam.authorization().await?);
        }
        Ok(req)
    }

    /// Sends a request; a non-2xx answer becomes an error that says what to do.
    pub async fn send(&self, req: RequestBuilder) -> Result<Response, ClientError> {
        self.send_to(req, Api::Tokens).await
    }

    /// [`Self::send`] for `/v1/audit/*`, whose only 403 means "not an auditor".
    pub async fn send_audit(&self, req: RequestBuilder) -> Result<Response, ClientError> {
        self.send_to(req, Api::Audit).await
    }

    async fn send_to(&self, req: RequestBuilder, api: Api) -> Result<Response, ClientError> {
        let res = req.send().await.map_err(|e| self.transport_error(&e))?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(self.status_error(res, api).await)
    }

    fn transport_error(&self, e: &reqwest::Error) -> ClientError {
        let mut cause = String::new();
        let mut src: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = src {
            cause = s.to_string();
            src = s.source();
        }
        let tlsish = cause.contains("certificate")
            || cause.contains("tls")
            || cause.contains("TLS")
            || cause.contains("handshake");
        if tlsish {
            fail(format!(
                "TLS with the broker at {} failed: {cause}. If its certificate comes from a \
                 private CA, pass that CA with --ca-file.",
                self.base
            ))
        } else if e.is_timeout() {
            fail(format!(
                "the broker at {} did not answer in time. Is it overloaded or behind a \
                 firewall? (--timeout sets the limit)",
                self.base
            ))
        } else {
            fail(format!(
                "cannot reach the broker at {}: {cause}. Is it running, and is --broker \
                 (or RDS_TOKEN_BROKER_URL) right?",
                self.base
            ))
        }
    }

    async fn status_error(&self, res: Response, api: Api) -> ClientError {
        let status = res.status();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut problem: Problem = res.json().await.unwrap_or_default();
        // Printed to a terminal: no escape sequences or bidi overrides from the answer.
        problem.title = crate::audit::display::neutralise(&problem.title).into_owned();
        let detail = if problem.detail.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            crate::audit::display::neutralise(&problem.detail).into_owned()
        };
        let wait = retry_after
            .map(|s| format!(" Retry in {s} s."))
            .unwrap_or_default();
        match status {
            StatusCode::UNAUTHORIZED => match &self.source {
                BearerSource::None => fail(format!(
                    "the broker requires authentication ({detail}), and no JWT was found: pass \
                     --jwt-file, set RDS_TOKEN_BROKER_JWT, or run in a Kubernetes pod with a \
                     service-account token."
                )),
                source => fail(format!(
                    "the broker did not accept {source}: {detail}. Get a fresh token from your \
                     identity provider, or check that the broker trusts its issuer and audience."
                )),
            },
            StatusCode::FORBIDDEN if api == Api::Audit => not_an_auditor(&self.source),
            StatusCode::FORBIDDEN => fail(format!(
                "not permitted: {detail}. The target may not exist, or your identity has no \
                 grant for it and this DB user (ask the broker's operators; GET /v1/targets \
                 lists what you may use)."
            )),
            StatusCode::TOO_MANY_REQUESTS => {
                let limit = problem
                    .limit
                    .map(|l| format!(" by the {l} limit"))
                    .unwrap_or_default();
                fail(format!("throttled{limit}: {detail}.{wait}"))
            }
            StatusCode::BAD_GATEWAY => fail(format!(
                "AWS STS refused the broker: {detail}. The broker's operators need to fix the \
                 role's trust or permissions."
            )),
            StatusCode::SERVICE_UNAVAILABLE => {
                fail(format!("the broker is unavailable: {detail}.{wait}"))
            }
            StatusCode::BAD_REQUEST => fail(format!("the broker refused the request: {detail}")),
            _ => {
                let title = if problem.title.is_empty() {
                    status.to_string()
                } else {
                    format!("{status} {}", problem.title)
                };
                fail(format!("the broker answered {title}: {detail}"))
            }
        }
    }
}

/// Which part of the API a request went to: the same status means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `/v1/tokens`, `/v1/targets`: a 403 is a missing grant or an unknown target.
    Tokens,
    /// `/v1/audit/*`: a 403 is a caller who is not in `[[auditors]]`.
    Audit,
}

/// The broker answers a non-auditor on `/v1/audit/*` with the same 403 as a missing
/// grant (its detail speaks of targets); the console and the CLI say what it means there.
fn not_an_auditor(source: &BearerSource) -> ClientError {
    match source {
        BearerSource::None => fail(
            "not an auditor: the broker does not let the anonymous caller read the audit \
             trail (an [[auditors]] entry with issuer = \"none\" and subject = \"anonymous\" \
             would), or it needs a JWT: pass --jwt-file or set RDS_TOKEN_BROKER_JWT.",
        ),
        source => {
            let who = match source {
                BearerSource::AwsIam => source.to_string(),
                _ => format!("the identity of {source}"),
            };
            fail(format!(
                "not an auditor: {who} is not in the broker's [[auditors]], so it may not \
                 read the audit trail. Use an auditor's credentials, or ask the broker's \
                 operators to add an [[auditors]] entry for it."
            ))
        }
    }
}

/// `POST /v1/tokens` answer.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct IssuedToken {
    /// The IAM auth token.
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Target name.
    pub target: String,
    /// `rds`, `dsql`, `elasticache` or `memorydb` (`rds` from a broker that predates kinds).
    #[serde(default = "rds")]
    pub kind: String,
    /// Endpoint.
    pub host: String,
    /// Port.
    pub port: u16,
    /// DB user, DSQL Postgres role, or cache user id.
    pub db_user: String,
    /// Signing region.
    pub region: String,
    /// `postgres`, `mysql`, `mariadb`, `valkey` or `redis`.
    pub engine: String,
    /// Audit event id.
    pub issuance_id: String,
    /// Caches: the user id to `AUTH` as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Caches: TLS is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// Caches: re-authenticate within this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reauthenticate_within_seconds: Option<u64>,
    /// Caches: what to do, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn rds() -> String {
    "rds".to_owned()
}

/// Asks the broker for a token.
pub async fn fetch_token(
    client: &BrokerClient,
    target: &str,
    db_user: Option<&str>,
) -> Result<IssuedToken, ClientError> {
    let body = match db_user {
        Some(u) => serde_json::json!({ "target": target, "db_user": u }),
        None => serde_json::json!({ "target": target }),
    };
    let res = client
        .send(client.request(Method::POST, "v1/tokens").await?.json(&body))
        .await?;
    res.json()
        .await
        .map_err(|e| failed("the broker's answer is not a token response", e))
}

/// [`fetch_token`], keeping the broker's HTTP status when it answered with an error
/// (`None`: the broker was not reached, or its answer was not a token), so that a caller
/// (the proxy) can classify the failure.
pub async fn fetch_token_with_status(
    client: &BrokerClient,
    target: &str,
    db_user: Option<&str>,
) -> Result<IssuedToken, (Option<StatusCode>, ClientError)> {
    let body = match db_user {
        Some(u) => serde_json::json!({ "target": target, "db_user": u }),
        None => serde_json::json!({ "target": target }),
    };
    let req = client
        .request(Method::POST, "v1/tokens")
        .await
        .map_err(|e| (None, e))?
        .json(&body);
    let res = req
        .send()
        .await
        .map_err(|e| (None, client.transport_error(&e)))?;
    let status = res.status();
    if !status.is_success() {
        return Err((Some(status), client.status_error(res, Api::Tokens).await));
    }
    res.json().await.map_err(|e| {
        (
            None,
            failed("the broker's answer is not a token response", e),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(jwt_file: Option<PathBuf>, k8s_token_file: PathBuf) -> BrokerArgs {
        BrokerArgs {
            broker: "http://127.0.0.1:8443".into(),
            jwt_file,
            k8s_token_file,
            ca_file: None,
            timeout: 30,
            insecure_http: false,
            aws_iam: false,
            iam_server_id: None,
            sts_endpoint: None,
        }
    }

    #[test]
    fn a_bearer_prefix_is_removed_from_a_jwt_file_or_variable() {
        let dir = tempfile::tempdir().unwrap();
        let none = dir.path().join("no-k8s-token");
        let jwt = |args: &BrokerArgs, env: Option<&str>| {
            resolve_bearer(args, env.map(str::to_owned))
                .map(|(s, _)| s.unwrap().expose_secret().to_owned())
                .map_err(|e| e.to_string())
        };
        let from_env = args(None, none.clone());
        for text in [
            "aaa.bbb.ccc",
            "Bearer aaa.bbb.ccc",
            " bearer\taaa.bbb.ccc\n",
            "BEARER  aaa.bbb.ccc",
        ] {
            assert_eq!(
                jwt(&from_env, Some(text)).as_deref(),
                Ok("aaa.bbb.ccc"),
                "{text:?}"
            );
            let file = dir.path().join("jwt");
            std::fs::write(&file, text).unwrap();
            assert_eq!(
                jwt(&args(Some(file), none.clone()), None).as_deref(),
                Ok("aaa.bbb.ccc"),
                "{text:?}"
            );
        }
        // Only a whole word followed by a space is a prefix.
        assert_eq!(
            jwt(&from_env, Some("Bearerx.y.z")).as_deref(),
            Ok("Bearerx.y.z")
        );
        assert_eq!(
            jwt(&from_env, Some("Bearer ")),
            Err("RDS_TOKEN_BROKER_JWT is set but empty (or holds only \"Bearer\")".into())
        );
        let file = dir.path().join("only-scheme");
        std::fs::write(&file, "Bearer\n").unwrap();
        assert_eq!(
            jwt(&args(Some(file.clone()), none), None),
            Err(format!(
                "the JWT file {} is empty (or holds only \"Bearer\")",
                file.display()
            ))
        );
    }

    #[test]
    fn plain_http_is_for_loopback_unless_insecure_http() {
        for ok in [
            "https://broker.example:8443",
            "http://127.0.0.1:8443",
            "http://127.1.2.3",
            "http://localhost:8443/prefix",
            "http://[::1]:8443",
        ] {
            assert!(broker_url(ok, false).is_ok(), "{ok}");
        }
        for cleartext in [
            "http://10.0.0.1:8443",
            "http://broker.internal",
            "http://localhost.evil.example",
            "http://[::ffff:10.0.0.1]",
            "http://0.0.0.0:8443",
        ] {
            let err = broker_url(cleartext, false).unwrap_err().to_string();
            assert!(
                err.contains("cleartext") && err.contains("--insecure-http"),
                "{err}"
            );
            assert!(broker_url(cleartext, true).is_ok(), "{cleartext}");
        }
        assert!(broker_url("ftp://x", true).is_err());
    }
}
