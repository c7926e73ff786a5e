//! Stops a server the tests started (PostgreSQL, Redis) when the test process ends,
//! however it ends: passing, failing, panicking, killed or interrupted with Ctrl-C.
//!
//! A test binary cannot run code at exit (no `atexit` without `unsafe`, which the crate
//! forbids, and a kill skips it anyway). So each server gets a watchdog: a shell in its own
//! process group (Ctrl-C in the terminal does not reach it) blocked reading a pipe whose
//! only writer is the test process. When that process ends, the kernel closes its end, the
//! read returns, and the watchdog runs the server's stop command and removes the server's
//! directory.

use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use std::os::unix::process::CommandExt as _;

pub struct Watchdog {
    /// The write end of the pipe; never written, closed when the test process ends.
    _pipe: ChildStdin,
    _shell: Child,
}

impl Watchdog {
    /// Once the test process has ended (or this value is dropped), sends `signal` to the
    /// process whose id the shell command `pid` prints (`"$1"` in it is `dir`), waits for it
    /// to go (at most 5 s: a zombie nobody reaps never goes), and removes `dir`.
    pub fn arm(pid: &str, signal: &str, dir: &Path) -> Self {
        let script = format!(
            "read _ignored; pid=$({pid}) && kill -{signal} \"$pid\" && i=0 && \
             while kill -0 \"$pid\" 2>/dev/null && [ $i -lt 250 ]; do \
             sleep 0.02; i=$((i + 1)); done; rm -rf \"$1\""
        );
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("sh, to stop the test servers when the tests end");
        let pipe = shell.stdin.take().expect("the watchdog's stdin");
        Self {
            _pipe: pipe,
            _shell: shell,
        }
    }
}

/// A port nothing listens on now, on loopback (a server started on it may still lose a race
/// for it: callers retry on "address in use").
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
