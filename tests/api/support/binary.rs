//! The real `rds-token-broker` binary as a child process on a free loopback port. Its
//! stderr (the broker's logs) is kept, and printed when the test fails (or as it comes,
//! with `TEST_LOG`; see `support::logs`).

use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::BrokerToml;

pub const BIN: &str = env!("CARGO_BIN_EXE_rds-token-broker");

/// A command for the binary with an environment that finds no AWS credentials and never
/// probes the EC2 metadata service: every network call stays on loopback.
pub fn command(home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("RUST_LOG", "info");
    cmd
}

/// [`command`] with AWS's documented example keys in the environment: the broker signs
/// (tokens no database accepts) with no credential source beyond the process.
pub fn command_with_example_keys(home: &Path) -> Command {
    let mut cmd = command(home);
    cmd.env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE").env(
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    );
    cmd
}

/// The base URL a broker's "listening on http(s)://ADDR" log line names, if `line` is one.
pub fn listening_address(line: &str) -> Option<String> {
    ["http", "https"].into_iter().find_map(|scheme| {
        let marker = format!("listening on {scheme}://");
        let i = line.find(&marker)?;
        let addr: String = line[i + marker.len()..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"')
            .collect();
        Some(format!("{scheme}://{addr}"))
    })
}

/// Runs the binary to completion.
pub fn run(home: &Path, args: &[&str]) -> Output {
    command(home).args(args).output().unwrap()
}

pub struct RunningBroker {
    pub base: String,
    pub child: Child,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    /// Says when the stderr reader has read everything (the broker exited).
    stderr_done: mpsc::Receiver<()>,
}

impl RunningBroker {
    /// Writes `config` to `home/broker.toml` and serves it with AWS's example keys (the
    /// broker signs locally; see [`command_with_example_keys`]).
    pub fn serve(home: &Path, config: &BrokerToml) -> Self {
        let path = config.write_to(home);
        let mut cmd = command_with_example_keys(home);
        cmd.args(["serve", "--config", path.to_str().unwrap()]);
        Self::start(cmd)
    }

    /// Starts `cmd` (a `serve` invocation) and waits until it logs its address.
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut out = child.stdout.take().unwrap();
        let out_buf = stdout.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                out_buf
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let (tx, rx) = mpsc::channel();
        let (done_tx, stderr_done) = mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        let err_buf = stderr.clone();
        let live = super::logs::shown();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if live {
                    // Straight to the terminal, past the test harness's capture.
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
                if let Some(base) = listening_address(&line) {
                    let _ = tx.send(base);
                }
                err_buf.lock().unwrap().push_str(&line);
                err_buf.lock().unwrap().push('\n');
            }
            let _ = done_tx.send(());
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("broker did not start; stderr:\n{}", stderr.lock().unwrap());
            }
        };
        Self {
            base: addr,
            child,
            stdout,
            stderr,
            stderr_done,
        }
    }

    /// Sends SIGTERM and waits (at most 10 s, without blocking the runtime) for the exit
    /// status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .await;
        let child = &mut self.child;
        // (If it never exits, the failure kills it: see `Drop`.)
        super::eventually(Duration::from_secs(10), || {
            let status = child.try_wait().unwrap();
            async move { status }
        })
        .await
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() && !super::logs::shown() {
            // The test failed: show what the broker said (its last lines included).
            let _ = self.stderr_done.recv_timeout(Duration::from_secs(2));
            eprintln!("---- the broker's stderr ----\n{}", self.stderr());
            let stdout = self.stdout();
            if !stdout.is_empty() {
                eprintln!("---- the broker's stdout ----\n{stdout}");
            }
        }
    }
}
