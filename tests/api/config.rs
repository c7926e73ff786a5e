//! Configuration validation: every problem reported by key, all at once.

use rds_token_broker::config::{ConfigErrors, load_str};

use crate::support::binary;
use crate::support::config::{Auditor, BrokerToml, Grant, Issuer, Target};

fn errors(toml: &str) -> Vec<(String, String)> {
    let e: ConfigErrors = load_str(toml).expect_err("config should be invalid");
    e.errors.into_iter().map(|e| (e.key, e.message)).collect()
}

fn has(errs: &[(String, String)], key: &str, needle: &str) -> bool {
    errs.iter().any(|(k, m)| k == key && m.contains(needle))
}

/// `orders-db` in eu-west-1 (the region from the host), one DB user.
fn orders_db() -> Target {
    Target::postgres("orders-db").db_users(["app_rw"])
}

/// Only the target: every other key takes its default.
fn minimal() -> BrokerToml {
    BrokerToml::default().target(orders_db())
}

#[test]
fn the_example_config_is_valid() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/broker.toml"))
            .unwrap();
    let c = load_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.targets.len(), 5);
    let reports = c
        .targets
        .values()
        .find(|t| t.name.as_str() == "reports")
        .unwrap();
    assert_eq!(
        reports.region.as_str(),
        "eu-west-1",
        "falls back to aws.region"
    );
}

#[test]
fn a_minimal_config_gets_defaults() {
    let c = load_str(&minimal().to_string()).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8443");
    assert!(!c.server.allow_unauthenticated);
    assert_eq!(c.tokens.min_remaining.as_secs(), 300);
    let t = c.targets.values().next().unwrap();
    assert_eq!(t.region.as_str(), "eu-west-1");
    assert_eq!(
        (t.max_connections_per_second, t.burst, t.share_tokens),
        (200, 20, false)
    );
}

#[test]
fn every_unknown_key_is_reported_with_semantic_errors_in_one_pass() {
    let toml = BrokerToml::default()
        .server("listen", "0.0.0.0:1")
        .server("lisen", "x")
        .target(orders_db().set("bogus", 1))
        .target(
            Target::postgres("orders-db")
                .host("db.example.com")
                .db_users(["u"])
                .set("colour", "red"),
        );
    let errs = errors(&toml.to_string());
    assert!(has(&errs, "targets[0].bogus", "unknown key"), "{errs:?}");
    assert!(
        has(
            &errs,
            "server.lisen",
            "unknown key; did you mean \"listen\"?"
        ),
        "{errs:?}"
    );
    // Nothing close: no guess.
    assert!(
        errs.contains(&("targets[0].bogus".into(), "unknown key".into())),
        "{errs:?}"
    );
    assert!(has(&errs, "targets[1].colour", "unknown key"), "{errs:?}");
    assert!(
        has(&errs, "targets[1].name", "duplicate target name"),
        "{errs:?}"
    );
    assert!(has(&errs, "targets[1].region", "required"), "{errs:?}");
}

#[test]
fn bad_values_are_named_by_key() {
    let toml = BrokerToml::default()
        .server("listen", "nowhere")
        .server("tls_cert", "/x.crt")
        .server("trusted_proxies", vec!["10.0.0.0/33"])
        .set("log", "format", "xml")
        .aws("region", "Europe")
        .aws("session_duration_seconds", 60)
        .target(
            Target::postgres("bad name")
                .host("-bad-.example.com")
                .port(70000)
                .engine("oracle")
                .db_users(Vec::<String>::new())
                .role_arn("arn:aws:iam::123:role/x"),
        )
        .target(
            Target::mysql("t2")
                .host("db.eu-west-1.rds.amazonaws.com")
                .port(5432)
                .region("us-east-1")
                .db_users(["u", "u"])
                .resource_id("cluster-ABC"),
        )
        .to_string();
    let errs = errors(&toml);
    for (key, needle) in [
        ("server.listen", "IP address and port"),
        ("server.tls_key", "both or neither"),
        ("server.trusted_proxies[0]", "IP network"),
        ("log.format", "json"),
        ("aws.region", "region code"),
        ("aws.session_duration_seconds", "900"),
        ("targets[0].name", "letters"),
        ("targets[0].host", "DNS name"),
        ("targets[0].port", "65535"),
        ("targets[0].engine", "postgres"),
        ("targets[0].db_users", "at least one"),
        ("targets[0].role_arn", "IAM role ARN"),
        ("targets[1].region", "contradicts the host"),
        ("targets[1].db_users[1]", "duplicate DB user"),
        ("targets[1].resource_id", "only takes effect with role_arn"),
    ] {
        assert!(
            has(&errs, key, needle),
            "missing {key} ~ {needle}: {errs:#?}"
        );
    }
}

