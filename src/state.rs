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

/// Cheap to clone: `Arc`s.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Credentials and the token cache, which outlive reloads.
    pub broker: Arc<Broker>,
    /// The current configuration generation.
    pub current: Arc<ArcSwap<Generation>>,
    /// The checkpoint maker, with `[audit.checkpoints]`.
    pub checkpoints: Option<crate::audit::checkpoint::Checkpoints>,
}

impl AppState {
    /// The current generation.
    pub fn generation(&self) -> Arc<Generation> {
        self.current.load_full()
    }
}
