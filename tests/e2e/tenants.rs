//! Tenants: creation by platform tokens, isolation, deletion.

use serde_json::json;

use crate::support::{PASSWORD, SIGN_UP, code, spawn_app};

#[tokio::test]
async fn tenants_isolate_users_and_tokens() {
    let app = spawn_app().await;
    let platform = app.machine_token("default", &["platform"]).await;
    let created = app
        .gql(
            "mutation { createTenant(input: {slug: \"acme\", name: \"Acme\"}) { slug name } }",
            json!({}),
            Some(&platform),
        )
        .await;
    assert_eq!(created["data"]["createTenant"]["slug"], "acme", "{created}");
    let dup = app
        .gql(
            "mutation { createTenant(input: {slug: \"acme\", name: \"Acme\"}) { slug } }",
            json!({}),
            Some(&platform),
        )
        .await;
    assert_eq!(code(&dup), "CONFLICT");
    let bad = app
        .gql(
            "mutation { createTenant(input: {slug: \"Not OK\", name: \"x\"}) { slug } }",
            json!({}),
            Some(&platform),
        )
        .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT");
    let listed = app
        .gql("{ tenants { slug } }", json!({}), Some(&platform))
        .await;
    assert_eq!(
        listed["data"]["tenants"],
        json!([{"slug": "default"}, {"slug": "acme"}])
    );

    // The same email is two users in two tenants.
    let home = app.sign_up("same@example.com").await;
    let away = app.sign_up_in("same@example.com", Some("acme")).await;
    assert_ne!(home.user_id, away.user_id);
    // A token of one tenant is refused in the other.
    let (_, cross) = app
        .gql_raw("{ me { id } }", json!({}), Some(&away.access_token), None)
        .await;
    assert_eq!(code(&cross), "FORBIDDEN");
    let (_, refresh_cross) = app
        .gql_raw(
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({"t": away.refresh_token}),
            None,
            None,
        )
        .await;
    assert_eq!(code(&refresh_cross), "FORBIDDEN");
    let (_, own) = app
        .gql_raw(
            "{ me { id } tenantInfo { slug name } }",
            json!({}),
            Some(&away.access_token),
            Some("acme"),
        )
        .await;
    assert_eq!(own["data"]["me"]["id"], away.user_id);
    assert_eq!(own["data"]["tenantInfo"]["name"], "Acme");

    // Users cannot manage tenants; the default tenant cannot be deleted.
    let user_try = app
        .gql("{ tenants { slug } }", json!({}), Some(&home.access_token))
        .await;
    assert_eq!(code(&user_try), "FORBIDDEN");
    let default = app
        .gql(
            "mutation { deleteTenant(slug: \"default\") }",
            json!({}),
            Some(&platform),
        )
        .await;
    assert_eq!(code(&default), "FORBIDDEN");

    let deleted = app
        .gql(
            "mutation { deleteTenant(slug: \"acme\") }",
            json!({}),
            Some(&platform),
        )
        .await;
    assert_eq!(deleted["data"]["deleteTenant"], true, "{deleted}");
    let (status, gone) = app
        .gql_raw(
            "{ me { id } }",
            json!({}),
            Some(&away.access_token),
            Some("acme"),
        )
        .await;
    assert_eq!((status, code(&gone)), (404, "NOT_FOUND"));
    let (_, signup_gone) = app
        .gql_raw(
            SIGN_UP,
            json!({"email": "n@example.com", "password": PASSWORD}),
            None,
            Some("acme"),
        )
        .await;
    assert_eq!(code(&signup_gone), "NOT_FOUND");
    // The default tenant's user is untouched.
    assert!(
        app.gql("{ me { id } }", json!({}), Some(&home.access_token))
            .await["errors"]
            .is_null()
    );
}

#[tokio::test]
async fn unknown_tenant_is_not_found() {
    let app = spawn_app().await;
    for tenant in ["nope", "BAD SLUG", ""] {
        let (status, body) = app
            .gql_raw("{ tenantInfo { slug } }", json!({}), None, Some(tenant))
            .await;
        if tenant.is_empty() {
            assert_eq!(body["data"]["tenantInfo"]["slug"], "default");
        } else {
            assert_eq!((status, code(&body)), (404, "NOT_FOUND"), "{tenant}");
        }
    }
}
