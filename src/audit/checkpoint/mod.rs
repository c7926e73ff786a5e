//! Signed checkpoints (`[audit.checkpoints]`): a background task that, every
//! `interval_seconds` and at shutdown, if this instance's chain grew since its last
//! checkpoint, computes the chain's Merkle root ([`crate::audit::merkle`]), signs a C2SP
//! checkpoint note ([`crate::audit::note`]), stores it in `audit_tree_heads` and hands it
//! to every sink ([`sinks`]). Never on the request path: issuance does not wait for it,
//! and a failing sink only shows in `/readyz` and the metrics.

pub mod keys;
pub mod s3;
pub mod sinks;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::sync::{mpsc, oneshot};

use super::merkle::TreeBuilder;
use super::note::{CheckpointBody, SigningKey, VerifierKey};
use super::{AuditLog, AuditStore, StoreError, TreeHead};
use crate::clock::SharedClock;
use crate::metrics::names;
use sinks::{SinkHandle, SinkState};

/// A running checkpoint maker; clones share it.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    stop: mpsc::Sender<oneshot::Sender<()>>,
    sinks: Arc<Vec<SinkHandle>>,
    verifier: VerifierKey,
}

/// One sink's state for `/readyz`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SinkReport {
    /// `file`, `mirror` or `s3`.
    pub sink: &'static str,
    /// Whether its last attempt succeeded.
    pub ok: bool,
    /// Checkpoints not yet published to it.
    pub pending: usize,
}

/// What the maker needs to know.
#[derive(Debug)]
pub struct Settings {
    /// Origin prefix (`/<chain_id>` is appended).
    pub origin: String,
    /// Time between rounds.
    pub interval: Duration,
}

impl Checkpoints {
    /// Starts making checkpoints of `log`'s chain, signed with `key`, published to `sinks`.
    pub fn start(
        log: &AuditLog,
        key: SigningKey,
        settings: Settings,
        sinks: Vec<sinks::Sink>,
        clock: SharedClock,
    ) -> Self {
        let sinks: Arc<Vec<SinkHandle>> =
            Arc::new(sinks.into_iter().map(SinkHandle::start).collect());
        let (stop, stopped) = mpsc::channel(1);
        let verifier = key.verifier_key().clone();
        let maker = Maker {
            store: log.store.clone(),
            chain_id: log.chain_id.clone(),
            key,
            origin: format!("{}/{}", settings.origin, log.chain_id),
            clock,
            sinks: Arc::clone(&sinks),
            tree: TreeBuilder::new(),
            checkpointed: None,
            gap_reported: false,
        };
        tokio::spawn(maker.run(settings.interval, stopped));
        Self {
            stop,
            sinks,
            verifier,
        }
    }

    /// The verifier key of the signing key.
    pub fn verifier_key(&self) -> &VerifierKey {
        &self.verifier
    }

    /// Each sink's state.
    pub fn sinks(&self) -> Vec<SinkReport> {
        self.sinks
            .iter()
            .map(|s| SinkReport {
                sink: s.name,
                ok: !s.state.failing(),
                pending: s.state.pending(),
            })
            .collect()
    }

    /// The sinks' states, for tests.
    pub fn sink_states(&self) -> Vec<(&'static str, Arc<SinkState>)> {
        self.sinks
            .iter()
            .map(|s| (s.name, Arc::clone(&s.state)))
            .collect()
    }

