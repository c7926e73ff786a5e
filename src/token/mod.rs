//! IAM auth tokens of every kind: signing ([`TokenKind::sign`], [`sign_token`] for RDS)
//! and the issuing cache ([`TokenCache`]).

mod cache;
mod sign;
mod stored;

pub use cache::{CacheKey, CacheOutcome, CachedToken, MintError, MintGate, TokenCache};
pub use sign::{
    CacheService, CacheTokenParams, DSQL_MAX_LIFETIME, SignError, TOKEN_LIFETIME, TokenKind,
    TokenParams, dsql_action, encode, sign_cache_token, sign_dsql_token, sign_token,
};