#[test]
fn grants_and_auditors_must_name_known_issuers_targets_and_db_users() {
    let toml = minimal()
        .issuer(
            Issuer::discovery("k8s", "https://k8s")
                .audiences(["b"])
                .set("algorithms", vec!["HS256"]),
        )
        .grant(
            Grant::new("nope", "*")
                .targets(["orders-db", "ghost-db"])
                .db_users(["app_ro"]),
        )
        .grant(
            Grant::new("aws-iam", "arn:*")
                .targets(["orders-db"])
                .db_users(["app_rw"]),
        )
        .auditor(Auditor::new("elsewhere", ""))
        .to_string();
    let errs = errors(&toml);
    for (key, needle) in [
        ("issuers[0].algorithms[0]", "unsupported algorithm"),
        ("grants[0].issuer", "unknown issuer"),
        ("grants[0].targets[1]", "unknown target"),
        ("grants[0].db_users[0]", "not in db_users"),
        ("grants[1].issuer", "iam_server_id"),
        ("auditors[0].issuer", "unknown issuer"),
        ("auditors[0].subject", "must not be empty"),
    ] {
        assert!(
            has(&errs, key, needle),
            "missing {key} ~ {needle}: {errs:#?}"
        );
    }
}

#[test]
fn an_entry_with_an_error_still_counts_as_declared_so_errors_do_not_cascade() {
    // A typo in one target's engine and one issuer's algorithm: each is reported once, at
    // its own key; the grants and auditors naming them are not told they are unknown.
    let toml = minimal()
        .issuer(
            Issuer::discovery("k8s", "https://k8s")
                .audiences(["b"])
                .set("algorithms", vec!["HS256"]),
        )
        .target(
            Target::postgres("reports")
                .engine("postgress")
                .db_users(["analyst"]),
        )
        .grant(
            Grant::new("k8s", "*")
                .targets(["orders-db"])
                .db_users(["app_rw"]),
        )
        .grant(
            Grant::new("k8s", "*")
                .targets(["reports"])
                .db_users(["analyst"]),
        )
        .auditor(Auditor::new("k8s", "auditor"))
        .ui_oidc("issuer", "k8s")
        .ui_oidc("client_id", "b")
        .to_string();
    let errs = errors(&toml);
    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["issuers[0].algorithms[0]", "targets[1].engine"],
        "{errs:#?}"
    );
    assert!(errs[0].1.contains("unsupported algorithm"), "{errs:#?}");
    assert!(errs[1].1.contains("must be one of postgres"), "{errs:#?}");

    // A DB user the broken target does not list is still reported.
    let toml = minimal()
        .target(
            Target::postgres("reports")
                .engine("postgress")
                .db_users(["analyst"]),
        )
        .grant(
            Grant::new("aws-iam", "*")
                .targets(["reports"])
                .db_users(["nobody"]),
        )
        .aws("iam_server_id", "broker.example")
        .to_string();
    let errs = errors(&toml);
    assert!(
        has(&errs, "grants[0].db_users[0]", "not in db_users"),
        "{errs:#?}"
    );
    assert!(
        !errs.iter().any(|(_, m)| m.contains("unknown target")),
        "{errs:#?}"
    );
}

#[test]
fn unauthenticated_mode_requires_a_loopback_listener() {
    let unauthenticated = |listen: &str| {
        minimal()
            .server("listen", listen)
            .server("allow_unauthenticated", true)
            .to_string()
    };
    assert!(has(
        &errors(&unauthenticated("0.0.0.0:8443")),
        "server.allow_unauthenticated",
        "loopback"
    ));
    assert!(load_str(&unauthenticated("127.0.0.1:8443")).is_ok());
}

