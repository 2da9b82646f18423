//! Connections: a user's provider tokens, sealed at rest (AES-256-GCM with the master key,
//! the row id as associated data) and never in any user-facing answer. Backends get them
//! with a machine token of scope `connections` (`connectionTokens`), refreshed first when
//! the access token has run out; the user links (`linkConnection`), refreshes after a leak
//! (`refreshConnection`: the old access token is revoked, the grant kept) and unlinks
//! (`unlinkConnection`: revoked at the provider, then deleted).
//!
//! One refresh at a time per connection, across every replica: the row itself is the lock
//! (`refreshing_until`, claimed by a conditional UPDATE; a claim left by a crashed replica
//! lapses). Whoever does not get the claim waits for the new tokens the claimant stores.

use std::time::Duration;

use oauth2::TokenResponse as _;

use super::flow::token_error;
use super::outbound::REQUEST_TIMEOUT;
use super::{Auth, Error, Ready, Result, provider_error};
use crate::domain::{AuditAction, Connection, ConnectionSecrets, Device, Scope, Tenant, now_ms};
use crate::service::{Caller, CompleteOAuth, user_of};
use crate::store::StoreError;
use crate::store::audit::AuditEvent;
use crate::store::connections::{ConnectionWrite, NewIdentity, StoredConnection};
use crate::store::providers::StoredProvider;

/// An access token that expires within this is refreshed before it is handed out (see
/// [`needs_refresh`]).
const EXPIRY_MARGIN_MS: i64 = 30_000;
/// How long a refresh claim holds: longer than the provider call may take.
const CLAIM_MS: i64 = 3 * REQUEST_TIMEOUT.as_millis() as i64;
/// How long a caller waits for another's refresh before giving up.
const WAIT_FOR_REFRESH: Duration = Duration::from_secs(20);

/// The sealing context of a connection's access token.
pub(super) fn access_context(id: &str) -> String {
    format!("connections:{id}:access")
}

/// The sealing context of a connection's refresh token.
pub(super) fn refresh_context(id: &str) -> String {
    format!("connections:{id}:refresh")
}

/// A connection's provider tokens, for backends (`connectionTokens`).
#[derive(Debug, Clone)]
pub struct ProviderTokens {
    /// Access token.
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: Option<String>,
    /// Access token expiry (ms).
    pub expires_at: Option<i64>,
    /// Scopes.
    pub scopes: Vec<String>,
}

/// Why a refresh is done: it decides what else happens (and what is audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    /// The access token ran out (`connectionTokens`): the old one is left to expire.
    Expired,
    /// The user asks (`refreshConnection`, a leaked token): always refresh, then revoke the
    /// old access token.
    Replace,
}

/// Whether the access token has run out or is about to: within 30 s of its expiry, or
/// within a tenth of its lifetime for tokens that live less than five minutes.
fn needs_refresh(connection: &Connection, now: i64) -> bool {
    connection.expires_at.is_some_and(|at| {
        let lifetime = (at - connection.updated_at).max(0);
        at - EXPIRY_MARGIN_MS.min(lifetime / 10) <= now
    })
}

impl Auth {
    /// The signed-in user's connections, without tokens.
    pub async fn connections(&self, tenant: &Tenant, caller: &Caller) -> Result<Vec<Connection>> {
        let user_id = user_of(caller)?;
        Ok(self.store.connections(&tenant.id, user_id).await?)
    }

