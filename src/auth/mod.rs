//! Who is calling.
//!
//! Bearer-JWT and AWS IAM authentication are separate issues; until they land the only
//! principal is the anonymous caller of a configuration that sets
//! `server.allow_unauthenticated` (loopback listeners only) or of `serve --dev`.

use serde::Serialize;

/// How a caller was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Not authenticated: `server.allow_unauthenticated` or `serve --dev`.
    Unauthenticated,
}

/// An authenticated (or explicitly anonymous) caller.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// Issuer name from configuration.
    pub issuer: String,
    /// Subject.
    pub subject: String,
    /// How the caller was authenticated.
    pub auth_method: AuthMethod,
}

impl Principal {
    /// The caller of an unauthenticated deployment.
    pub fn anonymous() -> Self {
        Self {
            issuer: "none".into(),
            subject: "anonymous".into(),
            auth_method: AuthMethod::Unauthenticated,
        }
    }
}
