//! The budget of unauthenticated work per client address (`rate_limit.per_client_ip_*`).
//!
//! Work that anyone who can reach the broker can cause, before anyone is authenticated,
//! is paid for by the client's address: every failed authentication (a bad JWT costs a
//! signature check, a bad `AWS-IAM` credential an STS call) and every console sign-in
//! request (`/ui/config`, `/ui/oidc/token`, which call the identity provider). A caller
//! with a valid, already verified credential pays nothing. An address that has spent its
//! budget is refused with 429 before any of that work is done, until it has refilled.
//!
//! IPv6 addresses are counted per /64 (one host usually owns a whole /64); IPv4-mapped
//! IPv6 addresses as their IPv4 address. The address is the one after
//! `server.trusted_proxies`, so a load balancer's callers are told apart.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::{LimitKind, Throttled, Ticks};
use crate::clock::SharedClock;
use crate::domain::address_key as key;

type Limiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, Ticks, NoOpMiddleware<Duration>>;

/// Addresses tracked before idle ones are dropped.
const TRACKED: usize = 65_536;

/// One budget per client address.
pub struct ClientBudget {
    limiter: Option<Limiter>,
    /// Addresses shut out, until when.
    blocked: Mutex<HashMap<IpAddr, SystemTime>>,
    clock: SharedClock,
}

impl std::fmt::Debug for ClientBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBudget")
            .field("enabled", &self.limiter.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientBudget {
    /// `per_second` units refill per second, `burst` at most at once; `per_second = 0`
    /// turns the budget off.
    pub fn new(per_second: u32, burst: u32, clock: SharedClock) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::dashmap_with_clock(
                Quota::per_second(rate).allow_burst(burst),
                Ticks(clock.clone()),
            )
        });
        Self {
            limiter,
            blocked: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// Spends one unit of `ip`'s budget; refused when it is spent.
    pub fn spend(&self, ip: IpAddr) -> Result<(), Throttled> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > TRACKED {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(&key(ip)).map_err(|not_until| Throttled {
            kind: LimitKind::Client,
            retry_after: not_until.wait_time_from(Ticks(self.clock.clone()).now()),
        })
    }

    /// Refused while `ip` is shut out: after [`ClientBudget::charge_failure`] found its
    /// budget spent, until a unit has refilled. Costs nothing otherwise; checked before
    /// work that is paid for only when it fails (authentication).
    pub fn check(&self, ip: IpAddr) -> Result<(), Throttled> {
        let blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = blocked.get(&key(ip)) else {
            return Ok(());
        };
        match until.duration_since(self.clock.now()) {
            Ok(wait) if !wait.is_zero() => Err(Throttled {
                kind: LimitKind::Client,
                retry_after: wait,
            }),
            _ => Ok(()),
        }
    }

    /// Spends one unit for failed work by `ip`; when there was none left, shuts `ip` out
    /// until one refills (see [`ClientBudget::check`]) and says so.
    pub fn charge_failure(&self, ip: IpAddr) -> Result<(), Throttled> {
        let refused = self.spend(ip);
        if let Err(t) = &refused {
            let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            let now = self.clock.now();
            if blocked.len() > TRACKED {
                blocked.retain(|_, until| *until > now);
            }
            blocked.insert(key(ip), now + t.retry_after);
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn ipv6_counts_per_64_and_mapped_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(key(a), key(b));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn an_address_is_refused_once_its_budget_is_spent_and_refills() {
        let clock = Arc::new(ManualClock::new(std::time::SystemTime::UNIX_EPOCH));
        let budget = ClientBudget::new(2, 3, clock.clone());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            budget.spend(ip).unwrap();
        }
        assert!(budget.check(ip).is_ok(), "spending alone shuts nobody out");
        let t = budget.charge_failure(ip).unwrap_err();
        assert_eq!(t.kind, LimitKind::Client);
        assert!(budget.check(ip).is_err());
        assert!(budget.check(other).is_ok());
        budget.spend(other).unwrap();
        clock.advance(Duration::from_secs(1));
        budget.spend(ip).unwrap();
    }

    #[test]
    fn zero_turns_it_off() {
        let clock = Arc::new(ManualClock::new(std::time::SystemTime::UNIX_EPOCH));
        let budget = ClientBudget::new(0, 0, clock);
        for _ in 0..1000 {
            budget.spend("192.0.2.1".parse().unwrap()).unwrap();
        }
    }
}
