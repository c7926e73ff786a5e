//! Which DB users of which targets a principal may obtain tokens for. Pure functions.
//!
//! Deny by default: a principal gets nothing unless a rule grants it. Grant matching on
//! issuer, subject glob and claims arrives with caller authentication; until then only
//! the anonymous caller of an unauthenticated deployment exists, and it may use every
//! configured target and DB user.

use crate::auth::{AuthMethod, Principal};
use crate::config::{Config, Target};
use crate::domain::DbUser;

/// The DB users of `target` that `principal` may obtain tokens for; empty means none.
pub fn allowed_db_users<'a>(
    config: &'a Config,
    principal: &Principal,
    target: &'a Target,
) -> Vec<&'a DbUser> {
    match principal.auth_method {
        AuthMethod::Unauthenticated if config.server.allow_unauthenticated => {
            target.db_users.iter().collect()
        }
        AuthMethod::Unauthenticated => Vec::new(),
    }
}
