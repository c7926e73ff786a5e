//! RFC 8785 JSON Canonicalization Scheme (JCS), for the values an audit event holds:
//! strings, integers within ±2^53, booleans, null, arrays and objects. Object members are
//! sorted by their names' UTF-16 code units; strings are escaped as RFC 8785 section
//! 3.2.2.2 says (`\b \t \n \f \r \" \\` short, other controls `\u00xx` lowercase,
//! everything else as is, in UTF-8). Numbers other than such integers (fractions,
//! exponents) are refused rather than written in some other form: no event field holds
//! one, and a wrong number form would give a hash no other JCS implementation reproduces.
//!
//! [`event_fields`] writes an event's canonical form straight into a hasher: the event's
//! fields are captured through serde (so a field added to the struct later is covered
//! without a change here), absent optional fields are left out, and nothing but one
//! buffer is allocated.

use serde::Serialize;
use serde::ser::{self, Impossible};

/// The largest integer every JCS implementation writes exactly (2^53 - 1): beyond it, an
/// IEEE 754 double cannot hold every integer and RFC 8785 numbers are doubles.
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// Which bytes a JCS string escapes: 0 none, `u` as `\u00xx`, else the letter after the
/// backslash. A table rather than a `match` per byte: every audit event's strings pass
/// through here on the request path (callgrind: about 10k instructions per issuance with
/// the `match`, bench/README.md).
#[allow(clippy::indexing_slicing)] // every index is a byte value, below 256
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `s` as a JCS string (RFC 8785 section 3.2.2.2).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut rest = s.as_bytes();
    let escape = |b: u8| ESCAPE.get(usize::from(b)).copied().unwrap_or(0);
    while let Some(i) = rest.iter().position(|&b| escape(b) != 0) {
        let (plain, tail) = rest.split_at(i);
        out.extend_from_slice(plain);
        let Some((&b, tail)) = tail.split_first() else {
            break;
        };
        match escape(b) {
            b'u' => {
                out.extend_from_slice(b"\\u00");
                for nibble in [b >> 4, b & 0x0f] {
                    out.extend(HEX.get(usize::from(nibble)));
                }
            }
            letter => out.extend_from_slice(&[b'\\', letter]),
        }
        rest = tail;
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// A value JCS (as implemented here) cannot write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not canonicalizable: {0}")]
pub struct JcsError(pub String);

impl ser::Error for JcsError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

fn integer(out: &mut Vec<u8>, n: i128) -> Result<(), JcsError> {
    if n.unsigned_abs() > MAX_SAFE_INTEGER as u128 {
        return Err(JcsError(format!("integer {n} is beyond 2^53")));
    }
    out.extend_from_slice(n.to_string().as_bytes());
    Ok(())
}

/// Appends `value` in JCS form. Numbers must be integers within ±(2^53 - 1).
pub fn write_value(out: &mut Vec<u8>, value: &serde_json::Value) -> Result<(), JcsError> {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => integer(out, i128::from(i))?,
            (None, Some(u), _) => integer(out, i128::from(u))?,
            // A double holding an integer (e.g. 1e2 or -0.0) is written as the integer.
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64 =>
            {
                #[allow(clippy::cast_possible_truncation)]
                integer(out, f as i128)?
            }
            _ => return Err(JcsError(format!("number {n} is not an integer"))),
        },
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, v)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| utf16_cmp(a.0, b.0));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, v)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// The JCS text of `value`.
pub fn to_string(value: &serde_json::Value) -> Result<String, JcsError> {
    let mut out = Vec::new();
    write_value(&mut out, value)?;
    String::from_utf8(out).map_err(|e| JcsError(e.to_string()))
}

