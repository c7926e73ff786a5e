//! The seam between the MySQL front end and whatever gets tokens: the proxy core (the
//! broker client with its token cache) implements [`SignInSource`]; tests use a fixed one.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use secrecy::SecretString;

/// Everything needed to sign in as one DB user on the target.
#[derive(Clone)]
pub struct SignIn {
    /// The database's real host (the token is signed for it).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The name the server's certificate must carry (normally `host`).
    pub server_name: String,
    /// TLS settings for the server connection: full verification, roots from
    /// `--db-ca-file` or the system.
    pub tls: Arc<rustls::ClientConfig>,
    /// The DB user the token is for.
    pub db_user: String,
    /// The token: the password. Never logged.
    pub token: SecretString,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("server_name", &self.server_name)
            .field("db_user", &self.db_user)
            .finish_non_exhaustive()
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The broker could not be reached (connection refused, timeout, TLS to the broker).
    BrokerUnreachable,
    /// 401: the caller's credentials were refused.
    Unauthorized,
    /// 403: the policy does not let this caller become this user on this target.
    Forbidden,
    /// 429: too many requests; retry after the wait, if known.
    Throttled(Option<Duration>),
    /// Anything else the broker answered.
    Other,
}

impl FailureKind {
    /// Whether the failure is about who the caller is or may be (401, 403): MySQL 1045
    /// (SQLSTATE 28000), like the PostgreSQL front end's 28000; else 2003.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Unauthorized | Self::Forbidden)
    }

    /// A short fixed label (metrics, logs).
    pub fn label(&self) -> &'static str {
        match self {
            Self::BrokerUnreachable => "broker_unreachable",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Throttled(_) => "throttled",
            Self::Other => "broker_error",
        }
    }
}

/// A failure to get a token, with a message safe to show the client (it names the
/// cause, the JWT's source, the target and the user; never a credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInFailure {
    /// What kind.
    pub kind: FailureKind,
    /// For the client, in words.
    pub message: String,
}

/// Where tokens come from.
pub trait SignInSource: Send + Sync {
    /// A token for `db_user` on this listener's target, with the endpoint to use it on.
    fn sign_in<'a>(&'a self, db_user: &'a str) -> BoxFuture<'a, Result<SignIn, SignInFailure>>;
}
