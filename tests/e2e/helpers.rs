//! The test app: the real router on port 0 over a fresh database (a new SQLite file, or a
//! new PostgreSQL database when `TEST_DATABASE_URL` is set, dropped afterwards), and typed
//! helpers to call it over real HTTP.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use auth_api::config::Config;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A strong password for tests.
pub const PASSWORD: &str = "correct horse battery staple";

/// A fresh database for one test.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    dir: PathBuf,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A new empty database.
    pub async fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("auth-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        match std::env::var("TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => {
                use sqlx::Connection;
                let name = format!("auth_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&base)
                    .await
                    .expect("TEST_DATABASE_URL reachable");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let (prefix, _) = base
                    .rsplit_once('/')
                    .expect("TEST_DATABASE_URL names a database");
                Self {
                    url: format!("{prefix}/{name}"),
                    dir,
                    postgres: Some((base, name)),
                }
            }
            _ => Self {
                url: format!("sqlite://{}", dir.join("auth.db").display()),
                dir,
                postgres: None,
            },
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// A directory that lives as long as the database.
    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((base, name)) = self.postgres.take() {
            // Drop runs outside any runtime we may block on: use a thread of our own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running API.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://addr`.
    pub base: String,
    /// Its configuration.
    pub config: Config,
    /// HTTP client.
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The database (dropped after the server).
    pub db: TestDb,
}

/// A base64 master key for tests.
pub fn master_key() -> String {
    auth_api::crypto::MasterKey::generate().to_base64()
}

/// Start the API with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Start the API after `adjust` changes its configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDb::new().await;
    spawn_on(db, adjust).await
}

/// Start the API on an existing database.
pub async fn spawn_on(db: TestDb, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = Config::for_database(&db.url);
    config.master_key =
        Some(auth_api::crypto::MasterKey::parse(&stable_master_key()).expect("key"));
    config.issuer = format!("http://{addr}");
    config.listen = addr;
    config.database_max_connections = 5;
    adjust(&mut config);
    let app = auth_api::startup::build(config.clone())
        .await
        .expect("app builds");
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(auth_api::startup::run(app, listener, async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        config,
        client: reqwest::Client::new(),
        shutdown: Some(tx),
        server: Some(server),
        db,
    }
}

/// One master key per test process, so a restarted app can open what an earlier one sealed.
pub fn stable_master_key() -> String {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(master_key).clone()
}

impl TestApp {
    /// Stop the server, waiting for in-flight requests; returns the database for reuse.
    pub async fn stop(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
        let empty = TestDb {
            url: String::new(),
            dir: PathBuf::new(),
            postgres: None,
        };
        std::mem::replace(&mut self.db, empty)
    }

    /// POST a GraphQL operation with optional bearer and tenant; returns status and body.
    pub async fn gql_raw(
        &self,
        query: &str,
        variables: Value,
        bearer: Option<&str>,
        tenant: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base))
            .header("user-agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15")
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(tenant) = tenant {
            request = request.header("x-tenant", tenant);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// POST a GraphQL operation; returns the body.
    pub async fn gql(&self, query: &str, variables: Value, bearer: Option<&str>) -> Value {
        self.gql_raw(query, variables, bearer, None).await.1
    }

    /// Sign up `email` in `tenant` (default when `None`); returns `signUp`'s payload.
    pub async fn sign_up_in(&self, email: &str, tenant: Option<&str>) -> Value {
        let (_, body) = self
            .gql_raw(
                SIGN_UP,
                json!({"email": email, "password": PASSWORD}),
                None,
                tenant,
            )
            .await;
        assert!(body["errors"].is_null(), "signUp failed: {body}");
        body["data"]["signUp"].clone()
    }

    /// Mark `email` proven in the database, as an email code or a reset link would (for
    /// tests whose subject is not the proof itself; `hardening.rs` proves addresses by mail).
    pub async fn prove_address(&self, email: &str) {
        let store = self.store().await;
        let done = sqlx::query("UPDATE user_emails SET verified_at = created_at WHERE email = $1")
            .bind(email)
            .execute(store.pool())
            .await
            .expect("address marked proven");
        assert_eq!(done.rows_affected(), 1, "no account with {email}");
    }

    /// An admin of the default tenant: signs up `email` (which `AUTH_ADMIN_EMAILS` must
    /// list), proves the address and signs in again, which grants the role; returns
    /// `signIn`'s payload.
    pub async fn sign_up_admin(&self, email: &str) -> Value {
        let first = self.sign_up(email).await;
        assert_eq!(first["user"]["roles"], json!([]), "unproven: no role yet");
        self.prove_address(email).await;
        let body = self.sign_in(email, PASSWORD).await;
        assert!(body["errors"].is_null(), "signIn failed: {body}");
        let admin = body["data"]["signIn"].clone();
        let me = self
            .gql("{ me { roles } }", json!({}), admin["accessToken"].as_str())
            .await;
        assert_eq!(me["data"]["me"]["roles"], json!(["admin"]), "{me}");
        admin
    }

    /// Sign up `email` in the default tenant.
    pub async fn sign_up(&self, email: &str) -> Value {
        self.sign_up_in(email, None).await
    }

    /// Sign in; returns the whole body.
    pub async fn sign_in(&self, email: &str, password: &str) -> Value {
        self.gql(SIGN_IN, json!({"email": email, "password": password}), None)
            .await
    }

    /// Change a tenant's settings directly in the database (the admin settings API is a
    /// later issue); the app reads them on every request.
    pub async fn update_settings(
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
    }

    /// A store over the app's database, for looking behind the API.
    pub async fn store(&self) -> auth_api::store::Store {
        let db = auth_api::store::Db::connect(&self.db.url, 1)
            .await
            .expect("database reachable");
        auth_api::store::Store::new(db)
    }

    /// POST a batch of operations (a JSON array); returns the status and the array.
    pub async fn gql_batch(&self, operations: &[Value]) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(&operations)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// GET a path that answers JSON, with an optional bearer; returns the body.
    pub async fn get_json(&self, path: &str, bearer: Option<&str>) -> Value {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("GET");
        response.json().await.expect("JSON body")
    }

    /// GET a path; returns status, headers and body text.
    pub async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.expect("body"))
    }

    /// Create a machine token directly through the service (as `auth-api token create` does).
    pub async fn machine_token(&self, tenant: &str, scopes: &[&str]) -> String {
        let output = self
            .cli(&[
                "token",
                "create",
                "--tenant",
                tenant,
                "--scope",
                &scopes.join(","),
            ])
            .await;
        output
            .lines()
            .find_map(|line| line.strip_prefix("secret: "))
            .unwrap_or_else(|| panic!("no secret in CLI output: {output}"))
            .to_owned()
    }

    /// Run the real `auth-api` binary on this app's database; returns stdout (panics on failure).
    pub async fn cli(&self, args: &[&str]) -> String {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auth-api"))
            .args(args)
            .env("DATABASE_URL", &self.db.url)
            .env("AUTH_MASTER_KEY", stable_master_key())
            .env("AUTH_ISSUER", &self.base)
            .env("RUST_LOG", "warn")
            .output()
            .await
            .expect("auth-api runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "auth-api {args:?} failed: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
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

/// The `extensions.code` of the first error.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// `signUp` with `$email` and `$password`.
pub const SIGN_UP: &str = "mutation($email: String!, $password: String!) { signUp(input: {email: $email, password: $password, name: \"Test\"}) { accessToken refreshToken tokenType expiresIn user { id roles emails { primary active } } session { id method current device { os browser ip } } } }";
/// `signIn` with `$email` and `$password`.
pub const SIGN_IN: &str = "mutation($email: String!, $password: String!) { signIn(input: {email: $email, password: $password}) { accessToken refreshToken user { id } session { id } } }";
/// `refreshSession` with `$token`.
pub const REFRESH: &str = "mutation($token: String!) { refreshSession(refreshToken: $token) { accessToken refreshToken session { id } } }";
