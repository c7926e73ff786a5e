//! Extractors: the caller, and a JSON body whose rejections are [`ApiError`]s.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::{AuthError, Principal};
use crate::broker::{Claimed, Denial, RequestMeta};
use crate::domain::text;
use crate::state::{AppState, Generation};

/// Largest request body accepted (`docs/api.md`, `docs/operating.md#security-limits`).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest `Authorization` header accepted.
pub const MAX_AUTHORIZATION_BYTES: usize = 16 * 1024;

/// The authenticated caller, with the configuration generation that authenticated it:
/// handlers authorize against that same generation.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who is calling.
    pub principal: Principal,
    /// Configuration and authenticator this request uses from start to end.
    pub generation: Arc<Generation>,
}

/// Why a caller was refused: the answer, and what the audit trail records of it when the
/// route audits refused sign-ins (`POST /v1/tokens` does, through [`Refused::record`]).
/// Other routes answer with it as it is.
#[derive(Debug)]
pub struct Refused {
    /// The answer (401, 429, or 503 when a dependency of authentication is down).
    pub error: ApiError,
    /// What the audit trail records.
    pub denial: Denial,
}

impl Refused {
    /// Records the refusal in the audit trail (best effort, coalesced; see
    /// [`crate::broker::Broker::record_denied`]) and gives the answer.
    pub async fn record(self, state: &AppState, meta: &RequestMeta) -> ApiError {
        state.broker.record_denied(meta, self.denial).await;
        self.error
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        self.error.into_response()
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Refused;

    /// Spends nothing of the client address's budget on success; a caller at fault (a bad
    /// credential, not an unreachable key source) is charged to it, and an address over
    /// budget is refused before any authentication work.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refused> {
        let generation = state.generation();
        if generation.config.server.allow_unauthenticated {
            return Ok(Self {
                principal: Principal::anonymous(),
                generation,
            });
        }
        let config = &generation.config;
        let client = client_ip(parts, config);
        if let Some(Err(t)) = client.map(|ip| state.broker.check_client(config, ip)) {
            return Err(Refused {
                error: t.into(),
                denial: Denial {
                    kind: "client_budget",
                    reason: "too many failed authentications from this client address".into(),
                    unverified: None,
                },
            });
        }
        // A bearer token verified before needs no future at all; otherwise boxed, like
        // the issuance: key fetches make this future large.
        let credential = credential(parts);
        if let Ok(Credential::Bearer(token)) = credential
            && let Some(principal) = generation.auth.already_verified(token)
        {
            return Ok(Self {
                principal,
                generation,
            });
        }
        let (result, presented) = Box::pin(authenticate(credential, &generation)).await;
        match result {
            Ok(principal) => Ok(Self {
                principal,
                generation,
            }),
            Err(e) => {
                tracing::info!(reason = %e, "caller rejected");
                if e.is_callers_fault()
                    && let Some(ip) = client
                {
                    state.broker.charge_failed_authentication(config, ip);
                }
                let denial = Denial {
                    kind: e.kind(),
                    reason: e.to_string(),
                    unverified: presented.and_then(Presented::claimed),
                };
                Err(Refused {
                    error: e.into(),
                    denial,
                })
            }
        }
    }
}

/// The credential a caller presented, kept to say whom a refused one claims to be.
enum Presented {
    /// A bearer token.
    Bearer(String),
    /// The value after `AWS-IAM `.
    AwsIam(String),
}

impl Presented {
    /// Who it claims to be (unverified), when that can be read.
    fn claimed(self) -> Option<Claimed> {
        match self {
            Self::Bearer(token) => crate::auth::unverified_identity(&token)
                .map(|(issuer, subject)| Claimed::Token { issuer, subject }),
            Self::AwsIam(credential) => {
                crate::auth::unverified_access_key_id(&credential).map(Claimed::AwsAccessKeyId)
            }
        }
    }
}

/// What an `Authorization` header within bounds presents.
enum Credential<'a> {
    /// `Bearer <JWT>`.
    Bearer(&'a str),
    /// `AWS-IAM <signed GetCallerIdentity>`.
    AwsIam(&'a str),
}

/// Reads the `Authorization` header: the credential, or why there is none to check.
fn credential(parts: &Parts) -> Result<Credential<'_>, AuthError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?;
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(AuthError::TooLarge);
    }
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(Credential::Bearer(token.trim()))
        }
        Some((scheme, credential)) if scheme.eq_ignore_ascii_case("aws-iam") => {
            Ok(Credential::AwsIam(credential))
        }
        _ => Err(AuthError::Missing),
    }
}

/// The client's address: the peer, or the one a trusted proxy forwarded for.
fn client_ip(parts: &Parts, config: &crate::config::Config) -> Option<std::net::IpAddr> {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?
        .0
        .ip();
    let trusted = &config.server.trusted_proxies;
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    Some(crate::domain::client_ip(peer, &forwarded, trusted))
}

/// Checks the credential; also returns it, when there was one.
async fn authenticate(
    credential: Result<Credential<'_>, AuthError>,
    generation: &Generation,
) -> (Result<Principal, AuthError>, Option<Presented>) {
    match credential {
        Ok(Credential::Bearer(token)) => (
            generation.auth.authenticate(token).await,
            Some(Presented::Bearer(token.to_owned())),
        ),
        Ok(Credential::AwsIam(credential)) => (
            generation.auth.authenticate_aws_iam(credential).await,
            Some(Presented::AwsIam(credential.to_owned())),
        ),
        Err(e) => (Err(e), None),
    }
}

/// What the audit trail records about the request itself.
#[derive(Debug, Clone)]
pub struct Meta(pub RequestMeta);

impl FromRequestParts<AppState> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = |name: &str, max: usize| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| text::cleaned(v, max))
        };
        let client_ip = client_ip(parts, &state.generation().config);
        Ok(Self(RequestMeta {
            request_id: header("x-request-id", 128),
            client_ip,
            user_agent: header("user-agent", text::LONG),
        }))
    }
}

/// A JSON request body: 415 unless `Content-Type` is JSON, 413 over 16 KiB, 400 when it
/// does not parse into `T`. Error details name fields, never echo values.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("the request body could not be read".into())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(describe_json_error(&e)))
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {}, column {}", e.line(), e.column());
    match e.classify() {
        Category::Syntax | Category::Io => format!("the request body is not valid JSON ({at})"),
        Category::Eof => "the request body is empty or truncated JSON".into(),
        Category::Data => {
            let msg = e.to_string();
            // serde's messages for missing and unknown fields quote only field names.
            if msg.starts_with("missing field") || msg.starts_with("unknown field") {
                let field_msg = msg.split(" at line").next().unwrap_or(&msg);
                format!("the request body does not match the schema: {field_msg}")
            } else {
                format!(
                    "the request body does not match the schema: a field has the wrong type ({at})"
                )
            }
        }
    }
}
