//! Accepting and serving connections, with the limits that keep a client that never
//! authenticates from tying up the broker: a cap on open connections in all and per client
//! address, a deadline for each request's headers (hyper's `header_read_timeout`), an idle
//! timeout for kept-alive connections, a bounded header block, and a TLS handshake
//! deadline. The body's own deadline is a layer of the router (see `http::read_body`).
//!
//! Axum's `serve` sets none of these, hence this loop: hyper's HTTP/1 connection builder
//! with tokio's timer, driven per connection, with the graceful shutdown axum would do.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::domain::Cidr;
use crate::domain::address_key;
use crate::metrics::names;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers) read; larger ones get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header fields in one request.
const MAX_HEADERS: usize = 100;

/// The connection limits of one listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections per client address at most.
    pub max_connections_per_ip: usize,
    /// Peers exempt from the per-address cap (load balancers).
    pub trusted_proxies: Vec<Cidr>,
    /// Deadline for a request's headers.
    pub header_read_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
}

impl Limits {
    /// The limits of `server`.
    pub fn of(server: &crate::config::ServerConfig) -> Self {
        Self {
            max_connections: server.max_connections,
            max_connections_per_ip: server.max_connections_per_ip,
            trusted_proxies: server.trusted_proxies.clone(),
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
        }
    }
}

/// Open connections per address.
type PerIp = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Counts open connections, in all and per address.
struct Gate {
    total: Arc<Semaphore>,
    per_ip: PerIp,
    limits: Limits,
}

/// Held while a connection is open; gives its places back when dropped.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    per_ip: Option<(PerIp, IpAddr)>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((map, ip)) = self.per_ip.take() {
            let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = m.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&ip);
                }
            }
        }
    }
}

impl Gate {
    fn new(limits: Limits) -> Self {
        Self {
            total: Arc::new(Semaphore::new(limits.max_connections)),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
            limits,
        }
    }

    /// A place for a connection from `peer`, or `None` when a cap is reached.
    fn admit(&self, peer: IpAddr) -> Option<Admitted> {
        let permit = Arc::clone(&self.total).try_acquire_owned().ok()?;
        if self.limits.trusted_proxies.iter().any(|c| c.contains(peer)) {
            return Some(Admitted {
                _permit: permit,
                per_ip: None,
            });
        }
        let ip = address_key(peer);
        let mut m = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= self.limits.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(Admitted {
            _permit: permit,
            per_ip: Some((Arc::clone(&self.per_ip), ip)),
        })
    }
}

/// A stream that notes when it last moved bytes.
struct Tracked<S> {
    inner: S,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl<S> Tracked<S> {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` completes, then
/// stops accepting, lets open requests finish for up to `grace`, and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let gate = Gate::new(limits.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, usually: pause instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = gate.admit(peer.ip()) else {
            metrics::counter!(names::CONNECTIONS_REFUSED.name).increment(1);
            tracing::debug!(%peer, "connection refused: connection limit reached");
            drop(stream); // closed at once
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            tls.clone(),
            router.clone(),
            limits.clone(),
            stop_rx.clone(),
            admitted,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every open connection holds a permit: all of them back means all are closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(grace, gate.total.acquire_many(all)).await {
        Ok(_) => {}
        Err(_) => tracing::warn!(
            grace_seconds = grace.as_secs(),
            "connections still open after the shutdown grace period; closing them"
        ),
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
    admitted: Admitted,
) {
    match tls {
        None => http(stream, peer, router, limits, stop, admitted).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => http(tls, peer, router, limits, stop, admitted).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn http<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _admitted: Admitted,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let last = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let io = TokioIo::new(Tracked {
        inner: stream,
        last: Arc::clone(&last),
        epoch,
    });
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let tick = (limits.idle_timeout / 4).max(Duration::from_millis(100));
    let mut closing_since: Option<Instant> = None;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if closing_since.is_none() => {
                if changed.is_err() || *stop.borrow() {
                    conn.as_mut().graceful_shutdown();
                    closing_since = Some(Instant::now());
                }
            }
            () = tokio::time::sleep(tick) => {
                let idle_ms = u64::try_from(epoch.elapsed().as_millis())
                    .unwrap_or(u64::MAX)
                    .saturating_sub(last.load(Ordering::Relaxed));
                let idle = Duration::from_millis(idle_ms);
                match closing_since {
                    None if idle >= limits.idle_timeout => {
                        // Closes at once when idle; else after the request in flight.
                        conn.as_mut().graceful_shutdown();
                        closing_since = Some(Instant::now());
                    }
                    // A client that neither sends nor reads keeps nothing open for long.
                    Some(since) if since.elapsed() >= limits.idle_timeout && idle >= limits.idle_timeout => {
                        tracing::debug!(%peer, "closing a connection that stopped moving");
                        return;
                    }
                    _ => {}
                }
            }
        }
    }
}
