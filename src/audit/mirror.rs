//! The audit mirror (`[audit] mirror`): committed events copied as JSON lines to standard
//! output or a file, for SIEM shippers (Fluent Bit, Vector).
//!
//! The audit writer never waits for the mirror: it hands each committed batch, already
//! serialised, to a thread of the mirror's own and goes on with the next commit, so a
//! shipper that stops reading the broker's stdout cannot stall issuance. The store stays
//! the record; the mirror is a copy. Batches wait in a queue of at most [`MAX_QUEUED`]
//! bytes; when a reader has stalled that long, further batches are dropped, counted in
//! `rds_token_broker_audit_mirror_dropped_total` and logged once per stall.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::AuditEvent;
use crate::metrics::names;

/// Bytes of serialised events waiting for the mirror's thread before batches are dropped.
pub const MAX_QUEUED: usize = 64 * 1024 * 1024;

enum Msg {
    /// Serialised lines, their size in bytes and how many events they hold.
    Lines(Vec<u8>, usize, u64),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// A handle on the mirror's thread; clones share it.
#[derive(Debug, Clone)]
pub struct Mirror {
    tx: mpsc::Sender<Msg>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    stalled: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

type Sink = Box<dyn std::io::Write + Send>;

impl Mirror {
    /// `stdout`, or a file path opened for appending; starts the mirror's thread.
    pub fn open(spec: &str) -> std::io::Result<Self> {
        let sink: Sink = if spec == "stdout" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(spec)?,
            )
        };
        Self::start(sink, MAX_QUEUED)
    }

    /// Starts the mirror's thread writing to `sink`, with at most `limit` bytes queued.
    fn start(sink: Sink, limit: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let (left, lost) = (Arc::clone(&queued), Arc::clone(&dropped));
        std::thread::Builder::new()
            .name("audit-mirror".into())
            .spawn(move || write_batches(sink, &rx, &left, &lost))?;
        Ok(Self {
            tx,
            queued,
            limit,
            stalled: Arc::new(AtomicBool::new(false)),
            dropped,
        })
    }

    /// Events not copied since the start (also in the metric).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn drop_events(&self, count: u64) {
        self.dropped.fetch_add(count, Ordering::Relaxed);
        metrics::counter!(names::AUDIT_MIRROR_DROPPED.name).increment(count);
    }

    /// Queues `events` (committed, in commit order) as JSON lines; never waits.
    pub fn send(&self, events: &[AuditEvent]) {
        let mut lines = Vec::with_capacity(events.len() * 512);
        let mut count: u64 = 0;
        for e in events {
            match serde_json::to_writer(&mut lines, e) {
                Ok(()) => {
                    lines.push(b'\n');
                    count += 1;
                }
                Err(err) => {
                    // Cannot happen for events of strings and numbers; counted if it does.
                    self.drop_events(1);
                    tracing::error!(error = %err, event_id = %e.id, "an audit event could not be written as JSON for the mirror; it is committed in the store");
                }
            }
        }
        if count == 0 {
            return;
        }
        let size = lines.len();
        if self.queued.load(Ordering::Relaxed).saturating_add(size) > self.limit {
            self.drop_events(count);
            if !self.stalled.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    dropped = count,
                    "the audit mirror's reader has stalled ({} MiB queued); dropping mirror lines until it reads again (the events are committed in the store)",
                    self.limit / (1024 * 1024)
                );
            }
            return;
        }
        self.stalled.store(false, Ordering::Relaxed);
        self.queued.fetch_add(size, Ordering::Relaxed);
        if self.tx.send(Msg::Lines(lines, size, count)).is_err() {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            self.drop_events(count);
            tracing::error!(
                dropped = count,
                "the audit mirror's thread has stopped; the events are committed in the store"
            );
        }
    }

    /// Queues one JSON record that is not an event (a signed checkpoint,
    /// `{"record":"checkpoint",...}`) as its own line; never waits.
    pub fn send_record(&self, record: &serde_json::Value) {
        let mut line = record.to_string().into_bytes();
        line.push(b'\n');
        let size = line.len();
        if self.queued.load(Ordering::Relaxed).saturating_add(size) > self.limit {
            self.drop_events(1);
            return;
        }
        self.queued.fetch_add(size, Ordering::Relaxed);
        if self.tx.send(Msg::Lines(line, size, 1)).is_err() {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            self.drop_events(1);
        }
    }

    /// Waits (at most `timeout`) until every batch queued so far is written; at shutdown.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(timeout, written).await, Ok(Ok(())))
    }
}

/// The mirror's thread: writes batches in the order they were committed.
fn write_batches(
    mut sink: Sink,
    rx: &mpsc::Receiver<Msg>,
    queued: &AtomicUsize,
    dropped: &AtomicU64,
) {
    let mut failing = false;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Lines(lines, size, count) => {
                let result = sink.write_all(&lines).and_then(|()| sink.flush());
                queued.fetch_sub(size, Ordering::Relaxed);
                match result {
                    Ok(()) => failing = false,
                    Err(e) => {
                        dropped.fetch_add(count, Ordering::Relaxed);
                        metrics::counter!(names::AUDIT_MIRROR_DROPPED.name).increment(count);
                        if !failing {
                            failing = true;
                            tracing::warn!(error = %e, "writing the audit mirror failed; the events are committed in the store");
                        }
                    }
                }
            }
            Msg::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32) -> AuditEvent {
        let mut e = AuditEvent::sample_for_tests();
        e.reason = Some(format!("event {n}"));
        e
    }

    /// A reader that never reads: the pipe fills, the thread blocks in write, and the
    /// writer's `send` must still return at once, dropping and counting past the limit.
    #[tokio::test]
    async fn a_stalled_reader_never_blocks_the_sender_and_drops_are_counted() {
        let (_reader, writer) = std::io::pipe().unwrap();
        let mirror = Mirror::start(Box::new(writer), 256 * 1024).unwrap();
        let batch: Vec<AuditEvent> = (0..100).map(event).collect();
        for _ in 0..200 {
            mirror.send(&batch);
        }
        // 200 x 100 events of a few hundred bytes each is far beyond pipe + limit.
        assert!(mirror.dropped() > 0, "nothing was dropped");
        assert!(mirror.dropped() < 20_000, "everything was dropped");
        assert!(
            !mirror.flush(Duration::from_millis(50)).await,
            "the stalled pipe was written"
        );
    }

    #[tokio::test]
    async fn lines_are_json_in_commit_order_and_flush_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.jsonl");
        let mirror = Mirror::open(path.to_str().unwrap()).unwrap();
        mirror.send(&[event(1), event(2)]);
        mirror.send(&[event(3)]);
        assert!(mirror.flush(Duration::from_secs(10)).await);
        let text = std::fs::read_to_string(&path).unwrap();
        let reasons: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(reasons, ["event 1", "event 2", "event 3"]);
        assert_eq!(mirror.dropped(), 0);
    }
}
