//! Offline verification: each tamper case of issue 19 is found and placed.

use super::event::{AuditEvent, GENESIS};
use super::merkle::{TreeBuilder, leaf_hash};
use super::note::{CheckpointBody, SigningKey, VerifierKey};
use super::offline::{OfflineReport, verify_export};

const CHAIN: &str = "0195c2a0-0000-7000-8000-00000000c4a1";

fn key(name: &str, seed: u8) -> SigningKey {
    SigningKey::from_seed(name, &[seed; 32]).unwrap()
}

/// `n` linked JCS events of `chain`, rewritten from `reason` so chains can differ.
fn chain(chain: &str, n: usize, reason: &str) -> Vec<AuditEvent> {
    let mut prev = GENESIS.to_owned();
    (1..=n)
        .map(|seq| {
            let mut e = AuditEvent {
                reason: Some(format!("{reason} {seq}")),
                chain_id: chain.into(),
                seq: seq as i64,
                prev_hash: prev.clone(),
                ..AuditEvent::sample_for_tests()
            };
            e.id = format!("event-{seq}");
            e.hash = e.compute_hash().unwrap();
            prev.clone_from(&e.hash);
            e
        })
        .collect()
}

/// A signed checkpoint of the first `size` of `events`.
fn checkpoint(events: &[AuditEvent], size: usize, k: &SigningKey) -> String {
    let mut t = TreeBuilder::new();
    for e in &events[..size] {
        t.push(leaf_hash(
            &hex::decode(&e.hash).unwrap().try_into().unwrap(),
        ));
    }
    let body = CheckpointBody {
        origin: format!("rds-token-broker/{}", events[0].chain_id),
        tree_size: size as u64,
        root_hash: t.root(),
    };
    k.sign(&body.to_text()).unwrap()
}

fn ndjson(events: &[AuditEvent]) -> String {
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect()
}

fn run(events: &[AuditEvent], notes: &[String], keys: &[VerifierKey]) -> OfflineReport {
    verify_export(ndjson(events).as_bytes(), notes, keys).unwrap()
}

/// The one problem reported, as (chain, position, reason).
fn only_problem(r: &OfflineReport) -> (String, u64, String) {
    assert!(!r.ok, "{r:?}");
    assert_eq!(r.problem_count, 1, "{r:?}");
    let p = &r.problems[0];
    (
        p.chain_id.clone().unwrap(),
        p.seq.unwrap(),
        p.reason.clone(),
    )
}

struct Fixture {
    events: Vec<AuditEvent>,
    notes: Vec<String>,
    keys: Vec<VerifierKey>,
}

/// Ten events with checkpoints at 4 and 8.
fn fixture() -> Fixture {
    let k = key("audit.example.com", 7);
    let events = chain(CHAIN, 10, "honest");
    let notes = vec![checkpoint(&events, 4, &k), checkpoint(&events, 8, &k)];
    Fixture {
        events,
        notes,
        keys: vec![k.verifier_key().clone()],
    }
}

#[test]
fn an_honest_export_verifies_with_every_root_checked() {
    let f = fixture();
    let mut other = chain("0195c2a0-0000-7000-8000-0000000000b2", 3, "other");
    let k = key("audit.example.com", 7);
    let mut notes = f.notes.clone();
    notes.push(checkpoint(&other, 3, &k));
    let mut events = f.events.clone();
    events.append(&mut other);
    let r = run(&events, &notes, &f.keys);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.events_checked, 13);
    assert_eq!(r.chains, 2);
    assert_eq!(r.checkpoints_verified, 3);
    assert_eq!(r.roots_checked, 3);
}

#[test]
fn an_edited_event_is_named() {
    let mut f = fixture();
    f.events[5].db_user = Some("root".into());
    let (chain, seq, reason) = only_problem(&run(&f.events, &f.notes, &f.keys));
    assert_eq!((chain.as_str(), seq), (CHAIN, 6));
    assert!(reason.contains("altered"), "{reason}");
}

#[test]
fn a_deleted_event_in_the_middle_is_named() {
    let mut f = fixture();
    f.events.remove(2);
    let (chain, seq, reason) = only_problem(&run(&f.events, &f.notes, &f.keys));
    assert_eq!((chain.as_str(), seq), (CHAIN, 3));
    assert!(reason.contains("missing"), "{reason}");
}

/// The chain alone cannot see this: the rest still links. The checkpoint of size 8 can.
#[test]
fn deleted_newest_events_up_to_the_last_checkpoint_are_named() {
    let mut f = fixture();
    f.events.truncate(6);
    let (chain, seq, reason) = only_problem(&run(&f.events, &f.notes, &f.keys));
    assert_eq!((chain.as_str(), seq), (CHAIN, 7));
    assert!(reason.contains("events 7..=8 are missing"), "{reason}");
    // Every event of the chain gone.
    let (_, seq, reason) = only_problem(&run(&[], &f.notes, &f.keys));
    assert_eq!(seq, 1);
    assert!(reason.contains("no events of this chain"), "{reason}");
}

