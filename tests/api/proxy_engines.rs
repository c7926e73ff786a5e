//! A proxy listener for a target whose engine the proxy does not speak (an ElastiCache
//! target's `redis`): no protocol applies, so the proxy refuses to start and says why,
//! rather than accepting connections it can only close.

use std::process::Stdio;
use std::time::Duration;

use crate::support::binary;
use crate::support::config::Target;
use crate::support::proxy;

#[tokio::test]
async fn a_listener_for_an_engine_the_proxy_does_not_speak_stops_the_start_saying_why() {
    let app = proxy::broker(Target::elasticache("sessions")).await;
    let home = tempfile::tempdir().unwrap();
    let mut child = binary::command(home.path())
        .args(["proxy", "--broker", &app.base, "--k8s-token-file"])
        .arg(home.path().join("no-k8s-token"))
        .args(["--listen", "sessions=127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The proxy must stop by itself; one still serving after a minute is killed.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot listen on 127.0.0.1:0 for sessions")
            && stderr.contains("target sessions is a")
            && stderr.contains("this connection speaks postgres, mysql or mariadb"),
        "{stderr}"
    );
    assert!(!stderr.contains("proxy listening on"), "{stderr}");
}
