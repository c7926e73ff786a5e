//! Reloading issuers and policy without a restart: on SIGHUP and when the file changes.
//!
//! A new file is fully checked first; an invalid one is rejected with a log line and the
//! running configuration stays. A valid one replaces `[[issuers]]`, `[[targets]]`,
//! `[[grants]]` and `[[auditors]]` in one atomic swap; in-flight requests finish under the
//! generation they started with. Other sections need a restart: changes to them are
//! logged and not applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::auth::Authenticator;
use crate::clock::SharedClock;
use crate::config;
use crate::state::{AppState, Generation};

/// How often the file is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why a reload was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not validate.
    #[error(transparent)]
    Invalid(#[from] config::ConfigErrors),
    /// The new authenticator could not be built.
    #[error("the new configuration's caller authentication cannot be set up")]
    Refused(#[source] crate::auth::AuthSetupError),
}

/// Reads `path` and, when valid, swaps it in.
pub fn reload(state: &AppState, path: &Path, clock: &SharedClock) -> Result<(), ReloadError> {
    let new = config::load_file(path)?;
    let old = state.generation();
    let (merged, needs_restart) = old.config.reloaded_with(new);
    for section in needs_restart {
        tracing::warn!(
            section,
            "a reload changed a section that only takes effect after a restart; keeping the running values"
        );
    }
    let auth = Authenticator::reusing(&merged, clock.clone(), Some(&old.auth))
        .map_err(ReloadError::Refused)?;
    auth.spawn_refresh();
    let (targets, grants) = (merged.targets.len(), merged.grants.len());
    state.current.store(Arc::new(Generation {
        config: Arc::new(merged),
        auth,
    }));
    tracing::info!(targets, grants, "configuration reloaded");
    Ok(())
}

fn fingerprint(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reloads on SIGHUP and when `path` changes (polled every [`POLL_INTERVAL`]).
pub fn spawn(state: AppState, path: PathBuf, clock: SharedClock) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen = fingerprint(&path);
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        loop {
            #[cfg(unix)]
            let why = tokio::select! {
                _ = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
                _ = tick.tick() => "file change",
            };
            #[cfg(not(unix))]
            let why = {
                tick.tick().await;
                "file change"
            };
            let now = fingerprint(&path);
            if why == "file change" && now == seen {
                continue;
            }
            seen = now;
            match reload(&state, &path, &clock) {
                Ok(()) => tracing::info!(trigger = why, file = %path.display(), "reload applied"),
                Err(e) => {
                    tracing::error!(trigger = why, file = %path.display(), error = %crate::report::Report(&e), "configuration reload rejected; keeping the current configuration")
                }
            }
        }
    });
}
