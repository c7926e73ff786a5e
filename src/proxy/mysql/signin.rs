//! The sign-in half of a connection: greet the client, read its handshake, get a token,
//! sign in to the real server over TLS, pass its OK on.

use secrecy::ExposeSecret as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::auth;
use super::error::{MysqlError, server_error};
use super::handshake::{self, ClientResponse};
use super::packet::{self, PacketError, caps};
use super::source::{SignIn, SignInSource};
use super::{CLIENT_HANDSHAKE_LIMIT, Frontend};
use crate::domain::text;

/// The largest packet read from the server during sign-in.
const SERVER_HANDSHAKE_LIMIT: usize = 64 * 1024;
/// Auth round trips allowed (switch, more data, ...).
const MAX_ROUNDS: usize = 4;
/// The sequence id of the proxy's answer to the client's handshake response.
const CLIENT_REPLY_SEQ: u8 = 2;

/// Where to send a failure's error packet: its sequence id, and whether the client is
/// MariaDB Connector/C (see [`MysqlError::packet`]).
pub(super) type Reply = Option<(u8, bool)>;

/// A failure, with where to send its error packet (`None`: no packet).
type Failed = (Reply, MysqlError);

/// Greets, signs in; returns the server connection and the DB user.
pub(super) async fn sign_in<C>(
    fe: &Frontend,
    client: &mut C,
    source: &dyn SignInSource,
    id: u32,
) -> Result<(TlsStream<TcpStream>, String), Failed>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let reply = Some((CLIENT_REPLY_SEQ, false));
    let scramble = scramble();
    let greeting = handshake::greeting(&fe.version(), id, &scramble);
    packet::write(client, 0, &greeting)
        .await
        .map_err(|e| (None, MysqlError::Client(e.into())))?;
    let answer = match packet::read(client, CLIENT_HANDSHAKE_LIMIT).await {
        Ok(p) => p,
        Err(PacketError::Io(e)) => return Err((None, MysqlError::Client(e.into()))),
        Err(e) => return Err((reply, MysqlError::Client(e))),
    };
    let hello = handshake::parse_client_response(&answer.payload)
        .map_err(|e| (reply, MysqlError::Client(e)))?;
    let reply = Some((CLIENT_REPLY_SEQ, hello.is_libmariadb()));
    if hello.ssl_request {
        return Err((reply, MysqlError::ClientTls));
    }
    let db_user = match &fe.db_user {
        Some(u) => u.clone(),
        None => client_user(&hello).map_err(|e| (reply, MysqlError::Client(e)))?,
    };
    let signin = source
        .sign_in(&db_user)
        .await
        .map_err(|f| (reply, MysqlError::Token(f)))?;
    let server = connect(fe, &signin, &hello).await.map_err(|e| (reply, e))?;
    let (server, ok) = server;
    packet::write(client, CLIENT_REPLY_SEQ, &ok)
        .await
        .map_err(|e| (None, MysqlError::Client(e.into())))?;
    tracing::info!(db_user = %signin.db_user, host = %signin.host, port = signin.port, "mysql client signed in");
    Ok((server, signin.db_user))
}

/// The client's user name, checked: UTF-8, no control characters, not empty.
fn client_user(hello: &ClientResponse) -> Result<String, PacketError> {
    let user = std::str::from_utf8(&hello.user)
        .map_err(|_| PacketError::Malformed("handshake response (user name is not UTF-8)"))?;
    if user.is_empty() || user.chars().any(text::is_unsafe) {
        return Err(PacketError::Malformed(
            "handshake response (user name empty or with control characters)",
        ));
    }
    Ok(user.to_owned())
}

/// 20 random printable bytes (a scramble must hold no NUL).
fn scramble() -> [u8; 20] {
    let mut s = [0u8; 20];
    // A failed fill leaves zeros, mapped to printable bytes below; the client's
    // answer to this scramble is ignored anyway.
    let _ = aws_lc_rs::rand::fill(&mut s);
    for b in &mut s {
        *b = 0x21 + *b % 94;
    }
    s
}

