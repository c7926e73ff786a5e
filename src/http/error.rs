//! One error type for the HTTP edge, rendered as RFC 9457 `application/problem+json`.
//!
//! Domain modules return their own `thiserror` enums; handlers convert them here. Every
//! `detail` is written by us, in product terms ("the audit trail cannot record"): no error
//! body repeats a token, a JWT, a secret, raw input or a dependency's error text. What
//! really went wrong travels with the response as a [`Failure`] extension (never sent),
//! and one middleware (`http::log_failures`) logs it with the request id.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;
use crate::broker::{IssueError, IssueErrorKind, LimitKind, Throttled};

/// The detail of every 403, whatever the cause, so that targets cannot be enumerated.
pub const FORBIDDEN_DETAIL: &str =
    "the target or DB user does not exist, or you are not permitted to use it";

/// What caused an error answer: for the log, never for the client. Causes are the
/// broker's own error types, whose messages (and sources) never contain a token, a JWT, a
/// key or a session token.
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// Wraps an error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(e))
    }

    /// Wraps a boxed error (tower's middleware errors).
    pub fn from_boxed(e: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        Self(Arc::from(e))
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Attached to every server-error answer (and to any answer with a cause): the problem's
/// kind and what caused it, for `http::log_failures` to log once.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The problem's kind (`unavailable`, `internal`, ...).
    pub problem: &'static str,
    /// What caused it, when known.
    pub cause: Option<Cause>,
}

