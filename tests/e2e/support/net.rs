//! Ports, start-up and plain requests: the one [`free_port`], for servers that must be told
//! their port before they start (a child process, nginx, an SMTP server that comes up later),
//! waiting until a server answers, and the GET and `/introspect` requests the API's and the
//! verifier's clients share. Whatever runs in process binds port 0 instead.

use std::time::{Duration, Instant};

/// A port of 127.0.0.1 that was free a moment ago (nothing listens on it now).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `GET url` until it answers 2xx; panics after 60 s, or as soon as `gone` reports
/// (with its text) that the server has stopped.
pub(crate) async fn wait_until_up(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    mut gone: impl FnMut() -> Option<String>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        if let Some(why) = gone() {
            panic!("{what} exited early: {why}");
        }
        assert!(Instant::now() < deadline, "{what} did not come up at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET url` with an optional bearer; panics with `what` if it cannot be sent.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: String,
    bearer: Option<&str>,
    what: &str,
) -> reqwest::Response {
    let mut request = client.get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.expect(what)
}

/// `POST {base}/introspect` of `token` (form), as `caller` (a bearer, or none) with extra
/// headers.
pub(crate) async fn post_introspect(
    client: &reqwest::Client,
    base: &str,
    caller: Option<&str>,
    token: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client
        .post(format!("{base}/introspect"))
        .form(&[("token", token)]);
    if let Some(caller) = caller {
        request = request.bearer_auth(caller);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("introspect")
}
