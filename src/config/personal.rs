//! Validation of per-person DB user templates in `db_users` and of `[grants.conditions]`.

use super::raw::{OneOrMany, RawConditions};
use super::validate::Errors;
use crate::domain::{Cidr, DbUserTemplate, Hours, Kind, Placeholder};
use crate::policy::Conditions;

/// A target's `db_users` entry `u` (key `k`) that looks like a template: parsed, and
/// refused on cache targets, whose user ids follow other rules (letters, digits and `-`).
pub(super) fn target_template(
    k: String,
    u: &str,
    kind: Option<Kind>,
    e: &mut Errors<'_>,
) -> Option<DbUserTemplate> {
    let t = e.check(k.clone(), DbUserTemplate::parse(u))?;
    if let Some(kind) = kind.filter(|k| k.is_cache()) {
        e.push(
            k,
            format!(
                "per-person DB users are not supported on kind = \"{kind}\": cache user ids \
                 follow other rules than database user names"
            ),
        );
        return None;
    }
    Some(t)
}

/// A grant's `db_users` entry `u` (key `k`) that looks like a template: parsed, and
/// refused when the grant is for AWS IAM callers and the template reads a claim (they
/// have none; `{subject}` is an IAM user's name).
pub(super) fn grant_template(
    k: String,
    u: &str,
    issuer: &str,
    e: &mut Errors<'_>,
) -> Option<DbUserTemplate> {
    let t = e.check(k.clone(), DbUserTemplate::parse(u))?;
    if issuer == super::AWS_IAM_ISSUER && matches!(t.placeholder(), Placeholder::Claim(_)) {
        e.push(
            k,
            "AWS IAM callers have no JWT claims: use {subject}, an IAM user's name",
        );
        return None;
    }
    Some(t)
}

/// `[grants.conditions]` of grant `i`, every problem listed.
pub(super) fn conditions(i: usize, raw: Option<RawConditions>, e: &mut Errors<'_>) -> Conditions {
    let Some(raw) = raw else {
        return Conditions::default();
    };
    let key = |k: &str| format!("grants[{i}].conditions.{k}");
    let names_none = raw.source_cidrs.is_empty() && raw.hours.is_none();
    let source_cidrs = raw
        .source_cidrs
        .iter()
        .enumerate()
        .filter_map(|(j, c)| e.check(format!("{}[{j}]", key("source_cidrs")), Cidr::parse(c)))
        .collect();
    let hours = match raw.hours {
        None => Vec::new(),
        Some(OneOrMany::One(h)) => e
            .check(key("hours"), Hours::parse(&h))
            .into_iter()
            .collect(),
        Some(OneOrMany::Many(list)) => {
            if list.is_empty() {
                e.push(
                    key("hours"),
                    "must list at least one window, or be left out",
                );
            }
            list.iter()
                .enumerate()
                .filter_map(|(j, h)| e.check(format!("{}[{j}]", key("hours")), Hours::parse(h)))
                .collect()
        }
    };
    if names_none {
        e.push(
            format!("grants[{i}].conditions"),
            "names no condition: set source_cidrs or hours, or leave [grants.conditions] out",
        );
    }
    Conditions {
        source_cidrs,
        hours,
    }
}
