//! `Verifier`: a running `auth-verifier` following an API, and the calls tests make to it
//! (`/verify`, `/introspect`, plain GETs). [`Verifier::spawn`] runs it in process on a port-0
//! listener with a configuration that reads nothing from the environment; the real binary
//! ([`Verifier::start_process`]) is for tests that need the process itself.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches};
use serde_json::Value;
use tokio::sync::oneshot;

use super::net::{free_port, get, post_introspect, wait_until_up};
use super::process::{Proc, verifier_command};

/// A running verifier; stopped when dropped.
pub(crate) struct Verifier {
    /// `http://127.0.0.1:port`.
    pub(crate) base: String,
    /// HTTP client.
    pub(crate) client: reqwest::Client,
    _running: Running,
}

/// What a [`Verifier`] runs as.
enum Running {
    /// `auth_verifier::run` on a task of the test's runtime.
    InProcess {
        shutdown: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
    /// The real binary (killed when dropped).
    Process { _child: Proc },
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::InProcess { shutdown, task } = self {
            if let Some(tx) = shutdown.take() {
                let _ = tx.send(());
            }
            task.abort();
        }
    }
}

/// The configuration of an in-process verifier listening on `listen`, following `api_base`
/// with `token`, every other setting at its default: parsed from these flags alone, with the
/// environment fallbacks of the binary's settings (`VERIFIER_*`) turned off.
fn config(listen: SocketAddr, api_base: &str, token: Option<&str>) -> auth_verifier::Config {
    let listen = listen.to_string();
    let mut args = vec!["auth-verifier", "--listen", &listen, "--api-url", api_base];
    if let Some(token) = token {
        args.extend(["--api-token", token]);
    }
    let matches = auth_verifier::Config::command()
        .mut_args(|arg| arg.env(None))
        .try_get_matches_from(args)
        .expect("verifier settings parse");
    auth_verifier::Config::from_arg_matches(&matches).expect("verifier settings")
}

impl Verifier {
    /// Runs a verifier in process for `api_base` with `token`, and waits until it answers
    /// `/healthz`.
    pub(crate) async fn spawn(api_base: &str, token: Option<&str>) -> Self {
        Self::spawn_with(api_base, token, |_| {}).await
    }

    /// [`spawn`](Self::spawn) after `adjust` changes the configuration.
    pub(crate) async fn spawn_with(
        api_base: &str,
        token: Option<&str>,
        adjust: impl FnOnce(&mut auth_verifier::Config),
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = config(addr, api_base, token);
        adjust(&mut config);
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(auth_verifier::run(listener, config, async {
            let _ = rx.await;
        }));
        let base = format!("http://{addr}");
        let client = reqwest::Client::new();
        wait_until_up(&client, &format!("{base}/healthz"), "auth-verifier", || {
            task.is_finished().then(|| "its task ended".to_owned())
        })
        .await;
        Self {
            base,
            client,
            _running: Running::InProcess {
                shutdown: Some(tx),
                task,
            },
        }
    }

    /// Starts the real `auth-verifier` binary for `api_base` with `token` and `extra`
    /// settings (`VERIFIER_*`), and waits until it answers `/healthz`.
    pub(crate) async fn start_process(
        api_base: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let command = verifier_command(port, api_base, token, extra, "info").spawn();
        let mut proc = Proc::new(command.expect("auth-verifier starts"));
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        wait_until_up(&client, &format!("{base}/healthz"), "auth-verifier", || {
            proc.exit_status()
        })
        .await;
        Self {
            base,
            client,
            _running: Running::Process { _child: proc },
        }
    }

    /// `GET path` with an optional bearer; panics with `what` if it cannot be sent.
    async fn send_get(&self, path: &str, bearer: Option<&str>, what: &str) -> reqwest::Response {
        get(&self.client, format!("{}{path}", self.base), bearer, what).await
    }

    /// Waits until `/readyz` says ready (keys loaded, feed live).
    pub(crate) async fn ready(self) -> Self {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let response = self.send_get("/readyz", None, "readyz").await;
            if response.status() == 200 {
                return self;
            }
            assert!(
                Instant::now() < deadline,
                "verifier not ready: {}",
                response.text().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /verify` with an optional bearer: status and headers.
    pub(crate) async fn verify(&self, token: Option<&str>) -> (u16, reqwest::header::HeaderMap) {
        let response = self.send_get("/verify", token, "verify").await;
        (response.status().as_u16(), response.headers().clone())
    }

    /// Polls `/verify` until it answers `status`; how long that took. Panics after `within`.
    pub(crate) async fn until(&self, token: &str, status: u16, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let (got, _) = self.verify(Some(token)).await;
            if got == status {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "/verify still answers {got}, not {status}, after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `POST /introspect` of `token` (form), as `caller` (a bearer, or none) with extra
    /// headers: status, `WWW-Authenticate` and the JSON body (`null` if there is none).
    pub(crate) async fn introspect(
        &self,
        caller: Option<&str>,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String, Value) {
        let response = post_introspect(&self.client, &self.base, caller, token, headers).await;
        let status = response.status().as_u16();
        let challenge = challenge(response.headers());
        (
            status,
            challenge,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// `GET path`: status and body text.
    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let response = self.send_get(path, None, "GET").await;
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }
}

/// The `WWW-Authenticate` header (empty when absent).
pub(crate) fn challenge(headers: &reqwest::header::HeaderMap) -> String {
    header(headers, "www-authenticate").to_owned()
}

/// A header as text (empty when absent).
pub(crate) fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}
