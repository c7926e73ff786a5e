//! Signed checkpoints: C2SP `signed-note` with Ed25519 keys around a C2SP
//! `tlog-checkpoint` body.
//!
//! A note is its text (lines ending in "\n"), an empty line, and one signature line per
//! signer, `— <key name> <base64(4-byte key id || signature)>`. The key id is the first 4
//! bytes of SHA-256(name || 0x0A || 0x01 || public key); verifier keys are written
//! `<name>+<8 hex key id>+<base64(0x01 || public key)>`, the form Go's
//! `golang.org/x/mod/sumdb/note` reads. The checkpoint text is
//! `<origin>\n<tree size>\n<base64 root>\n`. Pure, except loading the signing key.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// The signed-note algorithm byte of Ed25519 keys.
const ALG_ED25519: u8 = 0x01;
/// Largest note accepted (ours: a checkpoint note is a few hundred bytes).
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines accepted on one note (Go's `note` package allows 100).
pub const MAX_SIGNATURES: usize = 100;
/// Longest key name accepted.
const MAX_NAME: usize = 256;
/// The signature line prefix: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// What is wrong with a note, a key or a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is longer than [`MAX_NOTE_BYTES`].
    #[error("the note is longer than {MAX_NOTE_BYTES} bytes")]
    TooLarge,
    /// The note does not have the signed-note shape.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A verifier key or key name is not usable.
    #[error("bad verifier key: {0}")]
    BadKey(&'static str),
    /// The signing key could not be read.
    #[error("bad signing key: {0}")]
    BadSigningKey(&'static str),
    /// A signature by a known key does not verify: the note was altered or forged.
    #[error("the signature by key {0} does not verify")]
    InvalidSignature(String),
    /// No signature is by one of the known keys.
    #[error("the note has no signature by a known key")]
    UnknownKey,
    /// The text is not a tlog-checkpoint.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
}

/// A signed-note key name: non-empty, no whitespace, no `+`, bounded.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() {
        return Err(NoteError::BadKey("the key name is empty"));
    }
    if name.len() > MAX_NAME {
        return Err(NoteError::BadKey("the key name is too long"));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(NoteError::BadKey(
            "the key name contains a space, a control character or '+'",
        ));
    }
    Ok(())
}

/// The key id of an Ed25519 key: the first 4 bytes of
/// SHA-256(name || 0x0A || 0x01 || public key), big-endian.
fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0A, ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(d.get(..4).unwrap_or_default());
    u32::from_be_bytes(id)
}

/// A verifier key, text form `<name>+<8 hex key id>+<base64(0x01 || 32-byte Ed25519
/// public key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    public_key: [u8; 32],
}

impl VerifierKey {
    /// The verifier key of Ed25519 `public_key` named `name`.
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, &public_key),
            public_key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id (see the module docs).
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// Whether `sig` is this key's Ed25519 signature of `msg`.
    fn verifies(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key[..])
            .verify(msg, sig)
            .is_ok()
    }
}

impl FromStr for VerifierKey {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, NoteError> {
        // At most three parts: the base64 key may itself contain '+'.
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id), Some(key), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::BadKey("expected <name>+<key id>+<key>"));
        };
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::BadKey("the key id is not 8 hex digits"));
        }
        let id = u32::from_str_radix(id, 16)
            .map_err(|_| NoteError::BadKey("the key id is not 8 hex digits"))?;
        let raw = B64
            .decode(key)
            .map_err(|_| NoteError::BadKey("the key is not base64"))?;
        let Some((&ALG_ED25519, public)) = raw.split_first() else {
            return Err(NoteError::BadKey("the key is not an Ed25519 (0x01) key"));
        };
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| NoteError::BadKey("an Ed25519 public key is 32 bytes"))?;
        let key = Self::new(name, public)?;
        if key.key_id != id {
            return Err(NoteError::BadKey("the key id does not match the key"));
        }
        Ok(key)
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(&self.public_key);
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, B64.encode(raw))
    }
}

