//! `rds-token-broker proxy`: a local database proxy that signs in with broker tokens, so
//! applications, pools and GUIs connect to `127.0.0.1` with no password and no token code
//! (docs/proxy.md).
//!
//! The pieces: [`config`] (flags and TOML), [`listener`] (accept, limit, dispatch by the
//! target's engine, shutdown), [`signin`] (the [`signin::SignInSource`] seam every front
//! end signs in through), [`tokens`] (the broker-backed source: one cached token per
//! target and user, refreshed ahead), [`pg`] (the PostgreSQL front end), [`mysql`] (the
//! MySQL / MariaDB front end) and [`stats`] (metrics).

pub mod config;
pub mod listener;
pub mod mysql;
pub mod pg;
pub mod signin;
pub mod stats;
pub mod targets;
pub mod tokens;

use std::sync::Arc;

use anyhow::Context as _;
use secrecy::SecretString;
use tokio::sync::Semaphore;

use crate::client::BrokerClient;
use crate::clock::{SharedClock, SystemClock};
pub use config::ProxyArgs;
use listener::Shared;

/// Runs the proxy until SIGTERM/SIGINT, then drains.
pub async fn run(settings: config::Settings) -> anyhow::Result<()> {
    crate::telemetry::init(crate::config::LogFormat::Json);
    let _ = crate::metrics::handle();
    let client = Arc::new(BrokerClient::new(&settings.broker).await?);
    let db_tls =
        tokens::database_tls(settings.db_ca_file.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock: SharedClock = Arc::new(SystemClock);
    let fresh = tokens::Freshness {
        min_remaining: settings.min_remaining,
        refresh_ahead: std::time::Duration::from_secs(120),
    };
    let source = tokens::BrokerSource::new(client.clone(), db_tls, fresh, clock);
    let client_tls = match &settings.client_tls {
        Some((cert, key)) => {
            Some(crate::tls::acceptor(cert.clone(), key.clone()).context("--client-tls-cert")?)
        }
        None => None,
    };
    let client_password = match &settings.client_password_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --client-password-file {}", p.display()))?;
            let pw = text.trim_end_matches(['\r', '\n']).to_owned();
            anyhow::ensure!(
                !pw.is_empty(),
                "--client-password-file {} is empty",
                p.display()
            );
            Some(SecretString::from(pw))
        }
        None => None,
    };
    let shared = Arc::new(Shared {
        source: Arc::new(source),
        client_tls,
        client_password,
        cancels: Arc::default(),
        engines: targets::Engines::new(client),
    });
    let listens = engines_at_start(&settings.listen, &shared.engines).await?;
    let limit = Arc::new(Semaphore::new(settings.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for l in &listens {
        let bound = listener::bind(&l.addr)
            .await
            .with_context(|| format!("cannot listen on {} for {}", l.addr, l.target))?;
        tracing::info!(target_name = %l.target, address = %bound.local(), "proxy listening on {}", bound.local());
        tasks.push(tokio::spawn(listener::accept_loop(
            bound,
            l.clone(),
            shared.clone(),
            limit.clone(),
            stop_rx.clone(),
        )));
    }
    if let Some(addr) = settings.http_listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on --http-listen {addr}"))?;
        tracing::info!(address = %addr, "proxy metrics listening on http://{}/metrics", l.local_addr().map(|a| a.to_string()).unwrap_or_default());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(l, http_router())
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await;
        });
    }
    crate::startup::shutdown_signal().await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let open = settings.max_connections - limit.available_permits();
    if open > 0 {
        tracing::info!(
            open,
            grace_s = settings.shutdown_grace.as_secs(),
            "stopped accepting; waiting for open connections"
        );
        let all = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(settings.shutdown_grace, limit.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                open = settings.max_connections - limit.available_permits(),
                "shutdown grace over; closing the connections still open"
            );
        }
    }
    tracing::info!("proxy stopped");
    Ok(())
}

/// The listeners with each target's engine asked from the broker now, so that a target
/// whose engine the proxy does not speak (a cache, say) stops the start with the reason.
/// A broker that cannot answer yet is asked again at the listener's first connection.
async fn engines_at_start(
    listens: &[listener::Listen],
    engines: &targets::Engines,
) -> anyhow::Result<Vec<listener::Listen>> {
    let mut out = listens.to_vec();
    for l in out.iter_mut().filter(|l| l.engine.is_none()) {
        match engines.engine(&l.target).await {
            Ok(e) => l.engine = Some(e),
            Err(e @ signin::SignInError::WrongEngine { .. }) => {
                anyhow::bail!("cannot listen on {} for {}: {e}", l.addr, l.target)
            }
            Err(e) => {
                tracing::warn!(target_name = %l.target, error = %e, "cannot tell the target's engine yet; the broker is asked again at the first connection");
            }
        }
    }
    Ok(out)
}

fn http_router() -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/metrics",
            get(|| async { crate::metrics::handle().render() }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
}
