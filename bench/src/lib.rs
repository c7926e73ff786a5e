//! Benchmarks for rds-token-broker live in `benches/`; this library is empty.
