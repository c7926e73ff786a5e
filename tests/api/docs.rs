//! The operator guide says what the code does: its metrics table is the one list in
//! `metrics::names::ALL`, row for row.

use rds_token_broker::metrics::names::{ALL, Kind, Metric};

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The table row `docs/operating.md` must hold for `m`.
fn row(m: &Metric) -> String {
    let labels = if m.labels.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", m.labels.join(","))
    };
    let kind = match m.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    format!("| `{}{labels}` | {kind} | {} |", m.name, m.help)
}

#[test]
fn the_metrics_table_is_the_list_the_code_exports() {
    let doc = repo_file("docs/operating.md");
    let documented: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `rds_token_broker_"))
        .collect();
    let expected: Vec<String> = ALL.iter().map(row).collect();
    assert_eq!(
        documented,
        expected,
        "docs/operating.md's metrics table must list metrics::names::ALL in order:\n{}",
        expected.join("\n")
    );
}
