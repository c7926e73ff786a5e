//! `[grants.conditions]`: where from and when a grant applies. Pure: the client address
//! and the time are arguments.
//!
//! A grant with conditions applies only while every condition holds: `source_cidrs` (the
//! client address, after `server.trusted_proxies`, is inside one of the networks) and
//! `hours` (the time is inside one of the weekly windows). No conditions: always.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::domain::{Cidr, Hours};

/// A grant's conditions; the default has none and always holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    /// Client networks the grant applies from; empty: any.
    pub source_cidrs: Vec<Cidr>,
    /// Weekly windows the grant applies in; empty: any time.
    pub hours: Vec<Hours>,
}

/// Which condition did not hold. Its text names the condition, never its values, so a
/// refusal says nothing about the grant beyond which condition failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConditionFailure {
    /// The client address is outside `source_cidrs` (or unknown).
    #[error(
        "the grant's condition source_cidrs does not hold: your address is not in its networks"
    )]
    SourceCidrs,
    /// The time is outside `hours`.
    #[error("the grant's condition hours does not hold: it does not apply at this time")]
    Hours,
}

impl ConditionFailure {
    /// The condition's key: `source_cidrs` or `hours`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceCidrs => "source_cidrs",
            Self::Hours => "hours",
        }
    }
}

impl Conditions {
    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        self.source_cidrs.is_empty() && self.hours.is_empty()
    }

    /// Whether the grant applies to a caller at `client_ip` (`None`: unknown, which
    /// fails `source_cidrs`) at `now`. The first condition that does not hold, in the
    /// order `source_cidrs`, `hours`.
    pub fn check(
        &self,
        client_ip: Option<IpAddr>,
        now: SystemTime,
    ) -> Result<(), ConditionFailure> {
        if !self.source_cidrs.is_empty()
            && !client_ip.is_some_and(|ip| self.source_cidrs.iter().any(|c| c.contains(ip)))
        {
            return Err(ConditionFailure::SourceCidrs);
        }
        if !self.hours.is_empty() && !self.hours.iter().any(|h| h.contains(now)) {
            return Err(ConditionFailure::Hours);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        SystemTime::from(s.parse::<jiff::Timestamp>().unwrap())
    }

    #[test]
    fn every_condition_must_hold() {
        let c = Conditions {
            source_cidrs: vec![
                Cidr::parse("10.0.0.0/8").unwrap(),
                Cidr::parse("2001:db8::/32").unwrap(),
            ],
            hours: vec![
                Hours::parse("Mon-Fri 08:00-18:00 UTC").unwrap(),
                Hours::parse("Sat 10:00-12:00 UTC").unwrap(),
            ],
        };
        let monday = at("2026-07-06T09:00:00Z");
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(c.check(Some(inside), monday), Ok(()));
        assert_eq!(
            c.check(Some("2001:db8::1".parse().unwrap()), monday),
            Ok(())
        );
        assert_eq!(
            c.check(Some("::ffff:10.9.9.9".parse().unwrap()), monday),
            Ok(())
        );
        assert_eq!(
            c.check(Some("192.0.2.1".parse().unwrap()), monday),
            Err(ConditionFailure::SourceCidrs)
        );
        assert_eq!(c.check(None, monday), Err(ConditionFailure::SourceCidrs));
        assert_eq!(
            c.check(Some(inside), at("2026-07-06T18:00:00Z")),
            Err(ConditionFailure::Hours)
        );
        assert_eq!(c.check(Some(inside), at("2026-07-04T11:00:00Z")), Ok(()));
        assert_eq!(Conditions::default().check(None, monday), Ok(()));
        assert_eq!(ConditionFailure::Hours.as_str(), "hours");
    }
}
