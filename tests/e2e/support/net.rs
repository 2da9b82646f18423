//! Ports and start-up: the one [`free_port`], for servers that must be told their port before
//! they start (a child process, nginx, an SMTP server that comes up later), and waiting until
//! a server answers. Whatever runs in process binds port 0 instead.

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
