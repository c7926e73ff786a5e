//! RDS auth tokens: signing ([`sign_token`]) and the issuing cache ([`TokenCache`]).

mod cache;
mod sign;
mod stored;

pub use cache::{CacheKey, CacheOutcome, CachedToken, MintError, MintGate, TokenCache};
pub use sign::{SignError, TOKEN_LIFETIME, TokenParams, encode, sign_token};
