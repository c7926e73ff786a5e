//! MySQL wire packets: framing (3-byte length, sequence id), the few handshake messages
//! the proxy reads and writes, and error packets. Every read is bounded: a packet longer
//! than the caller's limit is refused before its payload is read, so a client that lies
//! about a length gets an error, never an unbounded buffer.

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Capability flags (`CLIENT_*`) the proxy reads or sets.
pub mod caps {
    /// `CLIENT_LONG_PASSWORD` (also `CLIENT_MYSQL` for MariaDB clients).
    pub const LONG_PASSWORD: u32 = 1;
    /// `CLIENT_FOUND_ROWS`.
    pub const FOUND_ROWS: u32 = 1 << 1;
    /// `CLIENT_LONG_FLAG`.
    pub const LONG_FLAG: u32 = 1 << 2;
    /// `CLIENT_CONNECT_WITH_DB`.
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    /// `CLIENT_COMPRESS`.
    pub const COMPRESS: u32 = 1 << 5;
    /// `CLIENT_LOCAL_FILES`.
    pub const LOCAL_FILES: u32 = 1 << 7;
    /// `CLIENT_IGNORE_SPACE`.
    pub const IGNORE_SPACE: u32 = 1 << 8;
    /// `CLIENT_PROTOCOL_41`.
    pub const PROTOCOL_41: u32 = 1 << 9;
    /// `CLIENT_INTERACTIVE`.
    pub const INTERACTIVE: u32 = 1 << 10;
    /// `CLIENT_SSL`.
    pub const SSL: u32 = 1 << 11;
    /// `CLIENT_TRANSACTIONS`.
    pub const TRANSACTIONS: u32 = 1 << 13;
    /// `CLIENT_SECURE_CONNECTION`.
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    /// `CLIENT_MULTI_STATEMENTS`.
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    /// `CLIENT_MULTI_RESULTS`.
    pub const MULTI_RESULTS: u32 = 1 << 17;
    /// `CLIENT_PS_MULTI_RESULTS`.
    pub const PS_MULTI_RESULTS: u32 = 1 << 18;
    /// `CLIENT_PLUGIN_AUTH`.
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    /// `CLIENT_CONNECT_ATTRS`.
    pub const CONNECT_ATTRS: u32 = 1 << 20;
    /// `CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA`.
    pub const PLUGIN_AUTH_LENENC: u32 = 1 << 21;
    /// `CLIENT_SESSION_TRACK`.
    pub const SESSION_TRACK: u32 = 1 << 23;
    /// `CLIENT_DEPRECATE_EOF`.
    pub const DEPRECATE_EOF: u32 = 1 << 24;

    /// What the proxy offers clients: what it can relay unchanged to any MySQL 5.7+ or
    /// MariaDB 10.2+ server. No `CLIENT_SSL` (the client side is loopback or a Unix
    /// socket), no compression (the proxy reads command headers).
    pub const OFFERED: u32 = LONG_PASSWORD
        | FOUND_ROWS
        | LONG_FLAG
        | CONNECT_WITH_DB
        | LOCAL_FILES
        | IGNORE_SPACE
        | PROTOCOL_41
        | INTERACTIVE
        | TRANSACTIONS
        | SECURE_CONNECTION
        | MULTI_STATEMENTS
        | MULTI_RESULTS
        | PS_MULTI_RESULTS
        | PLUGIN_AUTH
        | CONNECT_ATTRS
        | PLUGIN_AUTH_LENENC
        | SESSION_TRACK
        | DEPRECATE_EOF;
}

/// The longest packet payload (`0xFFFFFF`); a payload of exactly this length continues
/// in the next packet.
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;

/// Why a packet could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// The connection failed or closed mid-packet.
    #[error("connection closed or failed: {0}")]
    Io(#[from] std::io::Error),
    /// The header announced more than the limit for this stage.
    #[error("a packet announced {len} bytes, over the {limit}-byte limit for this stage")]
    TooLong {
        /// Announced payload length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload does not hold what its type requires.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// One packet: its sequence id and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sequence id.
    pub seq: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

/// A packet header: payload length and sequence id.
pub fn header(bytes: [u8; 4]) -> (usize, u8) {
    let [a, b, c, seq] = bytes;
    (
        usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16,
        seq,
    )
}

/// Reads one packet whose payload is at most `limit` bytes (checked before reading it).
pub async fn read<R: AsyncRead + Unpin>(r: &mut R, limit: usize) -> Result<Packet, PacketError> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head).await?;
    let (len, seq) = header(head);
    if len > limit || len == MAX_PAYLOAD {
        return Err(PacketError::TooLong { len, limit });
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Packet { seq, payload })
}

