//! Checking the hash chains. A [`ChainWalker`] takes events one at a time, in chain and
//! position order, and keeps only where it is in the current chain (the position it expects
//! and the previous hash): the store feeds it a page at a time, so verifying a trail of any
//! size takes constant memory.
//!
//! A chain pruned by retention starts after its checkpoint (the last deleted event's
//! position and hash). A checkpoint also records that event's time: a checkpoint newer than
//! the retention period allows would hide events that should still be there, so it is
//! reported as a broken link. Checkpoints written before the time was recorded (legacy) are
//! accepted and counted.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::event::{AuditEvent, GENESIS};
use super::offline::Problem;
use super::tree_check::TreeCheck;

/// Events read per page while a store's chains are walked.
pub const VERIFY_PAGE: u32 = 1000;

/// How much newer than the retention cut-off a checkpoint may be: room for clock
/// differences between replicas that prune one shared store.
pub const CHECKPOINT_MARGIN: Duration = Duration::from_secs(3600);

/// What retention pruning left of a chain's deleted prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Chain.
    pub chain_id: String,
    /// Position of the last deleted event.
    pub seq: i64,
    /// Hash of the last deleted event.
    pub hash: String,
    /// Time of the last deleted event (RFC 3339); `None` for checkpoints written before
    /// it was recorded.
    pub time: Option<String>,
}

/// The newest time a checkpoint may carry when events are kept `retention_days`: the
/// retention cut-off at `now`, plus [`CHECKPOINT_MARGIN`].
pub fn newest_checkpoint(now: SystemTime, retention_days: u32) -> Option<SystemTime> {
    now.checked_sub(Duration::from_secs(u64::from(retention_days) * 86_400))
        .map(|cutoff| cutoff + CHECKPOINT_MARGIN)
}

/// The first event whose link does not hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Broken {
    /// Chain.
    pub chain_id: String,
    /// Position expected there (for a checkpoint: the position it names).
    pub seq: i64,
    /// The event found there; `None` when the checkpoint itself is at fault.
    pub id: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// Result of walking the chains (`GET /v1/audit/verify`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// Every link holds.
    pub ok: bool,
    /// Events looked at.
    pub events_checked: u64,
    /// The first broken link, if any.
    pub first_broken: Option<Broken>,
    /// Retention checkpoints without a recorded time (written by an older version): they
    /// are accepted, but their age cannot be checked. Left out when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub legacy_checkpoints: u64,
    /// Signed checkpoints (stored, and published to the file sink) whose signature
    /// verified. Left out when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub checkpoints_verified: u64,
    /// Checkpoint roots recomputed from the stored events and compared. Left out when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub roots_checked: u64,
    /// What is wrong with the chains measured against their signed checkpoints (the first
    /// [`super::offline::MAX_PROBLEMS`]), each with its chain and position (event `seq`
    /// or tree size). Left out when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checkpoint_problems: Vec<Problem>,
}

