//! Validation of `[[targets]]`: the keys every target has and each kind's own (`kind`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::raw::RawTarget;
use super::validate::Errors;
use super::{Target, TargetKind};
use crate::domain::{
    CacheName, DbUser, DbUserTemplate, DsqlEndpoint, Engine, Hostname, Kind, Region, ResourceId,
    RoleArn, TargetName, kind_of_host,
};
use crate::token::DSQL_MAX_LIFETIME;

pub(super) fn targets(
    raw: Vec<RawTarget>,
    default_region: Option<&Region>,
    e: &mut Errors<'_>,
) -> BTreeMap<TargetName, Arc<Target>> {
    let mut names = BTreeSet::new();
    for (i, r) in raw.iter().enumerate() {
        if !names.insert(r.name.clone()) {
            e.push(
                format!("targets[{i}].name"),
                format!("duplicate target name {:?}", r.name),
            );
        }
    }
    let mut targets = BTreeMap::new();
    for (i, r) in raw.into_iter().enumerate() {
        if let Some(t) = target(i, r, default_region, e) {
            targets.entry(t.name.clone()).or_insert_with(|| Arc::new(t));
        }
    }

    targets
}

fn target(
    i: usize,
    raw: RawTarget,
    default_region: Option<&Region>,
    e: &mut Errors<'_>,
) -> Option<Target> {
    let key = |k: &str| format!("targets[{i}].{k}");
    let name = e.check(key("name"), TargetName::parse(&raw.name));
    let kind = match raw.kind.as_deref() {
        None => Some(Kind::Rds),
        Some(k) => e.check(key("kind"), Kind::parse(k)),
    };
    let host = match raw.host.as_deref() {
        Some(h) => e.check(key("host"), Hostname::parse(h)),
        None => {
            e.push(key("host"), "required");
            None
        }
    };
    if let (Some(kind), Some(h)) = (kind, &host) {
        check_host_kind(kind, h, &key("host"), e);
    }
    let default_port = match kind {
        Some(Kind::Dsql) => Some(5432),
        Some(Kind::Elasticache | Kind::Memorydb) => Some(6379),
        Some(Kind::Rds) | None => None,
    };
    let port = match raw.port.or(default_port) {
        Some(p) => {
            let p = u16::try_from(p).ok().filter(|p| *p != 0);
            if p.is_none() {
                e.push(key("port"), "must be between 1 and 65535");
            }
            p
        }
        None => {
            e.push(key("port"), "required");
            None
        }
    };
    let engine = engine(kind, raw.engine.as_deref(), &key("engine"), e);
    let dsql = host.as_ref().and_then(DsqlEndpoint::from_host);
    let inferred = match kind {
        Some(Kind::Dsql) => dsql.as_ref().map(|d| d.region.clone()),
        Some(Kind::Rds) => host.as_ref().and_then(Region::from_rds_host),
        _ => None,
    };
    let region = match (&raw.region, &inferred) {
        (Some(r), inferred) => {
            let r = e.check(key("region"), Region::parse(r));
            if let (Some(r), Some(inf)) = (&r, inferred)
                && r != inf
            {
                e.push(
                    key("region"),
                    format!("{r} contradicts the host, which names {inf}"),
                );
            }
            r
        }
        (None, Some(inf)) => Some(inf.clone()),
        (None, None) if kind.is_some_and(Kind::is_cache) => {
            e.push(
                key("region"),
                "required for a cache: its name does not say which region it is in",
            );
            None
        }
        (None, None) => {
            let r = default_region.cloned();
            if r.is_none() && host.is_some() && kind == Some(Kind::Rds) {
                e.push(key("region"), "required: the host is not an RDS endpoint that names its region, and aws.region is not set");
            }
            r
        }
    };
    if raw.db_users.is_empty() {
        e.push(key("db_users"), "must list at least one DB user");
    }
    let mut db_users = Vec::new();
    let mut db_user_templates = Vec::new();
    for (j, u) in raw.db_users.iter().enumerate() {
        let k = format!("targets[{i}].db_users[{j}]");
        if DbUserTemplate::looks_like_template(u) {
            if let Some(t) = super::personal::target_template(k.clone(), u, kind, e) {
                if db_user_templates.contains(&t) {
                    e.push(k, format!("duplicate DB user {:?}", t.as_str()));
                } else {
                    db_user_templates.push(t);
                }
            }
        } else if let Some(u) = e.check(k.clone(), DbUser::parse(u)) {
            if db_users.contains(&u) {
                e.push(k, format!("duplicate DB user {:?}", u.as_str()));
            } else {
                db_users.push(u);
            }
        }
    }
    let role_arn = raw
        .role_arn
        .as_deref()
        .and_then(|a| e.check(key("role_arn"), RoleArn::parse(a)));
    let resource_id = raw
        .resource_id
        .as_deref()
        .and_then(|r| e.check(key("resource_id"), ResourceId::parse(r)));
    if raw.resource_id.is_some() && raw.role_arn.is_none() {
        e.push(
            key("resource_id"),
            "only takes effect with role_arn (it scopes the assumed session)",
        );
    }
    // User names appear in the scoping policy's resource ARN: a cache's policy always
    // names its users, an RDS target's with resource_id.
    let user_in_policy = match kind {
        Some(Kind::Rds) => raw.resource_id.is_some(),
        Some(Kind::Elasticache | Kind::Memorydb) => raw.role_arn.is_some(),
        Some(Kind::Dsql) | None => false,
    };
    if user_in_policy {
        for (j, u) in db_users.iter().enumerate() {
            if u.as_str().contains(['*', '?']) {
                e.push(
                    format!("targets[{i}].db_users[{j}]"),
                    "cannot contain * or ? on a target whose session policy names its users: IAM would read them as wildcards",
                );
            }
        }
    }
    if raw
        .external_id
        .as_deref()
        .is_some_and(|x| x.len() < 2 || x.len() > 1224)
    {
        e.push(key("external_id"), "must be 2 to 1224 characters");
    }
    let (default_rate, default_burst) = match kind {
        Some(Kind::Dsql) => (DSQL_CONNECTIONS_PER_SECOND, DSQL_BURST),
        _ => (200, 20),
    };
    let max_connections_per_second = raw.max_connections_per_second.unwrap_or(default_rate);
    if max_connections_per_second == 0 {
        e.push(key("max_connections_per_second"), "must be at least 1");
    }
    let burst = raw.burst.unwrap_or(default_burst);
    if burst == 0 {
        e.push(key("burst"), "must be at least 1");
    }
    let target_kind = match kind? {
        Kind::Rds => {
            not_for(&raw, Kind::Rds, &key, e);
            Some(TargetKind::Rds)
        }
        Kind::Dsql => {
            not_for(&raw, Kind::Dsql, &key, e);
            if raw.resource_id.is_some() {
                e.push(
                    key("resource_id"),
                    "does not apply to kind = \"dsql\": the cluster id comes from the host",
                );
            }
            let lifetime = raw.token_lifetime_seconds.unwrap_or(900);
            let max = DSQL_MAX_LIFETIME.as_secs();
            let lifetime = u32::try_from(lifetime)
                .ok()
                .filter(|l| (1..=max).contains(&u64::from(*l)));
            if lifetime.is_none() {
                e.push(
                    key("token_lifetime_seconds"),
                    format!("must be between 1 and {max} (a week, the most Aurora DSQL allows)"),
                );
            }
            Some(TargetKind::Dsql {
                cluster_id: dsql?.cluster_id,
                token_lifetime_secs: lifetime?,
            })
        }
        k @ (Kind::Elasticache | Kind::Memorydb) => {
            not_for(&raw, k, &key, e);
            if raw.resource_id.is_some() {
                e.push(
                    key("resource_id"),
                    format!("does not apply to kind = \"{k}\": the session policy names the cache"),
                );
            }
            let cache_name = match raw.cache_name.as_deref() {
                Some(c) => e.check(key("cache_name"), CacheName::parse(c)),
                None => {
                    e.push(
                        key("cache_name"),
                        format!("required for kind = \"{k}\": the cache's name signs its tokens"),
                    );
                    None
                }
            };
            if k == Kind::Elasticache {
                Some(TargetKind::Elasticache {
                    cache_name: cache_name?,
                    serverless: raw.serverless.unwrap_or(false),
                })
            } else {
                Some(TargetKind::Memorydb {
                    cache_name: cache_name?,
                })
            }
        }
    };
    Some(Target {
        name: name?,
        kind: target_kind?,
        host: host?,
        port: port?,
        engine: engine?,
        region: region?,
        db_users,
        role_arn,
        resource_id,
        external_id: raw.external_id,
        max_connections_per_second,
        burst,
        share_tokens: raw.share_tokens.unwrap_or(false),
        db_user_templates,
    })
}

