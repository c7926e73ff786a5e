//! AWS IAM callers (`aws-iam` grants): signed GetCallerIdentity requests made by botocore
//! (docs/recipes.md's recipe) and by the CLI's `--aws-iam`, checked by the broker and by a moto
//! STS that verifies SigV4 signatures.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::app::{TestApp, problem};
use crate::support::binary::BIN;
use crate::support::config::{BrokerToml, Grant, Target};
use crate::support::creds::{Switchable, static_keys};
use crate::support::moto::Moto;

pub(crate) const SERVER_ID: &str = "rds-token-broker.test.example";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    repo().join(".venv/bin/python")
}

pub(crate) struct Fixture {
    pub(crate) moto: Moto,
    pub(crate) app: TestApp,
    /// `user`, `role` and `role_rotated` (the same role, another session name) credentials
    /// (environment variables) valid in moto.
    pub(crate) creds: Value,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Self {
        Self::start_with(|c| c, |_| static_keys()).await
    }

    /// With the configuration changed by `configure`, and the broker's own credentials
    /// chosen from the credentials made in moto.
    pub(crate) async fn start_with(
        configure: impl FnOnce(BrokerToml) -> BrokerToml,
        broker_credentials: impl FnOnce(&Value) -> aws_credential_types::Credentials,
    ) -> Self {
        let moto = Moto::start_verifying_signatures(4).await;
        let out = tokio::process::Command::new(python())
            .arg(repo().join("tests/recipes/aws_iam_setup.py"))
            .arg(moto.url())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let creds: Value = serde_json::from_slice(&out.stdout).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerToml::new()
            .aws("sts_endpoint", format!("{}/", moto.url()))
            .aws("iam_server_id", SERVER_ID)
            .audit_sqlite(dir.path())
            .target(Target::postgres("orders-db").db_users(["app_rw"]))
            .grant(
                Grant::new("aws-iam", "arn:aws:iam::123456789012:role/orders-*")
                    .targets(["orders-db"])
                    .db_users(["app_rw"]),
            );
        let config = configure(config);
        let app = TestApp::spawn_with(config, Switchable::with(broker_credentials(&creds))).await;
        // moto's session credentials and the signatures' dates are real time.
        app.clock.set(SystemTime::now());
        Self {
            moto,
            app,
            creds,
            _dir: dir,
        }
    }

    /// Authorization values from the botocore recipe, signed as `who` (`user`, `role` or
    /// `role_rotated`).
    pub(crate) async fn signed(&self, who: &str) -> Value {
        let mut cmd = tokio::process::Command::new(python());
        cmd.env_clear()
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("HOME", self._dir.path())
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .arg(repo().join("tests/recipes/aws_iam_sign.py"))
            .arg(repo().join("examples/recipes/aws_iam_botocore.py"))
            .arg(SERVER_ID)
            .arg(format!("{}/", self.moto.url()));
        for (k, v) in self.creds[who].as_object().unwrap() {
            cmd.env(k, v.as_str().unwrap());
        }
        let out = cmd.output().await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub(crate) async fn post(&self, authorization: &str) -> reqwest::Response {
        self.app
            .client
            .post(format!("{}/v1/tokens", self.app.base))
            .header("authorization", authorization)
            .json(&json!({"target": "orders-db"}))
            .send()
            .await
            .unwrap()
    }

    /// Posts and expects a 401 whose reason contains `why`.
    pub(crate) async fn refused(&self, authorization: &str, why: &str) {
        let body = problem(self.post(authorization).await, 401).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(why), "{detail:?} should say {why:?}");
    }
}

/// The signed request inside an `AWS-IAM` value, for tampering.
pub(crate) fn decode(authorization: &str) -> Value {
    let b64 = authorization.strip_prefix("AWS-IAM ").unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

pub(crate) fn encode(signed: &Value) -> String {
    format!(
        "AWS-IAM {}",
        base64::engine::general_purpose::STANDARD.encode(signed.to_string())
    )
}

pub(crate) fn header_mut<'a>(signed: &'a mut Value, name: &str) -> &'a mut Value {
    let headers = signed["headers"].as_object_mut().unwrap();
    let key = headers
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .unwrap()
        .clone();
    headers.get_mut(&key).unwrap()
}

