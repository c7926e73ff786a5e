//! An independent presigner of IAM auth tokens (RDS, Aurora DSQL, ElastiCache, MemoryDB),
//! written from the AWS SigV4 documentation with `hmac` and `sha2` only. It shares no code
//! with the broker (not even its percent-encoder), so agreement between the two is
//! evidence, not tautology.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Which service's token, and what only that service's token has.
#[derive(Clone, Copy, Debug)]
pub enum Kind<'a> {
    /// `rds-db`: `host:port/?Action=connect&DBUser=...`, `host:port` signed (not `:443`).
    Rds,
    /// `dsql`: `host/?Action=<action>`, no user, no port, `X-Amz-Expires=<expires>`.
    Dsql { action: &'a str, expires: u64 },
    /// `elasticache` or `memorydb`: `host/?Action=connect&User=...` (the host is the cache
    /// name), `&ResourceType=ServerlessCache` for a serverless cache.
    Cache { service: &'a str, serverless: bool },
}

pub struct Input<'a> {
    pub kind: Kind<'a>,
    pub host: &'a str,
    pub port: u16,
    pub region: &'a str,
    pub user: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    /// Seconds since the Unix epoch.
    pub time: u64,
}

/// RFC 3986 unreserved characters stay; every other UTF-8 byte becomes `%XX`.
fn uri_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// (YYYYMMDD, YYYYMMDDTHHMMSSZ) in UTC, by the days-from-civil algorithm run backwards.
fn dates(t: u64) -> (String, String) {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    let date = format!("{year:04}{month:02}{day:02}");
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    (date, stamp)
}

pub fn presign(i: &Input<'_>) -> String {
    let (date, stamp) = dates(i.time);
    let (service, expires) = match i.kind {
        Kind::Rds => ("rds-db", 900),
        Kind::Dsql { expires, .. } => ("dsql", expires),
        Kind::Cache { service, .. } => (service, 900),
    };
    let scope = format!("{date}/{}/{service}/aws4_request", i.region);
    let credential = format!("{}/{scope}", i.access_key_id);

    let mut params: Vec<(&str, String)> = match i.kind {
        Kind::Rds => vec![("Action", "connect".into()), ("DBUser", i.user.into())],
        Kind::Dsql { action, .. } => vec![("Action", action.into())],
        Kind::Cache { serverless, .. } => {
            let mut p = vec![("Action", "connect".into()), ("User", i.user.into())];
            if serverless {
                p.push(("ResourceType", "ServerlessCache".into()));
            }
            p
        }
    };
    params.extend([
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".into()),
        ("X-Amz-Credential", credential),
        ("X-Amz-Date", stamp.clone()),
        ("X-Amz-Expires", expires.to_string()),
        ("X-Amz-SignedHeaders", "host".into()),
    ]);
    if let Some(t) = i.session_token {
        params.push(("X-Amz-Security-Token", t.into()));
    }
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    encoded.sort();
    let canonical_query = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let host = i.host.to_lowercase();
    let host_header = if i.port == 443 || !matches!(i.kind, Kind::Rds) {
        host
    } else {
        format!("{host}:{}", i.port)
    };
    let empty_hash = hex::encode(Sha256::digest(b""));
    let canonical_request =
        format!("GET\n/\n{canonical_query}\nhost:{host_header}\n\nhost\n{empty_hash}");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{}", i.secret_access_key).as_bytes(), &date);
    let k_region = hmac(&k_date, i.region);
    let k_service = hmac(&k_region, service);
    let k_signing = hmac(&k_service, "aws4_request");
    let signature = hex::encode(hmac(&k_signing, &string_to_sign));

    // botocore's order: not sorted; the security token just before the signature.
    let mut token = match i.kind {
        Kind::Rds => format!("{}:{}/?", i.host, i.port),
        Kind::Dsql { .. } | Kind::Cache { .. } => format!("{}/?", i.host),
    };
    let ordered = params
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)));
    token.push_str(&ordered.collect::<Vec<_>>().join("&"));
    token.push_str(&format!("&X-Amz-Signature={signature}"));
    token
}
