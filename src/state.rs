//! Shared application state handed to every handler.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::auth::Authenticator;
use crate::broker::Broker;
use crate::config::Config;

/// What a configuration reload replaces, as one unit: the configuration and the
/// authenticator built from its issuers. A request works with the generation it loaded
/// first, so in-flight requests finish under the policy they started with.
#[derive(Debug)]
pub struct Generation {
    /// The configuration.
    pub config: Arc<Config>,
    /// Caller authentication for `config.issuers`.
    pub auth: Authenticator,
}

/// Handed to every handler and cloned by every layer that holds state: one `Arc`, so a
/// clone is one reference count, not one per part (`bench/README.md`, issue 22).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares.
#[derive(Debug)]
pub struct Shared {
    /// Credentials and the token cache, which outlive reloads.
    pub broker: Arc<Broker>,
    /// The current configuration generation.
    pub current: Arc<ArcSwap<Generation>>,
    /// The checkpoint maker, with `[audit.checkpoints]`.
    pub checkpoints: Option<crate::audit::checkpoint::Checkpoints>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The state around `shared`.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// The current generation.
    pub fn generation(&self) -> Arc<Generation> {
        self.current.load_full()
    }
}
