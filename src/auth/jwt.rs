//! Verifying a bearer JWT against the configured issuers.
//!
//! Order: parse the header (an algorithm jsonwebtoken does not know, such as `none`, is
//! rejected there), refuse HMAC and any algorithm the issuer does not list, pick the
//! issuers by the unverified `iss`, pick keys by `kid` whose family fits the algorithm (no
//! algorithm confusion), verify the signature, then check `aud`, `exp`, `nbf` and `iat`
//! against the broker's clock with the issuer's leeway. Several `[[issuers]]` entries may
//! share one `iss` (say, one for API callers and one for the console's ID tokens, with
//! different audiences): each is tried in configuration order, and the first that
//! accepts the token is the caller's issuer.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::AuthError;
use super::jwks::{IssuerKeys, Key, KeyFamily};

/// Claims of a verified token.
pub type Claims = Map<String, Value>;

/// The unverified `iss` and `sub` of a bearer token, for recording a rejected caller;
/// each cleaned of control and bidi characters and at most 128 characters. Nothing about
/// them is trusted.
pub fn unverified_identity(token: &str) -> Option<(String, String)> {
    let payload = token.split('.').nth(1)?;
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let get = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .map(|s| crate::domain::text::cleaned(s, crate::domain::text::SHORT))
    };
    Some((
        get("iss").unwrap_or_default(),
        get("sub").unwrap_or_default(),
    ))
}

/// Reads `iss` from the payload without verifying anything, to choose the issuer.
fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    let payload = token.split('.').nth(1).ok_or(AuthError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    match claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss.clone()),
        _ => Err(AuthError::MissingClaim("iss")),
    }
}

/// Rejects `none`, HMAC and unknown algorithms by reading the header's `alg` before
/// jsonwebtoken parses the header (it would call an unknown `alg` malformed).
fn check_header_algorithm(token: &str) -> Result<(), AuthError> {
    let header = token.split('.').next().ok_or(AuthError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(AuthError::Malformed)?;
    match alg.parse::<Algorithm>() {
        Ok(a) if KeyFamily::of(a).is_some() => Ok(()),
        _ => Err(AuthError::UnsupportedAlgorithm),
    }
}

/// Verifies `token`; returns the issuer that verified it (the first, in configuration
/// order, whose key verifies the signature and whose claims checks pass) and the claims.
pub async fn verify(
    issuers: &[Arc<IssuerKeys>],
    token: &str,
    now: SystemTime,
) -> Result<(Arc<IssuerKeys>, Claims), AuthError> {
    if token.split('.').count() != 3 {
        return Err(AuthError::Malformed);
    }
    check_header_algorithm(token)?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
    let family = KeyFamily::of(header.alg).ok_or(AuthError::UnsupportedAlgorithm)?;
    let iss = unverified_issuer(token)?;
    let candidates: Vec<&Arc<IssuerKeys>> =
        issuers.iter().filter(|i| i.config.issuer == iss).collect();
    if candidates.is_empty() {
        return Err(AuthError::UnknownIssuer);
    }
    let alg_name = format!("{:?}", header.alg);
    if !candidates
        .iter()
        .any(|i| i.config.algorithms.contains(&alg_name))
    {
        return Err(AuthError::UnsupportedAlgorithm);
    }
    let kid = header.kid.as_deref();
    let usable: Vec<&Arc<IssuerKeys>> = candidates
        .into_iter()
        .filter(|i| i.config.algorithms.contains(&alg_name))
        .collect();
    // Every issuer with this `iss` is tried: several entries may share one `iss` with
    // different audiences (an API issuer and a console issuer), so a claim that fails for
    // one must not stop the next. Only when all fail is the most specific error returned.
    // Two passes: the cached keys, then, for issuers that had no key for the `kid`, the
    // keys again after a refetch (rate-limited, or after waiting for one under way).
    let mut failure = Failure::default();
    let mut to_try = usable.clone();
    for pass in 0..2 {
        let mut without_key = Vec::new();
        for issuer in to_try {
            let keys = issuer.keys();
            let mut had_key = false;
            for key in keys
                .candidates(kid)
                .into_iter()
                .filter(|k| k.family == family)
            {
                had_key = true;
                match check_signature(token, header.alg, key) {
                    Ok(claims) => match check_claims(&issuer.config, &claims, now) {
                        Ok(()) => return Ok((Arc::clone(issuer), claims)),
                        // Verified by this key: no other key of this issuer matters.
                        Err(e) => {
                            failure.claim(e);
                            break;
                        }
                    },
                    Err(e) => failure.signature(e),
                }
            }
            if !had_key {
                without_key.push(issuer);
            }
        }
        if pass == 1 || without_key.is_empty() {
            break;
        }
        for issuer in &without_key {
            issuer.refetch_for_unknown_kid().await;
        }
        to_try = without_key;
    }
    if let Some(e) = failure.most_specific() {
        return Err(e);
    }
    let never_loaded = usable.iter().all(|i| !i.status().0);
    Err(if never_loaded {
        AuthError::KeysUnavailable
    } else {
        AuthError::UnknownKey
    })
}

/// Why the issuers sharing an `iss` refused a token, kept until every one was tried.
#[derive(Default)]
struct Failure {
    /// The first claim check that failed after a signature verified (wrong audience,
    /// expired, ...): the most specific reason.
    claim: Option<AuthError>,
    /// The last signature that did not verify.
    signature: Option<AuthError>,
}

impl Failure {
    fn claim(&mut self, e: AuthError) {
        self.claim.get_or_insert(e);
    }

    fn signature(&mut self, e: AuthError) {
        self.signature = Some(e);
    }

    fn most_specific(self) -> Option<AuthError> {
        self.claim.or(self.signature)
    }
}

fn check_signature(token: &str, alg: Algorithm, key: &Key) -> Result<Claims, AuthError> {
    if key.alg.is_some_and(|a| a != alg) {
        return Err(AuthError::BadSignature);
    }
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<Claims>(token, &key.key, &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
            | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => AuthError::BadSignature,
            _ => AuthError::Malformed,
        })
}

fn numeric(claims: &Claims, name: &'static str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(AuthError::Malformed),
        Some(_) => Err(AuthError::Malformed),
    }
}

fn check_claims(
    config: &crate::config::IssuerConfig,
    claims: &Claims,
    now: SystemTime,
) -> Result<(), AuthError> {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let leeway = config.leeway.as_secs() as i64;
    let exp = numeric(claims, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
    if now > exp + leeway {
        return Err(AuthError::Expired);
    }
    if numeric(claims, "nbf")?.is_some_and(|nbf| now + leeway < nbf) {
        return Err(AuthError::NotYetValid);
    }
    if numeric(claims, "iat")?.is_some_and(|iat| now + leeway < iat) {
        return Err(AuthError::IssuedInFuture);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => config.audiences.contains(a),
        Some(Value::Array(list)) => list.iter().any(|a| {
            a.as_str()
                .is_some_and(|a| config.audiences.iter().any(|c| c == a))
        }),
        _ => false,
    };
    if !audience_ok {
        return Err(AuthError::WrongAudience);
    }
    match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        _ => Err(AuthError::MissingClaim("sub")),
    }
}
