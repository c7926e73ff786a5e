//! Infrastructure lints, run by `scripts/lint-infra` (CI's lint step, `just lint-infra`),
//! not by `cargo test`: the Dockerfile (hadolint), the Kubernetes manifests
//! (kubernetes-validate), Terraform (checkov), the monitoring rules, and the OpenAPI
//! document (openapi-spec-validator, schemathesis). They need the Python tools of
//! `tests/lint-requirements.txt`; `cargo test --test lint` runs them once those are in
//! `./.venv`.

// Test code: a failed unwrap is a failed test, and helpers may read the real clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod deploy;
mod openapi;

#[path = "../api/support/mod.rs"]
mod support;