/// Connects to the server, upgrades to TLS, signs in; returns the stream and the OK
/// packet's payload.
async fn connect(
    fe: &Frontend,
    signin: &SignIn,
    hello: &ClientResponse,
) -> Result<(TlsStream<TcpStream>, Vec<u8>), MysqlError> {
    let target = format!("{}:{}", signin.host, signin.port);
    let mut tcp = TcpStream::connect((signin.host.as_str(), signin.port))
        .await
        .map_err(|source| MysqlError::Connect {
            target: target.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let first = packet::read(&mut tcp, SERVER_HANDSHAKE_LIMIT)
        .await
        .map_err(MysqlError::Server)?;
    if first.payload.first() == Some(&0xFF) {
        let (code, message) = server_error(&first.payload);
        return Err(MysqlError::ServerError { code, message });
    }
    let greeting = handshake::parse_server_greeting(&first.payload).map_err(MysqlError::Server)?;
    fe.learn_version(&greeting.version);
    if greeting.caps & caps::SSL == 0 {
        return Err(MysqlError::NoTls(target));
    }
    let caps = handshake::server_caps(hello, greeting.caps);
    packet::write(&mut tcp, 1, &handshake::ssl_request(caps, hello))
        .await
        .map_err(|e| MysqlError::Server(e.into()))?;
    let name = rustls_pki_types::ServerName::try_from(signin.server_name.clone()).map_err(|e| {
        MysqlError::Tls {
            target: target.clone(),
            detail: format!("{:?} is not a valid server name: {e}", signin.server_name),
        }
    })?;
    let mut tls = TlsConnector::from(signin.tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| MysqlError::Tls {
            target: target.clone(),
            detail: tls_detail(&e),
        })?;
    let password = signin.token.expose_secret().as_bytes();
    let (mut plugin, auth_data) =
        match auth::response(&greeting.plugin, password, &greeting.scramble) {
            Some(r) => (greeting.plugin.clone(), r),
            // An unknown default: answer as native; the server switches to the user's plugin.
            None => (
                auth::NATIVE.to_owned(),
                auth::native(password, &greeting.scramble),
            ),
        };
    let resp = handshake::response(caps, hello, &signin.db_user, &auth_data, &plugin)
        .map_err(MysqlError::Server)?;
    packet::write(&mut tls, 2, &resp)
        .await
        .map_err(|e| MysqlError::Server(e.into()))?;
    for _ in 0..MAX_ROUNDS {
        let p = packet::read(&mut tls, SERVER_HANDSHAKE_LIMIT)
            .await
            .map_err(MysqlError::Server)?;
        let seq = p.seq.wrapping_add(1);
        let mut c = packet::Cursor::new(&p.payload, "auth packet");
        match c.u8().map_err(MysqlError::Server)? {
            0x00 => return Ok((tls, p.payload)),
            0xFF => {
                let (code, message) = server_error(&p.payload);
                return Err(match code {
                    1045 | 1698 => MysqlError::Refused {
                        db_user: signin.db_user.clone(),
                        message,
                    },
                    _ => MysqlError::ServerError { code, message },
                });
            }
            0xFE => {
                let name = c.nul_terminated(true).map_err(MysqlError::Server)?;
                plugin = text::cleaned(&String::from_utf8_lossy(name), 64);
                let data = c.rest();
                let data = data.strip_suffix(&[0]).unwrap_or(data);
                let answer = auth::response(&plugin, password, data)
                    .ok_or_else(|| MysqlError::Plugin(plugin.clone()))?;
                packet::write(&mut tls, seq, &answer)
                    .await
                    .map_err(|e| MysqlError::Server(e.into()))?;
            }
            0x01 if plugin == auth::CACHING_SHA2 => match c.u8().map_err(MysqlError::Server)? {
                // Fast auth succeeded: the OK follows.
                3 => {}
                // Full auth: over TLS, the password goes in clear, NUL-terminated.
                4 => {
                    let answer = auth::response(auth::CLEAR, password, &[]).unwrap_or_default();
                    packet::write(&mut tls, seq, &answer)
                        .await
                        .map_err(|e| MysqlError::Server(e.into()))?;
                }
                _ => return Err(MysqlError::Plugin(plugin)),
            },
            _ => return Err(MysqlError::Plugin(plugin)),
        }
    }
    Err(MysqlError::Server(PacketError::Malformed(
        "sign-in (too many auth round trips)",
    )))
}

/// What a TLS failure means, in words: the certificate error when there is one.
fn tls_detail(e: &std::io::Error) -> String {
    let inner = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .map(ToString::to_string);
    text::cleaned(&inner.unwrap_or_else(|| e.to_string()), text::LONG)
}
