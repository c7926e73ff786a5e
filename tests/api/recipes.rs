//! The client recipes of docs/recipes.md, each run for real against a broker: curl, psql through
//! `exec`, psycopg, node-postgres and the Kubernetes sidecar. The database is a fake
//! PostgreSQL server on loopback that answers the TLS request with "no", so the clients
//! stop there, after getting their password from the broker.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::app::TestApp;
use crate::support::binary::BIN;
use crate::support::config::{BrokerToml, Grant, Target};
use crate::support::eventually;
use crate::support::idp::{RsaKey, TestIdp, rs256};
use crate::support::tools;

/// Accepts connections, counts PostgreSQL SSLRequests, and declines TLS.
struct FakePostgres {
    port: u16,
    ssl_requests: Arc<AtomicUsize>,
}

impl FakePostgres {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ssl_requests = Arc::new(AtomicUsize::new(0));
        let seen = ssl_requests.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut msg = [0u8; 8];
                    if sock.read_exact(&mut msg).await.is_ok()
                        && msg == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
                    {
                        seen.fetch_add(1, Ordering::SeqCst);
                        let _ = sock.write_all(b"N").await;
                    }
                    let mut rest = Vec::new();
                    let _ = sock.read_to_end(&mut rest).await;
                });
            }
        });
        Self { port, ssl_requests }
    }

    fn ssl_requests(&self) -> usize {
        self.ssl_requests.load(Ordering::SeqCst)
    }
}

