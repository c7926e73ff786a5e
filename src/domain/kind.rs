//! Target kinds (which AWS service's IAM token a target gets), cache names and the Aurora
//! DSQL cluster endpoint.

use std::fmt;

use serde::Serialize;

use super::ParseError;
use super::aws::Region;
use super::names::Hostname;

/// The service a target's tokens sign in to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// RDS, Aurora and RDS Proxy (`rds-db:connect`): the default.
    Rds,
    /// Aurora DSQL (`dsql:DbConnect`, `dsql:DbConnectAdmin`).
    Dsql,
    /// ElastiCache for Valkey or Redis OSS (`elasticache:Connect`).
    Elasticache,
    /// MemoryDB (`memorydb:Connect`).
    Memorydb,
}

impl Kind {
    /// Every kind, in the order documentation lists them.
    pub const ALL: [Self; 4] = [Self::Rds, Self::Dsql, Self::Elasticache, Self::Memorydb];

    /// Parses `rds`, `dsql`, `elasticache` or `memorydb`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseError::new("must be one of rds, dsql, elasticache, memorydb"))
    }

    /// The kind as written in configuration, responses, metrics and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rds => "rds",
            Self::Dsql => "dsql",
            Self::Elasticache => "elasticache",
            Self::Memorydb => "memorydb",
        }
    }

    /// A cache (ElastiCache or MemoryDB): tokens name a user id, connections use TLS and
    /// must re-authenticate within 12 hours.
    pub fn is_cache(self) -> bool {
        matches!(self, Self::Elasticache | Self::Memorydb)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ElastiCache cache or replication-group name, or a MemoryDB cluster name: 1 to 40
/// lower-case letters, digits and single hyphens, starting with a letter. It is the host
/// a cache token signs, so it is kept as a [`Hostname`] too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CacheName(Hostname);

impl CacheName {
    /// Parses a cache name; upper case is refused, not folded: AWS stores names in lower
    /// case and a token signed for another spelling is refused with `WRONGPASS`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ParseError::new(
                "must be lower-case: AWS stores cache names in lower case, and a token signed for another spelling is refused",
            ));
        }
        let ok = (1..=40).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && !s.ends_with('-')
            && !s.contains("--")
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(ParseError::new(
                "must be a cache name: 1 to 40 lower-case letters, digits and single hyphens, starting with a letter",
            ));
        }
        Hostname::parse(s).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name as the host a token signs.
    pub fn as_host(&self) -> &Hostname {
        &self.0
    }
}

/// What an Aurora DSQL cluster endpoint `<cluster id>.dsql.<region>.on.aws` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsqlEndpoint {
    /// The cluster id, lower-case.
    pub cluster_id: String,
    /// The region.
    pub region: Region,
}

impl DsqlEndpoint {
    /// The cluster id and region of a DSQL endpoint, or `None` for any other host.
    pub fn from_host(host: &Hostname) -> Option<Self> {
        let lower = host.as_str().to_ascii_lowercase();
        let labels: Vec<&str> = lower.split('.').collect();
        let [id, "dsql", region, "on", "aws"] = labels.as_slice() else {
            return None;
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        Some(Self {
            cluster_id: (*id).to_owned(),
            region: Region::parse(region).ok()?,
        })
    }
}

/// Which kind `host` looks like an endpoint of, from AWS's DNS suffixes, or `None` for a
/// host that names no AWS service (a custom DNS name: any kind may use it).
pub fn kind_of_host(host: &Hostname) -> Option<Kind> {
    let lower = host.as_str().to_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').collect();
    match labels.as_slice() {
        [.., "dsql", _, "on", "aws"] => Some(Kind::Dsql),
        [.., "cache", "amazonaws", "com"] | [.., "cache", "amazonaws", "com", "cn"] => {
            Some(Kind::Elasticache)
        }
        [.., "memorydb", _, "amazonaws", "com"] | [.., "memorydb", _, "amazonaws", "com", "cn"] => {
            Some(Kind::Memorydb)
        }
        _ if Region::from_rds_host(host).is_some() => Some(Kind::Rds),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Hostname {
        Hostname::parse(s).unwrap()
    }

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Ok(k));
        }
        assert!(Kind::parse("RDS").is_err());
        assert!(Kind::parse("redis").is_err());
    }

    #[test]
    fn cache_names_are_lower_case_and_well_formed() {
        for ok in ["my-redis-cluster", "orders-cache", "a", "sessions2"] {
            assert_eq!(CacheName::parse(ok).unwrap().as_str(), ok);
        }
        let upper = CacheName::parse("My-Redis").unwrap_err();
        assert!(upper.0.contains("lower-case"), "{upper}");
        for bad in ["", "1abc", "a--b", "a-", "a.b", "a_b", &"a".repeat(41)] {
            assert!(CacheName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dsql_endpoints_name_cluster_and_region() {
        let e = DsqlEndpoint::from_host(&host("abcdefghijklmnopqrst123456.dsql.us-east-1.on.aws"))
            .unwrap();
        assert_eq!(e.cluster_id, "abcdefghijklmnopqrst123456");
        assert_eq!(e.region.as_str(), "us-east-1");
        let mixed = DsqlEndpoint::from_host(&host("ABC.DSQL.eu-west-1.ON.AWS")).unwrap();
        assert_eq!(mixed.cluster_id, "abc");
        for other in [
            "x.dsql.nowhere.on.aws",
            "a.b.dsql.us-east-1.on.aws",
            "db.eu-west-1.rds.amazonaws.com",
        ] {
            assert_eq!(DsqlEndpoint::from_host(&host(other)), None, "{other}");
        }
    }

    #[test]
    fn hosts_betray_their_kind() {
        for (h, k) in [
            ("abc.dsql.us-east-1.on.aws", Some(Kind::Dsql)),
            (
                "master.orders.abc123.euw1.cache.amazonaws.com",
                Some(Kind::Elasticache),
            ),
            (
                "orders-abc123.serverless.euw1.cache.amazonaws.com",
                Some(Kind::Elasticache),
            ),
            (
                "clustercfg.ledger.abc123.memorydb.us-east-1.amazonaws.com",
                Some(Kind::Memorydb),
            ),
            (
                "shop.proxy-xyz.ap-southeast-2.rds.amazonaws.com",
                Some(Kind::Rds),
            ),
            ("redis.example.internal", None),
        ] {
            assert_eq!(kind_of_host(&host(h)), k, "{h}");
        }
    }
}
