//! A private PostgreSQL for the test run and a throwaway database on it per test.
//!
//! The server starts on first use: `initdb` into a temp directory (trust authentication,
//! user `postgres`), then `postgres` on a free loopback port with its unix socket in that
//! directory. The tests of one run share it, each in a database of its own, dropped
//! when the test ends; a watchdog stops the server and removes the directory when the
//! test process ends. The machine's own PostgreSQL, if any, is never used. As root the
//! server runs as the `postgres` user (`initdb` refuses root), through `runuser`.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::Connection;
use tokio::sync::OnceCell;

use super::tools;
use super::watchdog::{Supervised, free_port, temp_dir};

/// The PostgreSQL server of this test run.
struct Server {
    port: u16,
    _server: Supervised,
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

async fn start() -> Server {
    let settings = ["cluster_name=rtb-test", "max_connections=200"];
    let url = |port| format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let (_, port, server) = cluster("rtb-test-pg-", "PostgreSQL", &settings, |_, _| {}, url).await;
    Server {
        port,
        _server: server,
    }
}

/// A private cluster: `initdb` into a fresh temp directory (`prefix`), `prepare(dir, data)`
/// (certificates, `pg_hba.conf`), then `postgres` on a free loopback port with `settings`,
/// up once `url(port)` connects. A port someone else took meanwhile: another try.
/// Returns the directory, the port and the supervised server.
pub(super) async fn cluster(
    prefix: &str,
    what: &str,
    settings: &[&str],
    prepare: impl Fn(&Path, &Path),
    url: impl Fn(u16) -> String,
) -> (PathBuf, u16, Supervised) {
    let bin = tools::postgres_bin_dir();
    for _ in 0..3 {
        let dir = temp_dir(prefix);
        let user = owner(&dir);
        let data = dir.join("data");
        initdb(&bin, &data, user).await;
        prepare(&dir, &data);
        if let Some(u) = user {
            let st = std::process::Command::new("chown")
                .arg("-R")
                .arg(format!("{u}:"))
                .arg(&data)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let port = free_port();
        let mut args: Vec<OsString> =
            vec!["-D".into(), data.into(), "-k".into(), dir.clone().into()];
        let common = [
            format!("port={port}"),
            "listen_addresses=127.0.0.1".into(),
            "fsync=off".into(),
            "synchronous_commit=off".into(),
            "full_page_writes=off".into(),
        ];
        for setting in common
            .into_iter()
            .chain(settings.iter().map(|s| s.to_string()))
        {
            args.extend(["-c".into(), setting.into()]);
        }
        // Immediate shutdown (SIGQUIT) at the end: the data is thrown away anyway.
        let server = Supervised::start(&dir, user, "QUIT", &bin.join("postgres"), args);
        let url = url(port);
        let up = super::eventually(Duration::from_secs(60), || {
            let exited = server.exited();
            let url = url.clone();
            async move {
                if exited {
                    return Some(false);
                }
                sqlx::PgConnection::connect(&url)
                    .await
                    .is_ok()
                    .then_some(true)
            }
        })
        .await;
        if up {
            return (dir, port, server);
        }
        let log = server.log();
        assert!(
            log.contains("Address already in use"),
            "the tests' private {what} stopped:\n{log}"
        );
    }
    panic!("the tests' private {what} found no free port in three tries");
}

/// The user to run PostgreSQL as: `postgres` when we are root (initdb refuses root), who
/// then gets `dir`; else nobody else (we run it).
pub(super) fn owner(dir: &Path) -> Option<&'static str> {
    if std::fs::metadata(dir).unwrap().uid() != 0 {
        return None;
    }
    let chown = std::process::Command::new("chown")
        .arg("postgres:")
        .arg(dir)
        .output()
        .unwrap();
    if !chown.status.success() {
        let _ = std::fs::remove_dir(dir);
    }
    assert!(
        chown.status.success(),
        "As root, the tests run their PostgreSQL as the `postgres` user (initdb refuses \
         root), but `chown postgres: {}` failed: {}. Debian's postgresql package creates \
         that user; or run the tests as another user.",
        dir.display(),
        String::from_utf8_lossy(&chown.stderr).trim()
    );
    Some("postgres")
}

/// A new cluster in `data`: user `postgres`, trust authentication.
pub(super) async fn initdb(bin: &Path, data: &Path, user: Option<&str>) {
    let initdb = bin.join("initdb");
    let mut cmd = match user {
        Some(user) => {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", user, "--"]).arg(&initdb);
            c
        }
        None => tokio::process::Command::new(&initdb),
    };
    let out = cmd
        .arg("-D")
        .arg(data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
        .arg("--no-sync")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{} did not start: {e}", initdb.display()));
    if !out.status.success() {
        // No server, no watchdog yet: remove the directory here.
        let _ = std::fs::remove_dir_all(data.parent().unwrap_or(data));
    }
    assert!(
        out.status.success(),
        "the tests' private PostgreSQL: initdb failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
