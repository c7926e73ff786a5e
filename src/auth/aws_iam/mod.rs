//! AWS IAM callers (issuer `aws-iam`): the caller signs an `sts:GetCallerIdentity` request
//! with its own credentials and sends the signed request, not the credentials; the broker
//! checks it, forwards it to STS, and takes the ARN STS answers with as the caller.
//!
//! `Authorization: AWS-IAM <base64 of {"method", "url", "headers", "body"}>`.
//!
//! What the broker checks before contacting anything (STS verifies the signature itself):
//! the URL is one of the STS endpoints (`https://sts.amazonaws.com/`,
//! `https://sts.REGION.amazonaws.com[.cn]/` with a real region label such as `eu-west-1`
//! or `us-gov-west-1`, or `aws.sts_endpoint`), so no caller can point the broker
//! elsewhere; the body is exactly `Action=GetCallerIdentity&Version=2011-06-15`;
//! `X-RDS-Token-Broker-Server-ID` carries `aws.iam_server_id` and is among the signed
//! headers, so a request signed for another service cannot be replayed here; the signature
//! is SigV4 for `sts` and its date is within 5 minutes of the broker's clock.
//!
//! Only the signed headers and `Authorization` are forwarded (never a proxy, forwarding or
//! `Expect` header the caller slipped in), STS's answer is parsed strictly
//! ([`sts_answer`]), and answers are cached until the 5 minutes are over, keyed by
//! the SHA-256 of everything forwarded: a cached identity is only reused for exactly the
//! request STS checked. Every refusal is a fixed text: nothing the caller sent, and
//! nothing from STS but its error code when that is a plain word, reaches the answer, the
//! logs or the audit trail; the one exception is the audit trail's record of a refusal,
//! which quotes the access key id the signature claims ([`unverified_access_key_id`]),
//! marked unverified, when it has the shape of one.

mod request;
pub mod sts_answer;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::Deserialize;

use super::outbound::{self, Redirects};
use super::{AuthError, AuthMethod, AuthSetupError, Claims, Principal};
use crate::clock::SharedClock;
use crate::config::AWS_IAM_ISSUER;
use request::{
    Forwarded, MAX_HEADERS, NEVER_FORWARDED, is_aws_sts_host, parse_amz_date, parse_authorization,
};
use sts_answer::CallerIdentity;

/// The header that binds a signed request to this broker.
pub const SERVER_ID_HEADER: &str = "x-rds-token-broker-server-id";
/// The only body accepted.
pub const GET_CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// How far the signature's date may be from the broker's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// The access key id an `AWS-IAM` credential (the value after `AWS-IAM `) claims to be
/// signed with, for recording a refused caller: the key of the `Credential=` scope of its
/// `Authorization` header, unverified. Only a value shaped like an access key id (16 to
/// 128 ASCII letters and digits) is returned, so it needs no further cleaning. The
/// secret key never travels in the credential, and the session token
/// (`X-Amz-Security-Token`) is never looked at.
pub fn unverified_access_key_id(encoded: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim()))
        .ok()?;
    let req: SignedRequest = serde_json::from_slice(&raw).ok()?;
    let authorization = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())?;
    let scope = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")?
        .split(',')
        .find_map(|part| part.trim().strip_prefix("Credential="))?;
    let key = scope.split('/').next()?;
    ((16..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| key.to_owned())
}

/// The signed request as the caller sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRequest {
    /// `POST`.
    pub method: String,
    /// The STS endpoint it was signed for.
    pub url: String,
    /// Every header that was signed, plus `Authorization`.
    pub headers: BTreeMap<String, String>,
    /// The form body.
    pub body: String,
}

/// Who STS says the caller is, and until when the answer is reused.
#[derive(Debug, Clone)]
struct Identity {
    caller: CallerIdentity,
    valid_until: SystemTime,
}

/// Largest STS answer read.
const MAX_STS_ANSWER_BYTES: usize = 64 * 1024;

/// Checks signed GetCallerIdentity requests and asks STS.
#[derive(Debug)]
pub struct AwsIamVerifier {
    server_id: String,
    sts_endpoint: Option<reqwest::Url>,
    http: reqwest::Client,
    clock: SharedClock,
    cache: moka::sync::Cache<[u8; 32], Identity>,
}

fn reject(why: &'static str) -> AuthError {
    AuthError::AwsIam(why)
}

/// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` as the role's ARN
/// (`arn:aws:iam::ACCOUNT:role/ROLE`), so grants can name the role; other ARNs unchanged.
pub fn role_arn_of(arn: &str) -> Option<String> {
    let p = crate::domain::ArnParts::split(arn)?;
    if p.service != "sts" || !p.region.is_empty() {
        return None;
    }
    let rest = p.resource.strip_prefix("assumed-role/")?;
    let (role, _session) = rest.split_once('/')?;
    Some(format!(
        "arn:{}:iam::{}:role/{role}",
        p.partition, p.account
    ))
}

impl AwsIamVerifier {
    /// For `aws.iam_server_id`; `sts_endpoint` (tests, VPC endpoints) is allowed besides
    /// AWS's own STS hosts.
    pub fn new(
        server_id: &str,
        sts_endpoint: Option<&str>,
        clock: SharedClock,
    ) -> Result<Self, AuthSetupError> {
        let sts_endpoint = sts_endpoint
            .map(reqwest::Url::parse)
            .transpose()
            .map_err(AuthSetupError::StsEndpoint)?;
        let http = outbound::client(
            "STS (AWS-IAM callers)",
            Duration::from_secs(3),
            Redirects::None,
        )?;
        Ok(Self {
            server_id: server_id.to_owned(),
            sts_endpoint,
            http,
            clock,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(MAX_SKEW * 2)
                .build(),
        })
    }

    /// Whether this verifier was built from these settings (reused across reloads).
    pub fn matches(&self, server_id: &str, sts_endpoint: Option<&str>) -> bool {
        self.server_id == server_id
            && self.sts_endpoint.as_ref().map(reqwest::Url::as_str)
                == sts_endpoint
                    .and_then(|e| reqwest::Url::parse(e).ok())
                    .as_ref()
                    .map(reqwest::Url::as_str)
    }

