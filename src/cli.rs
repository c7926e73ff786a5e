//! Command line: `serve` and `check-config` for operators; `token`, `targets`, `exec` and
//! `audit` for clients of a running broker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::client::{self, failed, output};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{self, Config, LogFormat};
use crate::report::Report;
use crate::startup::{Application, Dependencies, StartupError, shutdown_signal};
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
    /// Validate a configuration file and the files it names (TLS certificate and key,
    /// jwks_file, the audit store's directory and CA file), and exit: 0 valid, 1 invalid
    /// (every problem listed by key, with its fix).
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Also check that what it names answers: the PostgreSQL audit store, Redis, each
        /// issuer's keys (jwks_uri or discovery), the AWS credentials of the default chain.
        /// Run it where the broker runs.
        #[arg(long)]
        online: bool,
        /// Check the file alone, not the files it names: for a configuration written for
        /// another machine (a ConfigMap checked in CI, say).
        #[arg(long, conflicts_with = "online")]
        no_files: bool,
    },
    /// Client: fetch a database token from a running broker.
    Token(TokenArgs),
    /// Client: list the targets and DB users you may request (GET /v1/targets).
    Targets(TargetsArgs),
    /// Client: run a command with the database connection variables (PGHOST, PGPASSWORD,
    /// ... or MYSQL_*) set; the token never appears on a command line.
    Exec(ExecArgs),
    /// Security team: query, export or verify the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Client: a local database proxy that signs in with broker tokens, so applications
    /// connect to 127.0.0.1 with no password (docs/proxy.md).
    Proxy(Box<crate::proxy::ProxyArgs>),
    /// Access requests: ask for a target and DB user for a while, review, revoke.
    #[command(subcommand)]
    Access(AccessCommand),
}

#[derive(Debug, Subcommand)]
enum AccessCommand {
    /// Ask for access (a request or break-glass grant); prints the request's id.
    Request {
        #[command(flatten)]
        broker: client::BrokerArgs,
        /// Target name.
        #[arg(long)]
        target: String,
        /// Database user.
        #[arg(long)]
        db_user: String,
        /// How long: minutes (30m) or hours (2h).
        #[arg(long = "for", value_name = "DURATION", value_parser = client::access::parse_duration)]
        duration: u32,
        /// Why (shown to approvers, kept in the audit trail).
        #[arg(long, default_value = "")]
        reason: String,
        /// Ask under a break-glass grant: approved at once, everyone is told.
        #[arg(long)]
        break_glass: bool,
        /// Wait (up to an hour) until the request is approved, denied or expires.
        #[arg(long)]
        wait: bool,
    },
    /// Requests you may see: yours, those you may approve (all, for auditors).
    List {
        #[command(flatten)]
        broker: client::BrokerArgs,
        /// Only this state (pending, approved, denied, expired, revoked).
        #[arg(long)]
        state: Option<String>,
        /// Only your own.
        #[arg(long)]
        mine: bool,
        /// Only pending requests you may still approve.
        #[arg(long)]
        to_review: bool,
        /// Print the broker's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a request (approvers; never your own).
    Approve(AccessDecision),
    /// Deny a request (approvers).
    Deny(AccessDecision),
    /// Revoke a request (its requester, an approver or an auditor).
    Revoke(AccessDecision),
}

#[derive(Debug, Args)]
struct AccessDecision {
    #[command(flatten)]
    broker: client::BrokerArgs,
    /// The request's id.
    id: String,
    /// A comment kept with the decision.
    #[arg(long)]
    comment: Option<String>,
}

#[derive(Debug, Args)]
struct TargetArgs {
    #[command(flatten)]
    broker: client::BrokerArgs,
    /// Target name, as the broker's configuration calls it.
    #[arg(long)]
    target: String,
    /// Database user; may be left out when your grant allows exactly one.
    #[arg(long)]
    db_user: Option<String>,
    /// CA bundle for the database's certificate, exported as PGSSLROOTCERT.
    #[arg(long, value_name = "FILE", env = "RDS_TOKEN_BROKER_SSL_ROOT_CERT")]
    ssl_root_cert: Option<String>,
}

#[derive(Debug, Args)]
struct TokenArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// What to print.
    #[arg(long, value_enum, default_value_t = output::Format::Token)]
    format: output::Format,
    /// Write to this file (replaced atomically, mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Keep --output fresh: fetch a new token before the current one runs out, until
    /// stopped (for a sidecar; libpq reads a pgpass file on every new connection).
    #[arg(long, requires = "output")]
    refresh: bool,
}

