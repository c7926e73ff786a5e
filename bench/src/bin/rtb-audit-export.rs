//! Writes a synthetic audit trail for the offline-verification memory benchmark, straight
//! (no HTTP, no database): one chain of N JCS events, as `audit export` writes them.
//! `rtb-audit-export N notes FILE` writes signed checkpoints (every N/10 events and at N)
//! to FILE in the checkpoint file sink's format and prints the verifier key;
//! `rtb-audit-export N events` writes the N events (NDJSON) to stdout;
//! `rtb-audit-export N store URL` appends the N events to the audit store at URL (e.g.
//! `sqlite://FILE`, created) in batches, stores the same checkpoints in it, and prints the
//! verifier key, for the online verification benchmark (`audit verify --audit-url`). All
//! are deterministic, so the events match the checkpoints.

use std::io::Write;

use base64::Engine as _;
use rds_token_broker::audit::merkle::{TreeBuilder, leaf_hash};
use rds_token_broker::audit::note::{CheckpointBody, SigningKey};
use rds_token_broker::audit::{AuditEvent, AuditStore, GENESIS, Outcome, TreeHead};

const CHAIN: &str = "0195c2a0-0000-7000-8000-0000000bench";

/// The `seq`-th event after `prev`, hashed.
fn event(seq: u64, prev: &str) -> AuditEvent {
    let mut e = AuditEvent {
        subject: Some(format!("svc-{}", seq % 1000)),
        auth_method: Some("jwt".into()),
        target: Some("orders".into()),
        db_user: Some("orders_app".into()),
        region: Some("eu-west-1".into()),
        cache: Some("hit".into()),
        token_sha256: Some(format!("{seq:064x}")),
        chain_id: CHAIN.into(),
        seq: seq as i64,
        prev_hash: prev.to_owned(),
        ..AuditEvent::new(
            format!("0195c2a1-0000-7000-8000-{seq:012}"),
            "2026-03-09T14:11:29.000Z".into(),
            Outcome::Issued,
        )
    };
    e.hash = e.compute_hash().expect("hash");
    e
}

fn key_verifier() -> String {
    SigningKey::from_seed("bench.example.com", &[42; 32])
        .expect("key")
        .verifier_key()
        .to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|v| v.parse().ok()).expect("N");
    let mode = args.get(2).map(String::as_str);
    let mut prev = GENESIS.to_owned();
    match mode {
        Some("notes") => {
            let key = SigningKey::from_seed("bench.example.com", &[42; 32]).expect("key");
            let every = (n / 10).max(1);
            let mut tree = TreeBuilder::new();
            let mut notes = String::new();
            for seq in 1..=n {
                let e = event(seq, &prev);
                let raw: [u8; 32] = hex::decode(&e.hash).expect("hex").try_into().expect("32");
                tree.push(leaf_hash(&raw));
                if seq % every == 0 || seq == n {
                    let body = CheckpointBody {
                        origin: format!("rds-token-broker/{CHAIN}"),
                        tree_size: seq,
                        root_hash: tree.root(),
                    };
                    notes.push_str(&key.sign(&body.to_text()).expect("sign"));
                    notes.push('\n');
                }
                prev = e.hash;
            }
            std::fs::write(args.get(3).expect("FILE"), notes).expect("write notes");
            println!("{}", key.verifier_key());
        }
        Some("events") => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for seq in 1..=n {
                let e = event(seq, &prev);
                serde_json::to_writer(&mut out, &e).expect("write");
                out.write_all(b"\n").expect("write");
                prev = e.hash;
            }
            out.flush().expect("flush");
        }
        Some("store") => {
            let url = args.get(3).expect("URL");
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                let store = AuditStore::open(url).await.expect("open the store");
                let key = SigningKey::from_seed("bench.example.com", &[42; 32]).expect("key");
                let every = (n / 10).max(1);
                let mut tree = TreeBuilder::new();
                let mut batch = Vec::with_capacity(1000);
                let mut held = None;
                for seq in 1..=n {
                    let e = event(seq, &prev);
                    let raw: [u8; 32] = hex::decode(&e.hash).expect("hex").try_into().expect("32");
                    tree.push(leaf_hash(&raw));
                    prev.clone_from(&e.hash);
                    batch.push(e);
                    if batch.len() == 1000 || seq == n {
                        store.append(&mut held, &batch).await.expect("append");
                        batch.clear();
                    }
                    if seq % every == 0 || seq == n {
                        let body = CheckpointBody {
                            origin: format!("rds-token-broker/{CHAIN}"),
                            tree_size: seq,
                            root_hash: tree.root(),
                        };
                        let head = TreeHead {
                            chain_id: CHAIN.into(),
                            tree_size: seq,
                            root_hash: base64::engine::general_purpose::STANDARD
                                .encode(body.root_hash),
                            note: key.sign(&body.to_text()).expect("sign"),
                            created_at: "2026-03-09T14:12:00.000Z".into(),
                        };
                        store
                            .insert_tree_head(&head)
                            .await
                            .expect("store a checkpoint");
                    }
                }
            });
            println!("{}", key_verifier());
        }
        _ => panic!(
            "usage: rtb-audit-export N notes FILE | rtb-audit-export N events | \
             rtb-audit-export N store URL"
        ),
    }
}
