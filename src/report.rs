//! An error with its causes on one line (`outer: cause: root cause`), for logs and
//! command-line messages.
//!
//! Error types keep their own message to themselves and expose what caused them through
//! `source()`, so a cause is never printed twice; wherever an error is written for a
//! person (a log line, `error: ...` on stderr, an audit reason), wrap it in [`Report`].

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, separated by `": "`.
pub struct Report<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            // Some libraries (sqlx) repeat their source's message in their own: once is
            // enough.
            let message = c.to_string();
            if !last.ends_with(&message) {
                write!(f, ": {message}")?;
            }
            last = message;
            cause = c.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::Report;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the audit store")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("error returned from database: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_cause_its_error_already_quotes_is_not_repeated() {
        let e = Outer2(Repeats(std::io::Error::other("role \"x\" does not exist")));
        assert_eq!(
            Report(&e).to_string(),
            "cannot connect: error returned from database: role \"x\" does not exist"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect")]
    struct Outer2(#[source] Repeats);

    #[test]
    fn every_cause_once_in_order() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(
            Report(&e).to_string(),
            "cannot open the audit store: connection refused"
        );
    }
}
