//! Golden hashes: fixed events in each canonical encoding, with the hashes they must have.
//! A field renamed, reordered or re-typed changes these and fails here, instead of silently
//! breaking every stored chain. `docs/audit-format.md` shows the same events and numbers.

use super::event::{AuditEvent, Encoding, GENESIS, Outcome};

/// The worked example's first event (issued), as in `docs/audit-format.md`.
pub(crate) fn issued() -> AuditEvent {
    AuditEvent {
        request_id: Some("req-1".into()),
        issuer: Some("https://idp.example.com".into()),
        subject: Some("svc-orders".into()),
        auth_method: Some("jwt".into()),
        client_ip: Some("10.0.0.7".into()),
        user_agent: Some("rds-token-broker/1.0".into()),
        target: Some("orders".into()),
        host: Some("orders.cluster-abc.eu-west-1.rds.amazonaws.com".into()),
        port: Some(5432),
        db_user: Some("orders_app".into()),
        region: Some("eu-west-1".into()),
        role_arn: Some("arn:aws:iam::123456789012:role/rds-orders".into()),
        session_name: Some("rtb-svc-orders".into()),
        cache: Some("miss".into()),
        token_sha256: Some(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        ),
        expires_at: Some("2026-03-09T14:26:29Z".into()),
        kind: Some("rds".into()),
        chain_id: "0195c2a0-0000-7000-8000-00000000c4a1".into(),
        seq: 1,
        prev_hash: GENESIS.into(),
        ..AuditEvent::new(
            "0195c2a1-5d3e-7b6a-9c4f-1e2d3c4b5a69".into(),
            "2026-03-09T14:11:29.000Z".into(),
            Outcome::Issued,
        )
    }
}

/// The worked example's second event (denied, with a quote and a newline in its reason).
pub(crate) fn denied(prev_hash: &str) -> AuditEvent {
    AuditEvent {
        reason: Some("token expired: \"exp\" is past\n".into()),
        auth_method: Some("jwt".into()),
        client_ip: Some("10.0.0.9".into()),
        count: 3,
        chain_id: "0195c2a0-0000-7000-8000-00000000c4a1".into(),
        seq: 2,
        prev_hash: prev_hash.into(),
        ..AuditEvent::new(
            "0195c2a1-6000-7000-8000-000000000002".into(),
            "2026-03-09T14:11:30.250Z".into(),
            Outcome::Denied,
        )
    }
}

/// The worked example's chain of two JCS events, hashes filled in.
pub(crate) fn example_chain() -> Vec<AuditEvent> {
    let mut a = issued();
    a.hash = a.compute_hash().unwrap();
    let mut b = denied(&a.hash);
    b.hash = b.compute_hash().unwrap();
    vec![a, b]
}

/// Hash of [`issued`] in JCS (the chain's first event).
pub(crate) const JCS_ISSUED_HASH: &str =
    "79dda4cac30b60b1dbdad5a79ad026b2a4a18db9f238f5df413279d3ff4e16c6";
/// Hash of [`denied`] in JCS, after [`issued`].
pub(crate) const JCS_DENIED_HASH: &str =
    "925356103cec03f6d53d5cb9921914d66a61ac02be6f0410608317d8a7722e85";
/// Hash of [`issued`] marked legacy: what every version before JCS computed for it.
pub(crate) const LEGACY_ISSUED_HASH: &str =
    "ad0199d9cd45e40dbe673b2e9ff7793380e01a54f16e07043093844218af6427";

/// The JCS text of [`denied`], byte for byte.
const JCS_DENIED_TEXT: &str = r#"{"auth_method":"jwt","chain_id":"0195c2a0-0000-7000-8000-00000000c4a1","client_ip":"10.0.0.9","count":3,"encoding":"jcs","id":"0195c2a1-6000-7000-8000-000000000002","outcome":"denied","prev_hash":"79dda4cac30b60b1dbdad5a79ad026b2a4a18db9f238f5df413279d3ff4e16c6","reason":"token expired: \"exp\" is past\n","seq":2,"time":"2026-03-09T14:11:30.250Z"}"#;

