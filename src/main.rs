//! The `rds-token-broker` binary: parse the command line and dispatch.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rds_token_broker::cli::Cli::parse();
    rds_token_broker::cli::run(cli)
}

/// mimalloc: the broker allocates and frees many small strings per request, which glibc's
/// allocator serves markedly slower (see bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
