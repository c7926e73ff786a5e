//! Inclusion and consistency proofs (RFC 9162 2.1.3, 2.1.4) from the store, against the
//! stored checkpoints, and the receipt that carries one event with its proof.
//!
//! A proof's nodes are the roots of disjoint leaf ranges ([`merkle::inclusion_ranges`],
//! [`merkle::consistency_ranges`]): each range's leaves are streamed from the store into a
//! [`merkle::TreeBuilder`], so memory stays O(log n) whatever the chain's length. Every
//! proof is checked against its checkpoint's signed root before it is handed out: a store
//! whose events no longer match a checkpoint gives [`ProofError::Mismatch`], never a proof
//! that cannot verify.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::event::AuditEvent;
use super::merkle::{self, Hash, LeafRange};
use super::query::Filter;
use super::store::{AuditStore, StoreError};
use super::tree_heads::{TreeHead, event_hash_bytes};

/// Why a proof cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// No stored event has this id.
    #[error("no event has this id")]
    NoEvent,
    /// No stored checkpoint covers the event yet.
    #[error("no checkpoint covers this event yet (checkpoints are made every interval)")]
    NotCheckpointed,
    /// No stored checkpoint of the chain has this tree size.
    #[error("no checkpoint of this chain has tree size {0}")]
    NoCheckpoint(u64),
    /// The checkpoint asked for is older than the event.
    #[error("a tree of size {size} does not contain the event at position {seq}")]
    NotCovered {
        /// The event's position.
        seq: u64,
        /// The tree size asked for.
        size: u64,
    },
    /// `from` is larger than `to`.
    #[error("from must not be larger than to")]
    Order,
    /// The stored events (or pruned hashes) do not reproduce the checkpoint: leaves are
    /// missing, or the root differs. The trail was altered; `audit verify` says where.
    #[error("the stored trail does not match the checkpoint of size {0}")]
    Mismatch(u64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An inclusion proof: the event at `leaf_index` (its `seq` - 1) is in the tree of
/// `tree_size` leaves of `chain_id`; `hashes` (base64) lead from its leaf to the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The chain.
    pub chain_id: String,
    /// The leaf's index: the event's `seq` - 1.
    pub leaf_index: u64,
    /// Leaves in the checkpoint's tree.
    pub tree_size: u64,
    /// The audit path, deepest first, base64.
    pub hashes: Vec<String>,
}

/// A receipt: one event as exported, its inclusion proof, and the signed checkpoint
/// (C2SP signed note) the proof leads to. `docs/audit-format.md#receipt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The event, as `GET /v1/audit/events` and exports give it.
    pub event: AuditEvent,
    /// Its inclusion proof.
    pub proof: InclusionProof,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

/// The stored event with this id (a UUID, checked by the caller).
pub async fn event_by_id(store: &AuditStore, id: &str) -> Result<AuditEvent, ProofError> {
    let filter = Filter {
        equals: vec![("id", id.to_owned())],
        limit: 1,
        ..Filter::default()
    };
    store
        .search(&filter)
        .await?
        .into_iter()
        .next()
        .ok_or(ProofError::NoEvent)
}

/// The stored head's root; a head whose root is not base64 SHA-256 is an altered one.
fn head_root(head: &TreeHead) -> Result<Hash, ProofError> {
    B64.decode(&head.root_hash)
        .ok()
        .and_then(|r| Hash::try_from(r).ok())
        .ok_or(ProofError::Mismatch(head.tree_size))
}

/// The roots of `ranges` of `chain_id`, streamed one range at a time.
async fn roots(
    store: &AuditStore,
    chain_id: &str,
    ranges: &[LeafRange],
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    let mut out = Vec::with_capacity(ranges.len());
    for &range in ranges {
        // A stored hash that is not hex SHA-256 was altered: the trail, not the store,
        // is at fault.
        let root = store
            .range_root(chain_id, range)
            .await
            .map_err(|e| match e {
                StoreError::BadHash => ProofError::Mismatch(size),
                e => ProofError::Store(e),
            })?;
        out.push(root.ok_or(ProofError::Mismatch(size))?);
    }
    Ok(out)
}

/// The inclusion proof of `event` against the stored checkpoint of `tree_size`, or the
/// newest one covering it; with that checkpoint.
pub async fn inclusion(
    store: &AuditStore,
    event: &AuditEvent,
    tree_size: Option<u64>,
) -> Result<(InclusionProof, TreeHead), ProofError> {
    let chain = event.chain_id.as_str();
    let seq = u64::try_from(event.seq).unwrap_or_default();
    let head = match tree_size {
        Some(size) if size < seq => return Err(ProofError::NotCovered { seq, size }),
        Some(size) => store
            .tree_head_of_size(chain, size)
            .await?
            .ok_or(ProofError::NoCheckpoint(size))?,
        None => store
            .tree_head_covering(chain, seq)
            .await?
            .ok_or(ProofError::NotCheckpointed)?,
    };
    let size = head.tree_size;
    let index = seq.checked_sub(1).ok_or(ProofError::Mismatch(size))?;
    let ranges = merkle::inclusion_ranges(index, size).ok_or(ProofError::Mismatch(size))?;
    let hashes = roots(store, chain, &ranges, size).await?;
    let leaf = event_hash_bytes(&event.hash)
        .map(|h| merkle::leaf_hash(&h))
        .ok_or(ProofError::Mismatch(size))?;
    if !merkle::verify_inclusion(&leaf, index, size, &hashes, &head_root(&head)?) {
        return Err(ProofError::Mismatch(size));
    }
    let proof = InclusionProof {
        chain_id: chain.to_owned(),
        leaf_index: index,
        tree_size: size,
        hashes: hashes.iter().map(|h| B64.encode(h)).collect(),
    };
    Ok((proof, head))
}

/// The consistency proof (base64 hashes) from the stored checkpoint of `from` leaves of
/// `chain_id` to the one of `to` leaves.
pub async fn consistency(
    store: &AuditStore,
    chain_id: &str,
    from: u64,
    to: u64,
) -> Result<Vec<String>, ProofError> {
    if from > to {
        return Err(ProofError::Order);
    }
    let mut heads = Vec::with_capacity(2);
    for size in [from, to] {
        let head = store
            .tree_head_of_size(chain_id, size)
            .await?
            .ok_or(ProofError::NoCheckpoint(size))?;
        heads.push(head_root(&head)?);
    }
    let (old_root, new_root) = match heads.as_slice() {
        [old, new] => (*old, *new),
        _ => return Err(ProofError::Mismatch(to)),
    };
    let ranges = merkle::consistency_ranges(from, to).ok_or(ProofError::Order)?;
    let hashes = roots(store, chain_id, &ranges, to).await?;
    if !merkle::verify_consistency(from, to, &old_root, &new_root, &hashes) {
        return Err(ProofError::Mismatch(to));
    }
    Ok(hashes.iter().map(|h| B64.encode(h)).collect())
}
