//! The broker's base AWS credentials, resolved from a provider chain and cached.
//!
//! Credentials are fetched on first use and again shortly before they expire. A failed
//! fetch is retried at most once a second, so the broker recovers by itself when
//! credentials appear (an IRSA token mounted late, an ECS agent that starts late) without
//! hammering the provider while none exist.

use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use crate::clock::SharedClock;
use crate::token::TOKEN_LIFETIME;

/// Credentials lasting less than a token lifetime plus this are refreshed ahead.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Credentials without an expiry (static keys, profiles) are re-resolved this often.
const STATIC_RECHECK: Duration = Duration::from_secs(300);
/// After a failed fetch, wait this long before the next attempt.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// While still-valid credentials are being refreshed ahead, try at most this often.
const RETRY_WHILE_VALID: Duration = Duration::from_secs(30);

/// No usable AWS credentials could be found, and why, in fixed words: the provider's own
/// error (which a `credential_process` may fill with anything) is logged where it happens,
/// never carried further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsUnavailable {
    /// No provider of the chain had credentials.
    #[error(
        "no AWS credentials: no provider in the chain (environment, profile, web identity, ECS, IMDS) found credentials"
    )]
    NotFound,
    /// The provider did not answer in time.
    #[error("no AWS credentials: the credential provider timed out")]
    TimedOut,
    /// The AWS configuration is invalid.
    #[error("no AWS credentials: the AWS credential configuration is invalid")]
    InvalidConfiguration,
    /// The provider returned an error.
    #[error("no AWS credentials: the credential provider returned an error")]
    ProviderError,
    /// The provider failed otherwise.
    #[error("no AWS credentials: the credential provider failed")]
    Failed,
    /// The provider returned credentials that have already expired.
    #[error(
        "no AWS credentials: the credential provider returned credentials that have already expired"
    )]
    AlreadyExpired,
    /// The cached credentials have expired and no new ones were fetched yet.
    #[error("no AWS credentials: credentials have expired")]
    Expired,
}

#[derive(Debug, Default)]
struct State {
    current: Option<(Credentials, SystemTime)>,
    last_attempt: Option<SystemTime>,
    last_error: Option<CredentialsUnavailable>,
}

/// The broker's base credentials: a provider chain plus a cache.
#[derive(Debug)]
pub struct BrokerCredentials {
    provider: SharedCredentialsProvider,
    clock: SharedClock,
    state: RwLock<State>,
    refresh: tokio::sync::Mutex<()>,
}

impl BrokerCredentials {
    /// Wraps a provider.
    pub fn new(provider: SharedCredentialsProvider, clock: SharedClock) -> Self {
        Self {
            provider,
            clock,
            state: RwLock::new(State::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Current credentials, fetching them when none are cached or they are about to expire.
    pub async fn get(&self) -> Result<Credentials, CredentialsUnavailable> {
        let now = self.clock.now();
        if let Some(c) = self.fresh(now) {
            return Ok(c);
        }
        let _guard = self.refresh.lock().await;
        let now = self.clock.now();
        if let Some(c) = self.fresh(now) {
            return Ok(c);
        }
        let (valid, retry_due) = {
            let s = self.read();
            let valid = s
                .current
                .as_ref()
                .map(|(c, _)| c.clone())
                .filter(|c| still_valid(c, now));
            let wait = if valid.is_some() {
                RETRY_WHILE_VALID
            } else {
                RETRY_AFTER_FAILURE
            };
            let due = s
                .last_attempt
                .is_none_or(|t| now.duration_since(t).unwrap_or_default() >= wait);
            (valid, due)
        };
        if !retry_due {
            return valid.ok_or_else(|| self.last_error());
        }
        let result = self.provider.provide_credentials().await;
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        s.last_attempt = Some(now);
        match result {
            Ok(c) if still_valid(&c, now) => {
                if s.current.is_none() || s.last_error.is_some() {
                    tracing::info!("AWS credentials are available");
                }
                s.current = Some((c.clone(), now));
                s.last_error = None;
                Ok(c)
            }
            Ok(_) => {
                s.last_error = Some(CredentialsUnavailable::AlreadyExpired);
                valid.ok_or(CredentialsUnavailable::AlreadyExpired)
            }
            Err(e) => {
                let why = describe(&e);
                let detail = aws_smithy_types::error::display::DisplayErrorContext(&e);
                if valid.is_none() {
                    tracing::warn!(error = %why, %detail, "no AWS credentials available");
                } else {
                    tracing::warn!(error = %why, %detail, "refreshing AWS credentials failed; still using the current ones");
                }
                s.last_error = Some(why);
                valid.ok_or(why)
            }
        }
    }

    /// Whether credentials that are still valid are cached (no fetch; for metrics).
    pub fn available(&self) -> bool {
        let now = self.clock.now();
        self.read()
            .current
            .as_ref()
            .is_some_and(|(c, _)| still_valid(c, now))
    }

    fn fresh(&self, now: SystemTime) -> Option<Credentials> {
        let s = self.read();
        let (c, fetched) = s.current.as_ref()?;
        let fresh = match c.expiry() {
            Some(exp) => exp
                .duration_since(now)
                .is_ok_and(|left| left > TOKEN_LIFETIME + REFRESH_MARGIN),
            None => now.duration_since(*fetched).unwrap_or_default() < STATIC_RECHECK,
        };
        fresh.then(|| c.clone())
    }

    fn last_error(&self) -> CredentialsUnavailable {
        self.read()
            .last_error
            .unwrap_or(CredentialsUnavailable::Expired)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn still_valid(c: &Credentials, now: SystemTime) -> bool {
    c.expiry().is_none_or(|exp| exp > now)
}

/// Why the provider failed, in fixed words (its own message may quote anything).
pub fn describe(
    e: &aws_credential_types::provider::error::CredentialsError,
) -> CredentialsUnavailable {
    use aws_credential_types::provider::error::CredentialsError as E;
    match e {
        E::CredentialsNotLoaded(_) => CredentialsUnavailable::NotFound,
        E::ProviderTimedOut(_) => CredentialsUnavailable::TimedOut,
        E::InvalidConfiguration(_) => CredentialsUnavailable::InvalidConfiguration,
        E::ProviderError(_) => CredentialsUnavailable::ProviderError,
        _ => CredentialsUnavailable::Failed,
    }
}

/// The AWS SDK's default chain: environment, profile, web identity (IRSA), ECS, IMDS.
/// `region` (from `aws.region`) is used by the providers that call STS.
pub async fn default_chain(region: Option<&crate::domain::Region>) -> SharedCredentialsProvider {
    let mut builder = DefaultCredentialsChain::builder();
    if let Some(r) = region {
        builder = builder.region(aws_config::Region::new(r.as_str().to_owned()));
    }
    SharedCredentialsProvider::new(builder.build().await)
}

/// The default chain in `region`, for clients signing as themselves (`--aws-iam`).
pub async fn default_chain_in(region: aws_config::Region) -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(
        DefaultCredentialsChain::builder()
            .region(region)
            .build()
            .await,
    )
}

/// The default chain without IMDS, for `serve --dev` on a laptop: it never probes the
/// instance metadata address.
pub fn dev_chain() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(
        CredentialsProviderChain::first_try(
            "Environment",
            EnvironmentVariableCredentialsProvider::new(),
        )
        .or_else("Profile", ProfileFileCredentialsProvider::builder().build())
        .or_else(
            "WebIdentityToken",
            WebIdentityTokenCredentialsProvider::builder().build(),
        )
        .or_else("EcsContainer", EcsCredentialsProvider::builder().build()),
    )
}
