//! Issuing tokens: the domain operation behind `POST /v1/tokens`.
//!
//! [`Broker`] owns credentials, role sessions, the token cache, rate limits and the audit
//! trail; the HTTP layer reaches them only through its methods ([`Broker::issue_recorded`],
//! [`Broker::record_denied`], readiness, gauges, the per-address budget) and maps an
//! [`IssueError`] by its [`IssueErrorKind`] alone.

mod error;
mod reads;
mod record;
mod status;

pub use error::{IssueError, IssueErrorKind};
pub use reads::{ReadCount, TrailRead};
pub use record::RequestMeta;
pub use status::{CacheStats, Gauges, Readiness};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use secrecy::SecretString;
use uuid::Uuid;

use crate::access::notify::Notifier;
use crate::access::{AccessRequests, Grant as AccessGrant};
use crate::audit::AuditLog;
use crate::audit::coalesce::Coalescer;
use crate::auth::Principal;
use crate::aws::session::{scoping_policy, session_name};
use crate::aws::{BrokerCredentials, RoleSessions, SessionRequest};
use crate::clock::SharedClock;
use crate::config::{Config, Target};
use crate::domain::{DbUser, TargetName};
use crate::metrics::{label, names};
use crate::policy;
use crate::ratelimit::client::ClientBudget;
use crate::ratelimit::{Budget, Pacer};
pub use crate::ratelimit::{LimitKind, Throttled};
use crate::token::{CacheKey, CacheOutcome, MintGate, TokenCache};

/// A request for a token, parsed.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Target asked for.
    pub target: TargetName,
    /// DB user asked for; `None` when the caller may use exactly one.
    pub db_user: Option<DbUser>,
}

/// An issued token with what the caller needs to connect.
#[derive(Debug)]
pub struct Issued {
    /// The token; secret.
    pub token: SecretString,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
    /// When the token stops working.
    pub expires_at: SystemTime,
    /// The target.
    pub target: Arc<Target>,
    /// The DB user the token is for.
    pub db_user: DbUser,
    /// Whether the cache served it.
    pub cache: CacheOutcome,
    /// Identifier of this issuance (UUIDv7).
    pub issuance_id: Uuid,
    /// Role assumed for signing, if any.
    pub role_arn: Option<String>,
    /// Its session name.
    pub session_name: Option<String>,
    /// The access request the token was issued under, for a request or break-glass grant.
    pub access_request_id: Option<String>,
}

/// A refused authentication on `POST /v1/tokens`, as the audit trail records it (see
/// [`Broker::record_denied`]).
#[derive(Debug, Clone)]
pub struct Denial {
    /// A fixed name for the kind of failure (flood control folds by it).
    pub kind: &'static str,
    /// Why, in words (fixed texts, never caller input).
    pub reason: String,
    /// Who the credential claims to be, unverified, when it says.
    pub unverified: Option<Claimed>,
}

/// Who a refused credential claims to be: never trusted, so recorded only in an event's
/// reason (cleaned and shortened), never in its `issuer` and `subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// A bearer token's `iss` and `sub`.
    Token {
        /// `iss`.
        issuer: String,
        /// `sub`.
        subject: String,
    },
    /// The access key id an `AWS-IAM` credential's signature names (shaped like one:
    /// [`crate::auth::unverified_access_key_id`]).
    AwsAccessKeyId(String),
}

/// The token broker: credentials, role sessions, the token cache, rate limits and the
/// audit trail. The HTTP layer uses it through its methods only.
#[derive(Debug)]
pub struct Broker {
    /// Base AWS credentials.
    credentials: Arc<BrokerCredentials>,
    /// Role sessions for targets with `role_arn`.
    sessions: RoleSessions,
    /// The audit trail, when `[audit]` is configured.
    audit: Option<AuditLog>,
    /// Folds floods of identical non-issued events.
    coalescer: Option<Coalescer>,
    /// Issued-token cache.
    cache: TokenCache,
    /// Rate limits.
    pacer: Arc<Pacer>,
    /// Time source.
    clock: SharedClock,
    /// Budget of unauthenticated work per client address, with the settings it was
    /// built from (rebuilt when asked with other settings; a reload keeps the running
    /// `[rate_limit]`, so today they change only with a restart).
    client_budget: std::sync::Mutex<((u32, u32), Arc<ClientBudget>)>,
    /// Access requests, on the audit store (none without an audit trail).
    access: Option<AccessRequests>,
}