    /// A user's provider tokens, for a backend holding a machine token with scope
    /// `connections` (a user's own token or an admin token is refused: provider tokens are
    /// for backends; a disabled account's → `FORBIDDEN`). An access token that has run out
    /// (or is about to) is refreshed
    /// first, once across every replica; without a refresh token it is returned as stored,
    /// its `expires_at` in the past.
    pub async fn connection_tokens(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        user_id: &str,
        provider: &str,
        origin: &Device,
    ) -> Result<ProviderTokens> {
        if !caller.has_scope(Scope::Connections) {
            return Err(Error::Forbidden(
                "provider tokens are for machine tokens with scope connections".into(),
            ));
        }
        // A disabled account's provider tokens are not handed out: nobody acts for it.
        match self.store.user_by_id(&tenant.id, user_id).await {
            Err(StoreError::NotFound) => return Err(Error::NotFound("user")),
            Ok(user) if user.disabled_at.is_some() => {
                return Err(Error::Forbidden("account disabled".into()));
            }
            other => drop(other?),
        }
        let stored = self.configured_provider(tenant, provider).await?;
        let mut connection = self.stored_connection(tenant, user_id, &stored).await?;
        let mut refreshed = false;
        if needs_refresh(&connection.connection, now_ms()) && connection.refresh_token.is_some() {
            let ready = self.prepare(stored).await?;
            let (fresh, old) = self
                .refresh_once(tenant, &ready, connection, Refresh::Expired, caller, origin)
                .await?;
            refreshed = old.is_some();
            connection = fresh;
        }
        let secrets = self.open_connection(&connection)?;
        self.store
            .audit(
                &tenant.id,
                AuditEvent {
                    action: AuditAction::ConnectionTokensIssued,
                    actor: Some(caller.actor()),
                    user_id: Some(user_id),
                    session_id: None,
                    ip: origin.ip.as_deref(),
                    user_agent: origin.user_agent.as_deref(),
                    detail: serde_json::json!({
                        "provider": provider, "refreshed": refreshed,
                    }),
                },
            )
            .await;
        Ok(ProviderTokens {
            access_token: secrets.access_token,
            refresh_token: secrets.refresh_token,
            expires_at: connection.connection.expires_at,
            scopes: connection.connection.scopes,
        })
    }

    /// The signed-in user's case of a leaked access token: a new one with the refresh
    /// token, then the old one revoked at the provider (RFC 7009, where it has a revocation
    /// endpoint; only the access token: revoking the refresh token would end the grant).
    /// The answer carries no token.
    pub async fn refresh_connection(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        provider: &str,
        origin: &Device,
    ) -> Result<Connection> {
        let user_id = user_of(caller)?;
        let stored = self.configured_provider(tenant, provider).await?;
        let connection = self.stored_connection(tenant, user_id, &stored).await?;
        if connection.refresh_token.is_none() {
            return Err(Error::Conflict(
                "this connection holds no refresh token: link the provider again".into(),
            ));
        }
        let ready = self.prepare(stored).await?;
        let (fresh, old) = self
            .refresh_once(tenant, &ready, connection, Refresh::Replace, caller, origin)
            .await?;
        if let Some(old) = old {
            // The new token is stored: a failed revocation leaves the old one to expire.
            if let Err(error) = self
                .revoke_at_provider(&ready, Revocable::Access(old))
                .await
            {
                tracing::warn!(provider, error = %error, "old provider access token not revoked");
            }
        }
        Ok(fresh.connection)
    }

    /// Remove the signed-in user's connection: its tokens revoked at the provider (the
    /// refresh token, which ends the grant, and the access token), then the row deleted.
    /// A provider that cannot be reached does not keep the connection.
    pub async fn unlink_connection(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        provider: &str,
        origin: &Device,
    ) -> Result<()> {
        let user_id = user_of(caller)?;
        let stored = self.configured_provider(tenant, provider).await?;
        let connection = self.stored_connection(tenant, user_id, &stored).await?;
        let ready = self.prepare(stored).await;
        let revoked = match &ready {
            Ok(ready) => self.revoke_connection(ready, &connection).await,
            Err(error) => {
                tracing::warn!(provider, error = %error, "provider tokens not revoked at unlink");
                false
            }
        };
        match self
            .store
            .delete_connection(
                &tenant.id,
                &connection.connection.id,
                AuditEvent {
                    action: AuditAction::ConnectionUnlinked,
                    actor: Some(caller.actor()),
                    user_id: Some(user_id),
                    session_id: None,
                    ip: origin.ip.as_deref(),
                    user_agent: origin.user_agent.as_deref(),
                    detail: serde_json::json!({ "provider": provider, "revoked": revoked }),
                },
            )
            .await
        {
            Err(StoreError::NotFound) => Err(Error::NotFound("connection")),
            other => Ok(other?),
        }
    }

