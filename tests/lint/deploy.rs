//! The deployment artifacts: Dockerfile (hadolint), the Kubernetes example overlay as
//! `kubectl kustomize` renders it (kubernetes-validate, and its config through
//! `check-config`), Terraform (checkov; the example tfvars agree with the overlay), the
//! systemd unit (`systemd-analyze`), and the monitoring rules and dashboard (only metrics
//! the broker exports; the PrometheusRule holds the plain file's rules).

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

/// Files the binary embeds (`include_str!`, `include_bytes!`) are in the image's build context: a directory
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
            let parts = text.split("include_str!(\"").skip(1);
            for part in parts.chain(text.split("include_bytes!(\"").skip(1)) {
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

/// `kubectl kustomize DIR`, with the virtualenv's kubectl (kustomize built in), run from
/// the repository as docs/deploying.md runs it: the rendered YAML.
fn kustomize(dir: &str) -> String {
    let out = Command::new(venv("kubectl"))
        .current_dir(repo())
        .args(["kustomize", dir])
        .output()
        .expect("scripts/lint-infra installs kubectl (tests/lint-requirements.txt)");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `script` with the virtualenv's Python, `args` after it; its stdout.
fn python(script: &str, args: &[&std::path::Path]) -> String {
    passes(
        Command::new(venv("python"))
            .arg("-c")
            .arg(script)
            .args(args),
    )
}

#[test]
fn the_example_overlay_renders_and_kubernetes_validate_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, kustomize("deploy/kubernetes/overlays/example")).unwrap();
    passes(
        Command::new(venv("kubernetes-validate"))
            .arg("--strict")
            .arg(&rendered),
    );
    // What the overlay is for: everything in its namespace (and the Namespace itself),
    // the image it names, the generated ConfigMap mounted, the IAM role on the
    // ServiceAccount, and the two Secrets docs/deploying.md has operators create.
    let toml = dir.path().join("broker.toml");
    let out = python(
        r#"import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
kinds = sorted(d['kind'] for d in docs)
assert kinds == ['ConfigMap', 'Deployment', 'Namespace', 'NetworkPolicy', 'PodDisruptionBudget', 'Service', 'ServiceAccount'], kinds
by = {d['kind']: d for d in docs}
assert by['Namespace']['metadata']['name'] == 'rds-token-broker'
assert by['Namespace']['metadata']['labels']['pod-security.kubernetes.io/enforce'] == 'restricted'
for d in docs:
    if d['kind'] != 'Namespace':
        assert d['metadata']['namespace'] == 'rds-token-broker', d['metadata']
pod = by['Deployment']['spec']['template']['spec']
[c] = pod['containers']
assert c['image'] == 'registry.example.com/platform/rds-token-broker:0.1.0', c['image']
volumes = {v['name']: v for v in pod['volumes']}
cm = by['ConfigMap']['metadata']['name']
assert cm.startswith('rds-token-broker-') and volumes['config']['configMap']['name'] == cm, cm
assert volumes['tls']['secret']['secretName'] == 'rds-token-broker-tls'
[pg] = [e for e in c['env'] if e['name'] == 'PGPASSWORD']
assert pg['valueFrom']['secretKeyRef'] == {'name': 'rds-token-broker-audit-db', 'key': 'password'}
sa = by['ServiceAccount']['metadata']
assert sa['annotations']['eks.amazonaws.com/role-arn'].startswith('arn:aws:iam::'), sa
assert pod['serviceAccountName'] == sa['name']
open(sys.argv[2], 'w').write(by['ConfigMap']['data']['broker.toml'])
print(sa['annotations']['eks.amazonaws.com/role-arn'])"#,
        &[&rendered, &toml],
    );
    assert!(out.contains(":role/rds-token-broker"), "{out}");
    // The rendered configuration is the overlay's file, and valid for this broker.
    assert_eq!(
        std::fs::read_to_string(&toml).unwrap(),
        std::fs::read_to_string(repo().join("deploy/kubernetes/overlays/example/broker.toml"))
            .unwrap()
    );
    let check = binary::run(
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
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn the_base_renders_alone_without_a_namespace_image_or_role() {
    let base = kustomize("deploy/kubernetes/base");
    assert!(!base.contains("namespace:"), "{base}");
    assert!(!base.contains("role-arn"), "{base}");
    assert!(base.contains("image: rds-token-broker\n"), "{base}");
    assert!(!base.contains("kind: ConfigMap"), "{base}");
    // Every file of the base is in its kustomization, and nothing else is in the directory.
    let kustomization =
        std::fs::read_to_string(repo().join("deploy/kubernetes/base/kustomization.yaml")).unwrap();
    for entry in std::fs::read_dir(repo().join("deploy/kubernetes/base")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name == "kustomization.yaml" || kustomization.contains(&format!("  - {name}\n")),
            "deploy/kubernetes/base/{name} is not in the base's resources"
        );
    }
}

/// The example overlay's targets, the Terraform example's and the role ARNs in between
/// agree: Terraform's connect role for a target is the target's `role_arn`, its broker
/// role the ServiceAccount's annotation, and the tfvars set only declared variables.
#[test]
fn the_terraform_example_agrees_with_the_overlay() {
    let out = python(
        r#"import sys, re, tomllib, hcl2, yaml
tfvars = {k: v[0] if isinstance(v, list) and len(v) == 1 and k != 'db_users' else v for k, v in hcl2.load(open(sys.argv[1])).items()}
declared = {next(iter(v)) for v in hcl2.load(open(sys.argv[2]))['variable']}
assert set(tfvars) <= declared, set(tfvars) - declared
assert {'oidc_provider_arn', 'oidc_provider_url', 'targets'} <= set(tfvars)
broker = tomllib.load(open(sys.argv[3], 'rb'))
sa = yaml.safe_load(open(sys.argv[4]))
kust = yaml.safe_load(open(sys.argv[5]))
assert tfvars['namespace'] == kust['namespace'] and tfvars['service_account'] == sa['metadata']['name']
account = tfvars['oidc_provider_arn'].split(':')[4]
assert sa['metadata']['annotations']['eks.amazonaws.com/role-arn'] == f'arn:aws:iam::{account}:role/rds-token-broker'
assert tfvars['oidc_provider_url'] in tfvars['oidc_provider_arn']
assert broker['issuers'][0]['issuer'] == 'https://' + tfvars['oidc_provider_url']
targets = {t['name']: t for t in broker['targets']}
assert set(targets) == set(tfvars['targets']), (set(targets), tfvars['targets'])
for name, tf in tfvars['targets'].items():
    t = targets[name]
    assert t['role_arn'] == f'arn:aws:iam::{account}:role/rds-token-broker-connect-{name}', t
    assert t['resource_id'] == tf['resource_id'] and sorted(t['db_users']) == sorted(tf['db_users']), (t, tf)
    assert tf['region'] in t['host']
print(sorted(targets))"#,
        &[
            &repo().join("deploy/terraform/example.tfvars"),
            &repo().join("deploy/terraform/variables.tf"),
            &repo().join("deploy/kubernetes/overlays/example/broker.toml"),
            &repo().join("deploy/kubernetes/overlays/example/serviceaccount-role.yaml"),
            &repo().join("deploy/kubernetes/overlays/example/kustomization.yaml"),
        ],
    );
    assert!(out.contains("orders-db"), "{out}");
    // The names Terraform gives the roles are the ones the ARNs above assume.
    let main = std::fs::read_to_string(repo().join("deploy/terraform/main.tf")).unwrap();
    assert!(main.contains("name                 = \"${var.name}-connect-${each.key}\""));
    let variables = std::fs::read_to_string(repo().join("deploy/terraform/variables.tf")).unwrap();
    assert!(variables.contains("default     = \"rds-token-broker\""));
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit =
        std::fs::read_to_string(repo().join("deploy/systemd/rds-token-broker.service")).unwrap();
    for setting in [
        "User=rds-token-broker",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "ExecStartPre=/usr/local/bin/rds-token-broker check-config --config /etc/rds-token-broker/broker.toml",
        "ExecStart=/usr/local/bin/rds-token-broker serve --config /etc/rds-token-broker/broker.toml",
    ] {
        assert!(unit.contains(setting), "{setting} missing");
    }
    // systemd checks the unit as it would load it (with the binary this build made in
    // place of /usr/local/bin's), and rates its exposure offline: at most 2 of 10
    // ("OK"; the unit scores 1.4 with systemd 252).
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("rds-token-broker.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/rds-token-broker", binary::BIN),
    )
    .unwrap();
    passes(Command::new("systemd-analyze").arg("verify").arg(&copy));
    let out = passes(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=20"])
            .arg(&copy),
    );
    assert!(out.contains("Overall exposure level"), "{out}");
}