#[derive(Debug, Args)]
struct TargetsArgs {
    #[command(flatten)]
    broker: client::BrokerArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = client::targets::Format::Table)]
    format: client::targets::Format,
}

#[derive(Debug, Args)]
struct ExecArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Make an Ed25519 checkpoint signing key: writes it as PKCS#8 PEM to --out (mode
    /// 0600; never overwrites) and prints its verifier key as the last line.
    Keygen {
        /// The signed-note key name (`[audit.checkpoints] key_name`), e.g. the broker's
        /// host name.
        #[arg(long)]
        name: String,
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Newest events first, as a table, JSON or CSV.
    Query {
        #[command(flatten)]
        broker: client::BrokerArgs,
        #[command(flatten)]
        filters: client::audit::Filters,
        /// Most events to show.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = client::audit::QueryFormat::Table)]
        format: client::audit::QueryFormat,
    },
    /// Every matching event, streamed (NDJSON or CSV) to stdout or a file.
    Export {
        #[command(flatten)]
        broker: client::BrokerArgs,
        #[command(flatten)]
        filters: client::audit::Filters,
        /// Output format.
        #[arg(long, value_enum, default_value_t = client::audit::ExportFormat::Ndjson)]
        format: client::audit::ExportFormat,
        /// Write here instead of stdout (mode 0600; only once the export is complete: one
        /// that breaks off leaves nothing).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Fetch the receipt of one event (`GET /v1/audit/receipts/{id}`; for a token, its
    /// `issued` event's id), to check later with `audit verify-receipt`.
    Receipt {
        #[command(flatten)]
        broker: client::BrokerArgs,
        /// The event's id.
        #[arg(value_name = "EVENT_ID")]
        id: String,
        /// Write here (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Fetch an inclusion or consistency proof (auditors), printed as the broker's JSON.
    Proof {
        #[command(subcommand)]
        what: client::audit::ProofRequest,
    },
    /// Check a receipt (`GET /v1/audit/receipts/{id}`) offline, with no broker: the
    /// event's hash, its inclusion proof up to the checkpoint's root, the checkpoint's
    /// signature and chain. Exit 0 when it holds, 1 when not (says what is wrong), 2 when
    /// it could not be checked.
    VerifyReceipt {
        /// The receipt (JSON).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// A verifier key (`name+keyid+base64`, printed by `audit keygen` and listed by
        /// `GET /v1/audit/checkpoints`); repeat for rotated keys.
        #[arg(long, value_name = "VERIFIER_KEY", required = true)]
        key: Vec<String>,
    },
    /// Walk every hash chain; exit 0 when intact, 1 when broken (names the first broken
    /// link), 2 when the check could not run.
    Verify {
        /// Ask a running broker (GET /v1/audit/verify).
        #[arg(
            long,
            value_name = "URL",
            env = "RDS_TOKEN_BROKER_URL",
            required_unless_present_any = ["audit_url", "export"]
        )]
        broker: Option<String>,
        /// Read the store directly instead (sqlite://FILE or postgres://...), e.g. from a
        /// machine that does not trust the broker.
        #[arg(long, value_name = "URL")]
        audit_url: Option<String>,
        /// With --audit-url: the broker's audit.retention_days, so that a retention
        /// checkpoint newer than that period allows (one that would hide recent events) is
        /// reported as broken. A broker checks this itself.
        #[arg(long, value_name = "DAYS", requires = "audit_url", value_parser = clap::value_parser!(u32).range(1..))]
        retention_days: Option<u32>,
        /// Offline, with no broker and no database: check this NDJSON export (`audit
        /// export` with no filters: whole chains) against the signed checkpoints of
        /// --checkpoints, trusting the --key verifier keys.
        #[arg(long, value_name = "FILE", requires_all = ["checkpoints", "key"], conflicts_with = "audit_url")]
        export: Option<PathBuf>,
        /// With --export or --audit-url: the published checkpoints, the checkpoint file
        /// sink's file or `s3://BUCKET/PREFIX` (the S3 sink's objects; AWS credentials,
        /// AWS_REGION and AWS_ENDPOINT_URL from the environment).
        #[arg(long, value_name = "FILE|S3_URL", requires = "key")]
        checkpoints: Option<String>,
        /// With --export or --audit-url: a verifier key (`name+keyid+base64`, printed by
        /// `audit keygen`); repeat for rotated keys. With --audit-url, the chains are then
        /// checked against their signed checkpoints (stored and --checkpoints).
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: Vec<String>,
        /// File holding the caller's JWT.
        #[arg(long, value_name = "FILE")]
        jwt_file: Option<PathBuf>,
        /// Kubernetes service-account token file.
        #[arg(long, value_name = "FILE", env = "RDS_TOKEN_BROKER_K8S_TOKEN_FILE", default_value = client::K8S_TOKEN_FILE)]
        k8s_token_file: PathBuf,
        /// PEM file of the broker's CA.
        #[arg(long, value_name = "FILE", env = "RDS_TOKEN_BROKER_CA_FILE")]
        ca_file: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 300)]
        timeout: u64,
        /// Allow an http:// --broker that is not on loopback (the JWT then travels in
        /// cleartext).
        #[arg(long)]
        insecure_http: bool,
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
    /// Demo mode: in-memory config with a demo target and an ephemeral JWT issuer (the dev
    /// JWT is printed), loopback only.
    #[arg(long)]
    dev: bool,
    /// Override `server.listen` (e.g. 127.0.0.1:0 for a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CheckConfig {
            config,
            online,
            no_files,
        } => check_config(&config, !no_files, online),
        Command::Token(args) => client_runtime(token(args)),
        Command::Exec(args) => client_runtime(exec(args)),
        Command::Targets(args) => client_runtime(targets(args)),
        Command::Audit(cmd) => client_runtime(audit(cmd)),
        Command::Proxy(args) => proxy(*args),
        Command::Access(cmd) => client_runtime(access(cmd)),
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
            let result = runtime.block_on(serve(args));
            telemetry::flush();
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let hint = e
                        .downcast_ref::<StartupError>()
                        .and_then(StartupError::hint);
                    let e: &(dyn std::error::Error + 'static) = e.as_ref();
                    eprintln!("error: {}", Report(e));
                    if let Some(hint) = hint {
                        eprintln!("hint: {hint}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `proxy`: until SIGTERM, on a single-threaded runtime for `--threads 1` (every relay
/// wake-up handled where the socket's readiness was read) or a multi-threaded one.
fn proxy(args: crate::proxy::ProxyArgs) -> ExitCode {
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let built = if settings.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads)
            .enable_all()
            .build()
    };
    let runtime = match built {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(crate::proxy::run(settings));
    telemetry::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!("error: {}", Report(e));
            ExitCode::FAILURE
        }
    }
}

