//! Building the application, binding, serving and shutting down.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::net::TcpListener;

use crate::audit::checkpoint::{self, Checkpoints};
use crate::audit::{AuditLog, AuditStore, Mirror, StoreError};
use crate::auth::{AuthSetupError, Authenticator};
use crate::aws::BrokerCredentials;
use crate::broker::{Broker, uuid_v7};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::http;
use crate::ratelimit::RedisError;
use crate::state::{AppState, Generation};
use crate::tls::TlsError;

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

/// Why the broker could not start: which step failed, with the cause as `source`. The
/// messages name configuration keys and addresses, never a secret (a database URL's
/// password is not in them).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// `server.listen` could not be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `server.metrics_listen` could not be bound.
    #[error("cannot listen on {addr} (server.metrics_listen)")]
    MetricsListen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Caller authentication (issuers, `AWS-IAM`, the console's provider) could not be
    /// set up.
    #[error("cannot set up caller authentication")]
    Authentication(#[source] AuthSetupError),
    /// The audit store (`audit.url`) could not be opened: unreachable, refused the
    /// credentials, or its schema could not be migrated.
    #[error("cannot open the audit store (audit.url)")]
    AuditStore(#[source] StoreError),
    /// The audit mirror (`audit.mirror`) could not be opened.
    #[error("cannot open the audit mirror {path} (audit.mirror)")]
    AuditMirror {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint signing key (`[audit.checkpoints]`) could not be loaded.
    #[error("cannot load the audit checkpoint signing key")]
    CheckpointKey(#[source] crate::audit::checkpoint::keys::KeyError),
    /// The rate-limit store (`rate_limit.redis_url`) is unusable.
    #[error("cannot use the rate limit store (rate_limit.redis_url)")]
    Redis(#[source] RedisError),
    /// The TLS certificate or key (`server.tls_cert`, `server.tls_key`) is unusable.
    #[error("cannot serve TLS (server.tls_cert, server.tls_key)")]
    Tls(#[source] TlsError),
}

impl StartupError {
    /// What to do about it, when there is more to say than the error itself.
    pub fn hint(&self) -> Option<String> {
        let in_use = |e: &std::io::Error| e.kind() == std::io::ErrorKind::AddrInUse;
        match self {
            Self::Listen { addr, source } if in_use(source) => Some(format!(
                "another process (another broker?) is using {addr}: stop it, change \
                 server.listen, or let the system pick a free port with --listen {}:0",
                addr.ip()
            )),
            Self::MetricsListen { addr, source } if in_use(source) => Some(format!(
                "another process is using {addr}: stop it, or change server.metrics_listen"
            )),
            _ => None,
        }
    }
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
    pub async fn build(config: Config, deps: Dependencies) -> Result<Self, StartupError> {
        let listen = config.server.listen;
        let listen_failed = |source| StartupError::Listen {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(listen_failed)?;
        let addr = listener.local_addr().map_err(listen_failed)?;
        let metrics_listener = match config.server.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::MetricsListen { addr, source })?,
            ),
            None => None,
        };
        crate::metrics::handle();
        let auth = Authenticator::new(&config, deps.clock.clone())
            .map_err(StartupError::Authentication)?;
        auth.spawn_refresh();
        let credentials = BrokerCredentials::new(deps.credentials.clone(), deps.clock.clone());
        let audit = match &config.audit {
            None => {
                spawn_unaudited_warning();
                None
            }
            Some(a) => {
                let store = match deps.audit_store {
                    Some(store) => store,
                    None => AuditStore::open(&a.url)
                        .await
                        .map_err(StartupError::AuditStore)?,
                };
                let mirror = a
                    .mirror
                    .as_deref()
                    .map(|path| {
                        Mirror::open(path).map_err(|source| StartupError::AuditMirror {
                            path: path.to_owned(),
                            source,
                        })
                    })
                    .transpose()?;
                let log =
                    AuditLog::start(store, uuid_v7(deps.clock.now()).to_string(), mirror.clone());
                tracing::info!(chain_id = log.chain_id(), "audit trail open");
                spawn_retention(log.clone(), a.retention_days, deps.clock.clone());
                Some((log, mirror))
            }
        };
        let checkpoints = match (
            &audit,
            config.audit.as_ref().and_then(|a| a.checkpoints.as_ref()),
        ) {
            (Some((log, mirror)), Some(cp)) => Some(start_checkpoints(
                log,
                cp,
                mirror.clone(),
                config.aws.region.as_ref().map(|r| r.as_str()),
                deps.credentials.clone(),
                deps.clock.clone(),
            )?),
            _ => None,
        };
        let audit = audit.map(|(log, _)| log);
        let broker = Broker::new(&config, credentials, audit, deps.clock.clone())
            .map_err(StartupError::Redis)?;
        let generation = Generation {
            config: Arc::new(config),
            auth,
        };
        let state = AppState::new(crate::state::Shared {
            broker: Arc::new(broker),
            current: Arc::new(ArcSwap::from_pointee(generation)),
            checkpoints,
        });
        if let Some(access) = state.broker.access() {
            let current = state.current.clone();
            access.spawn_expiry_sweep(
                move || current.load().config.clone(),
                crate::access::EXPIRY_SWEEP,
            );
        }
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
    ) -> Result<(), StartupError> {
        let broker = Arc::clone(&self.state.broker);
        let checkpoints = self.state.checkpoints.clone();
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
                Some(crate::tls::acceptor(cert, key).map_err(StartupError::Tls)?),
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
        broker.drain(http::SHUTDOWN_GRACE).await;
        if let Some(c) = checkpoints
            && !c.finish(http::SHUTDOWN_GRACE).await
        {
            tracing::warn!(
                "the last audit checkpoint was not stored and published within the shutdown grace"
            );
        }
        tracing::info!("stopped: requests in flight answered, their audit events committed");
        Ok(())
    }
}

/// Loads the checkpoint signing key and starts the checkpoint maker with its sinks.
fn start_checkpoints(
    log: &AuditLog,
    cp: &crate::config::CheckpointConfig,
    mirror: Option<Mirror>,
    aws_region: Option<&str>,
    credentials: SharedCredentialsProvider,
    clock: SharedClock,
) -> Result<Checkpoints, StartupError> {
    let key = checkpoint::keys::load_signing_key(cp).map_err(StartupError::CheckpointKey)?;
    let mut sinks = Vec::new();
    if let Some(f) = &cp.file {
        sinks.push(checkpoint::sinks::Sink::File(f.clone()));
    }
    if let Some(m) = mirror {
        sinks.push(checkpoint::sinks::Sink::Mirror(m));
    }
    if let Some(s3) = &cp.s3 {
        sinks.push(checkpoint::sinks::Sink::S3(checkpoint::s3::S3Sink::new(
            s3,
            aws_region,
            credentials,
        )));
    }
    tracing::info!(verifier_key = %key.verifier_key(), sinks = sinks.len(), "signing audit checkpoints");
    let settings = checkpoint::Settings {
        origin: cp.origin.clone(),
        interval: cp.interval,
    };
    Ok(Checkpoints::start(log, key, settings, sinks, clock))
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
                        tracing::warn!(error = %crate::report::Report(&e), "pruning the audit trail failed; will retry")
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
}

/// With `[audit] enabled = false`: sets the `audit_disabled` gauge and warns at start and
/// then hourly, so that nobody runs a broker with no audit trail without noticing.
fn spawn_unaudited_warning() {
    metrics::gauge!(crate::metrics::names::AUDIT_DISABLED.name).set(1.0);
    tokio::spawn(async move {
        loop {
            tracing::warn!(
                "[audit] enabled = false: tokens are issued with no audit trail, only logged; \
                 configure [audit] url to record them"
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_in_use_suggests_a_free_port() {
        let e = StartupError::Listen {
            addr: "127.0.0.1:8443".parse().unwrap(),
            source: std::io::ErrorKind::AddrInUse.into(),
        };
        assert_eq!(
            e.hint().as_deref(),
            Some(
                "another process (another broker?) is using 127.0.0.1:8443: stop it, change \
                 server.listen, or let the system pick a free port with --listen 127.0.0.1:0"
            )
        );
        let e = StartupError::Listen {
            addr: "[::1]:8443".parse().unwrap(),
            source: std::io::ErrorKind::PermissionDenied.into(),
        };
        assert_eq!(e.hint(), None);
    }
}
