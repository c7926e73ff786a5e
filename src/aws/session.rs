//! Names and scoping of the role sessions the broker assumes for callers: the inline
//! session policy of each target kind.

use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::config::{Target, TargetKind};
use crate::domain::{DbUser, Region, ResourceId, RoleArn};
use crate::token::dsql_action;

/// Characters IAM allows in `RoleSessionName` and `SourceIdentity`: `[\w+=,.@-]`.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// A `RoleSessionName` for `principal`: its issuer and subject with disallowed characters
/// replaced by `-`, truncated, then `-` and 12 hex digits of SHA-256 over the exact
/// issuer and subject, so two callers never share a name even when their readable parts
/// sanitise alike. Always 2-64 characters of `[\w+=,.@-]`. The subject is
/// [`Principal::stable_subject`]: an AWS-IAM caller's role, not its session, so rotating
/// session names reuses one role session (and its cached tokens) instead of forcing new
/// AssumeRoles.
pub fn session_name(principal: &Principal) -> String {
    let subject = principal.stable_subject();
    let digest = Sha256::digest(format!("{}\n{subject}", principal.issuer).as_bytes());
    let hash = hex::encode(digest.get(..6).unwrap_or_default());
    let readable: String = format!("{}@{subject}", principal.issuer)
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(64 - 1 - hash.len())
        .collect();
    format!("{readable}-{hash}")
}

/// The inline session policy scoping a role session that signs `target`'s tokens for
/// `db_user`, or `None` for an RDS target without `resource_id` (the role's own policy
/// applies). Every other kind is always scoped: its resource is named by the target.
///
/// * `rds`: `rds-db:connect` on `dbuser:<resource id>/<db user>` ([`connect_policy`]);
/// * `dsql`: `dsql:DbConnectAdmin` for the role `admin`, else `dsql:DbConnect`, on
///   `cluster/<cluster id>`;
/// * `elasticache`: `elasticache:Connect` on the replication group (or serverless cache)
///   and on `user:<user id>`;
/// * `memorydb`: `memorydb:Connect` on `cluster/<name>` and `user/<user id>`.
pub fn scoping_policy(target: &Target, role: &RoleArn, db_user: &DbUser) -> Option<String> {
    let arn = |service: &str, resource: &str| {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            role.partition(),
            target.region.as_str(),
            role.account_id()
        )
    };
    let (action, resource) = match &target.kind {
        TargetKind::Rds => {
            return target
                .resource_id
                .as_ref()
                .map(|r| connect_policy(role, &target.region, r, db_user));
        }
        TargetKind::Dsql { cluster_id, .. } => (
            format!("dsql:{}", dsql_action(db_user.as_str())),
            serde_json::json!(arn("dsql", &format!("cluster/{cluster_id}"))),
        ),
        TargetKind::Elasticache {
            cache_name,
            serverless,
        } => {
            let cache = if *serverless {
                format!("serverlesscache:{}", cache_name.as_str())
            } else {
                format!("replicationgroup:{}", cache_name.as_str())
            };
            (
                "elasticache:Connect".to_owned(),
                serde_json::json!([
                    arn("elasticache", &cache),
                    arn("elasticache", &format!("user:{}", db_user.as_str())),
                ]),
            )
        }
        TargetKind::Memorydb { cache_name } => (
            "memorydb:Connect".to_owned(),
            serde_json::json!([
                arn("memorydb", &format!("cluster/{}", cache_name.as_str())),
                arn("memorydb", &format!("user/{}", db_user.as_str())),
            ]),
        ),
    };
    Some(
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
        })
        .to_string(),
    )
}

/// An inline session policy allowing only `rds-db:connect` as `db_user` on `resource_id`.
pub fn connect_policy(
    role: &RoleArn,
    region: &Region,
    resource_id: &ResourceId,
    db_user: &DbUser,
) -> String {
    let resource = format!(
        "arn:{}:rds-db:{}:{}:dbuser:{}/{}",
        role.partition(),
        region.as_str(),
        role.account_id(),
        resource_id.as_str(),
        db_user.as_str()
    );
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": resource}],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthMethod, Claims};

    fn aws_caller(session: &str) -> Principal {
        let mut claims = Claims::new();
        claims.insert(
            "role_arn".into(),
            "arn:aws:iam::123456789012:role/orders-lambda".into(),
        );
        Principal {
            issuer: "aws-iam".into(),
            subject: format!("arn:aws:sts::123456789012:assumed-role/orders-lambda/{session}"),
            auth_method: AuthMethod::AwsIam,
            claims: claims.into(),
        }
    }

    #[test]
    fn an_assumed_roles_sessions_share_one_name_and_rate_key() {
        let (a, b) = (aws_caller("checkout-fn"), aws_caller("rotated-4711"));
        assert_eq!(session_name(&a), session_name(&b));
        assert_eq!(a.rate_key(), b.rate_key());
        assert_eq!(
            a.rate_key(),
            "aws-iam\narn:aws:iam::123456789012:role/orders-lambda"
        );
        let name = session_name(&a);
        assert!(name.starts_with("aws-iam@arn-aws-iam--123456789012-role-orders-"));
        assert!(name.len() <= 64 && name.chars().all(allowed), "{name}");
    }

    #[test]
    fn jwt_callers_keep_their_subject() {
        let caller = |sub: &str| Principal {
            issuer: "corp".into(),
            subject: sub.into(),
            auth_method: AuthMethod::Jwt,
            // A JWT may carry any claim, role_arn included: it changes nothing.
            claims: std::sync::Arc::new(
                [("role_arn".to_owned(), "x".into())].into_iter().collect(),
            ),
        };
        assert_ne!(session_name(&caller("a")), session_name(&caller("b")));
        assert_eq!(caller("a").rate_key(), "corp\na");
    }
}
