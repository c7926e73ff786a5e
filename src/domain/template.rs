//! Per-person DB user templates (`"{subject}"`, `"{claims.preferred_username}"`) and the
//! rule that turns a verified identity's value into a safe database identifier.
//!
//! A template is an entry of a grant's or a target's `db_users` that holds one
//! placeholder, optionally between literal text of `[a-z0-9_]` (`"u_{subject}"`). The value
//! it resolves to goes through [`identifier`]:
//!
//! 1. ASCII letters are lower-cased; every character outside `[a-z0-9_]` (also each
//!    non-ASCII character) becomes `_`;
//! 2. the value is refused when it is empty or has no letter or digit left (`"..."`, a name
//!    in another script), since such names would be shared by many people;
//! 3. with the template's literal text around it, the name is refused when it is longer
//!    than the engine allows (63 bytes for PostgreSQL and Aurora DSQL, 32 for MySQL and
//!    MariaDB), never truncated: two long names that start alike would become one user;
//! 4. the name is refused when it is reserved ([`is_reserved`]: administrative and
//!    built-in roles such as `rdsadmin`, `postgres`, `admin`, `pg_*`, `rds_*`).
//!
//! A leading digit is kept (PostgreSQL and MySQL accept it; PostgreSQL needs the name
//! quoted in `CREATE USER`).

use std::fmt;

use super::ParseError;

/// Longest claim name a template may name, in bytes.
const MAX_CLAIM_NAME: usize = 128;

/// Longest value a template reads from an identity, in characters; longer ones are
/// refused before mapping (no identifier is that long anyway).
const MAX_VALUE_CHARS: usize = 256;

/// What a template's placeholder reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `{subject}`: a JWT's `sub`; an AWS-IAM caller's IAM user name.
    Subject,
    /// `{claims.NAME}`: a string claim of the verified JWT.
    Claim(String),
}

/// A DB user template, parsed: literal text, one [`Placeholder`], literal text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DbUserTemplate {
    /// The template as written in the configuration (compared between grants and
    /// targets, and the only form of it that may be a metric label).
    text: String,
    prefix: String,
    placeholder: Placeholder,
    suffix: String,
}

/// Why a value did not become a DB user name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// Empty, or nothing but characters that map to `_`.
    #[error("has no letter or digit from a-z, 0-9")]
    NoSafeCharacters,
    /// Longer than the engine allows.
    #[error("is longer than {max} bytes once mapped")]
    TooLong {
        /// The engine's limit.
        max: usize,
    },
    /// A reserved administrative or built-in name.
    #[error("maps to a reserved database user name")]
    Reserved,
}

impl DbUserTemplate {
    /// Whether a `db_users` entry is meant as a template: it holds `{` or `}`.
    pub fn looks_like_template(s: &str) -> bool {
        s.contains(['{', '}'])
    }

    /// Parses `PREFIX{subject}SUFFIX` or `PREFIX{claims.NAME}SUFFIX`, where PREFIX and
    /// SUFFIX are `[a-z0-9_]*`. Any other placeholder, or more than one, is an error.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let usage = "use {subject} or {claims.NAME}, once, with only a-z, 0-9 and _ around it";
        let (Some(open), Some(close)) = (s.find('{'), s.find('}')) else {
            return Err(ParseError::new(format!("unbalanced braces: {usage}")));
        };
        if close < open {
            return Err(ParseError::new(format!("unbalanced braces: {usage}")));
        }
        let prefix = s.get(..open).unwrap_or_default();
        let inner = s.get(open + 1..close).unwrap_or_default();
        let suffix = s.get(close + 1..).unwrap_or_default();
        if inner.contains('{') || suffix.contains(['{', '}']) {
            return Err(ParseError::new(format!("unbalanced braces: {usage}")));
        }
        let placeholder = match inner {
            "subject" => Placeholder::Subject,
            _ => match inner.strip_prefix("claims.") {
                Some(name) if valid_claim_name(name) => Placeholder::Claim(name.to_owned()),
                Some(_) => {
                    return Err(ParseError::new(format!(
                        "claim name must be 1 to {MAX_CLAIM_NAME} characters without braces, \
                         spaces or control characters"
                    )));
                }
                None => {
                    return Err(ParseError::new(format!("unknown placeholder: {usage}")));
                }
            },
        };
        let literal_ok = |l: &str| l.bytes().all(is_identifier_byte);
        if !literal_ok(prefix) || !literal_ok(suffix) {
            return Err(ParseError::new(format!(
                "text around the placeholder must be a-z, 0-9 and _ only: {usage}"
            )));
        }
        Ok(Self {
            text: s.to_owned(),
            prefix: prefix.to_owned(),
            placeholder,
            suffix: suffix.to_owned(),
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What the placeholder reads.
    pub fn placeholder(&self) -> &Placeholder {
        &self.placeholder
    }

    /// The DB user name for `value` (what the placeholder read): [`identifier`] with the
    /// literal text around it, at most `max_bytes` long and not reserved.
    pub fn render(&self, value: &str, max_bytes: usize) -> Result<String, IdentifierError> {
        let mapped = identifier(value)?;
        let name = format!("{}{mapped}{}", self.prefix, self.suffix);
        if name.len() > max_bytes {
            return Err(IdentifierError::TooLong { max: max_bytes });
        }
        if is_reserved(&name) {
            return Err(IdentifierError::Reserved);
        }
        Ok(name)
    }
}

impl fmt::Display for DbUserTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

fn valid_claim_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CLAIM_NAME
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '{' || c == '}')
}

