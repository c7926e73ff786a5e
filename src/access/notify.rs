//! Posting access-request transitions to `[notifications] webhook_url`, off the request
//! path: a bounded queue drained by one task, a few attempts with backoff per
//! notification, and `rds_token_broker_notifications_total{result}`. A notification that
//! cannot be queued or sent is counted and logged, never an error for the decision.
//!
//! The body is JSON with a Slack-compatible `text`. With `webhook_secret`, the header
//! `X-Rds-Token-Broker-Signature: sha256=<hex>` carries HMAC-SHA256 of the exact body
//! bytes under the secret (`docs/human-access.md#notifications`).

use std::time::Duration;

use aws_lc_rs::hmac;
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::sync::mpsc;

use super::model::AccessRequest;
use crate::auth::outbound::{self, ClientBuildError, Redirects};
use crate::config::NotificationsConfig;
use crate::metrics::{label, names};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-rds-token-broker-signature";
/// Notifications waiting at most; more are dropped (and counted).
pub const QUEUE: usize = 1024;
/// Attempts per notification.
pub const ATTEMPTS: u32 = 4;
/// Wait before the second attempt; doubled before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// One notification's JSON body.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// What happened: `access_requested`, `access_approved`, `access_denied`,
    /// `access_revoked`, `access_expired` or `break_glass`.
    pub event: &'static str,
    /// One line for people (Slack's `text`).
    pub text: String,
    /// Who did it: `issuer/subject`.
    pub actor: String,
    /// The comment or reason given with it.
    pub comment: Option<String>,
    /// The request after the transition.
    pub request: AccessRequest,
}

impl Notification {
    /// A notification of `event` on `request` by `actor`.
    pub fn new(
        event: &'static str,
        request: &AccessRequest,
        actor: String,
        comment: Option<String>,
    ) -> Self {
        let what = match event {
            "access_requested" => "requests access to",
            "access_approved" => "approved access to",
            "access_denied" => "denied access to",
            "access_revoked" => "revoked access to",
            "access_expired" => "closed (expired) access to",
            "break_glass" => ":rotating_light: BREAK-GLASS: took access to",
            _ => "changed access to",
        };
        let r = request;
        let text = format!(
            "{actor} {what} {} as {} for {} ({} min, state {}, requested by {}/{}): {}{}",
            r.target,
            r.db_user,
            r.requester.subject,
            r.duration_minutes,
            r.state.as_str(),
            r.requester.issuer,
            r.requester.subject,
            r.reason,
            comment
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(|c| format!(" (comment: {c})"))
                .unwrap_or_default(),
        );
        Self {
            event,
            text,
            actor,
            comment,
            request: request.clone(),
        }
    }
}

/// The sending end of the queue.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Notification>,
}

impl Notifier {
    /// Starts the task that posts to `config.webhook_url`.
    pub fn start(config: &NotificationsConfig) -> Result<Self, ClientBuildError> {
        let client = outbound::client("notifications", Duration::from_secs(3), Redirects::None)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let key = config
            .webhook_secret
            .as_ref()
            .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.expose_secret().as_bytes()));
        tokio::spawn(run(client, config.webhook_url.clone(), key, rx));
        Ok(Self { tx })
    }

    /// Queues `n`; drops it (counted) when the queue is full.
    pub fn send(&self, n: Notification) {
        if self.tx.try_send(n).is_err() {
            metrics::counter!(names::NOTIFICATIONS.name, label::RESULT => "dropped").increment(1);
            tracing::warn!("an access-request notification was dropped: the queue is full");
        }
    }
}

/// `sha256=<hex of HMAC-SHA256(body)>`.
pub fn signature(key: &hmac::Key, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac::sign(key, body).as_ref()))
}

async fn run(
    client: reqwest::Client,
    url: String,
    key: Option<hmac::Key>,
    mut rx: mpsc::Receiver<Notification>,
) {
    while let Some(n) = rx.recv().await {
        let Ok(body) = serde_json::to_vec(&n) else {
            continue;
        };
        let mut backoff = FIRST_BACKOFF;
        let mut sent = false;
        for attempt in 1..=ATTEMPTS {
            let mut req = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(k) = &key {
                req = req.header(SIGNATURE_HEADER, signature(k, &body));
            }
            match req.send().await {
                Ok(res) if res.status().is_success() => {
                    sent = true;
                    break;
                }
                Ok(res) => tracing::warn!(
                    status = res.status().as_u16(),
                    attempt,
                    event = n.event,
                    "the notification webhook refused a notification"
                ),
                Err(e) => tracing::warn!(
                    error = %crate::report::Report(&outbound::transport(e)),
                    attempt,
                    event = n.event,
                    "the notification webhook could not be reached"
                ),
            }
            if attempt < ATTEMPTS {
                metrics::counter!(names::NOTIFICATIONS.name, label::RESULT => "retried")
                    .increment(1);
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        let result = if sent { "sent" } else { "failed" };
        metrics::counter!(names::NOTIFICATIONS.name, label::RESULT => result).increment(1);
    }
}
