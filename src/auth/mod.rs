//! Who is calling: bearer JWTs from configured issuers.
//!
//! A broker with `server.allow_unauthenticated` (loopback only) treats every caller as the
//! anonymous principal instead.

pub mod aws_iam;
pub mod jwks;
mod jwt;
pub mod oidc;
pub mod outbound;

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::clock::SharedClock;
use crate::config::Config;
pub use aws_iam::unverified_access_key_id;
use jwks::IssuerKeys;
pub use jwt::{Claims, unverified_identity};

/// How a caller was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A bearer JWT from a configured issuer.
    Jwt,
    /// Not authenticated: `server.allow_unauthenticated`.
    Unauthenticated,
    /// A signed `sts:GetCallerIdentity` (issuer `aws-iam`).
    AwsIam,
}

impl AuthMethod {
    /// The name the audit trail records (`auth_method`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::Unauthenticated => "unauthenticated",
            Self::AwsIam => "aws-iam",
        }
    }
}

/// An authenticated (or explicitly anonymous) caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Issuer name from configuration.
    pub issuer: String,
    /// Subject (`sub`).
    pub subject: String,
    /// How the caller was authenticated.
    pub auth_method: AuthMethod,
    /// Verified claims, for policy. Never logged. Shared: a caller verified before is
    /// served from the verification cache without copying them.
    pub claims: Arc<Claims>,
}

impl Principal {
    /// The caller of an unauthenticated deployment.
    pub fn anonymous() -> Self {
        Self {
            issuer: crate::config::ANONYMOUS_ISSUER.into(),
            subject: "anonymous".into(),
            auth_method: AuthMethod::Unauthenticated,
            claims: Arc::default(),
        }
    }

    /// Who the caller is for limits and role sessions: an AWS-IAM caller in an assumed
    /// role is its role's ARN (`arn:aws:iam::ACCOUNT:role/ROLE`), whatever the session
    /// name, which the caller picks freely; anyone else is its subject.
    pub fn stable_subject(&self) -> &str {
        match self.auth_method {
            AuthMethod::AwsIam => self
                .claims
                .get("role_arn")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(&self.subject),
            AuthMethod::Jwt | AuthMethod::Unauthenticated => &self.subject,
        }
    }

    /// The key of the per-caller rate limit: the issuer and [`Principal::stable_subject`],
    /// so rotating role session names does not make an AWS-IAM caller someone new.
    pub fn rate_key(&self) -> String {
        format!("{}\n{}", self.issuer, self.stable_subject())
    }

    /// The signing identity of a `share_tokens` target: one per (target, DB user), so its
    /// role session name is stable and shared by every caller.
    pub fn shared(target: &str, db_user: &str) -> Self {
        Self {
            issuer: "shared".into(),
            subject: format!("{target}/{db_user}"),
            auth_method: AuthMethod::Unauthenticated,
            claims: Arc::default(),
        }
    }
}

/// Why a caller was not authenticated; the text is the `error_description`. Every text is
/// fixed or built from a fixed set (claim names, STS error codes that are plain words):
/// none repeats what the caller sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// The header is over 16 KiB.
    #[error("the Authorization header is larger than 16 KiB")]
    TooLarge,
    /// Not a JWT.
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    /// `none`, HMAC, or an algorithm the issuer does not allow.
    #[error("the token's signing algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// `iss` names no configured issuer.
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    /// No key with the token's `kid`.
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `exp` is past (beyond leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond leeway).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `aud` names none of the issuer's audiences.
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// A required claim is missing.
    #[error("the token has no {0} claim")]
    MissingClaim(&'static str),
    /// The issuer's keys could never be fetched.
    #[error("the issuer's signing keys are unavailable")]
    KeysUnavailable,
    /// An `AWS-IAM` credential was refused; the text (fixed, never caller input) says why.
    #[error("{0}")]
    AwsIam(&'static str),
    /// STS refused the forwarded request; its error code when that is a plain word (its
    /// message is never passed on).
    #[error("STS refused the signed request ({})", .0.as_ref().map_or("no error code", |c| c.as_str()))]
    StsRefused(Option<aws_iam::sts_answer::StsErrorCode>),
    /// `AWS-IAM` credentials are not accepted by this broker.
    #[error("this broker accepts no AWS-IAM credentials (no aws.iam_server_id)")]
    AwsIamDisabled,
    /// STS could not be asked who an `AWS-IAM` caller is.
    #[error("STS is unavailable to check AWS-IAM credentials")]
    StsUnavailable,
}

/// Why caller authentication could not be set up (at start-up or on a reload).
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// An HTTP client for identity providers or STS could not be built.
    #[error(transparent)]
    HttpClient(#[from] outbound::ClientBuildError),
    /// `aws.sts_endpoint` is not a URL.
    #[error("aws.sts_endpoint is not a URL")]
    StsEndpoint(#[source] UrlParseError),
}

/// Why a URL does not parse (the `url` crate's error, through reqwest).
pub type UrlParseError = <reqwest::Url as std::str::FromStr>::Err;

impl AuthError {
    /// A fixed name for the kind of failure (audit flood control folds by it).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownIssuer => "unknown_issuer",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::KeysUnavailable => "keys_unavailable",
            Self::AwsIam(_) => "aws_iam",
            Self::StsRefused(_) => "sts_refused",
            Self::AwsIamDisabled => "aws_iam_disabled",
            Self::StsUnavailable => "sts_unavailable",
        }
    }

    /// Whether the caller's credential is at fault (not the broker's dependencies): such
    /// failures are charged to the client address's budget.
    pub fn is_callers_fault(&self) -> bool {
        !matches!(self, Self::KeysUnavailable | Self::StsUnavailable)
    }
}

