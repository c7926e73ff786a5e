//! What went wrong on one proxied MySQL connection, and the error packet the client gets
//! for it: 1045 (`ER_ACCESS_DENIED_ERROR`, SQLSTATE 28000) when the database refused the
//! token, 2003 (`CR_CONN_HOST_ERROR`) when the proxy could not get a token or reach the
//! database safely, 1043 (`ER_HANDSHAKE_ERROR`, 08S01) for a malformed client handshake.

use super::packet::{self, PacketError};
use super::source::{FailureKind, SignInFailure};
use crate::domain::text;

/// Why a connection ended without being proxied.
#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    /// The client's handshake was malformed, oversized or asked for something unsupported.
    #[error("bad client handshake: {0}")]
    Client(PacketError),
    /// The client asked for TLS, which this listener does not offer.
    #[error("the client asked for TLS, which this listener does not offer")]
    ClientTls,
    /// No token.
    #[error("no token: {}", .0.message)]
    Token(SignInFailure),
    /// The database could not be reached over TCP.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// host:port.
        target: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server does not offer TLS: the proxy never signs in in plaintext.
    #[error("{0} does not offer TLS; the proxy never sends a token in plaintext")]
    NoTls(String),
    /// The TLS handshake or certificate verification failed.
    #[error("TLS to {target} failed: {detail}")]
    Tls {
        /// host:port.
        target: String,
        /// What did not match.
        detail: String,
    },
    /// The server spoke something unexpected during sign-in.
    #[error("the database's handshake failed: {0}")]
    Server(PacketError),
    /// The server sent its own error before or during sign-in (not an auth refusal).
    #[error("the database answered error {code}: {message}")]
    ServerError {
        /// Its code.
        code: u16,
        /// Its message (cleaned).
        message: String,
    },
    /// The database refused the token.
    #[error("the database refused the token for {db_user}: {message}")]
    Refused {
        /// The DB user.
        db_user: String,
        /// The database's message (cleaned).
        message: String,
    },
    /// The server asked for an auth method the proxy cannot answer with a token.
    #[error("the database asked for auth plugin {0}, which the proxy cannot answer")]
    Plugin(String),
}

impl MysqlError {
    /// A fixed label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Client(_) | Self::ClientTls => "bad_client_handshake",
            Self::Token(f) => f.kind.label(),
            Self::Connect { .. } => "connect",
            Self::NoTls(_) | Self::Tls { .. } => "tls",
            Self::Server(_) | Self::ServerError { .. } | Self::Plugin(_) => "server_handshake",
            Self::Refused { .. } => "refused",
        }
    }

    /// The error packet payload for the client. `libmariadb`: the client is MariaDB
    /// Connector/C, which shows a 2003 from a server as "malformed packet": it gets 2000
    /// (`CR_UNKNOWN_ERROR`) with the same text instead.
    pub fn packet(&self, libmariadb: bool) -> Vec<u8> {
        let cannot_connect = if libmariadb { 2000 } else { 2003 };
        let (code, state) = match self {
            Self::Client(_) | Self::ClientTls => (1043, "08S01"),
            Self::Refused { .. } => (1045, "28000"),
            Self::Token(f) if f.kind.is_auth() => (1045, "28000"),
            Self::ServerError { code, .. } => (*code, "HY000"),
            _ => (cannot_connect, "HY000"),
        };
        packet::error(code, state, &self.client_message())
    }

    fn client_message(&self) -> String {
        let p = "rds-token-broker proxy";
        match self {
            Self::Token(f) => {
                let wait = match f.kind {
                    FailureKind::Throttled(Some(w)) => {
                        format!(" Retry in {} s.", w.as_secs().max(1))
                    }
                    _ => String::new(),
                };
                format!("{p}: no token from the broker: {}{wait}", f.message)
            }
            Self::Refused { db_user, message } => format!(
                "{p}: the database refused the IAM token for '{db_user}' ({message}). Usual \
                 causes: IAM database authentication is not enabled on the instance; the user \
                 was not created IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'; the DB user \
                 name differs from the one the token is for; the role policy's rds-db:connect \
                 resource names another resource id or user."
            ),
            other => format!("{p}: {other}"),
        }
    }
}

/// The message of a server ERR packet (after the 0xFF), cleaned and bounded.
pub fn server_error(payload: &[u8]) -> (u16, String) {
    let mut c = packet::Cursor::new(payload, "error packet");
    let _ = c.u8();
    let code = c.u16().unwrap_or(0);
    let mut rest = c.rest();
    if rest.first() == Some(&b'#') {
        rest = rest.get(6..).unwrap_or_default();
    }
    (
        code,
        text::cleaned(&String::from_utf8_lossy(rest), text::LONG),
    )
}
