//! Issue 17, the audit-reading and CLI side: verification walks the store in pages, forged
//! retention checkpoints are reported, the anonymous caller reads the trail only when an
//! `[[auditors]]` entry names it, exports and the CLI never print control or bidi
//! characters, and the CLI writes `--output` files privately and refuses cleartext to a
//! broker off loopback.

use std::process::Output;
use std::time::Duration;

use rds_token_broker::audit::{AuditStore, display, verify_from};
use serde_json::{Value, json};

use crate::support::app::{TestApp, problem};
use crate::support::binary::BIN;
use crate::support::config::{Auditor, BrokerToml, Grant, Issuer, Target};
use crate::support::store::Store;

/// The test configuration (the anonymous caller is an auditor) with the audit trail on
/// `store`, changed by `configure`.
async fn app(store: &Store, configure: impl FnOnce(BrokerToml) -> BrokerToml) -> TestApp {
    TestApp::spawn_toml(configure(
        BrokerToml::unauthenticated().audit_url(store.url()),
    ))
    .await
}

async fn verify(app: &TestApp) -> Value {
    let res = app.get("/v1/audit/verify").await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

// ---- Item 9: verification walks the store a page at a time ---------------------------

async fn verification_walks_the_store_in_pages_with_the_same_result(store: Store) {
    // Two broker starts on one store: two chains of 12 events.
    for _ in 0..2 {
        let app = app(&store, |c| c).await;
        for _ in 0..12 {
            app.token(json!({"target": "ledger"})).await;
        }
    }
    let s = AuditStore::open(&store.url()).await.unwrap();
    let whole = |s: AuditStore| async move {
        let events = s.all_by_chain().await.unwrap();
        verify_from(&events, &s.checkpoints().await.unwrap(), None)
    };

    let (paged, pages) = s.walk_chains(5, None).await.unwrap();
    assert!(paged.ok, "{paged:?}");
    assert_eq!(paged.events_checked, 24);
    assert_eq!(pages, 5, "24 events in pages of 5");
    assert_eq!(paged, whole(s.clone()).await);

    // An altered event late in the second chain: the walk crosses pages and chains to it,
    // and names it exactly as walking the whole trail in memory does.
    let last = store
        .row(
            "SELECT MAX(chain_id) AS chain_id FROM audit_events",
            &["chain_id"],
        )
        .await
        .remove(0);
    store
        .exec(&format!(
            "UPDATE audit_events SET db_user = 'admin' WHERE chain_id = '{last}' AND seq = 10"
        ))
        .await;
    let altered = store
        .row(
            &format!("SELECT id FROM audit_events WHERE chain_id = '{last}' AND seq = 10"),
            &["id"],
        )
        .await
        .remove(0);
    let (paged, pages) = s.walk_chains(5, None).await.unwrap();
    assert_eq!(pages, 5, "the 22nd event is on the fifth page");
    assert_eq!(
        serde_json::to_value(&paged).unwrap(),
        json!({"ok": false, "events_checked": 22, "first_broken": {
            "chain_id": last, "seq": 10, "id": altered,
            "reason": "the event was altered: its hash does not match its contents"}})
    );
    assert_eq!(paged, whole(s.clone()).await);
    // The API (pages of 1,000) says the same.
    let app = app(&store, |c| c).await;
    assert_eq!(verify(&app).await, serde_json::to_value(&paged).unwrap());
}

#[tokio::test]
async fn sqlite_verification_walks_the_store_in_pages_with_the_same_result() {
    verification_walks_the_store_in_pages_with_the_same_result(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_verification_walks_the_store_in_pages_with_the_same_result() {
    verification_walks_the_store_in_pages_with_the_same_result(Store::postgres().await).await;
}

// ---- Item 16: retention checkpoints carry the pruned event's time --------------------

async fn retention_checkpoints_carry_the_pruned_events_time(store: Store) {
    let app = app(&store, |c| c.audit("retention_days", 1)).await;
    for _ in 0..3 {
        app.token(json!({"target": "ledger"})).await;
    }
    app.clock.advance(Duration::from_secs(2 * 86_400));
    for _ in 0..3 {
        app.token(json!({"target": "ledger"})).await;
    }
    let third = store
        .row("SELECT time FROM audit_events WHERE seq = 3", &["time"])
        .await
        .remove(0);
    // What the hourly retention task does: prune what is older than one day.
    let audit = app.state.broker.audit().unwrap();
    assert_eq!(audit.prune("2026-03-10T14:11:29.000Z").await.unwrap(), 3);
    let kept = store
        .row("SELECT event_time FROM audit_checkpoints", &["event_time"])
        .await;
    assert_eq!(kept, [third]);
    assert_eq!(
        verify(&app).await,
        json!({"ok": true, "events_checked": 3, "first_broken": null})
    );
    app.clock.advance(Duration::from_secs(30 * 86_400));
    assert_eq!(verify(&app).await["ok"], true, "checkpoints only get older");
}

#[tokio::test]
async fn sqlite_retention_checkpoints_carry_the_pruned_events_time() {
    retention_checkpoints_carry_the_pruned_events_time(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_retention_checkpoints_carry_the_pruned_events_time() {
    retention_checkpoints_carry_the_pruned_events_time(Store::postgres().await).await;
}

/// Someone with write access to the database deletes the oldest events up to a recent one
/// and leaves a checkpoint that makes the rest verify.
async fn forge_checkpoint(store: &Store, seq: i64, time: &str) -> String {
    let row = store
        .row(
            &format!("SELECT chain_id, hash FROM audit_events WHERE seq = {seq}"),
            &["chain_id", "hash"],
        )
        .await;
    let (chain, hash) = (&row[0], &row[1]);
    store
        .exec(&format!("DELETE FROM audit_events WHERE seq <= {seq}"))
        .await;
    store
        .exec(&format!(
            "INSERT INTO audit_checkpoints (chain_id, seq, hash, event_time) \
             VALUES ('{chain}', {seq}, '{hash}', '{time}')"
        ))
        .await;
    chain.clone()
}

async fn a_forged_checkpoint_hiding_recent_events_is_reported(store: Store) {
    let app = app(&store, |c| c.audit("retention_days", 30)).await;
    for _ in 0..6 {
        app.token(json!({"target": "ledger"})).await;
    }
    let fourth = store
        .row("SELECT time FROM audit_events WHERE seq = 4", &["time"])
        .await
        .remove(0);
    let chain = forge_checkpoint(&store, 4, &fourth).await;
    assert_eq!(
        verify(&app).await,
        json!({"ok": false, "events_checked": 0, "first_broken": {
            "chain_id": chain, "seq": 4, "id": null,
            "reason": "a retention checkpoint is newer than the retention period allows"}})
    );

    // The same row as versions before the time was recorded wrote it: accepted, counted.
    store
        .exec("UPDATE audit_checkpoints SET event_time = NULL")
        .await;
    assert_eq!(
        verify(&app).await,
        // Events 5 and 6, and the first verification's own `audit_read`.
        json!({"ok": true, "events_checked": 3, "first_broken": null, "legacy_checkpoints": 1})
    );
}

#[tokio::test]
async fn sqlite_a_forged_checkpoint_hiding_recent_events_is_reported() {
    a_forged_checkpoint_hiding_recent_events_is_reported(Store::sqlite()).await;
}

#[tokio::test]
async fn postgres_a_forged_checkpoint_hiding_recent_events_is_reported() {
    a_forged_checkpoint_hiding_recent_events_is_reported(Store::postgres().await).await;
}

/// The CLI with a clean environment: no JWT, no Kubernetes token file, the broker at
/// `base`.
async fn cli(base: &str, dir: &std::path::Path, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RDS_TOKEN_BROKER_K8S_TOKEN_FILE", dir.join("no-k8s-token"))
        .env("RDS_TOKEN_BROKER_URL", base)
        .args(args)
        .output()
        .await
        .unwrap()
}

fn text(out: &Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8(out.stdout.clone()).unwrap(),
        String::from_utf8(out.stderr.clone()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_checks_checkpoint_ages_given_the_retention_period() {
    let store = Store::sqlite();
    let app = app(&store, |c| c).await;
    for _ in 0..6 {
        app.token(json!({"target": "ledger"})).await;
    }
    // The CLI reads the machine's clock: a checkpoint of this instant is too new for 30 days.
    let now = rds_token_broker::clock::rfc3339_millis(std::time::SystemTime::now());
    let chain = forge_checkpoint(&store, 4, &now).await;
    let dir = tempfile::tempdir().unwrap();
    let url = store.url();
    let verify = ["audit", "verify", "--audit-url", &url];

    let (code, out, _) = text(
        &cli(
            &app.base,
            dir.path(),
            &[&verify[..], &["--retention-days", "30"]].concat(),
        )
        .await,
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        out,
        format!(
            "BROKEN: chain {chain}, retention checkpoint at position 4: a retention checkpoint \
             is newer than the retention period allows (0 events checked)\n"
        )
    );
    // Without the period the age is not checked, and the output says so.
    let (code, out, _) = text(&cli(&app.base, dir.path(), &verify).await);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out,
        "ok: every chain intact (2 events checked)\nnote: the age of 1 retention checkpoint \
         was not checked: give --retention-days (the broker's audit.retention_days)\n"
    );
    // Legacy checkpoints are accepted and counted, by the CLI and through the broker.
    store
        .exec("UPDATE audit_checkpoints SET event_time = NULL")
        .await;
    let legacy = "note: retention checkpoints written by an older version, without the pruned \
                  event's time, were accepted unchecked: 1\n";
    let (code, out, _) = text(
        &cli(
            &app.base,
            dir.path(),
            &[&verify[..], &["--retention-days", "30"]].concat(),
        )
        .await,
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out,
        format!("ok: every chain intact (2 events checked)\n{legacy}")
    );
    let (code, out, err) = text(&cli(&app.base, dir.path(), &["audit", "verify"]).await);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        format!("ok: every chain intact (2 events checked)\n{legacy}")
    );
}

// ---- Item 17: the anonymous caller is an auditor only when configured as one ----------

#[tokio::test]
async fn the_anonymous_caller_reads_the_trail_only_when_an_auditor_entry_names_it() {
    let store = Store::sqlite();
    let closed = TestApp::spawn_toml(
        BrokerToml::unauthenticated()
            .without_auditors()
            .audit_url(store.url()),
    )
    .await;
    let issued = closed.token(json!({"target": "ledger"})).await;
    let reads = [
        "/v1/audit/events",
        "/v1/audit/events?format=csv",
        "/v1/audit/verify",
        "/v1/audit/stats",
    ];
    for path in reads {
        problem(closed.get(path).await, 403).await;
    }
    let lookup = |app: &TestApp| {
        app.client
            .post(format!("{}/v1/audit/lookup", app.base))
            .json(&json!({"token": issued["token"]}))
            .send()
    };
    problem(lookup(&closed).await.unwrap(), 403).await;
    drop(closed);

    let app = app(&store, |c| c).await;
    for path in reads {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    assert_eq!(lookup(&app).await.unwrap().status(), 200);
}

#[test]
fn an_anonymous_auditor_entry_needs_an_unauthenticated_broker_and_must_match_it() {
    use rds_token_broker::config::load_str;
    let errors = |toml: &str| -> Vec<(String, String)> {
        load_str(toml)
            .expect_err("config should be invalid")
            .errors
            .into_iter()
            .map(|e| (e.key, e.message))
            .collect()
    };
    let authenticated = BrokerToml::default()
        .server("listen", "127.0.0.1:8443")
        .target(Target::postgres("orders-db"));
    let demo = authenticated.clone().server("allow_unauthenticated", true);
    let text = |c: BrokerToml| c.to_string();

    assert_eq!(
        errors(&text(authenticated.auditor(Auditor::anonymous()))),
        [(
            "auditors[0].issuer".to_owned(),
            "\"none\" names the anonymous caller, which exists only with \
             server.allow_unauthenticated = true"
                .to_owned()
        )]
    );
    assert!(load_str(&text(demo.clone().auditor(Auditor::anonymous()))).is_ok());
    assert!(load_str(&text(demo.clone().auditor(Auditor::new("none", "*")))).is_ok());
    let errs = errors(&text(
        demo.auditor(Auditor::new("none", "admin").claim("groups", "security"))
            .grant(
                Grant::new("none", "anonymous")
                    .targets(["orders-db"])
                    .db_users(["app"]),
            )
            .issuer(
                Issuer::jwks_uri("none", "https://sso.example", "https://sso.example/jwks")
                    .audiences(["x"]),
            ),
    ));
    for (key, needle) in [
        ("auditors[0].subject", "matches no caller"),
        ("auditors[0].claims", "no claims"),
        ("grants[0].issuer", "needs no grant"),
        ("issuers[0].name", "reserved for the anonymous caller"),
    ] {
        assert!(
            errs.iter().any(|(k, m)| k == key && m.contains(needle)),
            "missing {key} ~ {needle}: {errs:#?}"
        );
    }
}

#[test]
fn only_the_anonymous_caller_matches_an_anonymous_auditor_entry() {
    use rds_token_broker::auth::{AuthMethod, Principal};
    use rds_token_broker::policy::is_auditor;
    let config =
        rds_token_broker::config::load_str(&BrokerToml::unauthenticated().to_string()).unwrap();
    assert!(is_auditor(&config, &Principal::anonymous()));
    // A shared token's signing identity is not a caller.
    assert!(!is_auditor(
        &config,
        &Principal::shared("orders-db", "app_rw")
    ));
    // Nor is a JWT or AWS IAM caller that calls itself "anonymous".
    for (issuer, auth_method) in [("none", AuthMethod::Jwt), ("none", AuthMethod::AwsIam)] {
        let p = Principal {
            issuer: issuer.into(),
            subject: "anonymous".into(),
            auth_method,
            claims: Default::default(),
        };
        assert!(!is_auditor(&config, &p), "{auth_method:?}");
    }
    let without = rds_token_broker::config::load_str(
        &BrokerToml::unauthenticated().without_auditors().to_string(),
    )
    .unwrap();
    assert!(!is_auditor(&without, &Principal::anonymous()));
}

// ---- Item 15: exports and the CLI never print control or bidi characters -------------

/// What a caller could put in an unverified `sub` and a user agent before text was
/// cleaned when recorded: a terminal title escape, CSI as one C1 character, a carriage
/// return, a right-to-left override, a newline and a formula.
const HOSTILE_SUBJECT: &str = "=cmd|x\u{1b}]0;owned\u{7}\u{9b}2J\rsvc-\u{202E}gnp.exe\u{2066}\n";
const HOSTILE_AGENT: &str = "curl\u{200F}\u{061C}\u{85}\u{7f}";

fn assert_inert(what: &str, text: &str, allowed: &[char]) {
    let bad: Vec<String> = text
        .chars()
        .filter(|c| display::is_unsafe(*c) && !allowed.contains(c))
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect();
    assert!(bad.is_empty(), "{what} passes {bad:?}: {text:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_and_the_cli_never_print_control_or_bidi_characters() {
    let store = Store::sqlite();
    let app = app(&store, |c| c).await;
    app.token(json!({"target": "ledger"})).await;
    // An event as older versions recorded it (the hash no longer matters here).
    let pool = sqlx::SqlitePool::connect(&store.url()).await.unwrap();
    sqlx::query("UPDATE audit_events SET subject = $1, user_agent = $2")
        .bind(HOSTILE_SUBJECT)
        .bind(HOSTILE_AGENT)
        .execute(&pool)
        .await
        .unwrap();

    // The API's CSV: U+FFFD in place of each, rows still end in CRLF. (Only the issued
    // event: each read adds an `audit_read` event of its own.)
    let csv = app
        .get("/v1/audit/events?format=csv&outcome=issued")
        .await
        .text()
        .await
        .unwrap();
    assert_inert("format=csv", &csv, &['\r', '\n']);
    assert_eq!(csv.matches("\r\n").count(), 2, "{csv:?}");
    assert!(
        csv.contains(",'=cmd|x\u{FFFD}]0;owned\u{FFFD}\u{FFFD}2J\u{FFFD}svc-\u{FFFD}gnp.exe"),
        "{csv:?}"
    );
    // The API's NDJSON: escaped, so the same strings to a JSON parser.
    let ndjson = app
        .get("/v1/audit/events?format=ndjson&outcome=issued")
        .await
        .text()
        .await
        .unwrap();
    assert_inert("format=ndjson", &ndjson, &['\n']);
    let event: Value = serde_json::from_str(ndjson.trim_end()).unwrap();
    assert_eq!(event["subject"], HOSTILE_SUBJECT);
    assert_eq!(event["user_agent"], HOSTILE_AGENT);

    let dir = tempfile::tempdir().unwrap();
    for (args, allowed) in [
        (&["audit", "query", "--outcome", "issued"][..], &['\n'][..]),
        (
            &["audit", "query", "--outcome", "issued", "--format", "json"],
            &['\n'],
        ),
        (
            &["audit", "query", "--outcome", "issued", "--format", "csv"],
            &['\r', '\n'],
        ),
        (&["audit", "export", "--outcome", "issued"], &['\n']),
        (
            &["audit", "export", "--outcome", "issued", "--format", "csv"],
            &['\r', '\n'],
        ),
    ] {
        let (code, out, err) = text(&cli(&app.base, dir.path(), args).await);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert_inert(&format!("{args:?}"), &out, allowed);
        assert!(
            out.contains("\u{FFFD}") || out.contains("\\u202e"),
            "{args:?}: {out}"
        );
    }
    // NDJSON from the CLI still parses back to the recorded strings.
    let out = cli(
        &app.base,
        dir.path(),
        &["audit", "export", "--outcome", "issued"],
    )
    .await;
    let event: Value = serde_json::from_slice(out.stdout.trim_ascii_end()).unwrap();
    assert_eq!(event["subject"], HOSTILE_SUBJECT);
}

// ---- Item 19: the CLI's output file and cleartext brokers ------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_refuses_plain_http_off_loopback_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let jwt = dir.path().join("caller.jwt");
    std::fs::write(&jwt, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n").unwrap();
    let jwt = jwt.display().to_string();
    // 10.0.0.1:9 is never reached: the refusal comes first, so it is immediate whatever
    // the network does (a connection attempt would take the 5 s connect timeout).
    let started = std::time::Instant::now();
    let broker = [
        "--broker",
        "http://10.0.0.1:9",
        "--timeout",
        "5",
        "--jwt-file",
        &jwt,
    ];
    for (command, tail, status) in [
        (&["token", "--target", "orders-db"][..], &[][..], 1),
        (&["exec", "--target", "orders-db"], &["--", "true"], 1),
        (&["audit", "query"], &[], 1),
        (&["audit", "export"], &[], 1),
        // "Could not check".
        (&["audit", "verify"], &[], 2),
    ] {
        let args = [command, &broker, tail].concat();
        let (code, _, err) = text(&cli("", dir.path(), &args).await);
        assert_eq!(code, Some(status), "{args:?}: {err}");
        assert!(
            err.contains(
                "--broker http://10.0.0.1:9: plain http:// to a host that is not loopback"
            ),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("https://") && err.contains("--insecure-http"),
            "{err}"
        );
        assert!(!err.contains("cannot reach"), "{err}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // Loopback stays plain HTTP, as tests and `serve --dev` use it.
    let app = TestApp::spawn().await;
    let (code, out, err) = text(
        &cli(
            &app.base.replace("127.0.0.1", "localhost"),
            dir.path(),
            &["token", "--target", "ledger"],
        )
        .await,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("ledger.example.internal:3306/?Action=connect"),
        "{out}"
    );
}

/// The last process id the kernel handed out.
fn last_pid() -> u32 {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap();
    loadavg.split_whitespace().nth(4).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_writes_output_files_privately_and_never_through_a_link() {
    use std::os::unix::fs::PermissionsExt as _;
    let store = Store::sqlite();
    let app = app(&store, |c| c).await;
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let link = |name: String| std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
    // `token --output` used `.NAME.tmp-PID`: links at that name for the next process ids.
    let next = last_pid() + 1;
    for pid in next..next + 500 {
        link(format!(".pgpass.tmp-{pid}"));
    }
    // `audit export --output` opened the file itself, following a link there.
    link("export.csv".into());

    let pgpass = dir.path().join("pgpass").display().to_string();
    let (code, _, err) = text(
        &cli(
            &app.base,
            dir.path(),
            &[
                "token", "--target", "ledger", "--format", "pgpass", "--output", &pgpass,
            ],
        )
        .await,
    );
    assert_eq!(code, Some(0), "{err}");
    let export = dir.path().join("export.csv").display().to_string();
    let (code, _, err) = text(
        &cli(
            &app.base,
            dir.path(),
            &["audit", "export", "--format", "csv", "--output", &export],
        )
        .await,
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    for path in [&pgpass, &export] {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert!(meta.file_type().is_file(), "{path} is a file, not the link");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path}");
    }
    assert!(
        std::fs::read_to_string(&pgpass)
            .unwrap()
            .starts_with("ledger.example.internal:3306:*:ledger_svc:")
    );
    assert!(
        std::fs::read_to_string(&export)
            .unwrap()
            .starts_with("id,time,")
    );
    // Nothing else is left beside them: no temporary file.
    let strays: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_type().unwrap().is_symlink())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !["victim", "pgpass", "export.csv"].contains(&n.as_str()))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
}