    /// Link a provider account to the signed-in user (a code from a flow started with
    /// `startOAuth`): its tokens stored as a connection, and the account becomes a way to
    /// sign in. `CONFLICT` when the provider account belongs to, or is connected to,
    /// another user.
    pub async fn link_connection(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        input: CompleteOAuth<'_>,
        origin: &Device,
    ) -> Result<Connection> {
        let user_id = user_of(caller)?.to_owned();
        let exchanged = self
            .exchange(
                tenant,
                input.provider,
                input.code,
                input.state,
                input.redirect_url,
            )
            .await?;
        let provider = &exchanged.ready.provider;
        let issuer = provider.identity_issuer();
        let owner = self
            .store
            .identity_user(&tenant.id, &issuer, &exchanged.profile.subject)
            .await?;
        if owner.as_deref().is_some_and(|owner| owner != user_id) {
            return Err(Error::Conflict(
                "this provider account belongs to another user".into(),
            ));
        }
        let identity = NewIdentity {
            issuer: &issuer,
            subject: &exchanged.profile.subject,
            provider: &provider.name,
            email: exchanged.profile.email.as_deref(),
        };
        let write = self.connection_write(tenant, &user_id, &exchanged).await?;
        let audit = AuditEvent {
            action: AuditAction::ConnectionLinked,
            actor: Some(caller.actor()),
            user_id: Some(&user_id),
            session_id: None,
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: serde_json::json!({ "provider": provider.name }),
        };
        match self
            .store
            .link_connection(&write, owner.is_none().then_some(&identity), audit)
            .await
        {
            Err(StoreError::Conflict(_)) => {
                return Err(Error::Conflict(
                    "this provider account is connected to another user".into(),
                ));
            }
            other => other?,
        }
        let stored = self
            .store
            .connection(&tenant.id, &user_id, &provider.id)
            .await?
            .ok_or(Error::NotFound("connection"))?;
        Ok(stored.connection)
    }

