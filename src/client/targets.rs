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
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|t| {
            [
                t.name.as_str(),
                t.kind.as_str(),
                t.engine.as_str(),
                &format!("{}:{}", t.host, t.port),
                t.region.as_str(),
                &t.db_users.join(", "),
            ]
            .iter()
            .map(|v| neutralise(v).into_owned())
            .collect()
        })
        .collect();
    super::output::aligned(&COLS, &rows)
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
