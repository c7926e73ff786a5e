//! The MySQL / MariaDB front end of `rds-token-broker proxy` (RDS MySQL, RDS MariaDB,
//! Aurora MySQL).
//!
//! One client connection, in order: the proxy greets the client itself (protocol 10, the
//! capabilities it can relay, a fresh scramble, the version of the last server it saw),
//! reads the client's `HandshakeResponse41` (bounded; the password in it is ignored),
//! takes the user from it (or `--db-user`), gets a token for that user from its
//! [`SignInSource`], connects to the real server, reads its greeting, upgrades to TLS with
//! an `SSLRequest` and full verification (a server without TLS is an error, never a
//! plaintext sign-in), signs in with the token as the password (`mysql_clear_password`,
//! which RDS asks for through an auth switch, `mysql_native_password` or
//! `caching_sha2_password`), hands the server's OK to the client, then copies bytes until
//! either side closes ([`relay`]). When the sign-in fails the client gets a MySQL error
//! packet that names the cause ([`error`]).

pub mod auth;
pub mod core;
pub mod error;
pub mod handshake;
pub mod packet;
pub mod relay;
mod signin;
pub mod source;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

pub use error::MysqlError;
pub use source::{FailureKind, SignIn, SignInFailure, SignInSource};

use crate::domain::text;

/// The largest client handshake packet read (user, auth data, database, attributes).
pub const CLIENT_HANDSHAKE_LIMIT: usize = 16 * 1024;
/// The version announced before any server was seen.
const DEFAULT_VERSION: &str = "8.0.36-rds-token-broker-proxy";

/// One MySQL listener's front end: settings plus what it learned from the server.
#[derive(Debug)]
pub struct Frontend {
    db_user: Option<String>,
    handshake_timeout: Duration,
    version: Arc<Mutex<String>>,
    next_id: AtomicU32,
}

/// What a finished connection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The DB user it signed in as.
    pub db_user: String,
    /// Bytes copied after sign-in.
    pub copied: relay::Copied,
}

impl Frontend {
    /// A front end that signs in as `db_user` when set (else as the user the client
    /// names), giving up on a sign-in that takes longer than `handshake_timeout`.
    pub fn new(db_user: Option<String>, handshake_timeout: Duration) -> Self {
        Self::sharing(db_user, handshake_timeout, Arc::default())
    }

    /// Like [`Frontend::new`], keeping the last server version seen in `version` (shared
    /// by the connections of one target; empty until a server was seen).
    pub fn sharing(
        db_user: Option<String>,
        handshake_timeout: Duration,
        version: Arc<Mutex<String>>,
    ) -> Self {
        Self {
            db_user,
            handshake_timeout,
            version,
            next_id: AtomicU32::new(1),
        }
    }

    fn version(&self) -> String {
        let v = match self.version.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        };
        if v.is_empty() {
            DEFAULT_VERSION.to_owned()
        } else {
            v
        }
    }

    fn learn_version(&self, v: &str) {
        let v = text::cleaned(v, 64);
        match self.version.lock() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }

    /// Serves one client connection to the end. The client has already received an
    /// error packet when this returns an error from the sign-in.
    pub async fn serve<C>(&self, client: C, source: &dyn SignInSource) -> Result<Stats, MysqlError>
    where
        C: AsyncRead + AsyncWrite + Unpin + Send,
    {
        self.serve_with(client, source, || {}).await
    }

    /// [`Frontend::serve`], calling `signed_in` once the client has the server's OK.
    pub async fn serve_with<C>(
        &self,
        mut client: C,
        source: &dyn SignInSource,
        signed_in: impl FnOnce() + Send,
    ) -> Result<Stats, MysqlError>
    where
        C: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let outcome = tokio::time::timeout(
            self.handshake_timeout,
            signin::sign_in(self, &mut client, source, id),
        )
        .await;
        let (server, db_user) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err((seq, e))) => {
                if let Some((seq, libmariadb)) = seq {
                    let _ = packet::write(&mut client, seq, &e.packet(libmariadb)).await;
                }
                return Err(e);
            }
            Err(_) => {
                return Err(MysqlError::Server(packet::PacketError::Malformed(
                    "sign-in (took longer than the handshake timeout)",
                )));
            }
        };
        signed_in();
        let copied = relay::run(client, server).await.unwrap_or_default();
        Ok(Stats { db_user, copied })
    }
}
