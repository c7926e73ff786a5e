//! The MySQL front end against a protocol-level server written here, for what the tests'
//! MariaDB cannot show: RDS's `mysql_clear_password` (asked for through an auth switch),
//! `caching_sha2_password` full authentication, and a server without TLS; then bad client
//! input (a TLS ClientHello on the plain listener, a packet lying about its length,
//! random bytes) answered with an error packet and a close, never a panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use rds_token_broker::proxy::mysql::auth;
use rds_token_broker::proxy::mysql::packet::{self, caps};
use rds_token_broker::proxy::mysql::{Frontend, SignIn, SignInFailure, SignInSource};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::TlsAcceptor;

use crate::proxy_mysql::{Fixed, err, proxy, raw_sign_in, token};

/// How the fake server signs the proxy in.
#[derive(Clone, Copy)]
pub enum Mode {
    /// Greets with `mysql_native_password`, then switches to `mysql_clear_password`.
    ClearSwitch,
    /// Greets with `caching_sha2_password`, checks the scramble, asks for full auth.
    Sha2Full,
    /// Offers no TLS.
    NoTls,
}

const SCRAMBLE: &[u8; 20] = b"abcdefghij0123456789";

fn greeting(mode: Mode) -> Vec<u8> {
    let mut c = caps::PROTOCOL_41
        | caps::SECURE_CONNECTION
        | caps::PLUGIN_AUTH
        | caps::PLUGIN_AUTH_LENENC
        | caps::LONG_PASSWORD
        | caps::TRANSACTIONS
        | caps::CONNECT_WITH_DB
        | caps::DEPRECATE_EOF;
    if !matches!(mode, Mode::NoTls) {
        c |= caps::SSL;
    }
    let plugin: &[u8] = match mode {
        Mode::Sha2Full => b"caching_sha2_password\0",
        _ => b"mysql_native_password\0",
    };
    let [c0, c1, c2, c3] = c.to_le_bytes();
    let mut p = vec![10];
    p.extend_from_slice(b"8.0.40-fake\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(&SCRAMBLE[..8]);
    p.extend_from_slice(&[0, c0, c1, 45, 2, 0, c2, c3, 21]);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(&SCRAMBLE[8..]);
    p.push(0);
    p.extend_from_slice(plugin);
    p
}

/// A one-connection-at-a-time fake MySQL server; its port and the auth bytes it got.
async fn fake_server(
    mode: Mode,
    ca: (String, String),
) -> (u16, Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    fake_server_with(mode, ca, token).await
}

/// [`fake_server`] whose users' passwords are `password_for(user)`.
pub async fn fake_server_with(
    mode: Mode,
    ca: (String, String),
    password_for: impl Fn(&str) -> String + Send + 'static,
) -> (u16, Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    let (cert, key) = ca;
    let certs = rustls_pki_types::pem::PemObject::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::pem::PemObject::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let got = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            packet::write(&mut tcp, 0, &greeting(mode)).await.unwrap();
            if matches!(mode, Mode::NoTls) {
                // The proxy must not send a handshake response in plaintext.
                let mut rest = Vec::new();
                let _ = tcp.read_to_end(&mut rest).await;
                got.lock().unwrap().push(rest);
                continue;
            }
            let ssl = packet::read(&mut tcp, 1 << 16).await.unwrap();
            assert_eq!((ssl.seq, ssl.payload.len()), (1, 32));
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let hello = packet::read(&mut tls, 1 << 16).await.unwrap();
            assert_eq!(hello.seq, 2);
            // caps(4) max(4) charset(1) filler(23) user NUL, lenenc auth.
            let rest = &hello.payload[32..];
            let nul = rest.iter().position(|b| *b == 0).unwrap();
            let mut c = packet::Cursor::new(&rest[nul + 1..], "auth");
            let first_auth = c.lenenc_bytes().unwrap().to_vec();
            got.lock().unwrap().push(first_auth.clone());
            let user = String::from_utf8(rest[..nul].to_vec()).unwrap();
            let password = password_for(&user);
            let ok = match mode {
                Mode::ClearSwitch => {
                    let mut switch = vec![0xFE];
                    switch.extend_from_slice(b"mysql_clear_password\0");
                    packet::write(&mut tls, 3, &switch).await.unwrap();
                    let clear = packet::read(&mut tls, 1 << 16).await.unwrap();
                    got.lock().unwrap().push(clear.payload.clone());
                    clear.seq == 4 && clear.payload == [password.as_bytes(), b"\0"].concat()
                }
                Mode::Sha2Full => {
                    let fast = first_auth == auth::caching_sha2(password.as_bytes(), SCRAMBLE);
                    packet::write(&mut tls, 3, &[0x01, 0x04]).await.unwrap();
                    let clear = packet::read(&mut tls, 1 << 16).await.unwrap();
                    fast && clear.seq == 4 && clear.payload == [password.as_bytes(), b"\0"].concat()
                }
                Mode::NoTls => unreachable!(),
            };
            if !ok {
                let e = packet::error(1045, "28000", "Access denied for user (fake)");
                packet::write(&mut tls, 5, &e).await.unwrap();
                continue;
            }
            packet::write(&mut tls, 5, &[0, 0, 0, 2, 0, 0, 0])
                .await
                .unwrap();
            // Then answer pings until the proxy closes.
            while let Ok(p) = packet::read(&mut tls, 1 << 16).await {
                if p.payload == [0x0e] {
                    packet::write(&mut tls, 1, &[0, 0, 0, 2, 0, 0, 0])
                        .await
                        .unwrap();
                }
            }
        }
    });
    (port, seen)
}

