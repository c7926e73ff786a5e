//! The client commands (`token`, `exec`, `audit`) as the real binary, against a broker on a
//! real socket.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::support::app::TestApp;
use crate::support::binary::BIN;
use crate::support::config::{Auditor, BrokerToml, Grant, Target};
use crate::support::eventually;
use crate::support::idp::{RsaKey, TestIdp, rs256};

const NOW: u64 = 1_773_065_489;

struct Fixture {
    idp: TestIdp,
    key: RsaKey,
    app: TestApp,
    dir: tempfile::TempDir,
}

impl Fixture {
    /// Subjects `from-file`, `from-env` and `from-k8s` each get a different DB user on
    /// `orders-db` (so the answer shows which JWT was used), all may use `ledger` (MySQL);
    /// `auditor` reads the trail.
    async fn start() -> Self {
        let key = RsaKey::generate("k1");
        let idp = TestIdp::start(vec![key.jwk()]).await;
        let dir = tempfile::tempdir().unwrap();
        let grant = |subject: &str, target: &str, db_user: &str| {
            Grant::new("corp", subject)
                .targets([target])
                .db_users([db_user])
        };
        let config = BrokerToml::new()
            .issuer(&idp)
            .target(Target::postgres("orders-db").db_users(["app_ro", "app_rw", "k8s_user"]))
            .target(
                Target::mysql("ledger")
                    .host("ledger.cluster-abc123xyz.us-east-1.rds.amazonaws.com")
                    .db_users(["ledger_svc"]),
            )
            .grant(grant("from-file", "orders-db", "app_ro"))
            .grant(grant("from-env", "orders-db", "app_rw"))
            .grant(grant("from-k8s", "orders-db", "k8s_user"))
            .grant(grant("from-*", "ledger", "ledger_svc"))
            .auditor(Auditor::new("corp", "auditor"))
            .audit_sqlite(dir.path());
        let app = TestApp::spawn_toml(config).await;
        Self { idp, key, app, dir }
    }

    fn jwt(&self, sub: &str) -> String {
        self.jwt_expiring(sub, NOW + 600)
    }

    fn jwt_expiring(&self, sub: &str, exp: u64) -> String {
        rs256(
            &self.key,
            &json!({"iss": self.idp.issuer, "sub": sub, "aud": "rds-token-broker", "exp": exp}),
        )
    }

    /// Writes `sub`'s JWT to a file in the fixture's directory.
    fn jwt_file(&self, sub: &str) -> String {
        let path = self.dir.path().join(format!("{sub}.jwt"));
        std::fs::write(&path, format!("{}\n", self.jwt(sub))).unwrap();
        path.display().to_string()
    }