/// Verifies callers against the configured issuers.
#[derive(Debug)]
pub struct Authenticator {
    issuers: Vec<Arc<IssuerKeys>>,
    aws_iam: Option<Arc<aws_iam::AwsIamVerifier>>,
    clock: SharedClock,
    verified: moka::sync::Cache<[u8; 32], Verified>,
    console: Arc<oidc::ConsoleIdp>,
}

/// A JWT already verified: reused for identical tokens (clients send the same JWT again
/// and again), which skips the signature check, the costliest step of a cached issuance.
#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    /// The issuer's key set that verified it: a rotation invalidates the entry.
    keys: Arc<jwks::KeySet>,
    issuer: Arc<IssuerKeys>,
    /// Until the token's `exp` (without leeway) or a minute after verification.
    until: SystemTime,
}

impl Verified {
    /// Before its end, and verified by the issuer's current key set.
    fn still_valid(&self, now: SystemTime) -> bool {
        now < self.until && Arc::ptr_eq(&self.keys, &self.issuer.keys())
    }
}

/// How long a verification is reused at most (also bounds how long a removed issuer key
/// keeps working for tokens it signed, if the JWKS is not refetched meanwhile).
const VERIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl Authenticator {
    /// One key cache per `[[issuers]]` entry; nothing is fetched yet.
    pub fn new(config: &Config, clock: SharedClock) -> Result<Self, AuthSetupError> {
        Self::reusing(config, clock, None)
    }

    /// Like [`Authenticator::new`], keeping the key caches of `previous` for issuers whose
    /// configuration did not change, so a reload does not refetch every JWKS.
    pub fn reusing(
        config: &Config,
        clock: SharedClock,
        previous: Option<&Authenticator>,
    ) -> Result<Self, AuthSetupError> {
        let http = jwks::http_client()?;
        let issuers = config
            .issuers
            .iter()
            .map(|i| {
                previous
                    .and_then(|p| p.issuers.iter().find(|old| old.config == *i))
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(IssuerKeys::new(i.clone(), http.clone(), clock.clone()))
                    })
            })
            .collect();
        let sts_endpoint = config.aws.sts_endpoint.as_deref();
        let aws_iam = match &config.aws.iam_server_id {
            None => None,
            Some(id) => match previous.and_then(|p| p.aws_iam.as_ref()) {
                Some(v) if v.matches(id, sts_endpoint) => Some(Arc::clone(v)),
                _ => Some(Arc::new(aws_iam::AwsIamVerifier::new(
                    id,
                    sts_endpoint,
                    clock.clone(),
                )?)),
            },
        };
        let console = match previous {
            Some(p) => Arc::clone(&p.console),
            None => Arc::new(oidc::ConsoleIdp::new(clock.clone())?),
        };
        Ok(Self {
            issuers,
            aws_iam,
            console,
            clock,
            verified: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(VERIFIED_TTL)
                .build(),
        })
    }

    /// Authenticates an `AWS-IAM` credential (a signed GetCallerIdentity).
    pub async fn authenticate_aws_iam(&self, encoded: &str) -> Result<Principal, AuthError> {
        match &self.aws_iam {
            Some(v) => v.authenticate(encoded).await,
            None => Err(AuthError::AwsIamDisabled),
        }
    }

    /// The audit console's identity provider client and discovery cache.
    pub fn console(&self) -> &oidc::ConsoleIdp {
        &self.console
    }

    /// The issuers' key caches.
    pub fn issuers(&self) -> &[Arc<IssuerKeys>] {
        &self.issuers
    }

    /// The caller of a bearer token verified before and still valid, without any await:
    /// the common case, which then never builds the (large) future of
    /// [`Authenticator::authenticate`].
    pub fn already_verified(&self, token: &str) -> Option<Principal> {
        let v = self.verified.get(&Self::verified_key(token))?;
        v.still_valid(self.clock.now()).then_some(v.principal)
    }

    fn verified_key(token: &str) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    /// Authenticates a bearer token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let now: SystemTime = self.clock.now();
        let key = Self::verified_key(token);
        if let Some(v) = self.verified.get(&key) {
            if v.still_valid(now) {
                return Ok(v.principal);
            }
            self.verified.invalidate(&key);
        }
        let (issuer, claims) = jwt::verify(&self.issuers, token, now).await?;
        let keys = issuer.keys();
        let subject = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_owned();
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .map(|e| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(e));
        let principal = Principal {
            issuer: issuer.config.name.clone(),
            subject,
            auth_method: AuthMethod::Jwt,
            claims: Arc::new(claims),
        };
        if let Some(exp) = exp {
            self.verified.insert(
                key,
                Verified {
                    principal: principal.clone(),
                    keys,
                    issuer,
                    until: exp.min(now + VERIFIED_TTL),
                },
            );
        }
        Ok(principal)
    }

    /// Loads the keys of every issuer that has none yet, then refreshes each on its own
    /// period in the background. A loop ends once its issuer is dropped by a reload.
    pub fn spawn_refresh(&self) {
        for issuer in &self.issuers {
            if issuer.status().0 || issuer.status().1.is_some() {
                continue; // kept from the previous generation: its loop is running
            }
            let weak = Arc::downgrade(issuer);
            tokio::spawn(async move {
                loop {
                    let Some(issuer) = weak.upgrade() else { break };
                    let _ = issuer.refresh().await;
                    let period = issuer.config.jwks_refresh;
                    drop(issuer);
                    tokio::time::sleep(period).await;
                }
            });
        }
    }
}