    /// At shutdown: makes a last checkpoint if the chain grew, and waits (at most
    /// `grace`) until it is stored and every sink has published what it holds.
    pub async fn finish(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        let (done, made) = oneshot::channel();
        if self.stop.send(done).await.is_err() {
            return false;
        }
        if tokio::time::timeout_at(deadline, made).await.is_err() {
            return false;
        }
        while self.sinks.iter().any(|s| s.state.pending() > 0) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

impl AuditLog {
    /// Stored checkpoints (see [`AuditStore::tree_heads`]).
    pub async fn tree_heads(&self, chain_id: Option<&str>) -> Result<Vec<TreeHead>, StoreError> {
        self.store.tree_heads(chain_id).await
    }
}

struct Maker {
    store: AuditStore,
    chain_id: String,
    key: SigningKey,
    origin: String,
    clock: SharedClock,
    sinks: Arc<Vec<SinkHandle>>,
    /// The tree over the chain's events read so far.
    tree: TreeBuilder,
    /// Size of the last stored checkpoint (`None`: not read from the store yet).
    checkpointed: Option<u64>,
    gap_reported: bool,
}

impl Maker {
    async fn run(mut self, interval: Duration, mut stop: mpsc::Receiver<oneshot::Sender<()>>) {
        loop {
            let done = tokio::select! {
                () = tokio::time::sleep(interval) => None,
                d = stop.recv() => Some(d),
            };
            self.round().await;
            if let Some(done) = done {
                if let Some(d) = done {
                    let _ = d.send(());
                }
                return;
            }
        }
    }

    /// Makes a checkpoint if the chain grew; failures are logged and retried next round.
    async fn round(&mut self) {
        if let Err(e) = self.try_round().await {
            metrics::counter!(names::AUDIT_CHECKPOINT_FAILURES.name).increment(1);
            tracing::warn!(error = %crate::report::Report(&e), chain_id = %self.chain_id, "making an audit checkpoint failed; retrying next round");
        }
    }

    async fn try_round(&mut self) -> Result<(), StoreError> {
        let checkpointed = match self.checkpointed {
            Some(s) => s,
            None => {
                let s = self
                    .store
                    .latest_tree_head(&self.chain_id)
                    .await?
                    .map_or(0, |h| h.tree_size);
                self.checkpointed = Some(s);
                s
            }
        };
        let head = match self.store.chain_head(&self.chain_id).await? {
            Some((seq, _)) => u64::try_from(seq).unwrap_or_default(),
            None => 0,
        };
        if head > self.tree.size() {
            let mut gap = false;
            let tree = &mut self.tree;
            self.store
                .for_each_leaf(&self.chain_id, tree.size(), head, |seq, leaf| {
                    if !gap && seq == tree.size() + 1 {
                        tree.push(leaf);
                    } else {
                        gap = true;
                    }
                })
                .await?;
            if (gap || self.tree.size() < head) && !self.gap_reported {
                self.gap_reported = true;
                tracing::error!(chain_id = %self.chain_id, tree_size = self.tree.size(), "events of this chain are missing (pruned before they were checkpointed?): checkpoints stop at the gap");
            }
        }
        let size = self.tree.size();
        if size <= checkpointed {
            return Ok(());
        }
        let body = CheckpointBody {
            origin: self.origin.clone(),
            tree_size: size,
            root_hash: self.tree.root(),
        };
        let note = match self.key.sign(&body.to_text()) {
            Ok(n) => n,
            Err(e) => {
                metrics::counter!(names::AUDIT_CHECKPOINT_FAILURES.name).increment(1);
                tracing::error!(error = %e, "signing an audit checkpoint failed");
                return Ok(());
            }
        };
        let head = TreeHead {
            chain_id: self.chain_id.clone(),
            tree_size: size,
            root_hash: B64.encode(body.root_hash),
            note,
            created_at: crate::clock::rfc3339_millis(self.clock.now()),
        };
        self.store.insert_tree_head(&head).await?;
        self.checkpointed = Some(size);
        metrics::counter!(names::AUDIT_CHECKPOINTS.name).increment(1);
        tracing::info!(chain_id = %self.chain_id, tree_size = size, root_hash = %head.root_hash, "audit checkpoint signed and stored");
        let head = Arc::new(head);
        for s in self.sinks.iter() {
            s.send(Arc::clone(&head));
        }
        Ok(())
    }
}
