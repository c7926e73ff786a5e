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
/// sanitise alike. Always 2-64 characters of `[\w+=,.@-]`.
pub fn session_name(principal: &Principal) -> String {
    let digest = Sha256::digest(format!("{}\n{}", principal.issuer, principal.subject).as_bytes());
    let hash = hex::encode(digest.get(..6).unwrap_or_default());
    let readable: String = format!("{}@{}", principal.issuer, principal.subject)
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
