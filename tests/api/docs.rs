//! The operator guide says what the code does: its metrics table is the one list in
//! `metrics::names::ALL`, row for row (and the proxy guide's is `names::PROXY`); the CLI guide quotes the messages as printed.

use rds_token_broker::metrics::names::{ALL, Kind, Metric, PROXY};

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

/// Checks that `path`'s metrics table lists `list` (named `name` in the message), in order.
fn table_lists(path: &str, list: &[Metric], name: &str) {
    let doc = repo_file(path);
    let documented: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `rds_token_broker_"))
        .collect();
    let expected: Vec<String> = list.iter().map(row).collect();
    assert_eq!(
        documented,
        expected,
        "{path}'s metrics table must list {name} in order:\n{}",
        expected.join("\n")
    );
}

#[test]
fn the_metrics_table_is_the_list_the_code_exports() {
    table_lists("docs/operating.md", ALL, "metrics::names::ALL");
}

#[test]
fn the_proxy_metrics_table_is_the_list_the_proxy_exports() {
    table_lists("docs/proxy.md", PROXY, "metrics::names::PROXY");
}

#[test]
fn the_readme_says_how_to_put_the_cli_on_path_and_the_cli_guide_lists_targets() {
    let readme = repo_file("README.md");
    assert!(
        readme.contains("\n```sh\ncargo install --locked --path .\n```\n"),
        "README.md must show `cargo install --locked --path .`"
    );
    let cli = repo_file("docs/cli.md");
    assert!(cli.contains("| `rds-token-broker targets [--format table\\|json]` |"));
    assert!(cli.contains("`not an auditor`"));
}

#[test]
fn the_cli_guide_quotes_the_address_in_use_hint_as_the_broker_prints_it() {
    use rds_token_broker::startup::StartupError;
    let e = StartupError::Listen {
        addr: "127.0.0.1:8443".parse().unwrap(),
        source: std::io::ErrorKind::AddrInUse.into(),
    };
    let hint = format!("\nhint: {}\n", e.hint().unwrap());
    assert!(
        repo_file("docs/cli.md").contains(&hint),
        "docs/cli.md must quote {hint:?}"
    );
}
