//! A private PostgreSQL for the test run and a throwaway database on it per test.
//!
//! The server starts on first use: `initdb` into a temp directory (trust authentication,
//! user `postgres`), then `pg_ctl start` on a free loopback port with its unix socket in
//! that directory. The tests of one run share it, each in a database of its own, dropped
//! when the test ends; a watchdog stops the server and removes the directory when the
//! test process ends. The machine's own PostgreSQL, if any, is never used. As root the
//! server runs as the `postgres` user (`initdb` refuses root), through `runuser`.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use sqlx::Connection;
use tokio::sync::OnceCell;

use super::tools;
use super::watchdog::{Watchdog, free_port};

/// The PostgreSQL server of this test run.
struct Server {
    port: u16,
    _watchdog: Watchdog,
}

impl Server {
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

async fn server() -> &'static Server {
    SERVER.get_or_init(start).await
}

/// `program` from PostgreSQL's bin directory, as the `postgres` user when `root`.
fn command(root: bool, program: &Path) -> tokio::process::Command {
    if root {
        let mut cmd = tokio::process::Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        tokio::process::Command::new(program)
    }
}

async fn run(mut cmd: tokio::process::Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{what} did not start: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

async fn start() -> Server {
    let bin = tools::postgres_bin_dir();
    let dir: PathBuf = tempfile::Builder::new()
        .prefix("rtb-test-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let root = std::fs::metadata(&dir).unwrap().uid() == 0;
    if root {
        let chown = std::process::Command::new("chown")
            .arg("postgres:")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            chown.status.success(),
            "As root, the tests run their PostgreSQL as the `postgres` user (initdb refuses \
             root), but `chown postgres: {}` failed: {}. Debian's postgresql package creates \
             that user; or run the tests as another user.",
            dir.display(),
            String::from_utf8_lossy(&chown.stderr).trim()
        );
    }
    // Immediate shutdown (SIGQUIT to the postmaster): the data is thrown away anyway.
    let watchdog = Watchdog::arm("head -n 1 \"$1/data/postmaster.pid\"", "QUIT", &dir);
    let data = dir.join("data");
    let mut initdb = command(root, &bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
        .arg("--no-sync");
    if let Err(e) = run(initdb, "initdb").await {
        panic!("the tests' private PostgreSQL: {e}");
    }
    let pg_ctl = bin.join("pg_ctl");
    let log = dir.join("server.log");
    // A free port can be taken by someone else before the server binds it: try another.
    for _ in 0..3 {
        let port = free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k '{}' -c cluster_name=rtb-test \
             -c max_connections=200 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off",
            dir.display()
        );
        let mut pg_start = command(root, &pg_ctl);
        pg_start
            .args(["start", "-w", "-s", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &options]);
        match run(pg_start, "pg_ctl start").await {
            Ok(()) => {
                return Server {
                    port,
                    _watchdog: watchdog,
                };
            }
            Err(e) => {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                if !log.contains("Address already in use") {
                    panic!("the tests' private PostgreSQL: {e}\nits log:\n{log}");
                }
            }
        }
    }
    panic!("the tests' private PostgreSQL found no free port in three tries");
}

/// A database of its own for one test, dropped when the test ends.
pub struct TempDb {
    pub name: String,
    admin_url: String,
    url: String,
}

impl TempDb {
    pub async fn create() -> Self {
        let server = server().await;
        let name = format!("rtb_test_{}", uuid::Uuid::new_v4().simple());
        let db = Self {
            admin_url: server.url("postgres"),
            url: server.url(&name),
            name,
        };
        db.admin(&format!("CREATE DATABASE {}", db.name), false)
            .await;
        db
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Runs one statement as the administrator, on the test database or `postgres`.
    pub async fn admin(&self, sql: &str, on_test_db: bool) {
        let url = if on_test_db {
            &self.url
        } else {
            &self.admin_url
        };
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let (name, admin_url) = (self.name.clone(), self.admin_url.clone());
        // Drop from a fresh thread and runtime: Drop may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}
