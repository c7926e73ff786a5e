//! `proxy`'s command line and its TOML file (`--config`): the flags win over the file.
//! Checked once: every problem listed before anything is bound.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use super::listener::{Listen, ListenAddr};
use super::signin::Engine;
use crate::client::BrokerArgs;

/// `rds-token-broker proxy` flags.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Settings file (TOML; see docs/proxy.md). Flags given as well win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The broker's base URL, e.g. `https://rds-token-broker.internal:8443`.
    #[arg(long, value_name = "URL", env = "RDS_TOKEN_BROKER_URL")]
    pub broker: Option<String>,
    /// A listener: the broker's target name and where to listen, `NAME=IP:PORT` or
    /// `NAME=unix:/path/.s.PGSQL.5432` (mode 0660). Repeatable.
    #[arg(long = "listen", value_name = "NAME=ADDR")]
    pub listen: Vec<String>,
    /// Sign every connection in as this DB user, whatever user the client names.
    #[arg(long, value_name = "USER")]
    pub db_user: Option<String>,
    /// Allow a --listen address that is not loopback. Anyone who can reach it connects
    /// to the database as your identity, with no password: only behind a firewall or
    /// with --client-password-file / --client-tls-cert.
    #[arg(long)]
    pub allow_remote: bool,
    /// Most client connections open at once, all listeners together.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// On SIGTERM, wait this many seconds for open connections before exiting.
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_grace: Option<u64>,
    /// Serve /metrics and /healthz here (plain HTTP; keep it private).
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// PEM CA bundle for the databases' certificates (the RDS bundle); default: the
    /// system's roots.
    #[arg(long, value_name = "FILE")]
    pub db_ca_file: Option<PathBuf>,
    /// Certificate for TLS from clients (accept SSLRequest); with --client-tls-key.
    #[arg(long, value_name = "FILE", requires = "client_tls_key")]
    pub client_tls_cert: Option<PathBuf>,
    /// Key for --client-tls-cert.
    #[arg(long, value_name = "FILE", requires = "client_tls_cert")]
    pub client_tls_key: Option<PathBuf>,
    /// File holding the password clients must send (else any password is ignored).
    #[arg(long, value_name = "FILE")]
    pub client_password_file: Option<PathBuf>,
    /// Replace a cached token when less than this many seconds of it are left.
    #[arg(long, value_name = "SECONDS")]
    pub token_min_remaining: Option<u64>,
    /// Threads that relay bytes: 1 runs everything on one thread (the default when
    /// measured best; see docs/proxy.md), more spreads connections over that many.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// File holding the caller's JWT (read first).
    #[arg(long, value_name = "FILE")]
    pub jwt_file: Option<PathBuf>,
    /// Kubernetes service-account token file (when neither --jwt-file nor
    /// RDS_TOKEN_BROKER_JWT is given).
    #[arg(long, value_name = "FILE", env = "RDS_TOKEN_BROKER_K8S_TOKEN_FILE")]
    pub k8s_token_file: Option<PathBuf>,
    /// PEM file of the CA(s) that signed the broker's TLS certificate.
    #[arg(long, value_name = "FILE", env = "RDS_TOKEN_BROKER_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Give up on a broker request after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Allow an http:// --broker that is not on loopback (credentials in cleartext).
    #[arg(long)]
    pub insecure_http: bool,
    /// Authenticate with this machine's AWS identity instead of a JWT.
    #[arg(long, requires = "iam_server_id")]
    pub aws_iam: bool,
    /// The broker's aws.iam_server_id (with --aws-iam).
    #[arg(long, value_name = "ID", env = "RDS_TOKEN_BROKER_IAM_SERVER_ID")]
    pub iam_server_id: Option<String>,
    /// STS endpoint to sign for (with --aws-iam).
    #[arg(long, value_name = "URL", env = "RDS_TOKEN_BROKER_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
}

/// The TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    broker: Option<String>,
    jwt_file: Option<PathBuf>,
    k8s_token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    timeout_seconds: Option<u64>,
    #[serde(default)]
    insecure_http: bool,
    #[serde(default)]
    aws_iam: bool,
    iam_server_id: Option<String>,
    db_user: Option<String>,
    #[serde(default)]
    allow_remote: bool,
    max_connections: Option<usize>,
    shutdown_grace_seconds: Option<u64>,
    http_listen: Option<SocketAddr>,
    db_ca_file: Option<PathBuf>,
    client_tls_cert: Option<PathBuf>,
    client_tls_key: Option<PathBuf>,
    client_password_file: Option<PathBuf>,
    token_min_remaining_seconds: Option<u64>,
    threads: Option<usize>,
    #[serde(default)]
    listen: Vec<FileListen>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListen {
    target: String,
    address: String,
    engine: Option<String>,
    db_user: Option<String>,
}

