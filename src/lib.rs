//! rds-token-broker: an HTTP token broker for Amazon RDS and Aurora IAM database
//! authentication.
//!
//! Callers ask for a target by name; the broker decides by policy which DB user they may
//! become, mints the 15-minute RDS auth token (byte-identical to botocore), caches it, and
//! returns it with the real endpoint. See `README.md`, the operator guide in `docs/`, and
//! `docs/architecture.md` for the module map.

pub mod audit;
pub mod auth;
pub mod aws;
pub mod broker;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod dev;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod preflight;
pub mod proxy;
pub mod ratelimit;
pub mod reload;
pub mod report;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod token;