/// An Ed25519 signing key with its signed-note name. The private key never leaves it:
/// `Debug` shows only the verifier key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    verifier: VerifierKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("verifier", &self.verifier.to_string())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_pair(name: &str, pair: Ed25519KeyPair) -> Result<Self, NoteError> {
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| NoteError::BadSigningKey("not an Ed25519 key"))?;
        Ok(Self {
            verifier: VerifierKey::new(name, public)?,
            pair,
        })
    }

    /// The key in a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`, as written by
    /// `audit keygen` or `openssl genpkey -algorithm ed25519`), named `name`.
    pub fn from_pkcs8_pem(name: &str, pem: &[u8]) -> Result<Self, NoteError> {
        use rustls_pki_types::PrivatePkcs8KeyDer;
        use rustls_pki_types::pem::PemObject;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|_| NoteError::BadSigningKey("no PKCS#8 PEM private key found"))?;
        Self::from_pkcs8_der(name, der.secret_pkcs8_der())
    }

    /// The key in a PKCS#8 DER document, named `name`.
    pub fn from_pkcs8_der(name: &str, der: &[u8]) -> Result<Self, NoteError> {
        let pair = Ed25519KeyPair::from_pkcs8(der)
            .map_err(|_| NoteError::BadSigningKey("not an Ed25519 PKCS#8 private key"))?;
        Self::from_pair(name, pair)
    }

    /// The key of a raw 32-byte Ed25519 seed (Go's `PRIVATE+KEY+...` form holds one).
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<Self, NoteError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| NoteError::BadSigningKey("not a 32-byte Ed25519 seed"))?;
        Self::from_pair(name, pair)
    }

    /// A new random key as a PKCS#8 PEM document (for `audit keygen`).
    pub fn generate_pkcs8_pem() -> Result<SecretString, NoteError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| NoteError::BadSigningKey("could not generate a key"))?;
        let b64 = B64.encode(doc.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        let mut rest = b64.as_str();
        while !rest.is_empty() {
            let (line, tail) = rest.split_at(rest.len().min(64));
            pem.push_str(line);
            pem.push('\n');
            rest = tail;
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(SecretString::from(pem))
    }

    /// The verifier key of this key.
    pub fn verifier_key(&self) -> &VerifierKey {
        &self.verifier
    }

    /// The signed note of `text` (which must end in "\n"): the text, an empty line and
    /// this key's signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.pair.sign(text.as_bytes());
        let mut note = String::with_capacity(text.len() + 128);
        note.push_str(text);
        note.push('\n');
        note.push_str(&signature_line(
            self.verifier.name(),
            self.verifier.key_id(),
            sig.as_ref(),
        ));
        Ok(note)
    }
}

/// One signature line, `— <name> <base64(key id || signature)>\n`.
pub fn signature_line(name: &str, key_id: u32, signature: &[u8]) -> String {
    let mut raw = Vec::with_capacity(4 + signature.len());
    raw.extend_from_slice(&key_id.to_be_bytes());
    raw.extend_from_slice(signature);
    format!("{SIG_PREFIX}{name} {}\n", B64.encode(raw))
}

/// A note's text: non-empty, ends in "\n", no control characters other than "\n".
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text does not end with a newline"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed(
            "the text contains a control character",
        ));
    }
    Ok(())
}

/// The checkpoint body: `<origin>\n<tree size decimal>\n<base64 root>\n` (tlog-checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointBody {
    /// The log's origin: `[audit.checkpoints] origin` + "/" + chain id.
    pub origin: String,
    /// Leaves in the tree.
    pub tree_size: u64,
    /// The Merkle root.
    pub root_hash: Hash,
}

impl CheckpointBody {
    /// The note text.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            B64.encode(self.root_hash)
        )
    }

    /// Parses a note text. Extension lines after the root (tlog-checkpoint allows them)
    /// are accepted and ignored.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        check_text(text).map_err(|_| NoteError::Checkpoint("not a note text"))?;
        let mut lines = text.split_terminator('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(NoteError::Checkpoint("the origin line is empty"));
        }
        let size = lines.next().unwrap_or_default();
        let canonical = size == "0" || (!size.starts_with('0') && !size.is_empty());
        if !canonical || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NoteError::Checkpoint(
                "the tree size is not a decimal number",
            ));
        }
        let tree_size = size
            .parse()
            .map_err(|_| NoteError::Checkpoint("the tree size is out of range"))?;
        let root_hash = B64
            .decode(lines.next().unwrap_or_default())
            .ok()
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or(NoteError::Checkpoint(
                "the root is not a base64 SHA-256 hash",
            ))?;
        if lines.any(str::is_empty) {
            return Err(NoteError::Checkpoint("an extension line is empty"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
        })
    }
}

/// A note whose signature by at least one known key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote {
    /// The signed text.
    pub text: String,
    /// Names of the known keys whose signatures verified.
    pub signed_by: Vec<String>,
}

