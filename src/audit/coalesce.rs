//! Flood control for non-issued events: events with the same [`FoldKey`] within one second
//! become one event with `count`. The first of a window is recorded at once; the rest are
//! counted and written as one event when the window closes. Issued events never come here.
//!
//! The key holds only values the caller cannot vary at will: a failed authentication is
//! folded by client address and the kind of failure, never by the token's unverified
//! claims; an authenticated refusal by the verified caller, a configured target name (or
//! `unknown`) and the reason. Every folded event is counted: a window replaced before the
//! flusher took it hands its count to the flusher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::{AuditEvent, AuditLog};
use crate::clock::SharedClock;

/// How long identical events are folded together.
pub const WINDOW: Duration = Duration::from_secs(1);

/// What makes two refused requests "the same" for folding: (outcome, caller or client
/// address, configured target or `unknown`, kind of reason).
pub type FoldKey = (&'static str, String, String, String);
type Key = FoldKey;

#[derive(Default)]
struct Windows {
    open: HashMap<Key, Window>,
    /// Folded events of windows that were replaced before the flusher took them.
    closed: Vec<AuditEvent>,
}

struct Window {
    opened: SystemTime,
    /// The duplicates seen after the first, with the last of them as the template.
    extra: Option<(i64, AuditEvent)>,
}

/// Coalesces floods of identical non-issued events.
#[derive(Clone)]
pub struct Coalescer {
    windows: Arc<Mutex<Windows>>,
    clock: SharedClock,
    log: AuditLog,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

impl Coalescer {
    /// Starts the task that writes closed windows to `log`.
    pub fn start(log: AuditLog, clock: SharedClock) -> Self {
        let c = Self {
            windows: Arc::new(Mutex::new(Windows::default())),
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
                tracing::warn!(error = %crate::report::Report(&err), "recording coalesced audit events failed");
            }
        }
    }

    /// Whether `event` opens a window for `key` (record it now) or was folded into one.
    pub fn admit(&self, key: FoldKey, event: &AuditEvent) -> bool {
        let now = self.clock.now();
        let mut guard = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = &mut *guard;
        if let Some(win) = w.open.get_mut(&key)
            && now.duration_since(win.opened).unwrap_or_default() < WINDOW
        {
            let n = win.extra.as_ref().map_or(0, |(n, _)| *n) + 1;
            win.extra = Some((n, event.clone()));
            return false;
        }
        let replaced = w.open.insert(
            key,
            Window {
                opened: now,
                extra: None,
            },
        );
        if let Some(folded) = replaced.and_then(Window::folded) {
            w.closed.push(folded);
        }
        true
    }

    /// Removes closed windows (all of them with `all`); returns one event per window that
    /// folded duplicates, and those of windows replaced since the last call.
    fn closed(&self, all: bool) -> Vec<AuditEvent> {
        let now = self.clock.now();
        let mut guard = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = &mut *guard;
        let mut out = std::mem::take(&mut w.closed);
        w.open.retain(|_, win| {
            let done = all || now.duration_since(win.opened).unwrap_or_default() >= WINDOW;
            if done {
                out.extend(win.extra.take().map(|(n, mut e)| {
                    e.count = n;
                    e
                }));
            }
            !done
        });
        out
    }
}

impl Window {
    /// The event standing for this window's duplicates, if it folded any.
    fn folded(self) -> Option<AuditEvent> {
        self.extra.map(|(n, mut e)| {
            e.count = n;
            e
        })
    }
}
