# Developer tasks; each mirrors a step of CI (.ci/run). `just` lists them.
# Builds are slow on small machines: like CI, keep compiled dependencies outside the clone.
export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", env_var("HOME") / ".cache/rds-token-broker/target")

default:
    @just --list

# fmt, clippy, docs, rust-version, cargo-deny (licences, bans, sources), cargo-machete
check:
    scripts/check

# The in-process tests (unit tests, and the API tests that need no child process,
# database server, Python, Node.js or browser): a quick loop while editing
test-fast:
    cargo test --locked --lib
    cargo test --locked --test api -- audit:: audit_query:: audit_stats:: auth:: credentials:: docs:: openapi:: policy:: reference:: sigv4:: tokens:: --skip hardening_ --skip postgres_ --skip an_unavailable_store --skip in_headless_chromium

# Every test, as CI runs it (the README's test command)
test *ARGS:
    scripts/test {{ARGS}}

# hadolint, kubernetes-validate, checkov, openapi-spec-validator, schemathesis
lint-infra *ARGS:
    scripts/lint-infra {{ARGS}}

# The benchmark suite (bench/README.md); `just bench --quick` for a smoke run
bench *ARGS:
    python3 bench/run.py {{ARGS}}

# Everything CI runs, in CI's order
ci:
    .ci/run
