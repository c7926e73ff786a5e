//! Servers the tests start for a whole run (PostgreSQL, Redis), stopped when the test
//! process ends, however it ends: passing, failing, panicking, killed or interrupted.
//!
//! A test binary cannot run code at exit (no `atexit` without `unsafe`, which the crate
//! forbids, and a kill skips it anyway). So each server runs under a watchdog: a shell, in
//! its own process group (Ctrl-C in the terminal does not reach it), that starts the server
//! as its child and then blocks reading a pipe whose only writer is the test process. When
//! that process ends, the kernel closes its end, the read returns, and the watchdog signals
//! the server, waits for it (reaping it: no zombie is left for init) and removes the
//! server's directory.

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

const SCRIPT: &str = r#"signal=$1 dir=$2; shift 2
"$@" >"$dir/server.log" 2>&1 </dev/null &
pid=$!
echo "$pid"
read _ignored
kill -"$signal" "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir""#;

pub struct Supervised {
    pub pid: u32,
    dir: PathBuf,
    /// The write end of the watchdog's pipe; never written, closed when the test process
    /// ends (or this value is dropped).
    _pipe: ChildStdin,
    _watchdog: Child,
}

impl Supervised {
    /// Starts `program args` (as `user`, through `runuser`, when given) with its output in
    /// `dir/server.log`; when the test process ends, it gets `signal` and `dir` is removed.
    pub fn start<I, S>(
        dir: &Path,
        user: Option<&str>,
        signal: &str,
        program: &Path,
        args: I,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = match user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "sh"]);
                c
            }
            None => Command::new("sh"),
        };
        let mut watchdog = cmd
            .arg("-c")
            .arg(SCRIPT)
            .arg("sh")
            .arg(signal)
            .arg(dir)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("sh, to run the tests' servers");
        let pipe = watchdog.stdin.take().expect("the watchdog's stdin");
        let mut line = String::new();
        BufReader::new(watchdog.stdout.take().expect("the watchdog's stdout"))
            .read_line(&mut line)
            .unwrap();
        let pid = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the watchdog of {} did not start", program.display()));
        Self {
            pid,
            dir: dir.to_path_buf(),
            _pipe: pipe,
            _watchdog: watchdog,
        }
    }

    /// Whether the server has exited (it stays a zombie until the watchdog reaps it). Where
    /// there is no `/proc`, never: a failed start then shows as a timeout.
    pub fn exited(&self) -> bool {
        if !Path::new("/proc/self").exists() {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // "pid (comm) S ...": the state follows the last ')'.
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        }
    }

    /// What the server wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
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

/// A new temp directory, `prefix` then random characters, that outlives this value (the
/// watchdog removes it).
pub fn temp_dir(prefix: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .unwrap()
        .keep()
}
