//! CSV rendering of events, shared by the API's `format=csv` and the CLI.

use serde_json::Value;

use super::AuditEvent;

/// Columns, in order.
pub const FIELDS: [&str; 26] = [
    "id",
    "time",
    "request_id",
    "outcome",
    "reason",
    "issuer",
    "subject",
    "auth_method",
    "client_ip",
    "user_agent",
    "target",
    "host",
    "port",
    "db_user",
    "region",
    "role_arn",
    "session_name",
    "cache",
    "token_sha256",
    "expires_at",
    "kind",
    "count",
    "chain_id",
    "seq",
    "prev_hash",
    "hash",
];

/// The header row, CRLF-terminated (RFC 4180).
pub fn header() -> String {
    format!("{}\r\n", FIELDS.join(","))
}

/// One field: control and bidi characters replaced by U+FFFD (see
/// [`super::display`]), text a spreadsheet would run as a formula (a caller controls the
/// subject and user agent) prefixed with `'`, and quoted when needed.
pub fn field(s: &str) -> String {
    let s = super::display::neutralise(s);
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.into_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A JSON value as cell text.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One row from an event as JSON, CRLF-terminated.
pub fn row_from_json(event: &Value) -> String {
    let cells: Vec<String> = FIELDS
        .iter()
        .map(|f| field(&cell(event.get(*f).unwrap_or(&Value::Null))))
        .collect();
    format!("{}\r\n", cells.join(","))
}

/// One row, CRLF-terminated; an error rather than a row of empty cells if the event
/// cannot be encoded.
pub fn row(event: &AuditEvent) -> Result<String, serde_json::Error> {
    Ok(row_from_json(&serde_json::to_value(event)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("@SUM(1)"), "'@SUM(1)");
        assert_eq!(field("plain"), "plain");
    }

    #[test]
    fn control_and_bidi_characters_never_reach_a_cell() {
        assert_eq!(field("evil\u{1b}[31m"), "evil\u{FFFD}[31m");
        assert_eq!(field("a\nb"), "a\u{FFFD}b");
        assert_eq!(field("svc\u{202E}gnp.exe"), "svc\u{FFFD}gnp.exe");
        // Neutralised first: a control cannot hide a formula from the check, or be one.
        assert_eq!(field("\u{9b}=1+1"), "\u{FFFD}=1+1");
        assert_eq!(field("\t=1+1"), "\u{FFFD}=1+1");
    }
}
