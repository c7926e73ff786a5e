//! A private PostgreSQL that signs in like RDS: `ssl = on` with a certificate from a test
//! CA (for `localhost` and 127.0.0.1), and `pg_hba.conf` allowing only `hostssl`, with
//! `password` (cleartext over TLS, as RDS asks), `md5` or `scram-sha-256` by group. The
//! administrator `postgres` signs in over TLS with trust. Started once per test run, like
//! `support::pg`; each test makes users of its own.

use std::path::{Path, PathBuf};

use sqlx::Connection;
use tokio::sync::OnceCell;

use super::watchdog::Supervised;

/// The TLS PostgreSQL of this test run.
pub struct TlsPg {
    pub port: u16,
    /// The test CA's certificate (PEM file).
    pub ca_file: PathBuf,
    _server: Supervised,
}

/// How a test user signs in.
#[derive(Clone, Copy, Debug)]
pub enum Method {
    /// `password`: cleartext over TLS (RDS).
    Password,
    /// `md5`, with an MD5-stored password.
    Md5,
    /// `scram-sha-256`.
    Scram,
}

static SERVER: OnceCell<TlsPg> = OnceCell::const_new();

/// The server, started on first use.
pub async fn server() -> &'static TlsPg {
    SERVER.get_or_init(start).await
}

const HBA: &str = "\
local all all trust
hostssl all postgres 127.0.0.1/32 trust
hostssl all +pw_users 127.0.0.1/32 password
hostssl all +md5_users 127.0.0.1/32 md5
hostssl all +scram_users 127.0.0.1/32 scram-sha-256
host all all 0.0.0.0/0 reject
";

async fn start() -> TlsPg {
    let (ca, cert, key) = crate::support::pki::pki("postgres");
    let prepare = |dir: &Path, data: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(dir.join("ca.pem"), &ca).unwrap();
        std::fs::write(data.join("server.crt"), &cert).unwrap();
        std::fs::write(data.join("server.key"), &key).unwrap();
        std::fs::write(data.join("pg_hba.conf"), HBA).unwrap();
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    };
    let settings = ["cluster_name=rtb-test-tls", "max_connections=300", "ssl=on"];
    let (dir, port, server) = super::pg::cluster(
        "rtb-test-pgtls-",
        "TLS PostgreSQL",
        &settings,
        prepare,
        admin_url,
    )
    .await;
    let pg = TlsPg {
        port,
        ca_file: dir.join("ca.pem"),
        _server: server,
    };
    pg.admin("CREATE ROLE pw_users NOLOGIN; CREATE ROLE md5_users NOLOGIN; CREATE ROLE scram_users NOLOGIN")
        .await;
    pg
}

fn admin_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require")
}

impl TlsPg {
    /// Runs SQL (one or more statements) as the administrator.
    pub async fn admin(&self, sql: &str) {
        let mut c = sqlx::PgConnection::connect(&admin_url(self.port))
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    }

    /// Creates `user` signing in by `method` with `password`.
    pub async fn user(&self, user: &str, method: Method, password: &str) {
        let (group, encryption) = match method {
            Method::Password => ("pw_users", "scram-sha-256"),
            Method::Md5 => ("md5_users", "md5"),
            Method::Scram => ("scram_users", "scram-sha-256"),
        };
        self.admin(&format!(
            "SET password_encryption = '{encryption}'; \
             CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}' IN ROLE {group}"
        ))
        .await;
    }

    /// Sets `user`'s password.
    pub async fn set_password(&self, user: &str, password: &str) {
        self.admin(&format!("ALTER ROLE \"{user}\" PASSWORD '{password}'"))
            .await;
    }
}
