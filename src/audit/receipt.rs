//! Checking a receipt ([`Receipt`]) offline, with only the verifier keys
//! (`audit verify-receipt`): the event's hash recomputed from its canonical encoding, its
//! leaf, the inclusion proof up to the checkpoint's root, the checkpoint's signature by one
//! of the keys, and that the checkpoint's origin names the event's chain.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::merkle::{self, Hash};
use super::note::{NoteError, VerifierKey, verify_checkpoint};
use super::offline::chain_of_origin;
use super::proofs::Receipt;
use super::tree_heads::event_hash_bytes;

/// Largest receipt accepted: an event, ~64 proof hashes and a note fit in a few KiB.
pub const MAX_RECEIPT_BYTES: usize = 256 * 1024;

/// What is wrong with a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not a receipt at all.
    #[error("not a receipt: {0}")]
    Malformed(String),
    /// The event's contents do not give its `hash`.
    #[error("the event was altered: its hash does not match its contents")]
    EventAltered,
    /// The event's fields are not exactly an audit event's, as exported.
    #[error(
        "the event's fields are not exactly an audit event's (one was added, removed or changed in form)"
    )]
    ExtraFields,
    /// The proof names another chain than the event.
    #[error("the proof is for chain {proof}, the event is in chain {event}")]
    ProofChain {
        /// The proof's chain.
        proof: String,
        /// The event's chain.
        event: String,
    },
    /// The leaf index is not the event's position.
    #[error("the proof is for leaf {index}, but the event at position {seq} is leaf {want}")]
    LeafIndex {
        /// The proof's index.
        index: u64,
        /// The event's `seq`.
        seq: i64,
        /// The index it should be.
        want: i64,
    },
    /// The checkpoint note does not verify.
    #[error("the checkpoint {0}")]
    Checkpoint(String),
    /// The checkpoint is another chain's.
    #[error("the checkpoint's origin {origin:?} does not name the event's chain {chain}")]
    Origin {
        /// The checkpoint's origin line.
        origin: String,
        /// The event's chain.
        chain: String,
    },
    /// The proof's tree size differs from the checkpoint's.
    #[error("the proof is for a tree of {proof} leaves, the checkpoint's has {checkpoint}")]
    TreeSize {
        /// The proof's size.
        proof: u64,
        /// The checkpoint's size.
        checkpoint: u64,
    },
    /// A proof hash is not base64 SHA-256.
    #[error("proof hash {0} is not a base64 SHA-256 hash")]
    BadHash(usize),
    /// The proof does not lead to the signed root.
    #[error(
        "the inclusion proof does not lead from the event's leaf to the checkpoint's root \
         (a proof hash, the leaf index or the tree size was altered)"
    )]
    Inclusion,
}

/// A receipt that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The event's id.
    pub event_id: String,
    /// Its chain.
    pub chain_id: String,
    /// Its leaf index.
    pub leaf_index: u64,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// Names of the keys whose signatures verified.
    pub signed_by: Vec<String>,
}

/// Checks the receipt `text` (JSON) against `keys`; the first thing wrong, in the order of
/// the module documentation.
pub fn verify_receipt(text: &str, keys: &[VerifierKey]) -> Result<Verified, ReceiptError> {
    if text.len() > MAX_RECEIPT_BYTES {
        return Err(ReceiptError::Malformed(format!(
            "longer than {MAX_RECEIPT_BYTES} bytes"
        )));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    let receipt: Receipt = serde_json::from_value(value.clone())
        .map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    let (event, proof) = (&receipt.event, &receipt.proof);
    // A field serde would drop is not covered by the hash: refuse it rather than show it.
    if serde_json::to_value(event).ok().as_ref() != value.get("event") {
        return Err(ReceiptError::ExtraFields);
    }
    if event.compute_hash().ok().as_deref() != Some(event.hash.as_str()) {
        return Err(ReceiptError::EventAltered);
    }
    let leaf = event_hash_bytes(&event.hash)
        .map(|h| merkle::leaf_hash(&h))
        .ok_or(ReceiptError::EventAltered)?;
    if proof.chain_id != event.chain_id {
        return Err(ReceiptError::ProofChain {
            proof: proof.chain_id.clone(),
            event: event.chain_id.clone(),
        });
    }
    let want = event.seq - 1;
    if i64::try_from(proof.leaf_index).ok() != Some(want) {
        return Err(ReceiptError::LeafIndex {
            index: proof.leaf_index,
            seq: event.seq,
            want,
        });
    }
    let checkpoint = verify_checkpoint(&receipt.checkpoint, keys).map_err(|e| {
        ReceiptError::Checkpoint(match e {
            NoteError::UnknownKey => "is not signed by any of the given keys".to_owned(),
            e => format!("does not verify: {e}"),
        })
    })?;
    let body = &checkpoint.body;
    if chain_of_origin(&body.origin) != Some(event.chain_id.as_str()) {
        return Err(ReceiptError::Origin {
            origin: body.origin.clone(),
            chain: event.chain_id.clone(),
        });
    }
    if proof.tree_size != body.tree_size {
        return Err(ReceiptError::TreeSize {
            proof: proof.tree_size,
            checkpoint: body.tree_size,
        });
    }
    let hashes = proof
        .hashes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            B64.decode(h)
                .ok()
                .and_then(|h| Hash::try_from(h).ok())
                .ok_or(ReceiptError::BadHash(i + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !merkle::verify_inclusion(
        &leaf,
        proof.leaf_index,
        body.tree_size,
        &hashes,
        &body.root_hash,
    ) {
        return Err(ReceiptError::Inclusion);
    }
    Ok(Verified {
        event_id: event.id.clone(),
        chain_id: event.chain_id.clone(),
        leaf_index: proof.leaf_index,
        tree_size: body.tree_size,
        signed_by: checkpoint.signed_by,
    })
}

#[cfg(test)]
#[path = "receipt_tests.rs"]
mod tests;
