//! Credential providers whose answers the tests control.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};

/// Returns whatever it was last told to, and counts calls.
#[derive(Debug, Default)]
pub struct Switchable {
    current: Mutex<Option<Credentials>>,
    calls: AtomicUsize,
}

impl Switchable {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn with(c: Credentials) -> Self {
        let s = Self::default();
        s.set(Some(c));
        s
    }

    pub fn set(&self, c: Option<Credentials>) {
        *self.current.lock().unwrap() = c;
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl ProvideCredentials for Switchable {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let r = self
            .current
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| CredentialsError::not_loaded("test provider has no credentials"));
        future::ProvideCredentials::ready(r)
    }
}

/// Long-term credentials, no expiry.
pub fn static_keys() -> Credentials {
    Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "test",
    )
}

/// Temporary credentials expiring at `expiry`.
pub fn session_keys(key_id: &str, expiry: SystemTime) -> Credentials {
    Credentials::new(
        key_id,
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        Some("FwoGZXIvYXdzE/+Ab==".into()),
        Some(expiry),
        "test",
    )
}

/// A provider that never answers, like a hung metadata endpoint.
#[derive(Debug, Default)]
pub struct Hanging;

impl ProvideCredentials for Hanging {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(std::future::pending())
    }
}