    /// The CLI with a clean environment: no JWT, no Kubernetes token file.
    fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "RDS_TOKEN_BROKER_K8S_TOKEN_FILE",
                self.dir.path().join("no-k8s-token"),
            )
            .env("RDS_TOKEN_BROKER_URL", &self.app.base)
            .args(args)
            .envs(env.iter().copied());
        cmd
    }

    async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.cli(args, env).output().await.unwrap()
    }

    /// Runs a command that must succeed; returns stdout.
    async fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env).await;
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with `code`; returns stderr.
    async fn fails(&self, args: &[&str], env: &[(&str, &str)], code: i32) -> String {
        let out = self.run(args, env).await;
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_prints_each_format() {
    let f = Fixture::start().await;
    let file = f.jwt_file("from-file");
    let base = ["token", "--target", "orders-db", "--jwt-file", &file];

    let json_out = f
        .ok(&[&base[..], &["--format", "json"]].concat(), &[])
        .await;
    let answer: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(answer["db_user"], "app_ro");
    assert_eq!(answer["engine"], "postgres");
    let token = answer["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with(
        "orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app_ro&"
    ));

    // The default format is the token alone; the cache hands out the same one.
    let plain = f.ok(&base, &[]).await;
    assert_eq!(plain, format!("{token}\n"));

    let env = f.ok(&[&base[..], &["--format", "env"]].concat(), &[]).await;
    assert_eq!(
        env,
        format!(
            "export PGHOST='orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com'\n\
             export PGPORT='5432'\nexport PGUSER='app_ro'\nexport PGPASSWORD='{token}'\n\
             export PGSSLMODE='verify-full'\n"
        )
    );
    let env = f
        .ok(
            &[
                &base[..],
                &["--format", "env", "--ssl-root-cert", "/etc/rds-ca.pem"],
            ]
            .concat(),
            &[],
        )
        .await;
    assert!(
        env.ends_with("export PGSSLROOTCERT='/etc/rds-ca.pem'\n"),
        "{env}"
    );

    let pgpass = f
        .ok(&[&base[..], &["--format", "pgpass"]].concat(), &[])
        .await;
    assert_eq!(
        pgpass,
        format!(
            "orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com:5432:*:app_ro:{}\n",
            token.replace(':', "\\:")
        )
    );

    // MySQL targets get the MYSQL_* variables and the cleartext-plugin switch.
    let env = f
        .ok(
            &[
                "token",
                "--target",
                "ledger",
                "--jwt-file",
                &file,
                "--format",
                "env",
            ],
            &[],
        )
        .await;
    for line in [
        "export MYSQL_HOST='ledger.cluster-abc123xyz.us-east-1.rds.amazonaws.com'\n",
        "export MYSQL_TCP_PORT='3306'\n",
        "export MYSQL_USER='ledger_svc'\n",
        "export MYSQL_PWD='ledger.cluster-abc123xyz.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=ledger_svc&",
        "export LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN='1'\n",
        "--enable-cleartext-plugin",
    ] {
        assert!(env.contains(line), "{line} missing in {env}");
    }
    assert!(!env.contains("PGPASSWORD"));
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_sources_are_used_in_order() {
    let f = Fixture::start().await;
    let k8s = f.dir.path().join("k8s-token");
    std::fs::write(&k8s, f.jwt("from-k8s")).unwrap();
    let k8s = k8s.display().to_string();
    let file = f.jwt_file("from-file");
    let env_jwt = f.jwt("from-env");
    let user = |out: String| -> String {
        serde_json::from_str::<Value>(&out).unwrap()["db_user"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let args = ["token", "--target", "orders-db", "--format", "json"];
    let with_file = [&args[..], &["--jwt-file", &file]].concat();
    let all = [
        ("RDS_TOKEN_BROKER_JWT", env_jwt.as_str()),
        ("RDS_TOKEN_BROKER_K8S_TOKEN_FILE", k8s.as_str()),
    ];
    assert_eq!(user(f.ok(&with_file, &all).await), "app_ro");
    assert_eq!(user(f.ok(&args, &all).await), "app_rw");
    assert_eq!(user(f.ok(&args, &all[1..]).await), "k8s_user");
    // None at all: the broker's 401, explained.
    let err = f.fails(&args, &[], 1).await;
    assert!(
        err.contains("no JWT was found: pass --jwt-file, set RDS_TOKEN_BROKER_JWT"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_runs_the_command_with_the_variables_and_its_exit_status() {
    let f = Fixture::start().await;
    let file = f.jwt_file("from-file");
    let out = f
        .ok(
            &[
                "exec",
                "--target",
                "orders-db",
                "--jwt-file",
                &file,
                "--",
                "env",
            ],
            &[],
        )
        .await;
    let vars: Vec<&str> = out.lines().collect();
    assert!(vars.contains(&"PGHOST=orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com"));
    assert!(vars.contains(&"PGPORT=5432"));
    assert!(vars.contains(&"PGUSER=app_ro"));
    assert!(vars.contains(&"PGSSLMODE=verify-full"));
    let password = vars
        .iter()
        .find_map(|l| l.strip_prefix("PGPASSWORD="))
        .unwrap();
    let token = f
        .ok(
            &["token", "--target", "orders-db", "--jwt-file", &file],
            &[],
        )
        .await;
    assert_eq!(format!("{password}\n"), token);

    // The child's exit status passes through, and arguments reach it untouched.
    let out = f
        .run(
            &[
                "exec",
                "--target",
                "orders-db",
                "--jwt-file",
                &file,
                "--",
                "sh",
                "-c",
                "test \"$1\" = 'a b' && exit 7",
                "sh",
                "a b",
            ],
            &[],
        )
        .await;
    assert_eq!(out.status.code(), Some(7));

    // The token is in the child's environment, never in its command line.
    let out = f
        .ok(
            &[
                "exec",
                "--target",
                "orders-db",
                "--jwt-file",
                &file,
                "--",
                "sh",
                "-c",
                "cat /proc/$$/cmdline",
            ],
            &[],
        )
        .await;
    assert!(!out.contains("X-Amz-Signature"), "{out}");

    let err = f
        .fails(
            &[
                "exec",
                "--target",
                "orders-db",
                "--jwt-file",
                &file,
                "--",
                "/nonexistent/program",
            ],
            &[],
            1,
        )
        .await;
    assert!(err.contains("cannot run /nonexistent/program"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_lists_what_the_caller_may_use_with_the_token_commands_credentials() {
    let f = Fixture::start().await;
    let file = f.jwt_file("from-file");
    let table = f.ok(&["targets", "--jwt-file", &file], &[]).await;
    let ledger = "ledger.cluster-abc123xyz.us-east-1.rds.amazonaws.com:3306";
    let orders = "orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com:5432";
    assert_eq!(
        table,
        format!(
            "target     kind  engine    endpoint{pad}  region     db_users\n\
             ledger     rds   mysql     {ledger}  us-east-1  ledger_svc\n\
             orders-db  rds   postgres  {orders}  eu-west-1  app_ro\n",
            pad = " ".repeat(ledger.len() - "endpoint".len())
        )
    );

    // The variable, with the "Bearer " prefix an Authorization header has, and JSON.
    let bearer = format!("Bearer {}", f.jwt("from-env"));
    let json = f
        .ok(
            &["targets", "--format", "json"],
            &[("RDS_TOKEN_BROKER_JWT", &bearer)],
        )
        .await;
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["targets"][1]["name"], "orders-db");
    assert_eq!(json["targets"][1]["db_users"], json!(["app_rw"]));

    // No grant: said so, successfully (nothing failed).
    let nobody = f.jwt_file("nobody");
    let out = f.ok(&["targets", "--jwt-file", &nobody], &[]).await;
    assert_eq!(
        out,
        "no targets: this identity has no grant on this broker (ask its operators)\n"
    );
    // No credentials: what to pass.
    let err = f.fails(&["targets"], &[], 1).await;
    assert!(
        err.contains("no JWT was found: pass --jwt-file, set RDS_TOKEN_BROKER_JWT"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_say_what_to_do() {
    let f = Fixture::start().await;
    let args = ["token", "--target", "orders-db"];

    // Expired JWT: the IdP-side reason from the broker, and where the JWT came from.
    let expired = f.jwt_expiring("from-env", NOW - 3600);
    let err = f
        .fails(&args, &[("RDS_TOKEN_BROKER_JWT", &expired)], 1)
        .await;
    assert!(
        err.contains("did not accept the JWT in RDS_TOKEN_BROKER_JWT"),
        "{err}"
    );
    assert!(err.contains("expired"), "{err}");
    assert!(!err.contains(&expired), "the JWT must not be echoed");

    // Not granted, and an unknown target: the same 403 explanation.
    let file = f.jwt_file("from-file");
    for target in ["ledger-typo", "orders-db"] {
        let err = f
            .fails(
                &[
                    "token",
                    "--target",
                    target,
                    "--db-user",
                    "app_rw",
                    "--jwt-file",
                    &file,
                ],
                &[],
                1,
            )
            .await;
        assert!(err.starts_with("error: not permitted:"), "{err}");
        assert!(err.contains("GET /v1/targets"), "{err}");
    }

    // Nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = f
        .fails(
            &[
                &args[..],
                &["--jwt-file", &file, "--broker", &format!("http://{closed}")],
            ]
            .concat(),
            &[],
            1,
        )
        .await;
    assert!(
        err.contains(&format!("cannot reach the broker at http://{closed}/")),
        "{err}"
    );
    assert!(err.contains("Is it running"), "{err}");

    // Bad input never reaches the network.
    let err = f
        .fails(
            &[&args[..], &["--jwt-file", &file, "--broker", "ftp://x"]].concat(),
            &[],
            1,
        )
        .await;
    assert!(err.contains("must be an http:// or https:// URL"), "{err}");
    let missing = f.dir.path().join("missing.jwt").display().to_string();
    let err = f
        .fails(&[&args[..], &["--jwt-file", &missing]].concat(), &[], 1)
        .await;
    assert!(err.contains("cannot read the JWT file"), "{err}");
    let err = f
        .fails(
            &[&args[..], &["--jwt-file", &file, "--ca-file", &file]].concat(),
            &[],
            1,
        )
        .await;
    assert!(err.contains("--ca-file"), "{err}");
}

fn rows(csv: &str) -> usize {
    csv.lines().count() - 1
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_commands_query_export_and_verify() {
    let f = Fixture::start().await;
    let file = f.jwt_file("from-file");
    for target in ["orders-db", "ledger"] {
        f.ok(&["token", "--target", target, "--jwt-file", &file], &[])
            .await;
    }
    let auditor = f.jwt_file("auditor");
    let since = ["--since", "2026-03-01T00:00:00Z", "--jwt-file", &auditor];

    let table = f.ok(&[&["audit", "query"][..], &since].concat(), &[]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("time"), "{table}");
    assert!(
        lines[1].contains("issued") && lines[1].contains("ledger"),
        "{table}"
    );
    assert!(
        lines[2].contains("orders-db") && lines[2].contains("app_ro"),
        "{table}"
    );
    assert_eq!(lines.last(), Some(&"(2 events)"));

    let json_out = f
        .ok(
            &[
                &[
                    "audit",
                    "query",
                    "--format",
                    "json",
                    "--target",
                    "orders-db",
                ][..],
                &since,
            ]
            .concat(),
            &[],
        )
        .await;
    let events: Vec<Value> = serde_json::from_str(&json_out).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["subject"], "from-file");

    // Paging: a limit below the number of events returns exactly that many.
    let csv = f
        .ok(
            &[
                &["audit", "query", "--format", "csv", "--limit", "1"][..],
                &since,
            ]
            .concat(),
            &[],
        )
        .await;
    assert!(csv.starts_with("id,time,request_id,outcome"), "{csv}");
    assert_eq!(rows(&csv), 1);

    let export = f.dir.path().join("export.ndjson");
    let export_s = export.display().to_string();
    f.ok(
        &[&["audit", "export", "--output", &export_s][..], &since].concat(),
        &[],
    )
    .await;
    let lines: Vec<Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The two issuances, and the auditor's four reads so far: the three queries above and
    // this export, recorded before it streams.
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "audit_read",
            "audit_read",
            "audit_read",
            "audit_read",
            "issued",
            "issued"
        ],
        "{lines:#?}"
    );
    assert!(
        lines[..4].iter().all(|e| e["subject"] == "auditor"),
        "{lines:#?}"
    );
    assert_eq!(
        lines[0]["reason"].as_str().unwrap(),
        "GET /v1/audit/events {format=ndjson&since=2026-03-01T00:00:00Z}: export started"
    );
    let csv = f
        .ok(
            &[
                &["audit", "export", "--format", "csv", "--outcome", "issued"][..],
                &since,
            ]
            .concat(),
            &[],
        )
        .await;
    assert_eq!(rows(&csv), 2);

    // A service identity is not an auditor, and each audit command says so (the API's 403
    // is the same as for a missing grant; its detail speaks of targets).
    for (args, code) in [
        (&["audit", "query"][..], 1),
        (&["audit", "export"][..], 1),
        (&["audit", "verify"][..], 2),
    ] {
        let err = f
            .fails(&[args, &["--jwt-file", &file]].concat(), &[], code)
            .await;
        assert!(
            err.starts_with(&format!(
                "error: not an auditor: the identity of the JWT in {file} is not in the \
                 broker's [[auditors]]"
            )),
            "{args:?}: {err}"
        );
        assert!(!err.contains("target"), "{args:?}: {err}");
    }

    let ok = f
        .ok(&["audit", "verify", "--jwt-file", &auditor], &[])
        .await;
    // The two issuances and the auditor's seven reads before this one: three queries, two
    // exports, and the ends of the exports.
    assert_eq!(ok, "ok: every chain intact (9 events checked)\n");

    // Straight from the store: intact, then tampered (exit 1, names the link), then absent
    // (exit 2).
    let db = f.dir.path().join("audit.db");
    let url = format!("sqlite://{}", db.display());
    let ok = f.ok(&["audit", "verify", "--audit-url", &url], &[]).await;
    // And the verification above, recorded (reading the store directly is no API read).
    assert_eq!(ok, "ok: every chain intact (10 events checked)\n");
    tamper(&db).await;
    let out = f.run(&["audit", "verify", "--audit-url", &url], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("BROKEN: chain "), "{text}");
    assert!(text.contains("at position 2"), "{text}");
    let out = f
        .run(&["audit", "verify", "--jwt-file", &auditor], &[])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let missing = format!("sqlite://{}", f.dir.path().join("none.db").display());
    let err = f
        .fails(&["audit", "verify", "--audit-url", &missing], &[], 2)
        .await;
    assert!(err.contains("no such audit database"), "{err}");
}

async fn tamper(db: &Path) {
    use sqlx::Connection as _;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET db_user = 'admin' WHERE seq = 2")
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn output_files_are_private_and_kept_fresh_by_refresh() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = Fixture::start().await;
    let file = f.jwt_file("from-file");
    let out = f.dir.path().join("pgpass");
    let out_s = out.display().to_string();
    let args = [
        "token",
        "--target",
        "orders-db",
        "--jwt-file",
        &file,
        "--format",
        "pgpass",
        "--output",
        &out_s,
    ];
    let stdout = f.ok(&args, &[]).await;
    assert_eq!(stdout, "", "the token goes to the file only");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com:5432:*:app_ro:"),
        "{text}"
    );
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // --refresh writes the file and keeps running for the next refresh.
    std::fs::remove_file(&out).unwrap();
    let mut child = f
        .cli(&[&args[..], &["--refresh"]].concat(), &[])
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually(std::time::Duration::from_secs(10), || async {
        out.exists()
    })
    .await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    assert!(
        child.try_wait().unwrap().is_none(),
        "--refresh must keep running"
    );
    child.kill().await.unwrap();
    // No temporary files are left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}