/// With the example's inputs (`example.tfvars`), checkov fails no check.
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
                "--var-file",
            ])
            .arg(repo().join("deploy/terraform/example.tfvars"))
            .arg("-d")
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
        "deploy/monitoring/prometheusrule.yaml",
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

/// `prometheusrule.yaml` (for the Prometheus Operator) holds exactly the rules of the plain
/// rules file, group for group.
#[test]
fn the_prometheus_rule_holds_the_plain_files_rules() {
    let out = python(
        "import sys, yaml\n\
         plain = yaml.safe_load(open(sys.argv[1]))\n\
         rule = yaml.safe_load(open(sys.argv[2]))\n\
         assert rule['apiVersion'] == 'monitoring.coreos.com/v1' and rule['kind'] == 'PrometheusRule'\n\
         assert rule['metadata']['name'] == 'rds-token-broker'\n\
         assert set(rule) == {'apiVersion', 'kind', 'metadata', 'spec'} and set(rule['spec']) == {'groups'}\n\
         assert rule['spec']['groups'] == plain['groups']\n\
         print(sum(len(g['rules']) for g in plain['groups']))",
        &[
            &repo().join("deploy/monitoring/alerts.yaml"),
            &repo().join("deploy/monitoring/prometheusrule.yaml"),
        ],
    );
    assert!(out.trim().parse::<usize>().unwrap() >= 7, "{out}");
}

