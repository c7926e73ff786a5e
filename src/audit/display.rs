//! Trail text made safe to show. Events recorded before callers' text was cleaned at the
//! edge may hold anything a caller sent (an unverified JWT `sub`, a user agent): terminal
//! escape sequences, carriage returns, bidi overrides that reorder what a reader sees.
//! Everything that prints events (CSV, the CLI's table, NDJSON and JSON) passes through
//! here: CSV and the table get U+FFFD in place of such a character, JSON gets its `\uXXXX`
//! escape (the same string to a JSON parser, inert in a terminal).

use std::borrow::Cow;

/// Whether `c` is a C0 or C1 control, DEL, or a bidi formatting character (LRM, RLM,
/// ALM, the embeddings and overrides U+202A-U+202E, the isolates U+2066-U+2069).
pub fn is_unsafe(c: char) -> bool {
    // One definition for the whole crate: what caller text is cleaned of when recorded.
    crate::domain::text::is_unsafe(c)
}

/// `s` with every [`is_unsafe`] character replaced by U+FFFD.
pub fn neutralise(s: &str) -> Cow<'_, str> {
    if s.chars().any(is_unsafe) {
        Cow::Owned(
            s.chars()
                .map(|c| if is_unsafe(c) { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

/// JSON text (one document or NDJSON lines) with every [`is_unsafe`] character but the
/// line feed written as its `\uXXXX` escape. serde_json already escapes C0 controls inside
/// strings; DEL, C1 controls and bidi characters it leaves raw, and they can only occur
/// inside strings, where the escape means the same. A line feed outside a string is
/// layout (pretty printing, NDJSON), and serde_json never leaves one inside.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    let escape = |c: char| c != '\n' && is_unsafe(c);
    if !json.chars().any(escape) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if escape(c) {
            // Every unsafe character is in the Basic Multilingual Plane: one escape.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_neutralised() {
        assert_eq!(neutralise("svc-orders"), "svc-orders");
        assert_eq!(
            neutralise("a\u{1b}[2Jb\u{9b}c\rd\u{7f}"),
            "a\u{FFFD}[2Jb\u{FFFD}c\u{FFFD}d\u{FFFD}"
        );
        assert_eq!(
            neutralise("txt\u{202E}exe.\u{2066}\u{200F}\u{061C}"),
            "txt\u{FFFD}exe.\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        // Letters of right-to-left scripts are text, not formatting.
        assert_eq!(neutralise("שלום"), "שלום");
    }

    #[test]
    fn json_escapes_parse_back_to_the_same_string() {
        let s = "x\u{1b}]0;pwned\u{7}\u{9b}\u{202E}gnp.exe\u{2069}\n";
        let json =
            serde_json::to_string_pretty(&serde_json::json!({"sub": s, "n": [1, 2]})).unwrap();
        let escaped = escape_json(&json);
        assert!(
            !escaped.chars().any(|c| c != '\n' && is_unsafe(c)),
            "{escaped}"
        );
        assert!(
            escaped.contains("\\u202e") && escaped.contains("\\u009b"),
            "{escaped}"
        );
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back["sub"], s);
        assert_eq!(escape_json("{\"a\":\"b\"}\n"), "{\"a\":\"b\"}\n");
    }
}
