//! `targets`: what the caller may use on a broker (`GET /v1/targets`), as a table or JSON.

use std::io::Write;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{BrokerClient, ClientError, failed};
use crate::audit::display::{escape_json, neutralise};

/// `targets --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for reading.
    Table,
    /// The broker's answer, as JSON.
    Json,
}

/// One entry of `GET /v1/targets`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Target {
    /// What to pass to `--target`.
    pub name: String,
    /// `rds`, `dsql`, `elasticache` or `memorydb` (`rds` from a broker that predates kinds).
    #[serde(default = "rds")]
    pub kind: String,
    /// Database endpoint.
    pub host: String,
    /// Database port.
    pub port: u16,
    /// `postgres`, `mysql` or `mariadb`.
    pub engine: String,
    /// Signing region.
    pub region: String,
    /// What to pass to `--db-user`.
    pub db_users: Vec<String>,
}

fn rds() -> String {
    "rds".to_owned()
}

#[derive(Debug, Deserialize, Serialize)]
struct TargetList {
    targets: Vec<Target>,
}

/// Asks the broker what the caller may use.
pub async fn list(client: &BrokerClient) -> Result<Vec<Target>, ClientError> {
    let res = client
        .send(client.request(Method::GET, "v1/targets").await?)
        .await?;
    let list: TargetList = res
        .json()
        .await
        .map_err(|e| failed("the broker's answer is not a target list", e))?;
    Ok(list.targets)
}

/// Writes `targets` in `format`; an empty list says so, and why it may be empty.
pub fn write(targets: &[Target], format: Format, out: &mut impl Write) -> Result<(), ClientError> {
    let text = match format {
        Format::Json => {
            let list = TargetList {
                targets: targets.to_vec(),
            };
            let json = serde_json::to_string_pretty(&list)
                .map_err(|e| failed("cannot write the target list", e))?;
            format!("{}\n", escape_json(&json))
        }
        Format::Table => table(targets),
    };
    out.write_all(text.as_bytes())
        .map_err(|e| failed("cannot write the result", e))
}

fn table(targets: &[Target]) -> String {
    if targets.is_empty() {
        return "no targets: this identity has no grant on this broker (ask its operators)\n"
            .to_owned();
    }
    const COLS: [&str; 6] = ["target", "kind", "engine", "endpoint", "region", "db_users"];
    // What the broker sent is shown, never interpreted by the terminal.
    let rows: Vec<[String; 6]> = targets
        .iter()
        .map(|t| {
            [
                neutralise(&t.name).into_owned(),
                neutralise(&t.kind).into_owned(),
                neutralise(&t.engine).into_owned(),
                neutralise(&format!("{}:{}", t.host, t.port)).into_owned(),
                neutralise(&t.region).into_owned(),
                neutralise(&t.db_users.join(", ")).into_owned(),
            ]
        })
        .collect();
    let mut widths = COLS.map(str::len);
    for row in &rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(COLS);
    for row in &rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_and_neutralises_what_the_broker_sent() {
        let t = |name: &str, users: &[&str]| Target {
            name: name.into(),
            kind: "rds".into(),
            host: "db.example.com".into(),
            port: 5432,
            engine: "postgres".into(),
            region: "eu-west-1".into(),
            db_users: users.iter().map(|u| (*u).to_owned()).collect(),
        };
        let text = table(&[
            t("orders-db", &["app_ro", "app_rw"]),
            t("x\u{1b}[2J", &["u"]),
        ]);
        assert_eq!(
            text,
            "target     kind  engine    endpoint             region     db_users\n\
             orders-db  rds   postgres  db.example.com:5432  eu-west-1  app_ro, app_rw\n\
             x\u{fffd}[2J      rds   postgres  db.example.com:5432  eu-west-1  u\n"
        );
        assert!(table(&[]).starts_with("no targets: "));
    }
}
