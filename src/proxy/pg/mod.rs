//! The PostgreSQL front end: answers `SSLRequest`/`GSSENCRequest`, reads the
//! StartupMessage, signs in to the real server with the token, relays everything up to
//! `ReadyForQuery` (handing the client a backend key of the proxy's own, so that its
//! `CancelRequest` finds the right server connection), then copies bytes both ways.
//! Failures reach the client as an `ErrorResponse` (SQLSTATE 28000 or 08001) naming the
//! cause.

pub mod backend;
pub mod cancel;
pub mod wire;

use secrecy::ExposeSecret as _;
use tokio::io::{AsyncWriteExt as _, copy_bidirectional};

use super::listener::{ClientIo, ConnCtx};
use super::signin::{Engine, SignInError};
use super::stats;
use wire::{First, WireError};

/// Serves one client connection to completion.
pub async fn serve(io: ClientIo, mut ctx: ConnCtx) {
    let target = ctx.target.clone();
    if let Err(why) = run(io, &mut ctx).await {
        stats::failure(&target, why);
    }
}

/// SQLSTATE and message for a sign-in failure.
fn sign_in_error(e: &SignInError) -> Vec<u8> {
    let code = if e.is_auth() { "28000" } else { "08001" };
    wire::error(code, &e.to_string(), None)
}

async fn refuse(io: &mut ClientIo, packet: &[u8]) {
    let _ = io.write_all(packet).await;
    let _ = io.shutdown().await;
}

async fn run(mut io: ClientIo, ctx: &mut ConnCtx) -> Result<(), &'static str> {
    let mut tls_done = false;
    let (version, mut params) = loop {
        let first = match wire::read_first(&mut io).await {
            Ok(f) => f,
            Err(WireError::Closed) => return Ok(()),
            Err(e) => {
                tracing::info!(target_name = %ctx.target, peer = %ctx.peer, error = %e, "refused a malformed PostgreSQL startup");
                refuse(&mut io, &wire::error("08P01", &e.to_string(), None)).await;
                return Err("protocol");
            }
        };
        match first {
            First::Ssl if !tls_done => match &ctx.shared.client_tls {
                Some(acceptor) => {
                    io.write_all(b"S").await.map_err(|_| "client_io")?;
                    let tls = acceptor.accept(io).await.map_err(|_| "client_tls")?;
                    io = Box::new(tls);
                    tls_done = true;
                }
                None => io.write_all(b"N").await.map_err(|_| "client_io")?,
            },
            First::GssEnc if !tls_done => io.write_all(b"N").await.map_err(|_| "client_io")?,
            First::Ssl | First::GssEnc => {
                refuse(
                    &mut io,
                    &wire::error("08P01", "encryption requested twice", None),
                )
                .await;
                return Err("protocol");
            }
            First::Cancel { pid, secret } => {
                ctx.shared.cancels.cancel(pid, &secret).await;
                return Ok(());
            }
            First::Startup { version, params } => break (version, params),
        }
    };
    let client_user = params
        .iter()
        .find(|(k, _)| k == "user")
        .map(|(_, v)| v.clone());
    if let Some(expected) = &ctx.shared.client_password {
        check_client_password(&mut io, expected.expose_secret().as_bytes()).await?;
    }
    let user = ctx.db_user.clone().or(client_user);
    let sign_in = match ctx.source.sign_in(&ctx.target, user.as_deref()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(target_name = %ctx.target, peer = %ctx.peer, error = %e, "sign-in failed");
            refuse(&mut io, &sign_in_error(&e)).await;
            return Err(e.reason());
        }
    };
    if sign_in.engine != Engine::Postgres {
        let e = SignInError::WrongEngine {
            target: ctx.target.to_string(),
            engine: sign_in.engine.as_str().into(),
            expected: "postgres",
        };
        refuse(&mut io, &sign_in_error(&e)).await;
        return Err(e.reason());
    }
    // The server sees the token's user, whatever the client said.
    params.retain(|(k, _)| k != "user");
    params.insert(0, ("user".to_owned(), sign_in.db_user.clone()));
    let mut server = match backend::sign_in(&sign_in, version, &params).await {
        Ok(s) => s,
        Err(backend::Failure::SignIn(e)) => {
            if matches!(e, SignInError::DatabaseRefused { .. }) {
                ctx.source
                    .refused(&ctx.target, user.as_deref(), &sign_in)
                    .await;
            }
            tracing::warn!(target_name = %ctx.target, peer = %ctx.peer, db_user = %sign_in.db_user, error = %e, "sign-in to the database failed");
            refuse(&mut io, &sign_in_error(&e)).await;
            return Err(e.reason());
        }
        Err(backend::Failure::Server(packet)) => {
            refuse(&mut io, &packet).await;
            return Err("database_error");
        }
    };
    // AuthenticationOk, then the server's messages up to ReadyForQuery.
    io.write_all(&wire::typed(b'R', &0u32.to_be_bytes()))
        .await
        .map_err(|_| "client_io")?;
    let mut key_guard = None;
    loop {
        let (tag, body) = wire::read_typed(&mut server, wire::MAX_MESSAGE)
            .await
            .map_err(|_| "database_protocol")?;
        let out = match tag {
            b'K' => {
                let (mine, guard) = ctx.shared.cancels.register(&sign_in, &body).await;
                key_guard = Some(guard);
                wire::typed(b'K', &mine)
            }
            _ => wire::typed(tag, &body),
        };
        io.write_all(&out).await.map_err(|_| "client_io")?;
        match tag {
            b'Z' => break,
            b'E' => {
                let _ = io.shutdown().await;
                return Err("database_error");
            }
            _ => {}
        }
    }
    stats::signed_in(&ctx.target);
    ctx.gauge.open();
    tracing::debug!(target_name = %ctx.target, peer = %ctx.peer, db_user = %sign_in.db_user, "signed in");
    let (up, down) = copy_bidirectional(&mut io, &mut server)
        .await
        .unwrap_or((0, 0));
    stats::bytes(&ctx.target, up, down);
    drop(key_guard);
    Ok(())
}

/// Asks the client for its password (cleartext: the listener is local or TLS) and
/// compares it with `expected` in constant time.
async fn check_client_password(io: &mut ClientIo, expected: &[u8]) -> Result<(), &'static str> {
    io.write_all(&wire::typed(b'R', &3u32.to_be_bytes()))
        .await
        .map_err(|_| "client_io")?;
    let (tag, body) = match wire::read_typed(io, wire::MAX_STARTUP).await {
        Ok(m) => m,
        Err(_) => {
            refuse(
                io,
                &wire::error("08P01", "expected a password message", None),
            )
            .await;
            return Err("protocol");
        }
    };
    let given = body.strip_suffix(&[0]).unwrap_or(&body);
    let ok =
        tag == b'p' && aws_lc_rs::constant_time::verify_slices_are_equal(given, expected).is_ok();
    if !ok {
        refuse(
            io,
            &wire::error(
                "28P01",
                "password authentication failed: this proxy listener requires its client password (--client-password-file)",
                None,
            ),
        )
        .await;
        return Err("client_password");
    }
    Ok(())
}
