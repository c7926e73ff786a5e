//! The broker's own outbound HTTP: one client constructor for every call it makes to an
//! identity provider or STS (issuers' JWKS and OIDC discovery, the console's OIDC
//! discovery and token endpoint, STS for `AWS-IAM` callers), and reading their answers
//! with a size cap.
//!
//! Every client uses rustls with the platform's roots, the same overall timeout, and a
//! redirect policy chosen by its caller.

use std::sync::Arc;
use std::time::Duration;

/// Time allowed for a whole request, answer included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What a client does with redirects.
#[derive(Debug, Clone, Copy)]
pub enum Redirects {
    /// Never follows one.
    None,
    /// Follows at most this many, none from `https://` to plain `http://` (see
    /// [`no_downgrade`]).
    NoDowngrade(usize),
}

/// Why an HTTP client could not be built (no TLS roots, a TLS back end failing to start).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for {purpose}")]
pub struct ClientBuildError {
    /// What the client is for.
    pub purpose: &'static str,
    /// reqwest's reason.
    #[source]
    pub source: reqwest::Error,
}

/// A client for `purpose` (named in errors) that gives up on connecting after
/// `connect_timeout` and on the whole request after 10 s.
pub fn client(
    purpose: &'static str,
    connect_timeout: Duration,
    redirects: Redirects,
) -> Result<reqwest::Client, ClientBuildError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let redirect = match redirects {
        Redirects::None => reqwest::redirect::Policy::none(),
        Redirects::NoDowngrade(max) => no_downgrade(max),
    };
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(TIMEOUT)
        .redirect(redirect)
        .build()
        .map_err(|source| ClientBuildError { purpose, source })
}

/// Follows at most `max` redirects, none from `https://` to plain `http://` (but to a
/// loopback host): a redirect must not undo the transport checked at configuration load.
pub fn no_downgrade(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let from_https = attempt
            .previous()
            .last()
            .is_some_and(|u| u.scheme() == "https");
        let to = attempt.url();
        let downgrade = to.scheme() != "https"
            && from_https
            && !to.host_str().is_some_and(crate::config::is_loopback_host);
        if attempt.previous().len() > max {
            attempt.error("too many redirects")
        } else if downgrade {
            attempt.error("redirected from https:// to http://")
        } else {
            attempt.follow()
        }
    })
}

/// Why an answer could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The answer is (or announces itself) larger than the cap, in KiB.
    #[error("document larger than {0} KiB")]
    TooLarge(usize),
    /// The connection failed while reading; the cause names no URL.
    #[error("{}", failure(.0))]
    Transport(#[source] Arc<reqwest::Error>),
}

/// A request that failed before or while its answer was read: a word for what went
/// wrong, with reqwest's error (the URL taken out of it) as the cause.
pub fn transport(e: reqwest::Error) -> ReadError {
    ReadError::Transport(Arc::new(e.without_url()))
}

/// `timed out`, `connection failed` or `request failed`.
fn failure(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

/// The body of `res`, read chunk by chunk and abandoned as soon as it passes `max` bytes
/// (or announces more), so an oversized document is never held in memory.
pub async fn read_capped(mut res: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    if res
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(ReadError::TooLarge(max / 1024));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge(max / 1024));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
