//! The seam between the proxy's listeners and where sign-ins come from: a
//! [`SignInSource`] turns (target, DB user) into a [`SignIn`] (where the database is, how
//! to verify it, and the token to present as the password), or a [`SignInError`] whose
//! message names the cause. Protocol front ends (PostgreSQL here, MySQL beside it) only
//! see this trait; [`crate::proxy::tokens::BrokerSource`] implements it with the broker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use secrecy::SecretString;

/// A database engine, from the broker's answer (`engine`): it picks the wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// PostgreSQL (RDS, Aurora PostgreSQL, RDS Proxy for PostgreSQL).
    Postgres,
    /// MySQL (RDS, Aurora MySQL).
    Mysql,
    /// MariaDB (RDS).
    Mariadb,
}

impl Engine {
    /// The broker's spelling (`postgres`, `mysql`, `mariadb`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "postgres" | "postgresql" | "aurora-postgresql" => Some(Self::Postgres),
            "mysql" | "aurora-mysql" => Some(Self::Mysql),
            "mariadb" => Some(Self::Mariadb),
            _ => None,
        }
    }

    /// A fixed label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Mariadb => "mariadb",
        }
    }
}

/// Everything a front end needs to sign in to the real database for one client.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// The target's name (from the listener).
    pub target: String,
    /// The target's engine.
    pub engine: Engine,
    /// The database's real host name (what the token is signed for, and what the server's
    /// certificate must name).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The DB user the token signs in as.
    pub db_user: String,
    /// The IAM auth token: the password. Never logged.
    pub token: SecretString,
    /// TLS to the database: full chain and host-name verification.
    pub tls: Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry (`host`).
    pub server_name: ServerName<'static>,
}

/// The boxed future of [`SignInSource::sign_in`].
pub type SignInFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<SignIn>, SignInError>> + Send + 'a>>;

/// Where sign-ins come from. Implemented by the broker-backed token cache; tests and other
/// front ends may implement it too.
pub trait SignInSource: Send + Sync + 'static {
    /// A sign-in for `db_user` (or the listener's/grant's default user when `None`) on
    /// `target`. Cached tokens are served without a broker round trip.
    fn sign_in<'a>(&'a self, target: &'a str, db_user: Option<&'a str>) -> SignInFuture<'a>;

    /// The database refused `used`, the sign-in [`SignInSource::sign_in`] gave for
    /// (`target`, `db_user`): forget it (unless a newer one replaced it already), so the
    /// next sign-in asks the broker for a fresh token instead of failing until it expires.
    fn refused<'a>(
        &'a self,
        target: &'a str,
        db_user: Option<&'a str>,
        used: &'a Arc<SignIn>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// Why the proxy could not sign a client in. Every message is safe to show the client:
/// no token, no JWT, no password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignInError {
    /// The broker could not be reached (or did not answer in time) and no usable cached
    /// token was left.
    #[error("the proxy cannot get a token: {0}")]
    BrokerUnreachable(String),
    /// The broker refused the caller's identity (401): the message names the JWT's source.
    #[error("the proxy cannot get a token: {0}")]
    Unauthenticated(String),
    /// The broker refused this target and user (403).
    #[error("the proxy cannot get a token for target {target}, user {db_user}: {message}")]
    Forbidden {
        /// Target name.
        target: String,
        /// DB user asked for (`(default)` when none).
        db_user: String,
        /// The broker's explanation.
        message: String,
    },
    /// The broker throttled the request (429): the limit and the wait.
    #[error("the proxy cannot get a token: {0}")]
    Throttled(String),
    /// Any other broker failure.
    #[error("the proxy cannot get a token: {0}")]
    Broker(String),
    /// The client named no DB user and none is configured.
    #[error(
        "no database user: give one in the connection (user=...) or start the proxy with --db-user"
    )]
    NoUser,
    /// The target is not of this listener's engine.
    #[error("target {target} is a {engine} database; this connection speaks {expected}")]
    WrongEngine {
        /// Target name.
        target: String,
        /// The broker's engine.
        engine: String,
        /// The front end's engine.
        expected: &'static str,
    },
    /// The database's host name from the broker is not usable for TLS.
    #[error("the database host {0:?} is not a valid TLS server name")]
    BadHost(String),
    /// The database could not be reached.
    #[error("cannot reach the database at {addr}: {cause}")]
    DatabaseUnreachable {
        /// host:port.
        addr: String,
        /// Why.
        cause: String,
    },
    /// The database does not offer TLS: the proxy never signs in over plaintext.
    #[error(
        "the database at {0} refused TLS; the proxy never sends a token in cleartext (enable ssl on the server)"
    )]
    DatabaseRefusedTls(String),
    /// TLS to the database failed (certificate verification, usually).
    #[error(
        "TLS with the database at {addr} failed: {cause} (for RDS, pass the RDS CA bundle with --db-ca-file)"
    )]
    Tls {
        /// host:port.
        addr: String,
        /// rustls's reason (what did not match).
        cause: String,
    },
    /// The database refused the token.
    #[error("the database refused the sign-in as {db_user}: {message}. {hints}")]
    DatabaseRefused {
        /// The user signed in as.
        db_user: String,
        /// The server's own message (cleaned, bounded).
        message: String,
        /// The usual causes, in words.
        hints: String,
    },
    /// The database broke the protocol during sign-in.
    #[error("the database at {addr} broke off the sign-in: {cause}")]
    Protocol {
        /// host:port.
        addr: String,
        /// What was wrong.
        cause: String,
    },
}

impl SignInError {
    /// A fixed label for the failures metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BrokerUnreachable(_) => "broker_unreachable",
            Self::Unauthenticated(_) => "broker_401",
            Self::Forbidden { .. } => "broker_403",
            Self::Throttled(_) => "broker_429",
            Self::Broker(_) => "broker_error",
            Self::NoUser => "no_user",
            Self::WrongEngine { .. } => "wrong_engine",
            Self::BadHost(_) => "bad_host",
            Self::DatabaseUnreachable { .. } => "database_unreachable",
            Self::DatabaseRefusedTls(_) => "database_refused_tls",
            Self::Tls { .. } => "database_tls",
            Self::DatabaseRefused { .. } => "database_refused",
            Self::Protocol { .. } => "database_protocol",
        }
    }

    /// True when the failure is about who the caller is or may be (SQLSTATE 28000, MySQL
    /// 1045); false when the database or broker could not be used (08001, MySQL 2003).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Self::Unauthenticated(_)
                | Self::Forbidden { .. }
                | Self::NoUser
                | Self::DatabaseRefused { .. }
        )
    }
}

/// The usual reasons an RDS database refuses an IAM token, for the client's error.
pub fn refusal_hints(engine: Engine, target: &str, db_user: &str) -> String {
    let grant = match engine {
        Engine::Postgres => format!("GRANT rds_iam TO \"{db_user}\""),
        Engine::Mysql | Engine::Mariadb => {
            format!("CREATE USER '{db_user}' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'")
        }
    };
    format!(
        "Usual causes: IAM database authentication is not enabled on the instance; the user \
         lacks IAM sign-in ({grant}); the database user's name differs from the token's \
         ({db_user}); or the broker's role policy for target {target} names another \
         resource id (rds-db:connect on arn:aws:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/{db_user})."
    )
}