/// The checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How to reach the broker.
    pub broker: BrokerArgs,
    /// Listeners.
    pub listen: Vec<Listen>,
    /// Connection limit.
    pub max_connections: usize,
    /// Shutdown grace.
    pub shutdown_grace: std::time::Duration,
    /// Metrics/health address.
    pub http_listen: Option<SocketAddr>,
    /// Database CA bundle.
    pub db_ca_file: Option<PathBuf>,
    /// Client TLS certificate and key.
    pub client_tls: Option<(PathBuf, PathBuf)>,
    /// Client password file.
    pub client_password_file: Option<PathBuf>,
    /// Token freshness floor.
    pub min_remaining: std::time::Duration,
    /// Runtime threads: 1 is a single-threaded runtime.
    pub threads: usize,
}

/// `--threads` when neither the flag nor the file sets it (bench/README.md, "proxy threads").
pub const DEFAULT_THREADS: usize = 1;

/// Most `--threads`: more than a few relay threads only adds contention.
const MAX_THREADS: usize = 64;

/// Parses `NAME=ADDR`.
pub fn parse_listen(s: &str) -> Result<(String, ListenAddr), String> {
    let (name, addr) = s.split_once('=').ok_or_else(|| {
        format!("--listen {s}: expected NAME=ADDR, e.g. orders-db=127.0.0.1:5432")
    })?;
    if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control()) {
        return Err(format!("--listen {s}: the target name is empty or invalid"));
    }
    Ok((
        name.to_owned(),
        parse_addr(addr).map_err(|e| format!("--listen {s}: {e}"))?,
    ))
}

fn parse_addr(addr: &str) -> Result<ListenAddr, String> {
    if let Some(path) = addr.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("unix: needs a path".into());
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    addr.parse::<SocketAddr>()
        .map(ListenAddr::Tcp)
        .map_err(|_| format!("{addr:?} is neither IP:PORT nor unix:/path"))
}

