//! Token signing: botocore's reference vectors for every kind (RDS, Aurora DSQL,
//! ElastiCache, MemoryDB), byte for byte, and agreement with an independent SigV4
//! presigner on generated inputs of every kind.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use proptest::prelude::*;
use rds_token_broker::token::{CacheService, TokenKind, TokenParams, dsql_action};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::support::oracle::{self, Input, Kind};

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`.
fn parse_rfc3339(s: &str) -> u64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)) as u64
}

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rds_token_vectors.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let v = doc["vectors"].as_array().unwrap().clone();
    assert_eq!(v.len(), 37, "the reference file should hold 37 vectors");
    assert_eq!(doc["count"], 37);
    v
}

/// The broker's signer on the oracle's input. For DSQL the broker takes the Postgres role
/// and derives the action; the oracle is given the action: `admin` is the role behind
/// `DbConnectAdmin`.
fn ours(i: &Input<'_>) -> String {
    let session = i.session_token.map(str::to_owned);
    let creds = Credentials::new(i.access_key_id, i.secret_access_key, session, None, "test");
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(i.time);
    let (kind, db_user) = match i.kind {
        Kind::Rds => (TokenKind::Rds, i.user),
        Kind::Dsql { action, expires } => (
            TokenKind::Dsql {
                lifetime_secs: u32::try_from(expires).unwrap(),
            },
            match action {
                "DbConnectAdmin" => "admin",
                "DbConnect" => i.user,
                other => panic!("no DSQL action {other}"),
            },
        ),
        Kind::Cache {
            service,
            serverless,
        } => (
            TokenKind::Cache {
                service: match service {
                    "elasticache" => CacheService::ElastiCache,
                    "memorydb" => CacheService::MemoryDb,
                    other => panic!("no cache service {other}"),
                },
                serverless,
            },
            i.user,
        ),
    };
    let params = TokenParams {
        host: i.host,
        port: i.port,
        region: i.region,
        db_user,
    };
    kind.sign(params, &creds, time)
        .unwrap()
        .expose_secret()
        .to_owned()
}

fn input(v: &Value) -> Input<'_> {
    Input {
        kind: Kind::Rds,
        host: field(v, "host"),
        port: v["port"].as_u64().unwrap() as u16,
        region: field(v, "region"),
        user: field(v, "user"),
        access_key_id: field(v, "access_key_id"),
        secret_access_key: field(v, "secret_access_key"),
        session_token: v["session_token"].as_str(),
        time: parse_rfc3339(field(v, "timestamp")),
    }
}

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap()
}

#[test]
fn rfc3339_parser_agrees_with_known_instants() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), 0);
    assert_eq!(parse_rfc3339("2026-03-09T14:11:29Z"), 1_773_065_489);
    assert_eq!(parse_rfc3339("2024-02-29T23:59:59Z"), 1_709_251_199);
}

/// Fails the test naming every vector whose token `sign` does not reproduce.
fn assert_reproduced(what: &str, vectors: &[Value], sign: impl Fn(&Value) -> String) {
    let mismatches: Vec<String> = vectors
        .iter()
        .filter_map(|v| {
            let got = sign(v);
            (got != field(v, "token")).then(|| {
                format!(
                    "{}:\n  want {}\n  got  {got}",
                    field(v, "name"),
                    field(v, "token")
                )
            })
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{what}: {} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn every_botocore_vector_is_reproduced_byte_for_byte() {
    assert_reproduced("the broker", &vectors(), |v| ours(&input(v)));
}

#[test]
fn the_independent_presigner_reproduces_every_vector_too() {
    assert_reproduced("the oracle", &vectors(), |v| oracle::presign(&input(v)));
}

fn both(host: &str, port: u16, user: &str, session: Option<&str>) -> (String, String) {
    let i = Input {
        kind: Kind::Rds,
        host,
        port,
        region: "eu-west-1",
        user,
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        session_token: session,
        time: 1_773_065_489,
    };
    (ours(&i), oracle::presign(&i))
}

#[test]
fn port_443_is_named_in_the_token_but_not_signed_and_port_80_is_kept() {
    let (a, b) = both("db.eu-west-1.rds.amazonaws.com", 443, "u", None);
    assert_eq!(a, b);
    assert!(a.starts_with("db.eu-west-1.rds.amazonaws.com:443/?Action=connect&DBUser=u&"));
    // The oracle signs `host:db...com` for 443; signing `:443` would give another token.
    let (a80, b80) = both("db.eu-west-1.rds.amazonaws.com", 80, "u", None);
    assert_eq!(a80, b80);
    assert!(a80.starts_with("db.eu-west-1.rds.amazonaws.com:80/?"));
}

#[test]
fn mixed_case_hosts_keep_their_case_and_sign_lower_case() {
    let (a, b) = both(
        "Orders.Cluster-ABC.eu-west-1.rds.amazonaws.com",
        5432,
        "u",
        None,
    );
    assert_eq!(a, b);
    assert!(a.starts_with("Orders.Cluster-ABC.eu-west-1.rds.amazonaws.com:5432/?"));
    let (lower, _) = both(
        "orders.cluster-abc.eu-west-1.rds.amazonaws.com",
        5432,
        "u",
        None,
    );
    assert_eq!(
        a.rsplit("X-Amz-Signature=").next(),
        lower.rsplit("X-Amz-Signature=").next(),
        "same signature: host is signed lower-cased"
    );
}

#[test]
fn awkward_user_names_are_encoded_once_and_never_panic() {
    let all_printable: String = (0x20u8..0x7f).map(char::from).collect();
    let long = "é".repeat(64);
    let cases = [
        ("with space", "with%20space"),
        ("user+tag", "user%2Btag"),
        ("mario.rossi@example.com", "mario.rossi%40example.com"),
        ("a=b", "a%3Db"),
        ("jürgen", "j%C3%BCrgen"),
        ("?&#", "%3F%26%23"),
        ("100%", "100%25"),
        ("~tilde~", "~tilde~"),
        (long.as_str(), &"%C3%A9".repeat(64)),
        (all_printable.as_str(), ""),
    ];
    for (user, encoded) in cases {
        let (a, b) = both(
            "db.eu-west-1.rds.amazonaws.com",
            5432,
            user,
            Some("FwoGZXIvYXdzE/+Ab=="),
        );
        assert_eq!(a, b, "user {user:?}");
        if !encoded.is_empty() {
            assert!(
                a.contains(&format!("&DBUser={encoded}&X-Amz-Algorithm=")),
                "user {user:?}: {a}"
            );
        }
        assert!(a.contains("&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FwoGZXIvYXdzE%2F%2BAb%3D%3D&X-Amz-Signature="));
    }
}

fn user_strategy() -> impl Strategy<Value = String> {
    let tricky = prop::collection::vec(
        prop::sample::select(vec![
            '@', '+', '=', '%', '/', ';', ':', '?', '&', '#', ' ', '"', '<', '>', '[', ']', '{',
            '}', '|', '^', '~', 'a', 'Z', '0', '_', '.', '-', 'é', '字', '🙂',
        ]),
        1..40,
    )
    .prop_map(|v| v.into_iter().collect::<String>());
    let unicode = prop::collection::vec(
        any::<char>().prop_filter("no control characters", |c| !c.is_control()),
        1..64,
    )
    .prop_map(|v| v.into_iter().collect::<String>());
    prop_oneof![tricky, unicode]
}

fn host_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,14}[a-zA-Z0-9])?", 1..6)
        .prop_map(|labels| labels.join("."))
}

fn port_strategy() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(443u16),
        Just(80u16),
        Just(5432u16),
        Just(3306u16),
        1u16..=u16::MAX
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_signer_agrees_with_the_independent_presigner(
        host in host_strategy(),
        port in port_strategy(),
        region in "[a-z]{2}-[a-z]{3,9}-[1-9]",
        user in user_strategy(),
        key in "(AKIA|ASIA)[A-Z2-7]{16}",
        secret in "[A-Za-z0-9/+]{40}",
        session in prop::option::of("[A-Za-z0-9/+=]{16,400}"),
        t in 31_536_000u64..4_102_444_800,
    ) {
        let i = Input {
            kind: Kind::Rds, host: &host, port, region: &region, user: &user, access_key_id: &key,
            secret_access_key: &secret, session_token: session.as_deref(), time: t,
        };
        prop_assert_eq!(ours(&i), oracle::presign(&i));
    }
}

fn sibling_vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sibling_vectors.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let v = doc["vectors"].as_array().unwrap().clone();
    assert_eq!(v.len(), 7, "the sibling file should hold 7 vectors");
    for kind in ["dsql", "elasticache", "memorydb"] {
        assert!(v.iter().any(|v| v["kind"] == kind), "no {kind} vector");
    }
    v
}

/// The oracle's input for a vector of `sibling_vectors.json`.
fn sibling_input(v: &Value) -> Input<'_> {
    let (kind, host, user) = match field(v, "kind") {
        "dsql" => (
            Kind::Dsql {
                action: field(v, "action"),
                expires: v["expires_in"].as_u64().unwrap(),
            },
            field(v, "hostname"),
            "app",
        ),
        service @ ("elasticache" | "memorydb") => {
            assert_eq!(v["expires_in"], 900);
            (
                Kind::Cache {
                    service,
                    serverless: v["serverless"].as_bool().unwrap(),
                },
                field(v, "cache_name"),
                field(v, "user"),
            )
        }
        other => panic!("unknown kind {other}"),
    };
    Input {
        kind,
        host,
        // Not signed for these kinds: any port gives the same token.
        port: 5432,
        region: field(v, "region"),
        user,
        access_key_id: field(v, "access_key_id"),
        secret_access_key: field(v, "secret_access_key"),
        session_token: v["session_token"].as_str(),
        time: parse_rfc3339(field(v, "timestamp")),
    }
}

#[test]
fn every_sibling_vector_is_reproduced_byte_for_byte() {
    assert_reproduced("the broker", &sibling_vectors(), |v| {
        ours(&sibling_input(v))
    });
}

#[test]
fn the_independent_presigner_reproduces_every_sibling_vector_too() {
    assert_reproduced("the oracle", &sibling_vectors(), |v| {
        oracle::presign(&sibling_input(v))
    });
}

#[test]
fn only_the_admin_role_gets_db_connect_admin() {
    assert_eq!(dsql_action("admin"), "DbConnectAdmin");
    for role in ["app", "Admin", "admin ", "administrator", "readonly"] {
        assert_eq!(dsql_action(role), "DbConnect", "{role:?}");
    }
}

#[test]
fn dsql_lifetimes_outside_what_dsql_accepts_are_refused() {
    let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", "secret", None, None, "test");
    let params = TokenParams {
        host: "abc.dsql.us-east-1.on.aws",
        port: 5432,
        region: "us-east-1",
        db_user: "app",
    };
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_773_065_489);
    for lifetime_secs in [0, 604_801, u32::MAX] {
        let err = TokenKind::Dsql { lifetime_secs }
            .sign(params, &creds, time)
            .unwrap_err();
        assert!(err.to_string().contains("604800"), "{err}");
    }
    let week = TokenKind::Dsql {
        lifetime_secs: 604_800,
    }
    .sign(params, &creds, time)
    .unwrap();
    assert!(week.expose_secret().contains("&X-Amz-Expires=604800&"));
}

#[test]
fn the_kinds_sign_apart() {
    // Same host, user, credentials and time: every kind gives a different signature.
    let base = |kind| Input {
        kind,
        host: "orders",
        port: 6379,
        region: "eu-west-1",
        user: "app",
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        session_token: None,
        time: 1_773_065_489,
    };
    let tokens: Vec<String> = [
        Kind::Rds,
        Kind::Dsql {
            action: "DbConnect",
            expires: 900,
        },
        Kind::Cache {
            service: "elasticache",
            serverless: false,
        },
        Kind::Cache {
            service: "elasticache",
            serverless: true,
        },
        Kind::Cache {
            service: "memorydb",
            serverless: false,
        },
    ]
    .into_iter()
    .map(|k| ours(&base(k)))
    .collect();
    let signatures: std::collections::BTreeSet<&str> = tokens
        .iter()
        .map(|t| t.rsplit("X-Amz-Signature=").next().unwrap())
        .collect();
    assert_eq!(signatures.len(), tokens.len(), "{tokens:#?}");
}

fn role_strategy() -> impl Strategy<Value = String> {
    prop_oneof![Just("admin".to_owned()), user_strategy()]
}

fn dsql_host_strategy() -> impl Strategy<Value = String> {
    ("[a-z0-9]{26}", "[a-z]{2}-[a-z]{3,9}-[1-9]")
        .prop_map(|(id, region)| format!("{id}.dsql.{region}.on.aws"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_dsql_signer_agrees_with_the_independent_presigner(
        host in dsql_host_strategy(),
        region in "[a-z]{2}-[a-z]{3,9}-[1-9]",
        role in role_strategy(),
        expires in prop_oneof![Just(900u64), Just(604_800u64), 1u64..=604_800],
        key in "(AKIA|ASIA)[A-Z2-7]{16}",
        secret in "[A-Za-z0-9/+]{40}",
        session in prop::option::of("[A-Za-z0-9/+=]{16,400}"),
        t in 31_536_000u64..4_102_444_800,
    ) {
        // The rule, written out here rather than borrowed from the broker.
        let action = if role == "admin" { "DbConnectAdmin" } else { "DbConnect" };
        let i = Input {
            kind: Kind::Dsql { action, expires }, host: &host, port: 5432, region: &region,
            user: &role, access_key_id: &key, secret_access_key: &secret,
            session_token: session.as_deref(), time: t,
        };
        let token = ours(&i);
        prop_assert!(token.starts_with(&format!("{host}/?Action={action}&X-Amz-Algorithm=")), "{}", token);
        prop_assert_eq!(token, oracle::presign(&i));
    }

    #[test]
    fn the_cache_signer_agrees_with_the_independent_presigner(
        service in prop::sample::select(vec!["elasticache", "memorydb"]),
        serverless in any::<bool>(),
        name in "[a-z]([a-z0-9]|-[a-z0-9]){0,19}",
        region in "[a-z]{2}-[a-z]{3,9}-[1-9]",
        user in user_strategy(),
        key in "(AKIA|ASIA)[A-Z2-7]{16}",
        secret in "[A-Za-z0-9/+]{40}",
        session in prop::option::of("[A-Za-z0-9/+=]{16,400}"),
        t in 31_536_000u64..4_102_444_800,
    ) {
        // MemoryDB has no serverless caches: the broker never signs one.
        let serverless = serverless && service == "elasticache";
        let i = Input {
            kind: Kind::Cache { service, serverless }, host: &name, port: 6379,
            region: &region, user: &user, access_key_id: &key, secret_access_key: &secret,
            session_token: session.as_deref(), time: t,
        };
        prop_assert_eq!(ours(&i), oracle::presign(&i));
    }
}