async fn signed_in_through(mode: Mode) -> (packet::Packet, tokio::net::TcpStream, Vec<Vec<u8>>) {
    let (ca, cert, key) = crate::support::pki::pki("fake-mysql");
    let (port, seen) = fake_server(mode, (cert, key)).await;
    let proxy_port = proxy(Arc::new(Fixed::new(port, &ca)), None).await;
    let (s, answer) = raw_sign_in(proxy_port, "iam_user").await;
    let seen = seen.lock().unwrap().clone();
    (answer, s, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn rds_cleartext_sign_in_answers_the_auth_switch_with_the_token_over_tls() {
    let (answer, mut s, seen) = signed_in_through(Mode::ClearSwitch).await;
    assert_eq!(
        (answer.seq, answer.payload[0]),
        (2, 0x00),
        "{:?}",
        String::from_utf8_lossy(&answer.payload)
    );
    // First a native-password answer to the greeting (20 bytes), then the token in clear.
    assert_eq!(seen[0].len(), 20);
    assert_eq!(seen[1], [token("iam_user").as_bytes(), b"\0"].concat());
    packet::write(&mut s, 0, &[0x0e]).await.unwrap();
    let pong = packet::read(&mut s, 1 << 16).await.unwrap();
    assert_eq!((pong.seq, pong.payload[0]), (1, 0x00));
}

#[tokio::test(flavor = "multi_thread")]
async fn caching_sha2_fast_scramble_and_full_auth_both_carry_the_token() {
    let (answer, _s, seen) = signed_in_through(Mode::Sha2Full).await;
    assert_eq!(
        (answer.seq, answer.payload[0]),
        (2, 0x00),
        "{:?}",
        String::from_utf8_lossy(&answer.payload)
    );
    assert_eq!(
        seen[0],
        auth::caching_sha2(token("iam_user").as_bytes(), SCRAMBLE)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_tls_gets_no_token_and_the_client_gets_2003() {
    let (answer, _s, _) = signed_in_through(Mode::NoTls).await;
    let (code, message) = err(&answer);
    assert_eq!((answer.seq, code), (2, 2003));
    assert!(
        message.contains("does not offer TLS")
            && message.contains("never sends a token in plaintext"),
        "{message}"
    );
}

/// Counts sign-ins; never succeeds.
#[derive(Default)]
struct Counting(AtomicUsize);

impl SignInSource for Counting {
    fn sign_in<'a>(
        &'a self,
        _: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<SignIn, SignInFailure>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            Err(SignInFailure {
                kind: rds_token_broker::proxy::mysql::FailureKind::Other,
                message: "test".into(),
            })
        })
    }
}

/// Sends `bytes` as the client's whole first answer; returns what the proxy wrote after
/// its greeting (it must have closed).
async fn answer_to(bytes: &[u8], source: &Counting) -> Vec<u8> {
    let fe = Frontend::new(None, Duration::from_secs(5));
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let serving = fe.serve(server, source);
    let talking = async {
        packet::read(&mut client, 1 << 16).await.unwrap();
        let _ = client.write_all(bytes).await;
        let _ = client.shutdown().await;
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest).await;
        rest
    };
    let (result, rest) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(serving, talking)
    })
    .await
    .expect("the proxy ends a bad connection");
    assert!(result.is_err());
    rest
}

#[tokio::test]
async fn a_tls_client_hello_or_a_lying_length_gets_an_error_packet_and_a_close() {
    let source = Counting::default();
    let hello = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let mut lying = vec![0xff, 0xff, 0x0f, 1];
    lying.extend_from_slice(&[0x41; 100]);
    for bytes in [&hello[..], &lying[..]] {
        let rest = answer_to(bytes, &source).await;
        let p = packet::read(&mut &rest[..], 1 << 16).await.unwrap();
        let (code, message) = err(&p);
        assert_eq!((p.seq, code), (2, 1043), "{message}");
        assert!(message.contains("over the 16384-byte limit"), "{message}");
    }
    // A short packet that claims more than it holds: the close ends it, no sign-in.
    let rest = answer_to(&[0x40, 0, 0, 1, 1, 2, 3], &source).await;
    assert!(rest.is_empty());
    assert_eq!(source.0.load(Ordering::SeqCst), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_client_bytes_never_panic_and_get_at_most_an_error_packet(bytes in proptest::collection::vec(any::<u8>(), 0..600), len_ok in any::<bool>()) {
        // Half the cases get a valid header for their payload, so the parser sees them.
        let mut input = bytes.clone();
        if len_ok {
            let n = bytes.len() as u32;
            input = [&n.to_le_bytes()[..3], &[1], &bytes[..]].concat();
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let source = Counting::default();
        let rest = rt.block_on(answer_to(&input, &source));
        // Either nothing (closed) or one error packet, never more than a few hundred bytes.
        prop_assert!(rest.len() < 600);
        if !rest.is_empty() && source.0.load(Ordering::SeqCst) == 0 {
            prop_assert_eq!(rest[4], 0xFF);
        }
    }
}
