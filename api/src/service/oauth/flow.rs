//! The authorization-code flow with PKCE (`startOAuth`, `completeOAuth`) and native
//! id_token sign-in (`signInWithIdToken`). Everything the provider says is fetched and
//! checked before anything is written, so a failure leaves no user, session or connection.
//!
//! Users are keyed by (tenant, provider issuer, provider subject). A new identity joins an
//! existing account only when the provider marks the email verified and the account's
//! address is proven through our own mail; otherwise `CONFLICT`. Accounts created here
//! keep the provider's address unproven: only our own mail proves an address, so a
//! provider that vouches carelessly for emails cannot make the way into another account.

use oauth2::{CsrfToken, PkceCodeChallenge, PkceCodeVerifier, TokenResponse as _};
use serde::{Deserialize, Serialize};

use super::jwks::{Expect, IdClaims};
use super::{Auth, Error, Ready, Result, TokenResponse, provider_error};
use crate::crypto;
use crate::domain::{AuditAction, Device, Email, SignInMethod, Tenant, User, new_id, now_ms};
use crate::service::Issued;
use crate::service::tokens::OAuthSignIn;
use crate::store::StoreError;
use crate::store::connections::{ConnectionWrite, NewIdentity};
use crate::store::providers::OAuthState;

/// How long a started sign-in may take.
const STATE_TTL_MS: i64 = 10 * 60 * 1000;

const BAD_STATE: Error =
    Error::WrongSecret("the sign-in state is unknown, used, expired or not for this request");

/// `startOAuth`'s answer.
#[derive(Debug, Clone)]
pub struct OAuthStart {
    /// Where to send the person.
    pub authorization_url: String,
    /// The state the provider hands back with the code.
    pub state: String,
}

/// What is sealed with a state.
#[derive(Serialize, Deserialize)]
struct StateSecrets {
    verifier: String,
    nonce: Option<String>,
}

/// Who signed in at the provider.
#[derive(Debug, Clone)]
pub(super) struct Profile {
    pub(super) subject: String,
    pub(super) email: Option<String>,
    pub(super) email_verified: bool,
    pub(super) name: Option<String>,
}

/// A code exchanged: who signed in and the provider's tokens.
pub(super) struct Exchanged {
    pub(super) ready: Ready,
    pub(super) profile: Profile,
    pub(super) tokens: TokenResponse,
    pub(super) scopes: Vec<String>,
}

fn state_context(id: &str) -> String {
    format!("oauth_states:{id}")
}

fn redirect_field() -> Error {
    Error::BadField {
        field: "input.redirectUrl".into(),
        message: "redirectUrl is not one of the provider's redirect URLs".into(),
    }
}

