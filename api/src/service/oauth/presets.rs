//! What each provider kind fills in when the admin leaves it out: the issuer (OpenID
//! Connect presets), endpoints (OAuth2 presets) and default scopes.

use crate::domain::{Endpoints, ProviderKind};

/// A kind's defaults.
pub(super) struct Preset {
    pub(super) issuer: Option<&'static str>,
    pub(super) endpoints: [Option<&'static str>; 4],
    pub(super) scopes: &'static [&'static str],
}

impl Preset {
    /// The endpoints, as configuration.
    pub(super) fn endpoints(&self) -> Endpoints {
        let [authorization, token, userinfo, revocation] =
            self.endpoints.map(|e| e.map(str::to_owned));
        Endpoints {
            authorization,
            token,
            userinfo,
            revocation,
            jwks: None,
        }
    }
}

/// The defaults of `kind`.
pub(super) fn preset(kind: ProviderKind) -> Preset {
    const OIDC: &[&str] = &["openid", "email", "profile"];
    match kind {
        ProviderKind::Oidc | ProviderKind::Microsoft => Preset {
            // Microsoft: the issuer names the Entra tenant
            // (https://login.microsoftonline.com/<tenant id>/v2.0), so it must be given.
            issuer: None,
            endpoints: [None; 4],
            scopes: OIDC,
        },
        ProviderKind::Oauth2 => Preset {
            issuer: None,
            endpoints: [None; 4],
            scopes: &[],
        },
        ProviderKind::Google => Preset {
            issuer: Some("https://accounts.google.com"),
            endpoints: [None; 4],
            scopes: OIDC,
        },
        ProviderKind::Apple => Preset {
            issuer: Some("https://appleid.apple.com"),
            endpoints: [None; 4],
            scopes: &["openid", "email", "name"],
        },
        ProviderKind::Twitch => Preset {
            issuer: Some("https://id.twitch.tv/oauth2"),
            endpoints: [None, None, None, Some("https://id.twitch.tv/oauth2/revoke")],
            scopes: &["openid", "user:read:email"],
        },
        ProviderKind::Github => Preset {
            issuer: Some("https://github.com"),
            endpoints: [
                Some("https://github.com/login/oauth/authorize"),
                Some("https://github.com/login/oauth/access_token"),
                Some("https://api.github.com/user"),
                None,
            ],
            scopes: &["read:user", "user:email"],
        },
        ProviderKind::Discord => Preset {
            issuer: Some("https://discord.com"),
            endpoints: [
                Some("https://discord.com/oauth2/authorize"),
                Some("https://discord.com/api/oauth2/token"),
                Some("https://discord.com/api/users/@me"),
                Some("https://discord.com/api/oauth2/token/revoke"),
            ],
            scopes: &["identify", "email"],
        },
        ProviderKind::Tiktok => Preset {
            issuer: Some("https://www.tiktok.com"),
            endpoints: [
                Some("https://www.tiktok.com/v2/auth/authorize/"),
                Some("https://open.tiktokapis.com/v2/oauth/token/"),
                Some("https://open.tiktokapis.com/v2/user/info/?fields=open_id,display_name"),
                Some("https://open.tiktokapis.com/v2/oauth/revoke/"),
            ],
            scopes: &["user.info.basic"],
        },
    }
}