/// A single-threaded runtime for a command that does a little I/O; `None` (the reason
/// printed) when it cannot start.
fn current_thread_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

/// Runs a client command; errors are printed as `error: ...` with exit status 1 unless the
/// command chose its own status.
fn client_runtime(
    fut: impl std::future::Future<Output = Result<ExitCode, client::ClientError>>,
) -> ExitCode {
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(fut) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            ExitCode::FAILURE
        }
    }
}

async fn fetch(args: &TargetArgs) -> Result<client::IssuedToken, client::ClientError> {
    let broker = client::BrokerClient::new(&args.broker).await?;
    client::fetch_token(&broker, &args.target, args.db_user.as_deref()).await
}

async fn token(args: TokenArgs) -> Result<ExitCode, client::ClientError> {
    use std::io::Write as _;
    let tls = output::ClientTls {
        ssl_root_cert: args.target.ssl_root_cert.clone(),
    };
    let Some(path) = &args.output else {
        let t = fetch(&args.target).await?;
        let text = output::render(args.format, &t, &tls);
        std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| failed("cannot write to stdout", e))?;
        return Ok(ExitCode::SUCCESS);
    };
    let broker = client::BrokerClient::new(&args.target.broker).await?;
    let mut failures = 0u32;
    loop {
        let fetched =
            client::fetch_token(&broker, &args.target.target, args.target.db_user.as_deref()).await;
        let wait = match fetched {
            Ok(t) => {
                output::write_private(path, &output::render(args.format, &t, &tls))?;
                if !args.refresh {
                    return Ok(ExitCode::SUCCESS);
                }
                failures = 0;
                let next = output::refresh_in(&t.expires_at, SystemClock.now());
                eprintln!(
                    "wrote a token for {} to {}; next in {} s",
                    t.target,
                    path.display(),
                    next.as_secs()
                );
                next
            }
            Err(e) if args.refresh => {
                // The file keeps the previous token, still valid for a while: retry.
                failures += 1;
                let wait =
                    Duration::from_secs(5u64 << failures.min(4)).min(Duration::from_secs(60));
                eprintln!("error: {} (retrying in {} s)", Report(&e), wait.as_secs());
                wait
            }
            Err(e) => return Err(e),
        };
        tokio::time::sleep(wait).await;
    }
}

