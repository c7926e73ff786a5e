//! The handshake messages: the greeting the proxy sends its client, the real server's
//! greeting (`HandshakeV10`), the client's `HandshakeResponse41`, and the `SSLRequest` and
//! `HandshakeResponse41` the proxy sends the server.

use super::packet::{Cursor, PacketError, caps, put_lenenc};

/// The longest client user name kept (MySQL allows 32 characters; MariaDB 80).
pub const MAX_USER: usize = 128;
/// The longest connect-attributes block relayed to the server.
pub const MAX_ATTRS: usize = 8 * 1024;

/// `utf8mb4_general_ci`, the character set announced to clients.
const CHARSET: u8 = 45;

/// The greeting the proxy sends its client: protocol 10, `version`, a fresh scramble,
/// [`caps::OFFERED`], `mysql_native_password` as the default plugin.
pub fn greeting(version: &str, connection_id: u32, scramble: &[u8; 20]) -> Vec<u8> {
    let [c0, c1, c2, c3] = caps::OFFERED.to_le_bytes();
    let mut p = vec![10];
    p.extend_from_slice(version.as_bytes());
    p.push(0);
    p.extend_from_slice(&connection_id.to_le_bytes());
    let (first, second) = scramble.split_at(8);
    p.extend_from_slice(first);
    p.push(0);
    p.extend_from_slice(&[c0, c1, CHARSET]);
    p.extend_from_slice(&2u16.to_le_bytes()); // SERVER_STATUS_AUTOCOMMIT
    p.extend_from_slice(&[c2, c3, 21]);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(second);
    p.push(0);
    p.extend_from_slice(b"mysql_native_password\0");
    p
}

/// The real server's greeting, as far as the proxy needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerGreeting {
    /// Server version string (cleaned by the caller before showing it).
    pub version: String,
    /// Capability flags.
    pub caps: u32,
    /// The auth plugin data (scramble), without the trailing NUL.
    pub scramble: Vec<u8>,
    /// The default auth plugin.
    pub plugin: String,
}

/// Parses a `HandshakeV10` payload.
pub fn parse_server_greeting(payload: &[u8]) -> Result<ServerGreeting, PacketError> {
    let mut c = Cursor::new(payload, "server greeting");
    if c.u8()? != 10 {
        return Err(PacketError::Malformed("server greeting (not protocol 10)"));
    }
    let version = String::from_utf8_lossy(c.nul_terminated(false)?).into_owned();
    c.u32()?; // connection id
    let mut scramble = c.take(8)?.to_vec();
    c.u8()?;
    let low = c.u16()?;
    if c.is_empty() {
        return Err(PacketError::Malformed("server greeting (too old a server)"));
    }
    c.u8()?; // charset
    c.u16()?; // status
    let high = c.u16()?;
    let caps = u32::from(low) | u32::from(high) << 16;
    let data_len = usize::from(c.u8()?);
    c.take(10)?;
    if caps & caps::SECURE_CONNECTION != 0 {
        let n = data_len.saturating_sub(8).max(13);
        let part = c.take(n)?;
        scramble.extend_from_slice(part.strip_suffix(&[0]).unwrap_or(part));
    }
    let plugin = if caps & caps::PLUGIN_AUTH != 0 {
        String::from_utf8_lossy(c.nul_terminated(true)?).into_owned()
    } else {
        "mysql_native_password".to_owned()
    };
    Ok(ServerGreeting {
        version,
        caps,
        scramble,
        plugin,
    })
}

/// The client's `HandshakeResponse41` (or `SSLRequest`, which is its first 32 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    /// Capability flags the client chose.
    pub caps: u32,
    /// Max packet size.
    pub max_packet: u32,
    /// Character set.
    pub charset: u8,
    /// User name as sent (raw bytes, not yet checked).
    pub user: Vec<u8>,
    /// Initial database, if any.
    pub database: Option<Vec<u8>>,
    /// Connect attributes block (the bytes after its length), if any.
    pub attrs: Option<Vec<u8>>,
    /// Whether this was only an `SSLRequest`.
    pub ssl_request: bool,
}

impl ClientResponse {
    /// Whether the client is MariaDB Connector/C (`_client_name` = `libmariadb` in its
    /// connect attributes: the `mariadb` and Debian's `mysql` programs). It shows an error
    /// packet with code 2003 or 2013 as "Received malformed packet" (2027), so such
    /// clients get the cause under another code.
    pub fn is_libmariadb(&self) -> bool {
        let Some(attrs) = self.attrs.as_deref() else {
            return false;
        };
        let mut c = Cursor::new(attrs, "connect attributes");
        while !c.is_empty() {
            let (Ok(key), Ok(value)) = (c.lenenc_bytes(), c.lenenc_bytes()) else {
                return false;
            };
            if key == b"_client_name" {
                return value == b"libmariadb";
            }
        }
        false
    }
}

