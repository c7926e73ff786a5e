//! Target names, DB user names, hosts and engines.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::ParseError;

/// A target's name, what clients ask for: 1-64 of `A-Z a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TargetName(String);

impl TargetName {
    /// Parses a target name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.len() > 64 {
            return Err(ParseError::new("must be 1 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(ParseError::new(
                "may only contain letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A database user name.
///
/// Anything a database accepts as a role name is allowed, including `@`, `+`, spaces and
/// non-ASCII letters: 1 to 128 characters without control characters. (PostgreSQL
/// caps names at 63 bytes and MySQL at 32 characters; the database itself enforces those.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DbUser(Arc<str>);

impl DbUser {
    /// Parses a DB user name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.chars().count() > 128 {
            return Err(ParseError::new("must be 1 to 128 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(ParseError::new("must not contain control characters"));
        }
        Ok(Self(Arc::from(s)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DbUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS host name as clients connect to it; case is kept (the signature lower-cases it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Hostname(Arc<str>);

impl Hostname {
    /// Parses a host name: dot-separated labels of letters, digits and `-`, at most 253
    /// characters, each label 1-63 characters not starting or ending with `-`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.len() > 253 {
            return Err(ParseError::new("must be 1 to 253 characters"));
        }
        for label in s.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(ParseError::new(
                    "must be a DNS name: dot-separated labels of letters, digits and '-'",
                ));
            }
        }
        Ok(Self(Arc::from(s)))
    }

    /// The host as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The database engine behind a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL, Aurora PostgreSQL.
    Postgres,
    /// MySQL, Aurora MySQL.
    Mysql,
    /// MariaDB.
    Mariadb,
    /// Valkey (ElastiCache, MemoryDB).
    Valkey,
    /// Redis OSS (ElastiCache, MemoryDB).
    Redis,
}

impl Engine {
    /// Parses `postgres`, `mysql`, `mariadb`, `valkey` or `redis`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "postgres" => Ok(Self::Postgres),
            "mysql" => Ok(Self::Mysql),
            "mariadb" => Ok(Self::Mariadb),
            "valkey" => Ok(Self::Valkey),
            "redis" => Ok(Self::Redis),
            _ => Err(ParseError::new(
                "must be one of postgres, mysql, mariadb, valkey, redis",
            )),
        }
    }

    /// The engine's name as written in configuration and responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Mariadb => "mariadb",
            Self::Valkey => "valkey",
            Self::Redis => "redis",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_users_accept_what_databases_accept() {
        for ok in [
            "app_rw",
            "mario.rossi@example.com",
            "user+tag",
            "with space",
            "jürgen",
        ] {
            assert!(DbUser::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a\0b", "tab\there", &"x".repeat(129)] {
            assert!(DbUser::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostnames() {
        assert!(Hostname::parse("Orders.cluster-abc.eu-west-1.rds.amazonaws.com").is_ok());
        for bad in ["", "a..b", "-a.b", "a_b.c", "a b", "host:5432"] {
            assert!(Hostname::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn target_names() {
        assert!(TargetName::parse("orders-db").is_ok());
        for bad in ["", "a/b", "x y", &"n".repeat(65)] {
            assert!(TargetName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
