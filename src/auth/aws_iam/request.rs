//! The signed request an `AWS-IAM` caller sends, read before anything is contacted: which
//! STS hosts are STS hosts, the SigV4 `Authorization` header, `X-Amz-Date`, and exactly
//! what is forwarded to STS (and so what the identity cache is keyed by).

use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// Most headers in a signed request.
pub(super) const MAX_HEADERS: usize = 32;

/// Headers that are never forwarded to STS, signed or not: the broker's own connection
/// is not the caller's to shape.
pub(super) const NEVER_FORWARDED: [&str; 10] = [
    "connection",
    "expect",
    "forwarded",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `host` is an AWS STS endpoint: `sts.amazonaws.com`,
/// `sts.REGION.amazonaws.com`, or `sts.cn-REGION.amazonaws.com.cn`.
pub(super) fn is_aws_sts_host(host: &str) -> bool {
    if host == "sts.amazonaws.com" {
        return true;
    }
    if let Some(region) = host
        .strip_prefix("sts.")
        .and_then(|r| r.strip_suffix(".amazonaws.com.cn"))
    {
        return region.starts_with("cn-") && is_region_label(region);
    }
    host.strip_prefix("sts.")
        .and_then(|r| r.strip_suffix(".amazonaws.com"))
        .is_some_and(|region| !region.starts_with("cn-") && is_region_label(region))
}

/// A real region label: `[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]{1,2}`, such as
/// `eu-west-1`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1`.
fn is_region_label(region: &str) -> bool {
    let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let parts: Vec<&str> = region.split('-').collect();
    let (geo, qualifier, direction, number) = match parts.as_slice() {
        [g, d, n] => (*g, None, *d, *n),
        [g, q, d, n] => (*g, Some(*q), *d, *n),
        _ => return false,
    };
    let qualifier_ok = qualifier.is_none_or(|q| {
        q == "gov"
            || q.strip_prefix("iso")
                .is_some_and(|r| r.bytes().all(|b| b.is_ascii_lowercase()))
    });
    geo.len() == 2
        && lower(geo)
        && qualifier_ok
        && lower(direction)
        && (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// A signed header name as SigV4 writes it: 1-64 of `a-z 0-9 - _ .`.
fn is_header_name(h: &str) -> bool {
    (1..=64).contains(&h.len())
        && h.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// The `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` parts.
pub(super) struct SigV4 {
    pub(super) date: String,
    pub(super) service: String,
    pub(super) signed_headers: Vec<String>,
}

pub(super) fn parse_authorization(value: &str) -> Option<SigV4> {
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
    let signed_headers: Vec<String> = signed?.split(';').map(str::to_owned).collect();
    let mut sorted = signed_headers.clone();
    sorted.sort();
    sorted.dedup();
    if signed_headers.len() > MAX_HEADERS
        || sorted.len() != signed_headers.len()
        || !signed_headers.iter().all(|h| is_header_name(h))
    {
        return None;
    }
    Some(SigV4 {
        date: (*date).to_owned(),
        service: (*service).to_owned(),
        signed_headers,
    })
}

/// `20260309T141129Z` as a time.
pub(super) fn parse_amz_date(s: &str) -> Option<SystemTime> {
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

/// What is forwarded to STS, checked: the headers in `SignedHeaders` order (`host` as
/// the URL gives it) plus `Authorization`.
pub(super) struct Forwarded<'a> {
    pub(super) url: &'a reqwest::Url,
    pub(super) headers: Vec<(&'a str, &'a str)>,
    pub(super) authorization: &'a str,
    pub(super) body: &'a str,
}

impl Forwarded<'_> {
    /// SHA-256 over the method, the URL, every signed header's name and value, the body
    /// and `Authorization` (with the signature), each length-prefixed: the identity cache's
    /// key, so a cached answer is reused only for exactly what STS checked.
    pub(super) fn digest(&self, host: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut part = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        part(b"POST");
        part(self.url.as_str().as_bytes());
        part(b"host");
        part(host.as_bytes());
        for (name, value) in &self.headers {
            part(name.as_bytes());
            part(value.as_bytes());
        }
        part(self.body.as_bytes());
        part(self.authorization.as_bytes());
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sts_hosts_are_sts_hosts() {
        for ok in [
            "sts.amazonaws.com",
            "sts.eu-west-1.amazonaws.com",
            "sts.us-gov-west-1.amazonaws.com",
            "sts.ap-southeast-2.amazonaws.com",
            "sts.cn-north-1.amazonaws.com.cn",
            "sts.cn-northwest-1.amazonaws.com.cn",
        ] {
            assert!(is_aws_sts_host(ok), "{ok}");
        }
        for bad in [
            "sts.s3.amazonaws.com",
            "sts.evil.amazonaws.com",
            "sts.x.y.amazonaws.com",
            "sts.eu-west.amazonaws.com",
            "sts.eu-west-1a.amazonaws.com",
            "sts.euw-west-1.amazonaws.com",
            "sts.eu-west-123.amazonaws.com",
            "sts.us-east-1.amazonaws.com.cn",
            "sts.cn-north-1.amazonaws.com",
            "sts.EU-west-1.amazonaws.com",
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
