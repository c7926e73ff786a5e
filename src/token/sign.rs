//! IAM authentication tokens (RDS, Aurora DSQL, ElastiCache, MemoryDB), signed with
//! aws-sigv4, byte-identical to botocore.
//!
//! Every kind is a SigV4 presigned GET without its scheme, signed by one core
//! (`presign`); the kinds differ in service, query, host and lifetime ([`TokenKind`]):
//!
//! * RDS ([`sign_token`]): action `connect` of service `rds-db`, `host:port`;
//! * Aurora DSQL ([`sign_dsql_token`]): `DbConnect` or `DbConnectAdmin` of service `dsql`,
//!   the host without a port, any lifetime up to a week;
//! * ElastiCache and MemoryDB ([`sign_cache_token`]): `connect` with `User` (and
//!   `ResourceType=ServerlessCache`) of service `elasticache` or `memorydb`, the cache name
//!   as the host.
//!
//! botocore is the reference (`generate_db_auth_token`, `generate_db_connect_auth_token`,
//! and its request signer for caches):
//!
//! * every query key and value is percent-encoded per RFC 3986 (unreserved characters
//!   kept, everything else `%XX` over UTF-8, space as `%20`, `+` as `%2B`);
//! * the signed `host` header is the host lower-cased (RDS: plus `:port` unless the port
//!   is 443);
//! * the token keeps the host as configured (RDS: always with the port), and lists the
//!   parameters in botocore's (unsorted) order, the security token just before the
//!   signature.
//!
//! aws-sigv4 decodes the query it is given with `application/x-www-form-urlencoded` rules
//! before it builds the canonical request, so the user name is handed to it already
//! encoded (`%2B`, never a bare `+`), and the `host` header is given explicitly.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use secrecy::SecretString;

/// Lifetime RDS grants a token: `X-Amz-Expires`.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// The SigV4 service name for RDS IAM authentication.
const SERVICE: &str = "rds-db";

/// What a token is for.
#[derive(Debug, Clone, Copy)]
pub struct TokenParams<'a> {
    /// Database host exactly as clients connect to it.
    pub host: &'a str,
    /// Database port.
    pub port: u16,
    /// AWS region of the database.
    pub region: &'a str,
    /// Database user name, unencoded.
    pub db_user: &'a str,
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The host cannot form a URI authority.
    #[error("host {0:?} cannot be signed: not a valid URI authority")]
    InvalidHost(String),
    /// aws-sigv4 refused the request.
    #[error("SigV4 signing failed")]
    Signing(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// aws-sigv4 signed, but left out a query parameter every token has.
    #[error("SigV4 signing failed: aws-sigv4 returned no {0}")]
    Missing(&'static str),
    /// A lifetime the service does not accept.
    #[error("a token cannot be valid for {0} s: Aurora DSQL accepts 1 to 604800 s")]
    Lifetime(u64),
}

/// Signs a token valid for [`TOKEN_LIFETIME`] from `time`.
///
/// The returned string is secret: anyone holding it can log in as `db_user` until it expires.
pub fn sign_token(
    params: TokenParams<'_>,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<SecretString, SignError> {
    sign_token_for(params, credentials, time, TOKEN_LIFETIME)
}

/// [`sign_token`] valid for `lifetime` (at most [`TOKEN_LIFETIME`]): a token that must not
/// outlive an access request.
pub fn sign_token_for(
    params: TokenParams<'_>,
    credentials: &Credentials,
    time: SystemTime,
    lifetime: Duration,
) -> Result<SecretString, SignError> {
    check_lifetime(lifetime, TOKEN_LIFETIME)?;
    let encoded_user = encode(params.db_user);
    let host_lower = params.host.to_ascii_lowercase();
    let host_header = if params.port == 443 {
        Cow::Borrowed(host_lower.as_str())
    } else {
        Cow::Owned(format!("{host_lower}:{}", params.port))
    };
    presign(
        Presign {
            service: SERVICE,
            region: params.region,
            uri: format!(
                "https://{host_lower}:{}/?Action=connect&DBUser={encoded_user}",
                params.port
            ),
            host_header: &host_header,
            token_prefix: format!(
                "{}:{}/?Action=connect&DBUser={encoded_user}",
                params.host, params.port
            ),
            lifetime,
        },
        credentials,
        time,
    )
}

/// The longest lifetime Aurora DSQL accepts for a token: one week.
pub const DSQL_MAX_LIFETIME: Duration = Duration::from_secs(604_800);

/// The `Action` of an Aurora DSQL token for the Postgres role `role`: `DbConnectAdmin`
/// for `admin`, `DbConnect` for every other role.
pub fn dsql_action(role: &str) -> &'static str {
    if role == "admin" {
        "DbConnectAdmin"
    } else {
        "DbConnect"
    }
}

