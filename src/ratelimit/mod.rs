//! Pacing (`docs/rate-limits.md`: `[rate_limit]` and the targets' budgets).
//!
//! - **Per target**, on new tokens only: every signing (cache miss or refresh-ahead) takes a
//!   slot of the target's GCRA budget (`max_connections_per_second`, `burst`); cache hits
//!   cost nothing, as reusing a token costs RDS nothing. With `rate_limit.redis_url` the
//!   budget is shared by every replica through Redis; while Redis is unreachable each
//!   replica falls back to a local budget of the target's rate divided by
//!   `expected_replicas`, and goes back to Redis when it answers again.
//! - **Per principal**, on every `POST /v1/tokens` request (hits included):
//!   `per_principal_per_second`, with one second's worth as burst, in this process.
//! - **Per client address**, on unauthenticated work (failed authentications, console
//!   sign-in requests): see [`client`].

pub mod client;
mod redis;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

pub use self::redis::RedisError;
use self::redis::RedisGcra;
use crate::clock::SharedClock;
use crate::config::RateLimitConfig;
use crate::metrics::{label, names};

/// Which budget refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The target's budget of new tokens.
    Target,
    /// The caller's request rate.
    Principal,
    /// The client address's budget of unauthenticated work.
    Client,
}

impl LimitKind {
    /// `target` or `principal`, as in problem bodies, audit reasons and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Target => "target",
            Self::Principal => "principal",
            Self::Client => "client",
        }
    }
}

/// A refusal: which limit, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} rate limit reached; retry in {} s", kind.as_str(), retry_after_secs(*retry_after))]
pub struct Throttled {
    /// The limit.
    pub kind: LimitKind,
    /// Until a slot frees up.
    pub retry_after: Duration,
}

impl Throttled {
    /// Whole seconds until a retry can succeed, rounded up, at least 1 (`Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.retry_after)
    }
}

/// Whole seconds, rounded up, at least 1 (for `Retry-After`).
pub fn retry_after_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// The broker's clock as governor's: time since the Unix epoch (a manual clock in tests).
#[derive(Clone)]
pub(crate) struct Ticks(SharedClock);

impl GovernorClock for Ticks {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.0
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, Ticks, NoOpMiddleware<Duration>>;
type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, Ticks, NoOpMiddleware<Duration>>;

fn quota(per_second: u32, burst: u32) -> Quota {
    let per_second = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per_second).allow_burst(burst)
}

/// A target's budget settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// New tokens per second.
    pub per_second: u32,
    /// How many may come at once.
    pub burst: u32,
}

struct LocalBudget {
    budget: Budget,
    limiter: Arc<Direct>,
}

/// Counters for the metrics endpoint and tests.
#[derive(Debug, Default)]
pub struct PacerStats {
    /// Slots granted by Redis.
    pub redis_granted: AtomicU64,
    /// Decisions taken locally because Redis did not answer.
    pub fallback_decisions: AtomicU64,
}

/// All the limits of one broker process.
pub struct Pacer {
    clock: SharedClock,
    targets: Mutex<HashMap<(String, bool), LocalBudget>>,
    principals: Mutex<(u32, Arc<Keyed>)>,
    redis: Option<Arc<RedisGcra>>,
    expected_replicas: u32,
    redis_down_until: Mutex<Option<SystemTime>>,
    in_fallback: AtomicBool,
    /// Counters.
    pub stats: PacerStats,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

/// How long a replica decides alone after Redis failed, before asking it again.
const REDIS_RETRY: Duration = Duration::from_secs(1);

impl Pacer {
    /// Limits as configured; Redis, if configured, is connected on first use.
    pub fn new(config: &RateLimitConfig, clock: SharedClock) -> Result<Self, RedisError> {
        let redis = config
            .redis_url
            .as_deref()
            .map(|url| RedisGcra::new(url, &config.redis_key_prefix))
            .transpose()?;
        let per = config.per_principal_per_second;
        let principals = Arc::new(RateLimiter::dashmap_with_clock(
            quota(per, per),
            Ticks(clock.clone()),
        ));
        Ok(Self {
            clock,
            targets: Mutex::new(HashMap::new()),
            principals: Mutex::new((per, principals)),
            redis,
            expected_replicas: config.expected_replicas.max(1),
            redis_down_until: Mutex::new(None),
            in_fallback: AtomicBool::new(false),
            stats: PacerStats::default(),
        })
    }

    /// Whether Redis is configured and currently not answering.
    pub fn in_fallback(&self) -> bool {
        self.in_fallback.load(Ordering::Relaxed)
    }

