//! The verifier's HTTP client for `auth-api`: discovery, JWKS, the revocation list and stream,
//! and introspection of machine tokens. Every request carries the verifier's own machine token
//! when one is configured; none of them logs it.

use std::time::Duration;

use auth_protocol::{Discovery, Introspection, JwkSet, RevocationList, Secret};

use crate::error::Error;

/// Client of the API at one base URL.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    stream_http: reqwest::Client,
    base: String,
    token: Option<Secret>,
}

impl ApiClient {
    /// A client for the API at `base` (no trailing slash), presenting `token` if set.
    ///
    /// Fails only if the TLS backend cannot start.
    pub fn new(base: &str, token: Option<Secret>) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()?;
        // The stream lives for hours: no overall timeout, idleness is watched by the feed.
        let stream_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .build()?;
        Ok(ApiClient {
            http,
            stream_http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t.expose()),
            None => req,
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let resp = self
            .auth(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await?
            .error_for_status()?;
        Ok(resp.json().await?)
    }

    /// `GET /.well-known/openid-configuration`.
    pub async fn discovery(&self) -> Result<Discovery, Error> {
        self.get_json("/.well-known/openid-configuration").await
    }

    /// `GET /.well-known/jwks.json`.
    pub async fn jwks(&self) -> Result<JwkSet, Error> {
        self.get_json("/.well-known/jwks.json").await
    }

    /// `GET /internal/revocations`.
    pub async fn revocations(&self) -> Result<RevocationList, Error> {
        self.get_json("/internal/revocations").await
    }

    /// Opens `GET /internal/revocations/stream`, resuming after `cursor`, its look-back for
    /// late commits starting after `complete` (the list's low-water mark).
    pub async fn stream(&self, cursor: i64, complete: i64) -> Result<reqwest::Response, Error> {
        let resp = self
            .auth(self.stream_http.get(format!(
                "{}/internal/revocations/stream?complete={complete}",
                self.base
            )))
            .header("Accept", "text/event-stream")
            .header("Last-Event-ID", cursor.to_string())
            .send()
            .await?
            .error_for_status()?;
        Ok(resp)
    }

    async fn post_introspect(&self, token: &str) -> Result<reqwest::Response, Error> {
        Ok(self
            .auth(self.http.post(format!("{}/introspect", self.base)))
            .form(&[("token", token)])
            .send()
            .await?)
    }

    /// `POST /introspect` for a machine token.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, Error> {
        let resp = self.post_introspect(token).await?.error_for_status()?;
        Ok(resp.json().await?)
    }

    /// `POST /introspect` of the verifier's own token (the one it presents), to learn its
    /// tenant and scopes at start. `Ok(None)` when no token is configured. A 401 or 403 is the
    /// API refusing the token itself ([`OwnToken::Refused`]); other failures are errors, worth
    /// a retry.
    pub async fn introspect_own(&self) -> Result<Option<OwnToken>, Error> {
        let Some(token) = &self.token else {
            return Ok(None);
        };
        let resp = self.post_introspect(token.expose()).await?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Ok(Some(OwnToken::Refused(status.as_u16())));
        }
        let resp = resp.error_for_status()?;
        Ok(Some(OwnToken::Answered(Box::new(resp.json().await?))))
    }
}

/// What the API said of the verifier's own token ([`ApiClient::introspect_own`]).
#[derive(Debug, Clone)]
pub enum OwnToken {
    /// The API answered the introspection of the token.
    Answered(Box<Introspection>),
    /// The API refused the token as a caller, with this status: 401 (unknown, deleted, not a
    /// machine token) or 403 (no scope `verify`).
    Refused(u16),
}
