//! CORS for browser frontends on other origins, with real preflight requests: origins from
//! `AUTH_CORS_ORIGINS` and each tenant's `allowedOrigins`; a preflight (which names no
//! tenant) answered for their union, the request itself checked against its tenant's list;
//! the three request headers allowed, never a wildcard, no credentials. (The cross-origin
//! `signIn` from headless Chromium is `tests/browser/cors.test.mjs`.)

use serde_json::{Value, json};

use crate::support::{PASSWORD, SIGN_IN, TestApp, spawn_app_with};

const APP: &str = "https://app.example.com";
const ACME_APP: &str = "https://acme.example.com";
const EVIL: &str = "https://evil.example.com";

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-tenant",
        )
        .send()
        .await
        .expect("preflight sent")
}

async fn post(
    app: &TestApp,
    origin: Option<&str>,
    tenant: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.base))
        .json(&json!({"query": SIGN_IN, "variables": {"email": "cors@example.com", "password": PASSWORD}}));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(tenant) = tenant {
        request = request.header("x-tenant", tenant);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let allowed = response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, allowed, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn preflights_answer_listed_origins_and_requests_are_held_to_their_tenant() {
    let app = spawn_app_with(|c| c.cors_origins = vec![APP.into()]).await;
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "acme").await;
    let acme_admin = app.machine_token("acme", &["admin"]).await;
    let (_, set) = app
        .gql_raw(
            "mutation($o: [String!]) { updateSettings(input: {allowedOrigins: $o}) { allowedOrigins } }",
            json!({"o": [ACME_APP]}),
            Some(&acme_admin),
            Some("acme"),
        )
        .await;
    set.data::<Value>("updateSettings");
    app.sign_up("cors@example.com").await;
    app.sign_up_in("cors@example.com", Some("acme")).await;

    // Preflights: the configured origin and the tenant's are allowed, another is not.
    for origin in [APP, ACME_APP] {
        let answer = preflight(&app, origin).await;
        assert!(
            answer.status().is_success(),
            "{origin}: {}",
            answer.status()
        );
        let h = answer.headers();
        assert_eq!(h["access-control-allow-origin"], origin);
        let allowed = h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        for name in ["authorization", "content-type", "x-tenant"] {
            assert!(allowed.contains(name), "{allowed}");
        }
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        assert!(h.get("access-control-allow-credentials").is_none());
    }
    let refused = preflight(&app, EVIL).await;
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert!(
        refused
            .headers()
            .get_all("access-control-allow-origin")
            .iter()
            .all(|v| v != "*")
    );

    // Requests: the configured origin everywhere; the tenant's only in its tenant.
    let (status, allowed, body) = post(&app, Some(APP), None).await;
    assert_eq!((status, allowed.as_deref()), (200, Some(APP)), "{body}");
    assert!(body["data"]["signIn"]["accessToken"].is_string());
    let (status, _, body) = post(&app, Some(ACME_APP), Some("acme")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["signIn"]["accessToken"].is_string());
    let (status, _, body) = post(&app, Some(ACME_APP), None).await;
    assert_eq!(
        status, 403,
        "acme's frontend may not call the default tenant: {body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let (status, allowed, body) = post(&app, Some(EVIL), None).await;
    assert_eq!((status, allowed), (403, None), "{body}");
    // No Origin (a server, curl) and the API's own origin (GraphiQL) are not browsers
    // elsewhere: they pass.
    assert_eq!(post(&app, None, None).await.0, 200);
    let own = app.base.clone();
    assert_eq!(post(&app, Some(&own), None).await.0, 200);

    // Taking the origin off the tenant's list takes effect at once.
    let (_, unset) = app
        .gql_raw(
            "mutation { updateSettings(input: {allowedOrigins: []}) { allowedOrigins } }",
            json!({}),
            Some(&acme_admin),
            Some("acme"),
        )
        .await;
    unset.data::<Value>("updateSettings");
    assert!(
        preflight(&app, ACME_APP)
            .await
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(post(&app, Some(ACME_APP), Some("acme")).await.0, 403);
}

#[test]
fn configured_origins_must_be_exact_origins() {
    use clap::Parser;
    for bad in [
        "*",
        "https://app.example.com/",
        "app.example.com",
        "https://app.example.com/x",
    ] {
        let parsed =
            auth_api::cli::Cli::try_parse_from(["auth-api", "--cors-origins", bad, "migrate"]);
        assert!(parsed.is_err(), "{bad} accepted");
    }
    let ok = auth_api::cli::Cli::try_parse_from([
        "auth-api",
        "--cors-origins",
        "https://app.example.com,http://localhost:5173",
        "migrate",
    ]);
    assert!(ok.is_ok());
}
