//! The proxy's side of a PostgreSQL connection: TCP to the real server, `SSLRequest`,
//! TLS with full verification (a server answering `N` is an error, never plaintext), the
//! StartupMessage, and the password exchange with the token: cleartext (what RDS asks
//! for), MD5, or SCRAM-SHA-256 (postgres-protocol's client).

use std::time::Duration;

use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use secrecy::ExposeSecret as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::wire;
use crate::proxy::signin::{SignIn, SignInError, refusal_hints};

/// A TLS connection to the real server.
pub type ServerIo = TlsStream<TcpStream>;

/// How long connecting and TLS to the database may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why sign-in to the server failed.
#[derive(Debug)]
pub enum Failure {
    /// The proxy's own explanation (the client gets 28000/08001 with it).
    SignIn(SignInError),
    /// The server's own ErrorResponse that is not about the password (a missing
    /// database, too many connections): relayed to the client as it is.
    Server(Vec<u8>),
}

impl From<SignInError> for Failure {
    fn from(e: SignInError) -> Self {
        Self::SignIn(e)
    }
}

fn addr(s: &SignIn) -> String {
    format!("{}:{}", s.host, s.port)
}

fn protocol(s: &SignIn, cause: impl std::fmt::Display) -> SignInError {
    SignInError::Protocol {
        addr: addr(s),
        cause: cause.to_string(),
    }
}

/// TCP, then `SSLRequest` and a verified TLS handshake.
pub async fn connect_tls(s: &SignIn) -> Result<ServerIo, SignInError> {
    let target = addr(s);
    let work = async {
        let mut tcp = TcpStream::connect((s.host.as_str(), s.port))
            .await
            .map_err(|e| SignInError::DatabaseUnreachable {
                addr: target.clone(),
                cause: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        tcp.write_all(&wire::untyped(&80_877_103u32.to_be_bytes()))
            .await
            .map_err(|e| protocol(s, e))?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer)
            .await
            .map_err(|e| protocol(s, e))?;
        if answer != [b'S'] {
            return Err(SignInError::DatabaseRefusedTls(target.clone()));
        }
        let connector = tokio_rustls::TlsConnector::from(s.tls.clone());
        connector
            .connect(s.server_name.clone(), tcp)
            .await
            .map_err(|e| SignInError::Tls {
                addr: target.clone(),
                cause: tls_cause(&e),
            })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            Err(SignInError::DatabaseUnreachable {
                addr: target.clone(),
                cause: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            })
        })
}