/// Aurora DSQL's documented quota of new connections per second per cluster: the default
/// `max_connections_per_second` of a DSQL target.
pub const DSQL_CONNECTIONS_PER_SECOND: u32 = 100;

/// Aurora DSQL's documented connection burst per cluster: the default `burst` of a DSQL
/// target.
pub const DSQL_BURST: u32 = 1000;

/// The engine of a target of `kind`: given or the kind's only one, and one the kind
/// speaks.
fn engine(kind: Option<Kind>, raw: Option<&str>, key: &str, e: &mut Errors<'_>) -> Option<Engine> {
    let engine = match (kind, raw) {
        (_, Some(s)) => e.check(key, Engine::parse(s))?,
        (Some(Kind::Dsql), None) => Engine::Postgres,
        (Some(Kind::Elasticache | Kind::Memorydb), None) => Engine::Valkey,
        (Some(Kind::Rds), None) => {
            e.push(key, "required: postgres, mysql or mariadb");
            return None;
        }
        (None, None) => return None,
    };
    let fits = match kind? {
        Kind::Rds => matches!(engine, Engine::Postgres | Engine::Mysql | Engine::Mariadb),
        Kind::Dsql => engine == Engine::Postgres,
        Kind::Elasticache | Kind::Memorydb => matches!(engine, Engine::Valkey | Engine::Redis),
    };
    if !fits {
        let allowed = match kind? {
            Kind::Rds => "postgres, mysql or mariadb",
            Kind::Dsql => "postgres",
            Kind::Elasticache | Kind::Memorydb => "valkey or redis",
        };
        e.push(key, format!("must be {allowed} for kind = \"{}\"", kind?));
        return None;
    }
    Some(engine)
}

