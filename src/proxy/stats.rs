//! The proxy's metrics (served on `--http-listen` at `/metrics`), declared with the
//! broker's in [`crate::metrics::names::PROXY`]. Labels take values from the proxy's
//! configuration (listener/target names) or fixed sets, never from a client.

use std::time::Duration;

use crate::metrics::names;

/// Open connections by target and state (`signing_in`, `open`).
pub const CONNECTIONS: &str = names::PROXY_CONNECTIONS.name;
/// Connections accepted, by target.
pub const ACCEPTED: &str = names::PROXY_ACCEPTED.name;
/// Connections refused at accept (the --max-connections limit), by target.
pub const REFUSED: &str = names::PROXY_REFUSED.name;
/// Bytes copied, by target and direction (`to_database`, `to_client`).
pub const BYTES: &str = names::PROXY_BYTES.name;
/// Token requests to the broker, by target and outcome (`ok`, `error`).
pub const TOKEN_FETCHES: &str = names::PROXY_TOKEN_FETCHES.name;
/// Latency of token requests to the broker, by target.
pub const TOKEN_FETCH_SECONDS: &str = names::PROXY_TOKEN_FETCH_DURATION.name;
/// Tokens used for sign-ins, by target and cache result (`hit`, `miss`, `stale`).
pub const TOKENS: &str = names::PROXY_TOKENS.name;
/// Sign-ins that failed, by target and reason.
pub const FAILURES: &str = names::PROXY_FAILURES.name;
/// Sign-ins that succeeded, by target.
pub const SIGNINS: &str = names::PROXY_SIGNINS.name;

/// A token request to the broker finished.
pub fn token_fetch(target: &str, ok: bool, took: Duration) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!(TOKEN_FETCHES, "target" => target.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(TOKEN_FETCH_SECONDS, "target" => target.to_owned())
        .record(took.as_secs_f64());
}

/// A token was used for a sign-in.
pub fn token_served(target: &str, cache: &'static str) {
    metrics::counter!(TOKENS, "target" => target.to_owned(), "cache" => cache).increment(1);
}

/// A sign-in failed.
pub fn failure(target: &str, reason: &'static str) {
    metrics::counter!(FAILURES, "target" => target.to_owned(), "reason" => reason).increment(1);
}

/// A sign-in succeeded.
pub fn signed_in(target: &str) {
    metrics::counter!(SIGNINS, "target" => target.to_owned()).increment(1);
}

/// Bytes copied once a connection ends.
pub fn bytes(target: &str, to_database: u64, to_client: u64) {
    metrics::counter!(BYTES, "target" => target.to_owned(), "direction" => "to_database")
        .increment(to_database);
    metrics::counter!(BYTES, "target" => target.to_owned(), "direction" => "to_client")
        .increment(to_client);
}

/// Tracks one connection's state in [`CONNECTIONS`]; dropping it takes the connection out.
#[derive(Debug)]
pub struct ConnGauge {
    target: String,
    state: &'static str,
}

impl ConnGauge {
    /// A new connection, signing in.
    pub fn new(target: &str) -> Self {
        metrics::counter!(ACCEPTED, "target" => target.to_owned()).increment(1);
        metrics::gauge!(CONNECTIONS, "target" => target.to_owned(), "state" => "signing_in")
            .increment(1.0);
        Self {
            target: target.to_owned(),
            state: "signing_in",
        }
    }

    /// Signed in: bytes flow.
    pub fn open(&mut self) {
        self.move_to("open");
    }

    fn move_to(&mut self, state: &'static str) {
        metrics::gauge!(CONNECTIONS, "target" => self.target.clone(), "state" => self.state)
            .decrement(1.0);
        metrics::gauge!(CONNECTIONS, "target" => self.target.clone(), "state" => state)
            .increment(1.0);
        self.state = state;
    }
}

impl Drop for ConnGauge {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS, "target" => self.target.clone(), "state" => self.state)
            .decrement(1.0);
    }
}
