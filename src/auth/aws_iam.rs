//! AWS IAM callers (issuer `aws-iam`): the caller signs an `sts:GetCallerIdentity` request
//! with its own credentials and sends the signed request, not the credentials; the broker
//! checks it, forwards it to STS, and takes the ARN STS answers with as the caller.
//!
//! `Authorization: AWS-IAM <base64 of {"method", "url", "headers", "body"}>`.
//!
//! What the broker checks before contacting anything (STS verifies the signature itself):
//! the URL is one of the STS endpoints (`https://sts.amazonaws.com/`,
//! `https://sts.REGION.amazonaws.com[.cn]/`, or `aws.sts_endpoint`), so no caller can point
//! the broker elsewhere; the body is exactly `Action=GetCallerIdentity&Version=2011-06-15`;
//! `X-RDS-Token-Broker-Server-ID` carries `aws.iam_server_id` and is among the signed
//! headers, so a request signed for another service cannot be replayed here; the signature
//! is SigV4 for `sts` and its date is within 5 minutes of the broker's clock. Answers are
//! cached per signature until that window closes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{AuthError, AuthMethod, Claims, Principal};
use crate::clock::SharedClock;
use crate::config::AWS_IAM_ISSUER;

/// The header that binds a signed request to this broker.
pub const SERVER_ID_HEADER: &str = "x-rds-token-broker-server-id";
/// The only body accepted.
pub const GET_CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// How far the signature's date may be from the broker's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

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

/// Who STS says the caller is.
#[derive(Debug, Clone)]
struct Identity {
    arn: String,
    account: String,
    user_id: String,
    valid_until: SystemTime,
}

/// Checks signed GetCallerIdentity requests and asks STS.
#[derive(Debug)]
pub struct AwsIamVerifier {
    server_id: String,
    sts_endpoint: Option<reqwest::Url>,
    http: reqwest::Client,
    clock: SharedClock,
    cache: moka::sync::Cache<String, Identity>,
}

fn reject(why: impl Into<String>) -> AuthError {
    AuthError::AwsIam(why.into())
}

/// Whether `host` is an AWS STS endpoint (global or regional, commercial or China).
fn is_aws_sts_host(host: &str) -> bool {
    if host == "sts.amazonaws.com" {
        return true;
    }
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"));
    match rest.and_then(|r| r.strip_prefix("sts.")) {
        Some(region) => {
            !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }
        None => false,
    }
}

/// The `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` parts.
struct SigV4 {
    date: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Option<SigV4> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let scope: Vec<&str> = credential?.split('/').collect();
    let [_key, date, _region, service, "aws4_request"] = scope.as_slice() else {
        return None;
    };
    let signature = signature?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(SigV4 {
        date: (*date).to_owned(),
        service: (*service).to_owned(),
        signed_headers: signed?.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
    })
}

/// `20260309T141129Z` as a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        s.get(0..4)?,
        s.get(4..6)?,
        s.get(6..8)?,
        s.get(9..11)?,
        s.get(11..13)?,
        s.get(13..15)?
    );
    if s.get(8..9) != Some("T") || s.get(15..16) != Some("Z") {
        return None;
    }
    crate::clock::parse_rfc3339(&iso)
}

/// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` as the role's ARN
/// (`arn:aws:iam::ACCOUNT:role/ROLE`), so grants can name the role; other ARNs unchanged.
pub fn role_arn_of(arn: &str) -> Option<String> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("sts"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let rest = resource.strip_prefix("assumed-role/")?;
    let (role, _session) = rest.split_once('/')?;
    Some(format!("arn:{partition}:iam::{account}:role/{role}"))
}

fn between<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml.get(start..)?.find(&close)?;
    xml.get(start..end)
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