#[test]
fn reordered_events_are_named() {
    let mut f = fixture();
    f.events.swap(3, 4);
    let (chain, seq, reason) = only_problem(&run(&f.events, &f.notes, &f.keys));
    assert_eq!((chain.as_str(), seq), (CHAIN, 4));
    assert!(reason.contains("missing"), "{reason}");
    // Chains interleaved: not the order an export has.
    let other = chain_of("0195c2a0-0000-7000-8000-0000000000b2");
    let mut mixed = f.events[..0].to_vec();
    mixed.extend(fixture().events[..2].iter().cloned());
    mixed.extend(other);
    mixed.extend(fixture().events[2..].iter().cloned());
    let r = run(&mixed, &fixture().notes, &fixture().keys);
    assert!(
        r.problems
            .iter()
            .any(|p| p.reason.contains("not in chain then position order")),
        "{r:?}"
    );
}

fn chain_of(id: &str) -> Vec<AuditEvent> {
    chain(id, 2, "other")
}

/// Recomputed hashes make the chain link again; the signed roots do not match.
#[test]
fn a_chain_rewritten_wholesale_is_named() {
    let f = fixture();
    let forged = chain(CHAIN, 10, "forged");
    let (chain, seq, reason) = only_problem(&run(&forged, &f.notes, &f.keys));
    assert_eq!((chain.as_str(), seq), (CHAIN, 4));
    assert!(reason.contains("rewritten"), "{reason}");
}

#[test]
fn a_checkpoint_signed_by_an_unknown_key_is_named() {
    let f = fixture();
    let stranger = key("audit.example.com", 9);
    let mut notes = f.notes.clone();
    notes.push(checkpoint(&f.events, 10, &stranger));
    let (chain, seq, reason) = only_problem(&run(&f.events, &notes, &f.keys));
    assert_eq!((chain.as_str(), seq), (CHAIN, 10));
    assert!(
        reason.contains("not signed by any of the given keys"),
        "{reason}"
    );
    // An altered note signed by a known key.
    let mut notes = f.notes.clone();
    notes[1] = notes[1].replacen("\n8\n", "\n9\n", 1);
    let (_, seq, reason) = only_problem(&run(&f.events, &notes, &f.keys));
    assert_eq!(seq, 9);
    assert!(reason.contains("does not verify"), "{reason}");
}

/// Two signed checkpoints of one chain that are not consistent: the broker signed a tree,
/// then the chain was rewritten after it and signed again.
#[test]
fn two_inconsistent_checkpoints_of_one_chain_are_a_fork() {
    let f = fixture();
    let k = key("audit.example.com", 7);
    let mut forked = f.events[..4].to_vec();
    let mut tail = chain(CHAIN, 10, "forked");
    // Relink the forged tail after the honest first four events.
    let mut prev = forked[3].hash.clone();
    for e in tail.drain(4..) {
        let mut e = e;
        e.prev_hash = prev.clone();
        e.hash = e.compute_hash().unwrap();
        prev.clone_from(&e.hash);
        forked.push(e);
    }
    // Same size, different roots.
    let mut notes = f.notes.clone();
    notes.push(checkpoint(&forked, 8, &k));
    let (chain, seq, reason) = only_problem(&run(&f.events, &notes, &f.keys));
    assert_eq!((chain.as_str(), seq), (CHAIN, 8));
    assert!(reason.contains("fork"), "{reason}");
    // Different sizes: the size-4 one matches the export, the size-10 one cannot.
    let notes = vec![f.notes[0].clone(), checkpoint(&forked, 10, &k)];
    let (chain, seq, reason) = only_problem(&run(&f.events, &notes, &f.keys));
    assert_eq!((chain.as_str(), seq), (CHAIN, 10));
    assert!(reason.contains("fork"), "{reason}");
}

#[test]
fn a_line_that_is_not_an_event_is_reported() {
    let f = fixture();
    let text = format!("{}not json\n", ndjson(&f.events));
    let r = verify_export(text.as_bytes(), &f.notes, &f.keys).unwrap();
    assert_eq!(r.problem_count, 1, "{r:?}");
    assert!(r.problems[0].reason.contains("line 11"), "{r:?}");
}

/// About half of all Ed25519 keys have a `+` in their base64 form: the text form splits
/// at the first two `+` only (as Go's `note.NewVerifier` does).
#[test]
fn verifier_keys_whose_base64_holds_a_plus_parse() {
    let mut with_plus = 0;
    for seed in 0..=40u8 {
        let k = key("audit.example.com", seed);
        let text = k.verifier_key().to_string();
        if text.rsplit('+').count() > 3 {
            with_plus += 1;
        }
        assert_eq!(
            &text.parse::<VerifierKey>().unwrap(),
            k.verifier_key(),
            "{text}"
        );
    }
    assert!(with_plus > 0, "no key with a + in base64 was tried");
}
