//! How a cached token is kept in memory: in pieces, most of its bytes shared.
//!
//! A token is `host:port/?Action=connect&DBUser=<user>&X-Amz-Algorithm=...&X-Amz-Credential=
//! <key id>/<day>/<region>/rds-db/aws4_request&X-Amz-Date=<time>&X-Amz-Expires=900&
//! X-Amz-SignedHeaders=host[&X-Amz-Security-Token=<session token>]&X-Amz-Signature=<hex>`.
//! Only the DB user, the time and the signature differ between the tokens one set of
//! credentials signs for one endpoint; the rest (with temporary credentials mostly the
//! URL-encoded session token, often 600 to 1,200 bytes) is the same. [`StoredToken`] keeps
//! the differing parts and one shared copy of each of the others ([`Pieces`]); the token
//! is put back together when served. The pieces are checked when the token is stored: if
//! they do not give back the signed text byte for byte, the token is kept whole.
//!
//! A session token is not copied at all: the token keeps the signing `Credentials` (an
//! `Arc` inside, the same allocation the STS session cache or the broker's credential
//! cache holds) and percent-encodes their session token when served. With a role assumed
//! per caller nothing else is shared, and the session token (600 to 1,200 bytes) was kept
//! twice per caller, once here and once by the STS cache (`rtb-memory
//! --per-caller-sessions`, bench/README *Memory*).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};

use aws_credential_types::Credentials;
use secrecy::{ExposeSecret, SecretString};

use super::sign::encode_into;

const USER_PARAM: &str = "DBUser=";
const AFTER_USER: &str = "&X-Amz-Algorithm=";
const DATE_PARAM: &str = "&X-Amz-Date=";
const DATE_LEN: usize = 16;
const TAIL: &str = "&X-Amz-Signature=";
const SESSION_PARAM: &str = "&X-Amz-Security-Token=";

/// The part of a token between its date and its signature.
#[derive(Debug)]
pub enum Rest {
    /// The text (shared by the tokens that have it).
    Text(Arc<str>),
    /// `head` (shared, ending in `&X-Amz-Security-Token=`), then the session token of
    /// `credentials`, percent-encoded.
    Session {
        /// Up to and including `&X-Amz-Security-Token=`.
        head: Arc<str>,
        /// The signing credentials (shared: an `Arc` inside).
        credentials: Credentials,
    },
}

impl Rest {
    fn len(&self) -> usize {
        match self {
            Self::Text(t) => t.len(),
            // An upper bound is enough for a capacity: at most 3 bytes per byte.
            Self::Session { head, credentials } => {
                head.len() + credentials.session_token().map_or(0, |t| t.len() * 3)
            }
        }
    }

    fn push_to(&self, out: &mut String) {
        match self {
            Self::Text(t) => out.push_str(t),
            Self::Session { head, credentials } => {
                out.push_str(head);
                encode_into(out, credentials.session_token().unwrap_or_default());
            }
        }
    }
}

/// A token, kept compactly.
#[derive(Debug)]
pub enum StoredToken {
    /// `prefix` + `user` + `scope` + `date` + `rest` + [`TAIL`] + the hex signature.
    Split {
        /// Up to and including `DBUser=` (shared by tokens for the same endpoint).
        prefix: Arc<str>,
        /// The URL-encoded DB user.
        user: Box<str>,
        /// From `&X-Amz-Algorithm=` to `&X-Amz-Date=` (shared: same key, day, region).
        scope: Arc<str>,
        /// `X-Amz-Date`.
        date: [u8; DATE_LEN],
        /// The rest before the signature, the session token included.
        rest: Rest,
        /// `X-Amz-Signature`.
        signature: [u8; 32],
    },
    /// A token of another shape, verbatim.
    Whole(SecretString),
}

impl StoredToken {
    /// Splits `token`, signed by `credentials`, sharing its common parts through `pieces`
    /// and its session token with `credentials`.
    pub fn new(token: &SecretString, pieces: &Pieces, credentials: &Credentials) -> Self {
        let text = token.expose_secret();
        let Some(parts) = split(text) else {
            return Self::Whole(token.clone());
        };
        let with = |rest: Rest| Self::Split {
            prefix: pieces.share(parts.prefix),
            user: parts.user.into(),
            scope: pieces.share(parts.scope),
            date: parts.date,
            rest,
            signature: parts.signature,
        };
        if let Some(head) = session_head(parts.rest, credentials) {
            let stored = with(Rest::Session {
                head: pieces.share(head),
                credentials: credentials.clone(),
            });
            if stored.expose().expose_secret() == text {
                return stored;
            }
        }
        let stored = with(Rest::Text(pieces.share(parts.rest)));
        if stored.expose().expose_secret() == text {
            stored
        } else {
            Self::Whole(token.clone())
        }
    }

