//! Sessions, refresh rotation with grace and reuse detection, revocation.

use serde_json::json;

use crate::support::{AuthPayload, PASSWORD, REFRESH, code, spawn_app, spawn_app_with};

#[tokio::test]
async fn sessions_list_and_revoke_one() {
    let app = spawn_app().await;
    let first = app.sign_up("s@example.com").await;
    let second = app.signed_in("s@example.com", PASSWORD).await;
    let list = app
        .gql(
            "{ sessions { id current method device { browser } expiresAt lastSeenAt } }",
            json!({}),
            Some(&first.access_token),
        )
        .await;
    let sessions = list["data"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<bool> = sessions
        .iter()
        .map(|s| s["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current.iter().filter(|c| **c).count(), 1);

    let second_id = &second.session_id;
    let revoked = app
        .gql(
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({"id": second_id}),
            Some(&first.access_token),
        )
        .await;
    assert_eq!(revoked["data"]["revokeSession"], true);
    // The revoked session's access token is refused at once.
    let me = app
        .gql("{ me { id } }", json!({}), Some(&second.access_token))
        .await;
    assert_eq!(code(&me), "UNAUTHENTICATED");
    // Its refresh token too.
    let refreshed = app
        .gql(REFRESH, json!({"token": second.refresh_token}), None)
        .await;
    assert_eq!(code(&refreshed), "UNAUTHENTICATED");
    // session(id) still shows it, with revokedAt; another user's session is null.
    let one = app
        .gql(
            "query($id: ID!) { session(id: $id) { id revokedAt } }",
            json!({"id": second_id}),
            Some(&first.access_token),
        )
        .await;
    assert!(one["data"]["session"]["revokedAt"].is_string(), "{one}");
    let stranger = app.sign_up("t@example.com").await;
    let none = app
        .gql(
            "query($id: ID!) { session(id: $id) { id } }",
            json!({"id": second_id}),
            Some(&stranger.access_token),
        )
        .await;
    assert!(none["data"]["session"].is_null(), "{none}");
    let foreign = app
        .gql(
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({"id": first.session_id}),
            Some(&stranger.access_token),
        )
        .await;
    assert_eq!(code(&foreign), "NOT_FOUND");
}

#[tokio::test]
async fn sign_out_and_revoke_all() {
    let app = spawn_app().await;
    let a = app.sign_up("r@example.com").await;
    let b = app.signed_in("r@example.com", PASSWORD).await;
    let c = app.signed_in("r@example.com", PASSWORD).await;
    let out = app
        .gql("mutation { signOut }", json!({}), Some(&a.access_token))
        .await;
    assert_eq!(out["data"]["signOut"], true);
    assert_eq!(
        code(
            &app.gql("{ me { id } }", json!({}), Some(&a.access_token))
                .await
        ),
        "UNAUTHENTICATED"
    );

    let all = app
        .gql(
            "mutation { revokeAllSessions }",
            json!({}),
            Some(&b.access_token),
        )
        .await;
    assert_eq!(all["data"]["revokeAllSessions"], 2);
    for payload in [&b, &c] {
        assert_eq!(
            code(
                &app.gql("{ me { id } }", json!({}), Some(&payload.access_token))
                    .await
            ),
            "UNAUTHENTICATED"
        );
    }
    // A new sign-in right after works, even within the same second as the cut-off.
    let d = app.signed_in("r@example.com", PASSWORD).await;
    let me = app
        .gql("{ me { id } }", json!({}), Some(&d.access_token))
        .await;
    assert!(me["errors"].is_null(), "{me}");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_after_grace_revokes_the_session() {
    let app = spawn_app_with(|c| c.refresh_grace_seconds = 0).await;
    let first = app.sign_up("rot@example.com").await;
    let second = app
        .gql(REFRESH, json!({"token": first.refresh_token}), None)
        .await;
    assert!(second["errors"].is_null(), "{second}");
    let second = &second.data::<AuthPayload>("refreshSession");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.session_id, first.session_id);
    let me = app
        .gql("{ me { id } }", json!({}), Some(&second.access_token))
        .await;
    assert!(me["errors"].is_null(), "{me}");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // The spent token again, with no grace: reuse. The whole session ends.
    let reuse = app
        .gql(REFRESH, json!({"token": first.refresh_token}), None)
        .await;
    assert_eq!(code(&reuse), "UNAUTHENTICATED");
    assert_eq!(
        code(
            &app.gql("{ me { id } }", json!({}), Some(&second.access_token))
                .await
        ),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(
            &app.gql(REFRESH, json!({"token": second.refresh_token}), None)
                .await
        ),
        "UNAUTHENTICATED"
    );
    let tenant = app.gql("{ tenantInfo { slug } }", json!({}), None).await;
    assert_eq!(tenant["data"]["tenantInfo"]["slug"], "default");
}

#[tokio::test]
async fn two_tabs_refreshing_at_once_get_the_same_pair() {
    let app = spawn_app().await;
    let first = app.sign_up("tabs@example.com").await;
    let token = first.refresh_token.clone();
    let (a, b) = tokio::join!(
        app.gql(REFRESH, json!({"token": token}), None),
        app.gql(REFRESH, json!({"token": token}), None)
    );
    assert!(a["errors"].is_null(), "{a}");
    assert!(b["errors"].is_null(), "{b}");
    let a: AuthPayload = a.data("refreshSession");
    let b: AuthPayload = b.data("refreshSession");
    assert_eq!(a.refresh_token, b.refresh_token);
    assert_eq!(a.access_token, b.access_token);
    // Later, within the grace window, still the same pair; the new token works once.
    let c = app.gql(REFRESH, json!({"token": token}), None).await;
    assert_eq!(c["data"]["refreshSession"]["refreshToken"], a.refresh_token);
    let next = app
        .gql(REFRESH, json!({"token": a.refresh_token}), None)
        .await;
    assert!(next["errors"].is_null(), "{next}");
}

#[tokio::test]
async fn garbage_refresh_tokens_are_refused() {
    let app = spawn_app().await;
    let body = app
        .gql(REFRESH, json!({"token": "not-a-token"}), None)
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
}
