//! Target kinds in configuration (`kind = "rds"`, `"dsql"`, `"elasticache"`,
//! `"memorydb"`): each kind's defaults, and every per-kind problem reported by key in one
//! pass.

use rds_token_broker::config::{Config, ConfigErrors, Target as Checked, TargetKind, load_str};
use rds_token_broker::domain::{Engine, Kind};

use crate::support::config::{BrokerToml, Target};

fn errors(toml: &BrokerToml) -> Vec<(String, String)> {
    let e: ConfigErrors = load_str(&toml.to_string()).expect_err("config should be invalid");
    e.errors.into_iter().map(|e| (e.key, e.message)).collect()
}

fn has(errs: &[(String, String)], key: &str, needle: &str) -> bool {
    errs.iter().any(|(k, m)| k == key && m.contains(needle))
}

fn load(toml: &BrokerToml) -> Config {
    load_str(&toml.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn target<'a>(c: &'a Config, name: &str) -> &'a Checked {
    c.targets
        .values()
        .find(|t| t.name.as_str() == name)
        .unwrap()
}

#[test]
fn each_kind_gets_its_defaults() {
    let c = load(
        &BrokerToml::default()
            .target(Target::postgres("orders-db"))
            .target(Target::dsql("dsql"))
            .target(Target::elasticache("sessions"))
            .target(Target::elasticache("serverless").serverless(true))
            .target(Target::memorydb("ledger")),
    );

    let rds = target(&c, "orders-db");
    assert_eq!(rds.kind, TargetKind::Rds, "rds is the default kind");
    assert_eq!((rds.max_connections_per_second, rds.burst), (200, 20));

    let dsql = target(&c, "dsql");
    assert_eq!(
        dsql.kind,
        TargetKind::Dsql {
            cluster_id: "abcdefghijklmnopqrst123456".into(),
            token_lifetime_secs: 900,
        }
    );
    assert_eq!(dsql.kind.kind(), Kind::Dsql);
    assert_eq!(dsql.region.as_str(), "us-east-1", "inferred from the host");
    assert_eq!((dsql.port, dsql.engine), (5432, Engine::Postgres));
    assert_eq!(
        (dsql.max_connections_per_second, dsql.burst),
        (100, 1000),
        "DSQL's documented quota per cluster"
    );

    let ec = target(&c, "sessions");
    assert_eq!(ec.kind.kind(), Kind::Elasticache);
    assert_eq!(ec.kind.cache_name().unwrap().as_str(), "my-redis-cluster");
    assert_eq!(ec.signed_host().as_str(), "my-redis-cluster");
    assert_eq!((ec.port, ec.engine), (6379, Engine::Valkey));
    assert!(matches!(
        target(&c, "serverless").kind,
        TargetKind::Elasticache {
            serverless: true,
            ..
        }
    ));
    assert!(matches!(
        ec.kind,
        TargetKind::Elasticache {
            serverless: false,
            ..
        }
    ));
    assert_eq!((ec.max_connections_per_second, ec.burst), (200, 20));

    let mdb = target(&c, "ledger");
    assert_eq!(mdb.kind.kind(), Kind::Memorydb);
    assert_eq!(mdb.signed_host().as_str(), "ledger-cluster");
}

#[test]
fn dsql_lifetimes_and_budgets_can_be_set() {
    let c = load(
        &BrokerToml::default().target(
            Target::dsql("dsql")
                .token_lifetime_seconds(604_800)
                .budget(5, 7)
                .port(5433)
                .engine("postgres")
                .region("us-east-1"),
        ),
    );
    let t = target(&c, "dsql");
    assert_eq!(
        t.kind,
        TargetKind::Dsql {
            cluster_id: "abcdefghijklmnopqrst123456".into(),
            token_lifetime_secs: 604_800,
        }
    );
    assert_eq!(
        (t.max_connections_per_second, t.burst, t.port),
        (5, 7, 5433)
    );
}

