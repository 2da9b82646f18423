//! A real OpenID provider on loopback: panva's certified `oidc-provider` (8.8.1, pinned by
//! `tests/oidc/package-lock.json`) run by Node from `tests/oidc/provider.mjs`, and a browser
//! stand-in that goes through its login and consent pages over HTTP with a cookie jar.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A client registered at the provider.
#[derive(Debug, Clone)]
pub(crate) struct OidcClient {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) redirect_uris: Vec<String>,
    /// `false`: its id_tokens carry no email (userinfo has it).
    pub(crate) id_token_email: bool,
}

impl OidcClient {
    /// A client with one redirect URI and emails in its id_tokens.
    pub(crate) fn new(id: &str, redirect: &str) -> Self {
        Self {
            id: id.into(),
            secret: format!("{id}-secret-{}", uuid::Uuid::new_v4().simple()),
            redirect_uris: vec![redirect.into()],
            id_token_email: true,
        }
    }
}

/// How the provider is started.
#[derive(Debug, Clone)]
pub(crate) struct OidcConfig {
    /// 0: any free port.
    pub(crate) port: u16,
    /// `RS256` or `ES256`.
    pub(crate) alg: &'static str,
    /// Access token lifetime, seconds.
    pub(crate) access_ttl: u64,
    /// id_token lifetime, seconds (negative: expired when issued); the provider's 3600 when
    /// `None`.
    pub(crate) id_token_ttl: Option<i64>,
    pub(crate) clients: Vec<OidcClient>,
    /// `{ "<login>": { "email", "email_verified", "name" } }`.
    pub(crate) accounts: Value,
}

impl OidcConfig {
    /// RS256, one-hour access tokens, the given clients and accounts.
    pub(crate) fn new(clients: Vec<OidcClient>, accounts: Value) -> Self {
        Self {
            port: 0,
            alg: "RS256",
            access_ttl: 3600,
            id_token_ttl: None,
            clients,
            accounts,
        }
    }
}

/// The running provider; killed when dropped.
pub(crate) struct OidcProvider {
    /// Its issuer, `http://127.0.0.1:<port>`.
    pub(crate) issuer: String,
    pub(crate) config: OidcConfig,
    child: Option<Child>,
}

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc")
}

impl OidcProvider {
    /// Starts the provider and waits until it listens.
    pub(crate) async fn start(config: OidcConfig) -> Self {
        let dir = provider_dir();
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "the OpenID provider is not installed: run `npm ci` in {}",
            dir.display()
        );
        let mut document = json!({
            "port": config.port,
            "alg": config.alg,
            "accessTtl": config.access_ttl,
            "accounts": config.accounts,
            "clients": config.clients.iter().map(|c| json!({
                "id": c.id, "secret": c.secret, "redirectUris": c.redirect_uris,
                "idTokenEmail": c.id_token_email,
            })).collect::<Vec<_>>(),
        });
        if let Some(ttl) = config.id_token_ttl {
            document["idTokenTtl"] = json!(ttl);
        }
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("OIDC_CONFIG", document.to_string())
            .env("NODE_ENV", "test")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("the provider starts within 20 s")
            .expect("stdout readable")
            .expect("the provider printed its address");
        let issuer = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        let mut config = config;
        config.port = port;
        Self {
            issuer,
            config,
            child: Some(child),
        }
    }

    /// Stops the provider (its grants, kept in memory, are gone).
    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Stops it and starts it again on the same port with a new signing key (`alg`).
    pub(crate) async fn restart(mut self, alg: &'static str) -> Self {
        self.stop().await;
        let mut config = self.config.clone();
        config.alg = alg;
        Self::start(config).await
    }

    /// Its userinfo endpoint's answer for an access token: status and body.
    pub(crate) async fn userinfo(&self, access_token: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/me", self.issuer))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("userinfo reachable");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Goes through the provider's pages as a browser would for `authorization_url`:
    /// signs in as `login` (any password), consents, and returns the query of the redirect
    /// back to the client (`code`, `state`, `iss`, or `error`).
    pub(crate) async fn authorize(
        &self,
        authorization_url: &str,
        login: &str,
    ) -> std::collections::HashMap<String, String> {
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let base = reqwest::Url::parse(&self.issuer).unwrap();
        let mut response = browser.get(authorization_url).send().await.expect("auth");
        for _ in 0..20 {
            let status = response.status();
            if status.is_redirection() {
                let location = response.headers()["location"].to_str().unwrap().to_owned();
                let next = base.join(&location).unwrap();
                if next.origin() != base.origin() {
                    return next.query_pairs().into_owned().collect();
                }
                response = browser.get(next).send().await.expect("follow");
                continue;
            }
            let page = response.text().await.expect("page");
            assert!(status.is_success(), "provider answered {status}: {page}");
            let action = between(&page, "action=\"", "\"").expect("a form on the page");
            let prompt = between(&page, "name=\"prompt\" value=\"", "\"").expect("a prompt");
            let form: Vec<(&str, &str)> = match prompt {
                "login" => vec![("prompt", "login"), ("login", login), ("password", "any")],
                "consent" => vec![("prompt", "consent")],
                other => panic!("unexpected prompt {other}"),
            };
            response = browser
                .post(base.join(action).unwrap())
                .form(&form)
                .send()
                .await
                .expect("form posted");
        }
        panic!("the provider never sent the browser back");
    }

    /// A code-flow grant done by the test itself (a native app): authorize with its own
    /// PKCE pair and `nonce`, exchange the code; the token endpoint's answer (`id_token` …).
    pub(crate) async fn app_tokens(&self, client: &OidcClient, login: &str, nonce: &str) -> Value {
        let verifier = format!(
            "verifier-{}-{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let challenge = {
            use base64::Engine;
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
        };
        let mut url = reqwest::Url::parse(&format!("{}/auth", self.issuer)).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", &client.redirect_uris[0])
            .append_pair("response_type", "code")
            .append_pair("scope", "openid email profile")
            .append_pair("state", "app-state")
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let back = self.authorize(url.as_str(), login).await;
        let code = back
            .get("code")
            .unwrap_or_else(|| panic!("no code: {back:?}"));
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &client.redirect_uris[0]),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .expect("token endpoint");
        assert!(
            response.status().is_success(),
            "token: {}",
            response.text().await.unwrap()
        );
        response.json().await.unwrap()
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}
