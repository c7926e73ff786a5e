//! `rds-token-broker proxy` with PostgreSQL: the real binary between psql (and drivers)
//! and a private PostgreSQL that signs in like RDS (TLS with a test CA, `hostssl ...
//! password`), the DB users' passwords set to the tokens the in-process broker serves
//! (deterministic: the broker's clock is frozen).

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::app::TestApp;
use crate::support::config::Target;
use crate::support::pg_tls::{self, Method, TlsPg};
pub use crate::support::proxy::{Proxy, token};

/// A broker whose clock is now, with target `orders` on the TLS PostgreSQL for `users`.
pub async fn broker(pg: &TlsPg, users: &[&str]) -> TestApp {
    broker_on(pg.port, users).await
}

/// A broker whose clock is now, with target `orders` on localhost:`port` for `users`.
async fn broker_on(port: u16, users: &[&str]) -> TestApp {
    let target = Target::postgres("orders")
        .region("eu-west-1")
        .host("localhost")
        .port(i64::from(port))
        .db_users(users.iter().copied());
    crate::support::proxy::broker(target).await
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
    proxied_with(pg, users, &[]).await
}

/// [`proxied`] with more proxy flags.
async fn proxied_with(pg: &TlsPg, users: &[(&str, Method)], args: &[&str]) -> (TestApp, Proxy) {
    let names: Vec<&str> = users.iter().map(|(u, _)| *u).collect();
    let app = broker(pg, &names).await;
    for (u, m) in users {
        pg.user(u, *m, &token(&app, u).await).await;
    }
    let proxy = Proxy::orders(&app.base, &pg.ca_file, args);
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
    let proxy = Proxy::orders(&app.base, &pg.ca_file, &[]);
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
async fn a_refused_token_is_dropped_so_the_next_sign_in_fetches_a_fresh_one() {
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let (app, proxy) = proxied(pg, &[(&user, Method::Password)]).await;
    assert!(psql_ok(proxy.port(), &user).await, "{}", proxy.logs());
    // The broker re-mints (the first token is within its own min_remaining) and the
    // database's password moves on, while the proxy's cached token still has 15 min.
    let first = token(&app, &user).await;
    app.clock.advance(Duration::from_secs(11 * 60));
    let next = token(&app, &user).await;
    assert_ne!(first, next);
    pg.set_password(&user, &next).await;
    let (ok, out) = psql(proxy.port(), &user, "select 1").await;
    assert!(
        !ok && out.contains("the database refused the sign-in"),
        "{out}"
    );
    assert!(out.contains("rds_iam"), "the hints: {out}");
    let (ok, out) = psql(proxy.port(), &user, "select 6*7").await;
    assert!(ok, "{out}\n{}", proxy.logs());
    assert_eq!(out.trim(), "42");
}

#[tokio::test]
async fn a_wrong_ca_or_a_server_without_tls_is_refused_and_the_error_says_why() {
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let (app, _ok) = proxied(pg, &[(&user, Method::Password)]).await;
    // Another CA than the server's.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, crate::support::pki::pki("other").0).unwrap();
    let proxy = Proxy::orders(&app.base, &other, &[]);
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
    let app = broker_on(port, &["postgres"]).await;
    let proxy = Proxy::orders(&app.base, &pg.ca_file, &[]);
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
    // The other tests run the default single-threaded proxy; this one spreads its
    // connections over a multi-threaded one.
    let (_app, proxy) = proxied_with(pg, &[(&user, Method::Password)], &["--threads", "2"]).await;
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

#[tokio::test]
async fn token_rotation_new_connections_sign_in_with_the_next_token_open_ones_keep_working() {
    use sqlx::Connection as _;
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let app = broker(pg, &[&user]).await;
    // The first token runs out in 60 s of real time.
    app.clock
        .set(SystemTime::now() - Duration::from_secs(14 * 60));
    let first = token(&app, &user).await;
    pg.user(&user, Method::Password, &first).await;
    let proxy = Proxy::orders(&app.base, &pg.ca_file, &["--token-min-remaining", "30"]);
    let url = format!(
        "postgres://{user}@127.0.0.1:{}/postgres?sslmode=disable",
        proxy.port()
    );
    let mut open = sqlx::PgConnection::connect(&url).await.unwrap();
    // The broker moves on to the next token; the database's password follows it.
    app.clock.advance(Duration::from_secs(14 * 60));
    let next = token(&app, &user).await;
    assert_ne!(first, next);
    pg.set_password(&user, &next).await;
    // The proxy refreshes ahead (its token is within min_remaining + refresh-ahead), so
    // new connections sign in with the next token.
    crate::support::eventually(Duration::from_secs(20), || psql_ok(proxy.port(), &user)).await;
    for _ in 0..3 {
        assert!(psql(proxy.port(), &user, "select 1").await.0);
    }
    // The connection signed in with the first token keeps working.
    let n: i32 = sqlx::query_scalar("select 42")
        .fetch_one(&mut open)
        .await
        .unwrap();
    assert_eq!(n, 42);
}

async fn psql_ok(port: u16, user: &str) -> bool {
    psql(port, user, "select 1").await.0
}

#[tokio::test]
async fn psycopg_and_node_postgres_connect_with_no_password() {
    let pg = pg_tls::server().await;
    let user = unique("scram");
    let (_app, proxy) = proxied(pg, &[(&user, Method::Scram)]).await;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dsn = format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres sslmode=disable",
        proxy.port()
    );
    let py = tokio::process::Command::new(repo.join(".venv/bin/python"))
        .args([
            "-c",
            "import sys, psycopg\nwith psycopg.connect(sys.argv[1]) as c:\n    print(c.execute('select current_user').fetchone()[0])",
            &dsn,
        ])
        .env_remove("PGPASSWORD")
        .output()
        .await
        .expect("the test venv (.venv, made by scripts/test) with psycopg");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), user);
    let js = "const { Client } = require('pg');\n\
        const c = new Client({ host: '127.0.0.1', port: Number(process.argv[1]), user: process.argv[2], database: 'postgres' });\n\
        c.connect().then(() => c.query('select current_user as u')).then(r => { console.log(r.rows[0].u); return c.end(); })\n\
        .catch(e => { console.error(e.message); process.exit(1); });";
    let node = tokio::process::Command::new("node")
        .args(["-e", js, &proxy.port().to_string(), &user])
        .env("NODE_PATH", repo.join("examples/recipes/node/node_modules"))
        .env_remove("PGPASSWORD")
        .output()
        .await
        .unwrap();
    assert!(
        node.status.success(),
        "{}",
        String::from_utf8_lossy(&node.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&node.stdout).trim(), user);
}