/// docs/deploying.md is followed as written: every shell block says how it is checked.
/// A `# tested:` block's commands are run here, from the repository, exactly as written
/// (`kubectl` is the virtualenv's, `rds-token-broker` the binary this build made); a
/// `# needs:` block names the real cluster, account, engine or VM it needs. The SQL shown
/// is the file the audit-role test applies.
#[test]
fn every_command_in_deploying_md_is_run_here_or_needs_real_infrastructure() {
    let doc = std::fs::read_to_string(repo().join("docs/deploying.md")).unwrap();
    let blocks = doc
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap());
    let mut ran = 0;
    let mut needs = 0;
    for block in blocks {
        let mut lines = block.lines();
        let marker = lines.next().unwrap();
        if marker.starts_with("# needs: ") {
            needs += 1;
            continue;
        }
        assert!(
            marker.starts_with("# tested: tests/"),
            "a block of docs/deploying.md says neither `# tested:` nor `# needs:`:\n{block}"
        );
        for line in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(
                words
                    .iter()
                    .all(|w| !w.contains(['$', '\'', '"', '|', '>', '&'])),
                "a tested command is run without a shell: {line}"
            );
            let program = match words[0] {
                "kubectl" => venv("kubectl"),
                "rds-token-broker" => PathBuf::from(binary::BIN),
                other => panic!("not a command this test runs: {other} ({line})"),
            };
            passes(
                Command::new(program)
                    .current_dir(repo())
                    .env("AWS_EC2_METADATA_DISABLED", "true")
                    .args(&words[1..]),
            );
            ran += 1;
        }
    }
    assert!(ran >= 3 && needs >= 8, "ran {ran}, needs {needs}");
    let sql = std::fs::read_to_string(repo().join("deploy/postgres/audit-role.sql")).unwrap();
    assert!(
        doc.contains(&format!("```sql\n{sql}```\n")),
        "docs/deploying.md must show deploy/postgres/audit-role.sql exactly as it is"
    );
    // The Secrets the Deployment mounts are the ones the guide has operators create.
    let deployment =
        std::fs::read_to_string(repo().join("deploy/kubernetes/base/deployment.yaml")).unwrap();
    for secret in ["rds-token-broker-tls", "rds-token-broker-audit-db"] {
        assert!(deployment.contains(secret), "{secret}");
        assert!(doc.contains(&format!("| `{secret}` |")), "{secret}");
    }
}
