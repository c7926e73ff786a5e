//! `rds-token-broker proxy`: a local database proxy that signs in with broker tokens.
//!
//! This branch holds the MySQL / MariaDB front end ([`mysql`]); the listeners, the token
//! cache and the PostgreSQL front end live beside it in the proxy core.

pub mod mysql;
