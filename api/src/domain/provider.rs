//! OAuth2 / OpenID Connect providers a tenant signs people in with, and the connections
//! (a user's tokens at a provider) that backends use.

use serde::{Deserialize, Serialize};

use super::Millis;

/// What kind of provider: a standard OpenID Connect issuer, a plain OAuth2 server with
/// explicit endpoints, or a preset that fills endpoints and scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProviderKind {
    /// Any OpenID Connect issuer, found by discovery.
    Oidc,
    /// A plain OAuth2 server: explicit endpoints, the user from a userinfo endpoint.
    Oauth2,
    /// Google (OpenID Connect).
    Google,
    /// Apple (OpenID Connect).
    Apple,
    /// GitHub (OAuth2).
    Github,
    /// Microsoft Entra (OpenID Connect).
    Microsoft,
    /// Discord (OAuth2).
    Discord,
    /// Twitch (OpenID Connect).
    Twitch,
    /// TikTok (OAuth2).
    Tiktok,
}

impl ProviderKind {
    /// Every kind.
    pub const ALL: [ProviderKind; 9] = [
        Self::Oidc,
        Self::Oauth2,
        Self::Google,
        Self::Apple,
        Self::Github,
        Self::Microsoft,
        Self::Discord,
        Self::Twitch,
        Self::Tiktok,
    ];

    /// The name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Oauth2 => "oauth2",
            Self::Google => "google",
            Self::Apple => "apple",
            Self::Github => "github",
            Self::Microsoft => "microsoft",
            Self::Discord => "discord",
            Self::Twitch => "twitch",
            Self::Tiktok => "tiktok",
        }
    }

    /// The kind stored as `raw`.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// The name shown on a sign-in button when the admin gives none.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Oidc => "OpenID Connect",
            Self::Oauth2 => "OAuth2",
            Self::Google => "Google",
            Self::Apple => "Apple",
            Self::Github => "GitHub",
            Self::Microsoft => "Microsoft",
            Self::Discord => "Discord",
            Self::Twitch => "Twitch",
            Self::Tiktok => "TikTok",
        }
    }

    /// Whether the provider speaks OpenID Connect (id_tokens, discovery).
    pub fn is_oidc(self) -> bool {
        matches!(
            self,
            Self::Oidc | Self::Google | Self::Apple | Self::Microsoft | Self::Twitch
        )
    }
}

/// The endpoints of a provider: given explicitly (plain OAuth2, presets without discovery)
/// or found by discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Where the person is sent to sign in.
    pub authorization: Option<String>,
    /// Where codes and refresh tokens are exchanged.
    pub token: Option<String>,
    /// Who the access token belongs to.
    pub userinfo: Option<String>,
    /// RFC 7009 token revocation.
    pub revocation: Option<String>,
    /// The provider's signing keys (OpenID Connect).
    pub jwks: Option<String>,
}

/// A tenant's configured provider. The client secret is not here: it stays sealed in the
/// store and is opened only for a call to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Internal id (the sealed secret's associated data).
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// The name every operation calls `provider`.
    pub name: String,
    /// Kind.
    pub kind: ProviderKind,
    /// Shown on the sign-in button.
    pub display_name: String,
    /// OpenID Connect issuer (exact `iss`), or the identity namespace of a plain OAuth2 server.
    pub issuer: Option<String>,
    /// Explicit endpoints (discovery fills the missing ones for OpenID Connect).
    pub endpoints: Endpoints,
    /// OAuth2 client id.
    pub client_id: String,
    /// More client ids accepted as `aud` of id_tokens (a mobile app's own client id).
    pub extra_client_ids: Vec<String>,
    /// Whether a client secret is set (the secret itself is never returned).
    pub has_client_secret: bool,
    /// Apple: the team id, `iss` of the client-secret JWT signed with the sealed key.
    pub team_id: Option<String>,
    /// Apple: the key id, `kid` of the client-secret JWT.
    pub key_id: Option<String>,
    /// Scopes asked for by default.
    pub scopes: Vec<String>,
    /// Frontend callback URLs, matched exactly.
    pub redirect_urls: Vec<String>,
    /// Whether people may sign in with it.
    pub enabled: bool,
    /// Created.
    pub created_at: Millis,
    /// Last changed.
    pub updated_at: Millis,
}

impl Provider {
    /// The namespace provider subjects live in: users are keyed by (tenant, this, subject).
    pub fn identity_issuer(&self) -> String {
        self.issuer
            .clone()
            .or_else(|| self.endpoints.authorization.clone())
            .unwrap_or_else(|| format!("provider:{}", self.id))
    }
}

/// A user's tokens at a provider, without the tokens (see [`ConnectionSecrets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Internal id (the sealed tokens' associated data).
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// User.
    pub user_id: String,
    /// The provider's id.
    pub provider_id: String,
    /// The provider's name.
    pub provider: String,
    /// The provider account's subject.
    pub subject: String,
    /// The provider account's email, as the provider said.
    pub email: Option<String>,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// When the access token expires, if the provider said.
    pub expires_at: Option<Millis>,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// Created.
    pub created_at: Millis,
    /// Last changed (tokens stored or refreshed).
    pub updated_at: Millis,
}

/// A connection's provider tokens, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSecrets {
    /// Access token.
    pub access_token: String,
    /// Refresh token, if any.
    pub refresh_token: Option<String>,
}