    /// Every connection of a user with its sealed tokens, read before the account goes
    /// (for [`Auth::revoke_connections`] after); none when they cannot be read.
    pub(in crate::service) async fn sealed_connections(
        &self,
        tenant: &Tenant,
        user_id: &str,
    ) -> Vec<(StoredConnection, StoredProvider)> {
        let connections = match self
            .store
            .user_connections_sealed(&tenant.id, user_id)
            .await
        {
            Ok(all) => all,
            Err(error) => {
                tracing::warn!(error = %error, "connections not read for revocation");
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for connection in connections {
            match self
                .store
                .provider_by_id(&tenant.id, &connection.connection.provider_id)
                .await
            {
                Ok(Some(provider)) => found.push((connection, provider)),
                Ok(None) => {}
                Err(error) => tracing::warn!(error = %error, "provider not read for revocation"),
            }
        }
        found
    }

    /// Revoke, as far as each provider lets, the tokens of connections whose rows are
    /// gone (a deleted account). Best effort: failures are logged. The providers are asked
    /// at once, so a deletion waits on the slowest of them, not on their sum.
    pub(in crate::service) async fn revoke_connections(
        &self,
        tenant: &Tenant,
        connections: Vec<(StoredConnection, StoredProvider)>,
    ) {
        let revoking = connections.into_iter().map(|(connection, provider)| async move {
            let name = provider.provider.name.clone();
            match self.prepare(provider).await {
                Ok(ready) => {
                    let revoked = self.revoke_connection(&ready, &connection).await;
                    tracing::info!(tenant = %tenant.slug, provider = %name, revoked, "deleted account's provider tokens revoked");
                }
                Err(error) => {
                    tracing::warn!(provider = %name, error = %error, "provider tokens not revoked");
                }
            }
        });
        futures_util::future::join_all(revoking).await;
    }

    /// The tenant's provider called `name`, enabled or not (a disabled provider offers no
    /// sign-in, but its connections stay usable and removable).
    async fn configured_provider(&self, tenant: &Tenant, name: &str) -> Result<StoredProvider> {
        self.store
            .provider_by_name(&tenant.id, name)
            .await?
            .ok_or(Error::NotFound("provider"))
    }

    async fn stored_connection(
        &self,
        tenant: &Tenant,
        user_id: &str,
        provider: &StoredProvider,
    ) -> Result<StoredConnection> {
        self.store
            .connection(&tenant.id, user_id, &provider.provider.id)
            .await?
            .ok_or(Error::NotFound("connection"))
    }

    /// The connection's tokens, opened.
    fn open_connection(&self, connection: &StoredConnection) -> Result<ConnectionSecrets> {
        let id = &connection.connection.id;
        let open = |context: String, sealed: &str| {
            self.master
                .open(&context, sealed)
                .and_then(|plain| String::from_utf8(plain).ok())
                .ok_or_else(|| anyhow::anyhow!("sealed provider token cannot be opened"))
        };
        Ok(ConnectionSecrets {
            access_token: open(access_context(id), &connection.access_token)?,
            refresh_token: connection
                .refresh_token
                .as_deref()
                .map(|sealed| open(refresh_context(id), sealed))
                .transpose()?,
        })
    }

    /// Refresh under the row claim, once across every replica. Returns the connection as
    /// it now is and, when this call did the refresh, the access token it replaced. A
    /// caller that finds the claim taken waits for the claimant's tokens (for
    /// [`Refresh::Expired`]) or for the claim to end and then refreshes itself (for
    /// [`Refresh::Replace`], which must replace the token it was asked about).
    async fn refresh_once(
        &self,
        tenant: &Tenant,
        ready: &Ready,
        mut connection: StoredConnection,
        why: Refresh,
        caller: &Caller,
        origin: &Device,
    ) -> Result<(StoredConnection, Option<String>)> {
        let id = connection.connection.id.clone();
        let seen = connection.connection.updated_at;
        let deadline = tokio::time::Instant::now() + WAIT_FOR_REFRESH;
        loop {
            if self
                .store
                .claim_connection_refresh(&id, now_ms() + CLAIM_MS)
                .await?
            {
                // Another replica may have stored new tokens between our read and the claim.
                connection = self.reread(tenant, &connection).await?;
                if why == Refresh::Expired && connection.connection.updated_at != seen {
                    self.store.release_connection_refresh(&id).await?;
                    return Ok((connection, None));
                }
                let result = self
                    .refresh_claimed(tenant, ready, &connection, why, caller, origin)
                    .await;
                if result.is_err() {
                    self.store.release_connection_refresh(&id).await?;
                }
                return result;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(provider_error(
                    &ready.provider.name,
                    "a refresh of this connection is taking too long; try again",
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            connection = self.reread(tenant, &connection).await?;
            if why == Refresh::Expired && connection.connection.updated_at != seen {
                // Someone else refreshed: theirs is the fresh token.
                return Ok((connection, None));
            }
        }
    }

    async fn reread(
        &self,
        tenant: &Tenant,
        connection: &StoredConnection,
    ) -> Result<StoredConnection> {
        let c = &connection.connection;
        self.store
            .connection(&tenant.id, &c.user_id, &c.provider_id)
            .await?
            .filter(|again| again.connection.id == c.id)
            .ok_or(Error::NotFound("connection"))
    }

    /// The refresh itself, the claim held: the provider's new tokens stored in the row
    /// (which releases the claim), with an audit event.
    async fn refresh_claimed(
        &self,
        tenant: &Tenant,
        ready: &Ready,
        connection: &StoredConnection,
        why: Refresh,
        caller: &Caller,
        origin: &Device,
    ) -> Result<(StoredConnection, Option<String>)> {
        let name = &ready.provider.name;
        let secrets = self.open_connection(connection)?;
        let refresh_token = secrets
            .refresh_token
            .ok_or_else(|| Error::Conflict("this connection holds no refresh token".into()))?;
        let client = ready.client(None)?;
        let refresh_token = oauth2::RefreshToken::new(refresh_token);
        let mut exchange = client.exchange_refresh_token(&refresh_token);
        for (param, value) in
            super::quirks::token_params(ready.provider.kind, &ready.provider.client_id)
        {
            exchange = exchange.add_extra_param(param, value);
        }
        let tokens = exchange
            .request_async(&self.oauth.outbound)
            .await
            .map_err(|e| token_error(name, e))?;
        let c = &connection.connection;
        let scopes = tokens
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_else(|| c.scopes.clone());
        let write = ConnectionWrite {
            access_token: self.master.seal(
                &access_context(&c.id),
                tokens.access_token().secret().as_bytes(),
            ),
            // A provider that rotates refresh tokens sends a new one; else the old is kept.
            refresh_token: tokens.refresh_token().map(|r| {
                self.master
                    .seal(&refresh_context(&c.id), r.secret().as_bytes())
            }),
            expires_at: tokens.expires_in().map(|d| now_ms() + d.as_millis() as i64),
            id: c.id.clone(),
            tenant_id: tenant.id.clone(),
            user_id: c.user_id.clone(),
            provider_id: c.provider_id.clone(),
            subject: c.subject.clone(),
            email: c.email.clone(),
            scopes,
        };
        let reason = match why {
            Refresh::Expired => "expired",
            Refresh::Replace => "replace",
        };
        let audit = AuditEvent {
            action: AuditAction::ConnectionRefreshed,
            actor: Some(caller.actor()),
            user_id: Some(&c.user_id),
            session_id: None,
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: serde_json::json!({ "provider": name, "reason": reason }),
        };
        match self
            .store
            .store_refreshed_connection(&write, Some(audit))
            .await
        {
            Err(StoreError::NotFound) => return Err(Error::NotFound("connection")),
            other => other?,
        }
        let fresh = self.reread(tenant, connection).await?;
        Ok((fresh, Some(secrets.access_token)))
    }

    /// Revoke a connection's tokens at the provider: the refresh token (which ends the
    /// grant at providers that follow RFC 7009 §2.1) and the access token. Whether the
    /// provider took every one; failures are logged, never fatal.
    async fn revoke_connection(&self, ready: &Ready, connection: &StoredConnection) -> bool {
        let name = &ready.provider.name;
        let secrets = match self.open_connection(connection) {
            Ok(secrets) => secrets,
            Err(error) => {
                tracing::warn!(provider = %name, error = %error, "provider tokens not opened");
                return false;
            }
        };
        let mut tokens = Vec::new();
        if let Some(refresh) = secrets.refresh_token {
            tokens.push(Revocable::Refresh(refresh));
        }
        tokens.push(Revocable::Access(secrets.access_token));
        let mut all = true;
        for token in tokens {
            match self.revoke_at_provider(ready, token).await {
                Ok(true) => {}
                Ok(false) => return false,
                Err(error) => {
                    tracing::warn!(provider = %name, error = %error, "provider token not revoked");
                    all = false;
                }
            }
        }
        all
    }

    /// RFC 7009 revocation of one token; `false` when the provider has no revocation
    /// endpoint. Sent through the outbound client (its https and SSRF rules apply; the
    /// oauth2 crate's own revocation request refuses http, which the loopback test provider
    /// speaks), with the client authenticated as at the token endpoint (HTTP Basic with the
    /// form-encoded id and secret, RFC 6749 §2.3.1; the id in the body for a public client;
    /// both in the body for Apple and TikTok, TikTok's id as `client_key`).
    async fn revoke_at_provider(&self, ready: &Ready, token: Revocable) -> Result<bool> {
        use base64::Engine as _;
        let name = &ready.provider.name;
        let Some(url) = ready.endpoints.revocation.as_deref() else {
            return Ok(false);
        };
        let (value, hint) = match &token {
            Revocable::Access(value) => (value, "access_token"),
            Revocable::Refresh(value) => (value, "refresh_token"),
        };
        let mut form = vec![("token", value.as_str()), ("token_type_hint", hint)];
        let mut request = http::Request::post(url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json");
        let encode =
            |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        let in_body = super::quirks::credentials_in_body(ready.provider.kind);
        match &ready.secret {
            Some(secret) if in_body => {
                form.push((
                    super::quirks::client_id_param(ready.provider.kind),
                    &ready.provider.client_id,
                ));
                form.push(("client_secret", secret));
            }
            Some(secret) => {
                let pair = format!("{}:{}", encode(&ready.provider.client_id), encode(secret));
                request = request.header(
                    http::header::AUTHORIZATION,
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ),
                );
            }
            None => {
                form.push((
                    super::quirks::client_id_param(ready.provider.kind),
                    &ready.provider.client_id,
                ));
            }
        }
        let request = request
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish()
                    .into_bytes(),
            )
            .map_err(|e| provider_error(name, format!("malformed revocation endpoint: {e}")))?;
        let response = self.oauth.outbound.send(request).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(provider_error(
                name,
                format!("revocation answered {status}"),
            ));
        }
        Ok(true)
    }
}

/// A token to revoke.
enum Revocable {
    /// An access token.
    Access(String),
    /// A refresh token (revoking it ends the grant at most providers).
    Refresh(String),
}
