//! Role sessions for callers: sts:AssumeRole with the broker's base credentials, cached
//! until shortly before they expire, one call per key however many requests miss at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{BehaviorVersion, Region as SdkRegion};
use aws_sdk_sts::error::SdkError;
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};

use super::credentials::BrokerCredentials;
use crate::clock::SharedClock;
use crate::config::AwsConfig;
use crate::domain::Region;
use crate::metrics::{label, names};

/// Assumed credentials are reused while they have more than `min_remaining` plus this
/// left: tokens signed with them are capped by their expiry, never below the floor.
const REUSE_MARGIN: Duration = Duration::from_secs(60);

/// One AssumeRole call's parameters; also the cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionRequest {
    /// Role to assume.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `SourceIdentity`, when enabled.
    pub source_identity: Option<String>,
    /// `ExternalId`, when configured.
    pub external_id: Option<String>,
    /// Inline session policy scoping the session (`session::scoping_policy`).
    pub policy: Option<String>,
    /// Region whose STS endpoint is called.
    pub region: Region,
}

/// Why no role session could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StsError {
    /// STS answered with an error (AccessDenied, a malformed role, ...): 502.
    #[error("STS refused to assume {role}: {code}")]
    Refused {
        /// The role.
        role: String,
        /// STS's error code.
        code: String,
    },
    /// STS could not be reached or timed out: 503.
    #[error("STS is unreachable: {0}")]
    Unavailable(StsUnavailable),
}

/// Why STS gave no session, in fixed words (the SDK's error is not carried: it is summed
/// up here, at the one place it is classified).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsUnavailable {
    /// STS answered that it is busy or failing: its error code (`Throttling`,
    /// `InternalFailure...`, `ServiceUnavailable`).
    #[error("STS answered {0}")]
    Busy(String),
    /// No answer in time.
    #[error("timed out")]
    TimedOut,
    /// No connection could be made.
    #[error("connection failed")]
    ConnectionFailed,
    /// The answer could not be read.
    #[error("unreadable response")]
    UnreadableResponse,
    /// Any other failure of the request.
    #[error("request failed")]
    RequestFailed,
    /// STS answered without credentials.
    #[error("STS returned no credentials")]
    NoCredentials,
    /// The session cache kept no session (a bug).
    #[error("no session was stored")]
    NoSession,
}

/// The broker's base credentials as an SDK credentials provider.
#[derive(Debug, Clone)]
struct Base(Arc<BrokerCredentials>);

impl ProvideCredentials for Base {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.0
                .get()
                .await
                .map_err(|e| CredentialsError::not_loaded(e.to_string()))
        })
    }
}

/// Assumes roles and caches the sessions.
#[derive(Debug)]
pub struct RoleSessions {
    base: Arc<BrokerCredentials>,
    settings: AwsConfig,
    clock: SharedClock,
    clients: Mutex<HashMap<Region, aws_sdk_sts::Client>>,
    cache: Cache<SessionRequest, Credentials>,
    min_remaining: Duration,
}

