//! The audit trail: every decision on `/v1/tokens` as an event, committed to stable
//! storage before the answer leaves, in a tamper-evident hash chain per broker instance.
//!
//! Requests hand their event to one writer task and wait for its acknowledgement. The
//! writer takes whatever is queued (up to [`MAX_BATCH`]), links the events into the chain,
//! and stores the batch in one transaction: one sync for many requests (group commit).
//! If the store fails, every request in the batch gets the error, the chain does not
//! advance, and `/v1/tokens` answers 503: the broker fails closed.

// `store` first: its `on_pool!` macro serves `stats` too.
#[macro_use]
mod store;
pub mod checkpoint;
pub mod coalesce;
pub mod csv;
pub mod display;
mod event;
#[cfg(test)]
mod golden;
pub mod jcs;
pub mod merkle;
mod mirror;
pub mod note;
pub mod offline;
#[cfg(test)]
mod offline_tests;
pub mod proofs;
pub mod query;
pub mod receipt;
pub mod stats;
pub mod tree_check;
mod tree_heads;
mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::metrics::names;
use tokio::sync::{mpsc, oneshot};

pub use event::{AuditEvent, Encoding, GENESIS, Outcome};
pub use mirror::Mirror;
pub use store::{AuditStore, HeldConnection, StoreError};
pub use tree_heads::{MAX_TREE_HEADS, TreeHead, event_hash_bytes};
pub use verify::{
    Broken, CHECKPOINT_MARGIN, ChainWalker, Checkpoint, VERIFY_PAGE, Verification,
    newest_checkpoint, verify, verify_from,
};

/// Most events committed in one transaction.
pub const MAX_BATCH: usize = 256;
/// Events waiting for the writer before new ones are refused.
const QUEUE: usize = 8192;

type Pending = (AuditEvent, oneshot::Sender<Result<(), StoreError>>);

/// Hands events to the writer and waits until they are committed.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
    mirror: Option<Mirror>,
    store: AuditStore,
    healthy: Arc<AtomicBool>,
    chain_id: String,
}

impl AuditLog {
    /// The store this log writes to (access requests keep their state in its database).
    pub fn store(&self) -> &AuditStore {
        &self.store
    }

    /// Starts the writer for a new chain `chain_id` on `store`, copying each committed
    /// event to `mirror` when given.
    pub fn start(store: AuditStore, chain_id: String, mirror: Option<Mirror>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let healthy = Arc::new(AtomicBool::new(true));
        let dirty = matches!(store, AuditStore::Sqlite(_)).then(|| {
            let dirty = Arc::new(tokio::sync::Notify::new());
            tokio::spawn(checkpoint_wal(
                store.clone(),
                Arc::clone(&dirty),
                tx.downgrade(),
            ));
            dirty
        });
        tokio::spawn(writer(
            rx,
            store.clone(),
            chain_id.clone(),
            Arc::clone(&healthy),
            mirror.clone(),
            dirty,
        ));
        Self {
            tx,
            mirror,
            store,
            healthy,
            chain_id,
        }
    }

    /// Events waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Waits (at most `timeout`) until the mirror has written every event committed so
    /// far; `true` when there is no mirror. For shutdown.
    pub async fn flush_mirror(&self, timeout: std::time::Duration) -> bool {
        match &self.mirror {
            Some(m) => m.flush(timeout).await,
            None => true,
        }
    }