#[tokio::test]
async fn a_botocore_signed_request_is_the_callers_role_and_matches_an_arn_grant() {
    let f = Fixture::start().await;
    let signed = f.signed("role").await;
    let valid = signed["valid"].as_str().unwrap();
    let res = f.post(valid).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["db_user"], "app_rw");

    // The same signed request again: answered from the cache, STS is asked once.
    assert_eq!(f.post(valid).await.status(), 200);
    assert_eq!(f.moto.calls("GetCallerIdentity").await.len(), 1);

    // The audit trail has the caller's full ARN (role and session).
    let filter = rds_token_broker::audit::query::Filter {
        limit: 10,
        ..Default::default()
    };
    let audit = f.app.state.broker.audit().unwrap();
    let (events, _) = audit.search(&filter).await.unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.issuer.as_deref() == Some("aws-iam")
        && e.subject.as_deref()
            == Some("arn:aws:sts::123456789012:assumed-role/orders-lambda/checkout-fn")
        && e.auth_method.as_deref() == Some("aws-iam")));

    // An IAM user matches no grant: 403, like any caller without one.
    let user = f.signed("user").await;
    problem(f.post(user["valid"].as_str().unwrap()).await, 403).await;
}

#[tokio::test]
async fn tampered_misdirected_stale_and_foreign_requests_are_refused() {
    let f = Fixture::start().await;
    let signed = f.signed("role").await;
    let valid = decode(signed["valid"].as_str().unwrap());

    // A signed header changed after signing: STS (moto) finds the signature wrong.
    let mut t = valid.clone();
    *header_mut(&mut t, "content-type") = json!("application/x-www-form-urlencoded");
    f.refused(
        &encode(&t),
        "STS refused the signed request (SignatureDoesNotMatch)",
    )
    .await;

    // Without the server-id header, or with another broker's id.
    let mut t = valid.clone();
    let headers = t["headers"].as_object_mut().unwrap();
    headers.retain(|k, _| !k.eq_ignore_ascii_case("x-rds-token-broker-server-id"));
    f.refused(&encode(&t), "a header named in SignedHeaders is missing")
        .await;
    let mut t = valid.clone();
    *header_mut(&mut t, "x-rds-token-broker-server-id") = json!("another-broker");
    f.refused(&encode(&t), "does not name this broker").await;

    // Aimed at another host: refused without contacting it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = listener.local_addr().unwrap();
    let contacted = Arc::new(AtomicUsize::new(0));
    let seen = contacted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    for url in [
        format!("http://{other}/"),
        "https://sts.amazonaws.com.evil.example/".to_owned(),
        "https://169.254.169.254/".to_owned(),
    ] {
        let mut t = valid.clone();
        t["url"] = json!(url);
        f.refused(&encode(&t), "not for an STS endpoint this broker uses")
            .await;
    }
    assert_eq!(contacted.load(Ordering::SeqCst), 0);

    // Another action, correctly signed.
    f.refused(
        signed["other_action"].as_str().unwrap(),
        "body must be exactly Action=GetCallerIdentity",
    )
    .await;

    // Not base64 JSON at all.
    f.refused("AWS-IAM !!!", "not base64").await;

    // Ten minutes later the same request is too old.
    f.app
        .clock
        .set(SystemTime::now() + Duration::from_secs(600));
    f.refused(&encode(&valid), "more than 5 minutes").await;
    assert!(f.moto.calls("GetCallerIdentity").await.len() <= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_signs_with_the_default_credential_chain() {
    let f = Fixture::start().await;
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear()
        .env("HOME", f._dir.path())
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RDS_TOKEN_BROKER_IAM_SERVER_ID", SERVER_ID)
        .args([
            "token",
            "--broker",
            &f.app.base,
            "--target",
            "orders-db",
            "--aws-iam",
            "--sts-endpoint",
            &format!("{}/", f.moto.url()),
            "--format",
            "json",
        ]);
    for (k, v) in f.creds["role"].as_object().unwrap() {
        cmd.env(k, v.as_str().unwrap());
    }
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["db_user"], "app_rw");

    // Without credentials it says where it looked.
    let out = tokio::process::Command::new(BIN)
        .env_clear()
        .env("HOME", f._dir.path())
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "token",
            "--broker",
            &f.app.base,
            "--target",
            "orders-db",
            "--aws-iam",
            "--iam-server-id",
            SERVER_ID,
            "--sts-endpoint",
            &f.moto.url(),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--aws-iam: no AWS credentials from the default chain"),
        "{err}"
    );
}