fn tls_cause(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => format!("invalid certificate: {c:?}"),
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

/// Connects, sends the startup with `params` and answers the password request with the
/// token. Returns the stream right after `AuthenticationOk` (which the client still needs).
pub async fn sign_in(
    s: &SignIn,
    version: u32,
    params: &[(String, String)],
) -> Result<ServerIo, Failure> {
    let mut io = connect_tls(s).await?;
    let io_err = |e: std::io::Error| Failure::SignIn(protocol(s, e));
    io.write_all(&wire::startup(version, params))
        .await
        .map_err(io_err)?;
    let mut scram: Option<ScramSha256> = None;
    loop {
        let (tag, body) = wire::read_typed(&mut io, wire::MAX_MESSAGE)
            .await
            .map_err(io_err)?;
        match tag {
            b'R' => {
                let (code, rest) = body
                    .split_first_chunk::<4>()
                    .map(|(c, r)| (u32::from_be_bytes(*c), r))
                    .ok_or_else(|| protocol(s, "short authentication request"))?;
                match code {
                    0 => return Ok(io),
                    3 => {
                        let mut pw = s.token.expose_secret().as_bytes().to_vec();
                        pw.push(0);
                        io.write_all(&wire::typed(b'p', &pw))
                            .await
                            .map_err(io_err)?;
                    }
                    5 => {
                        let salt: [u8; 4] = rest
                            .get(..4)
                            .and_then(|b| b.try_into().ok())
                            .ok_or_else(|| protocol(s, "short MD5 salt"))?;
                        let hash = postgres_protocol::authentication::md5_hash(
                            s.db_user.as_bytes(),
                            s.token.expose_secret().as_bytes(),
                            salt,
                        );
                        let mut pw = hash.into_bytes();
                        pw.push(0);
                        io.write_all(&wire::typed(b'p', &pw))
                            .await
                            .map_err(io_err)?;
                    }
                    10 => {
                        let offered = mechanisms(rest);
                        if !offered.iter().any(|m| m == SCRAM_SHA_256) {
                            return Err(protocol(
                                s,
                                format!("the server offers no SASL mechanism the proxy speaks ({offered:?})"),
                            )
                            .into());
                        }
                        let client = ScramSha256::new(
                            s.token.expose_secret().as_bytes(),
                            ChannelBinding::unsupported(),
                        );
                        let first = client.message().to_vec();
                        let mut msg = SCRAM_SHA_256.as_bytes().to_vec();
                        msg.push(0);
                        msg.extend(i32::try_from(first.len()).unwrap_or(0).to_be_bytes());
                        msg.extend(first);
                        io.write_all(&wire::typed(b'p', &msg))
                            .await
                            .map_err(io_err)?;
                        scram = Some(client);
                    }
                    11 => {
                        let client = scram
                            .as_mut()
                            .ok_or_else(|| protocol(s, "SASLContinue before SASL"))?;
                        client
                            .update(rest)
                            .map_err(|e| protocol(s, format!("SCRAM: {e}")))?;
                        let answer = client.message().to_vec();
                        io.write_all(&wire::typed(b'p', &answer))
                            .await
                            .map_err(io_err)?;
                    }
                    12 => {
                        let mut client = scram
                            .take()
                            .ok_or_else(|| protocol(s, "SASLFinal before SASL"))?;
                        client
                            .finish(rest)
                            .map_err(|e| protocol(s, format!("SCRAM server proof: {e}")))?;
                    }
                    other => {
                        return Err(protocol(
                            s,
                            format!("the server asks for authentication method {other}, which the proxy does not speak"),
                        )
                        .into());
                    }
                }
            }
            b'E' => return Err(refused(s, tag, &body)),
            b'N' | b'v' => {} // notices and NegotiateProtocolVersion before auth: ignored
            other => {
                return Err(protocol(
                    s,
                    format!(
                        "unexpected message '{}' before authentication",
                        other.escape_ascii()
                    ),
                )
                .into());
            }
        }
    }
}

fn mechanisms(mut rest: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some((m, after)) = wire::cstr(rest) {
        if m.is_empty() {
            break;
        }
        out.push(m.to_owned());
        rest = after;
    }
    out
}

/// An ErrorResponse during sign-in: an authentication failure (SQLSTATE class 28)
/// becomes the proxy's explanation with hints; anything else is the server's own.
fn refused(s: &SignIn, tag: u8, body: &[u8]) -> Failure {
    let fields = wire::fields(body);
    let get = |t: u8| {
        fields
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.as_str())
    };
    let code = get(b'C').unwrap_or("");
    if code.starts_with("28") {
        return Failure::SignIn(SignInError::DatabaseRefused {
            db_user: s.db_user.clone(),
            message: crate::domain::text::cleaned(
                get(b'M').unwrap_or("authentication failed"),
                500,
            ),
            hints: refusal_hints(s.engine, &s.target, &s.db_user),
        });
    }
    Failure::Server(wire::typed(tag, body))
}

/// Sends a CancelRequest for (`pid`, `secret`) to the server of `s`, over TLS.
pub async fn cancel(s: &SignIn, pid: i32, secret: &[u8]) -> Result<(), SignInError> {
    let mut io = connect_tls(s).await?;
    let mut body = 80_877_102u32.to_be_bytes().to_vec();
    body.extend(pid.to_be_bytes());
    body.extend_from_slice(secret);
    io.write_all(&wire::untyped(&body))
        .await
        .map_err(|e| protocol(s, e))?;
    let _ = io.shutdown().await;
    Ok(())
}