impl Broker {
    /// Builds a broker with `config`'s token settings.
    pub fn new(
        config: &Config,
        credentials: BrokerCredentials,
        audit: Option<AuditLog>,
        clock: SharedClock,
    ) -> Result<Self, crate::ratelimit::RedisError> {
        let t = &config.tokens;
        let cache = TokenCache::new(
            clock.clone(),
            t.cache_max_entries,
            t.min_remaining,
            t.refresh_ahead,
        );
        let credentials = Arc::new(credentials);
        let sessions = RoleSessions::new(
            Arc::clone(&credentials),
            config.aws.clone(),
            clock.clone(),
            t.min_remaining,
        );
        let coalescer = audit
            .clone()
            .map(|log| Coalescer::start(log, clock.clone()));
        let pacer = Arc::new(Pacer::new(&config.rate_limit, clock.clone())?);
        let rl = &config.rate_limit;
        let settings = (rl.per_client_ip_per_second, rl.per_client_ip_burst);
        let client_budget = std::sync::Mutex::new((
            settings,
            Arc::new(ClientBudget::new(settings.0, settings.1, clock.clone())),
        ));
        let notifier = config.notifications.as_ref().and_then(|n| {
            Notifier::start(n)
                .map_err(|e| {
                    tracing::error!(error = %crate::report::Report(&e), "notifications are off: the webhook client cannot be built");
                })
                .ok()
        });
        let access = audit
            .clone()
            .map(|log| AccessRequests::new(log, clock.clone(), notifier));
        Ok(Self {
            credentials,
            sessions,
            access,
            audit,
            coalescer,
            cache,
            pacer,
            clock,
            client_budget,
        })
    }

    /// Access requests, when `[audit]` is configured.
    pub fn access(&self) -> Option<&AccessRequests> {
        self.access.as_ref()
    }

    /// The audit trail, when `[audit]` is configured.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// The broker's clock's time.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Before authenticating a caller from `ip`: refuses when the address has spent its
    /// budget of failed authentications (`rate_limit.per_client_ip_*`).
    pub fn check_client(&self, config: &Config, ip: IpAddr) -> Result<(), Throttled> {
        self.client_budget(config).check(ip)
    }

    /// Charges a failed authentication (the caller's fault) to `ip`'s budget.
    pub fn charge_failed_authentication(&self, config: &Config, ip: IpAddr) {
        let _ = self.client_budget(config).charge_failure(ip);
    }

    /// Spends a slot of `ip`'s budget on unauthenticated work (console sign-in helpers).
    pub fn spend_client(&self, config: &Config, ip: IpAddr) -> Result<(), Throttled> {
        self.client_budget(config).spend(ip)
    }

    /// The budget of unauthenticated work per client address for `config`.
    fn client_budget(&self, config: &Config) -> Arc<ClientBudget> {
        let rl = &config.rate_limit;
        let settings = (rl.per_client_ip_per_second, rl.per_client_ip_burst);
        let mut b = self.client_budget.lock().unwrap_or_else(|e| e.into_inner());
        if b.0 != settings {
            *b = (
                settings,
                Arc::new(ClientBudget::new(
                    settings.0,
                    settings.1,
                    self.clock.clone(),
                )),
            );
        }
        Arc::clone(&b.1)
    }

