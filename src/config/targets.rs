//! Validation of `[[targets]]`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Target;
use super::raw::RawTarget;
use super::validate::Errors;
use crate::domain::{DbUser, Engine, Hostname, Region, ResourceId, RoleArn, TargetName};

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
    let host = e.check(key("host"), Hostname::parse(&raw.host));
    let port = u16::try_from(raw.port).ok().filter(|p| *p != 0);
    if port.is_none() {
        e.push(key("port"), "must be between 1 and 65535");
    }
    let engine = e.check(key("engine"), Engine::parse(&raw.engine));
    let inferred = host.as_ref().and_then(Region::from_rds_host);
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
        (None, None) => {
            let r = default_region.cloned();
            if r.is_none() && host.is_some() {
                e.push(key("region"), "required: the host is not an RDS endpoint that names its region, and aws.region is not set");
            }
            r
        }
    };
    if raw.db_users.is_empty() {
        e.push(key("db_users"), "must list at least one DB user");
    }
    let mut db_users = Vec::new();
    for (j, u) in raw.db_users.iter().enumerate() {
        let k = format!("targets[{i}].db_users[{j}]");
        if let Some(u) = e.check(k.clone(), DbUser::parse(u)) {
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
    if raw.resource_id.is_some() {
        for (j, u) in db_users.iter().enumerate() {
            if u.as_str().contains(['*', '?']) {
                e.push(
                    format!("targets[{i}].db_users[{j}]"),
                    "cannot contain * or ? on a target with resource_id: IAM would read them as wildcards",
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
    let max_connections_per_second = raw.max_connections_per_second.unwrap_or(200);
    if max_connections_per_second == 0 {
        e.push(key("max_connections_per_second"), "must be at least 1");
    }
    let burst = raw.burst.unwrap_or(20);
    if burst == 0 {
        e.push(key("burst"), "must be at least 1");
    }
    Some(Target {
        name: name?,
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
    })
}