    /// The token, put back together.
    pub fn expose(&self) -> SecretString {
        match self {
            Self::Split {
                prefix,
                user,
                scope,
                date,
                rest,
                signature,
            } => {
                let mut t = String::with_capacity(
                    prefix.len() + user.len() + scope.len() + DATE_LEN + rest.len() + 81,
                );
                t.push_str(prefix);
                t.push_str(user);
                t.push_str(scope);
                t.push_str(std::str::from_utf8(date).unwrap_or_default());
                rest.push_to(&mut t);
                t.push_str(TAIL);
                let mut sig_hex = [0u8; 64];
                if hex::encode_to_slice(signature, &mut sig_hex).is_ok() {
                    t.push_str(std::str::from_utf8(&sig_hex).unwrap_or_default());
                }
                SecretString::from(t)
            }
            Self::Whole(t) => t.clone(),
        }
    }
}

/// `rest` up to and including `&X-Amz-Security-Token=`, when what follows is exactly the
/// percent-encoded session token of `credentials`.
fn session_head<'a>(rest: &'a str, credentials: &Credentials) -> Option<&'a str> {
    let session = credentials.session_token()?;
    let at = rest.rfind(SESSION_PARAM)? + SESSION_PARAM.len();
    let (head, encoded) = (rest.get(..at)?, rest.get(at..)?);
    let mut expected = String::with_capacity(encoded.len());
    encode_into(&mut expected, session);
    (expected == encoded).then_some(head)
}

struct Parts<'a> {
    prefix: &'a str,
    user: &'a str,
    scope: &'a str,
    date: [u8; DATE_LEN],
    rest: &'a str,
    signature: [u8; 32],
}

/// The parts of a token shaped like the signer's output.
fn split(text: &str) -> Option<Parts<'_>> {
    let sig_at = text.len().checked_sub(64)?;
    let (body, sig_hex) = (text.get(..sig_at)?, text.get(sig_at..)?);
    if !sig_hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut signature = [0u8; 32];
    hex::decode_to_slice(sig_hex, &mut signature).ok()?;
    let body = body.strip_suffix(TAIL)?;
    let user_at = body.find(USER_PARAM)? + USER_PARAM.len();
    let scope_at = user_at + body.get(user_at..)?.find(AFTER_USER)?;
    let date_at = scope_at + body.get(scope_at..)?.find(DATE_PARAM)? + DATE_PARAM.len();
    let rest_at = date_at + DATE_LEN;
    let date = body.get(date_at..rest_at)?.as_bytes().try_into().ok()?;
    Some(Parts {
        prefix: body.get(..user_at)?,
        user: body.get(user_at..scope_at)?,
        scope: body.get(scope_at..date_at)?,
        date,
        rest: body.get(rest_at..)?,
        signature,
    })
}

/// One copy of each common token part in use, shared by the tokens that carry it; a copy
/// goes away with the last token holding it.
#[derive(Debug, Default)]
pub struct Pieces {
    by_hash: Mutex<HashMap<u64, Weak<str>>>,
}

impl Pieces {
    /// The shared copy of `piece`.
    fn share(&self, piece: &str) -> Arc<str> {
        let mut h = DefaultHasher::new();
        piece.hash(&mut h);
        let hash = h.finish();
        let Ok(mut map) = self.by_hash.lock() else {
            return Arc::from(piece);
        };
        if let Some(existing) = map.get(&hash).and_then(Weak::upgrade)
            && *existing == *piece
        {
            return existing;
        }
        let fresh: Arc<str> = Arc::from(piece);
        map.insert(hash, Arc::downgrade(&fresh));
        // Forget copies no token holds any more, once they could be half the map.
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        fresh
    }

