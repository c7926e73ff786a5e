//! AWS identifiers: regions, role ARNs, RDS resource ids.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::ParseError;
use super::names::Hostname;

/// An AWS region code such as `eu-west-1` or `us-gov-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Region(Arc<str>);

impl Region {
    /// Parses a region code: lower-case letter groups joined by `-`, ending in a number.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let parts: Vec<&str> = s.split('-').collect();
        let ok = parts.len() >= 3
            && parts.len() <= 5
            && parts.split_last().is_some_and(|(last, rest)| {
                !last.is_empty()
                    && last.len() <= 2
                    && last.bytes().all(|b| b.is_ascii_digit())
                    && rest
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            });
        if ok {
            Ok(Self(Arc::from(s)))
        } else {
            Err(ParseError::new(
                "must be an AWS region code such as eu-west-1",
            ))
        }
    }

    /// Infers the region from an RDS endpoint: `<name>.<region>.rds.amazonaws.com`
    /// (instances, clusters, cluster-ro, cluster-custom, proxies, proxy endpoints) or
    /// `<name>.rds.<region>.amazonaws.com.cn`.
    pub fn from_rds_host(host: &Hostname) -> Option<Self> {
        let lower = host.as_str().to_ascii_lowercase();
        let labels: Vec<&str> = lower.split('.').collect();
        let candidate = match labels.as_slice() {
            [.., _, region, "rds", "amazonaws", "com"] => region,
            [.., _, "rds", region, "amazonaws", "com", "cn"] => region,
            _ => return None,
        };
        Self::parse(candidate).ok()
    }

    /// The region code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fields of an ARN, `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, borrowed from
/// it. Only the shape is checked: callers check the fields they rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArnParts<'a> {
    /// `aws`, `aws-cn`, ...
    pub partition: &'a str,
    /// `iam`, `sts`, ...
    pub service: &'a str,
    /// Empty for global services such as IAM and STS.
    pub region: &'a str,
    /// The account id.
    pub account: &'a str,
    /// Everything after the fifth colon (may contain colons).
    pub resource: &'a str,
}

impl<'a> ArnParts<'a> {
    /// Splits `arn`; `None` unless it starts with `arn:` and has all six fields.
    pub fn split(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        Some(Self {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/<path/name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RoleArn(String);

impl RoleArn {
    /// Parses an IAM role ARN.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = || {
            ParseError::new("must be an IAM role ARN such as arn:aws:iam::123456789012:role/name")
        };
        let rest = s.strip_prefix("arn:").ok_or_else(err)?;
        let (partition, rest) = rest.split_once(':').ok_or_else(err)?;
        if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
            return Err(err());
        }
        let rest = rest.strip_prefix("iam::").ok_or_else(err)?;
        let (account, resource) = rest.split_once(':').ok_or_else(err)?;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let name = resource.strip_prefix("role/").ok_or_else(err)?;
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c);
        if name.is_empty() || name.ends_with('/') || !name.chars().all(valid_char) {
            return Err(err());
        }
        Ok(Self(s.to_owned()))
    }

    /// The 12-digit account that owns the role.
    pub fn account_id(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }

    /// The partition (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn partition(&self) -> &str {
        self.0.split(':').nth(1).unwrap_or_default()
    }

    /// The ARN.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An RDS resource id (`db-…`, `cluster-…`, `prx-…`) as used in `rds-db:connect` ARNs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ResourceId(String);

impl ResourceId {
    /// Parses a resource id: a `db-`, `cluster-` or `prx-` prefix, then letters and digits.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let body = ["db-", "cluster-", "prx-"]
            .iter()
            .find_map(|p| s.strip_prefix(p));
        match body {
            Some(b)
                if !b.is_empty()
                    && b.len() <= 64
                    && b.bytes().all(|c| c.is_ascii_alphanumeric()) =>
            {
                Ok(Self(s.to_owned()))
            }
            _ => Err(ParseError::new(
                "must be an RDS resource id such as db-ABCDEFGHIJKL or cluster-ABC123",
            )),
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(h: &str) -> Option<String> {
        Region::from_rds_host(&Hostname::parse(h).unwrap()).map(|r| r.0.to_string())
    }

    #[test]
    fn infers_regions_from_rds_endpoints() {
        let cases = [
            ("mydb.c9akciq32.us-east-1.rds.amazonaws.com", "us-east-1"),
            (
                "orders.cluster-ro-abc.eu-west-1.rds.amazonaws.com",
                "eu-west-1",
            ),
            (
                "a.cluster-custom-abc.eu-west-1.rds.amazonaws.com",
                "eu-west-1",
            ),
            (
                "shop.proxy-xyz.ap-southeast-2.rds.amazonaws.com",
                "ap-southeast-2",
            ),
            (
                "ro.endpoint.proxy-xyz.ap-southeast-2.rds.amazonaws.com",
                "ap-southeast-2",
            ),
            (
                "l.cluster-q.us-gov-west-1.rds.amazonaws.com",
                "us-gov-west-1",
            ),
            ("PG.Cluster-Q.RDS.CN-NORTH-1.AMAZONAWS.COM.CN", "cn-north-1"),
        ];
        for (host, region) in cases {
            assert_eq!(infer(host).as_deref(), Some(region), "{host}");
        }
        for host in [
            "db.example.com",
            "rds.amazonaws.com",
            "x.notaregion.rds.amazonaws.com",
        ] {
            assert_eq!(infer(host), None, "{host}");
        }
    }

    #[test]
    fn role_arns() {
        let arn = RoleArn::parse("arn:aws:iam::123456789012:role/path/orders-db-connect").unwrap();
        assert_eq!(arn.account_id(), "123456789012");
        assert_eq!(arn.partition(), "aws");
        for bad in [
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:role/",
            "arn:other:iam::123456789012:role/x",
        ] {
            assert!(RoleArn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resource_ids() {
        assert!(ResourceId::parse("cluster-ABC123").is_ok());
        assert!(ResourceId::parse("db-ABCDEFGHIJKL").is_ok());
        assert!(ResourceId::parse("table-x").is_err());
        assert!(ResourceId::parse("db-").is_err());
    }
}
