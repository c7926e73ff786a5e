//! What the broker reports about itself: readiness, gauges, cache counters; and draining
//! at shutdown.

use crate::audit::{AuditLog, StoreError};
use crate::aws::CredentialsUnavailable;
use crate::ratelimit::Pacer;

use super::Broker;

/// What `/readyz` checks, answered now.
#[derive(Debug)]
pub struct Readiness {
    /// Whether the broker has AWS credentials to sign with.
    pub credentials: Result<(), CredentialsUnavailable>,
    /// Whether the audit trail can record; `None` without `[audit]`.
    pub audit: Option<Result<(), StoreError>>,
}

/// The broker's current state, for the gauges of `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    /// Tokens in the cache.
    pub token_cache_entries: u64,
    /// Whether AWS credentials are available.
    pub credentials_available: bool,
    /// Events waiting for the audit writer; `None` without `[audit]`.
    pub audit_queue_depth: Option<usize>,
    /// Whether Redis is configured and the pacing is local because it does not answer.
    pub rate_limit_fallback: bool,
}

/// Counters of the token cache, for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Tokens in the cache.
    pub entries: u64,
    /// Tokens minted since start.
    pub minted: u64,
    /// Distinct shared pieces (endpoint, scope, session token) the cached tokens use.
    pub shared_pieces: usize,
}

impl Broker {
    /// Whether the broker has AWS credentials to sign with (fetching them if need be).
    pub async fn check_credentials(&self) -> Result<(), CredentialsUnavailable> {
        self.credentials.get().await.map(|_| ())
    }

    /// Whether the broker has credentials and its audit trail (if any) can record.
    pub async fn readiness(&self) -> Readiness {
        let credentials = self.check_credentials().await;
        let audit = match &self.audit {
            None => None,
            Some(a) => Some(a.check().await),
        };
        Readiness { credentials, audit }
    }

    /// The current values of the broker's gauges.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            token_cache_entries: self.cache.entry_count(),
            credentials_available: self.credentials.available(),
            audit_queue_depth: self.audit.as_ref().map(AuditLog::queue_depth),
            rate_limit_fallback: self.pacer.in_fallback(),
        }
    }

    /// The token cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            entries: self.cache.entry_count(),
            minted: self.cache.minted(),
            shared_pieces: self.cache.shared_pieces(),
        }
    }

    /// The rate limits, for tests that watch the Redis fallback.
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Once requests in flight are answered: writes the counts of folded floods to the
    /// audit trail and waits for the audit mirror, both within `grace`.
    pub async fn drain(&self, grace: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        if let Some(c) = &self.coalescer
            && tokio::time::timeout_at(deadline, c.flush()).await.is_err()
        {
            tracing::warn!(
                grace_seconds = grace.as_secs(),
                "folded refusals were not all recorded within the shutdown grace"
            );
        }
        if let Some(a) = &self.audit {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !a.flush_mirror(left).await {
                tracing::warn!(
                    "the audit mirror was not fully written within the shutdown grace; the events are committed in the store"
                );
            }
        }
    }
}
