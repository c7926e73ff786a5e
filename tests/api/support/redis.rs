//! A private Redis for the test run: `redis-server` on a free loopback port, nothing saved
//! to disk, its directory (its log) in a temp dir. The tests of one run share it, each
//! under a key prefix of its own; a watchdog stops it and removes the directory when the
//! test process ends. The machine's own Redis, if any, is never used.

use std::ffi::OsString;
use std::time::Duration;

use tokio::sync::OnceCell;

use super::tools;
use super::watchdog::{Supervised, free_port, temp_dir};

pub struct Redis {
    pub port: u16,
    /// The TLS port of a Redis from [`Redis::start_tls`].
    pub tls_port: Option<u16>,
    _server: Supervised,
}

/// The files of a TLS Redis: its certificate chain and key, and the CA that signed them.
pub struct TlsFiles<'a> {
    pub cert: &'a std::path::Path,
    pub key: &'a std::path::Path,
    pub ca: &'a std::path::Path,
}

static SHARED: OnceCell<Redis> = OnceCell::const_new();

/// The Redis of this test run, started on first use.
pub async fn shared() -> &'static Redis {
    SHARED.get_or_init(Redis::start).await
}

impl Redis {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A Redis of the caller's own (not the shared one) that also serves TLS on
    /// `tls_port` with `tls`'s certificate, not asking clients for theirs; the plain
    /// `port` stays for setting it up.
    pub async fn start_tls(tls: TlsFiles<'_>) -> Self {
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<TlsFiles<'_>>) -> Self {
        let bin = tools::redis_server();
        // A free port can be taken by someone else before Redis binds it: try another.
        for _ in 0..3 {
            let dir = temp_dir("rtb-test-redis-");
            let port = free_port();
            let mut args: Vec<OsString> = ["--port".into(), port.to_string().into()].into();
            args.extend(
                ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].map(OsString::from),
            );
            args.extend(["--dir".into(), dir.clone().into()]);
            let tls_port = tls.as_ref().map(|t| {
                let tls_port = free_port();
                args.extend(["--tls-port".into(), tls_port.to_string().into()]);
                args.extend(["--tls-cert-file".into(), t.cert.into()]);
                args.extend(["--tls-key-file".into(), t.key.into()]);
                args.extend(["--tls-ca-cert-file".into(), t.ca.into()]);
                args.extend(["--tls-auth-clients".into(), "no".into()]);
                tls_port
            });
            // Nothing to save: SIGKILL at the end.
            let server = Supervised::start(&dir, None, "KILL", &bin, args);
            let url = format!("redis://127.0.0.1:{port}");
            let up = super::eventually(Duration::from_secs(15), || {
                let exited = server.exited();
                let url = url.clone();
                async move {
                    if exited {
                        return Some(false);
                    }
                    ping(&url).await.then_some(true)
                }
            })
            .await;
            if up {
                return Self {
                    port,
                    tls_port,
                    _server: server,
                };
            }
            let log = server.log();
            assert!(
                log.contains("Address already in use"),
                "the tests' private Redis stopped:\n{log}"
            );
        }
        panic!("the tests' private Redis found no free port in three tries");
    }
}

async fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}