/// Orders by UTF-16 code units (RFC 8785 section 3.2.3), not by bytes or chars: they
/// differ for characters beyond U+FFFF against U+E000..U+FFFF.
fn utf16_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Writes `value` (a struct) as a JCS object into `sink`, leaving out the members named in
/// `skip` and every member whose value is absent (`None` or unit). `buf` is scratch space,
/// reused across calls. Members must be strings, integers, booleans or unit enum variants.
pub fn event_fields<T: Serialize>(
    value: &T,
    skip: &[&str],
    buf: &mut Vec<u8>,
    mut sink: impl FnMut(&[u8]),
) -> Result<(), JcsError> {
    buf.clear();
    let mut fields = Fields {
        buf,
        spans: Vec::with_capacity(32),
        skip,
    };
    value.serialize(&mut fields)?;
    let Fields { buf, mut spans, .. } = fields;
    // Member names are Rust field names: ASCII, whose byte order is their UTF-16 order, so
    // the cheap comparison gives the same order (callgrind: the UTF-16 comparison was about
    // 7k instructions per issuance).
    if spans.iter().all(|s| s.0.is_ascii()) {
        spans.sort_unstable_by(|a, b| a.0.cmp(b.0));
    } else {
        spans.sort_by(|a, b| utf16_cmp(a.0, b.0));
    }
    let mut scratch = Vec::with_capacity(32);
    sink(b"{");
    for (i, (key, start, end)) in spans.iter().enumerate() {
        if i > 0 {
            sink(b",");
        }
        scratch.clear();
        write_str(&mut scratch, key);
        scratch.push(b':');
        sink(&scratch);
        sink(buf.get(*start..*end).unwrap_or_default());
    }
    sink(b"}");
    Ok(())
}

/// Collects a struct's members: each value's JCS text is appended to `buf` and its span
/// recorded under the member's name.
struct Fields<'a, 'b> {
    buf: &'a mut Vec<u8>,
    spans: Vec<(&'static str, usize, usize)>,
    skip: &'b [&'b str],
}

fn unsupported<T>(what: &str) -> Result<T, JcsError> {
    Err(JcsError(format!("{what} is not an audit event field type")))
}

macro_rules! not_a_struct {
    ($($f:ident($($t:ty),*)),* $(,)?) => {$(
        fn $f(self, $(_: $t),*) -> Result<(), JcsError> { unsupported("only a struct") }
    )*};
}

