//! One error type for the HTTP edge, rendered as RFC 9457 `application/problem+json`.
//!
//! Domain modules return their own `thiserror` enums; handlers convert them here. Every
//! `detail` is written by us: no error body repeats a token, a JWT, a secret or raw input.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;
use crate::aws::StsError;
use crate::broker::IssueError;
use crate::ratelimit::{LimitKind, retry_after_secs};
use crate::token::MintError;

/// The detail of every 403, whatever the cause, so that targets cannot be enumerated.
pub const FORBIDDEN_DETAIL: &str =
    "the target or DB user does not exist, or you are not permitted to use it";

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed body or parameters.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: missing or invalid credentials; the text goes into `WWW-Authenticate`.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 403: not permitted, unknown target or DB user.
    #[error("forbidden")]
    Forbidden,
    /// 404: no such route.
    #[error("not found")]
    NotFound,
    /// 405: route exists, method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: body over the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415: body is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 502: an upstream (STS) refused.
    #[error("bad gateway: {0}")]
    BadGateway(String),
    /// 503: a dependency is unavailable.
    #[error("service unavailable: {detail}")]
    Unavailable {
        /// What is unavailable.
        detail: String,
        /// Seconds to wait before retrying.
        retry_after: u32,
    },
    /// 429: a rate limit refused; which one, and when to retry.
    #[error("throttled by the {} limit", limit.as_str())]
    TooManyRequests {
        /// The limit.
        limit: LimitKind,
        /// Whole seconds until a retry can succeed.
        retry_after: u64,
    },
    /// 408: the body did not arrive within `server.body_read_timeout_seconds` (the value).
    #[error("the request body did not arrive in time")]
    BodyTimeout(u64),
    /// 503: the request took longer than `server.request_timeout_seconds`.
    #[error("request timed out")]
    Timeout,
    /// 503: too many requests in flight.
    #[error("overloaded")]
    Overloaded,
    /// 500: a bug; the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    /// For 429: `target` or `principal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'static str>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use StatusCode as S;
        match self {
            Self::BadRequest(d) => (S::BAD_REQUEST, "bad-request", "Bad request", d.clone()),
            Self::Unauthorized(d) => (S::UNAUTHORIZED, "unauthorized", "Unauthorized", d.clone()),
            Self::Forbidden => (
                S::FORBIDDEN,
                "forbidden",
                "Forbidden",
                FORBIDDEN_DETAIL.into(),
            ),
            Self::NotFound => (
                S::NOT_FOUND,
                "not-found",
                "Not found",
                "no such endpoint".into(),
            ),
            Self::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this endpoint does not accept that method".into(),
            ),
            Self::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                "the request body is larger than 16 KiB".into(),
            ),
            Self::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "the request body must be JSON, sent with Content-Type: application/json".into(),
            ),
            Self::BadGateway(d) => (S::BAD_GATEWAY, "upstream-refused", "Bad gateway", d.clone()),
            Self::Unavailable { detail, .. } => (
                S::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                detail.clone(),
            ),
            Self::TooManyRequests { limit, retry_after } => (
                S::TOO_MANY_REQUESTS,
                "throttled",
                "Too many requests",
                match limit {
                    LimitKind::Target => format!(
                        "the target's budget of new database connections is spent \
                         (max_connections_per_second); retry in {retry_after} s"
                    ),
                    LimitKind::Principal => format!(
                        "too many requests from this caller \
                         (rate_limit.per_principal_per_second); retry in {retry_after} s"
                    ),
                    LimitKind::Client => format!(
                        "too many failed authentications or sign-in requests from this \
                         address (rate_limit.per_client_ip_per_second); retry in {retry_after} s"
                    ),
                },
            ),
            Self::BodyTimeout(secs) => (
                S::REQUEST_TIMEOUT,
                "body-timeout",
                "Request timeout",
                format!("the request body did not arrive within {secs} s"),
            ),
            Self::Timeout => (
                S::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timed out",
                "the request took too long and was abandoned; retry".into(),
            ),
            Self::Overloaded => (
                S::SERVICE_UNAVAILABLE,
                "overloaded",
                "Overloaded",
                "the broker is handling too many requests; retry".into(),
            ),
            Self::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the broker failed unexpectedly; the cause is in its log".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title, detail) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = serde_json::to_vec(&Problem {
            kind: format!("urn:rds-token-broker:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail,
            limit: match &self {
                Self::TooManyRequests { limit, .. } => Some(limit.as_str()),
                _ => None,
            },
        })
        .unwrap_or_default();
        let mut res = (status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            Self::Unauthorized(d) => {
                let value = format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    d.replace(['"', '\\'], "'")
                );
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            Self::Unavailable { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Self::TooManyRequests { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Self::BodyTimeout(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::Timeout | Self::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        res
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::KeysUnavailable => Self::Unavailable {
                detail: format!("cannot authenticate callers: {e}"),
                retry_after: 5,
            },
            AuthError::StsUnavailable => Self::Unavailable {
                detail: format!("cannot authenticate callers: {e}"),
                retry_after: 5,
            },
            other => Self::Unauthorized(other.to_string()),
        }
    }
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::Forbidden => Self::Forbidden,
            IssueError::Throttled(t) | IssueError::Mint(MintError::Throttled(t)) => {
                Self::TooManyRequests {
                    limit: t.kind,
                    retry_after: retry_after_secs(t.retry_after),
                }
            }
            IssueError::DbUserRequired => Self::BadRequest(e.to_string()),
            IssueError::NoCredentials(c) => Self::Unavailable {
                detail: format!("the broker cannot sign tokens: {}", c.0),
                retry_after: 5,
            },
            IssueError::Mint(m @ MintError::CredentialsExpiring { .. }) => Self::Unavailable {
                detail: format!("the broker cannot sign tokens: {m}"),
                retry_after: 5,
            },
            IssueError::Mint(MintError::Sign(s)) => Self::Internal(s),
            IssueError::Audit(e) => Self::Unavailable {
                detail: format!("the audit trail cannot record, so no token is issued: {e}"),
                retry_after: 5,
            },
            IssueError::Sts(e @ StsError::Refused { .. }) => Self::BadGateway(e.to_string()),
            IssueError::Sts(e @ StsError::Unavailable(_)) => Self::Unavailable {
                detail: format!("cannot assume the target's role: {e}"),
                retry_after: 5,
            },
        }
    }
}
