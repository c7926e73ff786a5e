//! Listeners: TCP (loopback unless allowed) or Unix sockets (mode 0660), a connection
//! limit, dispatch to the front end of the target's engine, and graceful shutdown (stop
//! accepting, wait for open connections up to the grace period).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OnceCell, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::signin::{Engine, SignInError, SignInSource};
use super::stats::{self, ConnGauge};
use super::{pg, targets};

/// A client's byte stream (TCP, Unix socket, or TLS over either).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A client connection as the front ends see it.
pub type ClientIo = Box<dyn Io>;

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// One `--listen NAME=ADDR`.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The broker's target name.
    pub target: String,
    /// Where.
    pub addr: ListenAddr,
    /// The target's engine when configured (else asked from the broker).
    pub engine: Option<Engine>,
    /// DB user for every connection of this listener (overrides the client's).
    pub db_user: Option<String>,
}

/// What every connection shares.
pub struct Shared {
    /// Where sign-ins come from.
    pub source: Arc<dyn SignInSource>,
    /// TLS towards clients (`--client-tls-cert/--client-tls-key`), if accepted.
    pub client_tls: Option<TlsAcceptor>,
    /// The password clients must present (`--client-password-file`), if any.
    pub client_password: Option<SecretString>,
    /// PostgreSQL backend keys handed out.
    pub cancels: Arc<pg::cancel::Cancels>,
    /// Engines learned from the broker, per target.
    pub engines: targets::Engines,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// One client connection's context, handed to a front end.
#[derive(Debug)]
pub struct ConnCtx {
    /// The listener's target name.
    pub target: Arc<str>,
    /// The listener's DB user (overrides the client's), if any.
    pub db_user: Option<String>,
    /// Where sign-ins come from.
    pub source: Arc<dyn SignInSource>,
    /// The client's address, for logs (`unix` for a Unix socket).
    pub peer: String,
    /// This connection in the connections gauge; call `open()` once signed in.
    pub gauge: ConnGauge,
    /// Process-wide state.
    pub shared: Arc<Shared>,
}

impl std::fmt::Debug for dyn SignInSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignInSource")
    }
}

/// A bound listener.
pub enum Bound {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket (removed when dropped).
    Unix(UnixListener, PathBuf),
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Self::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds `addr`; a Unix socket gets mode 0660 (a stale socket file is replaced).
pub async fn bind(addr: &ListenAddr) -> std::io::Result<Bound> {
    match addr {
        ListenAddr::Tcp(a) => Ok(Bound::Tcp(TcpListener::bind(a).await?)),
        ListenAddr::Unix(path) => {
            use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
            if let Ok(meta) = std::fs::symlink_metadata(path)
                && meta.file_type().is_socket()
            {
                std::fs::remove_file(path)?;
            }
            let l = UnixListener::bind(path)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
            Ok(Bound::Unix(l, path.clone()))
        }
    }
}

impl Bound {
    /// The real address (port 0 resolved).
    pub fn local(&self) -> String {
        match self {
            Self::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Self::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }

    async fn accept(&self) -> std::io::Result<(ClientIo, String)> {
        match self {
            Self::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Box::new(s), peer.to_string()))
            }
            Self::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((Box::new(s), "unix".to_owned()))
            }
        }
    }
}

/// Accepts on `bound` until `stop` resolves; each connection takes a permit of `limit`
/// (none left: refused with the protocol's error).
pub async fn accept_loop(
    bound: Bound,
    listen: Listen,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let target: Arc<str> = Arc::from(listen.target.as_str());
    let engine = Arc::new(OnceCell::new());
    let told = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(e) = listen.engine {
        let _ = engine.set(e);
    }
    loop {
        let accepted = tokio::select! {
            a = bound.accept() => a,
            _ = stop.changed() => break,
        };
        let (io, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(target_name = %target, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = limit.clone().try_acquire_owned();
        let ctx = ConnCtx {
            target: target.clone(),
            db_user: listen.db_user.clone(),
            source: shared.source.clone(),
            peer,
            gauge: ConnGauge::new(&target),
            shared: shared.clone(),
        };
        let (engine, told) = (engine.clone(), told.clone());
        tokio::spawn(async move {
            let Ok(permit) = permit else {
                metrics::counter!(stats::REFUSED, "target" => ctx.target.to_string()).increment(1);
                tracing::warn!(target_name = %ctx.target, peer = %ctx.peer, "connection refused: --max-connections reached");
                refuse_full(io, engine.get().copied()).await;
                return;
            };
            let found = engine
                .get_or_try_init(|| ctx.shared.engines.engine(&ctx.target))
                .await
                .copied();
            match found {
                Ok(engine) => dispatch(engine, io, ctx).await,
                // No protocol to answer in: the reason goes to the log (once for an
                // engine the proxy does not speak, which will not change).
                Err(e @ SignInError::WrongEngine { .. }) => {
                    if !told.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::error!(target_name = %ctx.target, error = %e, "this listener closes every connection: the proxy does not speak the target's engine");
                    }
                    stats::failure(&ctx.target, e.reason());
                }
                Err(e) => {
                    tracing::warn!(target_name = %ctx.target, peer = %ctx.peer, error = %e, "cannot tell the target's engine; connection closed");
                    stats::failure(&ctx.target, e.reason());
                }
            }
            drop(permit);
        });
    }
}

/// Hands a connection to its engine's front end.
async fn dispatch(engine: Engine, io: ClientIo, ctx: ConnCtx) {
    match engine {
        Engine::Postgres => pg::serve(io, ctx).await,
        Engine::Mysql | Engine::Mariadb => super::mysql::core::serve(io, ctx).await,
    }
}

async fn refuse_full(mut io: ClientIo, engine: Option<Engine>) {
    if engine == Some(Engine::Postgres) {
        let msg = pg::wire::error(
            "53300",
            "too many connections through this proxy (--max-connections)",
            None,
        );
        let _ = io.write_all(&msg).await;
    }
    let _ = io.shutdown().await;
}
