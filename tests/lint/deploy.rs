//! The deployment artifacts: Dockerfile (hadolint), Kubernetes manifests
//! (kubernetes-validate, and the ConfigMap's config through `check-config`), Terraform
//! (checkov), and the monitoring rules and dashboard (only metrics the broker exports).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::support::binary;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv(tool: &str) -> PathBuf {
    repo().join(".venv/bin").join(tool)
}

fn passes(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    passes(Command::new(venv("hadolint")).arg(repo().join("Dockerfile")));
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("USER 65532:65532"), "non-root");
    for from in dockerfile.lines().filter(|l| l.starts_with("FROM ")) {
        assert!(
            !from.contains(":latest") && from.contains(':'),
            "unpinned: {from}"
        );
    }
}

/// Files the binary embeds (`include_str!`) are in the image's build context: a directory
/// the Dockerfile does not copy would only fail when the image is built.
#[test]
fn the_dockerfile_copies_every_embedded_directory() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut stack = vec![repo().join("src")];
    let mut embedded = std::collections::BTreeSet::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for part in text.split("include_str!(\"").skip(1) {
                let rel = part.split('"').next().unwrap();
                let file = path.parent().unwrap().join(rel).canonicalize().unwrap();
                let top = file.strip_prefix(repo().canonicalize().unwrap()).unwrap();
                embedded.insert(top.components().next().unwrap().as_os_str().to_owned());
            }
        }
    }
    assert!(embedded.len() >= 2, "{embedded:?}");
    for dir in embedded {
        let dir = dir.to_str().unwrap();
        assert!(
            dockerfile.contains(&format!("COPY {dir} ./{dir}")),
            "the Dockerfile does not copy {dir}/, which the binary embeds"
        );
    }
}

#[test]
fn kubernetes_manifests_validate_strictly() {
    let files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 6, "{files:?}");
    passes(
        Command::new(venv("kubernetes-validate"))
            .arg("--strict")
            .args(&files),
    );
}

#[test]
fn the_configmaps_config_is_valid_for_this_broker() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("broker.toml");
    passes(
        Command::new(venv("python")).args([
            "-c",
            "import sys, yaml\n\
         d = yaml.safe_load(open(sys.argv[1]))\n\
         open(sys.argv[2], 'w').write(d['data']['broker.toml'])",
            repo()
                .join("deploy/kubernetes/configmap.yaml")
                .to_str()
                .unwrap(),
            toml.to_str().unwrap(),
        ]),
    );
    let out = binary::run(
        dir.path(),
        // The TLS files it names exist only in the pod.
        &[
            "check-config",
            "--config",
            toml.to_str().unwrap(),
            "--no-files",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn checkov_reports_no_failed_terraform_check() {
    let text = passes(
        Command::new(venv("checkov"))
            .args([
                "--framework",
                "terraform",
                "--compact",
                "--quiet",
                "--skip-download",
                "-d",
            ])
            .arg(repo().join("deploy/terraform")),
    );
    assert!(text.contains("Failed checks: 0"), "{text}");
    assert!(
        !text.contains("Passed checks: 0,"),
        "checkov checked nothing:\n{text}"
    );
}

/// Metric series the broker exports (`metrics::names::ALL`, the one list), with the
/// histograms' series suffixes.
fn exported() -> BTreeSet<String> {
    use rds_token_broker::metrics::names::{ALL, Kind};
    let mut names = BTreeSet::new();
    for m in ALL {
        names.insert(m.name.to_owned());
        if m.kind == Kind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{}{suffix}", m.name));
            }
        }
    }
    names
}

fn names_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("rds_token_broker_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}

#[test]
fn alerts_and_dashboard_use_only_exported_metrics() {
    let exported = exported();
    assert!(exported.contains("rds_token_broker_tokens_minted_total"));
    for file in [
        "deploy/monitoring/alerts.yaml",
        "deploy/monitoring/grafana-dashboard.json",
    ] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let used = names_in(&text);
        assert!(!used.is_empty(), "{file}");
        for name in used {
            assert!(
                exported.contains(&name),
                "{file} uses {name}, which is not exported"
            );
        }
    }
    // The rules file is well-formed: every rule has an alert name, an expression and a
    // severity; the alerts the issue asks for are there.
    let out = passes(
        Command::new(venv("python")).args([
            "-c",
            "import json, sys, yaml\n\
         d = yaml.safe_load(open(sys.argv[1]))\n\
         rules = [r for g in d['groups'] for r in g['rules']]\n\
         assert all(r['alert'] and r['expr'] and r['labels']['severity'] for r in rules)\n\
         json.load(open(sys.argv[2]))\n\
         print(' '.join(r['alert'] for r in rules))",
            repo()
                .join("deploy/monitoring/alerts.yaml")
                .to_str()
                .unwrap(),
            repo()
                .join("deploy/monitoring/grafana-dashboard.json")
                .to_str()
                .unwrap(),
        ]),
    );
    for alert in [
        "AuditStoreFailing",
        "StsErrors",
        "NearTargetBudget",
        "JwksRefreshFailing",
        "NoCredentials",
    ] {
        assert!(out.contains(alert), "{alert} missing: {out}");
    }
}