/// Writes `payload` as one packet with sequence id `seq` (payloads here are small).
pub async fn write<W: AsyncWrite + Unpin>(
    w: &mut W,
    seq: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| (*l as usize) < MAX_PAYLOAD)
        .ok_or_else(|| std::io::Error::other("packet too long"))?;
    let [a, b, c, _] = len.to_le_bytes();
    let mut buf = Vec::with_capacity(payload.len() + 4);
    buf.extend_from_slice(&[a, b, c, seq]);
    buf.extend_from_slice(payload);
    w.write_all(&buf).await?;
    w.flush().await
}

/// An ERR packet payload (protocol 4.1 form, with SQLSTATE). The message is cut to 500
/// bytes (on a character boundary): libmysqlclient keeps at most 512.
pub fn error(code: u16, sqlstate: &str, message: &str) -> Vec<u8> {
    let mut end = message.len().min(500);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut p = vec![0xFF];
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    p.extend_from_slice(sqlstate.as_bytes().get(..5).unwrap_or(b"HY000"));
    p.extend_from_slice(message.as_bytes().get(..end).unwrap_or_default());
    p
}

/// A byte cursor over a payload; every read is checked.
pub struct Cursor<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    /// A cursor over `bytes`, naming `what` in errors.
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { rest: bytes, what }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], PacketError> {
        if n > self.rest.len() {
            return Err(PacketError::Malformed(self.what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, PacketError> {
        self.take(1).map(|b| b.first().copied().unwrap_or_default())
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> Result<u16, PacketError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes(
            b.try_into()
                .map_err(|_| PacketError::Malformed(self.what))?,
        ))
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, PacketError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(
            b.try_into()
                .map_err(|_| PacketError::Malformed(self.what))?,
        ))
    }

    /// Bytes up to a NUL (consumed, not returned); all the rest when there is none and
    /// `nul_optional`.
    pub fn nul_terminated(&mut self, nul_optional: bool) -> Result<&'a [u8], PacketError> {
        match self.rest.iter().position(|b| *b == 0) {
            Some(i) => {
                let s = self.take(i)?;
                self.take(1)?;
                Ok(s)
            }
            None if nul_optional => self.take(self.rest.len()),
            None => Err(PacketError::Malformed(self.what)),
        }
    }

    /// A length-encoded integer.
    pub fn lenenc(&mut self) -> Result<u64, PacketError> {
        let n = match self.u8()? {
            b @ 0..=0xFA => return Ok(u64::from(b)),
            0xFC => 2,
            0xFD => 3,
            0xFE => 8,
            _ => return Err(PacketError::Malformed(self.what)),
        };
        let mut v = [0u8; 8];
        for (i, b) in self.take(n)?.iter().enumerate() {
            if let Some(slot) = v.get_mut(i) {
                *slot = *b;
            }
        }
        Ok(u64::from_le_bytes(v))
    }

    /// Length-encoded bytes.
    pub fn lenenc_bytes(&mut self) -> Result<&'a [u8], PacketError> {
        let n = usize::try_from(self.lenenc()?).map_err(|_| PacketError::Malformed(self.what))?;
        self.take(n)
    }

    /// Whatever is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// Appends a length-encoded integer.
pub fn put_lenenc(out: &mut Vec<u8>, n: usize) {
    let n = n as u64;
    let bytes = n.to_le_bytes();
    let (marker, width) = match n {
        0..0xFB => (None, 1),
        0xFB..=0xFFFF => (Some(0xFC), 2),
        0x1_0000..=0xFF_FFFF => (Some(0xFD), 3),
        _ => (Some(0xFE), 8),
    };
    out.extend(marker);
    out.extend(bytes.iter().take(width));
}
