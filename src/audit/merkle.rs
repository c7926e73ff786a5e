//! The Merkle tree over one chain's events, RFC 6962 section 2.1 (RFC 9162 section 2.1).
//!
//! Leaf `i` (0-based) is the event with `seq = i + 1`; its leaf hash is
//! SHA-256(0x00 || the 32 raw bytes of the event's `hash`), an interior node is
//! SHA-256(0x01 || left || right), and the tree of `n` leaves splits at the largest power
//! of two below `n`. Pure functions, no I/O: the checkpoint maker keeps a [`TreeBuilder`]
//! (O(log n) memory), the proof routes build proofs from the leaf hashes, and verifiers
//! check them with [`verify_inclusion`] and [`verify_consistency`].

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf, an interior node or a root.
pub type Hash = [u8; 32];

/// The leaf hash of an event whose `hash` field decodes to `event_hash`:
/// SHA-256(0x00 || event_hash).
pub fn leaf_hash(event_hash: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(event_hash);
    h.finalize().into()
}

/// An interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Root of a growing tree in O(log n) memory: push leaf hashes in `seq` order.
///
/// Keeps the roots of the perfect subtrees the tree decomposes into (largest first), one
/// per set bit of the size, like a binary counter.
#[derive(Debug, Clone, Default)]
pub struct TreeBuilder {
    /// Roots of the perfect subtrees, left to right; their sizes are the set bits of
    /// `size`, from the highest.
    frontier: Vec<Hash>,
    size: u64,
}

impl TreeBuilder {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one leaf hash (see [`leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        // Each trailing one bit of the old size is a perfect subtree the new leaf completes.
        let mut carry = self.size;
        while carry & 1 == 1 {
            match self.frontier.pop() {
                Some(left) => node = node_hash(&left, &node),
                None => break,
            }
            carry >>= 1;
        }
        self.frontier.push(node);
        self.size += 1;
    }

    /// Leaves pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the tree of every leaf pushed so far ([`empty_root`] when none).
    pub fn root(&self) -> Hash {
        let mut nodes = self.frontier.iter().rev();
        let Some(last) = nodes.next() else {
            return empty_root();
        };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// The root of the tree whose leaf hashes are `leaves`.
pub fn root(leaves: &[Hash]) -> Hash {
    let mut b = TreeBuilder::new();
    for leaf in leaves {
        b.push(*leaf);
    }
    b.root()
}

/// The largest power of two smaller than `n` (`n >= 2`).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// Splits `leaves` (at least two) at [`split_point`].
fn halves(leaves: &[Hash]) -> (&[Hash], &[Hash]) {
    leaves.split_at(split_point(leaves.len()).min(leaves.len()))
}

/// Audit path for leaf `index` in the tree of all of `leaves` (RFC 9162 2.1.3.1); `None`
/// if `index` is out of range.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Option<Vec<Hash>> {
    let index = usize::try_from(index).ok()?;
    if index >= leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    path(leaves, index, &mut proof);
    Some(proof)
}

/// PATH(m, D[n]); `m < leaves.len()`. Appends deepest first.
fn path(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let (left, right) = halves(leaves);
    let k = left.len();
    if m < k {
        path(left, m, out);
        out.push(root(right));
    } else {
        path(right, m - k, out);
        out.push(root(left));
    }
}

/// Consistency proof from the first `old_size` leaves to all of `leaves` (RFC 9162
/// 2.1.4.1); `None` if `old_size > leaves.len()`. Empty when `old_size` is 0 or equals
/// the new size.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Option<Vec<Hash>> {
    let m = usize::try_from(old_size).ok()?;
    if m > leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    if m > 0 {
        subproof(leaves, m, true, &mut proof);
    }
    Some(proof)
}

/// SUBPROOF(m, D[n], b); `0 < m <= leaves.len()`.
fn subproof(leaves: &[Hash], m: usize, complete: bool, out: &mut Vec<Hash>) {
    if m == leaves.len() {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let (left, right) = halves(leaves);
    let k = left.len();
    if m <= k {
        subproof(left, m, complete, out);
        out.push(root(right));
    } else {
        subproof(right, m - k, false, out);
        out.push(root(left));
    }
}

/// Whether `proof` shows that `leaf` is leaf `index` of the tree of `tree_size` leaves
/// with root `root` (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let (mut fnode, mut snode) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Whether `proof` shows that the tree of `new_size` leaves with root `new_root` extends
/// the tree of `old_size` leaves with root `old_root` (RFC 9162 2.1.4.2). Equal sizes need
/// an empty proof and equal roots; the empty old tree needs an empty proof and
/// [`empty_root`] as `old_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == 0 {
        return proof.is_empty() && *old_root == empty_root();
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(old_root);
    }
    path.extend(proof.iter());
    let mut nodes = path.into_iter();
    let Some(first) = nodes.next() else {
        return false;
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in nodes {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}

#[cfg(test)]
#[path = "merkle_tests.rs"]
mod tests;
