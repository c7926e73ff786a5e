//! `rds-token-broker proxy` with PostgreSQL: the real binary between psql (and drivers)
//! and a private PostgreSQL that signs in like RDS (TLS with a test CA, `hostssl ...
//! password`), the DB users' passwords set to the tokens the in-process broker serves
//! (deterministic: the broker's clock is frozen).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::app::TestApp;
use crate::support::binary;
use crate::support::config::{BrokerToml, Target};
use crate::support::pg_tls::{self, Method, TlsPg};

/// A running `proxy` child process.
pub struct Proxy {
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// The listener addresses, in --listen order.
    pub addrs: Vec<String>,
    _home: tempfile::TempDir,
}

impl Proxy {
    /// Starts `proxy --broker BASE ARGS...` and waits for `listeners` listening lines.
    pub fn start(broker: &str, args: &[&str], listeners: usize) -> Self {
        let home = tempfile::tempdir().unwrap();
        let mut child = binary::command(home.path())
            .args(["proxy", "--broker", broker, "--k8s-token-file"])
            .arg(home.path().join("no-k8s-token"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        let buf = stderr.clone();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if let Some(i) = line.find("proxy listening on ") {
                    let addr: String = line[i + 19..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(addr);
                }
                buf.lock().unwrap().push_str(&line);
                buf.lock().unwrap().push('\n');
            }
        });
        let mut addrs = Vec::new();
        for _ in 0..listeners {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(a) => addrs.push(a),
                Err(_) => {
                    let _ = child.kill();
                    panic!("proxy did not start:\n{}", stderr.lock().unwrap());
                }
            }
        }
        Self {
            child,
            stderr,
            addrs,
            _home: home,
        }
    }

    pub fn port(&self) -> u16 {
        self.addrs[0].rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- the proxy's stderr ----\n{}", self.logs());
        }
    }
}

/// A broker whose clock is now, with target `orders` on the TLS PostgreSQL for `users`.
pub async fn broker(pg: &TlsPg, users: &[&str]) -> TestApp {
    let target = Target::postgres("orders")
        .region("eu-west-1")
        .host("localhost")
        .port(i64::from(pg.port))
        .db_users(users.iter().copied());
    let app = TestApp::spawn_toml(BrokerToml::unauthenticated().target(target)).await;
    app.clock.set(SystemTime::now());
    app
}

