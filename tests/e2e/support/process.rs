//! The real binaries as child processes, for tests where the process is the point: an
//! `auth-api` that is killed and restarted on its port, or whose logs are read
//! ([`ApiProcess`]); an `auth-verifier` whose stderr is read, whose `/metrics` must be its
//! own, or that nginx talks to ([`Verifier::start_process`](super::Verifier::start_process),
//! [`verifier_fails_to_start`]). Children get none of the test's `AUTH_*`, `DATABASE_*`,
//! `SMTP_*` or `VERIFIER_*` variables, run in a temp dir (no stray `.env`), and are killed
//! when their handles drop.

use std::ffi::OsString;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::app::stable_master_key;
use super::client::Client;
use super::db::TestDb;
use super::net::{free_port, wait_until_up};

/// Prefixes of the variables the binaries read their settings from.
const SETTINGS: [&str; 4] = ["AUTH_", "DATABASE_", "SMTP_", "VERIFIER_"];

/// Removes from `command` every setting the test's own environment holds (`RUST_LOG` too:
/// each child is given its own).
pub(crate) fn scrub_env(command: &mut Command) {
    let leaking: Vec<OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| {
            let name = name.to_string_lossy();
            name == "RUST_LOG" || SETTINGS.iter().any(|prefix| name.starts_with(prefix))
        })
        .collect();
    for name in leaking {
        command.env_remove(name);
    }
}

/// A child process, killed on drop.
pub(crate) struct Proc(Option<Child>);

impl Proc {
    /// Wraps a spawned child.
    pub(crate) fn new(child: Child) -> Self {
        Self(Some(child))
    }

    /// Why the process is no longer running (its exit status), if it is not.
    pub(crate) fn exit_status(&mut self) -> Option<String> {
        match self.0.as_mut() {
            None => Some("killed".to_owned()),
            Some(child) => child
                .try_wait()
                .ok()
                .flatten()
                .map(|status| status.to_string()),
        }
    }

    /// Whether the process has exited.
    pub(crate) fn exited(&mut self) -> bool {
        self.exit_status().is_some()
    }