impl<'a, 'b> ser::Serializer for &mut Fields<'a, 'b> {
    type Ok = ();
    type Error = JcsError;
    type SerializeSeq = Impossible<(), JcsError>;
    type SerializeTuple = Impossible<(), JcsError>;
    type SerializeTupleStruct = Impossible<(), JcsError>;
    type SerializeTupleVariant = Impossible<(), JcsError>;
    type SerializeMap = Impossible<(), JcsError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), JcsError>;

    not_a_struct!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), JcsError> {
        unsupported("only a struct")
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), JcsError> {
        unsupported("only a struct")
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), JcsError> {
        unsupported("only a struct")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, JcsError> {
        unsupported("only a struct")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, JcsError> {
        unsupported("only a struct")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, JcsError> {
        unsupported("only a struct")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, JcsError> {
        unsupported("only a struct")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, JcsError> {
        unsupported("only a struct")
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, JcsError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, JcsError> {
        unsupported("only a struct")
    }
}

impl<'a, 'b> ser::SerializeStruct for &mut Fields<'a, 'b> {
    type Ok = ();
    type Error = JcsError;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JcsError> {
        if self.skip.contains(&key) {
            return Ok(());
        }
        let start = self.buf.len();
        let present = value.serialize(Scalar { out: self.buf })?;
        if present {
            self.spans.push((key, start, self.buf.len()));
        } else {
            self.buf.truncate(start);
        }
        Ok(())
    }

    fn skip_field(&mut self, _: &'static str) -> Result<(), JcsError> {
        Ok(())
    }

    fn end(self) -> Result<(), JcsError> {
        Ok(())
    }
}

/// Writes one member's value; answers whether it is present (not `None` or unit).
struct Scalar<'a> {
    out: &'a mut Vec<u8>,
}

macro_rules! ints {
    ($($f:ident($t:ty)),* $(,)?) => {$(
        fn $f(self, v: $t) -> Result<bool, JcsError> {
            integer(self.out, i128::from(v)).map(|()| true)
        }
    )*};
}

impl ser::Serializer for Scalar<'_> {
    type Ok = bool;
    type Error = JcsError;
    type SerializeSeq = Impossible<bool, JcsError>;
    type SerializeTuple = Impossible<bool, JcsError>;
    type SerializeTupleStruct = Impossible<bool, JcsError>;
    type SerializeTupleVariant = Impossible<bool, JcsError>;
    type SerializeMap = Impossible<bool, JcsError>;
    type SerializeStruct = Impossible<bool, JcsError>;
    type SerializeStructVariant = Impossible<bool, JcsError>;

    ints!(
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
    );
    fn serialize_bool(self, v: bool) -> Result<bool, JcsError> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(true)
    }
    fn serialize_f32(self, _: f32) -> Result<bool, JcsError> {
        unsupported("a fraction")
    }
    fn serialize_f64(self, _: f64) -> Result<bool, JcsError> {
        unsupported("a fraction")
    }
    fn serialize_char(self, v: char) -> Result<bool, JcsError> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(true)
    }
    fn serialize_str(self, v: &str) -> Result<bool, JcsError> {
        write_str(self.out, v);
        Ok(true)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<bool, JcsError> {
        unsupported("bytes")
    }
    fn serialize_none(self) -> Result<bool, JcsError> {
        Ok(false)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<bool, JcsError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<bool, JcsError> {
        Ok(false)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<bool, JcsError> {
        Ok(false)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<bool, JcsError> {
        write_str(self.out, variant);
        Ok(true)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<bool, JcsError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, JcsError> {
        unsupported("an enum with data")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, JcsError> {
        unsupported("a list")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, JcsError> {
        unsupported("a tuple")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, JcsError> {
        unsupported("a tuple")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, JcsError> {
        unsupported("an enum with data")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, JcsError> {
        unsupported("a map")
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, JcsError> {
        unsupported("a nested struct")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, JcsError> {
        unsupported("an enum with data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jcs(v: serde_json::Value) -> String {
        to_string(&v).unwrap()
    }

    /// RFC 8785 section 3.2.2.2's string example, and its section 3.2.3 sorting example
    /// (the keys' UTF-16 order differs from their byte order).
    #[test]
    fn rfc_8785_string_and_sorting_examples() {
        // Section 3.2.2.2 input: "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/"
        let s = "\u{20ac}$\u{000F}\u{000a}A'\u{0042}\u{0022}\u{005c}\\\"/";
        let mut out = Vec::new();
        write_str(&mut out, s);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\""
        );
        // Section 3.2.3 sorting example, with its numbers replaced by integers.
        let sorted = jcs(json!({
            "\u{20ac}": "Euro Sign",
            "\r": "Carriage Return",
            "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\u{1f600}": "Emoji: Grinning Face",
            "\u{0080}": "Control",
            "\u{00f6}": "Latin Small Letter O With Diaeresis"
        }));
        let keys: Vec<&str> = [
            "\\r",
            "1",
            "\u{0080}",
            "\u{00f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ]
        .into();
        let mut at = 0;
        for k in keys {
            let found = sorted[at..].find(&format!("\"{k}\"")).unwrap();
            at += found + 1;
        }
    }

    /// Integer examples from RFC 8785 Appendix B that fall inside what is supported, and
    /// the refusals outside it.
    #[test]
    fn rfc_8785_integer_examples_and_refused_numbers() {
        assert_eq!(jcs(json!(0)), "0");
        assert_eq!(jcs(json!(-0.0)), "0");
        assert_eq!(jcs(json!(9007199254740991_i64)), "9007199254740991");
        assert_eq!(jcs(json!(-9007199254740991_i64)), "-9007199254740991");
        assert_eq!(jcs(json!(1e2)), "100");
        assert!(to_string(&json!(9007199254740992_i64)).is_err());
        assert!(to_string(&json!(0.5)).is_err());
        assert!(to_string(&json!(u64::MAX)).is_err());
    }

    #[test]
    fn nested_values_and_literals() {
        assert_eq!(
            jcs(json!({"b": [true, false, null, "x"], "a": {"d": 1, "c": "\u{7f}\u{1}"}})),
            "{\"a\":{\"c\":\"\u{7f}\\u0001\",\"d\":1},\"b\":[true,false,null,\"x\"]}"
        );
    }

    #[derive(Serialize)]
    struct Sample {
        zeta: String,
        alpha: Option<String>,
        mid: Option<i64>,
        skipped: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        gone: Option<String>,
        flag: bool,
    }

    /// The struct writer agrees with the generic one on the same members, leaves out
    /// absent ones and the skipped names, and refuses fractions.
    #[test]
    fn struct_fields_match_the_value_writer() {
        let s = Sample {
            zeta: "z\n".into(),
            alpha: None,
            mid: Some(-5),
            skipped: "no".into(),
            gone: None,
            flag: true,
        };
        let mut got = Vec::new();
        let mut buf = Vec::new();
        event_fields(&s, &["skipped"], &mut buf, |b| got.extend_from_slice(b)).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            jcs(json!({"zeta": "z\n", "mid": -5, "flag": true}))
        );
        #[derive(Serialize)]
        struct F {
            x: f64,
        }
        assert!(event_fields(&F { x: 1.5 }, &[], &mut buf, |_| {}).is_err());
        #[derive(Serialize)]
        struct Big {
            x: u64,
        }
        assert!(event_fields(&Big { x: u64::MAX }, &[], &mut buf, |_| {}).is_err());
    }
}