/// A checkpoint whose signature by at least one known key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The checkpoint.
    pub body: CheckpointBody,
    /// Names of the known keys whose signatures verified.
    pub signed_by: Vec<String>,
}

/// Opens a signed note against `keys`: Ok only if at least one signature verifies by a
/// known key. Signatures by unknown keys are ignored (signed-note); a signature by a
/// known key that does not verify is an error.
pub fn open_note(note: &str, keys: &[VerifierKey]) -> Result<VerifiedNote, NoteError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge);
    }
    if !note.ends_with('\n') {
        return Err(NoteError::Malformed("the note does not end with a newline"));
    }
    let Some(split) = note.rfind("\n\n") else {
        return Err(NoteError::Malformed("no empty line before the signatures"));
    };
    let (text, sigs) = note.split_at(split + 1);
    let sigs = sigs.get(1..).unwrap_or_default();
    check_text(text)?;
    let mut signed_by: Vec<String> = Vec::new();
    let mut count = 0;
    for line in sigs.split_terminator('\n') {
        count += 1;
        if count > MAX_SIGNATURES {
            return Err(NoteError::Malformed("too many signatures"));
        }
        let (name, id, sig) = parse_signature_line(line)?;
        let Some(key) = keys.iter().find(|k| k.name == name && k.key_id == id) else {
            continue;
        };
        if !key.verifies(text.as_bytes(), &sig) {
            return Err(NoteError::InvalidSignature(key.to_string()));
        }
        if !signed_by.iter().any(|n| n == name) {
            signed_by.push(name.to_owned());
        }
    }
    if count == 0 {
        return Err(NoteError::Malformed("the note has no signature lines"));
    }
    if signed_by.is_empty() {
        return Err(NoteError::UnknownKey);
    }
    Ok(VerifiedNote {
        text: text.to_owned(),
        signed_by,
    })
}

/// `— <name> <base64>` into the name, key id and signature bytes.
fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
        "a signature line does not start with '— '",
    ))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or(NoteError::Malformed("a signature line has no signature"))?;
    check_name(name).map_err(|_| NoteError::Malformed("a signature line has a bad key name"))?;
    let raw = B64
        .decode(b64)
        .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
    let Some((id, sig)) = raw.split_first_chunk::<4>() else {
        return Err(NoteError::Malformed(
            "a signature is shorter than its key id",
        ));
    };
    Ok((name, u32::from_be_bytes(*id), sig.to_vec()))
}

/// Opens `note` against `keys` (see [`open_note`]) and parses its text as a checkpoint.
pub fn verify_checkpoint(
    note: &str,
    keys: &[VerifierKey],
) -> Result<VerifiedCheckpoint, NoteError> {
    let opened = open_note(note, keys)?;
    Ok(VerifiedCheckpoint {
        body: CheckpointBody::parse(&opened.text)?,
        signed_by: opened.signed_by,
    })
}

/// Splits a file of notes (the file sink's format: each note followed by one extra empty
/// line) into note texts. A note is its text lines, an empty line, then signature lines
/// starting with "— " up to the next empty line (or the end).
pub fn split_notes(text: &str) -> Result<Vec<String>, NoteError> {
    let mut notes = Vec::new();
    let mut current = String::new();
    // `None` while reading a note's text; `Some(n)` after its empty line, n signatures.
    let mut sigs: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let Some(bare) = line.strip_suffix('\n') else {
            return Err(NoteError::Malformed("the file does not end with a newline"));
        };
        match (bare.is_empty(), sigs) {
            (true, None) if current.is_empty() => {
                return Err(NoteError::Malformed(
                    "an empty line where a note should start",
                ));
            }
            (true, None) => sigs = Some(0),
            (true, Some(0)) => {
                return Err(NoteError::Malformed("a note has no signatures"));
            }
            (true, Some(_)) => {
                notes.push(std::mem::take(&mut current));
                sigs = None;
                continue;
            }
            (false, Some(n)) if bare.starts_with(SIG_PREFIX) => sigs = Some(n + 1),
            (false, Some(_)) => {
                return Err(NoteError::Malformed(
                    "a line after a signature is not a signature",
                ));
            }
            (false, None) => {}
        }
        current.push_str(line);
        if current.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge);
        }
    }
    match sigs {
        Some(n) if n > 0 => notes.push(current),
        None if current.is_empty() => {}
        _ => return Err(NoteError::Malformed("the last note has no signatures")),
    }
    Ok(notes)
}

#[cfg(test)]
#[path = "note_tests.rs"]
mod tests;