    /// Pieces currently shared.
    pub fn len(&self) -> usize {
        self.by_hash
            .lock()
            .map(|m| m.values().filter(|w| w.strong_count() > 0).count())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The signer's shape (see the botocore vectors): the session token comes after
    // X-Amz-SignedHeaders and right before the signature.
    const HEAD: &str = "db.example.com:5432/?Action=connect&DBUser=u%40x&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIA%2F20260309%2Feu-west-1%2Frds-db%2Faws4_request&X-Amz-Date=20260309T141129Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host";
    const SIG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn creds(session: Option<&str>) -> Credentials {
        Credentials::new("ASIA", "secret", session.map(str::to_owned), None, "test")
    }

    fn token(session: Option<&str>) -> SecretString {
        let mid = session.map_or(String::new(), |s| format!("&X-Amz-Security-Token={s}"));
        SecretString::from(format!("{HEAD}{mid}{TAIL}{SIG}"))
    }

    #[test]
    fn tokens_are_split_and_put_back_byte_for_byte() {
        let pieces = Pieces::default();
        for (t, c) in [
            (
                token(Some("IQoJb3JpZ2luX2VjE%2F%2Bsession")),
                creds(Some("IQoJb3JpZ2luX2VjE/+session")),
            ),
            (token(None), creds(None)),
        ] {
            let stored = StoredToken::new(&t, &pieces, &c);
            let StoredToken::Split { user, date, .. } = &stored else {
                panic!("kept whole")
            };
            assert_eq!(&**user, "u%40x");
            assert_eq!(date, b"20260309T141129Z");
            assert_eq!(stored.expose().expose_secret(), t.expose_secret());
        }
    }

    #[test]
    fn common_parts_are_kept_once_while_tokens_hold_them() {
        let pieces = Pieces::default();
        // Credentials without the session token the tokens carry: the text is shared.
        let none = creds(None);
        let a = StoredToken::new(&token(Some("S1")), &pieces, &none);
        let b = StoredToken::new(&token(Some("S1")), &pieces, &none);
        let c = StoredToken::new(&token(Some("S2")), &pieces, &none);
        let rest = |s: &StoredToken| match s {
            StoredToken::Split {
                rest: Rest::Text(rest),
                ..
            } => Arc::as_ptr(rest).cast::<u8>(),
            _ => std::ptr::null(),
        };
        assert!(!rest(&a).is_null());
        assert_eq!(rest(&a), rest(&b));
        assert_ne!(rest(&a), rest(&c));
        // prefix and scope (shared by all three), and two session-token tails.
        assert_eq!(pieces.len(), 4);
        drop((a, b));
        assert_eq!(pieces.len(), 3);
    }

    #[test]
    fn the_session_token_is_not_copied_but_read_from_the_signing_credentials() {
        let pieces = Pieces::default();
        let c = creds(Some("IQoJ/session+token="));
        let t = token(Some("IQoJ%2Fsession%2Btoken%3D"));
        let stored = StoredToken::new(&t, &pieces, &c);
        let StoredToken::Split {
            rest: Rest::Session { head, credentials },
            ..
        } = &stored
        else {
            panic!("session token copied: {stored:?}")
        };
        assert!(head.ends_with("&X-Amz-Security-Token="));
        // The same allocation as the caller's credentials, not a copy.
        assert_eq!(
            credentials.session_token().unwrap().as_ptr(),
            c.session_token().unwrap().as_ptr()
        );
        assert_eq!(stored.expose().expose_secret(), t.expose_secret());
        // Credentials whose session token is not the token's: the text is kept.
        let other = StoredToken::new(&t, &pieces, &creds(Some("other")));
        assert!(matches!(
            other,
            StoredToken::Split {
                rest: Rest::Text(_),
                ..
            }
        ));
        assert_eq!(other.expose().expose_secret(), t.expose_secret());
    }

    #[test]
    fn other_shapes_are_kept_whole() {
        let pieces = Pieces::default();
        for odd in [
            "short".to_owned(),
            format!("{HEAD}{TAIL}{}", "g".repeat(64)),
            format!("{HEAD}{TAIL}{}", SIG.to_uppercase()),
            format!("{HEAD}&X{SIG}"),
            format!("{}{TAIL}{SIG}", HEAD.replace("DBUser=", "User=")),
            format!("{}{TAIL}{SIG}", HEAD.replace("X-Amz-Date=", "Date=")),
            format!(
                "{}{TAIL}{SIG}",
                HEAD.replace(
                    "20260309T141129Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host",
                    "2026"
                )
            ),
        ] {
            let t = SecretString::from(odd.clone());
            let stored = StoredToken::new(&t, &pieces, &creds(Some("S1")));
            assert!(matches!(stored, StoredToken::Whole(_)), "{odd}");
            assert_eq!(stored.expose().expose_secret(), odd);
        }
    }
}
