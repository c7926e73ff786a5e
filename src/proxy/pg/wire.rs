//! PostgreSQL wire format, as far as the proxy needs it: the client's first packets
//! (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage), typed messages during
//! sign-in, and the ErrorResponse the proxy answers with. Every read is bounded.

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// The largest first packet (StartupMessage, CancelRequest) a client may send.
pub const MAX_STARTUP: usize = 10 * 1024;
/// The largest message the proxy reads during sign-in (either side).
pub const MAX_MESSAGE: usize = 1024 * 1024;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// A client's untyped first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum First {
    /// `SSLRequest`: answer `S` or `N`.
    Ssl,
    /// `GSSENCRequest`: answered `N`.
    GssEnc,
    /// `CancelRequest` for a backend key the proxy handed out.
    Cancel {
        /// Process id part of the key.
        pid: i32,
        /// Secret part (4 bytes in protocol 3.0, up to 256 in 3.2).
        secret: Vec<u8>,
    },
    /// `StartupMessage`.
    Startup {
        /// Protocol version (major << 16 | minor).
        version: u32,
        /// Parameters in the client's order (`user`, `database`, `options`, ...).
        params: Vec<(String, String)>,
    },
}

/// Why a client's packet is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The connection closed or failed mid-packet.
    #[error("the connection closed during the startup packet")]
    Closed,
    /// A TLS ClientHello where a PostgreSQL packet was expected.
    #[error(
        "received a TLS handshake without SSLRequest: this proxy listener does not take direct TLS (use sslnegotiation=postgres)"
    )]
    TlsWithoutRequest,
    /// Length field out of bounds.
    #[error("startup packet length {0} is out of bounds (8 to 10240 bytes)")]
    Length(u32),
    /// A protocol version the proxy does not speak.
    #[error("unsupported frontend protocol {}.{}: this proxy speaks 3.x", .0 >> 16, .0 & 0xffff)]
    Version(u32),
    /// Malformed contents.
    #[error("malformed startup packet: {0}")]
    Malformed(&'static str),
}

/// Reads one first packet (length-prefixed, untyped).
pub async fn read_first<R: AsyncRead + Unpin>(r: &mut R) -> Result<First, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .await
        .map_err(|_| WireError::Closed)?;
    if len[0] == 0x16 {
        return Err(WireError::TlsWithoutRequest);
    }
    let n = u32::from_be_bytes(len);
    let size = usize::try_from(n).unwrap_or(usize::MAX);
    if !(8..=MAX_STARTUP).contains(&size) {
        return Err(WireError::Length(n));
    }
    let mut body = vec![0u8; size - 4];
    r.read_exact(&mut body)
        .await
        .map_err(|_| WireError::Closed)?;
    parse_first(&body)
}

/// Parses a first packet's body (after the length).
pub fn parse_first(body: &[u8]) -> Result<First, WireError> {
    let (code, rest) = split_u32(body).ok_or(WireError::Malformed("no protocol code"))?;
    match code {
        SSL_REQUEST | GSSENC_REQUEST if !rest.is_empty() => {
            Err(WireError::Malformed("SSLRequest/GSSENCRequest with a body"))
        }
        SSL_REQUEST => Ok(First::Ssl),
        GSSENC_REQUEST => Ok(First::GssEnc),
        CANCEL_REQUEST => {
            let (pid, secret) =
                split_u32(rest).ok_or(WireError::Malformed("short CancelRequest"))?;
            if !(4..=256).contains(&secret.len()) {
                return Err(WireError::Malformed("CancelRequest key length"));
            }
            Ok(First::Cancel {
                pid: i32::from_be_bytes(pid.to_be_bytes()),
                secret: secret.to_vec(),
            })
        }
        v if v >> 16 == 3 => Ok(First::Startup {
            version: v,
            params: parse_params(rest)?,
        }),
        v => Err(WireError::Version(v)),
    }
}

fn split_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let head: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some((u32::from_be_bytes(head), b.get(4..)?))
}

fn parse_params(mut rest: &[u8]) -> Result<Vec<(String, String)>, WireError> {
    let mut params = Vec::new();
    loop {
        let (key, after) = cstr(rest).ok_or(WireError::Malformed("unterminated parameter"))?;
        if key.is_empty() {
            if !after.is_empty() {
                return Err(WireError::Malformed("bytes after the parameter list"));
            }
            return Ok(params);
        }
        let (value, after) = cstr(after).ok_or(WireError::Malformed("unterminated value"))?;
        params.push((key.to_owned(), value.to_owned()));
        rest = after;
    }
}

