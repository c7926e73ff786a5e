//! Shared application state handed to every handler.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::broker::Broker;

/// Cheap to clone: one `Arc`.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Configuration, credentials and the token cache.
    pub broker: Arc<Broker>,
    /// Caller authentication.
    pub auth: Arc<Authenticator>,
}
