//! Access requests (`docs/human-access.md`): a caller asks for a target and DB user for a
//! while, approvers approve or deny, anyone concerned may revoke; break-glass requests
//! approve themselves. State lives in the audit store's database, so every replica sees
//! it; every transition is an audit event in the hash chain, and is posted to
//! `[notifications]`.
//!
//! [`AccessRequests`] is the domain service behind `/v1/access-requests` and the part of
//! `POST /v1/tokens` that serves request grants.

mod expiry;
mod model;
pub mod notify;
mod service;
mod store;
mod view;

pub use expiry::EXPIRY_SWEEP;
pub use model::{AccessRequest, Approval, ListQuery, NewRequest, Revoked, State, TokenIssued};
pub use service::{AccessError, AccessRequests, Actor, Grant};
