//! The MySQL / MariaDB front end of `rds-token-broker proxy` against a real MariaDB the
//! tests start (TLS from a test CA, a user whose password is the token): the `mariadb`
//! client and PyMySQL run queries through it; refusals, token failures and a wrong CA
//! come back as MySQL error packets that name the cause; `COM_CHANGE_USER` is refused.
//! The cleartext and `caching_sha2_password` sign-ins and a server without TLS are
//! covered by [`proxy_mysql_protocol`](super::proxy_mysql_protocol), against a
//! protocol-level server (MariaDB's cleartext path needs PAM set up on the machine).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use rds_token_broker::proxy::mysql::packet::{self, caps};
use rds_token_broker::proxy::mysql::{FailureKind, Frontend, SignIn, SignInFailure, SignInSource};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tokio::net::TcpStream;

use crate::support::mariadb::{self, program};

/// A token shaped like a real one (about 1 KB, URL-encoded query), unique per user.
pub fn token(user: &str) -> String {
    format!(
        "127.0.0.1:3306/?Action=connect&DBUser={user}&X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=ASIAEXAMPLE%2F20261125%2Fus-east-1%2Frds-db%2Faws4_request\
         &X-Amz-Date=20261125T200000Z&X-Amz-Expires=900&X-Amz-Security-Token={}\
         &X-Amz-SignedHeaders=host&X-Amz-Signature={}",
        "IQoJb3JpZ2luX2VjEXAMPLE%2B%2F".repeat(24),
        "0123456789abcdef".repeat(4)
    )
}

/// rustls trusting only `ca_pem`.
pub fn trusting(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Hands out one fixed sign-in (for whatever user is asked: it records them).
pub struct Fixed {
    pub port: u16,
    pub tls: Arc<rustls::ClientConfig>,
    pub token_for: fn(&str) -> String,
    pub asked: std::sync::Mutex<Vec<String>>,
}

impl SignInSource for Fixed {
    fn sign_in<'a>(&'a self, db_user: &'a str) -> BoxFuture<'a, Result<SignIn, SignInFailure>> {
        self.asked.lock().unwrap().push(db_user.to_owned());
        let s = SignIn {
            host: "127.0.0.1".into(),
            port: self.port,
            server_name: "localhost".into(),
            tls: self.tls.clone(),
            db_user: db_user.to_owned(),
            token: (self.token_for)(db_user).into(),
        };
        Box::pin(async move { Ok(s) })
    }
}

impl Fixed {
    pub fn new(port: u16, ca_pem: &str) -> Self {
        Self {
            port,
            tls: trusting(ca_pem),
            token_for: |u| token(u),
            asked: Default::default(),
        }
    }
}

/// Always fails, counting calls.
struct Failing(SignInFailure, AtomicUsize);

impl SignInSource for Failing {
    fn sign_in<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<SignIn, SignInFailure>> {
        self.1.fetch_add(1, Ordering::SeqCst);
        let f = self.0.clone();
        Box::pin(async move { Err(f) })
    }
}

/// A proxy listener on a free loopback port serving `source`; its port.
pub async fn proxy(source: Arc<dyn SignInSource>, db_user: Option<&str>) -> u16 {
    let fe = Arc::new(Frontend::new(
        db_user.map(str::to_owned),
        Duration::from_secs(20),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (fe, source) = (fe.clone(), source.clone());
            tokio::spawn(async move { fe.serve(conn, &*source).await });
        }
    });
    port
}

/// `mariadb` through the proxy on `port` as `user`, running `sql`: (ok, stdout, stderr).
pub async fn client(port: u16, user: &str, extra: &[&str], sql: &str) -> (bool, String, String) {
    let out = tokio::process::Command::new(program("mariadb"))
        .arg("--no-defaults")
        .args(["-h", "127.0.0.1", "-P", &port.to_string(), "-u", user])
        .args(["--batch", "--skip-column-names", "--skip-ssl"])
        .args(extra)
        .args(["-e", sql])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads the proxy's greeting and sends a minimal `HandshakeResponse41` (no password) as
/// `user`: returns the stream and the proxy's answer.
pub async fn raw_sign_in(port: u16, user: &str) -> (TcpStream, packet::Packet) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let greeting = packet::read(&mut s, 1 << 16).await.unwrap();
    assert_eq!(greeting.payload[0], 10, "protocol 10 greeting");
    let c = caps::PROTOCOL_41
        | caps::SECURE_CONNECTION
        | caps::PLUGIN_AUTH
        | caps::PLUGIN_AUTH_LENENC
        | caps::LONG_PASSWORD
        | caps::TRANSACTIONS;
    let mut p = c.to_le_bytes().to_vec();
    p.extend_from_slice(&(1u32 << 24).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user.as_bytes());
    p.extend_from_slice(&[0, 0]); // user NUL, empty auth data
    p.extend_from_slice(b"mysql_native_password\0");
    packet::write(&mut s, 1, &p).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(30), packet::read(&mut s, 1 << 16))
        .await
        .unwrap()
        .unwrap();
    (s, answer)
}