struct Fixture {
    app: TestApp,
    db: FakePostgres,
    jwt: String,
    _idp: TestIdp,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Self {
        let key = RsaKey::generate("k1");
        let idp = TestIdp::start(vec![key.jwk()]).await;
        let db = FakePostgres::start().await;
        let config = BrokerToml::new()
            .issuer(&idp)
            .target(
                Target::postgres("orders-db")
                    .host("127.0.0.1")
                    .port(i64::from(db.port))
                    .region("eu-west-1")
                    .db_users(["app_rw"]),
            )
            // The cluster endpoint does not resolve here: the DSQL recipe's test connects
            // to the fake server with PGHOSTADDR.
            .target(Target::dsql("inventory").port(i64::from(db.port)))
            .grant(
                Grant::new("corp", "orders-api")
                    .targets(["orders-db"])
                    .db_users(["app_rw"]),
            )
            .grant(
                Grant::new("corp", "orders-api")
                    .targets(["inventory"])
                    .db_users(["admin"]),
            );
        let app = TestApp::spawn_toml(config).await;
        let jwt = rs256(
            &key,
            &json!({"iss": idp.issuer, "sub": "orders-api", "aud": "rds-token-broker", "exp": 1_773_065_489 + 600}),
        );
        Self {
            app,
            db,
            jwt,
            _idp: idp,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The token the broker hands this caller (cached: the same one the recipes get).
    async fn token(&self) -> String {
        let res = self
            .app
            .client
            .post(format!("{}/v1/tokens", self.app.base))
            .bearer_auth(&self.jwt)
            .json(&json!({"target": "orders-db"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A recipe's process: clean environment, the broker URL and JWT as docs/recipes.md says,
    /// `rds-token-broker` and the virtualenv's tools on PATH.
    fn command(&self, program: &str) -> tokio::process::Command {
        let bin_dir = Path::new(BIN).parent().unwrap();
        let venv = repo().join(".venv/bin");
        let path = std::env::join_paths([bin_dir.to_path_buf(), venv].into_iter().chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        let mut cmd = tokio::process::Command::new(program);
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("RDS_TOKEN_BROKER_URL", &self.app.base)
            .env("RDS_TOKEN_BROKER_JWT", &self.jwt)
            .env(
                "RDS_TOKEN_BROKER_K8S_TOKEN_FILE",
                self.dir.path().join("no-k8s-token"),
            );
        cmd
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn recipe(name: &str) -> String {
    repo()
        .join("examples/recipes")
        .join(name)
        .display()
        .to_string()
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

async fn output(cmd: &mut tokio::process::Command) -> (bool, String, String) {
    let out = cmd.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_recipe_gets_a_token() {
    tools::require_curl();
    let f = Fixture::start().await;
    let (ok, stdout, stderr) = output(f.command("sh").arg(recipe("curl.sh"))).await;
    assert!(ok, "{stderr}");
    let body: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(body["token"].as_str().unwrap(), f.token().await);
    assert_eq!(body["db_user"], "app_rw");
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_recipe_connects_with_the_brokers_settings() {
    tools::require_psql();
    let f = Fixture::start().await;
    let (ok, _, stderr) = output(f.command("sh").arg(recipe("psql.sh"))).await;
    // psql reached the database named by the broker and insisted on TLS, which the fake
    // server declines.
    assert!(!ok);
    assert!(
        stderr.contains("server does not support SSL, but SSL was required"),
        "{stderr}"
    );
    assert_eq!(f.db.ssl_requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_dsql_recipe_connects_to_the_cluster_with_the_brokers_settings() {
    tools::require_psql();
    let f = Fixture::start().await;
    // A stand-in psql that reports what exec gave it, then runs the real one (which
    // reaches the fake server: PGHOSTADDR, since the cluster endpoint does not resolve).
    let bin = f.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let system_path = std::env::var_os("PATH").unwrap_or_default();
    let psql = std::env::split_paths(&system_path)
        .map(|d| d.join("psql"))
        .find(|p| p.is_file())
        .unwrap();
    let stand_in = bin.join("psql");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\necho \"$PGHOST $PGPORT $PGUSER $PGDATABASE $PGSSLMODE\" >&2\n\
             printf %s \"$PGPASSWORD\" > \"$HOME/password\"\nexec {} \"$@\"\n",
            psql.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut cmd = f.command("sh");
    let broker_dir = Path::new(BIN).parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        [bin.clone(), broker_dir]
            .into_iter()
            .chain(std::env::split_paths(&system_path)),
    )
    .unwrap();
    cmd.env("PATH", path).env("PGHOSTADDR", "127.0.0.1");
    let (ok, _, stderr) = output(cmd.arg(recipe("psql-dsql.sh"))).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "abcdefghijklmnopqrst123456.dsql.us-east-1.on.aws {} admin postgres verify-full",
            f.db.port
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("server does not support SSL, but SSL was required"),
        "{stderr}"
    );
    assert_eq!(f.db.ssl_requests(), 1);
    let password = std::fs::read_to_string(f.dir.path().join("password")).unwrap();
    assert!(
        password.starts_with(
            "abcdefghijklmnopqrst123456.dsql.us-east-1.on.aws/?Action=DbConnectAdmin&X-Amz-Algorithm="
        ),
        "{password}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn psycopg_recipe_takes_its_password_from_the_broker() {
    let f = Fixture::start().await;
    let check = repo().join("tests/recipes/psycopg_check.py");
    let (ok, stdout, stderr) = output(
        f.command("python")
            .arg(check)
            .arg(recipe("psycopg_pool.py")),
    )
    .await;
    assert!(ok, "{stderr}");
    let got: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(got["token_sha256"], sha256_hex(&f.token().await));
    assert_eq!(got["host"], "127.0.0.1");
    assert_eq!(got["port"], f.db.port);
    assert!(
        got["error"]
            .as_str()
            .unwrap()
            .contains("server does not support SSL, but SSL was required"),
        "{got}"
    );
    // One fetch for the direct connection, at least one more for the pool's.
    assert!(got["fetches"].as_u64().unwrap() >= 2, "{got}");
    assert_eq!(got["pool_error"], "PoolTimeout");
    assert!(f.db.ssl_requests() >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_pg_recipe_takes_its_password_from_the_broker() {
    let f = Fixture::start().await;
    let check = repo().join("tests/recipes/node_check.js");
    let (ok, stdout, stderr) =
        output(f.command("node").arg(check).arg(recipe("node/pg_pool.js"))).await;
    assert!(ok, "{stderr}");
    let got: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(got["token_sha256"], sha256_hex(&f.token().await));
    assert_eq!(got["host"], "127.0.0.1");
    assert_eq!(got["port"], f.db.port);
    assert_eq!(got["user"], "app_rw");
    assert!(
        got["error"]
            .as_str()
            .unwrap()
            .contains("does not support SSL"),
        "{got}"
    );
    assert_eq!(f.db.ssl_requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubernetes_sidecar_recipe_keeps_a_pgpass_file() {
    let f = Fixture::start().await;
    // The sidecar's arguments, read from the manifest.
    let (ok, stdout, stderr) = output(f.command("python").args([
        "-c",
        "import json, sys, yaml\n\
         d = yaml.safe_load(open(sys.argv[1]))\n\
         c = d['spec']['template']['spec']['initContainers'][0]\n\
         assert c['restartPolicy'] == 'Always'\n\
         print(json.dumps(c['args']))",
        &recipe("kubernetes-sidecar.yaml"),
    ]))
    .await;
    assert!(ok, "{stderr}");
    let args: Vec<String> = serde_json::from_str(&stdout).unwrap();
    // Only the pod-specific places change: broker URL, JWT file, output file.
    let jwt_file = f.dir.path().join("sa-token");
    std::fs::write(&jwt_file, &f.jwt).unwrap();
    let pgpass = f.dir.path().join("pgpass");
    let args: Vec<String> = args
        .into_iter()
        .map(|a| match a.split_once('=') {
            Some(("--broker", _)) => format!("--broker={}", f.app.base),
            Some(("--jwt-file", _)) => format!("--jwt-file={}", jwt_file.display()),
            Some(("--output", _)) => format!("--output={}", pgpass.display()),
            _ => a,
        })
        .collect();
    assert!(args.contains(&"--refresh".to_owned()), "{args:?}");
    let mut child = f
        .command(BIN)
        .args(&args)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually(std::time::Duration::from_secs(10), || async {
        pgpass.exists()
    })
    .await;
    let line = std::fs::read_to_string(&pgpass).unwrap();
    assert_eq!(
        line,
        format!(
            "127.0.0.1:{}:*:app_rw:{}\n",
            f.db.port,
            f.token().await.replace(':', "\\:")
        )
    );
    assert!(child.try_wait().unwrap().is_none());
    child.kill().await.unwrap();
}

#[test]
fn the_docs_show_each_recipe_as_tested() {
    let readme = std::fs::read_to_string(repo().join("docs/recipes.md")).unwrap();
    for name in [
        "curl.sh",
        "psql.sh",
        "psql-dsql.sh",
        "redis-cli.sh",
        "redis_py_reauth.py",
        "valkey_glide_reauth.py",
        "psycopg_pool.py",
        "node/pg_pool.js",
        "pgx.go",
        "kubernetes-sidecar.yaml",
        "aws_iam_botocore.py",
    ] {
        let text = std::fs::read_to_string(recipe(name)).unwrap();
        assert!(
            readme.contains(text.trim_end()),
            "docs/recipes.md must show examples/recipes/{name} as it is"
        );
    }
}