/// A handler panicked (the panic's message is not kept: it could quote anything).
#[derive(Debug, thiserror::Error)]
#[error("a handler panicked")]
pub struct Panicked;

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
    /// 403 by a grant that matches the caller, with a reason the caller may know (which
    /// grant condition failed; why a per-person DB user could not be made).
    #[error("forbidden")]
    ForbiddenBecause(String),
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
    /// 502: an upstream (STS) refused; the detail names the role and STS's error code.
    #[error("bad gateway: {0}")]
    BadGateway(String),
    /// 503: a dependency is unavailable; the detail says which, in product terms.
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
    #[error("internal error")]
    Internal(#[source] Cause),
    /// Any of the above, answered as it is, with what caused it (logged, never sent).
    #[error("{0}")]
    Caused(Box<ApiError>, #[source] Cause),
    /// 404 with our own words (an unknown access request).
    #[error("not found: {0}")]
    NotFoundWith(String),
    /// 403 with our own words, where saying why leaks nothing (self-approval, an approver
    /// who is not one).
    #[error("forbidden: {0}")]
    ForbiddenWith(String),
    /// 403: only an approved access request gives this; the detail says how to ask.
    #[error("access request required: {0}")]
    AccessRequestRequired(String),
    /// 409: the resource is not in a state that allows this.
    #[error("conflict: {0}")]
    Conflict(String),
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
    /// This answer, with `cause` logged when it is sent.
    pub fn caused_by(self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Caused(Box::new(self), Cause::new(cause))
    }

    /// A 503 saying `detail`, with `Retry-After: retry_after`.
    pub fn unavailable(detail: impl Into<String>, retry_after: u32) -> Self {
        Self::Unavailable {
            detail: detail.into(),
            retry_after,
        }
    }

    /// The answer itself, without the cause.
    fn answer(&self) -> &Self {
        match self {
            Self::Caused(inner, _) => inner.answer(),
            other => other,
        }
    }

    /// What caused this answer, when known.
    fn cause(&self) -> Option<Cause> {
        match self {
            Self::Caused(_, c) | Self::Internal(c) => Some(c.clone()),
            _ => None,
        }
    }

    /// The problem's `detail`: our own words, never the rejected input (the audit trail
    /// records it as the reason of a `rejected` event).
    pub fn detail(&self) -> String {
        self.parts().3
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use StatusCode as S;
        match self.answer() {
            Self::BadRequest(d) => (S::BAD_REQUEST, "bad-request", "Bad request", d.clone()),
            Self::Unauthorized(d) => (S::UNAUTHORIZED, "unauthorized", "Unauthorized", d.clone()),
            Self::Forbidden => (
                S::FORBIDDEN,
                "forbidden",
                "Forbidden",
                FORBIDDEN_DETAIL.into(),
            ),
            Self::ForbiddenBecause(d) => (S::FORBIDDEN, "forbidden", "Forbidden", d.clone()),
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
            Self::NotFoundWith(d) => (S::NOT_FOUND, "not-found", "Not found", d.clone()),
            Self::ForbiddenWith(d) => (S::FORBIDDEN, "forbidden", "Forbidden", d.clone()),
            Self::AccessRequestRequired(d) => (
                S::FORBIDDEN,
                "access-request-required",
                "Access request required",
                d.clone(),
            ),
            Self::Conflict(d) => (S::CONFLICT, "conflict", "Conflict", d.clone()),
            Self::Internal(_) | Self::Caused(..) => (
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
        let cause = self.cause();
        let answer = self.answer();
        let problem = Problem {
            kind: format!("urn:rds-token-broker:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail,
            limit: match answer {
                Self::TooManyRequests { limit, .. } => Some(limit.as_str()),
                _ => None,
            },
        };
        let mut res = match serde_json::to_vec(&problem) {
            Ok(body) => (status, body).into_response(),
            // Strings and integers always serialize; should that ever change, the client
            // still gets the status and the log says why the body is missing.
            Err(e) => {
                let mut res = status.into_response();
                res.extensions_mut().insert(Failure {
                    problem: slug,
                    cause: Some(Cause::new(e)),
                });
                return res;
            }
        };
        if status.is_server_error() || cause.is_some() {
            res.extensions_mut().insert(Failure {
                problem: slug,
                cause,
            });
        }
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match answer {
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

/// The detail of a 403 for a target and DB user only an access request gives: what to
/// run to ask for one.
fn access_hint(target: &str, db_user: Option<&str>) -> String {
    let user = db_user.unwrap_or("<db user>");
    format!(
        "an approved access request is required for {target} as {user}: ask with \
         `rds-token-broker access request --target {target} --db-user {user} --for 30m \
         --reason \"...\" --wait` (or POST /v1/access-requests), then retry"
    )
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::KeysUnavailable | AuthError::StsUnavailable => {
                Self::unavailable(format!("cannot authenticate callers: {e}"), 5)
            }
            other => Self::Unauthorized(other.to_string()),
        }
    }
}

impl From<Throttled> for ApiError {
    fn from(t: Throttled) -> Self {
        Self::TooManyRequests {
            limit: t.kind,
            retry_after: t.retry_after_secs(),
        }
    }
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        /// The start of every 503 about the broker's own AWS credentials.
        const CANNOT_SIGN: &str = "the broker cannot sign tokens";
        match e.kind() {
            IssueErrorKind::Forbidden => Self::Forbidden,
            IssueErrorKind::DbUserRequired => Self::BadRequest(e.to_string()),
            IssueErrorKind::Refused => Self::ForbiddenBecause(e.to_string()),
            IssueErrorKind::AccessRequestRequired => Self::AccessRequestRequired(match &e {
                IssueError::AccessRequestRequired { target, db_user } => {
                    access_hint(target, db_user.as_deref())
                }
                _ => e.to_string(),
            }),
            IssueErrorKind::Throttled(t) => t.into(),
            IssueErrorKind::CredentialsUnavailable => {
                Self::unavailable(format!("{CANNOT_SIGN}: no AWS credentials"), 5).caused_by(e)
            }
            // The expiry and the configured minimum, in seconds: product terms.
            IssueErrorKind::CredentialsExpiring => {
                Self::unavailable(format!("{CANNOT_SIGN}: {e}"), 5)
            }
            // The role's ARN and STS's error code (a plain word).
            IssueErrorKind::RoleRefused => Self::BadGateway(e.to_string()),
            IssueErrorKind::RoleUnavailable => {
                Self::unavailable("cannot assume the target's role: STS is unreachable", 5)
                    .caused_by(e)
            }
            IssueErrorKind::AuditUnavailable => {
                Self::unavailable("the audit trail cannot record, so no token is issued", 5)
                    .caused_by(e)
            }
            IssueErrorKind::Internal => Self::Internal(Cause::new(e)),
        }
    }
}
