//! Each listener's engine, asked from the broker once (`GET /v1/targets`) unless the
//! configuration names it: it decides which protocol the listener speaks before the
//! client's first byte (MySQL's server speaks first).

use std::sync::Arc;

use super::signin::{Engine, SignInError};
use crate::client::{self, BrokerClient};

/// Looks up targets' engines.
#[derive(Debug, Clone)]
pub struct Engines {
    client: Arc<BrokerClient>,
}

impl Engines {
    /// Engines from `client`'s broker.
    pub fn new(client: Arc<BrokerClient>) -> Self {
        Self { client }
    }

    /// `target`'s engine, from the broker's target list.
    pub async fn engine(&self, target: &str) -> Result<Engine, SignInError> {
        let list = client::targets::list(&self.client)
            .await
            .map_err(|e| SignInError::BrokerUnreachable(e.to_string()))?;
        let found =
            list.iter()
                .find(|t| t.name == target)
                .ok_or_else(|| SignInError::Forbidden {
                    target: target.to_owned(),
                    db_user: "(any)".into(),
                    message: "the broker lists no such target for this caller (GET /v1/targets)"
                        .into(),
                })?;
        Engine::parse(&found.engine).ok_or_else(|| SignInError::WrongEngine {
            target: target.to_owned(),
            engine: crate::domain::text::cleaned(&found.engine, 40),
            expected: "postgres, mysql or mariadb",
        })
    }
}