impl ProxyArgs {
    /// Merges the file (if any) under the flags and checks the result; every problem is
    /// listed.
    pub fn settings(&self) -> Result<Settings, String> {
        let file: File = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => File::default(),
        };
        let mut problems = Vec::new();
        let broker = self.broker.clone().or(file.broker.clone());
        if broker.is_none() {
            problems
                .push("no broker: pass --broker URL (or broker = \"...\" in the file)".to_owned());
        }
        let db_user = self.db_user.clone().or(file.db_user.clone());
        let mut listen = Vec::new();
        for l in &self.listen {
            match parse_listen(l) {
                Ok((target, addr)) => listen.push(Listen {
                    target,
                    addr,
                    engine: None,
                    db_user: db_user.clone(),
                }),
                Err(e) => problems.push(e),
            }
        }
        for l in &file.listen {
            let addr = parse_addr(&l.address);
            let engine = l.engine.as_deref().map(|e| Engine::parse(e).ok_or(e));
            match (addr, engine) {
                (Ok(addr), None | Some(Ok(_))) => listen.push(Listen {
                    target: l.target.clone(),
                    addr,
                    engine: l.engine.as_deref().and_then(Engine::parse),
                    db_user: l.db_user.clone().or(db_user.clone()),
                }),
                (Err(e), _) => problems.push(format!("listen {}: {e}", l.target)),
                (_, Some(Err(e))) => problems.push(format!(
                    "listen {}: engine {e:?} is not postgres, mysql or mariadb",
                    l.target
                )),
            }
        }
        if listen.is_empty() {
            problems.push("no listener: pass --listen NAME=ADDR".to_owned());
        }
        let allow_remote = self.allow_remote || file.allow_remote;
        for l in &listen {
            if let ListenAddr::Tcp(a) = &l.addr
                && !a.ip().is_loopback()
                && !allow_remote
            {
                problems.push(format!(
                    "--listen {}={a}: not a loopback address. Whoever reaches it signs in to the database as you, with no password; pass --allow-remote if that is intended (and protect it with --client-password-file or a firewall)",
                    l.target
                ));
            }
        }
        let client_tls = match (
            self.client_tls_cert.clone().or(file.client_tls_cert),
            self.client_tls_key.clone().or(file.client_tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                problems.push("client TLS needs both a certificate and a key".into());
                None
            }
        };
        let max_connections = self
            .max_connections
            .or(file.max_connections)
            .unwrap_or(1000);
        if max_connections == 0 {
            problems.push("--max-connections must be at least 1".into());
        }
        let threads = self.threads.or(file.threads).unwrap_or(DEFAULT_THREADS);
        if !(1..=MAX_THREADS).contains(&threads) {
            problems.push(format!("--threads must be 1 to {MAX_THREADS}"));
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        Ok(Settings {
            broker: BrokerArgs {
                broker: broker.unwrap_or_default(),
                jwt_file: self.jwt_file.clone().or(file.jwt_file),
                k8s_token_file: self
                    .k8s_token_file
                    .clone()
                    .or(file.k8s_token_file)
                    .unwrap_or_else(|| PathBuf::from(crate::client::K8S_TOKEN_FILE)),
                ca_file: self.ca_file.clone().or(file.ca_file),
                timeout: self.timeout.or(file.timeout_seconds).unwrap_or(10),
                insecure_http: self.insecure_http || file.insecure_http,
                aws_iam: self.aws_iam || file.aws_iam,
                iam_server_id: self.iam_server_id.clone().or(file.iam_server_id),
                sts_endpoint: self.sts_endpoint.clone(),
            },
            listen,
            max_connections,
            shutdown_grace: std::time::Duration::from_secs(
                self.shutdown_grace
                    .or(file.shutdown_grace_seconds)
                    .unwrap_or(30),
            ),
            http_listen: self.http_listen.or(file.http_listen),
            db_ca_file: self.db_ca_file.clone().or(file.db_ca_file),
            client_tls,
            client_password_file: self
                .client_password_file
                .clone()
                .or(file.client_password_file),
            min_remaining: std::time::Duration::from_secs(
                self.token_min_remaining
                    .or(file.token_min_remaining_seconds)
                    .unwrap_or(120),
            ),
            threads,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProxyArgs,
    }

    fn settings(argv: &[&str]) -> Result<Settings, String> {
        let mut all = vec!["proxy", "--k8s-token-file", "/nonexistent"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).unwrap().args.settings()
    }

    #[test]
    fn listeners_are_loopback_unless_remote_is_allowed() {
        let ok = settings(&[
            "--broker",
            "http://127.0.0.1:8443",
            "--listen",
            "orders=127.0.0.1:5432",
            "--listen",
            "legacy=unix:/run/x.sock",
        ])
        .unwrap();
        assert_eq!(ok.listen.len(), 2);
        assert_eq!(
            ok.listen[1].addr,
            ListenAddr::Unix(PathBuf::from("/run/x.sock"))
        );
        let remote = [
            "--broker",
            "http://127.0.0.1:8443",
            "--listen",
            "orders=0.0.0.0:5432",
        ];
        let err = settings(&remote).unwrap_err();
        assert!(err.contains("--allow-remote"), "{err}");
        let mut allowed = remote.to_vec();
        allowed.push("--allow-remote");
        assert!(settings(&allowed).is_ok());
    }

    #[test]
    fn every_problem_is_listed() {
        let err = settings(&[
            "--listen",
            "nonsense",
            "--max-connections",
            "0",
            "--threads",
            "0",
        ])
        .unwrap_err();
        assert!(err.contains("no broker"), "{err}");
        assert!(err.contains("expected NAME=ADDR"), "{err}");
        assert!(err.contains("no listener"), "{err}");
        assert!(err.contains("--max-connections"), "{err}");
        assert!(err.contains("--threads must be 1 to 64"), "{err}");
    }

    #[test]
    fn the_file_is_read_under_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(
            &path,
            "broker = \"http://127.0.0.1:1\"\nmax_connections = 5\nthreads = 3\n[[listen]]\ntarget = \"ledger\"\naddress = \"127.0.0.1:3306\"\nengine = \"mysql\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let s = settings(&["--config", p, "--max-connections", "9"]).unwrap();
        assert_eq!(s.max_connections, 9);
        assert_eq!(s.threads, 3);
        let default = settings(&[
            "--broker",
            "http://127.0.0.1:1",
            "--listen",
            "a=127.0.0.1:1",
        ])
        .unwrap();
        assert_eq!(default.threads, DEFAULT_THREADS);
        assert_eq!(s.broker.broker, "http://127.0.0.1:1");
        assert_eq!(s.listen[0].engine, Some(Engine::Mysql));
        std::fs::write(&path, "brokr = \"x\"\n").unwrap();
        assert!(
            settings(&["--config", p])
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
