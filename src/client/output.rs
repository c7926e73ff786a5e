//! What `token --format` prints and what `exec` puts in the child's environment.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{ClientError, IssuedToken, failed};

/// `token --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The token alone (for PGPASSWORD=$(...)).
    Token,
    /// The broker's JSON answer.
    Json,
    /// Shell `export` lines for the engine's client (PG* or MYSQL_*).
    Env,
    /// One ~/.pgpass line.
    Pgpass,
}

/// Client-side connection settings that the broker cannot know.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// CA bundle for the database's certificate (PGSSLROOTCERT).
    pub ssl_root_cert: Option<String>,
}

/// The variables a database client needs, in a stable order.
pub fn variables(t: &IssuedToken, tls: &ClientTls) -> Vec<(&'static str, String)> {
    let mut vars = Vec::new();
    if t.engine == "postgres" {
        vars.push(("PGHOST", t.host.clone()));
        vars.push(("PGPORT", t.port.to_string()));
        vars.push(("PGUSER", t.db_user.clone()));
        vars.push(("PGPASSWORD", t.token.clone()));
        // IAM authentication requires TLS; verify-full also checks the host name.
        vars.push(("PGSSLMODE", "verify-full".to_owned()));
        if let Some(ca) = &tls.ssl_root_cert {
            vars.push(("PGSSLROOTCERT", ca.clone()));
        }
    } else {
        vars.push(("MYSQL_HOST", t.host.clone()));
        vars.push(("MYSQL_TCP_PORT", t.port.to_string()));
        // Not read by the mysql client itself: pass it as `-u "$MYSQL_USER"`.
        vars.push(("MYSQL_USER", t.db_user.clone()));
        vars.push(("MYSQL_PWD", t.token.clone()));
        // The token travels as a cleartext password (inside TLS): libmysqlclient must be
        // allowed to use the cleartext plugin.
        vars.push(("LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN", "1".to_owned()));
    }
    vars
}

/// Quotes for POSIX shells: single quotes, with embedded ones closed and escaped.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn pgpass_escape(s: &str) -> String {
    s.replace('\\', r"\\").replace(':', r"\:")
}

/// A new, empty temporary file beside `path`, readable by the owner only: a random name,
/// created exclusively (`O_EXCL`: never an existing file, never through a symlink someone
/// planted in a shared directory). Dropped without [`persist`], it is removed.
pub fn private_temp(path: &Path) -> Result<tempfile::NamedTempFile, ClientError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(ClientError::Message(format!(
            "--output {}: not a file name",
            path.display()
        )));
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    builder.tempfile_in(dir).map_err(|e| {
        failed(
            format!(
                "cannot create a temporary file in {} for {}",
                dir.display(),
                path.display()
            ),
            e,
        )
    })
}

/// Syncs `tmp` and renames it to `path` (which is replaced, not followed if a symlink).
pub fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<(), ClientError> {
    let fail = |e: std::io::Error| failed(format!("cannot write {}", path.display()), e);
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Replaces `path` with `text` atomically (a private temporary file in the same
/// directory, see [`private_temp`], then a rename), readable by the owner only.
pub fn write_private(path: &Path, text: &str) -> Result<(), ClientError> {
    use std::io::Write as _;
    let mut tmp = private_temp(path)?;
    tmp.write_all(text.as_bytes())
        .map_err(|e| failed(format!("cannot write {}", path.display()), e))?;
    persist(tmp, path)
}

/// When to fetch again: 5 minutes before expiry (the broker's default
/// `min_remaining_seconds`), or halfway for shorter-lived tokens; at least 10 s.
pub fn refresh_in(expires_at: &str, now: SystemTime) -> Duration {
    let left = crate::clock::parse_rfc3339(expires_at)
        .and_then(|e| e.duration_since(now).ok())
        .unwrap_or_default();
    let early = Duration::from_secs(300).min(left / 2);
    left.saturating_sub(early).max(Duration::from_secs(10))
}

/// The text `token --format` prints (ends with a newline).
pub fn render(format: Format, t: &IssuedToken, tls: &ClientTls) -> String {
    match format {
        Format::Token => format!("{}\n", t.token),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(t).unwrap_or_default()),
        Format::Env => {
            let mut out = String::new();
            for (k, v) in variables(t, tls) {
                out.push_str(&format!("export {k}={}\n", shell_quote(&v)));
            }
            if t.engine != "postgres" {
                out.push_str(
                    "# mysql --ssl-mode=VERIFY_IDENTITY --enable-cleartext-plugin -u \"$MYSQL_USER\"\n",
                );
            }
            out
        }
        Format::Pgpass => format!(
            "{}:{}:*:{}:{}\n",
            pgpass_escape(&t.host),
            t.port,
            pgpass_escape(&t.db_user),
            pgpass_escape(&t.token)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(engine: &str) -> IssuedToken {
        IssuedToken {
            token: "h:5432/?Action=connect&DBUser=a%27b&X-Amz-Signature=ab".into(),
            expires_at: "2026-03-09T14:26:29Z".into(),
            target: "t".into(),
            host: "h".into(),
            port: 5432,
            db_user: "a'b:c".into(),
            region: "eu-west-1".into(),
            engine: engine.into(),
            issuance_id: "id".into(),
        }
    }

    #[test]
    fn env_lines_are_shell_safe() {
        let out = render(Format::Env, &token("postgres"), &ClientTls::default());
        assert!(out.contains("export PGUSER='a'\\''b:c'\n"), "{out}");
        assert!(out.contains("export PGSSLMODE='verify-full'\n"), "{out}");
        assert!(!out.contains("PGSSLROOTCERT"), "{out}");
    }

    #[test]
    fn refresh_comes_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_773_065_489);
        let at = |s: &str| refresh_in(s, now).as_secs();
        assert_eq!(at("2026-03-09T14:26:29Z"), 600); // 15 min left: refresh at 10
        assert_eq!(at("2026-03-09T14:15:29Z"), 120); // 4 min left: halfway
        assert_eq!(at("2026-03-09T14:11:30Z"), 10); // nearly gone: not a busy loop
        assert_eq!(at("not a time"), 10);
    }

    /// The old temporary name was predictable (`.NAME.tmp-PID`): someone who can write the
    /// directory could plant a symlink there and have the token written through it.
    #[cfg(unix)]
    #[test]
    fn output_never_writes_through_a_planted_symlink() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.path().join("pgpass");
        let planted = dir
            .path()
            .join(format!(".pgpass.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();

        write_private(&path, "secret-token\n").unwrap();

        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret-token\n");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(
            meta.file_type().is_file(),
            "the output is a file, not a link"
        );
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // Nothing left behind but the planted link.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                format!(".pgpass.tmp-{}", std::process::id()),
                "pgpass".into(),
                "victim".into()
            ]
        );
    }

    #[test]
    fn pgpass_escapes_colons_and_backslashes() {
        let out = render(Format::Pgpass, &token("postgres"), &ClientTls::default());
        assert_eq!(
            out,
            "h:5432:*:a'b\\:c:h\\:5432/?Action=connect&DBUser=a%27b&X-Amz-Signature=ab\n"
        );
    }
}