/// A lifetime a token may carry: whole seconds, from 1 s to `max`.
fn check_lifetime(lifetime: Duration, max: Duration) -> Result<(), SignError> {
    if lifetime.is_zero() || lifetime > max || lifetime.subsec_nanos() != 0 {
        return Err(SignError::Lifetime(lifetime.as_secs()));
    }
    Ok(())
}

/// Signs an Aurora DSQL token, byte-identical to botocore's
/// `generate_db_connect_auth_token` (`action` `DbConnect`) and
/// `generate_db_connect_admin_auth_token` (`DbConnectAdmin`): `host/?Action=<action>&...`,
/// service `dsql`, no port, valid for `lifetime` (1 s to [`DSQL_MAX_LIFETIME`]).
pub fn sign_dsql_token(
    host: &str,
    region: &str,
    action: &str,
    lifetime: Duration,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<SecretString, SignError> {
    check_lifetime(lifetime, DSQL_MAX_LIFETIME)?;
    let host_lower = host.to_ascii_lowercase();
    let action = encode(action);
    presign(
        Presign {
            service: "dsql",
            region,
            uri: format!("https://{host_lower}/?Action={action}"),
            host_header: &host_lower,
            token_prefix: format!("{host}/?Action={action}"),
            lifetime,
        },
        credentials,
        time,
    )
}

/// The service of a cache token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheService {
    /// ElastiCache (Valkey, Redis OSS; node-based or serverless): service `elasticache`.
    ElastiCache,
    /// MemoryDB: service `memorydb`.
    MemoryDb,
}

impl CacheService {
    /// The SigV4 service name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ElastiCache => "elasticache",
            Self::MemoryDb => "memorydb",
        }
    }
}

/// What an ElastiCache or MemoryDB token is for.
#[derive(Debug, Clone, Copy)]
pub struct CacheTokenParams<'a> {
    /// Which service.
    pub service: CacheService,
    /// The cache, replication-group or cluster name (lower-case): the signed host.
    pub cache_name: &'a str,
    /// AWS region of the cache.
    pub region: &'a str,
    /// The user id, unencoded.
    pub user: &'a str,
    /// A serverless cache: adds `ResourceType=ServerlessCache`.
    pub serverless: bool,
}

/// Signs an ElastiCache or MemoryDB IAM token the way AWS's samples presign it with
/// botocore: `GET http://<cache name>/?Action=connect&User=<user>`
/// (`&ResourceType=ServerlessCache` for a serverless cache), valid for
/// [`TOKEN_LIFETIME`], scheme stripped. The token is the `AUTH` password of `user`.
pub fn sign_cache_token(
    params: CacheTokenParams<'_>,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<SecretString, SignError> {
    sign_cache_token_for(params, credentials, time, TOKEN_LIFETIME)
}

/// [`sign_cache_token`] valid for `lifetime` (at most [`TOKEN_LIFETIME`]).
pub fn sign_cache_token_for(
    params: CacheTokenParams<'_>,
    credentials: &Credentials,
    time: SystemTime,
    lifetime: Duration,
) -> Result<SecretString, SignError> {
    check_lifetime(lifetime, TOKEN_LIFETIME)?;
    let name = params.cache_name;
    let mut query = format!("Action=connect&User={}", encode(params.user));
    if params.serverless {
        query.push_str("&ResourceType=ServerlessCache");
    }
    presign(
        Presign {
            service: params.service.as_str(),
            region: params.region,
            uri: format!("http://{name}/?{query}"),
            host_header: name,
            token_prefix: format!("{name}/?{query}"),
            lifetime,
        },
        credentials,
        time,
    )
}

/// A token's kind, with what besides host, port, region and user changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// RDS, Aurora and RDS Proxy: service `rds-db`, [`sign_token`].
    Rds,
    /// Aurora DSQL: [`sign_dsql_token`], the action chosen by [`dsql_action`].
    Dsql {
        /// `X-Amz-Expires`.
        lifetime_secs: u32,
    },
    /// ElastiCache or MemoryDB: [`sign_cache_token`].
    Cache {
        /// Which service.
        service: CacheService,
        /// A serverless cache.
        serverless: bool,
    },
}

