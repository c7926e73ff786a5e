//! The one integration-test binary: a module per area, shared helpers in `support`.

// Test code: a failed unwrap is a failed test, and helpers may read the real clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod access_binary;
mod access_requests;
mod audit;
mod audit_evidence;
mod audit_query;
mod audit_role;
mod audit_stats;
mod auth;
mod aws_iam;
mod checkpoint_verify;
mod checkpoints;
mod cli;
mod conditions;
mod config;
mod crash;
mod credentials;
mod docs;
mod errors;
mod fuzz;
mod hardening;
mod hardening_audit;
mod hardening_auth;
mod kinds;
mod kinds_api;
mod kinds_redis;
mod nonblocking;
mod openapi;
mod personal;
mod policy;
mod process;
mod production;
mod proofs;
mod proxy_engines;
mod proxy_mysql;
mod proxy_mysql_binary;
mod proxy_mysql_protocol;
mod proxy_pg;
mod ratelimit;
mod recipes;
mod reference;
mod reload;
mod sigv4;
mod sts;
mod tokens;
mod ui;
mod unaudited;

mod support;
