//! Flood control for non-issued events: identical events per (outcome, caller or client
//! IP, target, reason) within one second become one event with `count`. The first of a
//! window is recorded at once; the rest are counted and written as one event when the
//! window closes. Issued events never come here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::{AuditEvent, AuditLog};
use crate::clock::SharedClock;

/// How long identical events are folded together.
pub const WINDOW: Duration = Duration::from_secs(1);

type Key = (String, String, String, String);

struct Window {
    opened: SystemTime,
    /// The duplicates seen after the first, with the last of them as the template.
    extra: Option<(i64, AuditEvent)>,
}

/// Coalesces floods of identical non-issued events.
#[derive(Clone)]
pub struct Coalescer {
    windows: Arc<Mutex<HashMap<Key, Window>>>,
    clock: SharedClock,
    log: AuditLog,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

fn key(e: &AuditEvent) -> Key {
    let who = e
        .subject
        .clone()
        .or_else(|| e.client_ip.clone())
        .unwrap_or_default();
    (
        e.outcome.as_str().to_owned(),
        who,
        e.target.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
    )
}

impl Coalescer {
    /// Starts the task that writes closed windows to `log`.
    pub fn start(log: AuditLog, clock: SharedClock) -> Self {
        let c = Self {
            windows: Arc::new(Mutex::new(HashMap::new())),
            clock,
            log,
        };
        let flusher = c.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                flusher.write(flusher.closed(false)).await;
            }
        });
        c
    }

    /// Writes every window now, open or not: at shutdown, so no count is lost.
    pub async fn flush(&self) {
        self.write(self.closed(true)).await;
    }

    async fn write(&self, events: Vec<AuditEvent>) {
        for e in events {
            if let Err(err) = self.log.record(e).await {
                tracing::warn!(error = %err, "recording coalesced audit events failed");
            }
        }
    }

    /// Whether `event` opens a window (record it now) or was folded into one.
    pub fn admit(&self, event: &AuditEvent) -> bool {
        let now = self.clock.now();
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match w.get_mut(&key(event)) {
            Some(win) if now.duration_since(win.opened).unwrap_or_default() < WINDOW => {
                let n = win.extra.as_ref().map_or(0, |(n, _)| *n) + 1;
                win.extra = Some((n, event.clone()));
                false
            }
            _ => {
                w.insert(
                    key(event),
                    Window {
                        opened: now,
                        extra: None,
                    },
                );
                true
            }
        }
    }

    /// Removes closed windows (all of them with `all`); returns one event per window that
    /// folded duplicates.
    fn closed(&self, all: bool) -> Vec<AuditEvent> {
        let now = self.clock.now();
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let done: Vec<Key> = w
            .iter()
            .filter(|(_, win)| all || now.duration_since(win.opened).unwrap_or_default() >= WINDOW)
            .map(|(k, _)| k.clone())
            .collect();
        done.into_iter()
            .filter_map(|k| w.remove(&k))
            .filter_map(|win| win.extra)
            .map(|(n, mut e)| {
                e.count = n;
                e
            })
            .collect()
    }
}