/// Parses the client's first answer. The auth response and plugin name are read and
/// dropped: the proxy signs in with the token, not with what the client sent.
pub fn parse_client_response(payload: &[u8]) -> Result<ClientResponse, PacketError> {
    let mut c = Cursor::new(payload, "handshake response");
    let caps = c.u32()?;
    if caps & caps::PROTOCOL_41 == 0 {
        return Err(PacketError::Malformed(
            "handshake response (the pre-4.1 protocol is not supported)",
        ));
    }
    let max_packet = c.u32()?;
    let charset = c.u8()?;
    c.take(23)?;
    if c.is_empty() && caps & caps::SSL != 0 {
        return Ok(ClientResponse {
            caps,
            max_packet,
            charset,
            user: Vec::new(),
            database: None,
            attrs: None,
            ssl_request: true,
        });
    }
    let user = c.nul_terminated(false)?;
    if user.len() > MAX_USER {
        return Err(PacketError::Malformed(
            "handshake response (user name too long)",
        ));
    }
    if caps & caps::PLUGIN_AUTH_LENENC != 0 {
        c.lenenc_bytes()?;
    } else if caps & caps::SECURE_CONNECTION != 0 {
        let n = usize::from(c.u8()?);
        c.take(n)?;
    } else {
        c.nul_terminated(false)?;
    }
    let database = if caps & caps::CONNECT_WITH_DB != 0 && !c.is_empty() {
        Some(c.nul_terminated(true)?.to_vec())
    } else {
        None
    };
    if caps & caps::PLUGIN_AUTH != 0 && !c.is_empty() {
        c.nul_terminated(true)?;
    }
    let attrs = if caps & caps::CONNECT_ATTRS != 0 && !c.is_empty() {
        let a = c.lenenc_bytes()?;
        if a.len() > MAX_ATTRS {
            return Err(PacketError::Malformed(
                "handshake response (attributes too long)",
            ));
        }
        Some(a.to_vec())
    } else {
        None
    };
    Ok(ClientResponse {
        caps,
        max_packet,
        charset,
        user: user.to_vec(),
        database,
        attrs,
        ssl_request: false,
    })
}

/// The capabilities the proxy asks the server for: what the client chose, within what
/// was offered and what the server has, plus TLS and the auth features the sign-in needs.
pub fn server_caps(client: &ClientResponse, server: u32) -> u32 {
    let wanted = client.caps & caps::OFFERED & server;
    let needed = caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::PLUGIN_AUTH | caps::SSL;
    let mut c = wanted | (needed & server);
    if server & caps::PLUGIN_AUTH_LENENC != 0 {
        c |= caps::PLUGIN_AUTH_LENENC;
    }
    if client.database.is_none() {
        c &= !caps::CONNECT_WITH_DB;
    }
    if client.attrs.is_none() {
        c &= !caps::CONNECT_ATTRS;
    }
    c
}

/// The `SSLRequest` payload.
pub fn ssl_request(caps: u32, client: &ClientResponse) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&caps.to_le_bytes());
    p.extend_from_slice(&client.max_packet.to_le_bytes());
    p.push(client.charset);
    p.extend_from_slice(&[0; 23]);
    p
}

/// The `HandshakeResponse41` payload the proxy sends the server over TLS.
pub fn response(
    caps: u32,
    client: &ClientResponse,
    db_user: &str,
    auth: &[u8],
    plugin: &str,
) -> Result<Vec<u8>, PacketError> {
    let mut p = ssl_request(caps, client);
    p.extend_from_slice(db_user.as_bytes());
    p.push(0);
    if caps & caps::PLUGIN_AUTH_LENENC != 0 {
        put_lenenc(&mut p, auth.len());
    } else {
        let n = u8::try_from(auth.len())
            .map_err(|_| PacketError::Malformed("auth response (server lacks long auth data)"))?;
        p.push(n);
    }
    p.extend_from_slice(auth);
    if let Some(db) = client
        .database
        .as_deref()
        .filter(|_| caps & caps::CONNECT_WITH_DB != 0)
    {
        p.extend_from_slice(db);
        p.push(0);
    }
    if caps & caps::PLUGIN_AUTH != 0 {
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
    }
    if let Some(attrs) = client
        .attrs
        .as_deref()
        .filter(|_| caps & caps::CONNECT_ATTRS != 0)
    {
        put_lenenc(&mut p, attrs.len());
        p.extend_from_slice(attrs);
    }
    Ok(p)
}