async fn access(cmd: AccessCommand) -> Result<ExitCode, client::ClientError> {
    use client::access as a;
    let print = |v: &serde_json::Value| {
        println!("{}", crate::audit::display::escape_json(&v.to_string()));
    };
    match cmd {
        AccessCommand::Request {
            broker,
            target,
            db_user,
            duration,
            reason,
            break_glass,
            wait,
        } => {
            let b = client::BrokerClient::new(&broker).await?;
            let r = a::request(&b, &target, &db_user, duration, &reason, break_glass).await?;
            eprintln!("{}", a::line(&r));
            let id = a::text(&r, "/id").to_owned();
            let r = if wait && a::text(&r, "/state") == "pending" {
                eprintln!("waiting for a decision on {id} ...");
                a::wait(&b, &id, std::time::Duration::from_secs(5), a::MAX_WAIT).await?
            } else {
                r
            };
            println!("{}", crate::audit::display::neutralise(&id));
            if wait && a::text(&r, "/state") != "approved" {
                eprintln!("{}", a::line(&r));
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        AccessCommand::List {
            broker,
            state,
            mine,
            to_review,
            json,
        } => {
            let b = client::BrokerClient::new(&broker).await?;
            let mut q = Vec::new();
            if let Some(s) = state {
                q.push(("state", s));
            }
            if mine {
                q.push(("mine", "true".to_owned()));
            }
            if to_review {
                q.push(("to_review", "true".to_owned()));
            }
            let page = a::list(&b, &q).await?;
            if json {
                print(&page);
            } else {
                let requests = page
                    .get("requests")
                    .and_then(serde_json::Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if requests.is_empty() {
                    println!("no access requests");
                }
                for r in &requests {
                    println!("{}", a::line(r));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AccessCommand::Approve(d) | AccessCommand::Deny(d) | AccessCommand::Revoke(d)
            if d.id.is_empty() =>
        {
            Err(client::ClientError::Message(
                "an access request id is required".into(),
            ))
        }
        AccessCommand::Approve(d) => decide(d, "approve").await,
        AccessCommand::Deny(d) => decide(d, "deny").await,
        AccessCommand::Revoke(d) => decide(d, "revoke").await,
    }
}

async fn decide(d: AccessDecision, action: &str) -> Result<ExitCode, client::ClientError> {
    let b = client::BrokerClient::new(&d.broker).await?;
    let r = client::access::decide(&b, &d.id, action, d.comment.as_deref()).await?;
    let request = r.get("request").unwrap_or(&r);
    println!("{}", client::access::line(request));
    if let Some(tokens) = r.get("tokens_issued").and_then(serde_json::Value::as_array) {
        for t in tokens {
            println!(
                "issued under it: {} (valid until {})",
                crate::audit::display::neutralise(client::access::text(t, "/issuance_id")),
                crate::audit::display::neutralise(client::access::text(t, "/expires_at"))
            );
        }
        if let Some(note) = r.get("note").and_then(serde_json::Value::as_str) {
            println!("{}", crate::audit::display::neutralise(note));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn targets(args: TargetsArgs) -> Result<ExitCode, client::ClientError> {
    let broker = client::BrokerClient::new(&args.broker).await?;
    let list = client::targets::list(&broker).await?;
    client::targets::write(&list, args.format, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

async fn exec(args: ExecArgs) -> Result<ExitCode, client::ClientError> {
    let t = fetch(&args.target).await?;
    let tls = output::ClientTls {
        ssl_root_cert: args.target.ssl_root_cert.clone(),
    };
    let Some((program, rest)) = args.command.split_first() else {
        return Err(client::ClientError::Message(
            "no command given after --".into(),
        ));
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest).envs(output::variables(&t, &tls));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        // Replaces this process: signals and the exit status belong to the command.
        let e = cmd.exec();
        Err(failed(
            format!("cannot run {}", program.to_string_lossy()),
            e,
        ))
    }
    #[cfg(not(unix))]
    {
        let status = cmd
            .status()
            .map_err(|e| failed(format!("cannot run {}", program.to_string_lossy()), e))?;
        Ok(ExitCode::from(
            u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
        ))
    }
}

async fn audit(cmd: AuditCommand) -> Result<ExitCode, client::ClientError> {
    let mut stdout = std::io::stdout().lock();
    match cmd {
        AuditCommand::Keygen { name, out } => {
            let verifier = crate::audit::checkpoint::keys::keygen(&name, &out)
                .map_err(|e| client::ClientError::Message(Report(&e).to_string()))?;
            eprintln!(
                "wrote the private key to {} (mode 0600); set [audit.checkpoints] key_name = {name:?} and signing_key_file to it",
                out.display()
            );
            println!("{verifier}");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Query {
            broker,
            filters,
            limit,
            format,
        } => {
            let broker = client::BrokerClient::new(&broker).await?;
            client::audit::query(&broker, &filters, limit, format, &mut stdout).await?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export {
            broker,
            filters,
            format,
            output,
        } => {
            let broker = client::BrokerClient::new(&broker).await?;
            match output {
                None => {
                    client::audit::export(&broker, &filters, format, &mut stdout).await?;
                }
                Some(path) => {
                    // A private temporary file beside it, renamed into place once complete:
                    // a broken-off export leaves nothing behind.
                    let mut tmp = output::private_temp(&path)?;
                    let mut w = std::io::BufWriter::new(tmp.as_file_mut());
                    let bytes = client::audit::export(&broker, &filters, format, &mut w).await?;
                    drop(w);
                    output::persist(tmp, &path)?;
                    eprintln!("wrote {bytes} bytes to {}", path.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Receipt { broker, id, output } => {
            use std::io::Write as _;
            let broker = client::BrokerClient::new(&broker).await?;
            let body = client::audit::receipt(&broker, &id).await?;
            match output {
                None => stdout
                    .write_all(&body)
                    .map_err(|e| failed("cannot write the receipt", e))?,
                Some(path) => {
                    let mut tmp = output::private_temp(&path)?;
                    tmp.as_file_mut()
                        .write_all(&body)
                        .map_err(|e| failed("cannot write the receipt", e))?;
                    output::persist(tmp, &path)?;
                    eprintln!("wrote the receipt to {}", path.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Proof { what } => {
            use std::io::Write as _;
            let body = client::audit::proof(&what).await?;
            stdout
                .write_all(&body)
                .and_then(|()| stdout.write_all(b"\n"))
                .map_err(|e| failed("cannot write the proof", e))?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::VerifyReceipt { file, key } => {
            let ok = client::offline::verify_receipt_file(&file, &key, &mut stdout);
            Ok(check_exit(ok))
        }
        AuditCommand::Verify {
            broker,
            audit_url,
            retention_days,
            export,
            checkpoints,
            key,
            jwt_file,
            k8s_token_file,
            ca_file,
            timeout,
            insecure_http,
        } => {
            let ok = match (broker, audit_url) {
                _ if let Some(export) = &export => {
                    client::offline::verify_files(
                        export,
                        checkpoints.as_deref().unwrap_or_default(),
                        &key,
                        &mut stdout,
                    )
                    .await
                }
                (_, Some(url)) => {
                    client::audit::verify_store(
                        &url,
                        retention_days,
                        &key,
                        checkpoints.as_deref(),
                        &mut stdout,
                    )
                    .await
                }
                (Some(_), None) if !key.is_empty() || checkpoints.is_some() => {
                    Err(client::ClientError::Message(
                        "--key and --checkpoints go with --export or --audit-url: a broker \
                         checks its checkpoints with the keys it trusts"
                            .into(),
                    ))
                }
                (Some(broker), None) => {
                    let args = client::BrokerArgs {
                        broker,
                        jwt_file,
                        k8s_token_file,
                        ca_file,
                        timeout,
                        insecure_http,
                        aws_iam: false,
                        iam_server_id: None,
                        sts_endpoint: None,
                    };
                    // A broker that cannot be used is "could not check" (2) too.
                    match client::BrokerClient::new(&args).await {
                        Ok(broker) => client::audit::verify_remote(&broker, &mut stdout).await,
                        Err(e) => Err(e),
                    }
                }
                (None, None) => Err(client::ClientError::Message(
                    "give --broker URL or --audit-url URL".into(),
                )),
            };
            Ok(check_exit(ok))
        }
    }
}

/// A check's exit status: 0 when it holds, 1 when it does not, 2 when it could not run.
fn check_exit(ok: Result<bool, client::ClientError>) -> ExitCode {
    match ok {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            ExitCode::from(2)
        }
    }
}

fn check_config(path: &std::path::Path, files: bool, online: bool) -> ExitCode {
    let c = match config::load_file(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let summary = format!(
        "{} target{}, {} issuer{}, {} grant{}",
        c.targets.len(),
        plural(c.targets.len()),
        c.issuers.len(),
        plural(c.issuers.len()),
        c.grants.len(),
        plural(c.grants.len()),
    );
    let findings = if files || online {
        let Some(runtime) = current_thread_runtime() else {
            return ExitCode::FAILURE;
        };
        runtime.block_on(async {
            let mut found = Vec::new();
            if files {
                found.extend(crate::preflight::files(&c).await);
            }
            if online {
                found.extend(crate::preflight::online(&c).await);
            }
            found
        })
    } else {
        Vec::new()
    };
    let file = path.display();
    if c.audit.is_none() {
        eprintln!(
            "warning: {file}: audit.enabled = false: the broker will issue tokens with no \
             audit trail"
        );
    }
    let (passed, problems): (Vec<_>, Vec<_>) = findings.iter().partition(|f| f.passed());
    if problems.is_empty() {
        println!("{file}: valid ({summary})");
    } else {
        let n = problems.len();
        eprintln!(
            "{file}: the file is valid ({summary}), but {n} problem{} with what it names:",
            plural(n)
        );
    }
    for f in &passed {
        println!("  ok: {}: {}", f.key, f.message);
    }
    for f in &problems {
        eprintln!("  {file}: {}: {}", f.key, f.message);
        if let Some(fix) = &f.fix {
            eprintln!("    fix: {fix}");
        }
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // `dev_files`: the dev broker's temporary directory, removed when dropped: once the
    // broker has stopped, or on any early return.
    let (mut config, credentials, banner, path, dev_files) = if args.dev {
        let dev = dev::setup().await?;
        let banner = Some(dev.banner);
        (dev.config, dev.credentials, banner, None, Some(dev.files))
    } else {
        let path = args.config.context("--config is required")?;
        let config: Config = config::load_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        telemetry::init(config.log.format);
        let chain = aws::default_chain(config.aws.region.as_ref()).await;
        (config, chain, None, Some(path), None)
    };
    if let Some(listen) = args.listen {
        if (args.dev || config.server.allow_unauthenticated) && !listen.ip().is_loopback() {
            anyhow::bail!(
                "--listen {listen}: a dev or unauthenticated broker may only listen on loopback"
            );
        }
        config.server.listen = listen;
    }
    if let Some((cert, key)) = &config.server.tls {
        // Refuse to start with an unusable certificate rather than fail every handshake.
        crate::tls::load(cert, key).context("server.tls_cert")?;
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
        audit_store: None,
    };
    // The error names the step that failed (listen, audit store, Redis, ...) and its cause.
    let app = Application::build(config, deps).await?;
    if let Some(banner) = banner {
        println!("{}", banner.render(app.local_addr()));
    }
    if let Some(path) = path {
        warn_without_credentials(&app);
        reload::spawn(app.state(), path, clock);
    }
    app.run_until(shutdown_signal()).await?;
    drop(dev_files);
    tracing::info!("stopped");
    Ok(())
}

/// Says at start when the broker has no AWS credentials (it keeps trying: they may appear
/// later), rather than leaving the first `/readyz` to find out. In the background, so that
/// a slow credential provider does not delay serving.
fn warn_without_credentials(app: &Application) {
    let state = app.state();
    tokio::spawn(async move {
        if let Err(why) = state.broker.check_credentials().await {
            tracing::warn!(
                error = %why,
                "no AWS credentials found at start: no token can be signed and /readyz \
                 answers 503 until some appear. Give the broker an identity: an IAM role \
                 (IRSA or EKS Pod Identity, an instance profile, an ECS task role), a profile \
                 (AWS_PROFILE), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            );
        }
    });
}

/// Text format for `serve --dev`.
pub(crate) const DEV_LOG_FORMAT: LogFormat = LogFormat::Text;
