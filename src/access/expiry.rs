//! Expiry: a request's time passing is a transition like any other, recorded in the audit
//! trail and notified, by a sweep every replica runs (and on first observation).

use std::sync::Arc;
use std::time::Duration;

use super::model::{AccessRequest, State};
use super::service::AccessRequests;
use super::store;
use crate::audit::StoreError;
use crate::config::Config;

/// How often every replica looks for requests whose time is up (`docs/human-access.md`).
pub const EXPIRY_SWEEP: Duration = Duration::from_secs(5);

impl AccessRequests {
    /// Marks every request whose time is up as expired, each with its audit event and
    /// notification (at most 100 a call; the sweep calls again).
    pub async fn expire_due(&self, config: &Config) -> Result<(), StoreError> {
        let now = self.clock.now();
        for id in store::due(self.store(), now, 100).await? {
            if let Some(r) = store::get(self.store(), &id).await? {
                self.expire(config, &r).await;
            }
        }
        Ok(())
    }

    /// Sweeps for requests whose time is up every `every`, so that expiry is recorded and
    /// notified when it happens, not only when somebody next looks. Safe on every replica:
    /// the transition is a conditional UPDATE, so exactly one replica records each expiry.
    pub fn spawn_expiry_sweep(
        &self,
        config: impl Fn() -> Arc<Config> + Send + 'static,
        every: Duration,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = this.expire_due(&config()).await {
                    tracing::warn!(error = %crate::report::Report(&e), "sweeping expired access requests failed; will retry");
                }
            }
        });
    }

    /// Expires `r` if no other call or replica did first. Best effort: a failure is logged
    /// (the request gives no access past its time either way).
    pub(super) async fn expire(&self, config: &Config, r: &AccessRequest) {
        let why = if r.state == State::Pending {
            "no decision within 24 hours"
        } else {
            "the access window ended"
        };
        if let Err(e) = self
            .close(config, None, r, State::Expired, why.to_owned())
            .await
        {
            tracing::warn!(error = %e, request = %r.id, "expiring an access request failed");
        }
    }
}
