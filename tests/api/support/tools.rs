//! The programs the tests take from the machine: PostgreSQL's server programs and `psql`,
//! `redis-server` and `curl`. Each is looked up where its package puts it; a missing one
//! fails the test with what to install. `scripts/test` checks the same list first and
//! installs what is missing on Debian and Ubuntu.

use std::path::{Path, PathBuf};

/// Fails the test: `what` is missing, with the packages that provide it.
fn missing(what: &str, debian: &str, elsewhere: &str) -> ! {
    panic!(
        "{what}. Install it: on Debian or Ubuntu `apt-get install --no-install-recommends \
         {debian}` (scripts/test does this when it can); elsewhere {elsewhere}."
    )
}

/// `program` in a directory of `PATH`.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The directory of PostgreSQL's `initdb` and `postgres`: Debian's
/// `/usr/lib/postgresql/<newest version>/bin`, else the directory of `initdb` on `PATH`.
pub fn postgres_bin_dir() -> PathBuf {
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return bin;
    }
    if let Some(dir) = on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf))
        && has_server(&dir)
    {
        return dir;
    }
    missing(
        "PostgreSQL's server programs (initdb and postgres, version 13 or newer) are \
         neither in /usr/lib/postgresql/<version>/bin nor on PATH: the tests start a private \
         PostgreSQL with them",
        "postgresql",
        "the PostgreSQL server package, with initdb and postgres on PATH",
    )
}

fn has_server(dir: &Path) -> bool {
    ["initdb", "postgres"].iter().all(|p| dir.join(p).is_file())
}

/// `redis-server` on `PATH`.
pub fn redis_server() -> PathBuf {
    on_path("redis-server").unwrap_or_else(|| {
        missing(
            "redis-server is not on PATH: the tests start a private Redis with it",
            "redis-server",
            "the Redis server package, with redis-server on PATH",
        )
    })
}

/// `redis-cli` on `PATH` (the ElastiCache end-to-end test authenticates with it).
pub fn redis_cli() -> PathBuf {
    on_path("redis-cli").unwrap_or_else(|| {
        missing(
            "redis-cli is not on PATH: the ElastiCache end-to-end test authenticates with it",
            "redis-tools",
            "the Redis client package, with redis-cli on PATH",
        )
    })
}

/// Fails the test unless `psql` is on `PATH` (the psql recipe runs it).
pub fn require_psql() {
    if on_path("psql").is_none() {
        missing(
            "psql is not on PATH: the psql recipe runs it",
            "postgresql-client",
            "the PostgreSQL client package, with psql on PATH",
        );
    }
}

/// Debian's PostgreSQL JDBC driver (`libpostgresql-jdbc-java`), or a failed test saying
/// what to install (the JDBC recipe runs it with the machine's `javac` and `java`).
pub fn postgres_jdbc_jar() -> PathBuf {
    let jar = PathBuf::from("/usr/share/java/postgresql.jar");
    if !jar.is_file() || on_path("javac").is_none() {
        missing(
            "the JDBC recipe needs /usr/share/java/postgresql.jar and javac",
            "libpostgresql-jdbc-java",
            "the PostgreSQL JDBC driver at /usr/share/java/postgresql.jar, and a JDK (javac, java) on PATH",
        );
    }
    jar
}

/// Fails the test unless `curl` 7.82 or newer (the first with `--json`) is on `PATH`.
pub fn require_curl() {
    let version = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| curl_version(&String::from_utf8_lossy(&out.stdout)));
    match version {
        Some(v) if v >= (7, 82) => {}
        Some((major, minor)) => missing(
            &format!(
                "curl {major}.{minor} is too old: the curl recipe needs 7.82 or newer (`--json`)"
            ),
            "curl",
            "curl 7.82 or newer",
        ),
        None => missing(
            "curl is not on PATH: the curl recipe runs it",
            "curl",
            "curl 7.82 or newer",
        ),
    }
}

/// (major, minor) from `curl --version`'s first line, `curl 7.88.1 (x86_64-pc-linux-gnu) ...`.
fn curl_version(text: &str) -> Option<(u32, u32)> {
    let version = text.strip_prefix("curl ")?.split_whitespace().next()?;
    let mut parts = version.split('.').map(str::parse::<u32>);
    Some((parts.next()?.ok()?, parts.next()?.ok()?))
}

#[test]
fn curl_versions_are_read_from_the_first_line() {
    assert_eq!(
        curl_version("curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1\nRelease-Date: x"),
        Some((7, 88))
    );
    assert_eq!(curl_version("curl 8.5.0 (aarch64)"), Some((8, 5)));
    assert_eq!(curl_version("bash: curl: not found"), None);
}