/// The token the broker serves for `user` now.
pub async fn token(app: &TestApp, user: &str) -> String {
    let t = app
        .token(json!({"target": "orders", "db_user": user}))
        .await;
    t["token"].as_str().unwrap().to_owned()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// Runs `psql -Atc SQL` through the proxy as `user` with no password: (ok, stdout+stderr).
async fn psql(port: u16, user: &str, sql: &str) -> (bool, String) {
    let out = tokio::process::Command::new("psql")
        .args([
            "-X",
            "-w",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
            &format!("host=127.0.0.1 port={port} user={user} dbname=postgres sslmode=disable connect_timeout=20"),
        ])
        .env_remove("PGPASSWORD")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn proxied(pg: &TlsPg, users: &[(&str, Method)]) -> (TestApp, Proxy) {
    let names: Vec<&str> = users.iter().map(|(u, _)| *u).collect();
    let app = broker(pg, &names).await;
    for (u, m) in users {
        pg.user(u, *m, &token(&app, u).await).await;
    }
    let proxy = Proxy::start(
        &app.base,
        &[
            "--listen",
            "orders=127.0.0.1:0",
            "--db-ca-file",
            pg.ca_file.to_str().unwrap(),
        ],
        1,
    );
    (app, proxy)
}

#[tokio::test]
async fn psql_runs_queries_through_the_proxy_with_cleartext_md5_and_scram() {
    let pg = pg_tls::server().await;
    let (pw, md5, scram) = (unique("pw"), unique("md5"), unique("scram"));
    let (app, proxy) = proxied(
        pg,
        &[
            (&pw, Method::Password),
            (&md5, Method::Md5),
            (&scram, Method::Scram),
        ],
    )
    .await;
    for user in [&pw, &md5, &scram] {
        let (ok, out) = psql(
            proxy.port(),
            user,
            "select current_user || ' ' || ssl from pg_stat_ssl where pid = pg_backend_pid()",
        )
        .await;
        assert!(ok, "{user}: {out}");
        // Signed in as the token's user, over TLS to the server.
        assert_eq!(out.trim(), format!("{user} true"));
    }
    // The token never appears in the proxy's logs.
    let t = token(&app, &pw).await;
    assert!(!proxy.logs().contains(&t[..60]));
}

#[tokio::test]
async fn the_database_refusing_the_token_gets_28000_with_the_usual_causes() {
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let app = broker(pg, &[&user]).await;
    pg.user(&user, Method::Password, "not-the-token").await;
    let proxy = Proxy::start(
        &app.base,
        &[
            "--listen",
            "orders=127.0.0.1:0",
            "--db-ca-file",
            pg.ca_file.to_str().unwrap(),
        ],
        1,
    );
    let (ok, out) = psql(proxy.port(), &user, "select 1").await;
    assert!(!ok);
    assert!(out.contains("the database refused the sign-in as"), "{out}");
    assert!(out.contains("password authentication failed"), "{out}");
    assert!(
        out.contains("rds_iam") && out.contains("IAM database authentication"),
        "{out}"
    );
    let raw = raw_startup(proxy.port(), &user).await;
    assert_eq!(sqlstate(&raw).as_deref(), Some("28000"), "{raw:?}");
}

#[tokio::test]
async fn a_wrong_ca_or_a_server_without_tls_is_refused_and_the_error_says_why() {
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let (app, _ok) = proxied(pg, &[(&user, Method::Password)]).await;
    // Another CA than the server's.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, crate::production::pki("other").0).unwrap();
    let proxy = Proxy::start(
        &app.base,
        &[
            "--listen",
            "orders=127.0.0.1:0",
            "--db-ca-file",
            other.to_str().unwrap(),
        ],
        1,
    );
    let (ok, out) = psql(proxy.port(), &user, "select 1").await;
    assert!(!ok);
    assert!(out.contains("TLS with the database at localhost:"), "{out}");
    assert!(out.contains("UnknownIssuer"), "{out}");
    assert_eq!(
        sqlstate(&raw_startup(proxy.port(), &user).await).as_deref(),
        Some("08001")
    );

    // A server that does not offer TLS: the shared plain test PostgreSQL.
    let plain = crate::support::pg::TempDb::create().await;
    let port: u16 = plain
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let target = Target::postgres("orders")
        .region("eu-west-1")
        .host("localhost")
        .port(i64::from(port))
        .db_users(["postgres"]);
    let app = TestApp::spawn_toml(BrokerToml::unauthenticated().target(target)).await;
    app.clock.set(SystemTime::now());
    let proxy = Proxy::start(
        &app.base,
        &[
            "--listen",
            "orders=127.0.0.1:0",
            "--db-ca-file",
            pg.ca_file.to_str().unwrap(),
        ],
        1,
    );
    let (ok, out) = psql(proxy.port(), "postgres", "select 1").await;
    assert!(!ok);
    assert!(
        out.contains("refused TLS") && out.contains("never sends a token in cleartext"),
        "{out}"
    );
}

#[tokio::test]
async fn with_the_broker_down_the_cached_token_is_used_then_a_clear_08001() {
    let pg = pg_tls::server().await;
    let (user, other) = (unique("pw"), unique("pw"));
    let (app, proxy) = proxied(pg, &[(&user, Method::Password), (&other, Method::Password)]).await;
    let (ok, out) = psql(proxy.port(), &user, "select 1").await;
    assert!(ok, "{out}");
    drop(app); // the broker stops
    let (ok, out) = psql(proxy.port(), &user, "select 2").await;
    assert!(ok, "the cached token must still be used: {out}");
    // A user with no cached token: the broker is needed, and it is down.
    let (ok, out) = psql(proxy.port(), &other, "select 3").await;
    assert!(!ok);
    assert!(out.contains("cannot reach the broker"), "{out}");
    assert_eq!(
        sqlstate(&raw_startup(proxy.port(), &other).await).as_deref(),
        Some("08001")
    );
}

#[tokio::test]
async fn pg_cancel_reaches_the_right_server_connection() {
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let (_app, proxy) = proxied(pg, &[(&user, Method::Password)]).await;
    // psql sends a CancelRequest (with the key the proxy gave it) on SIGINT.
    let child = tokio::process::Command::new("psql")
        .args(["-X", "-w", "-At", "-c", "select pg_sleep(60)"])
        .arg(format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres sslmode=disable",
            proxy.port()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let admin = pg;
    crate::support::eventually(Duration::from_secs(20), || async {
        let mut c = sqlx_admin(admin).await;
        let n: i64 = sqlx::query_scalar("select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'")
            .fetch_one(&mut c)
            .await
            .unwrap();
        n > 0
    })
    .await;
    let started = std::time::Instant::now();
    let _ = tokio::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await;
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

async fn sqlx_admin(pg: &TlsPg) -> sqlx::PgConnection {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=require",
        pg.port
    ))
    .await
    .unwrap()
}

#[tokio::test]
async fn two_hundred_concurrent_connections_through_one_proxy() {
    use sqlx::Connection as _;
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let (_app, proxy) = proxied(pg, &[(&user, Method::Password)]).await;
    let port = proxy.port();
    let url = format!("postgres://{user}@127.0.0.1:{port}/postgres?sslmode=disable");
    let mut conns = Vec::new();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let url = url.clone();
        set.spawn(async move {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let one: i32 = sqlx::query_scalar("select 1")
                .fetch_one(&mut c)
                .await
                .unwrap();
            assert_eq!(one, 1);
            c
        });
    }
    while let Some(c) = set.join_next().await {
        conns.push(c.unwrap());
    }
    assert_eq!(conns.len(), 200);
    // All open at once, each still usable.
    for c in &mut conns {
        let two: i32 = sqlx::query_scalar("select 2")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert_eq!(two, 2);
    }
}

#[tokio::test]
async fn malformed_startups_get_a_protocol_error_and_a_close() {
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let (_app, proxy) = proxied(pg, &[(&user, Method::Password)]).await;
    let port = proxy.port();
    // Oversized (20 KB), unknown protocol 2.0, a TLS ClientHello on the plain listener.
    let mut big = 20_000u32.to_be_bytes().to_vec();
    big.extend(vec![b'x'; 19_996]);
    let v2 = [0, 0, 0, 8, 0, 2, 0, 0];
    let hello = [0x16, 3, 1, 0, 0xc8, 1, 0, 0, 0xc4];
    for (what, packet, needle) in [
        ("oversized", &big[..], "out of bounds"),
        ("protocol 2.0", &v2[..], "unsupported frontend protocol 2.0"),
        (
            "ClientHello",
            &hello[..],
            "TLS handshake without SSLRequest",
        ),
    ] {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let _ = s.write_all(packet).await;
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{what}: the proxy did not close"))
            .unwrap();
        assert_eq!(sqlstate(&answer).as_deref(), Some("08P01"), "{what}");
        assert!(
            String::from_utf8_lossy(&answer).contains(needle),
            "{what}: {answer:?}"
        );
    }
    // Still serving.
    assert!(psql(port, &user, "select 1").await.0);
}

/// Sends a StartupMessage for `user` and reads what comes back until the close.
async fn raw_startup(port: u16, user: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for p in ["user", user, "database", "postgres", ""] {
        body.extend(p.as_bytes());
        body.push(0);
    }
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend(body);
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(&packet).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

/// The SQLSTATE of the first ErrorResponse in `bytes`.
fn sqlstate(bytes: &[u8]) -> Option<String> {
    let start = bytes.iter().position(|&b| b == b'E')?;
    let body = &bytes[start + 5..];
    let i = body.windows(2).position(|w| w[0] == 0 && w[1] == b'C')?;
    let code = &body[i + 2..];
    let end = code.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&code[..end]).into_owned())
}
