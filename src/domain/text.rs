//! Caller-controlled text made safe to keep: the one cleaning step every value a caller
//! controls (unverified JWT claims, user agents, requested names, reasons that quote the
//! caller) goes through before it reaches an audit event, a log line, a metric label or a
//! response.
//!
//! Cleaning removes control characters (C0, DEL, C1: terminal escape sequences, NUL, which
//! PostgreSQL's `TEXT` refuses) and the Unicode bidirectional and invisible formatting
//! characters that can make a console or a terminal show text in another order
//! (U+061C, U+200B-U+200F, U+202A-U+202E, U+2060-U+2069, U+FEFF), then caps the length in
//! characters, marking a cut with `…`. Text that needs no change is borrowed, not copied.

use std::borrow::Cow;

/// Longest cleaned value kept for a short identifier-like field (claimed `iss`/`sub`,
/// requested target or DB user names), in characters.
pub const SHORT: usize = 128;
/// Longest cleaned value kept for free text (user agents, reasons), in characters.
pub const LONG: usize = 256;

/// Whether `c` is removed by [`clean`].
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `s` without unsafe characters, at most `max` characters long (the last one `…` when
/// it was cut).
pub fn clean(s: &str, max: usize) -> Cow<'_, str> {
    let needs_removal = s.chars().any(is_unsafe);
    // Byte length bounds character count, so most values skip the count.
    let too_long = s.len() > max && s.chars().filter(|c| !is_unsafe(*c)).count() > max;
    if !needs_removal && !too_long {
        return Cow::Borrowed(s);
    }
    let kept = s.chars().filter(|c| !is_unsafe(*c));
    if too_long {
        let mut out: String = kept.take(max.saturating_sub(1)).collect();
        out.push('…');
        Cow::Owned(out)
    } else {
        Cow::Owned(kept.collect())
    }
}

/// [`clean`] into an owned `String`.
pub fn cleaned(s: &str, max: usize) -> String {
    clean(s, max).into_owned()
}

/// Cleans an optional field in place.
pub fn clean_field(field: &mut Option<String>, max: usize) {
    if let Some(v) = field.as_mut()
        && let Cow::Owned(c) = clean(v, max)
    {
        *v = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(clean("svc-orders@corp", SHORT), Cow::Borrowed(_)));
    }

    #[test]
    fn controls_and_bidi_are_removed() {
        assert_eq!(clean("a\0b\x1b[31mc\u{7f}\u{85}", SHORT), "ab[31mc");
        assert_eq!(clean("admin\u{202E}gnp.exe", SHORT), "admingnp.exe");
        assert_eq!(clean("\u{2066}x\u{2069}\u{200f}\u{feff}", SHORT), "x");
    }

    #[test]
    fn long_values_are_cut_with_a_mark() {
        let s = "é".repeat(300);
        let c = clean(&s, 10);
        assert_eq!(c.chars().count(), 10);
        assert!(c.ends_with('…'));
        assert_eq!(clean(&"a".repeat(10), 10), "a".repeat(10));
    }

    proptest! {
        #[test]
        fn output_is_always_safe_and_bounded(s in any::<String>(), max in 1usize..300) {
            let c = clean(&s, max);
            prop_assert!(c.chars().count() <= max);
            prop_assert!(!c.chars().any(is_unsafe));
            prop_assert!(!c.contains('\0'));
        }
    }
}
