//! What some providers do their own way, in one place:
//!
//! - Apple: the client secret is a short-lived ES256 JWT signed with the team's private key
//!   (`iss` the team id, `kid` the key id, `sub` the client id, `aud` Apple), credentials go
//!   in the request body (`client_secret_post`), asking for `name` or `email` needs
//!   `response_mode=form_post`, and the person's name comes only once, on the first sign-in,
//!   in the `user` form field posted to the callback.
//! - TikTok: the client id is called `client_key` (authorization URL and token requests), and
//!   credentials go in the request body.

use serde::Serialize;

use crate::domain::ProviderKind;

/// Apple's audience for client-secret JWTs.
const APPLE_AUDIENCE: &str = "https://appleid.apple.com";
/// How long a client-secret JWT we sign lives (Apple allows six months; one call needs
/// seconds).
const APPLE_SECRET_TTL_S: i64 = 300;

#[derive(Serialize)]
struct AppleSecretClaims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
    aud: &'a str,
    sub: &'a str,
}

/// Apple's client secret for one call: an ES256 JWT signed with the team's private key
/// (`pem`, the `.p8` file), at `now` (seconds).
pub(super) fn apple_client_secret(
    pem: &str,
    team_id: &str,
    key_id: &str,
    client_id: &str,
    now: i64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(key_id.to_owned());
    jsonwebtoken::encode(
        &header,
        &AppleSecretClaims {
            iss: team_id,
            iat: now,
            exp: now + APPLE_SECRET_TTL_S,
            aud: APPLE_AUDIENCE,
            sub: client_id,
        },
        &key,
    )
}

/// Whether the client authenticates with its id and secret in the request body rather than
/// HTTP Basic.
pub(super) fn credentials_in_body(kind: ProviderKind) -> bool {
    matches!(kind, ProviderKind::Apple | ProviderKind::Tiktok)
}

/// The name of the client id parameter.
pub(super) fn client_id_param(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Tiktok => "client_key",
        _ => "client_id",
    }
}

/// The authorization URL as the provider wants it: TikTok's `client_key` for `client_id`;
/// Apple's `response_mode=form_post` when `name` or `email` is asked for.
pub(super) fn authorization_url(kind: ProviderKind, url: url::Url, scopes: &[String]) -> url::Url {
    let param = client_id_param(kind);
    let apple_form_post =
        kind == ProviderKind::Apple && scopes.iter().any(|s| s == "name" || s == "email");
    if param == "client_id" && !apple_form_post {
        return url;
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let k = if k == "client_id" { param.into() } else { k };
            (k.into_owned(), v.into_owned())
        })
        .collect();
    let mut url = url;
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        query.extend_pairs(pairs);
        if apple_form_post {
            query.append_pair("response_mode", "form_post");
        }
    }
    url
}

/// Parameters the token endpoint needs beside the standard ones (TikTok's `client_key`).
pub(super) fn token_params(kind: ProviderKind, client_id: &str) -> Vec<(&'static str, String)> {
    match kind {
        ProviderKind::Tiktok => vec![("client_key", client_id.to_owned())],
        _ => Vec::new(),
    }
}