/// Refuses a host that is another kind's AWS endpoint (an RDS endpoint on a DSQL target,
/// say), and a DSQL target whose host is not a DSQL cluster endpoint.
fn check_host_kind(kind: Kind, host: &Hostname, key: &str, e: &mut Errors<'_>) {
    if kind == Kind::Dsql {
        if DsqlEndpoint::from_host(host).is_none() {
            e.push(
                key,
                "must be an Aurora DSQL cluster endpoint such as <cluster id>.dsql.us-east-1.on.aws",
            );
        }
        return;
    }
    if let Some(other) = kind_of_host(host)
        && other != kind
    {
        e.push(
            key,
            format!("is an endpoint of kind = \"{other}\", but the target's kind is \"{kind}\""),
        );
    }
}

/// Refuses the keys of other kinds on a target of `kind`.
fn not_for(raw: &RawTarget, kind: Kind, key: &impl Fn(&str) -> String, e: &mut Errors<'_>) {
    let is_cache = kind.is_cache();
    let mut refuse = |k: &str, only: &str| {
        e.push(
            key(k),
            format!("does not apply to kind = \"{kind}\" (only to {only})"),
        );
    };
    if raw.cache_name.is_some() && !is_cache {
        refuse("cache_name", "elasticache and memorydb");
    }
    if raw.serverless.is_some() && kind != Kind::Elasticache {
        refuse("serverless", "elasticache");
    }
    if raw.token_lifetime_seconds.is_some() && kind != Kind::Dsql {
        refuse(
            "token_lifetime_seconds",
            "dsql; RDS, ElastiCache and MemoryDB tokens last 900 s",
        );
    }
}
