//! A private MariaDB for the test run, with TLS from a test CA.
//!
//! The server starts on first use: `mariadb-install-db` into a temp directory, then
//! `mariadbd` on a free loopback port with its socket in that directory and a server
//! certificate for `localhost` / `127.0.0.1` signed by a CA made for this run. Tests
//! create their own users over the socket (as root) with [`MariaDb::sql`]. A watchdog
//! stops the server and removes the directory when the test process ends; the machine's
//! own MariaDB, if any, is never used.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::OnceCell;

use super::watchdog::{Supervised, free_port, temp_dir};

/// The MariaDB server of this test run.
pub struct MariaDb {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The CA that signed the server's certificate (PEM).
    pub ca_pem: String,
    socket: PathBuf,
    _server: Supervised,
}

static SERVER: OnceCell<MariaDb> = OnceCell::const_new();

/// The run's MariaDB, started on first use.
pub async fn server() -> &'static MariaDb {
    SERVER.get_or_init(start).await
}

/// `program` from `PATH`, `/usr/sbin` or `/usr/bin`, or a failed test saying what to install.
pub fn program(name: &str) -> PathBuf {
    super::tools::on_path(name)
        .or_else(|| {
            ["/usr/sbin", "/usr/bin"]
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} was not found: the MySQL proxy tests start a private MariaDB. Install \
                 it: on Debian or Ubuntu `apt-get install --no-install-recommends \
                 mariadb-server mariadb-client`."
            )
        })
}

async fn start() -> MariaDb {
    let (ca_pem, cert, key) = crate::support::pki::pki("mariadb");
    for _ in 0..3 {
        let dir = temp_dir("rtb-test-mariadb-");
        let data = dir.join("data");
        let (ca_file, cert_file, key_file) = (
            dir.join("ca.pem"),
            dir.join("server.pem"),
            dir.join("server.key"),
        );
        std::fs::write(&ca_file, &ca_pem).unwrap();
        std::fs::write(&cert_file, &cert).unwrap();
        std::fs::write(&key_file, &key).unwrap();
        install(&data).await;
        let port = free_port();
        let socket = dir.join("mysqld.sock");
        let args: Vec<std::ffi::OsString> = vec![
            "--no-defaults".into(),
            "--user=root".into(),
            format!("--datadir={}", data.display()).into(),
            format!("--port={port}").into(),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", socket.display()).into(),
            format!("--pid-file={}", dir.join("mysqld.pid").display()).into(),
            format!("--ssl-ca={}", ca_file.display()).into(),
            format!("--ssl-cert={}", cert_file.display()).into(),
            format!("--ssl-key={}", key_file.display()).into(),
            "--skip-name-resolve".into(),
            "--innodb-buffer-pool-size=16M".into(),
            "--max-connections=300".into(),
            "--skip-log-bin".into(),
        ];
        let server = Supervised::start(&dir, None, "KILL", &program("mariadbd"), args);
        let up = super::eventually(Duration::from_secs(60), || {
            let exited = server.exited();
            async move {
                if exited {
                    return Some(false);
                }
                greets(port).await.then_some(true)
            }
        })
        .await;
        if up {
            return MariaDb {
                port,
                ca_pem,
                socket,
                _server: server,
            };
        }
        let log = server.log();
        assert!(
            log.contains("Address already in use") || log.contains("Can't start server"),
            "the tests' private MariaDB stopped:\n{log}"
        );
    }
    panic!("the tests' private MariaDB found no free port in three tries");
}

/// Whether something on `port` sends a MySQL greeting.
async fn greets(port: u16) -> bool {
    use tokio::io::AsyncReadExt as _;
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut head = [0u8; 5];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut head)).await,
        Ok(Ok(_)) if head[4] == 10
    )
}

async fn install(data: &Path) {
    let out = tokio::process::Command::new(program("mariadb-install-db"))
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--user=root",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the tests' private MariaDB: mariadb-install-db failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl MariaDb {
    /// Runs `sql` as root over the socket; panics with the client's error when it fails.
    pub async fn sql(&self, sql: &str) -> String {
        let out = tokio::process::Command::new(program("mariadb"))
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--user=root", "--batch", "--skip-column-names", "-e", sql])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb -e {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A new user `name`@`%` with `password` (native password), allowed to `SELECT`.
    pub async fn user(&self, name: &str, password: &str) {
        self.sql(&format!(
            "CREATE USER '{name}'@'%' IDENTIFIED VIA mysql_native_password USING \
             PASSWORD('{password}'); GRANT SELECT ON *.* TO '{name}'@'%';"
        ))
        .await;
    }

    /// Sets `name`@`%`'s (native) password to `password`.
    pub async fn set_password(&self, name: &str, password: &str) {
        self.sql(&format!(
            "ALTER USER '{name}'@'%' IDENTIFIED VIA mysql_native_password USING \
             PASSWORD('{password}');"
        ))
        .await;
    }
}
