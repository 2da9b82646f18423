//! Shutdown with a verifier attached: the revocation stream a verifier follows hears the
//! shutdown and ends, requests in flight finish, and the server stops within seconds rather
//! than waiting for the verifier to hang up.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{PASSWORD, SIGN_IN, spawn_app};

#[tokio::test]
async fn shutdown_ends_the_revocation_streams_and_lets_requests_in_flight_finish() {
    let app = spawn_app().await;
    app.sign_up("stay@example.com").await;
    let verify = app.machine_token("default", &["verify", "platform"]).await;
    // A verifier following the feed: the stream stays open until the server ends it.
    let mut stream = app
        .client
        .get(format!("{}/internal/revocations/stream", app.base))
        .bearer_auth(&verify)
        .send()
        .await
        .expect("stream opens");
    assert_eq!(stream.status(), 200);
    // A sign-in in flight (it hashes a password) when the shutdown starts.
    let client = app.client.clone();
    let url = format!("{}/graphql", app.base);
    let in_flight = tokio::spawn(async move {
        let body = json!({"query": SIGN_IN, "variables": {"email": "stay@example.com", "password": PASSWORD}});
        client
            .post(url)
            .json(&body)
            .send()
            .await?
            .json::<serde_json::Value>()
            .await
    });
    tokio::time::sleep(Duration::from_millis(5)).await;

    let started = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(5), app.stop()).await;
    assert!(
        stopped.is_ok(),
        "the server was still running 5 s after the shutdown signal"
    );
    eprintln!("stopped in {:?}", started.elapsed());
    let answer = in_flight
        .await
        .expect("task")
        .expect("the request in flight was answered");
    assert!(
        answer["data"]["signIn"]["accessToken"].is_string(),
        "{answer}"
    );
    // The stream ended (rather than staying open to a server that is gone).
    let rest = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the revocation stream did not end");
}
