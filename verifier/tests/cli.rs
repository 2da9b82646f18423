//! The `auth-verifier` binary alone: configuration errors stop it with a message naming the
//! bad value, and with no API to talk to it stays up, says it is not ready, and answers a
//! client's token with 401 (never 5xx).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_auth-verifier");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[test]
fn malformed_settings_stop_start_up_with_their_name() {
    for (var, value) in [
        ("VERIFIER_LISTEN", "not-an-address"),
        ("VERIFIER_STALENESS_LIMIT_SECONDS", "soon"),
        ("VERIFIER_CACHE_CAPACITY", "-1"),
    ] {
        let out = Command::new(BIN).env(var, value).output().expect("runs");
        assert!(!out.status.success(), "{var}={value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("invalid value") && err.contains(value),
            "{var}: {err}"
        );
    }
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn without_an_api_it_is_live_not_ready_and_refuses_with_401() {
    let port = free_port();
    let dead_api = free_port();
    let _child = Kill(
        Command::new(BIN)
            .env("VERIFIER_LISTEN", format!("127.0.0.1:{port}"))
            .env("VERIFIER_API_URL", format!("http://127.0.0.1:{dead_api}"))
            .env("VERIFIER_API_TOKEN", "mt_secret_never_logged")
            .stdin(Stdio::null())
            .spawn()
            .expect("starts"),
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "verifier did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    for token in ["eyJhbGciOiJFZERTQSJ9.e30.sig", "mt_whatever", ""] {
        let r = client
            .get(format!("{base}/verify/x"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "token {token:?}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    let r = client.get(format!("{base}/verify")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"auth\"");
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("verifier_feed_connected 0"), "{metrics}");
    assert!(
        !metrics.contains("mt_secret"),
        "the API token must not leak"
    );
}