impl Verification {
    /// Adds what checking the signed checkpoints found: any problem makes the result not
    /// ok, and the first one is `first_broken` when every link held.
    pub fn with_tree_check(mut self, check: TreeCheck) -> Self {
        self.checkpoints_verified = check.verified;
        self.roots_checked = check.roots;
        if let (None, Some(p)) = (&self.first_broken, check.problems.first()) {
            self.first_broken = Some(Broken {
                chain_id: p.chain_id.clone().unwrap_or_default(),
                seq: p.seq.and_then(|s| i64::try_from(s).ok()).unwrap_or(0),
                id: None,
                reason: p.reason.clone(),
            });
        }
        self.ok &= check.problems.is_empty();
        self.checkpoint_problems = check.problems;
        self
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Walks chains one event at a time; see the module documentation.
#[derive(Debug)]
pub struct ChainWalker {
    /// Where each pruned chain starts: (first position, previous hash).
    starts: BTreeMap<String, (i64, String)>,
    chain: Option<String>,
    expect_seq: i64,
    prev: String,
    checked: u64,
    legacy: u64,
    broken: Option<Broken>,
}

impl ChainWalker {
    /// A walker for a store whose pruned chains left `checkpoints`. With
    /// `newest_checkpoint` (see [`newest_checkpoint`]), a checkpoint carrying a later time
    /// is a broken link; without it, checkpoint times are not checked.
    pub fn new(checkpoints: &[Checkpoint], newest_checkpoint: Option<SystemTime>) -> Self {
        let mut walker = Self {
            starts: BTreeMap::new(),
            chain: None,
            expect_seq: 1,
            prev: GENESIS.to_owned(),
            checked: 0,
            legacy: 0,
            broken: None,
        };
        let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
        sorted.sort_by(|a, b| a.chain_id.cmp(&b.chain_id));
        for c in sorted {
            walker
                .starts
                .insert(c.chain_id.clone(), (c.seq + 1, c.hash.clone()));
            let fault = match c.time.as_deref() {
                None => {
                    walker.legacy += 1;
                    None
                }
                Some(t) => match crate::clock::parse_rfc3339(t) {
                    None => Some("a retention checkpoint's time is unreadable"),
                    Some(t) if newest_checkpoint.is_some_and(|newest| t > newest) => {
                        Some("a retention checkpoint is newer than the retention period allows")
                    }
                    Some(_) => None,
                },
            };
            if let (Some(reason), None) = (fault, &walker.broken) {
                walker.broken = Some(Broken {
                    chain_id: c.chain_id.clone(),
                    seq: c.seq,
                    id: None,
                    reason: reason.into(),
                });
            }
        }
        walker
    }

    /// Takes the next event (ordered by chain, then position). Returns false once a link
    /// is broken: later events cannot change the result.
    pub fn push(&mut self, e: &AuditEvent) -> bool {
        if self.broken.is_some() {
            return false;
        }
        if self.chain.as_deref() != Some(e.chain_id.as_str()) {
            self.chain = Some(e.chain_id.clone());
            (self.expect_seq, self.prev) = self
                .starts
                .get(&e.chain_id)
                .cloned()
                .unwrap_or_else(|| (1, GENESIS.to_owned()));
        }
        self.checked += 1;
        let fault = if e.seq != self.expect_seq {
            Some("an event is missing or out of order")
        } else if e.prev_hash != self.prev {
            Some("prev_hash does not match the previous event")
        } else if e.compute_hash().ok().as_deref() != Some(e.hash.as_str()) {
            Some("the event was altered: its hash does not match its contents")
        } else {
            None
        };
        if let Some(reason) = fault {
            self.broken = Some(Broken {
                chain_id: e.chain_id.clone(),
                seq: self.expect_seq,
                id: Some(e.id.clone()),
                reason: reason.into(),
            });
            return false;
        }
        self.prev.clone_from(&e.hash);
        self.expect_seq += 1;
        true
    }

    /// The result, once every event was pushed (or a link was broken).
    pub fn finish(self) -> Verification {
        Verification {
            ok: self.broken.is_none(),
            events_checked: self.checked,
            first_broken: self.broken,
            legacy_checkpoints: self.legacy,
            checkpoints_verified: 0,
            roots_checked: 0,
            checkpoint_problems: Vec::new(),
        }
    }
}

/// Checks `events` (ordered by chain and position): positions count from 1 without gaps,
/// each `prev_hash` is the previous event's hash, and each hash matches its contents.
pub fn verify(events: &[AuditEvent]) -> Verification {
    verify_from(events, &[], None)
}

/// Like [`verify`], with chains pruned by retention starting after their checkpoint, and
/// checkpoints newer than `newest_checkpoint` reported.
pub fn verify_from(
    events: &[AuditEvent],
    checkpoints: &[Checkpoint],
    newest_checkpoint: Option<SystemTime>,
) -> Verification {
    let mut walker = ChainWalker::new(checkpoints, newest_checkpoint);
    for e in events {
        if !walker.push(e) {
            break;
        }
    }
    walker.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(id: &str, n: i64, start: (i64, &str)) -> Vec<AuditEvent> {
        let (mut seq, mut prev) = (start.0, start.1.to_owned());
        let mut out = Vec::new();
        for i in 0..n {
            let mut e = AuditEvent {
                id: format!("{id}-{i}"),
                chain_id: id.into(),
                seq,
                prev_hash: prev.clone(),
                ..AuditEvent::sample_for_tests()
            };
            e.hash = e.compute_hash().unwrap();
            prev.clone_from(&e.hash);
            seq += 1;
            out.push(e);
        }
        out
    }

    fn at(s: &str) -> SystemTime {
        crate::clock::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn intact_chains_verify_and_a_broken_link_is_named() {
        let mut events = chain("a", 3, (1, GENESIS));
        events.extend(chain("b", 2, (1, GENESIS)));
        assert_eq!(
            verify(&events),
            Verification {
                ok: true,
                events_checked: 5,
                first_broken: None,
                legacy_checkpoints: 0,
                checkpoints_verified: 0,
                roots_checked: 0,
                checkpoint_problems: Vec::new(),
            }
        );
        events[1].subject = Some("admin".into());
        let v = verify(&events);
        assert_eq!(v.events_checked, 2);
        assert_eq!(
            v.first_broken,
            Some(Broken {
                chain_id: "a".into(),
                seq: 2,
                id: Some("a-1".into()),
                reason: "the event was altered: its hash does not match its contents".into(),
            })
        );
    }

    #[test]
    fn checkpoints_are_checked_against_the_retention_cutoff() {
        let head = chain("a", 3, (1, GENESIS));
        let rest = chain("a", 2, (4, &head[2].hash));
        let checkpoint = |time: Option<&str>| Checkpoint {
            chain_id: "a".into(),
            seq: 3,
            hash: head[2].hash.clone(),
            time: time.map(str::to_owned),
        };
        let newest = newest_checkpoint(at("2026-03-09T14:11:29Z"), 30);
        assert_eq!(newest, Some(at("2026-02-07T15:11:29Z")));

        let old = verify_from(
            &rest,
            &[checkpoint(Some("2026-02-01T00:00:00.000Z"))],
            newest,
        );
        assert!(old.ok && old.events_checked == 2 && old.legacy_checkpoints == 0);

        let legacy = verify_from(&rest, &[checkpoint(None)], newest);
        assert!(legacy.ok && legacy.legacy_checkpoints == 1, "{legacy:?}");

        let forged = verify_from(
            &rest,
            &[checkpoint(Some("2026-03-09T14:00:00.000Z"))],
            newest,
        );
        assert!(!forged.ok);
        assert_eq!(
            forged.first_broken,
            Some(Broken {
                chain_id: "a".into(),
                seq: 3,
                id: None,
                reason: "a retention checkpoint is newer than the retention period allows".into(),
            })
        );
        // Without a retention period, times are not checked; an unreadable one always is.
        assert!(verify_from(&rest, &[checkpoint(Some("2026-03-09T14:00:00.000Z"))], None).ok);
        assert!(!verify_from(&rest, &[checkpoint(Some("yesterday"))], None).ok);
    }

    #[test]
    fn a_checkpoint_of_a_chain_with_no_events_left_is_still_checked() {
        let events = chain("b", 2, (1, GENESIS));
        let forged = Checkpoint {
            chain_id: "a".into(),
            seq: 9,
            hash: GENESIS.into(),
            time: Some("2026-03-09T14:00:00.000Z".into()),
        };
        let newest = newest_checkpoint(at("2026-03-09T14:11:29Z"), 1);
        let v = verify_from(&events, &[forged], newest);
        assert!(!v.ok);
        assert_eq!(v.first_broken.map(|b| b.chain_id), Some("a".to_owned()));
    }
}