#[tokio::test]
async fn the_jdbc_recipe_connects_with_debians_postgresql_driver() {
    let jar = crate::support::tools::postgres_jdbc_jar();
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let (_app, proxy) = proxied(pg, &[(&user, Method::Password)]).await;
    // The connection string as docs/proxy.md gives it, pointed at this proxy and user.
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/proxy.md"),
    )
    .unwrap();
    let url = doc
        .lines()
        .find(|l| l.starts_with("| JDBC"))
        .and_then(|l| l.split('`').nth(1))
        .expect("docs/proxy.md's JDBC row")
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port()))
        .replace("/orders?", "/postgres?")
        .replace("user=app_rw", &format!("user={user}"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Recipe.java"),
        "import java.sql.*;\n\
         public class Recipe {\n\
           public static void main(String[] a) throws Exception {\n\
             try (Connection c = DriverManager.getConnection(a[0]);\n\
                  ResultSet r = c.createStatement().executeQuery(\"select current_user, 6*7\")) {\n\
               r.next();\n\
               System.out.println(r.getString(1) + \" \" + r.getInt(2));\n\
             }\n\
           }\n\
         }\n",
    )
    .unwrap();
    let javac = tokio::process::Command::new("javac")
        .current_dir(dir.path())
        .arg("Recipe.java")
        .output()
        .await
        .unwrap();
    assert!(
        javac.status.success(),
        "{}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let classpath = format!("{}:{}", dir.path().display(), jar.display());
    let java = tokio::process::Command::new("java")
        .args(["-cp", &classpath, "Recipe", &url])
        .env_remove("PGPASSWORD")
        .output()
        .await
        .unwrap();
    assert!(
        java.status.success(),
        "{url}: {}{}",
        String::from_utf8_lossy(&java.stdout),
        String::from_utf8_lossy(&java.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&java.stdout).trim(),
        format!("{user} 42")
    );
}

#[tokio::test]
async fn copy_of_100_mb_each_way_arrives_intact() {
    use sha2::{Digest as _, Sha256};
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let (_app, proxy) = proxied(pg, &[(&user, Method::Password)]).await;
    let table = unique("copy_t");
    pg.admin(&format!(
        "CREATE TABLE {table} (id int, x text); GRANT ALL ON {table} TO \"{user}\""
    ))
    .await;
    // In: 100,000 rows of 1,000 bytes.
    let mut data = Vec::with_capacity(101 * 1024 * 1024);
    let mut expected = Sha256::new();
    for i in 0..100_000u32 {
        let x: String = (0..1000)
            .map(|j| (b'a' + ((i + j) % 26) as u8) as char)
            .collect();
        expected.update(x.as_bytes());
        data.extend(format!("{i}\t{x}\n").into_bytes());
    }
    assert!(data.len() >= 100_000_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.tsv");
    std::fs::write(&file, &data).unwrap();
    let dsn = format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres sslmode=disable",
        proxy.port()
    );
    let up = tokio::process::Command::new("psql")
        .args([
            "-X",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("\\copy {table} from '{}'", file.display()),
            &dsn,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let mut c = sqlx_admin(pg).await;
    let stored: String = sqlx::query_scalar(&format!(
        "select encode(sha256(convert_to(string_agg(x, '' order by id), 'UTF8')), 'hex') from {table}"
    ))
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(stored, hex::encode(expected.finalize()));
    // Out: the same rows back through the proxy, byte for byte.
    let down = tokio::process::Command::new("psql")
        .args([
            "-X",
            "-w",
            "-c",
            &format!("COPY (select id, x from {table} order by id) TO STDOUT"),
            &dsn,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(down.stdout.len(), data.len());
    assert_eq!(Sha256::digest(&down.stdout), Sha256::digest(&data));
}

#[tokio::test]
async fn sigterm_waits_for_open_connections_and_metrics_count_them() {
    use sqlx::Connection as _;
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let app = broker(pg, &[&user]).await;
    pg.user(&user, Method::Password, &token(&app, &user).await)
        .await;
    let mut proxy = Proxy::orders(
        &app.base,
        &pg.ca_file,
        &["--http-listen", "127.0.0.1:0", "--shutdown-grace", "30"],
    );
    let metrics_url = crate::support::eventually(Duration::from_secs(10), || {
        let logs = proxy.logs();
        async move {
            let i = logs.find("proxy metrics listening on ")?;
            Some(
                logs[i + 27..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect::<String>(),
            )
        }
    })
    .await;
    let url = format!(
        "postgres://{user}@127.0.0.1:{}/postgres?sslmode=disable",
        proxy.port()
    );
    let mut open = sqlx::PgConnection::connect(&url).await.unwrap();
    let text = crate::support::client()
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("rds_token_broker_proxy_connections{state=\"open\",target=\"orders\"} 1")
            || text
                .contains("rds_token_broker_proxy_connections{target=\"orders\",state=\"open\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("rds_token_broker_proxy_token_fetches_total"),
        "{text}"
    );
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &proxy.child.id().to_string()])
        .status()
        .await;
    crate::support::eventually(Duration::from_secs(10), || {
        let l = proxy.logs();
        async move { l.contains("waiting for open connections") }
    })
    .await;
    // New connections are refused; the open one still works.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .is_err()
    );
    let n: i32 = sqlx::query_scalar("select 7")
        .fetch_one(&mut open)
        .await
        .unwrap();
    assert_eq!(n, 7);
    open.close().await.unwrap();
    let status = crate::support::eventually(Duration::from_secs(10), || {
        let s = proxy.child.try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(status.success(), "{}", proxy.logs());
}

#[tokio::test]
async fn client_tls_client_password_and_a_unix_socket() {
    let pg = pg_tls::server().await;
    let user = unique("pw");
    let app = broker(pg, &[&user]).await;
    pg.user(&user, Method::Password, &token(&app, &user).await)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = crate::support::pki::pki("proxy-client-side");
    let (cert_file, key_file, pw_file) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("pw"),
    );
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    std::fs::write(&pw_file, "s3cret\n").unwrap();
    let socket = dir.path().join(".s.PGSQL.6543");
    let unix = format!("orders=unix:{}", socket.display());
    let proxy = Proxy::start(
        &app.base,
        &[
            "--listen",
            "orders=127.0.0.1:0",
            "--listen",
            &unix,
            "--db-ca-file",
            pg.ca_file.to_str().unwrap(),
            "--client-tls-cert",
            cert_file.to_str().unwrap(),
            "--client-tls-key",
            key_file.to_str().unwrap(),
            "--client-password-file",
            pw_file.to_str().unwrap(),
        ],
        2,
    );
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let run = |conn: String, password: &'static str| async move {
        let out = tokio::process::Command::new("psql")
            .args(["-X", "-w", "-At", "-c", "select current_user", &conn])
            .env("PGPASSWORD", password)
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // TLS from the client (sslmode=require), with the client password.
    let tcp = format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres sslmode=require",
        proxy.port()
    );
    let (ok, out) = run(tcp.clone(), "s3cret").await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), user);
    let (ok, out) = run(tcp, "wrong").await;
    assert!(!ok);
    assert!(out.contains("--client-password-file"), "{out}");
    // The Unix socket.
    let (ok, out) = run(
        format!(
            "host={} port=6543 user={user} dbname=postgres",
            dir.path().display()
        ),
        "s3cret",
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), user);
}
