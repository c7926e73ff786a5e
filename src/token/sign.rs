//! RDS IAM authentication tokens, signed with aws-sigv4, byte-identical to botocore.
//!
//! A token is a SigV4 presigned URL for action `connect` of service `rds-db` without its
//! scheme. botocore's `generate_db_auth_token` (what the `aws` CLI runs) is the reference:
//!
//! * every query key and value is percent-encoded per RFC 3986 (unreserved characters
//!   kept, everything else `%XX` over UTF-8, space as `%20`, `+` as `%2B`);
//! * the signed `host` header is the host lower-cased, plus `:port` unless the port is 443;
//! * the token keeps the host as configured, always names the port, and lists the
//!   parameters in botocore's (unsorted) order.
//!
//! aws-sigv4 decodes the query it is given with `application/x-www-form-urlencoded` rules
//! before it builds the canonical request, so the user name is handed to it already
//! encoded (`%2B`, never a bare `+`), and the `host` header is given explicitly.

use std::borrow::Cow;
use std::fmt::Write as _;
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
}

/// Signs a token valid for [`TOKEN_LIFETIME`] from `time`.
///
/// The returned string is secret: anyone holding it can log in as `db_user` until it expires.
pub fn sign_token(
    params: TokenParams<'_>,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<SecretString, SignError> {
    let encoded_user = encode(params.db_user);
    let host_lower = params.host.to_ascii_lowercase();
    let host_header = if params.port == 443 {
        Cow::Borrowed(host_lower.as_str())
    } else {
        Cow::Owned(format!("{host_lower}:{}", params.port))
    };
    let uri = format!(
        "https://{host_lower}:{}/?Action=connect&DBUser={encoded_user}",
        params.port
    );

    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);

    let identity: Identity = credentials.clone().into();
    let signing_params = v4::SigningParams::builder()
        .identity(&identity)
        .region(params.region)
        .name(SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SignError::Signing(Box::new(e)))?
        .into();

    let request = SignableRequest::new(
        "GET",
        uri,
        std::iter::once(("host", host_header.as_ref())),
        SignableBody::Bytes(&[]),
    )
    .map_err(|_| SignError::InvalidHost(params.host.to_owned()))?;

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

    let mut token = String::with_capacity(512 + params.host.len() + encoded_user.len());
    let _ = write!(
        token,
        "{}:{}/?Action=connect&DBUser={encoded_user}",
        params.host, params.port
    );
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

fn encode_into(out: &mut String, value: &str) {
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