    /// Kills the process now and waits for it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The output of a process that has exited (piped streams only).
    fn output(&mut self) -> std::process::Output {
        self.0
            .take()
            .expect("a child")
            .wait_with_output()
            .expect("output")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How an [`ApiProcess`] is started.
pub(crate) struct ApiSettings {
    /// `AUTH_LISTEN` is `127.0.0.1:port`.
    pub(crate) port: u16,
    /// `AUTH_ISSUER`.
    pub(crate) issuer: String,
    /// `AUTH_MASTER_KEY` (base64).
    pub(crate) master_key: String,
    /// `RUST_LOG`.
    pub(crate) rust_log: String,
    /// More settings, as environment variables (`AUTH_SIGNING_KEY_FILE` …).
    pub(crate) env: Vec<(String, String)>,
    /// Files for the server's stdout and stderr (inherited when `None`).
    pub(crate) logs: Option<(PathBuf, PathBuf)>,
}

impl ApiSettings {
    /// On `port`, whose URL is the issuer; the process-wide master key, warnings only.
    pub(crate) fn on_port(port: u16) -> Self {
        Self {
            port,
            issuer: format!("http://127.0.0.1:{port}"),
            master_key: stable_master_key(),
            rust_log: "warn".to_owned(),
            env: Vec::new(),
            logs: None,
        }
    }

    /// With more settings (environment variables).
    pub(crate) fn with_env(mut self, env: &[(&str, &str)]) -> Self {
        self.env
            .extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self
    }
}

/// An `auth-api serve` process. Dereferences to its [`Client`] (`api.gql(…)`, `api.cli(…)`
/// run on its database with its settings).
pub(crate) struct ApiProcess {
    api: Client,
    logs: Option<(PathBuf, PathBuf)>,
    proc: Proc,
}

impl ApiProcess {
    /// Starts an API on `db` on `port` with `issuer` (another API's, to serve its sessions).
    pub(crate) async fn start_on(db: &TestDb, port: u16, issuer: &str) -> Self {
        let mut settings = ApiSettings::on_port(port);
        settings.issuer = issuer.to_owned();
        Self::start_with(db, settings).await
    }

    /// Starts `auth-api serve` with `settings` on `db`, and waits until `/readyz` answers.
    pub(crate) async fn start_with(db: &TestDb, settings: ApiSettings) -> Self {
        let base = format!("http://127.0.0.1:{}", settings.port);
        let mut env = vec![
            ("DATABASE_URL".to_owned(), db.url.clone()),
            ("AUTH_MASTER_KEY".to_owned(), settings.master_key),
            ("AUTH_ISSUER".to_owned(), settings.issuer.clone()),
            (
                "AUTH_LISTEN".to_owned(),
                format!("127.0.0.1:{}", settings.port),
            ),
            ("RUST_LOG".to_owned(), settings.rust_log),
        ];
        env.extend(settings.env);
        let mut api = Self {
            api: Client::new(base, settings.issuer, env, db.dir().to_path_buf()),
            logs: settings.logs,
            proc: Proc(None),
        };
        api.restart().await;
        api
    }

    /// (Re)starts the process on the same port, and waits until `/readyz` answers.
    pub(crate) async fn restart(&mut self) {
        self.proc.kill();
        let mut command = self.api.std_command(&["serve"]);
        if let Some((stdout, stderr)) = &self.logs {
            command
                .stdout(std::fs::File::create(stdout).expect("stdout file"))
                .stderr(std::fs::File::create(stderr).expect("stderr file"));
        }
        self.proc = Proc::new(command.spawn().expect("auth-api starts"));
        let url = format!("{}/readyz", self.api.base);
        let (proc, logs) = (&mut self.proc, &self.logs);
        wait_until_up(&self.api.client, &url, "auth-api", || {
            proc.exit_status().map(|status| match logs {
                Some((stdout, _)) => format!(
                    "{status}: {}",
                    std::fs::read_to_string(stdout).unwrap_or_default()
                ),
                None => status,
            })
        })
        .await;
    }

    /// Kills the process (and waits for it to go).
    pub(crate) fn stop(&mut self) {
        self.proc.kill();
    }
}

impl Deref for ApiProcess {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.api
    }
}

/// The `auth-verifier` binary beside `auth-api` in the target dir. Cargo builds it with the
/// workspace (`cargo nextest run --workspace`), not for `-p auth-api` alone: this panics,
/// saying so, when it is missing or older than the sources it is built from.
pub(crate) fn verifier_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_auth-api")).with_file_name("auth-verifier");
    let build =
        "build it with `cargo build -p auth-verifier` (`cargo nextest run --workspace` does)";
    let built = std::fs::metadata(&bin)
        .and_then(|meta| meta.modified())
        .unwrap_or_else(|_| panic!("no {}: {build}", bin.display()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sources = [
        "verifier/src",
        "verifier/Cargo.toml",
        "protocol/src",
        "protocol/Cargo.toml",
    ];
    if let Some(newer) = sources
        .iter()
        .flat_map(|source| newest(&root.join(source)))
        .find(|(_, modified)| *modified > built)
    {
        panic!(
            "{} is older than {}: {build}",
            bin.display(),
            newer.0.display()
        );
    }
    bin
}

/// Every file under `path` (or `path` itself) with its modification time.
fn newest(path: &Path) -> Vec<(PathBuf, SystemTime)> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Vec::new();
    };
    if !meta.is_dir() {
        return meta
            .modified()
            .map(|modified| vec![(path.to_path_buf(), modified)])
            .unwrap_or_default();
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|entry| newest(&entry.path()))
        .collect()
}

/// `auth-verifier` on `port`, following `api_base` with `token` and `extra` settings
/// (`VERIFIER_*`), logging at `rust_log`; not started yet.
pub(crate) fn verifier_command(
    port: u16,
    api_base: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
    rust_log: &str,
) -> Command {
    let mut command = Command::new(verifier_bin());
    scrub_env(&mut command);
    command
        .env("VERIFIER_LISTEN", format!("127.0.0.1:{port}"))
        .env("VERIFIER_API_URL", api_base)
        .env("RUST_LOG", rust_log)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null());
    if let Some(token) = token {
        command.env("VERIFIER_API_TOKEN", token);
    }
    for (name, value) in extra {
        command.env(name, value);
    }
    command
}

/// Runs `auth-verifier` against `api_base` with `token` and `extra` settings, expecting it to
/// stop on its own, unsuccessfully, within 20 s; its stderr.
pub(crate) async fn verifier_fails_to_start(
    api_base: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut command = verifier_command(free_port(), api_base, Some(token), extra, "warn");
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut proc = Proc::new(command.spawn().expect("auth-verifier starts"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !proc.exited() {
        assert!(Instant::now() < deadline, "the verifier did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = proc.output();
    assert!(!out.status.success(), "exited with success");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
