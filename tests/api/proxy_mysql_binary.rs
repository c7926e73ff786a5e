//! `rds-token-broker proxy` with MySQL through the real binary: the broker's target is
//! the tests' MariaDB (a user whose native password is the broker's token) or, for RDS's
//! `mysql_clear_password` sign-in, the protocol-level server of
//! [`proxy_mysql_protocol`](super::proxy_mysql_protocol); the listener learns the engine
//! from the broker.

use crate::proxy_mysql::{client, err, raw_sign_in};
use crate::proxy_mysql_protocol::{Mode, fake_server_with};
use crate::support::config::Target;
use crate::support::mariadb;
use crate::support::proxy::{self, Proxy, token};
use rds_token_broker::proxy::mysql::packet;

/// Target `orders` (engine `engine`) on localhost:`port` for `user`.
fn orders(engine: &str, port: u16, user: &str) -> Target {
    Target::mysql("orders")
        .engine(engine)
        .region("eu-west-1")
        .host("localhost")
        .port(i64::from(port))
        .db_users([user])
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mariadb_client_runs_queries_through_the_binary_and_a_refused_token_is_replaced() {
    let db = mariadb::server().await;
    let user = unique("bin");
    let app = proxy::broker(orders("mariadb", db.port, &user)).await;
    db.user(&user, &token(&app, &user).await).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &db.ca_pem).unwrap();
    let proxy = Proxy::orders(&app.base, &ca, &[]);
    let (ok, out, errs) = client(
        proxy.port(),
        &user,
        &[],
        "SELECT current_user(), 6*7; SHOW SESSION STATUS LIKE 'Ssl_version';",
    )
    .await;
    assert!(ok, "{errs}\n{}", proxy.logs());
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(format!("{user}@%\t42").as_str()));
    assert!(lines.next().unwrap().starts_with("Ssl_version\tTLSv1."));

    // The broker re-mints and the password moves on; the proxy's cached token is refused
    // once (1045 with the usual causes), then replaced.
    app.clock.advance(std::time::Duration::from_secs(11 * 60));
    db.set_password(&user, &token(&app, &user).await).await;
    let (ok, _, errs) = client(proxy.port(), &user, &[], "SELECT 1").await;
    assert!(!ok && errs.contains("ERROR 1045 (28000)"), "{errs}");
    assert!(errs.contains("AWSAuthenticationPlugin"), "{errs}");
    let (ok, out, errs) = client(proxy.port(), &user, &[], "SELECT 6*7").await;
    assert!(ok, "{errs}\n{}", proxy.logs());
    assert_eq!(out.trim(), "42");
}

#[tokio::test(flavor = "multi_thread")]
async fn rds_cleartext_sign_in_through_the_binary_carries_the_brokers_token() {
    let (ca, cert, key) = crate::support::pki::pki("fake-rds-mysql");
    // The fake server's password is the broker's token, known once the broker runs.
    let expected = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let password = expected.clone();
    let (port, seen) = fake_server_with(Mode::ClearSwitch, (cert, key), move |_| {
        password.lock().unwrap().clone()
    })
    .await;
    let app = proxy::broker(orders("mysql", port, "iam_user")).await;
    let token = token(&app, "iam_user").await;
    *expected.lock().unwrap() = token.clone();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let proxy = Proxy::orders(&app.base, &ca_file, &[]);
    let (mut s, answer) = raw_sign_in(proxy.port(), "iam_user").await;
    assert_eq!(
        (answer.seq, answer.payload[0]),
        (2, 0x00),
        "{:?}\n{}",
        err(&answer),
        proxy.logs()
    );
    assert_eq!(
        seen.lock().unwrap()[1],
        [token.as_bytes(), b"\0"].concat(),
        "the token in clear, over TLS"
    );
    packet::write(&mut s, 0, &[0x0e]).await.unwrap();
    let pong = packet::read(&mut s, 1 << 16).await.unwrap();
    assert_eq!((pong.seq, pong.payload[0]), (1, 0x00));
}
