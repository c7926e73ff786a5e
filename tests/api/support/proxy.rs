//! `rds-token-broker proxy` as a child process (`Proxy`), started against an in-process
//! broker whose target points at a database the tests started; the tokens that broker
//! serves (`token`), to set as the database users' passwords.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::app::TestApp;
use super::binary;
use super::config::{BrokerToml, Target};

/// A running `proxy` child process.
pub struct Proxy {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
    /// The listener addresses, in --listen order.
    pub addrs: Vec<String>,
    _home: tempfile::TempDir,
}

impl Proxy {
    /// Starts `proxy --broker BASE ARGS...` and waits for `listeners` listening lines.
    pub fn start(broker: &str, args: &[&str], listeners: usize) -> Self {
        let home = tempfile::tempdir().unwrap();
        let mut child = binary::command(home.path())
            .args(["proxy", "--broker", broker, "--k8s-token-file"])
            .arg(home.path().join("no-k8s-token"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        let buf = stderr.clone();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if let Some(i) = line.find("proxy listening on ") {
                    let addr: String = line[i + 19..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(addr);
                }
                buf.lock().unwrap().push_str(&line);
                buf.lock().unwrap().push('\n');
            }
        });
        let mut addrs = Vec::new();
        for _ in 0..listeners {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(a) => addrs.push(a),
                Err(_) => {
                    let _ = child.kill();
                    panic!("proxy did not start:\n{}", stderr.lock().unwrap());
                }
            }
        }
        Self {
            child,
            stderr,
            addrs,
            _home: home,
        }
    }

    /// One listener for target `orders` on a free loopback port, trusting `ca_file`
    /// for the database, plus `args`.
    pub fn orders(broker: &str, ca_file: &Path, args: &[&str]) -> Self {
        let ca = ca_file.to_str().unwrap();
        let mut all = vec!["--listen", "orders=127.0.0.1:0", "--db-ca-file", ca];
        all.extend_from_slice(args);
        Self::start(broker, &all, 1)
    }

    pub fn port(&self) -> u16 {
        self.addrs[0].rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- the proxy's stderr ----\n{}", self.logs());
        }
    }
}

/// The token the broker serves for `user` on target `orders` now.
pub async fn token(app: &TestApp, user: &str) -> String {
    let t = app
        .token(json!({"target": "orders", "db_user": user}))
        .await;
    t["token"].as_str().unwrap().to_owned()
}

/// An unauthenticated broker serving `target`, its clock set to now.
pub async fn broker(target: Target) -> TestApp {
    let app = TestApp::spawn_toml(BrokerToml::unauthenticated().target(target)).await;
    app.clock.set(std::time::SystemTime::now());
    app
}
