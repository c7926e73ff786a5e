//! End to end with a real server: the private Redis of the test run gets an ACL user whose
//! password is the token the broker serves for an `elasticache` target, and `AUTH user
//! token` succeeds with it (the `redis` crate, and redis-cli through `exec`), as it does
//! with ElastiCache; a connection re-authenticates with a second token. A token that
//! differs in one character is refused with `WRONGPASS`. The redis-cli, redis-py and
//! valkey-glide recipes run against a Redis of their own served over TLS.

use std::process::Output;

use rds_token_broker::token::encode;
use serde_json::{Value, json};

use crate::support::app::TestApp;
use crate::support::binary::BIN;
use crate::support::config::{BrokerToml, Grant, Target};
use crate::support::idp::{RsaKey, TestIdp, rs256};
use crate::support::redis::{self, Redis, TlsFiles};
use crate::support::tools;

/// An unauthenticated broker whose `e2e-cache` is the private Redis, for user `user`.
async fn broker(port: u16, user: &str) -> TestApp {
    TestApp::spawn_toml(
        BrokerToml::new()
            .server("allow_unauthenticated", true)
            .target(
                Target::elasticache("e2e-cache")
                    .host("127.0.0.1")
                    .port(i64::from(port))
                    .db_users([user]),
            ),
    )
    .await
}

async fn admin(url: &str) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `AUTH user password` on a fresh connection, then `PING`.
async fn auth_then_ping(url: &str, user: &str, password: &str) -> Result<String, String> {
    let mut conn = admin(url).await;
    let auth: Result<String, _> = ::redis::cmd("AUTH")
        .arg(user)
        .arg(password)
        .query_async(&mut conn)
        .await;
    auth.map_err(|e| e.to_string())?;
    ::redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e: ::redis::RedisError| e.to_string())
}

