//! AWS: the broker's own credentials, and role sessions assumed for callers.

mod credentials;
pub mod session;
mod sts;

pub use credentials::{
    BrokerCredentials, CredentialsUnavailable, default_chain, default_chain_in, describe, dev_chain,
};
pub use sts::{RoleSessions, SessionRequest, StsError, StsUnavailable};