impl RoleSessions {
    /// Sessions signed for with `base`; tokens need `min_remaining` of validity.
    pub fn new(
        base: Arc<BrokerCredentials>,
        settings: AwsConfig,
        clock: SharedClock,
        min_remaining: Duration,
    ) -> Self {
        Self {
            base,
            settings,
            clock,
            clients: Mutex::new(HashMap::new()),
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(43_200))
                .build(),
            min_remaining,
        }
    }

    /// Credentials of a session for `req`: cached while they have more than
    /// `min_remaining` plus a minute left; otherwise assumed once for all concurrent callers. When STS is
    /// unreachable, cached credentials that still cover `min_remaining` keep serving.
    pub async fn credentials(&self, req: &SessionRequest) -> Result<Credentials, StsError> {
        let now = self.clock.now();
        let left = |c: &Credentials| {
            c.expiry()
                .map_or(Duration::MAX, |e| e.duration_since(now).unwrap_or_default())
        };
        if let Some(c) = self.cache.get(req).await
            && left(&c) > self.min_remaining + REUSE_MARGIN
        {
            return Ok(c);
        }
        let stale = self.cache.get(req).await;
        let result = self
            .cache
            .entry(req.clone())
            .and_try_compute_with(|existing| async {
                if existing.is_some_and(|e| left(e.value()) > self.min_remaining + REUSE_MARGIN) {
                    return Ok(Op::Nop);
                }
                self.assume(req).await.map(Op::Put)
            })
            .await;
        match result {
            Ok(
                CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e),
            ) => Ok(e.into_value()),
            Ok(CompResult::StillNone(_) | CompResult::Removed(_)) => {
                Err(StsError::Unavailable(StsUnavailable::NoSession))
            }
            Err(StsError::Unavailable(why)) => match stale {
                Some(c) if left(&c) >= self.min_remaining => {
                    tracing::warn!(role = %req.role_arn, error = %why, "STS unreachable; using the cached session");
                    Ok(c)
                }
                _ => Err(StsError::Unavailable(why)),
            },
            Err(e) => Err(e),
        }
    }

    fn client(&self, region: &Region) -> aws_sdk_sts::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.clone())
            .or_insert_with(|| {
                let mut b = aws_sdk_sts::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(SdkRegion::new(region.as_str().to_owned()))
                    .credentials_provider(Base(Arc::clone(&self.base)))
                    .retry_config(
                        RetryConfig::standard().with_max_attempts(self.settings.sts_max_attempts),
                    )
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(self.settings.sts_connect_timeout)
                            .operation_timeout(self.settings.sts_timeout)
                            .build(),
                    );
                if let Some(ep) = &self.settings.sts_endpoint {
                    b = b.endpoint_url(ep);
                }
                aws_sdk_sts::Client::from_conf(b.build())
            })
            .clone()
    }

    async fn assume(&self, req: &SessionRequest) -> Result<Credentials, StsError> {
        let started = std::time::Instant::now();
        let duration = i32::try_from(self.settings.session_duration.as_secs()).unwrap_or(3600);
        let out = self
            .client(&req.region)
            .assume_role()
            .role_arn(&req.role_arn)
            .role_session_name(&req.session_name)
            .duration_seconds(duration)
            .set_source_identity(req.source_identity.clone())
            .set_external_id(req.external_id.clone())
            .set_policy(req.policy.clone())
            .send()
            .await
            .map_err(|e| classify(&req.role_arn, &e));
        metrics::histogram!(names::STS_DURATION.name).record(started.elapsed().as_secs_f64());
        let outcome = match &out {
            Ok(_) => "ok",
            Err(StsError::Refused { .. }) => "refused",
            Err(StsError::Unavailable(_)) => "unavailable",
        };
        metrics::counter!(names::STS_CALLS.name, label::OUTCOME => outcome).increment(1);
        let out = out?;
        let c = out
            .credentials
            .ok_or(StsError::Unavailable(StsUnavailable::NoCredentials))?;
        let expiry = std::time::SystemTime::try_from(c.expiration).ok();
        tracing::info!(role = %req.role_arn, session = %req.session_name, elapsed_ms = started.elapsed().as_millis() as u64, "assumed role");
        Ok(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            expiry,
            "sts-assume-role",
        ))
    }
}

fn classify<E, R>(role: &str, e: &SdkError<E, R>) -> StsError
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("UnknownError").to_owned();
            if code == "Throttling"
                || code.starts_with("InternalFailure")
                || code == "ServiceUnavailable"
            {
                StsError::Unavailable(StsUnavailable::Busy(code))
            } else {
                StsError::Refused {
                    role: role.to_owned(),
                    code,
                }
            }
        }
        SdkError::TimeoutError(_) => StsError::Unavailable(StsUnavailable::TimedOut),
        SdkError::DispatchFailure(_) => StsError::Unavailable(StsUnavailable::ConnectionFailed),
        SdkError::ResponseError(_) => StsError::Unavailable(StsUnavailable::UnreadableResponse),
        _ => StsError::Unavailable(StsUnavailable::RequestFailed),
    }
}
