//! The worked example of docs/audit-format.md ("Receipt"), pinned: it verifies, and each
//! alteration is refused with its own reason.

use super::*;
use serde_json::Value;

const EXAMPLE: &str = include_str!("../../tests/verifier/receipt-example.json");
const KEY: &str = "audit.example.com+b8754763+AfjO3d1v8RuRkkao6usaxPeCAYw/V5PD+USfDDvLI9Id";

fn keys() -> Vec<VerifierKey> {
    vec![KEY.parse().unwrap()]
}

fn altered(edit: impl FnOnce(&mut Value)) -> Result<Verified, ReceiptError> {
    let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
    edit(&mut v);
    verify_receipt(&v.to_string(), &keys())
}

#[test]
fn the_documented_receipt_verifies() {
    let v = verify_receipt(EXAMPLE, &keys()).unwrap();
    assert_eq!(v.event_id, "0195c2a1-5d3e-7b6a-9c4f-1e2d3c4b5a69");
    assert_eq!((v.leaf_index, v.tree_size), (0, 2));
    assert_eq!(v.signed_by, ["audit.example.com"]);
}

#[test]
fn each_alteration_is_named() {
    assert_eq!(
        altered(|v| v["event"]["db_user"] = "root".into()),
        Err(ReceiptError::EventAltered)
    );
    assert_eq!(
        altered(|v| v["event"]["note"] = "added".into()),
        Err(ReceiptError::ExtraFields)
    );
    assert!(matches!(
        altered(|v| v["proof"]["leaf_index"] = 1.into()),
        Err(ReceiptError::LeafIndex {
            index: 1,
            seq: 1,
            want: 0
        })
    ));
    assert_eq!(
        altered(|v| v["proof"]["hashes"][0] = "I4rRwRUbAzE2blfyHSadEEE+RHF/ZZe7RKqUroq3b88=".into()),
        Err(ReceiptError::Inclusion)
    );
    assert_eq!(
        altered(|v| v["proof"]["tree_size"] = 3.into()),
        Err(ReceiptError::TreeSize {
            proof: 3,
            checkpoint: 2
        })
    );
    assert!(matches!(
        altered(|v| v["proof"]["chain_id"] = "other".into()),
        Err(ReceiptError::ProofChain { .. })
    ));
    let note = |v: &Value| v["checkpoint"].as_str().unwrap().to_owned();
    assert!(matches!(
        altered(|v| v["checkpoint"] = note(v).replacen("\n2\n", "\n3\n", 1).into()),
        Err(ReceiptError::Checkpoint(why)) if why.starts_with("does not verify: the signature by key")
    ));
    let stranger = super::super::note::SigningKey::from_seed("audit.example.com", &[1; 32])
        .unwrap()
        .verifier_key()
        .clone();
    assert_eq!(
        verify_receipt(EXAMPLE, &[stranger]),
        Err(ReceiptError::Checkpoint(
            "is not signed by any of the given keys".into()
        ))
    );
    assert!(matches!(
        verify_receipt("{}", &keys()),
        Err(ReceiptError::Malformed(_))
    ));
}

#[test]
fn the_format_document_shows_this_receipt() {
    // Read at run time: docs/ is not part of what the binary (or its Docker build) embeds.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/audit-format.md");
    let doc = std::fs::read_to_string(path).unwrap();
    assert!(
        doc.contains(EXAMPLE.trim_end()),
        "docs/audit-format.md (Receipt, Worked example) must show tests/verifier/receipt-example.json verbatim"
    );
}
