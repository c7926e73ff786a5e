//! The one integration-test binary: a module per area, shared helpers in `support`.

mod config;
mod credentials;
mod process;
mod tokens;

mod support;
