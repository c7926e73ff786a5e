//! Newtypes for outside input: each has a fallible `parse` and, once built, is valid.
//!
//! Error messages never repeat the rejected value, so they are safe to return to callers.

mod aws;
mod hours;
mod kind;
mod names;
mod net;
mod template;
pub mod text;

pub use aws::{ArnParts, Region, ResourceId, RoleArn};
pub use hours::Hours;
pub use kind::{CacheName, DsqlEndpoint, Kind, kind_of_host};
pub use names::{DbUser, Engine, Hostname, TargetName};
pub use net::{Cidr, address_key, client_ip};
pub use template::{DbUserTemplate, IdentifierError, Placeholder, identifier, is_reserved};

/// Why a value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
