//! Checking chains against their signed checkpoints, online (`GET /v1/audit/verify`,
//! `audit verify --audit-url`) and offline ([`super::offline`]).
//!
//! A `RootChecker` takes one chain's leaf hashes in `seq` order and keeps a
//! [`TreeBuilder`] (O(log n) hashes): at each checkpointed tree size it compares the root
//! with the checkpoint's. Online, the leaves are the stored event hashes (and the hashes
//! retention pruning kept), streamed a page at a time with
//! [`AuditStore::for_each_leaf`]; the checkpoints are those stored in the database plus
//! those the broker published to its file sink, so a database whose stored checkpoints
//! were rewritten too is caught by the file's copies. Comparing every checkpoint's root
//! with the same recomputed tree also proves successive checkpoints consistent: two that
//! both match are prefixes of one tree; one that does not while a later one does is a fork.

use std::collections::BTreeMap;

use super::merkle::{Hash, TreeBuilder};
use super::note::{VerifierKey, split_notes};
use super::offline::{Problem, Problems, SignedHeads};
use super::store::{AuditStore, StoreError};

/// One chain's tree, grown leaf by leaf and compared with its signed checkpoints.
#[derive(Debug)]
pub(crate) struct RootChecker {
    tree: TreeBuilder,
    /// Checkpoints not reached yet, by size.
    pending: BTreeMap<u64, Hash>,
    /// The largest checkpoint size whose root matched.
    matched: Option<u64>,
    /// The first checkpoint size whose root did not match.
    mismatched: Option<u64>,
}

impl RootChecker {
    /// A checker for the checkpoints `pending` (root by tree size).
    pub(crate) fn new(pending: BTreeMap<u64, Hash>) -> Self {
        Self {
            tree: TreeBuilder::new(),
            pending,
            matched: None,
            mismatched: None,
        }
    }

    /// Leaves pushed so far.
    pub(crate) fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Appends the next leaf. `None` when no checkpoint has the new size; otherwise the
    /// comparison: `Err((position, why))` when the root does not match, or when it matches
    /// while an earlier checkpoint did not (the two are inconsistent).
    pub(crate) fn push(&mut self, leaf: Hash) -> Option<Result<(), (u64, String)>> {
        self.tree.push(leaf);
        let size = self.tree.size();
        let root = self.pending.remove(&size)?;
        if root == self.tree.root() {
            self.matched = Some(size);
            return Some(match self.mismatched {
                Some(m) => Err((
                    m,
                    format!(
                        "fork: the checkpoint of size {m} is inconsistent with the one of \
                         size {size}, which matches events 1..={size}"
                    ),
                )),
                None => Ok(()),
            });
        }
        self.mismatched.get_or_insert(size);
        let why = match self.matched {
            Some(m) => format!(
                "fork: the checkpoint of size {size} does not match events 1..={size}, \
                 while the one of size {m} does (the chain was rewritten after it)"
            ),
            None => format!(
                "the checkpoint of size {size} does not match events 1..={size}: \
                 the chain was rewritten"
            ),
        };
        Some(Err((size, why)))
    }

    /// Once every leaf was pushed: the checkpoints beyond the last one, as `(first missing
    /// position, why)`.
    pub(crate) fn missing(&self, source: &str) -> Option<(u64, String)> {
        let (&size, _) = self.pending.last_key_value()?;
        let have = self.tree.size();
        Some((
            have + 1,
            format!(
                "events {}..={size} are missing: a signed checkpoint covers {size} events, \
                 {source} has {have}",
                have + 1
            ),
        ))
    }
}

/// The result of checking a store's chains against their signed checkpoints.
#[derive(Debug, Default)]
pub struct TreeCheck {
    /// Checkpoints whose signature verified.
    pub verified: u64,
    /// Checkpoint roots recomputed from the events and compared.
    pub roots: u64,
    /// What is wrong (the first [`super::offline::MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
}

/// What signed checkpoints are checked with.
#[derive(Debug)]
pub struct Trust {
    /// The keys whose signatures are accepted.
    pub keys: Vec<VerifierKey>,
    /// Checkpoints published outside the database (the file sink's), or why they could
    /// not be read.
    pub published: Result<Vec<String>, String>,
}

