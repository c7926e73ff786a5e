//! Names and scoping of the role sessions the broker assumes for callers.

use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::domain::{DbUser, Region, ResourceId, RoleArn};

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
            claims,
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
            claims: [("role_arn".to_owned(), "x".into())].into_iter().collect(),
        };
        assert_ne!(session_name(&caller("a")), session_name(&caller("b")));
        assert_eq!(caller("a").rate_key(), "corp\na");
    }
}