/// A NUL-terminated UTF-8 string and what follows it.
pub fn cstr(b: &[u8]) -> Option<(&str, &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    let s = std::str::from_utf8(b.get(..end)?).ok()?;
    Some((s, b.get(end + 1..)?))
}

/// A StartupMessage with `params`.
pub fn startup(version: u32, params: &[(String, String)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    untyped(&body)
}

/// An untyped packet: length then body.
pub fn untyped(body: &[u8]) -> Vec<u8> {
    let mut out = len_prefix(body.len() + 4);
    out.extend_from_slice(body);
    out
}

/// A typed message: tag, length, body.
pub fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(len_prefix(body.len() + 4));
    out.extend_from_slice(body);
    out
}

fn len_prefix(n: usize) -> Vec<u8> {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes().to_vec()
}

/// An `ErrorResponse` (severity FATAL) with SQLSTATE `code`, `message` and an optional
/// hint. Control characters are removed from the texts.
pub fn error(code: &str, message: &str, hint: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    let mut field = |tag: u8, text: &str| {
        body.push(tag);
        body.extend(text.bytes().filter(|&b| b != 0));
        body.push(0);
    };
    field(b'S', "FATAL");
    field(b'V', "FATAL");
    field(b'C', code);
    field(b'M', &crate::domain::text::cleaned(message, 4000));
    if let Some(h) = hint {
        field(b'H', &crate::domain::text::cleaned(h, 4000));
    }
    body.push(0);
    typed(b'E', &body)
}

/// The fields of an ErrorResponse/NoticeResponse body: (tag, text).
pub fn fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some((&tag, after)) = rest.split_first() {
        if tag == 0 {
            break;
        }
        let Some((text, after)) = cstr(after) else {
            break;
        };
        out.push((tag, text.to_owned()));
        rest = after;
    }
    out
}

/// Reads one typed message (tag and body), refusing bodies over `max`.
pub async fn read_typed<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head).await?;
    let [tag, a, b, c, d] = head;
    let n = usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
    if !(4..=max.saturating_add(4)).contains(&n) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "message '{}' of {n} bytes is out of bounds",
                tag.escape_ascii()
            ),
        ));
    }
    let mut body = vec![0u8; n - 4];
    r.read_exact(&mut body).await?;
    Ok((tag, body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_startup_message_round_trips() {
        let params = vec![
            ("user".to_owned(), "app".to_owned()),
            ("database".to_owned(), "orders".to_owned()),
        ];
        let packet = startup(196_608, &params);
        assert_eq!(
            parse_first(&packet[4..]).unwrap(),
            First::Startup {
                version: 196_608,
                params
            }
        );
        assert_eq!(
            parse_first(&80_877_103u32.to_be_bytes()).unwrap(),
            First::Ssl
        );
        assert!(matches!(
            parse_first(&0x0002_0000u32.to_be_bytes()),
            Err(WireError::Version(_))
        ));
    }

    #[tokio::test]
    async fn oversized_and_tls_packets_are_refused() {
        let mut big = &(20_000u32.to_be_bytes())[..];
        assert_eq!(read_first(&mut big).await, Err(WireError::Length(20_000)));
        let mut hello = &[0x16u8, 3, 1, 0, 200][..];
        assert_eq!(
            read_first(&mut hello).await,
            Err(WireError::TlsWithoutRequest)
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_first(&bytes);
            let _ = fields(&bytes);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut r = &bytes[..];
            let _ = rt.block_on(read_first(&mut r));
            let mut r = &bytes[..];
            let _ = rt.block_on(read_typed(&mut r, 1024));
        }

        #[test]
        fn any_well_formed_startup_parses_back(
            params in proptest::collection::vec(("[a-z_]{1,20}", "[^\u{0}]{0,40}"), 0..10)
        ) {
            let packet = startup(196_608, &params);
            prop_assume!(packet.len() <= MAX_STARTUP);
            let mut r = &packet[..];
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            prop_assert_eq!(
                rt.block_on(read_first(&mut r)).unwrap(),
                First::Startup { version: 196_608, params }
            );
        }
    }
}