    /// One request by `principal` (any stable key: issuer and subject, or client IP).
    pub fn admit_principal(&self, principal: &str, per_second: u32) -> Result<(), Throttled> {
        let limiter = {
            let mut p = self.principals.lock().unwrap_or_else(|e| e.into_inner());
            if p.0 != per_second {
                // Reloaded with another rate: start over with the new quota.
                *p = (
                    per_second,
                    Arc::new(RateLimiter::dashmap_with_clock(
                        quota(per_second, per_second),
                        Ticks(self.clock.clone()),
                    )),
                );
            }
            if p.1.len() > 100_000 {
                p.1.retain_recent();
            }
            Arc::clone(&p.1)
        };
        let key = principal.to_owned();
        limiter.check_key(&key).map_err(|not_until| Throttled {
            kind: LimitKind::Principal,
            retry_after: not_until.wait_time_from(Ticks(self.clock.clone()).now()),
        })
    }

    fn local(&self, target: &str, budget: Budget, fallback: bool) -> Arc<Direct> {
        let budget = if fallback {
            Budget {
                per_second: (budget.per_second / self.expected_replicas).max(1),
                burst: (budget.burst / self.expected_replicas).max(1),
            }
        } else {
            budget
        };
        let mut map = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry((target.to_owned(), fallback))
            .or_insert_with(|| LocalBudget {
                budget,
                limiter: Arc::new(RateLimiter::direct_with_clock(
                    quota(budget.per_second, budget.burst),
                    Ticks(self.clock.clone()),
                )),
            });
        if entry.budget != budget {
            *entry = LocalBudget {
                budget,
                limiter: Arc::new(RateLimiter::direct_with_clock(
                    quota(budget.per_second, budget.burst),
                    Ticks(self.clock.clone()),
                )),
            };
        }
        Arc::clone(&entry.limiter)
    }

    fn check_local(&self, target: &str, budget: Budget, fallback: bool) -> Option<Duration> {
        let limiter = self.local(target, budget, fallback);
        match limiter.check() {
            Ok(()) => None,
            Err(not_until) => Some(not_until.wait_time_from(Ticks(self.clock.clone()).now())),
        }
    }

    /// One decision: `None` granted, `Some(wait)` refused for now. Grants are counted by
    /// who decided, so an operator (and the fleet test) can tell the fleet-wide budget from
    /// a replica's fallback share.
    async fn try_take(&self, target: &str, budget: Budget) -> Option<Duration> {
        let (decision, source) = self.decide(target, budget).await;
        if decision.is_none() {
            metrics::counter!(names::RATE_LIMIT_GRANTS.name, label::TARGET => target.to_owned(), label::SOURCE => source)
                .increment(1);
        }
        decision
    }

    /// [`Self::try_take`]'s decision and who took it: `redis`, `fallback` or `local`.
    async fn decide(&self, target: &str, budget: Budget) -> (Option<Duration>, &'static str) {
        let Some(redis) = &self.redis else {
            return (self.check_local(target, budget, false), "local");
        };
        let now = self.clock.now();
        let skip = self
            .redis_down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| now < until);
        if !skip {
            match redis
                .take(&format!("target:{target}"), budget.per_second, budget.burst)
                .await
            {
                Ok(decision) => {
                    if self.in_fallback.swap(false, Ordering::Relaxed) {
                        tracing::info!("Redis answers again: rate budgets are fleet-wide again");
                        metrics::gauge!(names::RATE_LIMIT_FALLBACK.name).set(0.0);
                    }
                    *self
                        .redis_down_until
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = None;
                    if decision.is_none() {
                        self.stats.redis_granted.fetch_add(1, Ordering::Relaxed);
                    }
                    return (decision, "redis");
                }
                Err(e) => {
                    if !self.in_fallback.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            error = %crate::report::Report(&e),
                            expected_replicas = self.expected_replicas,
                            "Redis does not answer: each replica now paces new tokens alone at the target rate divided by expected_replicas"
                        );
                        metrics::gauge!(names::RATE_LIMIT_FALLBACK.name).set(1.0);
                    }
                    *self
                        .redis_down_until
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(now + REDIS_RETRY);
                }
            }
        }
        self.stats
            .fallback_decisions
            .fetch_add(1, Ordering::Relaxed);
        (self.check_local(target, budget, true), "fallback")
    }

    /// Takes a slot of `target`'s budget for one new token, waiting up to `max_wait` for
    /// one to free up.
    pub async fn take_target(
        &self,
        target: &str,
        budget: Budget,
        max_wait: Duration,
    ) -> Result<(), Throttled> {
        let started = tokio::time::Instant::now();
        loop {
            let Some(wait) = self.try_take(target, budget).await else {
                return Ok(());
            };
            let waited = started.elapsed();
            if waited + wait > max_wait {
                return Err(Throttled {
                    kind: LimitKind::Target,
                    retry_after: wait,
                });
            }
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