impl Auth {
    /// Start a sign-in: the authorization URL (state, PKCE S256, and a nonce for OpenID
    /// Connect) for `redirect_url`, which must be one of the provider's, exactly.
    pub async fn start_oauth(
        &self,
        tenant: &Tenant,
        provider: &str,
        redirect_url: &str,
        scopes: Option<Vec<String>>,
    ) -> Result<OAuthStart> {
        let stored = self.enabled_provider(&tenant.id, provider).await?;
        if !stored
            .provider
            .redirect_urls
            .iter()
            .any(|u| u == redirect_url)
        {
            return Err(redirect_field());
        }
        let ready = self.prepare(stored).await?;
        let kind = ready.provider.kind;
        let mut scopes = scopes.unwrap_or_else(|| ready.provider.scopes.clone());
        if scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(Error::BadField {
                field: "input.scopes".into(),
                message: "a scope is one word".into(),
            });
        }
        if kind.is_oidc() && !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        let offline = scopes.iter().any(|s| s == "offline_access");
        let client = ready.client(Some(redirect_url))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = crypto::random_token(32);
        let nonce = kind.is_oidc().then(|| crypto::random_token(32));
        let google = kind == crate::domain::ProviderKind::Google;
        let mut request = client
            .authorize_url(|| CsrfToken::new(state.clone()))
            .set_pkce_challenge(challenge);
        for scope in &scopes {
            // Google asks for offline access with access_type=offline instead.
            if google && scope == "offline_access" {
                continue;
            }
            request = request.add_scope(oauth2::Scope::new(scope.clone()));
        }
        if let Some(nonce) = &nonce {
            request = request.add_extra_param("nonce", nonce.clone());
        }
        if offline {
            // OpenID Connect Core §11: refresh tokens for offline_access need consent.
            request = request.add_extra_param("prompt", "consent");
            if google {
                request = request.add_extra_param("access_type", "offline");
            }
        }
        let (url, _) = request.url();
        let url = super::quirks::authorization_url(kind, url, &scopes);
        let id = new_id();
        let secrets = StateSecrets {
            verifier: verifier.secret().clone(),
            nonce,
        };
        let sealed = self.master.seal(
            &state_context(&id),
            &serde_json::to_vec(&secrets).map_err(anyhow::Error::from)?,
        );
        self.store
            .insert_oauth_state(
                &OAuthState {
                    id,
                    tenant_id: tenant.id.clone(),
                    provider_id: ready.provider.id.clone(),
                    redirect_url: redirect_url.to_owned(),
                    secrets: sealed,
                    scopes,
                    expires_at: now_ms() + STATE_TTL_MS,
                },
                &crypto::token_hash(&state),
            )
            .await?;
        Ok(OAuthStart {
            authorization_url: url.to_string(),
            state,
        })
    }

    /// Spend the state, exchange the code and find out who signed in; nothing written
    /// but the spent state.
    pub(super) async fn exchange(
        &self,
        tenant: &Tenant,
        provider: &str,
        code: &str,
        state: &str,
        redirect_url: &str,
    ) -> Result<Exchanged> {
        let stored = self.enabled_provider(&tenant.id, provider).await?;
        if !stored
            .provider
            .redirect_urls
            .iter()
            .any(|u| u == redirect_url)
        {
            return Err(redirect_field());
        }
        let taken = self
            .store
            .take_oauth_state(&crypto::token_hash(state))
            .await?
            .ok_or(BAD_STATE)?;
        if taken.tenant_id != tenant.id
            || taken.provider_id != stored.provider.id
            || taken.redirect_url != redirect_url
            || taken.expires_at < now_ms()
        {
            return Err(BAD_STATE);
        }
        let secrets: StateSecrets = self
            .master
            .open(&state_context(&taken.id), &taken.secrets)
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .ok_or_else(|| anyhow::anyhow!("sealed OAuth state cannot be opened"))?;
        let ready = self.prepare(stored).await?;
        let client = ready.client(Some(redirect_url))?;
        let mut exchange = client
            .exchange_code(oauth2::AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(secrets.verifier));
        for (name, value) in
            super::quirks::token_params(ready.provider.kind, &ready.provider.client_id)
        {
            exchange = exchange.add_extra_param(name, value);
        }
        let tokens = exchange
            .request_async(&self.oauth.outbound)
            .await
            .map_err(|e| token_error(&ready.provider.name, e))?;
        let profile = self
            .profile(&ready, &tokens, secrets.nonce.as_deref())
            .await?;
        let scopes = tokens
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or(taken.scopes);
        Ok(Exchanged {
            ready,
            profile,
            tokens,
            scopes,
        })
    }

    /// Who signed in: the id_token (OpenID Connect; its nonce must be ours), and userinfo
    /// when it carries no email or the provider is plain OAuth2.
    async fn profile(
        &self,
        ready: &Ready,
        tokens: &TokenResponse,
        nonce: Option<&str>,
    ) -> Result<Profile> {
        let name = &ready.provider.name;
        let mut profile = None;
        if ready.provider.kind.is_oidc() {
            let id_token = tokens
                .extra_fields()
                .id_token
                .as_deref()
                .ok_or_else(|| provider_error(name, "the token answer has no id_token"))?;
            let claims = self.verify_id_token(ready, id_token).await?;
            if claims.nonce.as_deref() != nonce {
                return Err(Error::WrongSecret("the id_token is invalid"));
            }
            profile = Some(profile_of(claims));
        }
        let needs_userinfo = profile.as_ref().is_none_or(|p| p.email.is_none());
        if needs_userinfo && let Some(url) = &ready.endpoints.userinfo {
            let (status, info) = self
                .oauth
                .outbound
                .get_json(url, Some(tokens.access_token().secret()))
                .await?;
            if !status.is_success() || !info.is_object() {
                return Err(provider_error(name, format!("userinfo answered {status}")));
            }
            let mut from_info = userinfo_profile(&info)
                .ok_or_else(|| provider_error(name, "userinfo names no subject"))?;
            if ready.provider.kind == crate::domain::ProviderKind::Github {
                self.github_email(tokens.access_token().secret(), &mut from_info)
                    .await;
            }
            profile = Some(match profile {
                // OpenID Connect Core §5.3.2: userinfo's sub must be the id_token's.
                Some(p) if p.subject != from_info.subject => {
                    return Err(provider_error(name, "userinfo is about another subject"));
                }
                Some(p) => Profile {
                    email: from_info.email,
                    email_verified: from_info.email_verified,
                    name: p.name.or(from_info.name),
                    ..p
                },
                None => from_info,
            });
        }
        profile.ok_or_else(|| provider_error(name, "no id_token and no userinfo endpoint"))
    }

    /// GitHub keeps addresses and their verification behind `/user/emails`: take the
    /// primary one if it is verified.
    async fn github_email(&self, access_token: &str, profile: &mut Profile) {
        let Ok((status, emails)) = self
            .oauth
            .outbound
            .get_json("https://api.github.com/user/emails", Some(access_token))
            .await
        else {
            return;
        };
        if !status.is_success() {
            return;
        }
        let primary = emails.as_array().and_then(|all| {
            all.iter()
                .find(|e| e["primary"].as_bool() == Some(true))
                .cloned()
        });
        if let Some(primary) = primary
            && let Some(address) = primary["email"].as_str()
        {
            profile.email = Some(address.to_owned());
            profile.email_verified = primary["verified"].as_bool() == Some(true);
        }
    }

    /// Check an id_token of this provider: signature against its JWKS, `iss`, `aud` among
    /// its client ids, `azp`, `exp`, `iat`.
    async fn verify_id_token(&self, ready: &Ready, token: &str) -> Result<IdClaims> {
        let name = &ready.provider.name;
        let jwks = ready
            .endpoints
            .jwks
            .as_deref()
            .ok_or_else(|| provider_error(name, "no JWKS endpoint"))?;
        let issuer = ready
            .provider
            .issuer
            .as_deref()
            .ok_or_else(|| provider_error(name, "no issuer"))?;
        let mut client_ids = vec![ready.provider.client_id.clone()];
        client_ids.extend(ready.provider.extra_client_ids.iter().cloned());
        self.oauth
            .jwks
            .verify(
                &self.oauth.outbound,
                jwks,
                token,
                &Expect {
                    issuer,
                    client_ids: &client_ids,
                },
            )
            .await
    }

    /// Finish a sign-in with the code the provider sent back: state checked and spent,
    /// code exchanged, the user found or created, a session started; with
    /// `upsert_connection` the provider tokens are stored as a connection in the session's
    /// transaction.
    pub async fn complete_oauth(
        &self,
        tenant: &Tenant,
        input: CompleteOAuth<'_>,
        origin: &Device,
    ) -> Result<Issued> {
        let mut exchanged = self
            .exchange(
                tenant,
                input.provider,
                input.code,
                input.state,
                input.redirect_url,
            )
            .await?;
        // Apple gives the name once, on the first sign-in, beside the code (not signed:
        // used only as the display name of an account created now).
        if exchanged.ready.provider.kind == crate::domain::ProviderKind::Apple
            && exchanged.profile.name.is_none()
            && let Some(user) = input.user
        {
            exchanged.profile.name = super::quirks::apple_user_name(user);
        }
        let (user, action) = self
            .user_for(
                tenant,
                &exchanged.ready,
                &exchanged.profile,
                SignInMethod::OAuth,
                origin,
            )
            .await?;
        let connection = if input.upsert_connection {
            Some(self.connection_write(tenant, &user.id, &exchanged).await?)
        } else {
            None
        };
        self.start_oauth_session(
            tenant,
            &exchanged.ready,
            user,
            SignInMethod::OAuth,
            action,
            origin,
            connection.as_ref(),
        )
        .await
    }

    /// Sign in with a provider's id_token (native Google or Apple sign-in): the same
    /// checks, `aud` among the provider's client ids, and the token's nonce equal to
    /// `nonce` or to its SHA-256 hex. Each token is accepted once (remembered, by the hash
    /// of its claims, until it expires): a second presentation is `INVALID_CREDENTIALS`.
    pub async fn sign_in_with_id_token(
        &self,
        tenant: &Tenant,
        provider: &str,
        id_token: &str,
        nonce: &str,
        origin: &Device,
    ) -> Result<Issued> {
        let stored = self.enabled_provider(&tenant.id, provider).await?;
        if !stored.provider.kind.is_oidc() {
            return Err(Error::BadField {
                field: "input.provider".into(),
                message: "this provider does not issue id_tokens".into(),
            });
        }
        if nonce.is_empty() {
            return Err(Error::BadField {
                field: "input.nonce".into(),
                message: "nonce is required".into(),
            });
        }
        let ready = self.prepare(stored).await?;
        let claims = self.verify_id_token(&ready, id_token).await?;
        let hashed = hex_sha256(nonce);
        match claims.nonce.as_deref() {
            Some(n)
                if crypto::constant_time_eq(n, nonce) || crypto::constant_time_eq(n, &hashed) => {}
            _ => return Err(Error::WrongSecret("the id_token is invalid")),
        }
        // Single use: a token that passed every check is spent, whatever follows.
        let spent_until = (claims.exp + super::jwks::LEEWAY as i64) * 1000;
        if !self
            .store
            .spend_id_token(&tenant.id, &payload_hash(id_token), spent_until)
            .await?
        {
            return Err(Error::WrongSecret("this id_token was used already"));
        }
        let profile = profile_of(claims);
        let (user, action) = self
            .user_for(tenant, &ready, &profile, SignInMethod::IdToken, origin)
            .await?;
        self.start_oauth_session(
            tenant,
            &ready,
            user,
            SignInMethod::IdToken,
            action,
            origin,
            None,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_oauth_session(
        &self,
        tenant: &Tenant,
        ready: &Ready,
        user: User,
        method: SignInMethod,
        action: AuditAction,
        origin: &Device,
        connection: Option<&ConnectionWrite>,
    ) -> Result<Issued> {
        let oauth = OAuthSignIn {
            provider: &ready.provider.name,
            connection,
        };
        match self
            .start_session_with(tenant, user, method, action, origin, None, Some(oauth))
            .await
        {
            Err(Error::Conflict(_)) => Err(Error::Conflict(
                "this provider account is connected to another user".into(),
            )),
            other => other,
        }
    }

    /// The user this provider identity signs in to: the one it belongs to; else an
    /// existing account it may join (provider-verified email and a proven address); else a
    /// new account (allow and deny lists apply). `CONFLICT` when an account holds the email
    /// but may not be joined.
    async fn user_for(
        &self,
        tenant: &Tenant,
        ready: &Ready,
        profile: &Profile,
        method: SignInMethod,
        origin: &Device,
    ) -> Result<(User, AuditAction)> {
        let issuer = ready.provider.identity_issuer();
        if let Some(user_id) = self
            .store
            .identity_user(&tenant.id, &issuer, &profile.subject)
            .await?
        {
            let user = self.store.user_by_id(&tenant.id, &user_id).await?;
            return Ok((user, AuditAction::UserSignIn));
        }
        let email = profile.email.as_deref().and_then(|e| Email::parse(e).ok());
        let identity = NewIdentity {
            issuer: &issuer,
            subject: &profile.subject,
            provider: &ready.provider.name,
            email: email.as_ref().map(Email::as_str),
        };
        if let Some(email) = &email
            && let Some(owner) = self.store.user_by_email(&tenant.id, email).await?
        {
            if !(profile.email_verified && owner.verified) {
                return Err(Error::Conflict(
                    "an account with this email exists: sign in to it (an email code \
                     secures an unverified account) and link this provider from there"
                        .into(),
                ));
            }
            // A disabled account is refused before it gains a way in.
            self.refuse_disabled(tenant, &owner.user, method, origin)
                .await?;
            return match self
                .store
                .add_identity(&tenant.id, &owner.user.id, &identity)
                .await
            {
                Ok(()) => Ok((owner.user, AuditAction::UserSignIn)),
                Err(StoreError::Conflict(_)) => Err(Error::Conflict(
                    "this provider account signed in meanwhile; try again".into(),
                )),
                Err(other) => Err(other.into()),
            };
        }
        match &email {
            Some(email) => self.check_lists(tenant, email)?,
            None if !tenant.settings.allow_list.is_empty() => {
                return Err(Error::Forbidden(
                    "this provider gave no email address, and this tenant admits only listed ones"
                        .into(),
                ));
            }
            None => {}
        }
        let name = profile
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| {
                !n.is_empty() && n.chars().count() <= 100 && !n.chars().any(char::is_control)
            })
            .map(str::to_owned);
        // The address is kept unproven (see the module doc).
        match self
            .store
            .create_identity_user(
                &tenant.id,
                email.as_ref().map(|e| (e.as_str(), false)),
                name,
                &identity,
            )
            .await
        {
            Ok(user) => Ok((user, AuditAction::UserSignUp)),
            Err(StoreError::Conflict(_)) => Err(Error::Conflict(
                "an account with this email or provider account was created meanwhile; try again"
                    .into(),
            )),
            Err(other) => Err(other.into()),
        }
    }

    /// The provider tokens of `exchanged` sealed for the user's connection (its existing
    /// row's id, so the tokens are replaced).
    pub(super) async fn connection_write(
        &self,
        tenant: &Tenant,
        user_id: &str,
        exchanged: &Exchanged,
    ) -> Result<ConnectionWrite> {
        let provider = &exchanged.ready.provider;
        let id = self
            .store
            .connection(&tenant.id, user_id, &provider.id)
            .await?
            .map(|c| c.connection.id)
            .unwrap_or_else(new_id);
        let tokens = &exchanged.tokens;
        Ok(ConnectionWrite {
            access_token: self.master.seal(
                &super::connections::access_context(&id),
                tokens.access_token().secret().as_bytes(),
            ),
            refresh_token: tokens.refresh_token().map(|r| {
                self.master.seal(
                    &super::connections::refresh_context(&id),
                    r.secret().as_bytes(),
                )
            }),
            expires_at: tokens.expires_in().map(|d| now_ms() + d.as_millis() as i64),
            id,
            tenant_id: tenant.id.clone(),
            user_id: user_id.to_owned(),
            provider_id: provider.id.clone(),
            subject: exchanged.profile.subject.clone(),
            email: exchanged.profile.email.clone(),
            scopes: exchanged.scopes.clone(),
        })
    }
}

