//! The MySQL front end plugged into the proxy core: the listener's dispatch calls
//! [`serve`] for targets whose engine is `mysql` or `mariadb` (Aurora MySQL answers as
//! `mysql`); sign-ins go through the core's [`crate::proxy::signin::SignInSource`] (the
//! broker-backed token cache) and the connection shows in the core's metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::source::{FailureKind, SignIn, SignInFailure, SignInSource};
use super::{Frontend, MysqlError};
use crate::proxy::listener::{ClientIo, ConnCtx};
use crate::proxy::signin::{Engine, SignInError};
use crate::proxy::stats;

/// How long a sign-in (client handshake, token, server handshake) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The last server version seen per target, announced in later greetings.
fn version_of(target: &str) -> Arc<Mutex<String>> {
    static VERSIONS: OnceLock<Mutex<HashMap<String, Arc<Mutex<String>>>>> = OnceLock::new();
    let map = VERSIONS.get_or_init(Mutex::default);
    let mut map = match map.lock() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    };
    map.entry(target.to_owned()).or_default().clone()
}

/// Serves one MySQL / MariaDB client connection of a proxy listener.
pub async fn serve(mut io: ClientIo, ctx: ConnCtx) {
    let ConnCtx {
        target,
        db_user,
        source,
        peer,
        mut gauge,
        shared,
    } = ctx;
    if shared.client_password.is_some() {
        // Fail closed: the MySQL front end cannot check a client password yet, and a
        // listener the operator protected must not sign anyone in without one.
        let err = super::packet::error(
            1045,
            "28000",
            "rds-token-broker proxy: --client-password-file is not supported on MySQL \
             listeners yet; the proxy refuses MySQL connections rather than skip the check.",
        );
        let _ = super::packet::write(&mut io, 0, &err).await;
        stats::failure(&target, "client_password");
        tracing::warn!(target_name = %target, peer = %peer, "mysql connection refused: --client-password-file is not supported for MySQL");
        return;
    }
    let fe = Frontend::sharing(db_user, HANDSHAKE_TIMEOUT, version_of(&target));
    let core = Core {
        target: &target,
        source: &*source,
        used: Mutex::default(),
    };
    let outcome = fe.serve_with(io, &core, || gauge.open()).await;
    if let Err(MysqlError::Refused { .. }) = &outcome
        && let Some((db_user, used)) = core.used.into_inner().unwrap_or_else(|p| p.into_inner())
    {
        source.refused(&target, Some(&db_user), &used).await;
    }
    match outcome {
        Ok(s) => {
            stats::signed_in(&target);
            stats::bytes(&target, s.copied.to_server, s.copied.to_client);
            tracing::info!(target_name = %target, peer = %peer, db_user = %s.db_user, "mysql connection closed");
        }
        Err(e) => {
            stats::failure(&target, failure_reason(&e));
            tracing::warn!(target_name = %target, peer = %peer, error = %e, "mysql sign-in failed");
        }
    }
}

/// The core's failure label for `e` (its `SignInError::reason` values).
fn failure_reason(e: &MysqlError) -> &'static str {
    match e {
        MysqlError::Client(_) | MysqlError::ClientTls => "client_protocol",
        MysqlError::Token(f) => match f.kind {
            FailureKind::BrokerUnreachable => "broker_unreachable",
            FailureKind::Unauthorized => "broker_401",
            FailureKind::Forbidden => "broker_403",
            FailureKind::Throttled(_) => "broker_429",
            FailureKind::Other => "broker_error",
        },
        MysqlError::Connect { .. } => "database_unreachable",
        MysqlError::NoTls(_) => "database_refused_tls",
        MysqlError::Tls { .. } => "database_tls",
        MysqlError::Refused { .. } => "database_refused",
        MysqlError::Server(_) | MysqlError::ServerError { .. } | MysqlError::Plugin(_) => {
            "database_protocol"
        }
    }
}

/// The core's token source seen through the MySQL front end's seam.
struct Core<'a> {
    target: &'a str,
    source: &'a dyn crate::proxy::signin::SignInSource,
    /// The DB user asked for and the sign-in handed out, to forget it when refused.
    used: Mutex<Option<(String, Arc<crate::proxy::signin::SignIn>)>>,
}

impl SignInSource for Core<'_> {
    fn sign_in<'a>(&'a self, db_user: &'a str) -> BoxFuture<'a, Result<SignIn, SignInFailure>> {
        Box::pin(async move {
            let s = self
                .source
                .sign_in(self.target, Some(db_user))
                .await
                .map_err(|e| failure(&e))?;
            if s.engine == Engine::Postgres {
                return Err(failure(&SignInError::WrongEngine {
                    target: self.target.to_owned(),
                    engine: s.engine.as_str().into(),
                    expected: "mysql or mariadb",
                }));
            }
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            *used = Some((db_user.to_owned(), s.clone()));
            Ok(SignIn {
                host: s.host.clone(),
                port: s.port,
                server_name: s.server_name.to_str().into_owned(),
                tls: s.tls.clone(),
                db_user: s.db_user.clone(),
                token: s.token.clone(),
            })
        })
    }
}

fn failure(e: &SignInError) -> SignInFailure {
    let kind = match e.reason() {
        "broker_unreachable" => FailureKind::BrokerUnreachable,
        "broker_401" => FailureKind::Unauthorized,
        "broker_403" | "no_user" => FailureKind::Forbidden,
        // The core's message already names the limit and the wait.
        "broker_429" => FailureKind::Throttled(None),
        _ => FailureKind::Other,
    };
    SignInFailure {
        kind,
        message: e.to_string(),
    }
}