/// The legacy text of [`issued`], byte for byte: the encoding stored chains were made with.
const LEGACY_ISSUED_TEXT: &str = r#"{"id":"0195c2a1-5d3e-7b6a-9c4f-1e2d3c4b5a69","time":"2026-03-09T14:11:29.000Z","request_id":"req-1","outcome":"issued","reason":null,"issuer":"https://idp.example.com","subject":"svc-orders","auth_method":"jwt","client_ip":"10.0.0.7","user_agent":"rds-token-broker/1.0","target":"orders","host":"orders.cluster-abc.eu-west-1.rds.amazonaws.com","port":5432,"db_user":"orders_app","region":"eu-west-1","role_arn":"arn:aws:iam::123456789012:role/rds-orders","session_name":"rtb-svc-orders","cache":"miss","token_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","expires_at":"2026-03-09T14:26:29Z","kind":"rds","count":1,"chain_id":"0195c2a0-0000-7000-8000-00000000c4a1","seq":1,"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":""}"#;

#[test]
fn jcs_events_hash_to_the_pinned_values() {
    let c = example_chain();
    assert_eq!(c[0].hash, JCS_ISSUED_HASH);
    assert_eq!(c[1].hash, JCS_DENIED_HASH);
    assert_eq!(c[1].canonical().unwrap(), JCS_DENIED_TEXT);
    // The hash streamed into the hasher equals the hash of the canonical text.
    use sha2::{Digest, Sha256};
    let text = format!("{}\n{}", c[1].prev_hash, c[1].canonical().unwrap());
    assert_eq!(
        hex::encode(Sha256::digest(text.as_bytes())),
        JCS_DENIED_HASH
    );
}

#[test]
fn legacy_events_keep_their_original_encoding_and_hash() {
    let mut e = issued();
    e.encoding = Encoding::Legacy;
    assert_eq!(e.canonical().unwrap(), LEGACY_ISSUED_TEXT);
    assert_eq!(e.compute_hash().unwrap(), LEGACY_ISSUED_HASH);
    // With its hash set, the canonical form still carries an empty one.
    e.hash = LEGACY_ISSUED_HASH.into();
    assert_eq!(e.canonical().unwrap(), LEGACY_ISSUED_TEXT);
    // An event exported before the marker existed reads back as legacy and verifies.
    let json = serde_json::to_string(&e).unwrap();
    assert!(!json.contains("encoding"), "{json}");
    let back: AuditEvent = serde_json::from_str(&json).unwrap();
    assert_eq!(back.encoding, Encoding::Legacy);
    assert_eq!(back.compute_hash().unwrap(), LEGACY_ISSUED_HASH);
}

