//! Verifying an exported trail against published checkpoints, with no broker and no
//! database (`audit verify --export`): every event hash, every chain link, every
//! checkpointed Merkle root, every checkpoint signature, and that a chain's checkpoints
//! agree with each other (consistency: all are roots of prefixes of one tree).
//!
//! Events are streamed: per chain, only the position, the previous hash and a
//! [`TreeBuilder`](super::merkle::TreeBuilder) (O(log n) hashes) are kept, so memory does
//! not grow with the chain. The export must hold whole chains in chain then position order
//! (what `audit export` writes with no filters); anything else is reported, not silently
//! reordered.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::event::{AuditEvent, GENESIS};
use super::merkle::{Hash, leaf_hash};
use super::note::{NoteError, VerifierKey, verify_checkpoint};
use super::tree_check::RootChecker;

/// Most problems listed; later ones are only counted.
pub const MAX_PROBLEMS: usize = 100;

/// One thing that is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Problem {
    /// The chain, when known.
    pub chain_id: Option<String>,
    /// The position (event `seq`, or a checkpoint's tree size), when known.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

/// The result of an offline verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineReport {
    /// Nothing is wrong.
    pub ok: bool,
    /// Events read.
    pub events_checked: u64,
    /// Chains seen in the export.
    pub chains: u64,
    /// Checkpoints whose signature verified.
    pub checkpoints_verified: u64,
    /// Checkpoint roots compared with the events' tree.
    pub roots_checked: u64,
    /// Problems found (the first [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// Problems found in all.
    pub problem_count: u64,
}

/// Signed tree heads, per chain and tree size, from notes whose signatures verified.
#[derive(Debug, Default)]
pub struct SignedHeads {
    chains: BTreeMap<String, BTreeMap<u64, Hash>>,
    verified: u64,
}

/// Collects problems, keeping the first [`MAX_PROBLEMS`].
#[derive(Debug, Default)]
pub(crate) struct Problems {
    list: Vec<Problem>,
    count: u64,
}

impl Problems {
    /// The problems kept.
    pub(crate) fn into_list(self) -> Vec<Problem> {
        self.list
    }

    pub(crate) fn add(&mut self, chain: Option<&str>, seq: Option<u64>, reason: impl Into<String>) {
        self.count += 1;
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(Problem {
                chain_id: chain.map(str::to_owned),
                seq,
                reason: reason.into(),
            });
        }
    }
}

/// The chain id a checkpoint's origin names: what follows its last `/`.
pub fn chain_of_origin(origin: &str) -> Option<&str> {
    origin
        .rsplit_once('/')
        .map(|(_, c)| c)
        .filter(|c| !c.is_empty())
}

impl SignedHeads {
    /// Verifies each note against `keys`; those that verify are kept, the others reported
    /// (an unknown key, a bad signature, a malformed note), as are two checkpoints of one
    /// chain and size with different roots (a fork).
    pub(crate) fn load(notes: &[String], keys: &[VerifierKey], problems: &mut Problems) -> Self {
        let mut heads = Self::default();
        for (i, note) in notes.iter().enumerate() {
            let origin_chain = note.lines().next().and_then(chain_of_origin);
            let checkpoint = match verify_checkpoint(note, keys) {
                Ok(c) => c,
                Err(e) => {
                    let why = match e {
                        NoteError::UnknownKey => {
                            "a checkpoint is not signed by any of the given keys".to_owned()
                        }
                        e => format!("a checkpoint does not verify: {e}"),
                    };
                    let size = note.lines().nth(1).and_then(|s| s.parse().ok());
                    problems.add(origin_chain, size, format!("{why} (note {})", i + 1));
                    continue;
                }
            };
            heads.verified += 1;
            let Some(chain) = chain_of_origin(&checkpoint.body.origin) else {
                problems.add(None, None, "a checkpoint's origin names no chain");
                continue;
            };
            let sizes = heads.chains.entry(chain.to_owned()).or_default();
            let size = checkpoint.body.tree_size;
            match sizes.get(&size) {
                Some(root) if *root != checkpoint.body.root_hash => problems.add(
                    Some(chain),
                    Some(size),
                    "fork: two signed checkpoints of this chain and size have different roots",
                ),
                _ => {
                    sizes.insert(size, checkpoint.body.root_hash);
                }
            }
        }
        heads
    }

    /// Checkpoints whose signature verified.
    pub(crate) fn verified(&self) -> u64 {
        self.verified
    }

    /// Each chain's verified checkpoints (root by tree size), taken out.
    pub(crate) fn take_chains(&mut self) -> BTreeMap<String, BTreeMap<u64, Hash>> {
        std::mem::take(&mut self.chains)
    }
}

/// Where the walk stands in the current chain.
#[derive(Debug)]
struct ChainState {
    id: String,
    expect_seq: i64,
    prev: String,
    /// The tree, compared with this chain's checkpoints.
    roots: RootChecker,
    /// A link broke: later events of this chain are not compared any more.
    broken: bool,
}

