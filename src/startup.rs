//! Building the application, binding, serving and shutting down.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::net::TcpListener;

use crate::audit::{AuditLog, AuditStore, Mirror};
use crate::auth::Authenticator;
use crate::aws::BrokerCredentials;
use crate::broker::{Broker, uuid_v7};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::http;
use crate::state::{AppState, Generation};

/// What the application needs from outside, swappable in tests.
#[derive(Debug, Clone)]
pub struct Dependencies {
    /// Time source.
    pub clock: SharedClock,
    /// Base AWS credentials provider.
    pub credentials: SharedCredentialsProvider,
    /// Use this audit store instead of opening `audit.url` (benchmarks compare stores,
    /// including [`AuditStore::Noop`], with everything else equal). Needs `[audit]`.
    pub audit_store: Option<AuditStore>,
}

/// A bound, not yet serving, broker.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    metrics_listener: Option<TcpListener>,
    state: AppState,
}

impl Application {
    /// Binds `config.server.listen` (port 0 picks a free port) and starts loading the
    /// issuers' signing keys in the background.
    pub async fn build(config: Config, deps: Dependencies) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.server.listen).await?;
        let addr = listener.local_addr()?;
        let metrics_listener = match config.server.metrics_listen {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        crate::metrics::handle();
        let auth =
            Authenticator::new(&config, deps.clock.clone()).map_err(std::io::Error::other)?;
        auth.spawn_refresh();
        let credentials = BrokerCredentials::new(deps.credentials, deps.clock.clone());
        let audit = match &config.audit {
            None => {
                tracing::warn!(
                    "no [audit] configured: issuances are only logged, not recorded in an audit trail"
                );
                None
            }
            Some(a) => {
                let store = match deps.audit_store {
                    Some(store) => store,
                    None => AuditStore::open(&a.url)
                        .await
                        .map_err(std::io::Error::other)?,
                };
                let mirror = a.mirror.as_deref().map(Mirror::open).transpose()?;
                let log = AuditLog::start(store, uuid_v7(deps.clock.now()).to_string(), mirror);
                tracing::info!(chain_id = log.chain_id(), "audit trail open");
                spawn_retention(log.clone(), a.retention_days, deps.clock.clone());
                Some(log)
            }
        };
        let broker = Broker::new(&config, credentials, audit, deps.clock.clone())
            .map_err(std::io::Error::other)?;
        let generation = Generation {
            config: Arc::new(config),
            auth,
        };
        let state = AppState {
            broker: Arc::new(broker),
            current: Arc::new(ArcSwap::from_pointee(generation)),
        };
        Ok(Self {
            listener,
            addr,
            metrics_listener,
            state,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of `server.metrics_listen`, when set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Shared state, for tests that inspect the broker.
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let coalescer = self.state.broker.coalescer.clone();
        let audit = self.state.broker.audit.clone();
        let server = self.state.generation().config.server.clone();
        let limits = http::serve::Limits::of(&server);
        let metrics_server = self.metrics_listener.map(|l| {
            let addr = l.local_addr().ok();
            tracing::info!(addr = ?addr, "serving /metrics on its own listener");
            let router = http::metrics_router(self.state.clone());
            let limits = limits.clone();
            tokio::spawn(async move {
                let forever = std::future::pending::<()>();
                http::serve::serve(l, None, router, limits, forever, http::SHUTDOWN_GRACE).await;
            })
        });
        let router = http::router(self.state);
        let (tls, scheme) = match server.tls {
            None => (None, "http"),
            Some((cert, key)) => (
                Some(crate::tls::acceptor(cert, key).map_err(std::io::Error::other)?),
                "https",
            ),
        };
        tracing::info!(addr = %self.addr, "listening on {scheme}://{}", self.addr);
        http::serve::serve(
            self.listener,
            tls,
            router,
            limits,
            shutdown,
            http::SHUTDOWN_GRACE,
        )
        .await;
        if let Some(m) = metrics_server {
            m.abort();
        }
        // In-flight requests are done (their events committed); write what floods folded.
        if let Some(c) = coalescer {
            c.flush().await;
        }
        if let Some(a) = audit
            && !a.flush_mirror(http::SHUTDOWN_GRACE).await
        {
            tracing::warn!(
                "the audit mirror was not fully written within the shutdown grace; the events are committed in the store"
            );
        }
        tracing::info!("stopped: requests in flight answered, their audit events committed");
        Ok(())
    }
}

/// Deletes audit events older than `days`, at start and then hourly, keeping the chains
/// verifiable (see [`AuditLog::prune`]).
fn spawn_retention(log: AuditLog, days: u32, clock: SharedClock) {
    tokio::spawn(async move {
        loop {
            let keep = std::time::Duration::from_secs(u64::from(days) * 86_400);
            let cutoff = clock
                .now()
                .checked_sub(keep)
                .map(crate::clock::rfc3339_millis);
            if let Some(cutoff) = cutoff {
                match log.prune(&cutoff).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(deleted = n, %cutoff, "pruned audit events past retention")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning the audit trail failed; will retry")
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; shutting down"),
        () = term => tracing::info!("SIGTERM received; shutting down"),
    }
}