#[test]
fn type_errors_name_the_line() {
    // Written by hand: the builder cannot write a port as a string.
    let errs = errors(
        "[[targets]]\nname = \"a\"\nhost = \"h.example.com\"\nport = \"5432\"\nengine = \"postgres\"\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].0.contains("line 4"), "{errs:?}");
}

#[test]
fn check_config_exits_0_for_valid_and_1_listing_every_error_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/broker.toml");
    // The example names TLS files this machine does not have: the file is valid, but
    // `serve` would fail, so check-config says so (and --no-files checks the file alone).
    let out = binary::run(dir.path(), &["check-config", "--config", example]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{example}: the file is valid (5 targets, 2 issuers, 3 grants), but 1 problem \
             with what it names:\n  {example}: server.tls_cert, server.tls_key: \
             /etc/rds-token-broker/tls.crt: "
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("\n    fix: point server.tls_cert at a PEM certificate chain"),
        "{stderr}"
    );
    let out = binary::run(
        dir.path(),
        &["check-config", "--config", example, "--no-files"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{example}: valid (5 targets, 2 issuers, 3 grants)\n")
    );

    let bad = BrokerToml::default()
        .target(
            Target::postgres("x")
                .host("db.example.com")
                .port(0)
                .engine("db2")
                .db_users(["u"])
                .set("extra", 1),
        )
        .write_to(dir.path());
    let out = binary::run(
        dir.path(),
        &["check-config", "--config", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = bad.display().to_string();
    for key in [
        "targets[0].extra",
        "targets[0].port",
        "targets[0].engine",
        "targets[0].region",
    ] {
        assert!(
            stderr.contains(&format!("{file}: {key}: ")),
            "{key} missing from:\n{stderr}"
        );
    }
    assert!(stderr.contains("4 errors"), "{stderr}");

    let out = binary::run(
        dir.path(),
        &["check-config", "--config", "/nonexistent/broker.toml"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

// The tests' own config builder (`support::config`) writes what the broker reads.

#[test]
fn the_test_builders_unauthenticated_config_loads_with_both_targets_and_the_anonymous_auditor() {
    let text = BrokerToml::unauthenticated().to_string();
    let c = rds_token_broker::config::load_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c.targets.len(), 2, "{text}");
    assert!(c.server.allow_unauthenticated);
}

#[test]
fn the_test_builder_quotes_and_escapes_values_as_toml() {
    let text = BrokerToml::new()
        .server("trusted_proxies", vec!["10.0.0.0/8"])
        .target(Target::postgres("orders-db").db_users(["a\"b", "c\\d"]))
        .grant(
            Grant::new("corp", "*")
                .claim("groups", "dba")
                .targets(["orders-db"])
                .db_users(["a\"b"]),
        )
        .to_string();
    let parsed: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        parsed["targets"][0]["db_users"][0].as_str(),
        Some("a\"b"),
        "{text}"
    );
    assert_eq!(
        parsed["grants"][0]["claims"]["groups"].as_str(),
        Some("dba")
    );
    assert_eq!(
        parsed["server"]["trusted_proxies"][0].as_str(),
        Some("10.0.0.0/8")
    );
}

/// Runs check-config on `config` in `dir`; returns (exit code, stdout, stderr).
fn check_config(
    dir: &std::path::Path,
    config: &BrokerToml,
    extra: &[&str],
) -> (i32, String, String) {
    let path = config.write_to(dir);
    let out = binary::run(
        dir,
        &[
            &["check-config", "--config", path.to_str().unwrap()][..],
            extra,
        ]
        .concat(),
    );
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn check_config_checks_that_the_files_it_names_exist_and_parse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, cert, key) = crate::support::pki::pki("check-config");
    let (_, other_cert, _) = crate::support::pki::pki("another");
    std::fs::write(d.join("tls.crt"), &cert).unwrap();
    std::fs::write(d.join("tls.key"), &key).unwrap();
    std::fs::write(d.join("other.crt"), &other_cert).unwrap();
    std::fs::write(d.join("ca.pem"), &cert).unwrap();
    std::fs::write(d.join("bad.jwks"), "{\"keys\": 1}").unwrap();
    let rsa = crate::support::idp::RsaKey::generate("k1");
    let good = crate::support::idp::file_issuer(d, &rsa, "https://good.example");
    let sqlite = |path: &std::path::Path| format!("sqlite://{}", path.display());

    // Everything there: each check says what it found.
    let config = minimal()
        .server("tls_cert", d.join("tls.crt").display().to_string())
        .server("tls_key", d.join("tls.key").display().to_string())
        .issuer(good.clone())
        .audit_url(sqlite(&d.join("audit.db")));
    let (code, stdout, stderr) = check_config(d, &config, &[]);
    assert_eq!(code, 0, "{stderr}");
    let file = d.join("broker.toml").display().to_string();
    assert_eq!(
        stdout,
        format!(
            "{file}: valid (1 target, 1 issuer, 0 grants)\n  \
             ok: server.tls_cert, server.tls_key: {d}/tls.crt and {d}/tls.key load and \
             belong together\n  \
             ok: issuers[0].jwks_file: 1 signing key for issuer \"corp\"\n  \
             ok: audit.url: directory {d} exists\n",
            d = d.display()
        )
    );

    // A key that is not the certificate's, a JWKS that is not one, a database in a
    // directory that does not exist, a CA file that is missing: each named, with its fix.
    let config = minimal()
        .server("tls_cert", d.join("other.crt").display().to_string())
        .server("tls_key", d.join("tls.key").display().to_string())
        .issuer(Issuer::jwks_file(
            "bad",
            "https://bad.example",
            &d.join("bad.jwks"),
        ))
        .audit_url(sqlite(&d.join("no-such-dir/audit.db")));
    let (code, stdout, stderr) = check_config(d, &config, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.starts_with(&format!(
            "{file}: the file is valid (1 target, 1 issuer, 0 grants), but 3 problems with \
             what it names:\n"
        )),
        "{stderr}"
    );
    for (key, message, fix) in [
        (
            "server.tls_cert, server.tls_key",
            "other.crt and ",
            "point server.tls_cert at a PEM certificate chain",
        ),
        (
            "issuers[0].jwks_file",
            "bad.jwks",
            "point jwks_file at the issuer's JWKS",
        ),
        (
            "audit.url",
            "no-such-dir does not exist",
            "create the directory (the broker creates the database file)",
        ),
    ] {
        let at = stderr
            .find(&format!("  {file}: {key}: "))
            .unwrap_or_else(|| panic!("{key} missing: {stderr}"));
        let entry = &stderr[at..];
        let (first, rest) = entry.split_once('\n').unwrap();
        assert!(first.contains(message), "{key}: {first}");
        assert!(
            rest.starts_with(&format!("    fix: {fix}")),
            "{key}: {rest}"
        );
    }
    assert!(stderr.contains("do not belong together"), "{stderr}");

    // The CA file of a PostgreSQL audit store (checked without connecting).
    let config = minimal().audit_url(format!(
        "postgres://broker:s3cret-pw@db.invalid/audit?sslrootcert={}",
        d.join("missing-ca.pem").display()
    ));
    let (code, stdout, stderr) = check_config(d, &config, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains(&format!(
            "  {file}: audit.url (sslrootcert): cannot read {}/missing-ca.pem: ",
            d.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-pw") && !stdout.contains("s3cret-pw"));
    let config = minimal().audit_url(format!(
        "postgres://broker@db.invalid/audit?sslrootcert={}",
        d.join("ca.pem").display()
    ));
    let (code, stdout, stderr) = check_config(d, &config, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "  ok: audit.url (sslrootcert): {}/ca.pem: 1 CA certificate\n",
            d.display()
        )),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_online_reports_each_service_that_does_not_answer_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let closed = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (pg, redis, jwks) = (closed(), closed(), closed());
    let rsa = crate::support::idp::RsaKey::generate("k1");
    let idp = crate::support::idp::TestIdp::start(vec![rsa.jwk()]).await;
    let config = minimal()
        .audit_url(format!("postgres://broker:s3cret-pw@127.0.0.1:{pg}/audit"))
        .rate_limit("redis_url", format!("redis://:r3dis-pw@127.0.0.1:{redis}"))
        .issuer(Issuer::idp("served", &idp))
        .issuer(Issuer::jwks_uri(
            "down",
            "https://down.example",
            &format!("http://127.0.0.1:{jwks}/jwks"),
        ));
    // `binary::run`: no AWS credentials anywhere, no instance metadata.
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || check_config(&d, &config, &["--online"]))
            .await
            .unwrap();
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let file = dir.path().join("broker.toml").display().to_string();
    assert_eq!(
        stdout, "  ok: issuers[0].jwks_uri: 1 signing key for issuer \"served\"\n",
        "{stderr}"
    );
    assert!(
        stderr.starts_with(&format!(
            "{file}: the file is valid (1 target, 2 issuers, 0 grants), but 4 problems with \
             what it names:\n"
        )),
        "{stderr}"
    );
    for (key, message, fix) in [
        (
            "audit.url",
            format!("PostgreSQL at 127.0.0.1:{pg}: "),
            "check that the database is reachable",
        ),
        (
            "rate_limit.redis_url",
            format!("Redis at 127.0.0.1:{redis}: "),
            "check that Redis is reachable",
        ),
        (
            "issuers[1].jwks_uri",
            format!("http://127.0.0.1:{jwks}/jwks: "),
            "check that jwks_uri is right and reachable",
        ),
        (
            "(AWS credentials)",
            "no AWS credentials: no provider in the chain".to_owned(),
            "give the broker an identity: an IAM role",
        ),
    ] {
        let line = format!("  {file}: {key}: {message}");
        let at = stderr
            .find(&line)
            .unwrap_or_else(|| panic!("{line:?} missing: {stderr}"));
        let (_, rest) = stderr[at..].split_once('\n').unwrap();
        assert!(
            rest.starts_with(&format!("    fix: {fix}")),
            "{key}: {rest}"
        );
    }
    for secret in ["s3cret-pw", "r3dis-pw"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a password was printed"
        );
    }
}
