//! `Client`: the one way tests talk to an `auth-api`, whether it runs in process
//! ([`TestApp`](super::TestApp)) or as a child process ([`ApiProcess`](super::ApiProcess)):
//! GraphQL over real HTTP (raw, batched, or the common operations with typed answers), plain
//! GETs, and the real `auth-api` CLI on the same database.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::net::{get, post_introspect};
use super::payloads::{AuthPayload, Gql, MachineToken, PASSWORD, SIGN_IN, SIGN_UP};
use super::process::scrub_env;

/// The user agent of GraphQL requests (a desktop Safari, so sessions have a device).
const USER_AGENT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";

/// A client of one running API.
pub(crate) struct Client {
    /// `http://127.0.0.1:port`.
    pub(crate) base: String,
    /// The API's `AUTH_ISSUER`.
    pub(crate) issuer: String,
    /// HTTP client.
    pub(crate) client: reqwest::Client,
    /// The environment of `auth-api` commands on this API's database (nothing else of the
    /// test's environment reaches them).
    cli_env: Vec<(String, String)>,
    /// Their working directory (no stray `.env` is read there).
    workdir: PathBuf,
}

impl Client {
    /// A client of the API at `base`, whose CLI runs with `cli_env` in `workdir`.
    pub(crate) fn new(
        base: String,
        issuer: String,
        cli_env: Vec<(String, String)>,
        workdir: PathBuf,
    ) -> Self {
        Self {
            base,
            issuer,
            client: reqwest::Client::new(),
            cli_env,
            workdir,
        }
    }

    /// POSTs a GraphQL operation with an optional bearer and `X-Tenant`; the status and the
    /// answer.
    pub(crate) async fn gql_raw(
        &self,
        query: &str,
        variables: Value,
        bearer: Option<&str>,
        tenant: Option<&str>,
    ) -> (u16, Gql) {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base))
            .header("user-agent", USER_AGENT)
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(tenant) = tenant {
            request = request.header("x-tenant", tenant);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, Gql(response.json().await.expect("JSON body")))
    }

    /// POSTs a GraphQL operation in the default tenant; the answer.
    pub(crate) async fn gql(&self, query: &str, variables: Value, bearer: Option<&str>) -> Gql {
        self.gql_raw(query, variables, bearer, None).await.1
    }

    /// POSTs a batch of operations (a JSON array); the status and the array of answers.
    pub(crate) async fn gql_batch(&self, operations: &[Value]) -> (u16, Value) {
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

    /// Signs up `email` with [`PASSWORD`] in `tenant` (the default when `None`); panics
    /// unless it succeeds.
    pub(crate) async fn sign_up_in(&self, email: &str, tenant: Option<&str>) -> AuthPayload {
        let (_, body) = self
            .gql_raw(
                SIGN_UP,
                json!({"email": email, "password": PASSWORD}),
                None,
                tenant,
            )
            .await;
        body.data("signUp")
    }

    /// Signs up `email` with [`PASSWORD`] in the default tenant; panics unless it succeeds.
    pub(crate) async fn sign_up(&self, email: &str) -> AuthPayload {
        self.sign_up_in(email, None).await
    }

    /// Signs in: the whole answer, errors included.
    pub(crate) async fn sign_in(&self, email: &str, password: &str) -> Gql {
        self.gql(SIGN_IN, json!({"email": email, "password": password}), None)
            .await
    }

    /// Signs in, which must succeed: a new session.
    pub(crate) async fn signed_in(&self, email: &str, password: &str) -> AuthPayload {
        self.sign_in(email, password).await.data("signIn")
    }

    /// `signOut` with `token`, which must answer `true`.
    pub(crate) async fn sign_out(&self, token: &str) {
        let body = self
            .gql("mutation { signOut }", json!({}), Some(token))
            .await;
        assert_eq!(body["data"]["signOut"], json!(true), "signOut: {body}");
    }

    /// GETs a path that answers JSON, with an optional bearer; the body.
    pub(crate) async fn get_json(&self, path: &str, bearer: Option<&str>) -> Value {
        let response = get(&self.client, format!("{}{path}", self.base), bearer, "GET").await;
        response.json().await.expect("JSON body")
    }

    /// GETs a path; status, headers and body text.
    pub(crate) async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let response = get(&self.client, format!("{}{path}", self.base), None, "GET").await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.expect("body"))
    }

    /// `POST /introspect` of `token` (form) as `caller`; the JSON answer.
    pub(crate) async fn introspect(&self, caller: &str, token: &str) -> Value {
        post_introspect(&self.client, &self.base, Some(caller), token, &[])
            .await
            .json()
            .await
            .expect("JSON body")
    }

    /// Creates the tenant `slug` (named `slug` too) with a `platform` token; panics unless it
    /// succeeds.
    pub(crate) async fn create_tenant(&self, platform: &str, slug: &str) {
        let created = self
            .gql(
                "mutation($s: String!) { createTenant(input: {slug: $s, name: $s}) { slug } }",
                json!({"s": slug}),
                Some(platform),
            )
            .await;
        assert_eq!(
            created["data"]["createTenant"]["slug"],
            json!(slug),
            "{created}"
        );
    }

    /// A new machine token of `tenant` with `scopes`, made as an operator makes one
    /// (`auth-api token create`); its secret.
    pub(crate) async fn machine_token(&self, tenant: &str, scopes: &[&str]) -> String {
        self.create_machine_token(tenant, scopes).await.secret
    }

    /// [`machine_token`](Self::machine_token), with the token's id.
    pub(crate) async fn create_machine_token(&self, tenant: &str, scopes: &[&str]) -> MachineToken {
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
        MachineToken::from_cli(&output)
    }

    /// Runs the real `auth-api ARGS` on this API's database; its stdout (panics on failure).
    pub(crate) async fn cli(&self, args: &[&str]) -> String {
        let output = self.command(args).output().await.expect("auth-api runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "auth-api {args:?} failed: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// `auth-api ARGS` on this API's database, not started yet.
    pub(crate) fn command(&self, args: &[&str]) -> tokio::process::Command {
        tokio::process::Command::from(self.std_command(args))
    }

    /// [`command`](Self::command) as a `std` command, for a long-running child.
    pub(crate) fn std_command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_auth-api"));
        scrub_env(&mut command);
        command
            .args(args)
            .envs(self.cli_env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.workdir)
            .stdin(std::process::Stdio::null());
        command
    }
}