/// The checkpoint notes of the file sink's file at `path`; none while it does not exist.
pub fn read_published(path: &std::path::Path) -> Result<Vec<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => split_notes(&text)
            .map_err(|e| format!("{} is not a checkpoint file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

impl AuditStore {
    /// Checks every chain that has signed checkpoints, among those stored here and
    /// `published` (notes read elsewhere; `Err` when they could not be read, a problem),
    /// trusting `keys`: each signature, each root against the tree of the stored event
    /// hashes at its size, and that the chain still holds that many events. Reads the
    /// checkpoints before the events, so ones made meanwhile are covered; memory holds the
    /// checkpoints and, per chain, O(log n) hashes.
    pub async fn check_tree_heads(
        &self,
        published: Result<Vec<String>, String>,
        keys: &[VerifierKey],
    ) -> Result<TreeCheck, StoreError> {
        let mut problems = Problems::default();
        let mut notes: Vec<String> = self
            .tree_heads(None)
            .await?
            .into_iter()
            .map(|h| h.note)
            .collect();
        match published {
            Ok(more) => notes.extend(more),
            Err(why) => problems.add(None, None, format!("published checkpoints: {why}")),
        }
        let mut heads = SignedHeads::load(&notes, keys, &mut problems);
        drop(notes);
        let mut roots = 0;
        for (chain, sizes) in heads.take_chains() {
            let upto = sizes.last_key_value().map_or(0, |(s, _)| *s);
            let mut checker = RootChecker::new(sizes);
            let mut gap: Option<u64> = None;
            let read = self
                .for_each_leaf(&chain, 0, upto, |seq, leaf| {
                    if gap.is_some() {
                        return;
                    }
                    if seq != checker.size() + 1 {
                        gap = Some(checker.size() + 1);
                        return;
                    }
                    if let Some(compared) = checker.push(leaf) {
                        roots += 1;
                        if let Err((at, why)) = compared {
                            problems.add(Some(&chain), Some(at), why);
                        }
                    }
                })
                .await;
            match read {
                Ok(()) => {}
                Err(StoreError::BadHash) => {
                    problems.add(
                        Some(&chain),
                        Some(checker.size() + 1),
                        "a stored event hash is not hex SHA-256",
                    );
                    continue;
                }
                Err(e) => return Err(e),
            }
            if let Some(at) = gap {
                problems.add(
                    Some(&chain),
                    Some(at),
                    format!("event {at} is missing (deleted or moved) below a signed checkpoint"),
                );
            } else if let Some((at, why)) = checker.missing("the database") {
                problems.add(Some(&chain), Some(at), why);
            }
        }
        Ok(TreeCheck {
            verified: heads.verified(),
            roots,
            problems: problems.into_list(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::merkle::{leaf_hash, root};
    use crate::audit::verify::{Broken, verify};

    fn leaves(n: u8, tag: u8) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[i ^ tag; 32])).collect()
    }

    #[test]
    fn a_later_checkpoint_that_matches_exposes_an_earlier_one_as_a_fork() {
        let honest = leaves(8, 0);
        let other = leaves(8, 0xff);
        let pending = BTreeMap::from([
            (3, root(&other[..3])),
            (6, root(&honest[..6])),
            (8, [0; 32]),
        ]);
        let mut c = RootChecker::new(pending);
        let compared: Vec<_> = honest.iter().filter_map(|l| c.push(*l)).collect();
        assert_eq!(compared.len(), 3, "{compared:?}");
        assert!(
            matches!(&compared[0], Err((3, w)) if w.contains("the chain was rewritten")),
            "{compared:?}"
        );
        assert!(
            matches!(&compared[1], Err((3, w)) if w.contains("size 3 is inconsistent with the one of size 6")),
            "{compared:?}"
        );
        assert!(
            matches!(&compared[2], Err((8, w)) if w.contains("while the one of size 6 does")),
            "{compared:?}"
        );
        assert_eq!(c.missing("the database"), None);
    }

    #[test]
    fn checkpoints_beyond_the_last_leaf_name_the_missing_events() {
        let l = leaves(5, 0);
        let pending = BTreeMap::from([(2, root(&l[..2])), (5, root(&l))]);
        let mut c = RootChecker::new(pending);
        for leaf in &l[..3] {
            assert!(!matches!(c.push(*leaf), Some(Err(_))));
        }
        let (at, why) = c.missing("the database").unwrap();
        assert_eq!(at, 4);
        assert!(
            why.contains("events 4..=5 are missing") && why.contains("the database has 3"),
            "{why}"
        );
    }

    #[test]
    fn a_checkpoint_problem_fails_an_intact_walk_and_is_named_first() {
        let problem = Problem {
            chain_id: Some("a".into()),
            seq: Some(7),
            reason: "events 7..=8 are missing".into(),
        };
        let v = verify(&[]).with_tree_check(TreeCheck {
            verified: 2,
            roots: 1,
            problems: vec![problem.clone()],
        });
        assert!(!v.ok);
        assert_eq!(v.checkpoint_problems, [problem]);
        assert_eq!(
            v.first_broken,
            Some(Broken {
                chain_id: "a".into(),
                seq: 7,
                id: None,
                reason: "events 7..=8 are missing".into(),
            })
        );
        let clean = verify(&[]).with_tree_check(TreeCheck::default());
        assert!(clean.ok && clean.first_broken.is_none());
    }
}
