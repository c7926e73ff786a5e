//! The Merkle tree over one chain's events, RFC 6962 section 2.1 (RFC 9162 section 2.1).
//!
//! Leaf `i` (0-based) is the event with `seq = i + 1`; its leaf hash is
//! SHA-256(0x00 || the 32 raw bytes of the event's `hash`), an interior node is
//! SHA-256(0x01 || left || right), and the tree of `n` leaves splits at the largest power
//! of two below `n`. Pure functions, no I/O: the checkpoint maker keeps a [`TreeBuilder`]
//! (O(log n) memory), the proof routes list the leaf ranges a proof's nodes are the roots
//! of ([`inclusion_ranges`], [`consistency_ranges`]) and stream those leaves, and verifiers
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

/// A half-open range `[start, end)` of leaf indices: the subtree whose root is one node
/// of a proof.
pub type LeafRange = (u64, u64);

/// The largest power of two smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The leaf ranges whose subtree roots are the audit path of leaf `index` in a tree of
/// `size` leaves (RFC 9162 2.1.3.1, PATH), in proof order (deepest first); `None` if
/// `index` is out of range. The ranges are disjoint, so a proof is computed by streaming
/// each range's leaves into a [`TreeBuilder`]: O(log n) memory, whatever the tree's size.
pub fn inclusion_ranges(index: u64, size: u64) -> Option<Vec<LeafRange>> {
    if index >= size {
        return None;
    }
    let mut out = Vec::new();
    path_ranges(0, size, index, &mut out);
    Some(out)
}

/// PATH(m, D[lo..hi]); `lo <= m < hi`. Appends deepest first.
fn path_ranges(lo: u64, hi: u64, m: u64, out: &mut Vec<LeafRange>) {
    if hi - lo <= 1 {
        return;
    }
    let mid = lo + split_point(hi - lo);
    if m < mid {
        path_ranges(lo, mid, m, out);
        out.push((mid, hi));
    } else {
        path_ranges(mid, hi, m, out);
        out.push((lo, mid));
    }
}

/// The leaf ranges whose subtree roots are the consistency proof from the first
/// `old_size` leaves to a tree of `size` leaves (RFC 9162 2.1.4.1, SUBPROOF), in proof
/// order; `None` if `old_size > size`. Empty when `old_size` is 0 or equals `size`.
/// Disjoint, like [`inclusion_ranges`].
pub fn consistency_ranges(old_size: u64, size: u64) -> Option<Vec<LeafRange>> {
    if old_size > size {
        return None;
    }
    let mut out = Vec::new();
    if old_size > 0 {
        subproof_ranges(0, size, old_size, true, &mut out);
    }
    Some(out)
}

/// SUBPROOF(m, D[lo..hi], b); `0 < m <= hi - lo`.
fn subproof_ranges(lo: u64, hi: u64, m: u64, complete: bool, out: &mut Vec<LeafRange>) {
    if m == hi - lo {
        if !complete {
            out.push((lo, hi));
        }
        return;
    }
    let k = split_point(hi - lo);
    if m <= k {
        subproof_ranges(lo, lo + k, m, complete, out);
        out.push((lo + k, hi));
    } else {
        subproof_ranges(lo + k, hi, m - k, false, out);
        out.push((lo, lo + k));
    }
}

/// The roots of `ranges` over the leaf hashes `leaves` (every range within them).
fn range_roots(leaves: &[Hash], ranges: &[LeafRange]) -> Option<Vec<Hash>> {
    ranges
        .iter()
        .map(|&(lo, hi)| {
            let lo = usize::try_from(lo).ok()?;
            let hi = usize::try_from(hi).ok()?;
            leaves.get(lo..hi).map(root)
        })
        .collect()
}

/// Audit path for leaf `index` in the tree of all of `leaves` (RFC 9162 2.1.3.1); `None`
/// if `index` is out of range. For leaves already in memory (tests, small trees); the
/// broker streams them instead ([`inclusion_ranges`]).
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Option<Vec<Hash>> {
    range_roots(leaves, &inclusion_ranges(index, leaves.len() as u64)?)
}

/// Consistency proof from the first `old_size` leaves to all of `leaves` (RFC 9162
/// 2.1.4.1); `None` if `old_size > leaves.len()`. Empty when `old_size` is 0 or equals
/// the new size. For leaves in memory, like [`inclusion_proof`].
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Option<Vec<Hash>> {
    range_roots(leaves, &consistency_ranges(old_size, leaves.len() as u64)?)
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
