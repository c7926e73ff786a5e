//! Per-person DB users: resolving a [`DbUserTemplate`] for a verified caller. Pure.
//!
//! `{subject}` is a JWT caller's `sub`; for an AWS-IAM caller it is the IAM user's name
//! (`arn:aws:iam::ACCOUNT:user/PATH/NAME` gives `NAME`). An AWS-IAM caller in an assumed
//! role has no per-person user: its session name is chosen by whoever assumes the role,
//! so it says nothing about who they are. `{claims.NAME}` reads a string claim of a
//! verified JWT; AWS-IAM callers have no such claims (configuration refuses the
//! combination, and resolution refuses it again). The value then follows the mapping rule
//! of [`crate::domain::identifier`], and the name must not be one of the target's shared
//! DB users: a person whose claim happens to read `app` does not become the shared `app`.

use crate::auth::{AuthMethod, Principal};
use crate::config::Target;
use crate::domain::{ArnParts, DbUser, DbUserTemplate, Engine, IdentifierError, Placeholder};

/// Why a template gave no DB user for this caller. The texts name the template's claim
/// (configuration), never the caller's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateFailure {
    /// The token has no such claim.
    #[error(
        "the per-person DB user {template} needs the claim {claim:?}, which your token does not have"
    )]
    MissingClaim {
        /// The template.
        template: String,
        /// The claim's name.
        claim: String,
    },
    /// The claim is not a string.
    #[error("the per-person DB user {template} needs the claim {claim:?} to be a string")]
    NotAString {
        /// The template.
        template: String,
        /// The claim's name.
        claim: String,
    },
    /// The value does not map to a usable name.
    #[error(
        "the per-person DB user {template} cannot be made from your identity: the value {error}"
    )]
    Unsafe {
        /// The template.
        template: String,
        /// Why.
        error: IdentifierError,
    },
    /// The name is one of the target's shared DB users.
    #[error("the per-person DB user {template} would be one of the target's shared DB users")]
    SharedUser {
        /// The template.
        template: String,
    },
    /// The caller has no value for the placeholder (an assumed-role or anonymous caller,
    /// or claims of an AWS-IAM caller).
    #[error(
        "the per-person DB user {template} needs a JWT caller or, for {{subject}}, an IAM user: \
         an assumed role's session name is chosen by the caller"
    )]
    NoIdentity {
        /// The template.
        template: String,
    },
}

/// The longest DB user name `engine` accepts, in bytes.
pub fn max_name_bytes(engine: Engine) -> usize {
    match engine {
        Engine::Mysql | Engine::Mariadb => 32,
        // ElastiCache and MemoryDB user ids are 1-40 characters; templates are refused on
        // cache targets at load, so this is only a bound.
        Engine::Valkey | Engine::Redis => 40,
        Engine::Postgres => 63,
    }
}

/// The DB user `template` names for `principal` on `target`.
pub fn resolve(
    template: &DbUserTemplate,
    principal: &Principal,
    target: &Target,
) -> Result<DbUser, TemplateFailure> {
    let name = template.as_str().to_owned();
    let value = match (template.placeholder(), principal.auth_method) {
        (Placeholder::Subject, AuthMethod::Jwt) => principal.subject.as_str(),
        (Placeholder::Subject, AuthMethod::AwsIam) => {
            iam_user_name(&principal.subject).ok_or(TemplateFailure::NoIdentity {
                template: name.clone(),
            })?
        }
        (Placeholder::Claim(claim), AuthMethod::Jwt) => match principal.claims.get(claim) {
            Some(serde_json::Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(TemplateFailure::NotAString {
                    template: name,
                    claim: claim.clone(),
                });
            }
            None => {
                return Err(TemplateFailure::MissingClaim {
                    template: name,
                    claim: claim.clone(),
                });
            }
        },
        (_, AuthMethod::AwsIam | AuthMethod::Unauthenticated) => {
            return Err(TemplateFailure::NoIdentity { template: name });
        }
    };
    let rendered = template
        .render(value, max_name_bytes(target.engine))
        .map_err(|error| TemplateFailure::Unsafe {
            template: name.clone(),
            error,
        })?;
    if target.db_users.iter().any(|u| u.as_str() == rendered) {
        return Err(TemplateFailure::SharedUser { template: name });
    }
    DbUser::parse(&rendered).map_err(|_| TemplateFailure::Unsafe {
        template: name,
        error: IdentifierError::NoSafeCharacters,
    })
}

/// The user name of an IAM user's ARN; `None` for any other ARN (assumed roles,
/// federated users, root).
fn iam_user_name(arn: &str) -> Option<&str> {
    let parts = ArnParts::split(arn)?;
    let path = parts.resource.strip_prefix("user/")?;
    (parts.service == "iam")
        .then(|| path.rsplit('/').next())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_users_have_names_and_roles_do_not() {
        assert_eq!(
            iam_user_name("arn:aws:iam::123456789012:user/alice"),
            Some("alice")
        );
        assert_eq!(
            iam_user_name("arn:aws:iam::123456789012:user/eng/Bob"),
            Some("Bob")
        );
        assert_eq!(
            iam_user_name("arn:aws:sts::123456789012:assumed-role/dev/alice"),
            None
        );
        assert_eq!(iam_user_name("arn:aws:iam::123456789012:root"), None);
        assert_eq!(iam_user_name("alice"), None);
    }
}
