//! A private Redis for the test run: `redis-server` on a free loopback port, nothing saved
//! to disk, its directory (the log) in a temp dir. The tests of one run share it, each
//! under a key prefix of its own; a watchdog stops it and removes the directory when the
//! test process ends. The machine's own Redis, if any, is never used.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::sync::OnceCell;

use super::tools;
use super::watchdog::{Watchdog, free_port};

pub struct Redis {
    pub port: u16,
    _server: Child,
    _watchdog: Watchdog,
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
        let bin = tools::redis_server();
        // A free port can be taken by someone else before Redis binds it: try another.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("rtb-test-redis-")
                .tempdir()
                .unwrap()
                .keep();
            let port = free_port();
            let log = dir.join("redis.log");
            let mut server = Command::new(&bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{} did not start: {e}", bin.display()));
            let watchdog = Watchdog::arm(&format!("echo {}", server.id()), "KILL", &dir);
            let url = format!("redis://127.0.0.1:{port}");
            let up = super::eventually(Duration::from_secs(15), || {
                let exited = server.try_wait().unwrap().is_some();
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
                    _server: server,
                    _watchdog: watchdog,
                };
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
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