#[test]
fn every_per_kind_problem_is_reported_at_once() {
    let role = "arn:aws:iam::123456789012:role/broker";
    let toml = BrokerToml::default()
        // 0: an unknown kind.
        .target(Target::postgres("t0").kind("redis"))
        // 1: a DSQL target on an RDS host, with another kind's keys and a bad lifetime.
        .target(
            Target::dsql("t1")
                .host("orders.cluster-abc.eu-west-1.rds.amazonaws.com")
                .token_lifetime_seconds(0)
                .cache_name("x")
                .serverless(true)
                .engine("mysql")
                .role_arn(role)
                .resource_id("cluster-ABC"),
        )
        // 2: a week and a second is too long; the region contradicts the host.
        .target(
            Target::dsql("t2")
                .token_lifetime_seconds(604_801)
                .region("eu-west-1"),
        )
        // 3: a cache without cache_name or region, on a DSQL host.
        .target(
            Target::elasticache("t3")
                .host("abc.dsql.us-east-1.on.aws")
                .without_cache_name()
                .without_region(),
        )
        // 4: upper case in the name, RDS-only and DSQL-only keys, wrong engine,
        //    a wildcard user in a policy that names users.
        .target(
            Target::elasticache("t4")
                .cache_name("My-Cache")
                .token_lifetime_seconds(900)
                .engine("postgres")
                .role_arn(role)
                .resource_id("db-ABC")
                .db_users(["app-*"]),
        )
        // 5: MemoryDB has no serverless caches; an ElastiCache host.
        .target(
            Target::memorydb("t5")
                .serverless(false)
                .host("master.x.abc123.use1.cache.amazonaws.com"),
        )
        // 6: an RDS target on a DSQL endpoint, with the keys of other kinds.
        .target(
            Target::postgres("t6")
                .host("abc.dsql.us-east-1.on.aws")
                .region("us-east-1")
                .cache_name("x")
                .token_lifetime_seconds(900),
        )
        // 7: an RDS target needs port and engine.
        .target(Target::postgres("t7").without_port().without_engine());
    let errs = errors(&toml);
    for (key, needle) in [
        ("targets[0].kind", "rds, dsql, elasticache, memorydb"),
        ("targets[1].host", "Aurora DSQL cluster endpoint"),
        ("targets[1].token_lifetime_seconds", "between 1 and 604800"),
        ("targets[1].cache_name", "does not apply to kind = \"dsql\""),
        ("targets[1].serverless", "does not apply to kind = \"dsql\""),
        ("targets[1].engine", "must be postgres for kind = \"dsql\""),
        ("targets[1].resource_id", "cluster id comes from the host"),
        ("targets[2].token_lifetime_seconds", "between 1 and 604800"),
        ("targets[2].region", "contradicts the host"),
        (
            "targets[3].cache_name",
            "required for kind = \"elasticache\"",
        ),
        ("targets[3].region", "required for a cache"),
        ("targets[3].host", "endpoint of kind = \"dsql\""),
        ("targets[4].cache_name", "lower-case"),
        (
            "targets[4].token_lifetime_seconds",
            "does not apply to kind = \"elasticache\"",
        ),
        ("targets[4].engine", "valkey or redis"),
        (
            "targets[4].resource_id",
            "the session policy names the cache",
        ),
        ("targets[4].db_users[0]", "cannot contain * or ?"),
        (
            "targets[5].serverless",
            "does not apply to kind = \"memorydb\"",
        ),
        ("targets[5].host", "endpoint of kind = \"elasticache\""),
        ("targets[6].host", "endpoint of kind = \"dsql\""),
        ("targets[6].cache_name", "does not apply to kind = \"rds\""),
        (
            "targets[6].token_lifetime_seconds",
            "does not apply to kind = \"rds\"",
        ),
        ("targets[7].port", "required"),
        ("targets[7].engine", "required"),
    ] {
        assert!(has(&errs, key, needle), "{key}: {needle} not in {errs:#?}");
    }
    assert_eq!(errs.len(), 24, "{errs:#?}");
}

#[test]
fn an_rds_proxy_endpoint_is_an_rds_target() {
    let c = load(
        &BrokerToml::default().target(
            Target::postgres("shop")
                .host("shop.proxy-abc123xyz.eu-west-1.rds.amazonaws.com")
                .role_arn("arn:aws:iam::123456789012:role/broker")
                .resource_id("prx-0123456789abcdef0"),
        ),
    );
    let t = target(&c, "shop");
    assert_eq!(t.kind, TargetKind::Rds);
    assert_eq!(t.region.as_str(), "eu-west-1");
    assert_eq!(
        t.resource_id.as_ref().unwrap().as_str(),
        "prx-0123456789abcdef0"
    );
}

#[test]
fn the_example_config_has_a_target_of_every_kind() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/broker.toml"))
            .unwrap();
    let c = load_str(&text).unwrap_or_else(|e| panic!("{e}"));
    for kind in Kind::ALL {
        assert!(
            c.targets.values().any(|t| t.kind.kind() == kind),
            "no {kind} target in examples/broker.toml"
        );
    }
    assert!(matches!(
        target(&c, "sessions").kind,
        TargetKind::Elasticache {
            serverless: true,
            ..
        }
    ));
}