impl AwsIamVerifier {
    /// For `aws.iam_server_id`; `sts_endpoint` (tests, VPC endpoints) is allowed besides
    /// AWS's own STS hosts.
    pub fn new(
        server_id: &str,
        sts_endpoint: Option<&str>,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let sts_endpoint = sts_endpoint
            .map(|e| reqwest::Url::parse(e).map_err(|err| format!("aws.sts_endpoint: {err}")))
            .transpose()?;
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the STS client: {e}"))?;
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
        if let Some(ep) = &self.sts_endpoint {
            if url.scheme() == ep.scheme()
                && url.host_str() == ep.host_str()
                && url.port_or_known_default() == ep.port_or_known_default()
            {
                return true;
            }
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
            return Err(reject(format!(
                "the signed request's body must be exactly {GET_CALLER_IDENTITY}"
            )));
        }
        let sig = headers
            .get("authorization")
            .and_then(|a| parse_authorization(a))
            .ok_or_else(|| reject("the signed request has no AWS4-HMAC-SHA256 Authorization"))?;
        if sig.service != "sts" {
            return Err(reject("the request is not signed for sts"));
        }
        for required in ["host", "x-amz-date", SERVER_ID_HEADER] {
            if !sig.signed_headers.iter().any(|h| h == required) {
                return Err(reject(format!("{required} must be a signed header")));
            }
        }
        for h in &sig.signed_headers {
            if h != "host" && !headers.contains_key(h) {
                return Err(reject(format!("the signed header {h} is missing")));
            }
        }
        if let Some(host) = headers.get("host") {
            let expected = match (url.host_str(), url.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => String::new(),
            };
            if !host.eq_ignore_ascii_case(&expected) {
                return Err(reject("the Host header does not match the url"));
            }
        }
        if headers.get(SERVER_ID_HEADER).map(String::as_str) != Some(self.server_id.as_str()) {
            return Err(reject(format!(
                "the {SERVER_ID_HEADER} header does not name this broker"
            )));
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

        let key = hex::encode(Sha256::digest(sig.signature.as_bytes()));
        let identity = match self.cache.get(&key) {
            Some(i) if now < i.valid_until => i,
            _ => {
                let identity = self
                    .ask_sts(&url, &headers, &req.body, signed_at + MAX_SKEW)
                    .await?;
                self.cache.insert(key, identity.clone());
                identity
            }
        };
        let mut claims = Claims::new();
        claims.insert("arn".into(), serde_json::Value::from(identity.arn.clone()));
        claims.insert("account".into(), serde_json::Value::from(identity.account));
        claims.insert("user_id".into(), serde_json::Value::from(identity.user_id));
        if let Some(role) = role_arn_of(&identity.arn) {
            claims.insert("role_arn".into(), serde_json::Value::from(role));
        }
        Ok(Principal {
            issuer: AWS_IAM_ISSUER.to_owned(),
            subject: identity.arn,
            auth_method: AuthMethod::AwsIam,
            claims,
        })
    }

    async fn ask_sts(
        &self,
        url: &reqwest::Url,
        headers: &BTreeMap<String, String>,
        body: &str,
        valid_until: SystemTime,
    ) -> Result<Identity, AuthError> {
        let mut req = self.http.post(url.clone()).body(body.to_owned());
        for (k, v) in headers {
            if matches!(
                k.as_str(),
                "host" | "content-length" | "connection" | "transfer-encoding"
            ) {
                continue;
            }
            req = req.header(k, v);
        }
        let res = req.send().await.map_err(|e| {
            tracing::warn!(error = %e, "STS did not answer a GetCallerIdentity");
            AuthError::StsUnavailable
        })?;
        let status = res.status();
        let text = res.text().await.map_err(|_| AuthError::StsUnavailable)?;
        if status.is_server_error() {
            return Err(AuthError::StsUnavailable);
        }
        if !status.is_success() {
            let code = between(&text, "Code").unwrap_or("error");
            let message = between(&text, "Message")
                .map(xml_unescape)
                .unwrap_or_default();
            return Err(reject(format!(
                "STS refused the signed request: {code}: {}",
                message.chars().take(200).collect::<String>()
            )));
        }
        let field = |tag| between(&text, tag).map(xml_unescape);
        match (field("Arn"), field("Account"), field("UserId")) {
            (Some(arn), Some(account), Some(user_id)) if arn.starts_with("arn:") => Ok(Identity {
                arn,
                account,
                user_id,
                valid_until,
            }),
            _ => Err(reject("STS's answer names no identity")),
        }
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

    #[test]
    fn only_sts_hosts_are_sts_hosts() {
        for ok in [
            "sts.amazonaws.com",
            "sts.eu-west-1.amazonaws.com",
            "sts.cn-north-1.amazonaws.com.cn",
        ] {
            assert!(is_aws_sts_host(ok), "{ok}");
        }
        for bad in [
            "sts.amazonaws.com.evil.example",
            "evil.example",
            "sts..amazonaws.com",
            "s3.amazonaws.com",
            "sts.eu-west-1.amazonaws.com@evil",
            "xsts.amazonaws.com",
        ] {
            assert!(!is_aws_sts_host(bad), "{bad}");
        }
    }
}