    /// This instance's chain.
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// Commits `event` (its chain fields are filled in by the writer); returns once it is
    /// on stable storage.
    pub async fn record(&self, mut event: AuditEvent) -> Result<(), StoreError> {
        event.clean_text();
        let (ack, done) = oneshot::channel();
        self.tx
            .send((event, ack))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        done.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Whether the last commit succeeded, and whether the store answers now.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.store.ping().await?;
        if self.healthy.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(StoreError::LastCommitFailed)
        }
    }

    /// One page of events matching `filter`, newest first, and the cursor for the next.
    pub async fn search(
        &self,
        filter: &query::Filter,
    ) -> Result<(Vec<AuditEvent>, Option<String>), StoreError> {
        let mut events = self.store.search(filter).await?;
        let more = events.len() > filter.limit as usize;
        events.truncate(filter.limit as usize);
        let next = if more {
            events.last().map(query::cursor_after)
        } else {
            None
        };
        Ok((events, next))
    }

    /// The console's aggregates for `q`, with `budgets` the configured targets.
    pub async fn stats(
        &self,
        q: &stats::StatsQuery,
        budgets: &[stats::Budget],
    ) -> Result<stats::Stats, StoreError> {
        stats::compute(&self.store, q, budgets).await
    }

    /// Walks every chain in the store, each from its retention checkpoint if pruned, a
    /// page at a time (constant memory); checkpoints newer than `newest_checkpoint` (see
    /// [`newest_checkpoint`]) are broken links. With `trust`, also checks the chains
    /// against their signed checkpoints ([`tree_check`]).
    pub async fn verify(
        &self,
        newest_checkpoint: Option<std::time::SystemTime>,
        trust: Option<tree_check::Trust>,
    ) -> Result<Verification, StoreError> {
        let (v, _pages) = self
            .store
            .walk_chains(VERIFY_PAGE, newest_checkpoint)
            .await?;
        match trust {
            Some(t) => {
                Ok(v.with_tree_check(self.store.check_tree_heads(t.published, &t.keys).await?))
            }
            None => Ok(v),
        }
    }

    /// Deletes events older than `cutoff` (RFC 3339), keeping every chain verifiable.
    pub async fn prune(&self, cutoff: &str) -> Result<u64, StoreError> {
        self.store.prune(cutoff).await
    }
}

/// How long the WAL checkpointer lets commits gather after being woken by one: bounds the
/// WAL to what the writer commits in this time (see [`AuditStore::checkpoint_wal`]).
const WAL_CHECKPOINT_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// Checkpoints the SQLite WAL off the commit path: woken (through `dirty`) by a commit, it
/// waits [`WAL_CHECKPOINT_AFTER`] for more, then checkpoints on its own connection, so no
/// batch waits for a checkpoint; an idle broker makes no wake-ups. A failure (a busy
/// database) is retried after the next commit. Ends with the writer (`alive`).
async fn checkpoint_wal(
    store: AuditStore,
    dirty: Arc<tokio::sync::Notify>,
    alive: mpsc::WeakSender<Pending>,
) {
    loop {
        dirty.notified().await;
        tokio::time::sleep(WAL_CHECKPOINT_AFTER).await;
        if alive.upgrade().is_none() {
            return;
        }
        if let Err(e) = store.checkpoint_wal().await {
            tracing::debug!(error = %crate::report::Report(&e), "WAL checkpoint failed; retried after the next commit");
        }
    }
}

async fn writer(
    mut rx: mpsc::Receiver<Pending>,
    store: AuditStore,
    chain_id: String,
    healthy: Arc<AtomicBool>,
    mirror: Option<Mirror>,
    wal_dirty: Option<Arc<tokio::sync::Notify>>,
) {
    let mut head = Head {
        seq: 0,
        prev: GENESIS.to_owned(),
        resync: false,
    };
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    let mut conn = None;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (mut events, acks): (Vec<AuditEvent>, Vec<_>) = batch.drain(..).unzip();
        let result = commit(&store, &mut conn, &chain_id, &mut head, &mut events).await;
        match result {
            Ok(()) => {
                healthy.store(true, Ordering::Relaxed);
                for ack in acks {
                    let _ = ack.send(Ok(()));
                }
                if let Some(m) = &mirror {
                    m.send(&events);
                }
                if let Some(d) = &wal_dirty {
                    d.notify_one();
                }
            }
            Err(e) if events.len() == 1 => {
                if let Some(event) = events.first() {
                    refused(&store, &e, event, &healthy).await;
                }
                for ack in acks {
                    let _ = ack.send(Err(e.clone()));
                }
            }
            // One bad event must not fail the others: store them one by one.
            Err(e) => {
                tracing::warn!(error = %crate::report::Report(&e), events = events.len(), "audit batch failed; storing its events one by one");
                one_by_one(
                    &store,
                    &mut conn,
                    &chain_id,
                    &mut head,
                    events.into_iter().zip(acks),
                    &healthy,
                    mirror.as_ref(),
                )
                .await;
            }
        }
    }
    // Lets the WAL checkpointer see that the writer is gone.
    if let Some(d) = &wal_dirty {
        d.notify_one();
    }
}