    fn allowed_url(&self, url: &reqwest::Url) -> bool {
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return false;
        }
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        if let Some(ep) = &self.sts_endpoint
            && url.scheme() == ep.scheme()
            && url.host_str() == ep.host_str()
            && url.port_or_known_default() == ep.port_or_known_default()
        {
            return true;
        }
        url.scheme() == "https"
            && url.port_or_known_default() == Some(443)
            && url.host_str().is_some_and(is_aws_sts_host)
    }

    /// Authenticates the value after `AWS-IAM `.
    pub async fn authenticate(&self, encoded: &str) -> Result<Principal, AuthError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim()))
            .map_err(|_| reject("the AWS-IAM credential is not base64"))?;
        let req: SignedRequest = serde_json::from_slice(&raw).map_err(|_| {
            reject("the AWS-IAM credential is not JSON with method, url, headers and body")
        })?;
        if req.headers.len() > MAX_HEADERS {
            return Err(reject("the signed request has too many headers"));
        }
        let headers: BTreeMap<String, String> = req
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        if req.headers.len() != headers.len() {
            return Err(reject("a header is given twice"));
        }
        if !req.method.eq_ignore_ascii_case("POST") {
            return Err(reject("the signed request must be a POST"));
        }
        let url = reqwest::Url::parse(&req.url)
            .map_err(|_| reject("the signed request's url is not a URL"))?;
        if !self.allowed_url(&url) {
            return Err(reject(
                "the signed request is not for an STS endpoint this broker uses",
            ));
        }
        if req.body != GET_CALLER_IDENTITY {
            return Err(reject(
                "the signed request's body must be exactly Action=GetCallerIdentity&Version=2011-06-15",
            ));
        }
        let authorization = headers
            .get("authorization")
            .map(String::as_str)
            .ok_or_else(|| reject("the signed request has no AWS4-HMAC-SHA256 Authorization"))?;
        let sig = parse_authorization(authorization).ok_or_else(|| {
            reject(
                "the signed request's Authorization is not a well-formed AWS4-HMAC-SHA256 signature",
            )
        })?;
        if sig.service != "sts" {
            return Err(reject("the request is not signed for sts"));
        }
        for (required, refusal) in [
            ("host", "host must be a signed header"),
            ("x-amz-date", "x-amz-date must be a signed header"),
            (
                SERVER_ID_HEADER,
                "x-rds-token-broker-server-id must be a signed header",
            ),
        ] {
            if !sig.signed_headers.iter().any(|h| h == required) {
                return Err(reject(refusal));
            }
        }
        if sig
            .signed_headers
            .iter()
            .any(|h| NEVER_FORWARDED.contains(&h.as_str()) || h.starts_with("x-forwarded-"))
        {
            return Err(reject(
                "a signed header is a connection, proxy or forwarding header",
            ));
        }
        let expected_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => String::new(),
        };
        if let Some(host) = headers.get("host")
            && !host.eq_ignore_ascii_case(&expected_host)
        {
            return Err(reject("the Host header does not match the url"));
        }
        let mut forwarded = Forwarded {
            url: &url,
            headers: Vec::with_capacity(sig.signed_headers.len()),
            authorization,
            body: &req.body,
        };
        for h in sig.signed_headers.iter().filter(|h| *h != "host") {
            let value = headers
                .get(h)
                .ok_or_else(|| reject("a header named in SignedHeaders is missing"))?;
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(reject(
                    "a signed header's value is not a valid HTTP header value",
                ));
            }
            forwarded.headers.push((h.as_str(), value.as_str()));
        }
        if reqwest::header::HeaderValue::from_str(authorization).is_err() {
            return Err(reject(
                "the signed request's Authorization is not a well-formed AWS4-HMAC-SHA256 signature",
            ));
        }
        if headers.get(SERVER_ID_HEADER).map(String::as_str) != Some(self.server_id.as_str()) {
            return Err(reject(
                "the x-rds-token-broker-server-id header does not name this broker",
            ));
        }
        let amz_date = headers.get("x-amz-date").map(String::as_str).unwrap_or("");
        let signed_at =
            parse_amz_date(amz_date).ok_or_else(|| reject("x-amz-date is not a SigV4 date"))?;
        if amz_date.get(0..8) != Some(sig.date.as_str()) {
            return Err(reject("x-amz-date does not match the signature's date"));
        }
        let now = self.clock.now();
        let skew = now
            .duration_since(signed_at)
            .or_else(|e| Ok::<_, ()>(e.duration()))
            .unwrap_or_default();
        if skew > MAX_SKEW {
            return Err(reject(
                "the signed request is more than 5 minutes from the broker's clock",
            ));
        }

        let key = forwarded.digest(&expected_host);
        let identity = match self.cache.get(&key) {
            Some(i) if now < i.valid_until => i,
            _ => {
                let caller = self.ask_sts(&forwarded).await?;
                let identity = Identity {
                    caller,
                    valid_until: signed_at + MAX_SKEW,
                };
                self.cache.insert(key, identity.clone());
                identity
            }
        };
        let CallerIdentity {
            arn,
            account,
            user_id,
        } = identity.caller;
        let mut claims = Claims::new();
        claims.insert("arn".into(), serde_json::Value::from(arn.clone()));
        claims.insert("account".into(), serde_json::Value::from(account));
        claims.insert("user_id".into(), serde_json::Value::from(user_id));
        if let Some(role) = role_arn_of(&arn) {
            claims.insert("role_arn".into(), serde_json::Value::from(role));
        }
        Ok(Principal {
            issuer: AWS_IAM_ISSUER.to_owned(),
            subject: arn,
            auth_method: AuthMethod::AwsIam,
            claims: std::sync::Arc::new(claims),
        })
    }

    /// Sends exactly the signed headers and `Authorization` (reqwest sets `Host` and
    /// `Content-Length` from the URL and body, which were checked to match).
    async fn ask_sts(&self, f: &Forwarded<'_>) -> Result<CallerIdentity, AuthError> {
        let mut req = self
            .http
            .post(f.url.clone())
            .body(f.body.to_owned())
            .header(reqwest::header::AUTHORIZATION, f.authorization);
        for (k, v) in &f.headers {
            if *k == "content-length" {
                continue;
            }
            req = req.header(*k, *v);
        }
        let res = req.send().await.map_err(|e| {
            tracing::warn!(error = %e, "STS did not answer a GetCallerIdentity");
            AuthError::StsUnavailable
        })?;
        let status = res.status();
        let body = outbound::read_capped(res, MAX_STS_ANSWER_BYTES)
            .await
            .map_err(|_| AuthError::StsUnavailable)?;
        if status.is_server_error() {
            return Err(AuthError::StsUnavailable);
        }
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Err(AuthError::StsRefused(sts_answer::error_code(&text)));
        }
        sts_answer::caller_identity(&text).ok_or_else(|| {
            tracing::warn!(
                status = status.as_u16(),
                "STS answered a GetCallerIdentity with no well-formed identity"
            );
            reject("STS's answer names no identity")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_role_arns_become_role_arns() {
        assert_eq!(
            role_arn_of("arn:aws:sts::123456789012:assumed-role/orders-lambda/i-0abc").as_deref(),
            Some("arn:aws:iam::123456789012:role/orders-lambda")
        );
        assert_eq!(
            role_arn_of("arn:aws-cn:sts::123456789012:assumed-role/r/s").as_deref(),
            Some("arn:aws-cn:iam::123456789012:role/r")
        );
        assert_eq!(role_arn_of("arn:aws:iam::123456789012:user/alice"), None);
    }
}