/// The marker is hashed: moving an event to the other encoding changes its hash, so it
/// cannot be flipped to make altered contents verify.
#[test]
fn the_marker_is_part_of_what_is_hashed_and_exported() {
    let c = example_chain();
    let json = serde_json::to_string(&c[0]).unwrap();
    assert!(json.contains(r#""encoding":"jcs""#), "{json}");
    let back: AuditEvent = serde_json::from_str(&json).unwrap();
    assert_eq!(back.compute_hash().unwrap(), JCS_ISSUED_HASH);
    let mut flipped = c[0].clone();
    flipped.encoding = Encoding::Legacy;
    assert_ne!(flipped.compute_hash().unwrap(), c[0].hash);
}

/// Absent optional fields are left out of JCS, so a field added later as optional leaves
/// older JCS events' encoding unchanged; a present one is hashed.
#[test]
fn absent_optional_fields_are_left_out_and_present_ones_are_hashed() {
    let c = example_chain();
    let text = c[1].canonical().unwrap();
    for absent in ["\"issuer\"", "\"port\"", "\"kind\"", "null", "\"hash\""] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }
    let mut with_kind = c[1].clone();
    with_kind.kind = Some("rds".into());
    assert_ne!(with_kind.compute_hash().unwrap(), c[1].hash);
}

/// A chain that starts with a legacy event (stored with no marker, as before migration 7)
/// and continues in JCS is stored, read back with each event's encoding, and verifies.
#[tokio::test]
async fn a_store_keeps_each_events_encoding_and_a_mixed_chain_verifies() {
    let dir = std::env::temp_dir().join(format!("rtb-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("audit.db").display());
    let store = super::AuditStore::open(&url).await.unwrap();
    let mut old = issued();
    old.encoding = Encoding::Legacy;
    old.hash = old.compute_hash().unwrap();
    let mut new = denied(&old.hash);
    new.hash = new.compute_hash().unwrap();
    store
        .append(&mut None, &[old.clone(), new.clone()])
        .await
        .unwrap();
    let back = store.all_by_chain().await.unwrap();
    assert_eq!(back, vec![old, new]);
    let (v, _) = store.walk_chains(10, None).await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.events_checked, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The worked example of `docs/audit-format.md`: every number there is recomputed here
/// (event hashes, leaf hashes, root, proofs, the verifier key and the signed checkpoint),
/// and must appear in the page.
#[test]
fn the_worked_example_in_the_format_doc_is_what_the_code_computes() {
    use super::merkle::{
        TreeBuilder, consistency_proof, inclusion_proof, leaf_hash, node_hash, verify_inclusion,
    };
    use super::note::{CheckpointBody, SigningKey, verify_checkpoint};
    use base64::Engine;
    use sha2::{Digest, Sha256};

    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/audit-format.md"))
        .unwrap();
    let must = |s: &str| assert!(doc.contains(s), "docs/audit-format.md must show {s:?}");
    let c = example_chain();
    let leaves: Vec<_> = c
        .iter()
        .map(|e| leaf_hash(&hex::decode(&e.hash).unwrap().try_into().unwrap()))
        .collect();
    let mut tree = TreeBuilder::new();
    leaves.iter().for_each(|l| tree.push(*l));
    let root = tree.root();
    assert_eq!(root, node_hash(&leaves[0], &leaves[1]));
    for s in [
        JCS_ISSUED_HASH,
        JCS_DENIED_HASH,
        LEGACY_ISSUED_HASH,
        JCS_DENIED_TEXT,
        &hex::encode(leaves[0]),
        &hex::encode(leaves[1]),
        &hex::encode(root),
    ] {
        must(s);
    }
    assert_eq!(inclusion_proof(&leaves, 0).unwrap(), vec![leaves[1]]);
    assert_eq!(inclusion_proof(&leaves, 1).unwrap(), vec![leaves[0]]);
    assert_eq!(consistency_proof(&leaves, 1).unwrap(), vec![leaves[1]]);
    assert!(verify_inclusion(&leaves[0], 0, 2, &[leaves[1]], &root));
    // Event 1's JCS text, as the page wraps it.
    let wrapped: String = doc
        .split("Event 1 (`seq` 1)")
        .nth(1)
        .unwrap()
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("    "))
        .map(str::trim)
        .collect();
    assert_eq!(wrapped, c[0].canonical().unwrap());

    let seed = Sha256::digest(b"rds-token-broker audit-format worked example");
    must(&hex::encode(seed));
    let key = SigningKey::from_seed("audit.example.com", &seed).unwrap();
    must(&key.verifier_key().to_string());
    let body = CheckpointBody {
        origin: format!("rds-token-broker/{}", c[0].chain_id),
        tree_size: 2,
        root_hash: root,
    };
    must(&base64::engine::general_purpose::STANDARD.encode(root));
    let note = key.sign(&body.to_text()).unwrap();
    let indented: String = note
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".into()
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    must(&indented);
    let verified = verify_checkpoint(&note, &[key.verifier_key().clone()]).unwrap();
    assert_eq!(verified.body, body);
}

/// Retention pruning keeps what Merkle proofs need: the leaf hashes of a pruned prefix
/// still come back, in order, next to the events that remain.
#[tokio::test]
async fn pruned_events_keep_their_leaf_hashes() {
    let dir = std::env::temp_dir().join(format!("rtb-golden-prune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("audit.db").display());
    let store = super::AuditStore::open(&url).await.unwrap();
    let mut c = example_chain();
    let mut third = denied(&c[1].hash);
    third.id = "0195c2a1-7000-7000-8000-000000000003".into();
    third.time = "2026-04-01T00:00:00.000Z".into();
    third.seq = 3;
    third.hash = third.compute_hash().unwrap();
    c.push(third);
    store.append(&mut None, &c).await.unwrap();
    assert_eq!(store.prune("2026-03-10T00:00:00.000Z").await.unwrap(), 2);
    let want: Vec<_> = c
        .iter()
        .map(|e| super::merkle::leaf_hash(&hex::decode(&e.hash).unwrap().try_into().unwrap()))
        .collect();
    assert_eq!(store.leaf_hashes(&c[0].chain_id, 3).await.unwrap(), want);
    assert_eq!(
        store.leaf_hashes(&c[0].chain_id, 2).await.unwrap(),
        want[..2]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
