//! The `rds-token-broker` binary: parse the command line and dispatch.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rds_token_broker::cli::Cli::parse();
    rds_token_broker::cli::run(cli)
}
