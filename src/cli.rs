//! Command line: `serve` and `check-config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::clock::{SharedClock, SystemClock};
use crate::config::{self, Config, LogFormat};
use crate::startup::{Application, Dependencies, shutdown_signal};
use crate::{aws, dev, reload, telemetry};

/// rds-token-broker: RDS and Aurora IAM auth tokens over HTTP.
#[derive(Debug, Parser)]
#[command(name = "rds-token-broker", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Validate a configuration file and exit: 0 valid, 1 invalid (every error listed by key).
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "dev",
        conflicts_with = "dev"
    )]
    config: Option<PathBuf>,
    /// Demo mode: in-memory config with a demo target, unauthenticated, loopback only.
    #[arg(long)]
    dev: bool,
    /// Override `server.listen` (e.g. 127.0.0.1:0 for a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Serve(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match config::load_file(path) {
        Ok(c) => {
            println!(
                "{}: valid ({} target{}, {} issuer{}, {} grant{})",
                path.display(),
                c.targets.len(),
                plural(c.targets.len()),
                c.issuers.len(),
                plural(c.issuers.len()),
                c.grants.len(),
                plural(c.grants.len()),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (mut config, credentials, banner, path) = if args.dev {
        let (config, credentials, banner) = dev::setup().await?;
        (config, credentials, Some(banner), None)
    } else {
        let path = args.config.context("--config is required")?;
        let config: Config = config::load_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        telemetry::init(config.log.format);
        let chain = aws::default_chain(config.aws.region.as_ref()).await;
        (config, chain, None, Some(path))
    };
    if let Some(listen) = args.listen {
        if (args.dev || config.server.allow_unauthenticated) && !listen.ip().is_loopback() {
            anyhow::bail!(
                "--listen {listen}: a dev or unauthenticated broker may only listen on loopback"
            );
        }
        config.server.listen = listen;
    }
    let unsupported = config.unsupported();
    for w in &unsupported.ignored {
        tracing::warn!(key = %w.key, "{}; the setting is ignored", w.message);
    }
    if !unsupported.refused.is_empty() {
        let list: Vec<String> = unsupported
            .refused
            .iter()
            .map(|e| format!("  {}: {}", e.key, e.message))
            .collect();
        anyhow::bail!(
            "refusing to start: this configuration asks for guarantees this version cannot keep\n{}",
            list.join("\n")
        );
    }
    if config.server.allow_unauthenticated {
        tracing::warn!(
            "server.allow_unauthenticated is set: every caller may obtain every configured token; for tests and demos only"
        );
    }
    let clock: SharedClock = Arc::new(SystemClock);
    let deps = Dependencies {
        clock: clock.clone(),
        credentials,
    };
    let listen = config.server.listen;
    let app = Application::build(config, deps)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    if let Some(banner) = banner {
        println!("{}", banner.render(app.local_addr()));
    }
    if let Some(path) = path {
        reload::spawn(app.state(), path, clock);
    }
    app.run_until(shutdown_signal())
        .await
        .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Text format for `serve --dev`.
pub(crate) const DEV_LOG_FORMAT: LogFormat = LogFormat::Text;