    /// Issues a token to `principal` calling from `client_ip`, if `config`'s policy
    /// allows (not audited: see [`Broker::issue_recorded`]).
    pub async fn issue(
        &self,
        config: &Config,
        principal: &Principal,
        req: TokenRequest,
        client_ip: Option<IpAddr>,
    ) -> Result<Issued, IssueError> {
        // Every request counts against its caller, cache hits included.
        let caller = principal.rate_key();
        if let Err(t) = self
            .pacer
            .admit_principal(&caller, config.rate_limit.per_principal_per_second)
        {
            // A label takes only configured names: the requested one is the caller's text.
            let target = config
                .targets
                .get(&req.target)
                .map_or("unknown", |t| t.name.as_str())
                .to_owned();
            metrics::counter!(names::THROTTLED.name, label::TARGET => target, label::LIMIT => LimitKind::Principal.as_str()).increment(1);
            return Err(t.into());
        }
        let target = config
            .targets
            .get(&req.target)
            .ok_or(IssueError::Forbidden)?;
        let at = policy::RequestContext {
            client_ip,
            now: self.clock.now(),
        };
        let decision = policy::decide(config, principal, target, Some(at));
        let mut via_request = None;
        let db_user = match (req.db_user, decision.users.as_slice()) {
            (Some(u), allowed) if allowed.contains(&u) => u,
            (None, [only]) => only.clone(),
            (None, [_, _, ..]) => return Err(IssueError::DbUserRequired),
            (asked, _) => {
                // A standing grant that would have given it refused for a reason the
                // caller may know; otherwise an approved access request may cover it.
                match decision.refusal_for(target, asked.as_ref()) {
                    Some(policy::Refusal::Condition(c, _)) => {
                        return Err(IssueError::Condition(c));
                    }
                    Some(policy::Refusal::Template(t)) => return Err(IssueError::Template(t)),
                    None => {}
                }
                let grant = self
                    .request_grant(config, principal, target, asked.as_ref(), client_ip)
                    .await?;
                let user = grant.db_user.clone();
                via_request = Some(grant);
                user
            }
        };
        let mut session = None;
        let credentials = match &target.role_arn {
            None => self.credentials.get().await?,
            Some(role) => {
                // share_tokens: one session per (target, DB user) instead of per caller,
                // so every caller of that pair gets the same cached token.
                let shared;
                let signer = if target.share_tokens {
                    shared = Principal::shared(target.name.as_str(), db_user.as_str());
                    &shared
                } else {
                    principal
                };
                let request = SessionRequest {
                    role_arn: role.as_str().to_owned(),
                    session_name: session_name(signer),
                    source_identity: (config.aws.source_identity && !target.share_tokens)
                        .then(|| session_name(principal)),
                    external_id: target.external_id.clone(),
                    policy: scoping_policy(target, role, &db_user),
                    region: target.region.clone(),
                };
                let creds = self.sessions.credentials(&request).await?;
                session = Some((role.as_str().to_owned(), request.session_name));
                creds
            }
        };
        let key = CacheKey {
            identity: Arc::from(credentials.access_key_id()),
            kind: target.token_kind(),
            host: target.signed_host().clone(),
            port: target.port,
            region: target.region.clone(),
            db_user: db_user.clone(),
        };
        let gate = MintGate {
            pacer: Arc::clone(&self.pacer),
            target: target.name.as_str().to_owned(),
            kind: target.kind.kind().as_str(),
            budget: Budget {
                per_second: target.max_connections_per_second,
                burst: target.burst,
            },
            max_wait: config.rate_limit.max_wait,
        };
        // A token never outlives the access request it is issued under: a cached one is
        // served only when any token would end before the request does.
        let (token, cache) = match &via_request {
            Some(g) if g.expires_at < self.clock.now() + target.token_kind().lifetime() => {
                let t = self
                    .cache
                    .mint_until(&key, &credentials, &gate, g.expires_at)
                    .await?;
                (t, CacheOutcome::Miss)
            }
            _ => self.cache.get(key, &credentials, &gate).await?,
        };
        metrics::counter!(names::TOKENS.name, label::TARGET => target.name.as_str().to_owned(), label::KIND => target.kind.kind().as_str(), label::CACHE => cache.as_str()).increment(1);
        let issuance_id = uuid_v7(self.clock.now());
        let sha = token.token_sha256();
        // Plain strings rather than `%` (Display) fields: the JSON formatter writes those
        // directly instead of formatting each into a temporary string first.
        let mut id = uuid::Uuid::encode_buffer();
        tracing::info!(
            issuance_id = &*issuance_id.hyphenated().encode_lower(&mut id),
            target = target.name.as_str(),
            db_user = db_user.as_str(),
            subject = principal.subject.as_str(),
            cache = cache.as_str(),
            token_sha256 = sha.as_str(),
            "token issued"
        );
        Ok(Issued {
            token: token.token(),
            token_sha256: sha,
            expires_at: token.expires_at,
            target: Arc::clone(target),
            db_user,
            cache,
            issuance_id,
            role_arn: session.as_ref().map(|(r, _)| r.clone()),
            session_name: session.map(|(_, s)| s),
            access_request_id: via_request.map(|g| g.request_id),
        })
    }

    /// For a target and DB user no standing grant gives `principal`: the approved access
    /// request that does, or why not (forbidden when no request or break-glass grant
    /// covers it; "an access request is required" when one does).
    async fn request_grant(
        &self,
        config: &Config,
        principal: &Principal,
        target: &Target,
        asked: Option<&DbUser>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<AccessGrant, IssueError> {
        let requestable = policy::requests::requestable_db_users(config, principal, target);
        let candidates: Vec<&DbUser> = requestable
            .into_iter()
            .filter(|u| asked.is_none_or(|a| a == *u))
            .collect();
        let (Some(access), Some(first)) = (&self.access, candidates.first()) else {
            return Err(IssueError::Forbidden);
        };
        match access
            .active_grant(config, principal, target, asked, client_ip)
            .await?
        {
            Some(g) if g.expires_at > self.clock.now() + std::time::Duration::from_secs(1) => Ok(g),
            _ => Err(IssueError::AccessRequestRequired {
                target: target.name.as_str().to_owned(),
                db_user: match (asked, candidates.as_slice()) {
                    (Some(a), _) => Some(a.as_str().to_owned()),
                    (None, [only]) => Some(only.as_str().to_owned()),
                    (None, _) => None,
                }
                .or_else(|| (candidates.len() == 1).then(|| first.as_str().to_owned())),
            }),
        }
    }
}

/// A UUIDv7 whose timestamp comes from `now`; later calls in this process give greater
/// ids, so ids order events that share a millisecond (see [`crate::ids::monotonic`]).
pub fn uuid_v7(now: SystemTime) -> Uuid {
    crate::ids::monotonic(now)
}
