//! moto's standalone server as a local STS on a free loopback port, with its request
//! recorder for checking exactly what the broker sent.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;

pub struct Moto {
    pub port: u16,
    child: Option<Child>,
    /// `INITIAL_NO_AUTH_ACTION_COUNT`: after that many actions moto checks signatures.
    no_auth_actions: Option<u32>,
    /// moto writes its request recording into its working directory: one per server.
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return p.into();
    }
    let venv = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.venv/bin/moto_server"
    ));
    assert!(
        venv.exists(),
        "moto_server not found at {}: run the tests with scripts/test, which installs it",
        venv.display()
    );
    venv
}

impl Moto {
    pub async fn start() -> Self {
        Self::start_inner(None).await
    }

    /// A moto that verifies every request's SigV4 signature against the access keys it
    /// issued, once the first `setup_actions` actions (creating those keys) are done.
    pub async fn start_verifying_signatures(setup_actions: u32) -> Self {
        Self::start_inner(Some(setup_actions)).await
    }

    async fn start_inner(no_auth_actions: Option<u32>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut m = Self {
            port,
            child: None,
            no_auth_actions,
            dir: tempfile::tempdir().unwrap(),
        };
        m.spawn().await;
        m
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let mut cmd = Command::new(binary());
        if let Some(n) = self.no_auth_actions {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = cmd
            .current_dir(self.dir.path())
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let (client, url) = (super::client(), self.url());
        // moto_server is up once its API answers (a cold Python start takes seconds).
        let (client, url) = (&client, url.as_str());
        super::eventually(Duration::from_secs(15), || async move {
            client.get(format!("{url}/moto-api/")).send().await.is_ok()
        })
        .await;
        let started = client
            .post(format!("{url}/moto-api/recorder/start-recording"))
            .send()
            .await
            .unwrap();
        assert!(started.status().is_success());
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Parameters of every AssumeRole call recorded since the server started.
    pub async fn assume_role_calls(&self) -> Vec<HashMap<String, String>> {
        self.calls("AssumeRole").await
    }

    /// Every request moto recorded since the server started (its JSON records).
    pub async fn recording(&self) -> Vec<serde_json::Value> {
        let text = super::client()
            .get(format!(
                "{}/moto-api/recorder/download-recording",
                self.url()
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Parameters of every call of `action` recorded since the server started.
    pub async fn calls(&self, action: &str) -> Vec<HashMap<String, String>> {
        self.recording()
            .await
            .into_iter()
            .filter_map(|r| r["body"].as_str().map(str::to_owned))
            .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| form_decode(&String::from_utf8_lossy(&b)))
            .filter(|p| p.get("Action").map(String::as_str) == Some(action))
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn form_decode(body: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let Ok(v) =
                    u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}
