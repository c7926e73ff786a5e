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
    /// Shell `export` lines for the client of the target's kind and engine (PG*, MYSQL_*,
    /// or REDIS*/REDISCLI_AUTH for caches).
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

/// Whether `t` is for ElastiCache or MemoryDB.
fn is_cache(t: &IssuedToken) -> bool {
    matches!(t.kind.as_str(), "elasticache" | "memorydb")
}

/// The variables a database client needs, in a stable order.
pub fn variables(t: &IssuedToken, tls: &ClientTls) -> Vec<(&'static str, String)> {
    let mut vars = Vec::new();
    if is_cache(t) {
        let user = t.user.clone().unwrap_or_else(|| t.db_user.clone());
        vars.push(("REDIS_HOST", t.host.clone()));
        vars.push(("REDIS_PORT", t.port.to_string()));
        vars.push(("REDIS_USER", user.clone()));
        // redis-cli's password (`--user "$REDIS_USER"` names the user).
        vars.push(("REDISCLI_AUTH", t.token.clone()));
        // IAM authentication requires TLS: rediss://.
        vars.push((
            "REDIS_URL",
            format!(
                "rediss://{}:{}@{}:{}",
                crate::token::encode(&user),
                crate::token::encode(&t.token),
                t.host,
                t.port
            ),
        ));
        if let Some(ca) = &tls.ssl_root_cert {
            // redis-cli reads no CA variable: pass `--cacert "$REDIS_CACERT"`.
            vars.push(("REDIS_CACERT", ca.clone()));
        }
    } else if t.engine == "postgres" {
        vars.push(("PGHOST", t.host.clone()));
        vars.push(("PGPORT", t.port.to_string()));
        vars.push(("PGUSER", t.db_user.clone()));
        vars.push(("PGPASSWORD", t.token.clone()));
        if t.kind == "dsql" {
            // An Aurora DSQL cluster has one database.
            vars.push(("PGDATABASE", "postgres".to_owned()));
        }
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

/// A plain-text table: `header`, then `rows`, columns left-aligned to their widest cell
/// (in characters) and two spaces apart, trailing spaces trimmed. Cells are shown as
/// given: neutralise what a broker sent before it comes here.
pub fn aligned(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|c| c.chars().count()).collect();
    for row in rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
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
            if is_cache(t) {
                out.push_str(
                    "# redis-cli --tls -h \"$REDIS_HOST\" -p \"$REDIS_PORT\" --user \"$REDIS_USER\" (REDISCLI_AUTH is the password)\n\
                     # the cache closes the connection 12 hours after AUTH: AUTH again with a fresh token before then\n",
                );
            } else if t.engine != "postgres" {
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
            kind: "rds".into(),
            host: "h".into(),
            port: 5432,
            db_user: "a'b:c".into(),
            region: "eu-west-1".into(),
            engine: engine.into(),
            issuance_id: "id".into(),
            user: None,
            tls: None,
            reauthenticate_within_seconds: None,
            note: None,
        }
    }

    #[test]
    fn dsql_gets_libpq_variables_and_its_one_database() {
        let t = IssuedToken {
            kind: "dsql".into(),
            db_user: "admin".into(),
            token: "c.dsql.us-east-1.on.aws/?Action=DbConnectAdmin&X-Amz-Signature=ab".into(),
            ..token("postgres")
        };
        let vars = variables(&t, &ClientTls::default());
        let get = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PGUSER"), Some("admin"));
        assert_eq!(get("PGPASSWORD"), Some(t.token.as_str()));
        assert_eq!(get("PGDATABASE"), Some("postgres"));
        assert_eq!(get("PGSSLMODE"), Some("verify-full"));
        // An RDS PostgreSQL target names no database: the user's default applies.
        assert!(
            !variables(&token("postgres"), &ClientTls::default())
                .iter()
                .any(|(n, _)| *n == "PGDATABASE")
        );
    }

    #[test]
    fn caches_get_redis_cli_auth_and_a_tls_url() {
        let t = IssuedToken {
            kind: "elasticache".into(),
            engine: "valkey".into(),
            host: "master.c.abc.use1.cache.amazonaws.com".into(),
            port: 6379,
            db_user: "app-user".into(),
            user: Some("app-user".into()),
            tls: Some(true),
            token: "c/?Action=connect&User=app-user&X-Amz-Credential=A%2Fb&X-Amz-Signature=ab"
                .into(),
            ..token("valkey")
        };
        let vars = variables(&t, &ClientTls::default());
        let get = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("REDISCLI_AUTH"), Some(t.token.as_str()));
        assert_eq!(get("REDIS_USER"), Some("app-user"));
        assert_eq!(get("REDIS_PORT"), Some("6379"));
        assert_eq!(
            get("REDIS_URL"),
            Some(
                "rediss://app-user:c%2F%3FAction%3Dconnect%26User%3Dapp-user%26X-Amz-Credential%3DA%252Fb%26X-Amz-Signature%3Dab@master.c.abc.use1.cache.amazonaws.com:6379"
            )
        );
        assert!(get("PGPASSWORD").is_none() && get("MYSQL_PWD").is_none());
        let env = render(Format::Env, &t, &ClientTls::default());
        assert!(env.contains("redis-cli --tls"), "{env}");
        assert!(env.contains("12 hours"), "{env}");
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