/// The mapping rule: ASCII letters lower-cased, every other character outside
/// `[a-z0-9_]` replaced by `_` (one `_` per character); refused when nothing but `_` is
/// left, or when the value is over 256 characters. The length limit of the engine is
/// checked by [`DbUserTemplate::render`], with the template's literal text.
pub fn identifier(value: &str) -> Result<String, IdentifierError> {
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(IdentifierError::TooLong {
            max: MAX_VALUE_CHARS,
        });
    }
    let mapped: String = value
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !mapped.bytes().any(|b| b != b'_') {
        return Err(IdentifierError::NoSafeCharacters);
    }
    Ok(mapped)
}

/// Names no person may become: the administrative and built-in users of RDS, Aurora,
/// PostgreSQL, MySQL, MariaDB and Aurora DSQL, and the prefixes PostgreSQL (`pg_`) and
/// RDS (`rds_`, `rdsadmin…`) reserve for their own roles.
pub fn is_reserved(name: &str) -> bool {
    const NAMES: [&str; 15] = [
        "admin",
        "postgres",
        "rdsadmin",
        "rdsrepladmin",
        "rdsproxyadmin",
        "rdstopmgr",
        "root",
        "mysql",
        "public",
        "none",
        "current_user",
        "session_user",
        "current_role",
        "mariadb_sys",
        "default",
    ];
    NAMES.contains(&name)
        || ["pg_", "rds_", "rdsadmin", "aws_"]
            .iter()
            .any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn templates_parse() {
        let t = DbUserTemplate::parse("{subject}").unwrap();
        assert_eq!(t.placeholder(), &Placeholder::Subject);
        let t = DbUserTemplate::parse("u_{claims.preferred_username}_rw").unwrap();
        assert_eq!(
            t.placeholder(),
            &Placeholder::Claim("preferred_username".into())
        );
        assert_eq!(t.render("Mario.Rossi", 63).unwrap(), "u_mario_rossi_rw");
        let t = DbUserTemplate::parse("{claims.https://example.com/user}").unwrap();
        assert_eq!(
            t.placeholder(),
            &Placeholder::Claim("https://example.com/user".into())
        );
        for bad in [
            "{sub}",
            "{claims.}",
            "{claims.a b}",
            "{subject}{subject}",
            "{subject",
            "subject}",
            "}{",
            "App_{subject}",
            "a-{subject}",
            "{subject}.x",
            "{Subject}",
            "{}",
        ] {
            assert!(DbUserTemplate::parse(bad).is_err(), "{bad:?}");
        }
        assert!(DbUserTemplate::looks_like_template("{subject}"));
        assert!(DbUserTemplate::looks_like_template("x}"));
        assert!(!DbUserTemplate::looks_like_template("app_rw"));
    }

    #[test]
    fn the_mapping_rule() {
        assert_eq!(identifier("Alice").unwrap(), "alice");
        assert_eq!(
            identifier("mario.rossi@example.com").unwrap(),
            "mario_rossi_example_com"
        );
        assert_eq!(identifier("jürgen").unwrap(), "j_rgen");
        assert_eq!(identifier("1st").unwrap(), "1st");
        assert_eq!(identifier("a b;DROP").unwrap(), "a_b_drop");
        for unsafe_only in ["", "...", "日本", "_", " \t"] {
            assert_eq!(
                identifier(unsafe_only),
                Err(IdentifierError::NoSafeCharacters),
                "{unsafe_only:?}"
            );
        }
        let t = DbUserTemplate::parse("{subject}").unwrap();
        assert_eq!(t.render(&"a".repeat(63), 63).unwrap().len(), 63);
        assert_eq!(
            t.render(&"a".repeat(64), 63),
            Err(IdentifierError::TooLong { max: 63 })
        );
        assert_eq!(
            t.render(&"a".repeat(33), 32),
            Err(IdentifierError::TooLong { max: 32 })
        );
        for reserved in [
            "rdsadmin",
            "Postgres",
            "ADMIN",
            "pg_monitor",
            "rds_superuser",
            "rds-iam",
        ] {
            assert_eq!(
                t.render(reserved, 63),
                Err(IdentifierError::Reserved),
                "{reserved}"
            );
        }
        // The literal text counts: "p_" + "g_x" is not "pg_…", but "rds_" + anything is.
        let prefixed = DbUserTemplate::parse("rds_{subject}").unwrap();
        assert_eq!(prefixed.render("x", 63), Err(IdentifierError::Reserved));
    }

    proptest! {
        #[test]
        fn rendered_names_are_safe_identifiers(value in "\\PC{0,80}") {
            let t = DbUserTemplate::parse("{subject}").unwrap();
            if let Ok(name) = t.render(&value, 63) {
                prop_assert!(!name.is_empty() && name.len() <= 63);
                prop_assert!(name.bytes().all(is_identifier_byte));
                prop_assert!(name.bytes().any(|b| b != b'_'));
                prop_assert!(!is_reserved(&name));
                // The same value always maps to the same name.
                prop_assert_eq!(t.render(&value, 63).unwrap(), name);
            }
        }

        #[test]
        fn mapping_keeps_safe_names(value in "[a-z][a-z0-9_]{0,40}") {
            prop_assume!(!is_reserved(&value));
            let t = DbUserTemplate::parse("{subject}").unwrap();
            prop_assert_eq!(t.render(&value, 63).unwrap(), value);
        }
    }
}