/// The broker's CLI in a clean environment, pointed at `app`.
async fn cli(app: &TestApp, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    tokio::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env(
            "RDS_TOKEN_BROKER_K8S_TOKEN_FILE",
            home.path().join("no-k8s-token"),
        )
        .env("RDS_TOKEN_BROKER_URL", &app.base)
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_accepts_the_served_token_as_the_users_auth_password() {
    let redis = redis::shared().await;
    let url = redis.url();
    let user = format!("rtb-e2e-{}", uuid::Uuid::new_v4().simple());
    let app = broker(redis.port, &user).await;
    let answer: Value = app.token(json!({"target": "e2e-cache"})).await;
    let token = answer["token"].as_str().unwrap().to_owned();
    assert_eq!(answer["user"], user.as_str());
    assert!(token.starts_with(&format!("my-redis-cluster/?Action=connect&User={user}&")));

    // What ElastiCache does with IAM users, done by hand: the token is the password.
    let mut root = admin(&url).await;
    let _: () = ::redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            &user,
            "on",
            &format!(">{token}"),
            "+ping",
            "+auth",
        ])
        .query_async(&mut root)
        .await
        .unwrap();

    assert_eq!(auth_then_ping(&url, &user, &token).await, Ok("PONG".into()));
    // The crate's own connection settings (AUTH as part of the handshake), from a URL
    // shaped like `exec`'s REDIS_URL (rediss:// there: ElastiCache needs TLS).
    let with_auth = format!(
        "redis://{}:{}@127.0.0.1:{}",
        encode(&user),
        encode(&token),
        redis.port
    );
    let mut conn = ::redis::Client::open(with_auth)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pong: String = ::redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");

    // One character off: refused, as ElastiCache refuses a token signed wrongly.
    let mut wrong = token.clone();
    let last = if wrong.ends_with('0') { '1' } else { '0' };
    wrong.pop();
    wrong.push(last);
    let refused = auth_then_ping(&url, &user, &wrong).await.unwrap_err();
    assert!(refused.contains("WRONGPASS"), "{refused}");

    // redis-cli through `exec`: REDIS_* and REDISCLI_AUTH (the token, never on a command
    // line) from the broker. The token is a cache hit, so the same password.
    let redis_cli = tools::redis_cli();
    let out = cli(
        &app,
        &[
            "exec",
            "--target",
            "e2e-cache",
            "--",
            "sh",
            "-c",
            "\"$0\" --no-auth-warning -h \"$REDIS_HOST\" -p \"$REDIS_PORT\" --user \"$REDIS_USER\" PING",
            redis_cli.to_str().unwrap(),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "PONG",
        "status {:?}, stdout {stdout}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // And redis-cli given a wrong password through the same variable is refused.
    let refused = tokio::process::Command::new(&redis_cli)
        .env("REDISCLI_AUTH", &wrong)
        .args(["--no-auth-warning", "-h", "127.0.0.1", "-p"])
        .arg(redis.port.to_string())
        .args(["--user", &user, "PING"])
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(text.contains("WRONGPASS"), "{text}");

    // Re-authentication on an open connection, as a client does before 12 hours: a token
    // signed later (another password of the user, as ElastiCache accepts any valid token).
    let mut conn = admin(&url).await;
    let _: String = ::redis::cmd("AUTH")
        .arg(&user)
        .arg(&token)
        .query_async(&mut conn)
        .await
        .unwrap();
    app.clock.advance(std::time::Duration::from_secs(900));
    let later = app.token(json!({"target": "e2e-cache"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(later, token, "a fresh token once the first has expired");
    let _: () = ::redis::cmd("ACL")
        .arg(&["SETUSER", &user, &format!(">{later}")])
        .query_async(&mut root)
        .await
        .unwrap();
    let ok: String = ::redis::cmd("AUTH")
        .arg(&user)
        .arg(&later)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    let pong: String = ::redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");

    let _: i64 = ::redis::cmd("ACL")
        .arg(&["DELUSER", &user])
        .query_async(&mut root)
        .await
        .unwrap();
}

/// `INFO commandstats`'s count of `AUTH` commands (HELLO with credentials not included).
async fn auth_calls(conn: &mut ::redis::aio::MultiplexedConnection) -> u64 {
    let info: String = ::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_auth:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_recipes_authenticate_over_tls_with_the_served_token() {
    let redis_cli = tools::redis_cli();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::support::pki::pki("redis");
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (ca, cert, key) = (
        path("ca.pem", &ca),
        path("cert.pem", &cert),
        path("key.pem", &key),
    );
    let server = Redis::start_tls(TlsFiles {
        cert: &cert,
        key: &key,
        ca: &ca,
    })
    .await;
    let user = "sessions-app";
    let signing = RsaKey::generate("k1");
    let idp = TestIdp::start(vec![signing.jwk()]).await;
    let app = TestApp::spawn_toml(
        BrokerToml::new()
            .issuer(&idp)
            .target(
                Target::elasticache("sessions")
                    .cache_name("sessions")
                    .serverless(true)
                    .host("127.0.0.1")
                    .port(i64::from(server.tls_port.unwrap()))
                    .db_users([user]),
            )
            .grant(
                Grant::new("corp", "sessions-api")
                    .targets(["sessions"])
                    .db_users([user]),
            ),
    )
    .await;
    let jwt = rs256(
        &signing,
        &json!({"iss": idp.issuer, "sub": "sessions-api", "aud": "rds-token-broker", "exp": 1_773_065_489 + 600}),
    );
    let answer: Value = app
        .client
        .post(format!("{}/v1/tokens", app.base))
        .bearer_auth(&jwt)
        .json(&json!({"target": "sessions"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["token"].as_str().unwrap().to_owned();
    assert!(
        token.starts_with(
            "sessions/?Action=connect&User=sessions-app&ResourceType=ServerlessCache&"
        )
    );
    let mut root = admin(&server.url()).await;
    let _: () = ::redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            user,
            "on",
            &format!(">{token}"),
            "+ping",
            "+auth",
            "+hello",
            // GLIDE also runs INFO and CLIENT SETINFO when it connects.
            "+info",
            "+client",
        ])
        .query_async(&mut root)
        .await
        .unwrap();

    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let broker_dir = std::path::Path::new(BIN).parent().unwrap().to_path_buf();
    let path_var = std::env::join_paths(
        [broker_dir, redis_cli.parent().unwrap().to_path_buf()]
            .into_iter()
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            )),
    )
    .unwrap();
    let command = |program: &std::path::Path| {
        let mut cmd = tokio::process::Command::new(program);
        cmd.env_clear()
            .env("PATH", &path_var)
            .env("HOME", dir.path())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env(
                "RDS_TOKEN_BROKER_K8S_TOKEN_FILE",
                dir.path().join("no-k8s-token"),
            )
            .env("RDS_TOKEN_BROKER_URL", &app.base)
            .env("RDS_TOKEN_BROKER_JWT", &jwt);
        cmd
    };

    // redis-cli through exec.
    let recipe = repo.join("examples/recipes/redis-cli.sh");
    let run = |ca: Option<&std::path::Path>| {
        let mut cmd = command(std::path::Path::new("sh"));
        cmd.arg(&recipe).arg("PING");
        if let Some(ca) = ca {
            cmd.env("RDS_TOKEN_BROKER_SSL_ROOT_CERT", ca);
        }
        cmd.output()
    };
    let out = run(Some(&ca)).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "PONG",
        "status {:?}, stdout {stdout}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the test CA the server's certificate is not trusted: TLS is really in use.
    let out = run(None).await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("PONG"), "{text}");

    // redis-py: credentials from the broker on connect, then AUTH again on the open
    // connection, as its thread does every 8 hours.
    let before = auth_calls(&mut root).await;
    python_recipe(&command, repo, "redis_py_reauth.py", &ca, "True\nTrue\n").await;
    assert_eq!(
        auth_calls(&mut root).await,
        before + 1,
        "one explicit re-AUTH"
    );

    // valkey-glide: the token as its server credentials, then update_connection_password
    // with a fresh one (an immediate AUTH).
    let before = auth_calls(&mut root).await;
    python_recipe(
        &command,
        repo,
        "valkey_glide_reauth.py",
        &ca,
        "PONG\nPONG\n",
    )
    .await;
    assert!(
        auth_calls(&mut root).await > before,
        "update_connection_password sent AUTH"
    );
}

/// Runs the Python recipe `script` of examples/recipes/ with the virtualenv's Python (from
/// `command`, which sets the broker's address and credentials) trusting `ca`, and checks
/// that it succeeds and prints `expected`.
async fn python_recipe(
    command: &impl Fn(&std::path::Path) -> tokio::process::Command,
    repo: &std::path::Path,
    script: &str,
    ca: &std::path::Path,
    expected: &str,
) {
    let out = command(&repo.join(".venv/bin/python"))
        .arg(repo.join("examples/recipes").join(script))
        .env("REDIS_CA_FILE", ca)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout == expected,
        "{script}: status {:?}, stdout {stdout}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