/// `completeOAuth`'s input.
#[derive(Debug, Clone, Copy)]
pub struct CompleteOAuth<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// The code from the redirect.
    pub code: &'a str,
    /// The state from the redirect.
    pub state: &'a str,
    /// The redirect URL the sign-in was started with.
    pub redirect_url: &'a str,
    /// Store the provider tokens as a connection.
    pub upsert_connection: bool,
    /// Apple's `user` form field (JSON with the name), posted on the first sign-in only.
    pub user: Option<&'a str>,
}

fn profile_of(claims: IdClaims) -> Profile {
    Profile {
        subject: claims.sub,
        email_verified: claims.email.is_some()
            && claims.email_verified.as_ref().is_some_and(|v| v.is_true()),
        email: claims.email,
        name: claims.name,
    }
}

/// The subject and email of a userinfo answer: OpenID Connect's `sub`, or `id` (GitHub,
/// Discord), or TikTok's `data.user.open_id`.
fn userinfo_profile(info: &serde_json::Value) -> Option<Profile> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let subject = text(&info["sub"])
        .or_else(|| text(&info["id"]))
        .or_else(|| text(&info["data"]["user"]["open_id"]))?;
    let email = info["email"].as_str().map(str::to_owned);
    let verified = info["email_verified"]
        .as_bool()
        .or(info["email_verified"]
            .as_str()
            .map(|s| s.eq_ignore_ascii_case("true")))
        // Discord's name for it.
        .or(info["verified"].as_bool())
        .unwrap_or(false);
    let name = info["name"]
        .as_str()
        .or(info["display_name"].as_str())
        .or(info["data"]["user"]["display_name"].as_str())
        .map(str::to_owned);
    Some(Profile {
        subject,
        email_verified: email.is_some() && verified,
        email,
        name,
    })
}

/// The SHA-256 hex of an id_token's decoded payload (the claims its signature covers), so a
/// token whose signature was re-encoded (ECDSA's other valid `s`) is still the same token.
/// Only called on a token that verified, so its payload decodes.
fn payload_hash(id_token: &str) -> String {
    use base64::Engine as _;
    let payload = id_token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .unwrap_or_else(|_| id_token.as_bytes().to_vec());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_sha256(value: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A failed code or refresh exchange: the provider's refusal is the client's (a wrong or
/// replayed code), anything else the provider's.
pub(super) fn token_error<E: std::error::Error + 'static>(
    provider: &str,
    error: oauth2::RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> Error {
    match error {
        oauth2::RequestTokenError::ServerResponse(answer) => {
            tracing::info!(provider, error = %answer.error(), "provider refused a grant");
            Error::WrongSecret("the provider refused the code or refresh token")
        }
        oauth2::RequestTokenError::Request(e) => provider_error(provider, e),
        oauth2::RequestTokenError::Parse(_, _) => {
            provider_error(provider, "its token answer is malformed")
        }
        oauth2::RequestTokenError::Other(e) => provider_error(provider, e),
    }
}