/// An error packet's (code, message).
pub fn err(p: &packet::Packet) -> (u16, String) {
    assert_eq!(
        p.payload[0],
        0xFF,
        "an error packet: {:?}",
        String::from_utf8_lossy(&p.payload)
    );
    let code = u16::from_le_bytes([p.payload[1], p.payload[2]]);
    (code, String::from_utf8_lossy(&p.payload[9..]).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mariadb_client_runs_queries_signed_in_with_the_token_over_verified_tls() {
    let db = mariadb::server().await;
    db.user("app_native", &token("app_native")).await;
    let source = Arc::new(Fixed::new(db.port, &db.ca_pem));
    let port = proxy(source.clone(), None).await;
    // No password, or a wrong one: the proxy ignores it and signs in with the token.
    for extra in [&[][..], &["--password=not-the-token"][..]] {
        let (ok, out, errs) = client(
            port,
            "app_native",
            extra,
            "SELECT current_user(), 6*7; SHOW SESSION STATUS LIKE 'Ssl_version';",
        )
        .await;
        assert!(ok, "{errs}");
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("app_native@%\t42"));
        let tls = lines.next().unwrap();
        assert!(
            tls.starts_with("Ssl_version\tTLSv1."),
            "the server side is TLS: {tls}"
        );
    }
    assert_eq!(*source.asked.lock().unwrap(), ["app_native", "app_native"]);
    // The greeting of later connections carries the real server's version.
    let (ok, out, errs) = client(port, "app_native", &[], "SELECT @@version").await;
    assert!(ok && out.contains("MariaDB"), "{out}{errs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn db_user_overrides_the_user_the_client_names() {
    let db = mariadb::server().await;
    db.user("app_fixed", &token("app_fixed")).await;
    let source = Arc::new(Fixed::new(db.port, &db.ca_pem));
    let port = proxy(source.clone(), Some("app_fixed")).await;
    let (ok, out, errs) = client(port, "someone_else", &[], "SELECT current_user()").await;
    assert!(ok, "{errs}");
    assert_eq!(out.trim(), "app_fixed@%");
    assert_eq!(*source.asked.lock().unwrap(), ["app_fixed"]);
}

fn python() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

/// PyMySQL's (code, message) when connecting through the proxy on `port` fails.
async fn pymysql_error(port: u16) -> (String, String) {
    let script = "import pymysql, sys\n\
        try:\n    pymysql.connect(host='127.0.0.1', port=int(sys.argv[1]), user='app')\n\
        except pymysql.err.MySQLError as e:\n    print(e.args[0]); print(e.args[1])\n";
    let out = tokio::process::Command::new(python())
        .args(["-c", script, &port.to_string()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, message) = stdout.split_once('\n').unwrap_or_default();
    (code.to_owned(), message.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn pymysql_runs_queries_through_the_proxy() {
    let db = mariadb::server().await;
    db.user("app_py", &token("app_py")).await;
    let port = proxy(Arc::new(Fixed::new(db.port, &db.ca_pem)), None).await;
    let python = python();
    let script = "import pymysql, sys\n\
        c = pymysql.connect(host='127.0.0.1', port=int(sys.argv[1]), user='app_py')\n\
        cur = c.cursor()\n\
        cur.execute('SELECT current_user(), %s + 1', (41,))\n\
        print(cur.fetchone())\n\
        cur.execute('SELECT REPEAT(%s, 200000)', ('x',))\n\
        print(len(cur.fetchone()[0]))\n\
        c.close()\n";
    let out = tokio::process::Command::new(&python)
        .args(["-c", script, &port.to_string()])
        .output()
        .await
        .unwrap_or_else(|e| panic!("{} ({e}): scripts/test makes the venv", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "('app_py@%', 42)\n200000\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_is_error_1045_with_the_usual_causes() {
    let db = mariadb::server().await;
    db.user("app_other_pw", "a-different-password").await;
    let port = proxy(Arc::new(Fixed::new(db.port, &db.ca_pem)), None).await;
    let (ok, _, errs) = client(port, "app_other_pw", &[], "SELECT 1").await;
    assert!(!ok);
    assert!(errs.contains("ERROR 1045 (28000)"), "{errs}");
    for hint in [
        "Access denied",
        "IAM database authentication",
        "AWSAuthenticationPlugin",
        "rds-db:connect",
    ] {
        assert!(errs.contains(hint), "{hint}: {errs}");
    }
    assert!(!errs.contains("X-Amz-Signature"), "no token in errors");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_certificate_from_another_ca_or_name_is_refused_saying_why() {
    let db = mariadb::server().await;
    let (other_ca, _, _) = crate::support::pki::pki("other");
    let port = proxy(Arc::new(Fixed::new(db.port, &other_ca)), None).await;
    let (ok, _, errs) = client(port, "anyone", &[], "SELECT 1").await;
    assert!(!ok);
    assert!(errs.contains("ERROR 2000 (HY000)"), "{errs}");
    assert!(
        errs.contains("TLS to 127.0.0.1:") && errs.contains("UnknownIssuer"),
        "{errs}"
    );
    // A name the certificate does not carry.
    let source = Arc::new(WrongName(Fixed::new(db.port, &db.ca_pem)));
    let port = proxy(source, None).await;
    let (_, _, errs) = client(port, "anyone", &[], "SELECT 1").await;
    assert!(
        errs.contains("ERROR 2000")
            && errs.contains("certificate not valid for name \"db.example.internal\""),
        "{errs}"
    );
}

/// Signs in expecting a server name the test certificate does not carry.
struct WrongName(Fixed);

impl SignInSource for WrongName {
    fn sign_in<'a>(&'a self, db_user: &'a str) -> BoxFuture<'a, Result<SignIn, SignInFailure>> {
        Box::pin(async move {
            let mut s = self.0.sign_in(db_user).await?;
            s.server_name = "db.example.internal".into();
            Ok(s)
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_failures_are_a_cannot_connect_error_naming_the_cause() {
    let cases = [
        (
            FailureKind::BrokerUnreachable,
            "the broker at https://127.0.0.1:9 is unreachable (connection refused)",
            "unreachable",
        ),
        (
            FailureKind::Throttled(Some(Duration::from_secs(7))),
            "429: 10 tokens per minute",
            "Retry in 7 s.",
        ),
    ];
    for (kind, message, expected) in cases {
        let failing = Arc::new(Failing(
            SignInFailure {
                kind,
                message: message.into(),
            },
            AtomicUsize::new(0),
        ));
        let port = proxy(failing.clone(), None).await;
        let (ok, _, errs) = client(port, "app", &[], "SELECT 1").await;
        assert!(!ok);
        assert!(
            errs.contains("ERROR 2000 (HY000)") && errs.contains("no token from the broker"),
            "{errs}"
        );
        assert!(errs.contains(expected), "{expected}: {errs}");
        // Other drivers (PyMySQL here) get 2003, "cannot connect", with the same text.
        let (code, message) = pymysql_error(port).await;
        assert_eq!(code, "2003", "{message}");
        assert!(message.contains(expected), "{message}");
        assert_eq!(failing.1.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_refusals_of_the_caller_are_error_1045() {
    let failing = Arc::new(Failing(
        SignInFailure {
            kind: FailureKind::Forbidden,
            message: "403: not allowed to become app on orders-db".into(),
        },
        AtomicUsize::new(0),
    ));
    let port = proxy(failing, None).await;
    let (ok, _, errs) = client(port, "app", &[], "SELECT 1").await;
    assert!(!ok);
    assert!(
        errs.contains("ERROR 1045 (28000)")
            && errs.contains("not allowed to become app on orders-db"),
        "{errs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn com_change_user_gets_an_error_packet_and_the_connection_goes_on() {
    let db = mariadb::server().await;
    db.user("app_cu", &token("app_cu")).await;
    let port = proxy(Arc::new(Fixed::new(db.port, &db.ca_pem)), None).await;
    let (mut s, ok) = raw_sign_in(port, "app_cu").await;
    assert_eq!(
        (ok.seq, ok.payload[0]),
        (2, 0x00),
        "OK with the client's sequence id"
    );
    let mut change = vec![0x11];
    change.extend_from_slice(b"root\0\0");
    packet::write(&mut s, 0, &change).await.unwrap();
    let answer = packet::read(&mut s, 1 << 16).await.unwrap();
    let (code, message) = err(&answer);
    assert_eq!((answer.seq, code), (1, 1235));
    assert!(
        message.contains("COM_CHANGE_USER is not supported"),
        "{message}"
    );
    // COM_PING still reaches the server.
    packet::write(&mut s, 0, &[0x0e]).await.unwrap();
    let pong = packet::read(&mut s, 1 << 16).await.unwrap();
    assert_eq!((pong.seq, pong.payload[0]), (1, 0x00));
}