/// The name in Apple's `user` form field (`{"name": {"firstName", "lastName"}, "email"}`),
/// posted to the callback on the first sign-in only.
pub(super) fn apple_user_name(user: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(user).ok()?;
    let part = |key: &str| {
        value["name"][key]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let name = [part("firstName"), part("lastName")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine as _;

    fn p8() -> (String, Vec<u8>) {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        (pem, pair.public_key().as_ref().to_vec())
    }

    #[test]
    fn apple_client_secret_is_an_es256_jwt_apple_accepts() {
        let (pem, public) = p8();
        let secret =
            apple_client_secret(&pem, "TEAM123456", "KEY1234567", "com.example.web", 1_000)
                .unwrap();
        let header = jsonwebtoken::decode_header(&secret).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
        // Verified with the key pair's public point (0x04 || x || y).
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let key = jsonwebtoken::DecodingKey::from_ec_components(
            &b64.encode(&public[1..33]),
            &b64.encode(&public[33..65]),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.validate_exp = false;
        validation.set_audience(&["https://appleid.apple.com"]);
        validation.set_issuer(&["TEAM123456"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&secret, &key, &validation).unwrap();
        assert_eq!(claims.claims["sub"], "com.example.web");
        assert_eq!(claims.claims["iat"], 1_000);
        assert_eq!(claims.claims["exp"], 1_300);
        // Another key does not verify it.
        let (_, other) = p8();
        let wrong = jsonwebtoken::DecodingKey::from_ec_components(
            &b64.encode(&other[1..33]),
            &b64.encode(&other[33..65]),
        )
        .unwrap();
        assert!(jsonwebtoken::decode::<serde_json::Value>(&secret, &wrong, &validation).is_err());
        assert!(apple_client_secret("not a key", "T", "K", "c", 0).is_err());
    }

    #[test]
    fn authorization_urls_take_each_providers_shape() {
        let base = url::Url::parse(
            "https://www.tiktok.com/v2/auth/authorize/?response_type=code&client_id=abc&state=s",
        )
        .unwrap();
        let tiktok = authorization_url(ProviderKind::Tiktok, base.clone(), &[]);
        let pairs: Vec<(String, String)> = tiktok.query_pairs().into_owned().collect();
        assert!(
            pairs.contains(&("client_key".into(), "abc".into())),
            "{tiktok}"
        );
        assert!(!pairs.iter().any(|(k, _)| k == "client_id"), "{tiktok}");
        assert!(pairs.contains(&("state".into(), "s".into())));

        let apple = authorization_url(
            ProviderKind::Apple,
            base.clone(),
            &["openid".into(), "name".into()],
        );
        assert!(
            apple
                .query_pairs()
                .any(|(k, v)| k == "response_mode" && v == "form_post")
        );
        assert!(apple.query_pairs().any(|(k, _)| k == "client_id"));
        // Apple without name or email, and everyone else: unchanged.
        assert_eq!(
            authorization_url(ProviderKind::Apple, base.clone(), &["openid".into()]),
            base
        );
        assert_eq!(
            authorization_url(ProviderKind::Google, base.clone(), &["email".into()]),
            base
        );
    }

    #[test]
    fn token_requests_and_credentials_follow_the_provider() {
        assert_eq!(
            token_params(ProviderKind::Tiktok, "abc"),
            vec![("client_key", "abc".to_owned())]
        );
        assert!(token_params(ProviderKind::Oidc, "abc").is_empty());
        assert!(credentials_in_body(ProviderKind::Apple));
        assert!(credentials_in_body(ProviderKind::Tiktok));
        assert!(!credentials_in_body(ProviderKind::Google));
    }

    #[test]
    fn apples_first_login_name_is_read_from_its_user_field() {
        assert_eq!(
            apple_user_name(
                r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"a@privaterelay.appleid.com"}"#
            )
            .as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(
            apple_user_name(r#"{"name":{"firstName":"Ada"}}"#).as_deref(),
            Some("Ada")
        );
        assert_eq!(apple_user_name(r#"{"email":"x@y"}"#), None);
        assert_eq!(apple_user_name("not json"), None);
    }

    fn ready(kind: ProviderKind, secret: &str) -> super::super::Ready {
        super::super::Ready {
            provider: crate::domain::Provider {
                id: "p1".into(),
                tenant_id: "t1".into(),
                name: "x".into(),
                kind,
                display_name: "X".into(),
                issuer: None,
                endpoints: Default::default(),
                client_id: "abc".into(),
                extra_client_ids: vec![],
                has_client_secret: true,
                team_id: None,
                key_id: None,
                scopes: vec![],
                redirect_urls: vec![],
                enabled: true,
                created_at: 0,
                updated_at: 0,
            },
            secret: Some(secret.into()),
            endpoints: crate::domain::Endpoints {
                authorization: Some("https://provider.example/auth".into()),
                token: Some("https://provider.example/token".into()),
                ..Default::default()
            },
        }
    }

    /// The token request the code exchange sends for `kind` (through the same client and
    /// parameters the flow uses), caught before it leaves.
    async fn token_request(kind: ProviderKind, secret: &str) -> oauth2::HttpRequest {
        let ready = ready(kind, secret);
        let client = ready.client(Some("https://app.example/cb")).unwrap();
        let caught = std::sync::Arc::new(std::sync::Mutex::new(None));
        let http = |request: oauth2::HttpRequest| {
            let caught = caught.clone();
            async move {
                *caught.lock().unwrap() = Some(request);
                http::Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(br#"{"access_token":"t","token_type":"bearer","expires_in":60}"#.to_vec())
            }
        };
        let mut exchange = client.exchange_code(oauth2::AuthorizationCode::new("the-code".into()));
        for (name, value) in token_params(kind, &ready.provider.client_id) {
            exchange = exchange.add_extra_param(name, value);
        }
        exchange.request_async(&http).await.unwrap();
        caught.lock().unwrap().take().unwrap()
    }

    fn form(request: &oauth2::HttpRequest) -> Vec<(String, String)> {
        url::form_urlencoded::parse(request.body())
            .into_owned()
            .collect()
    }

    #[tokio::test]
    async fn token_requests_carry_credentials_where_each_provider_wants_them() {
        // TikTok: client_key and client_secret in the body, no Basic header.
        let tiktok = token_request(ProviderKind::Tiktok, "shh").await;
        let body = form(&tiktok);
        assert!(
            body.contains(&("client_key".into(), "abc".into())),
            "{body:?}"
        );
        assert!(
            body.contains(&("client_secret".into(), "shh".into())),
            "{body:?}"
        );
        assert!(body.contains(&("code".into(), "the-code".into())));
        assert!(tiktok.headers().get(http::header::AUTHORIZATION).is_none());
        // Apple: client_id and the (JWT) client secret in the body.
        let apple = token_request(ProviderKind::Apple, "a.jwt.secret").await;
        let body = form(&apple);
        assert!(
            body.contains(&("client_id".into(), "abc".into())),
            "{body:?}"
        );
        assert!(body.contains(&("client_secret".into(), "a.jwt.secret".into())));
        assert!(apple.headers().get(http::header::AUTHORIZATION).is_none());
        // Everyone else: HTTP Basic, the secret not in the body.
        let oidc = token_request(ProviderKind::Oidc, "shh").await;
        assert!(oidc.headers().get(http::header::AUTHORIZATION).is_some());
        assert!(
            !form(&oidc)
                .iter()
                .any(|(k, _)| k == "client_secret" || k == "client_key")
        );
    }
}