impl TokenKind {
    /// How long a token of this kind is valid (`X-Amz-Expires`).
    pub fn lifetime(self) -> Duration {
        match self {
            Self::Dsql { lifetime_secs } => Duration::from_secs(u64::from(lifetime_secs)),
            Self::Rds | Self::Cache { .. } => TOKEN_LIFETIME,
        }
    }

    /// Signs a token of this kind. `params.host` is the signed host: the endpoint for RDS
    /// and DSQL, the cache name for a cache; only RDS signs the port; `params.db_user` is
    /// the DB user (RDS), the Postgres role (DSQL: it only chooses the action) or the
    /// cache user id.
    pub fn sign(
        self,
        params: TokenParams<'_>,
        credentials: &Credentials,
        time: SystemTime,
    ) -> Result<SecretString, SignError> {
        self.sign_for(params, credentials, time, self.lifetime())
    }

    /// [`TokenKind::sign`] with `X-Amz-Expires` set to `lifetime` (whole seconds, at most
    /// the kind's own lifetime).
    pub fn sign_for(
        self,
        params: TokenParams<'_>,
        credentials: &Credentials,
        time: SystemTime,
        lifetime: Duration,
    ) -> Result<SecretString, SignError> {
        if lifetime > self.lifetime() {
            return Err(SignError::Lifetime(lifetime.as_secs()));
        }
        match self {
            Self::Rds => sign_token_for(params, credentials, time, lifetime),
            Self::Dsql { .. } => sign_dsql_token(
                params.host,
                params.region,
                dsql_action(params.db_user),
                lifetime,
                credentials,
                time,
            ),
            Self::Cache {
                service,
                serverless,
            } => sign_cache_token_for(
                CacheTokenParams {
                    service,
                    cache_name: params.host,
                    region: params.region,
                    user: params.db_user,
                    serverless,
                },
                credentials,
                time,
                lifetime,
            ),
        }
    }
}

/// One presigned GET: the signed URI (query already percent-encoded), the `host` header,
/// and the token's text before the SigV4 parameters.
struct Presign<'a> {
    service: &'a str,
    region: &'a str,
    uri: String,
    host_header: &'a str,
    token_prefix: String,
    lifetime: Duration,
}

/// Presigns `p` and appends the SigV4 parameters to its prefix in botocore's order, the
/// security token (if any) just before the signature.
fn presign(
    p: Presign<'_>,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<SecretString, SignError> {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(p.lifetime);

    let identity: Identity = credentials.clone().into();
    let signing_params = v4::SigningParams::builder()
        .identity(&identity)
        .region(p.region)
        .name(p.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SignError::Signing(Box::new(e)))?
        .into();

    let request = SignableRequest::new(
        "GET",
        p.uri,
        std::iter::once(("host", p.host_header)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|_| SignError::InvalidHost(p.host_header.to_owned()))?;

    let (instructions, _signature) = sign(request, &signing_params)
        .map_err(|e| SignError::Signing(Box::new(e)))?
        .into_parts();
    let signed = instructions.params();
    let find = |name: &'static str| {
        signed
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_ref())
            .ok_or(SignError::Missing(name))
    };

    let mut token = p.token_prefix;
    token.reserve(512);
    for name in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
    ] {
        push_param(&mut token, name, find(name)?);
    }
    if credentials.session_token().is_some() {
        push_param(
            &mut token,
            "X-Amz-Security-Token",
            find("X-Amz-Security-Token")?,
        );
    }
    push_param(&mut token, "X-Amz-Signature", find("X-Amz-Signature")?);
    Ok(SecretString::from(token))
}

fn push_param(out: &mut String, name: &str, value: &str) {
    out.push('&');
    out.push_str(name);
    out.push('=');
    encode_into(out, value);
}

/// Percent-encodes `value` per RFC 3986: unreserved characters stay, every other byte of
/// its UTF-8 form becomes `%XX` with upper-case hex.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    encode_into(&mut out, value);
    out
}

/// [`encode`], appended to `out`.
pub(crate) fn encode_into(out: &mut String, value: &str) {
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0x0f));
        }
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from(if nibble < 10 {
        b'0' + nibble
    } else {
        b'A' + nibble - 10
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_per_rfc3986() {
        assert_eq!(encode("a+b c@d/é~"), "a%2Bb%20c%40d%2F%C3%A9~");
        assert_eq!(encode("%"), "%25");
    }
}
