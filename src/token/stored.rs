//! How a cached token is kept in memory: in pieces, most of its bytes shared.
//!
//! A token signed with temporary credentials carries the URL-encoded session token (often
//! 600 to 1,200 bytes) in `X-Amz-Security-Token`: two thirds of the token, identical in
//! every token those credentials sign. [`StoredToken`] keeps the text before it (host, DB
//! user, credential scope, date), one shared copy of it ([`SessionTokens`]), and the 32
//! signature bytes; the token is put back together when served. The pieces are checked
//! when the token is stored: if they do not give back the signed text byte for byte, the
//! token is kept whole.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};

use secrecy::{ExposeSecret, SecretString};

const SESSION_PARAM: &str = "X-Amz-Security-Token=";
const TAIL: &str = "&X-Amz-Signature=";

/// A token, kept compactly.
#[derive(Debug)]
pub enum StoredToken {
    /// `head` + the session token (if any) + [`TAIL`] + the hex signature.
    Split {
        /// Everything before the session token's value (or before [`TAIL`]).
        head: Box<str>,
        /// The URL-encoded session token, shared with other tokens of the same credentials.
        session: Option<Arc<str>>,
        /// `X-Amz-Signature`.
        signature: [u8; 32],
    },
    /// A token of another shape, verbatim.
    Whole(SecretString),
}

impl StoredToken {
    /// Splits `token`, sharing its session token through `sessions`.
    pub fn new(token: &SecretString, sessions: &SessionTokens) -> Self {
        let text = token.expose_secret();
        match split(text) {
            Some((head, session, signature)) => {
                let stored = Self::Split {
                    head: head.into(),
                    session: session.map(|s| sessions.share(s)),
                    signature,
                };
                if stored.expose().expose_secret() == text {
                    stored
                } else {
                    Self::Whole(token.clone())
                }
            }
            None => Self::Whole(token.clone()),
        }
    }

    /// The token, put back together.
    pub fn expose(&self) -> SecretString {
        match self {
            Self::Split {
                head,
                session,
                signature,
            } => {
                let session = session.as_deref().unwrap_or("");
                let mut t = String::with_capacity(head.len() + session.len() + TAIL.len() + 64);
                t.push_str(head);
                t.push_str(session);
                t.push_str(TAIL);
                t.push_str(&hex::encode(signature));
                SecretString::from(t)
            }
            Self::Whole(t) => t.clone(),
        }
    }
}

/// `(head, session token, signature)` of a token shaped like the signer's output.
fn split(text: &str) -> Option<(&str, Option<&str>, [u8; 32])> {
    let sig_at = text.len().checked_sub(64)?;
    let (rest, sig_hex) = (text.get(..sig_at)?, text.get(sig_at..)?);
    if !sig_hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut signature = [0u8; 32];
    hex::decode_to_slice(sig_hex, &mut signature).ok()?;
    let rest = rest.strip_suffix(TAIL)?;
    match rest.find(SESSION_PARAM) {
        Some(i) => {
            let (head, session) = rest.split_at(i + SESSION_PARAM.len());
            (!session.is_empty() && !session.contains('&')).then_some((
                head,
                Some(session),
                signature,
            ))
        }
        None => Some((rest, None, signature)),
    }
}

/// One copy of each session token in use, shared by the tokens that carry it; a copy
/// goes away with the last token holding it.
#[derive(Debug, Default)]
pub struct SessionTokens {
    by_hash: Mutex<HashMap<u64, Weak<str>>>,
}

impl SessionTokens {
    /// The shared copy of `session`.
    fn share(&self, session: &str) -> Arc<str> {
        let mut h = DefaultHasher::new();
        session.hash(&mut h);
        let hash = h.finish();
        let Ok(mut map) = self.by_hash.lock() else {
            return Arc::from(session);
        };
        if let Some(existing) = map.get(&hash).and_then(Weak::upgrade)
            && *existing == *session
        {
            return existing;
        }
        let fresh: Arc<str> = Arc::from(session);
        map.insert(hash, Arc::downgrade(&fresh));
        // Forget copies no token holds any more, once they could be half the map.
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        fresh
    }

    /// Session tokens currently shared.
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
    const HEAD: &str = "db.example.com:5432/?Action=connect&DBUser=u&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIA%2F20260309%2Feu-west-1%2Frds-db%2Faws4_request&X-Amz-Date=20260309T141129Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&";
    const SIG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn token(session: Option<&str>) -> SecretString {
        let mid = session.map_or(String::new(), |s| format!("{SESSION_PARAM}{s}"));
        let head = if session.is_some() {
            HEAD
        } else {
            HEAD.trim_end_matches('&')
        };
        SecretString::from(format!("{head}{mid}{TAIL}{SIG}"))
    }

    #[test]
    fn tokens_are_split_and_put_back_byte_for_byte() {
        let sessions = SessionTokens::default();
        for t in [token(Some("IQoJb3JpZ2luX2VjE%2F%2Bsession")), token(None)] {
            let stored = StoredToken::new(&t, &sessions);
            assert!(matches!(stored, StoredToken::Split { .. }));
            assert_eq!(stored.expose().expose_secret(), t.expose_secret());
        }
    }

    #[test]
    fn a_session_token_is_kept_once_while_tokens_hold_it() {
        let sessions = SessionTokens::default();
        let a = StoredToken::new(&token(Some("S1")), &sessions);
        let b = StoredToken::new(&token(Some("S1")), &sessions);
        let c = StoredToken::new(&token(Some("S2")), &sessions);
        let ptr = |s: &StoredToken| match s {
            StoredToken::Split {
                session: Some(s), ..
            } => Arc::as_ptr(s).cast::<u8>(),
            _ => std::ptr::null(),
        };
        assert_eq!(ptr(&a), ptr(&b));
        assert_ne!(ptr(&a), ptr(&c));
        assert_eq!(sessions.len(), 2);
        drop((a, b));
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn other_shapes_are_kept_whole() {
        let sessions = SessionTokens::default();
        for odd in [
            "short",
            &format!("{HEAD}{TAIL}{}", "G".repeat(64)),
            &format!("{HEAD}{TAIL}{}", SIG.to_uppercase()),
            &format!("{HEAD}{SESSION_PARAM}a&b=c{TAIL}{SIG}"),
            &format!("{HEAD}{SESSION_PARAM}{TAIL}{SIG}"),
        ] {
            let t = SecretString::from(odd.to_owned());
            let stored = StoredToken::new(&t, &sessions);
            assert!(matches!(stored, StoredToken::Whole(_)), "{odd}");
            assert_eq!(stored.expose().expose_secret(), odd);
        }
    }
}
