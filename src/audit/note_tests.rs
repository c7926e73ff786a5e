//! Tests of signed notes and checkpoints, against the published example of Go's
//! `golang.org/x/mod/sumdb/note` package (its doc comment and `note_test.go`).

use super::*;

/// Go's example signer key, `PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>`.
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
/// Go's example verifier key.
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

fn go_signer() -> SigningKey {
    let b64 = GO_SKEY.splitn(5, '+').nth(4).unwrap();
    let raw = B64.decode(b64).unwrap();
    assert_eq!(raw[0], 1);
    SigningKey::from_seed("PeterNeumann", &raw[1..]).unwrap()
}

fn generated(name: &str) -> SigningKey {
    use secrecy::ExposeSecret;
    let pem = SigningKey::generate_pkcs8_pem().unwrap();
    SigningKey::from_pkcs8_pem(name, pem.expose_secret().as_bytes()).unwrap()
}

#[test]
fn go_vector_key_id_text_form_and_signature() {
    let signer = go_signer();
    assert_eq!(signer.verifier_key().to_string(), GO_VKEY);
    assert_eq!(signer.verifier_key().key_id(), 0xc74f20a3);
    let parsed: VerifierKey = GO_VKEY.parse().unwrap();
    assert_eq!(&parsed, signer.verifier_key());
    assert_eq!(parsed.name(), "PeterNeumann");
    // Ed25519 is deterministic: the same bytes as Go's.
    assert_eq!(signer.sign(GO_TEXT).unwrap(), GO_NOTE);
    let opened = open_note(GO_NOTE, &[parsed]).unwrap();
    assert_eq!(opened.text, GO_TEXT);
    assert_eq!(opened.signed_by, vec!["PeterNeumann".to_owned()]);
}

#[test]
fn open_refuses_unknown_keys_altered_text_and_bad_encoding() {
    let known: VerifierKey = GO_VKEY.parse().unwrap();
    let other = generated("Other");
    // Only an unknown key.
    assert_eq!(
        open_note(GO_NOTE, &[other.verifier_key().clone()]),
        Err(NoteError::UnknownKey)
    );
    assert_eq!(open_note(GO_NOTE, &[]), Err(NoteError::UnknownKey));
    // Same name, different key: a different key id, so still unknown.
    let impostor = generated("PeterNeumann");
    assert_eq!(
        open_note(GO_NOTE, &[impostor.verifier_key().clone()]),
        Err(NoteError::UnknownKey)
    );
    // Altered body.
    let altered = GO_NOTE.replacen("cryptography", "cryptographY", 1);
    assert!(matches!(
        open_note(&altered, std::slice::from_ref(&known)),
        Err(NoteError::InvalidSignature(_))
    ));
    // Altered signature byte.
    let sig_altered = GO_NOTE.replacen("x08go/ZJ", "x08go/ZK", 1);
    assert!(matches!(
        open_note(&sig_altered, std::slice::from_ref(&known)),
        Err(NoteError::InvalidSignature(_))
    ));
    // Bad base64.
    let bad = GO_NOTE.replacen("x08go/ZJ", "x08go*ZJ", 1);
    assert!(matches!(
        open_note(&bad, std::slice::from_ref(&known)),
        Err(NoteError::Malformed(_))
    ));
    // Oversize.
    let big = format!("{}\n\n\u{2014} a AAAAAA==\n", "x".repeat(MAX_NOTE_BYTES));
    assert_eq!(
        open_note(&big, std::slice::from_ref(&known)),
        Err(NoteError::TooLarge)
    );
    // No signatures, no newline, control characters, wrong dash.
    for bad in [
        GO_TEXT.to_owned(),
        format!("{GO_TEXT}\n"),
        GO_NOTE.trim_end().to_owned(),
        GO_NOTE.replacen("problem,", "problem,\r", 1),
        GO_NOTE.replacen('\u{2014}', "-", 1),
    ] {
        assert!(
            open_note(&bad, std::slice::from_ref(&known)).is_err(),
            "{bad:?}"
        );
    }
    // An extra signature by an unknown key is ignored.
    let extra = format!(
        "{GO_NOTE}{}",
        signature_line("Other", 0x01020304, &[0u8; 64])
    );
    assert!(open_note(&extra, std::slice::from_ref(&known)).is_ok());
}

#[test]
fn verifier_key_parse_refusals() {
    for bad in [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW+x",
    ] {
        assert!(bad.parse::<VerifierKey>().is_err(), "{bad:?}");
    }
}

#[test]
fn checkpoint_round_trip_and_rotation() {
    let old = generated("broker.example.com");
    let new = generated("broker.example.com");
    let body = CheckpointBody {
        origin: "rds-token-broker/chain-1".into(),
        tree_size: 70,
        root_hash: [7u8; 32],
    };
    let text = body.to_text();
    assert_eq!(
        text,
        format!("rds-token-broker/chain-1\n70\n{}\n", B64.encode([7u8; 32]))
    );
    assert_eq!(CheckpointBody::parse(&text).unwrap(), body);
    let note = old.sign(&text).unwrap();
    let keys = [new.verifier_key().clone(), old.verifier_key().clone()];
    let v = verify_checkpoint(&note, &keys).unwrap();
    assert_eq!(v.body, body);
    assert_eq!(v.signed_by, vec!["broker.example.com".to_owned()]);
    assert_eq!(
        verify_checkpoint(&note, &keys[..1]),
        Err(NoteError::UnknownKey)
    );
    // Extension lines are accepted and ignored.
    let ext = format!("{text}extension\n");
    assert_eq!(CheckpointBody::parse(&ext).unwrap(), body);
    for bad in [
        "",
        "\n70\nAAAA\n",
        "o\n070\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
        "o\n-1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
        "o\n99999999999999999999999\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
        "o\n7\nBwcH\n",
        "o\n7\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
    ] {
        assert!(CheckpointBody::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn split_notes_reads_the_file_sink_format() {
    let a = go_signer();
    let n1 = a.sign("o/1\n1\nAAAA\n").unwrap();
    let n2 = a.sign("o/1\n2\nBBBB\n").unwrap();
    let file = format!("{n1}\n{n2}\n");
    assert_eq!(split_notes(&file).unwrap(), vec![n1.clone(), n2.clone()]);
    // The last note's trailing empty line may be missing (a crash between the writes).
    assert_eq!(
        split_notes(&format!("{n1}\n{n2}")).unwrap(),
        vec![n1.clone(), n2.clone()]
    );
    assert_eq!(split_notes("").unwrap(), Vec::<String>::new());
    for bad in [
        "\n".to_owned(),
        "o/1\n1\nAAAA\n\n\n".to_owned(),
        "o/1\n1\nAAAA\n".to_owned(),
        format!("{n1}garbage\n"),
        n1.trim_end().to_owned(),
    ] {
        assert!(split_notes(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn signing_key_debug_shows_no_secret() {
    let k = go_signer();
    let dbg = format!("{k:?}");
    assert!(dbg.contains(GO_VKEY), "{dbg}");
    assert!(!dbg.contains("AYEKFALV"));
}