/// After `event` alone failed with `e`: whether the store is down (it does not answer;
/// `healthy` turns false) or refused this one event (logged by id and outcome, nothing
/// the caller sent, and counted). Returns whether the store is down.
async fn refused(
    store: &AuditStore,
    e: &StoreError,
    event: &AuditEvent,
    healthy: &AtomicBool,
) -> bool {
    if store.ping().await.is_ok() {
        healthy.store(true, Ordering::Relaxed);
        metrics::counter!(names::AUDIT_EVENTS_REJECTED.name).increment(1);
        tracing::error!(
            error = %crate::report::Report(e),
            event_id = %event.id,
            outcome = event.outcome.as_str(),
            "the audit store refused one event; only its request is refused"
        );
        false
    } else {
        healthy.store(false, Ordering::Relaxed);
        tracing::error!(error = %crate::report::Report(e), "audit commit failed; refusing the requests it carried");
        true
    }
}

/// Where the chain stands: the last stored position and hash.
struct Head {
    seq: i64,
    prev: String,
    /// The last commit failed: read the head from the store before linking again.
    resync: bool,
}

/// Links `events` after `head` and stores them in one transaction; `head` advances only
/// when they are stored.
async fn commit(
    store: &AuditStore,
    conn: &mut Option<HeldConnection>,
    chain_id: &str,
    head: &mut Head,
    events: &mut [AuditEvent],
) -> Result<(), StoreError> {
    if head.resync {
        // A failed commit may still have reached the store: continue from what is there.
        match store.chain_head(chain_id).await {
            Ok(Some((s, h))) => (head.seq, head.prev) = (s, h),
            Ok(None) => (head.seq, head.prev) = (0, GENESIS.to_owned()),
            Err(_) => {}
        }
    }
    let (mut s, mut p) = (head.seq, head.prev.clone());
    for e in events.iter_mut() {
        s += 1;
        e.chain_id.clear();
        e.chain_id.push_str(chain_id);
        e.seq = s;
        e.prev_hash = std::mem::take(&mut p);
        // Not stored, and the chain does not advance, if an event cannot be encoded.
        e.hash = e
            .compute_hash()
            .map_err(|err| StoreError::Encode(Arc::new(err)))?;
        p.clone_from(&e.hash);
    }
    let started = std::time::Instant::now();
    let result = store.append(conn, events).await;
    metrics::histogram!(names::AUDIT_COMMIT_DURATION.name).record(started.elapsed().as_secs_f64());
    metrics::histogram!(names::AUDIT_BATCH_SIZE.name).record(events.len() as f64);
    head.resync = result.is_err();
    match &result {
        Ok(()) => (head.seq, head.prev) = (s, p),
        Err(_) => metrics::counter!(names::AUDIT_COMMIT_FAILURES.name).increment(1),
    }
    result
}

/// Stores each event of a failed batch in its own transaction, in order. An event the
/// store refuses while it otherwise answers is logged (its id and outcome, nothing the
/// caller sent), counted, and fails only its own request; once the store does not answer
/// at all, the rest fail without being tried.
async fn one_by_one(
    store: &AuditStore,
    conn: &mut Option<HeldConnection>,
    chain_id: &str,
    head: &mut Head,
    pending: impl Iterator<Item = Pending>,
    healthy: &AtomicBool,
    mirror: Option<&Mirror>,
) {
    let mut down: Option<StoreError> = None;
    for (event, ack) in pending {
        if let Some(e) = &down {
            let _ = ack.send(Err(e.clone()));
            continue;
        }
        let mut one = [event];
        match commit(store, conn, chain_id, head, &mut one).await {
            Ok(()) => {
                healthy.store(true, Ordering::Relaxed);
                if let Some(m) = mirror {
                    m.send(&one);
                }
                let _ = ack.send(Ok(()));
            }
            Err(e) => {
                let [event] = &one;
                if refused(store, &e, event, healthy).await {
                    down = Some(e.clone());
                }
                let _ = ack.send(Err(e));
            }
        }
    }
}
