//! The broker's own AWS credentials.

mod credentials;

pub use credentials::{BrokerCredentials, CredentialsUnavailable, default_chain, dev_chain};
