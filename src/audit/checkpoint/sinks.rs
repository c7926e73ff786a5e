//! Where checkpoints are published besides the audit database: an append-only file, the
//! audit mirror, Amazon S3. Each sink has a task of its own with a queue: a sink that
//! fails is retried with backoff (1 s doubling to 60 s) and never holds up the others,
//! the checkpoint maker, or issuance; its state shows in `/readyz` and in
//! `rds_token_broker_audit_checkpoint_sink_failing{sink}`.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::s3::S3Sink;
use crate::audit::{Mirror, TreeHead};
use crate::metrics::{label, names};

/// Checkpoints waiting for one sink before the oldest are dropped (any two checkpoints
/// can be proven consistent, so a gap in what a sink holds loses nothing but that head).
pub const MAX_PENDING: usize = 1024;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One place checkpoints are published.
#[derive(Debug)]
pub enum Sink {
    /// Append-only local file: each note followed by an empty line, fsynced.
    File(PathBuf),
    /// The audit mirror: one JSON line `{"record":"checkpoint",...}`.
    Mirror(Mirror),
    /// One S3 object per checkpoint.
    S3(S3Sink),
}

impl Sink {
    /// The sink's name in metrics and `/readyz`: `file`, `mirror` or `s3`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Mirror(_) => "mirror",
            Self::S3(_) => "s3",
        }
    }

    async fn publish(&self, head: &TreeHead) -> Result<(), String> {
        match self {
            Self::File(path) => {
                let (path, note) = (path.clone(), head.note.clone());
                tokio::task::spawn_blocking(move || append(&path, &note))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("writing the checkpoint file failed: {e}"))
            }
            Self::Mirror(m) => {
                let line = serde_json::json!({
                    "record": "checkpoint",
                    "chain_id": head.chain_id,
                    "tree_size": head.tree_size,
                    "root_hash": head.root_hash,
                    "note": head.note,
                    "created_at": head.created_at,
                });
                m.send_record(&line);
                Ok(())
            }
            Self::S3(s) => s.put(head).await,
        }
    }
}

/// Appends `note` and the empty line after it, then syncs the file to disk.
fn append(path: &std::path::Path, note: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut text = String::with_capacity(note.len() + 1);
    text.push_str(note);
    text.push('\n');
    f.write_all(text.as_bytes())?;
    f.sync_data()
}

/// What `/readyz` shows of one sink.
#[derive(Debug, Default)]
pub struct SinkState {
    failing: AtomicBool,
    pending: AtomicUsize,
    last_error: Mutex<Option<String>>,
}

impl SinkState {
    /// Whether the last attempt failed.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Checkpoints not yet published.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// The last failure, in the broker's words (no secrets: paths, S3 error codes).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A running sink: hand it checkpoints with [`SinkHandle::send`].
#[derive(Debug, Clone)]
pub struct SinkHandle {
    /// `file`, `mirror` or `s3`.
    pub name: &'static str,
    tx: mpsc::UnboundedSender<Arc<TreeHead>>,
    /// Its state.
    pub state: Arc<SinkState>,
}

impl SinkHandle {
    /// Starts the task publishing to `sink`.
    pub fn start(sink: Sink) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(SinkState::default());
        let name = sink.name();
        metrics::gauge!(names::AUDIT_CHECKPOINT_SINK_FAILING.name, label::SINK => name).set(0.0);
        tokio::spawn(run(sink, rx, Arc::clone(&state)));
        Self { name, tx, state }
    }

    /// Queues `head` for publishing; never waits.
    pub fn send(&self, head: Arc<TreeHead>) {
        self.state.pending.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(head).is_err() {
            self.state.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

async fn run(sink: Sink, mut rx: mpsc::UnboundedReceiver<Arc<TreeHead>>, state: Arc<SinkState>) {
    let name = sink.name();
    let mut queue: VecDeque<Arc<TreeHead>> = VecDeque::new();
    let mut backoff = FIRST_BACKOFF;
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(h) => queue.push_back(h),
                None => return,
            }
        }
        while let Ok(h) = rx.try_recv() {
            queue.push_back(h);
        }
        while queue.len() > MAX_PENDING {
            queue.pop_front();
            state.pending.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(
                sink = name,
                "a checkpoint sink is too far behind; dropped its oldest pending checkpoint"
            );
        }
        let Some(head) = queue.front() else { continue };
        match sink.publish(head).await {
            Ok(()) => {
                queue.pop_front();
                state.pending.fetch_sub(1, Ordering::Relaxed);
                if state.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(sink = name, "publishing checkpoints works again");
                    metrics::gauge!(names::AUDIT_CHECKPOINT_SINK_FAILING.name, label::SINK => name)
                        .set(0.0);
                }
                backoff = FIRST_BACKOFF;
            }
            Err(why) => {
                metrics::counter!(names::AUDIT_CHECKPOINT_PUBLISH_FAILURES.name, label::SINK => name).increment(1);
                metrics::gauge!(names::AUDIT_CHECKPOINT_SINK_FAILING.name, label::SINK => name)
                    .set(1.0);
                if !state.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(sink = name, error = %why, tree_size = head.tree_size, "publishing a checkpoint failed; retrying with backoff");
                }
                *state.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