/// Streams events through the checks; see the module documentation.
#[derive(Debug)]
pub struct OfflineVerifier {
    heads: SignedHeads,
    problems: Problems,
    seen: BTreeSet<String>,
    current: Option<ChainState>,
    events: u64,
    roots: u64,
}

impl OfflineVerifier {
    /// A verifier for the checkpoints `notes`, trusting `keys`.
    pub fn new(notes: &[String], keys: &[VerifierKey]) -> Self {
        let mut problems = Problems::default();
        let heads = SignedHeads::load(notes, keys, &mut problems);
        Self {
            heads,
            problems,
            seen: BTreeSet::new(),
            current: None,
            events: 0,
            roots: 0,
        }
    }

    /// Reports a line of the export that is not an event.
    pub fn unreadable(&mut self, line: u64, why: &str) {
        self.problems.add(
            None,
            None,
            format!("line {line} of the export is not an event: {why}"),
        );
    }

    /// Takes the next event of the export.
    pub fn push(&mut self, e: &AuditEvent) {
        self.events += 1;
        if self.current.as_ref().map(|c| c.id.as_str()) != Some(e.chain_id.as_str()) {
            self.finish_chain();
            if !self.seen.insert(e.chain_id.clone()) {
                self.problems.add(
                    Some(&e.chain_id),
                    u64::try_from(e.seq).ok(),
                    "the export is not in chain then position order: this chain appeared before",
                );
            }
            self.current = Some(ChainState {
                id: e.chain_id.clone(),
                expect_seq: 1,
                prev: GENESIS.to_owned(),
                roots: RootChecker::new(self.heads.chains.remove(&e.chain_id).unwrap_or_default()),
                broken: false,
            });
        }
        let Some(c) = self.current.as_mut() else {
            return;
        };
        if c.broken {
            return;
        }
        let at = u64::try_from(c.expect_seq).ok();
        let fault = if e.seq != c.expect_seq {
            Some(if e.seq > c.expect_seq {
                format!(
                    "events are missing: expected position {}, found {}",
                    c.expect_seq, e.seq
                )
            } else {
                format!(
                    "events are out of order: expected position {}, found {}",
                    c.expect_seq, e.seq
                )
            })
        } else if e.prev_hash != c.prev {
            Some("prev_hash does not match the previous event".to_owned())
        } else if e.compute_hash().ok().as_deref() != Some(e.hash.as_str()) {
            Some("the event was altered: its hash does not match its contents".to_owned())
        } else {
            None
        };
        let leaf = hex::decode(&e.hash)
            .ok()
            .and_then(|h| Hash::try_from(h).ok());
        let (Some(leaf), None) = (leaf, &fault) else {
            let reason = fault.unwrap_or_else(|| "the event's hash is not hex SHA-256".into());
            self.problems
                .add(Some(&c.id), at, format!("{reason} (event {})", e.id));
            c.broken = true;
            return;
        };
        c.prev.clone_from(&e.hash);
        c.expect_seq += 1;
        if let Some(compared) = c.roots.push(leaf_hash(&leaf)) {
            self.roots += 1;
            if let Err((at, reason)) = compared {
                self.problems.add(Some(&c.id), Some(at), reason);
                c.broken = true;
            }
        }
    }

    /// Checks what is left of the current chain: checkpoints beyond its last event.
    fn finish_chain(&mut self) {
        let Some(c) = self.current.take() else {
            return;
        };
        if c.broken {
            return;
        }
        if let Some((at, reason)) = c.roots.missing("the export") {
            self.problems.add(Some(&c.id), Some(at), reason);
        }
    }

    /// The result, once every event was pushed.
    pub fn finish(mut self) -> OfflineReport {
        self.finish_chain();
        let chains = self.seen.len() as u64;
        for (chain, sizes) in std::mem::take(&mut self.heads.chains) {
            if let Some((&size, _)) = sizes.last_key_value() {
                self.problems.add(
                    Some(&chain),
                    Some(1),
                    format!(
                        "the export has no events of this chain, but a signed checkpoint \
                         covers {size}"
                    ),
                );
            }
        }
        OfflineReport {
            ok: self.problems.count == 0,
            events_checked: self.events,
            chains,
            checkpoints_verified: self.heads.verified,
            roots_checked: self.roots,
            problems: self.problems.list,
            problem_count: self.problems.count,
        }
    }
}

/// Verifies the NDJSON export read from `export` against the checkpoints `notes`.
pub fn verify_export(
    export: impl std::io::BufRead,
    notes: &[String],
    keys: &[VerifierKey],
) -> std::io::Result<OfflineReport> {
    let mut v = OfflineVerifier::new(notes, keys);
    let mut n = 0u64;
    for line in export.lines() {
        let line = line?;
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<AuditEvent>(&line) {
            Ok(e) => v.push(&e),
            Err(e) => v.unreadable(n, &e.to_string()),
        }
    }
    Ok(v.finish())
}
