//! `TestApp`: the real API in process, on a port-0 listener over a fresh [`TestDb`], with a
//! configuration that reads nothing from the environment ([`test_config`]), and the few
//! helpers that look behind the API (its database, a tenant's settings).

use std::net::SocketAddr;
use std::ops::Deref;

use auth_api::config::Config;
use serde_json::json;
use tokio::sync::oneshot;

use super::client::Client;
use super::db::TestDb;
use super::payloads::{AuthPayload, PASSWORD};

/// A running API, in process. Dereferences to its [`Client`] (`app.gql(…)`, `app.base`).
pub(crate) struct TestApp {
    /// Its configuration.
    pub(crate) config: Config,
    /// The database (dropped after the server).
    pub(crate) db: TestDb,
    api: Client,
    /// The service behind the server, for helpers that change the database behind it.
    auth: auth_api::service::Auth,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A new base64 master key.
pub(crate) fn master_key() -> String {
    auth_api::crypto::MasterKey::generate().to_base64()
}

/// One master key per test process, so a restarted app (or a CLI run, or an API process) can
/// open what an earlier one sealed.
pub(crate) fn stable_master_key() -> String {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(master_key).clone()
}

/// The configuration of a test app on `database_url` listening on `listen`: the defaults
/// (`Config::for_database` reads no environment, so a `SMTP_URL` or `AUTH_*` in the shell
/// does not reach a test app) with the issuer at that address, the process's master key and
/// a small pool. Requests wait up to 10 s for a pooled connection (the default is 3 s): the
/// suite shares two cores and one disk with other suites, where a PostgreSQL checkpoint can
/// stall commits for seconds; `faults::` tests the default.
pub(crate) fn test_config(database_url: &str, listen: SocketAddr) -> Config {
    let mut config = Config::for_database(database_url);
    config.database_max_connections = 5;
    config.database_acquire_timeout_seconds = 10;
    config.listen = listen;
    config.issuer = format!("http://{listen}");
    config.master_key =
        Some(auth_api::crypto::MasterKey::parse(&stable_master_key()).expect("master key"));
    config
}

/// Starts the API with the test configuration.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the API after `adjust` changes its test configuration.
pub(crate) async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_on(TestDb::new().await, adjust).await
}

/// Starts the API on an existing database (one an earlier app used).
pub(crate) async fn spawn_on(db: TestDb, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = test_config(&db.url, addr);
    adjust(&mut config);
    let app = auth_api::startup::build(config.clone())
        .await
        .expect("app builds");
    let auth = app.state.auth.clone();
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(auth_api::startup::run(app, listener, async {
        let _ = rx.await;
    }));
    let base = format!("http://{addr}");
    let cli_env = vec![
        ("DATABASE_URL".to_owned(), db.url.clone()),
        ("AUTH_MASTER_KEY".to_owned(), stable_master_key()),
        ("AUTH_ISSUER".to_owned(), base.clone()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];
    let api = Client::new(base, config.issuer.clone(), cli_env, db.dir().to_path_buf());
    TestApp {
        config,
        db,
        api,
        auth,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl Deref for TestApp {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.api
    }
}

impl TestApp {
    /// Stops the server, waiting for in-flight requests; the database, for the next app.
    pub(crate) async fn stop(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
        self.db.take()
    }

    /// Marks `email` proven in the database, as an email code or a reset link would (for
    /// tests whose subject is not the proof itself; `hardening.rs` proves addresses by mail).
    pub(crate) async fn prove_address(&self, email: &str) {
        let store = self.store().await;
        let done = sqlx::query("UPDATE user_emails SET verified_at = created_at WHERE email = $1")
            .bind(email)
            .execute(store.pool())
            .await
            .expect("address marked proven");
        assert_eq!(done.rows_affected(), 1, "no account with {email}");
    }

    /// An admin of the default tenant: signs up `email` (which the configuration's
    /// `admin_emails` must list), proves the address and signs in again, which grants the
    /// role; that sign-in's payload.
    pub(crate) async fn sign_up_admin(&self, email: &str) -> AuthPayload {
        let first = self.sign_up(email).await;
        assert_eq!(first.roles, Vec::<String>::new(), "unproven: no role yet");
        self.prove_address(email).await;
        let admin = self.signed_in(email, PASSWORD).await;
        let me = self
            .gql("{ me { roles } }", json!({}), Some(&admin.access_token))
            .await;
        assert_eq!(me["data"]["me"]["roles"], json!(["admin"]), "{me}");
        admin
    }

    /// Changes a tenant's settings directly in the database, unvalidated (tests of
    /// `updateSettings` use the API), and tells the app, which caches tenants.
    pub(crate) async fn update_settings(
        &self,
        tenant: &str,
        change: impl FnOnce(&mut auth_api::domain::TenantSettings),
    ) {
        let store = self.store().await;
        let mut found = store.tenant_by_slug(tenant).await.expect("tenant exists");
        change(&mut found.settings);
        store
            .set_tenant_settings(&found.id, &found.settings)
            .await
            .expect("settings written");
        self.auth.tenant_changed(tenant).await;
    }

    /// Runs the janitor's audit retention now (it runs every five minutes otherwise); how
    /// many events it deleted.
    pub(crate) async fn purge_audit_events(&self) -> u64 {
        self.auth.purge_audit_events().await.expect("audit purge")
    }

    /// Runs a housekeeping round now, if this app can claim its lease (the janitor runs one
    /// every five minutes otherwise); what it purged, `None` when another app holds it.
    pub(crate) async fn housekeeping_round(&self) -> Option<auth_api::service::Purged> {
        self.auth
            .housekeeping_round()
            .await
            .expect("housekeeping round")
    }

    /// A store over the app's database, for looking behind the API.
    pub(crate) async fn store(&self) -> auth_api::store::Store {
        let db = auth_api::store::Db::connect(&self.db.url, 1)
            .await
            .expect("database reachable");
        auth_api::store::Store::new(db)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
