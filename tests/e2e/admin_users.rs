//! Users as admins manage them: `users` pages (keyset, stable while people sign up,
//! searchable), `adminUser`, `adminUpdateUser` (name, metadata, addresses, roles, disabled),
//! a disabled account refused everywhere (API, verifier, refresh, every sign-in) and let in
//! again, role changes cutting off the tokens that carry the old roles, and tenants kept apart.

use std::time::Duration;

use serde_json::{Value, json};

use crate::otp;
use crate::reset;
use crate::support::{
    AuthPayload, PASSWORD, REFRESH, SIGN_IN, SmtpServer, TestApp, Verifier, spawn_app_with,
};

const ADMIN: &str = "boss@example.com";

const USERS: &str = "query($first: Int, $after: String, $search: String) { \
    users(first: $first, after: $after, search: $search) { totalCount \
      edges { cursor node { id emails { primary active } } } pageInfo { hasNextPage endCursor } } }";

const UPDATE: &str = "mutation($id: ID!, $input: AdminUserInput!) { adminUpdateUser(id: $id, input: $input) { \
    id roles disabled metadata name { first last display } emails { primary active previous { email } } } }";

async fn admin_app(smtp: Option<&SmtpServer>) -> (TestApp, String) {
    let url = smtp.map(SmtpServer::url);
    let app = spawn_app_with(move |c| {
        c.admin_emails = vec![ADMIN.into()];
        c.smtp_url = url;
    })
    .await;
    let admin = app.sign_up_admin(ADMIN).await;
    (app, admin.access_token)
}

/// Every user of a walk through the pages of `search`, `first` at a time, calling `between`
/// after each page; the ids in order and the total counts seen.
async fn walk(
    app: &TestApp,
    token: &str,
    first: i64,
    search: Option<&str>,
    mut between: impl AsyncFnMut(usize),
) -> (Vec<String>, Vec<i64>) {
    let mut ids = Vec::new();
    let mut totals = Vec::new();
    let mut after: Option<String> = None;
    for page in 0.. {
        let body = app
            .gql(
                USERS,
                json!({"first": first, "after": after, "search": search}),
                Some(token),
            )
            .await;
        let users: Value = body.data("users");
        totals.push(users["totalCount"].as_i64().unwrap());
        let edges = users["edges"].as_array().unwrap();
        assert!(edges.len() as i64 <= first);
        ids.extend(
            edges
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        if !users["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = users["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        assert_eq!(
            after.as_deref(),
            edges.last().unwrap()["cursor"].as_str(),
            "endCursor is the last edge's"
        );
        between(page).await;
    }
    (ids, totals)
}

#[tokio::test]
async fn users_page_newest_first_without_gaps_or_duplicates_while_people_sign_up() {
    let (app, admin) = admin_app(None).await;
    let mut expected = vec![];
    for i in 0..23 {
        expected.push(
            app.sign_up(&format!("user{i:02}@example.com"))
                .await
                .user_id,
        );
    }
    let boss = app.gql("{ me { id } }", json!({}), Some(&admin)).await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expected.insert(0, boss);
    expected.reverse(); // newest first
    let mut late = 0;
    let (ids, totals) = walk(&app, &admin, 5, None, async |_| {
        // Sign-ups between pages land before the first page, never inside the walk.
        app.sign_up(&format!("late{late}@example.com")).await;
        late += 1;
    })
    .await;
    assert_eq!(ids, expected);
    assert_eq!(totals.first(), Some(&24));
    assert_eq!(totals.last(), Some(&(24 + late)));
    let (all, _) = walk(&app, &admin, 100, None, async |_| {}).await;
    assert_eq!(all.len() as i64, 24 + late);

    for (first, field) in [(0, "first"), (101, "first")] {
        let refused = app.gql(USERS, json!({"first": first}), Some(&admin)).await;
        assert_eq!(refused.error().code, "BAD_USER_INPUT");
        assert_eq!(refused.error().extensions["field"], field);
    }
    let forged = app
        .gql(USERS, json!({"after": "bm90IGEgY3Vyc29y"}), Some(&admin))
        .await;
    assert_eq!(forged.error().extensions["field"], "after");
}

#[tokio::test]
async fn search_matches_part_of_an_active_address_or_the_name_in_any_case() {
    let (app, admin) = admin_app(None).await;
    let alice = app.sign_up("alice.smith@example.com").await;
    let bob = app.sign_up("bob@corp.test").await;
    let carol = app.sign_up("carol@example.com").await;
    app.sign_up("under_score@example.com").await;
    // Bob's name holds "Malice"; Carol's address moves away from "carol".
    app.gql(
        UPDATE,
        json!({"id": bob.user_id, "input": {"name": {"first": "Malice", "last": "Cooper"}}}),
        Some(&admin),
    )
    .await
    .data::<Value>("adminUpdateUser");
    app.gql(
        UPDATE,
        json!({"id": carol.user_id, "input": {"emails": ["c.new@example.com"]}}),
        Some(&admin),
    )
    .await
    .data::<Value>("adminUpdateUser");
    let found = async |search: &str| {
        let (ids, totals) = walk(&app, &admin, 2, Some(search), async |_| {}).await;
        assert_eq!(totals[0], ids.len() as i64, "totalCount of {search}");
        ids
    };
    assert_eq!(
        found("ALICE").await,
        vec![bob.user_id.clone(), alice.user_id.clone()]
    );
    assert_eq!(found("coop").await, vec![bob.user_id.clone()]);
    assert_eq!(found("@corp.").await, vec![bob.user_id.clone()]);
    // A previous address is not searched; the new one is.
    assert!(found("carol").await.is_empty());
    assert_eq!(found("c.new").await, vec![carol.user_id.clone()]);
    // LIKE's wildcards are taken literally.
    assert!(found("%").await.is_empty());
    assert_eq!(found("_").await.len(), 1);
}

#[tokio::test]
async fn admin_user_finds_by_id_or_address_and_only_in_its_tenant() {
    let (app, admin) = admin_app(None).await;
    let user = app.sign_up("someone@example.com").await;
    let query = "query($k: String!) { adminUser(idOrEmail: $k) { id emails { primary } } }";
    for key in [user.user_id.as_str(), "Someone@Example.com"] {
        let found = app.gql(query, json!({"k": key}), Some(&admin)).await;
        assert_eq!(
            found.data::<Value>("adminUser")["id"],
            user.user_id.as_str()
        );
    }
    let none = app
        .gql(query, json!({"k": "nobody@example.com"}), Some(&admin))
        .await;
    assert_eq!(none.data::<Value>("adminUser"), Value::Null);

    // Another tenant's admin sees nothing of this tenant's users and changes nothing.
    let platform = app.machine_token("default", &["platform"]).await;
    app.create_tenant(&platform, "acme").await;
    let acme = app.machine_token("acme", &["admin"]).await;
    let (_, none) = app
        .gql_raw(query, json!({"k": user.user_id}), Some(&acme), Some("acme"))
        .await;
    assert_eq!(none.data::<Value>("adminUser"), Value::Null);
    let (_, none) = app
        .gql_raw(
            query,
            json!({"k": "someone@example.com"}),
            Some(&acme),
            Some("acme"),
        )
        .await;
    assert_eq!(none.data::<Value>("adminUser"), Value::Null);
    let (_, refused) = app
        .gql_raw(
            UPDATE,
            json!({"id": user.user_id, "input": {"disabled": true}}),
            Some(&acme),
            Some("acme"),
        )
        .await;
    assert_eq!(refused.code(), "NOT_FOUND");
    let (_, listed) = app
        .gql_raw(USERS, json!({}), Some(&acme), Some("acme"))
        .await;
    assert_eq!(listed.data::<Value>("users")["totalCount"], 0);
    // The user still signs in: nothing was changed.
    app.signed_in("someone@example.com", PASSWORD).await;
}

#[tokio::test]
async fn the_total_is_counted_when_selected_however_the_query_spells_it() {
    // The count is skipped when not selected (it reads every match); the resolver looks
    // ahead for the field, which must find it behind aliases and fragments too.
    let (app, token) = admin_app(None).await;
    for i in 0..3 {
        app.sign_up(&format!("user{i}@example.com")).await;
    }
    for query in [
        "{ users { totalCount } }",
        "{ users { n: totalCount } }",
        "{ users { ... on UserConnection { totalCount } } }",
        "query { users { ...Counted } } fragment Counted on UserConnection { totalCount }",
    ] {
        let body = app.gql(query, json!({}), Some(&token)).await;
        let users: Value = body.data("users");
        let total = users.get("totalCount").or_else(|| users.get("n"));
        assert_eq!(total, Some(&json!(4)), "{query}: {body}");
    }
    let body = app
        .gql(
            "{ users(first: 2) { edges { node { id } } } }",
            json!({}),
            Some(&token),
        )
        .await;
    let users: Value = body.data("users");
    assert_eq!(users["edges"].as_array().unwrap().len(), 2, "{body}");
}

#[tokio::test]
async fn admin_operations_are_refused_to_users_and_to_tokens_without_the_scope() {
    let (app, _) = admin_app(None).await;
    let user = app.sign_up("plain@example.com").await;
    let verify = app.machine_token("default", &["verify"]).await;
    let connections = app.machine_token("default", &["connections"]).await;
    for token in [
        user.access_token.as_str(),
        verify.as_str(),
        connections.as_str(),
    ] {
        assert_eq!(
            app.gql(USERS, json!({}), Some(token)).await.code(),
            "FORBIDDEN"
        );
        let one = app
            .gql(
                "{ adminUser(idOrEmail: \"plain@example.com\") { id } }",
                json!({}),
                Some(token),
            )
            .await;
        assert_eq!(one.code(), "FORBIDDEN");
        let change = app
            .gql(
                UPDATE,
                json!({"id": user.user_id, "input": {"roles": ["admin"]}}),
                Some(token),
            )
            .await;
        assert_eq!(change.code(), "FORBIDDEN");
    }
    let me = app
        .gql("{ me { roles } }", json!({}), Some(&user.access_token))
        .await;
    assert_eq!(me["data"]["me"]["roles"], json!([]));
    // A machine token with scope admin may.
    let admin_token = app.machine_token("default", &["admin"]).await;
    let listed = app.gql(USERS, json!({}), Some(&admin_token)).await;
    assert_eq!(listed.data::<Value>("users")["totalCount"], 2);
}

#[tokio::test]
async fn a_disabled_user_is_refused_everywhere_and_let_in_again() {
    let smtp = SmtpServer::start().await;
    let (app, admin) = admin_app(Some(&smtp)).await;
    let user = app.sign_up("dana@example.com").await;
    let verifier = Verifier::spawn(
        &app.base,
        Some(&app.machine_token("default", &["verify"]).await),
    )
    .await
    .ready()
    .await;
    assert_eq!(verifier.verify(Some(&user.access_token)).await.0, 200);

    let disabled = app
        .gql(
            UPDATE,
            json!({"id": user.user_id, "input": {"disabled": true}}),
            Some(&admin),
        )
        .await;
    assert_eq!(disabled.data::<Value>("adminUpdateUser")["disabled"], true);
    // The API and the verifier refuse the token at once; the refresh token is dead.
    let me = app
        .gql("{ me { id } }", json!({}), Some(&user.access_token))
        .await;
    assert_eq!(me.code(), "UNAUTHENTICATED");
    verifier
        .until(&user.access_token, 401, Duration::from_secs(1))
        .await;
    let refresh = app
        .gql(REFRESH, json!({"token": user.refresh_token}), None)
        .await;
    assert_eq!(refresh.code(), "UNAUTHENTICATED");
    // The right password: FORBIDDEN; a wrong one: INVALID_CREDENTIALS, as for anyone.
    let right = app.sign_in("dana@example.com", PASSWORD).await;
    assert_eq!(right.code(), "FORBIDDEN");
    assert!(right.error().message.contains("disabled"), "{}", right.0);
    let wrong = app
        .sign_in("dana@example.com", "not the password at all")
        .await;
    assert_eq!(wrong.code(), "INVALID_CREDENTIALS");
    // A mailed code and a password reset do not get in either.
    let (challenge, code, _) = otp::request(&app, &smtp, "dana@example.com").await;
    let by_code = otp::verify(&app, "dana@example.com", &challenge, &code).await;
    assert_eq!(by_code.code(), "FORBIDDEN");
    app.update_settings("default", |s| {
        s.password_reset_url = Some("https://app.example.com/reset".into());
    })
    .await;
    app.gql(reset::REQUEST_RESET, json!({"e": "dana@example.com"}), None)
        .await;
    let secret = reset::token_from_mail(&smtp, "dana@example.com").await;
    let new_password = "a new passphrase nobody should get to set";
    let by_reset = app
        .gql(reset::RESET, json!({"t": secret, "p": new_password}), None)
        .await;
    assert_eq!(by_reset.code(), "FORBIDDEN", "{}", by_reset.0);
    // The disabled flag shows to admins.
    let shown = app
        .gql(
            "{ adminUser(idOrEmail: \"dana@example.com\") { disabled } }",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(shown.data::<Value>("adminUser")["disabled"], true);

    let enabled = app
        .gql(
            UPDATE,
            json!({"id": user.user_id, "input": {"disabled": false}}),
            Some(&admin),
        )
        .await;
    assert_eq!(enabled.data::<Value>("adminUpdateUser")["disabled"], false);
    // The refused reset changed nothing: the old password is still the one.
    assert_eq!(
        app.sign_in("dana@example.com", new_password).await.code(),
        "INVALID_CREDENTIALS"
    );
    let back = app.signed_in("dana@example.com", PASSWORD).await;
    assert_eq!(verifier.verify(Some(&back.access_token)).await.0, 200);
    let me = app
        .gql("{ me { id } }", json!({}), Some(&back.access_token))
        .await;
    assert_eq!(me.data::<Value>("me")["id"], user.user_id.as_str());

    let store = app.store().await;
    let tenant = store.tenant_by_slug("default").await.unwrap();
    for action in [
        "admin.user_disabled",
        "admin.user_enabled",
        "user.sign_in_disabled",
    ] {
        let events = store.audit_events(&tenant.id, action, 10).await.unwrap();
        assert!(!events.is_empty(), "no {action} event");
    }
    let refused = store
        .audit_events(&tenant.id, "user.sign_in_disabled", 10)
        .await
        .unwrap();
    assert_eq!(refused.len(), 3, "password, code and reset: {refused:?}");
}

#[tokio::test]
async fn a_role_change_cuts_off_old_tokens_and_the_next_token_carries_the_roles() {
    let (app, admin) = admin_app(None).await;
    let user = app.sign_up("eve@example.com").await;
    let verifier = Verifier::spawn(
        &app.base,
        Some(&app.machine_token("default", &["verify"]).await),
    )
    .await
    .ready()
    .await;
    assert_eq!(verifier.verify(Some(&user.access_token)).await.0, 200);
    let changed = app
        .gql(
            UPDATE,
            json!({"id": user.user_id, "input": {"roles": ["admin", "editor", "editor"]}}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        changed.data::<Value>("adminUpdateUser")["roles"],
        json!(["admin", "editor"])
    );
    // The token minted with no roles is refused by the API and the verifier…
    let me = app
        .gql("{ me { id } }", json!({}), Some(&user.access_token))
        .await;
    assert_eq!(me.code(), "UNAUTHENTICATED");
    verifier
        .until(&user.access_token, 401, Duration::from_secs(1))
        .await;
    // …but the session goes on: its refresh carries the new roles, and admin rights.
    let refreshed: AuthPayload = app
        .gql(REFRESH, json!({"token": user.refresh_token}), None)
        .await
        .data("refreshSession");
    assert_eq!(
        refreshed.roles,
        vec!["admin".to_owned(), "editor".to_owned()]
    );
    let claims = crate::support::claims_of(&refreshed.access_token);
    assert_eq!(claims["roles"], json!(["admin", "editor"]));
    assert_eq!(verifier.verify(Some(&refreshed.access_token)).await.0, 200);
    let listed = app
        .gql(USERS, json!({}), Some(&refreshed.access_token))
        .await;
    assert_eq!(listed.data::<Value>("users")["totalCount"], 2);

    // Taking the role back: the admin's own token stops working for admin operations.
    app.gql(
        UPDATE,
        json!({"id": user.user_id, "input": {"roles": []}}),
        Some(&admin),
    )
    .await
    .data::<Value>("adminUpdateUser");
    let gone = app
        .gql(USERS, json!({}), Some(&refreshed.access_token))
        .await;
    assert_eq!(gone.code(), "UNAUTHENTICATED");
    // An admin cannot demote or disable themself (and so lock the tenant out).
    let boss_id = app.gql("{ me { id } }", json!({}), Some(&admin)).await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for input in [json!({"roles": []}), json!({"disabled": true})] {
        let refused = app
            .gql(UPDATE, json!({"id": boss_id, "input": input}), Some(&admin))
            .await;
        assert_eq!(refused.code(), "FORBIDDEN");
    }
    for bad in ["Admin", "", "x".repeat(40).as_str(), "a b"] {
        let refused = app
            .gql(
                UPDATE,
                json!({"id": user.user_id, "input": {"roles": [bad]}}),
                Some(&admin),
            )
            .await;
        assert_eq!(refused.error().extensions["field"], "roles.0", "{bad}");
    }
    let store = app.store().await;
    let tenant = store.tenant_by_slug("default").await.unwrap();
    let events = store
        .audit_events(&tenant.id, "admin.roles_changed", 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.user_id.as_deref() == Some(user.user_id.as_str()))
    );
}

#[tokio::test]
async fn name_metadata_and_addresses_change_together_or_not_at_all() {
    let (app, admin) = admin_app(None).await;
    let user = app.sign_up("frank@example.com").await;
    app.sign_up("taken@example.com").await;
    let schema_set = app
        .gql(
            "mutation { updateSettings(input: {metadataSchema: {type: \"object\", properties: {plan: {enum: [\"free\", \"pro\"]}}}}) { otpLength } }",
            json!({}),
            Some(&admin),
        )
        .await;
    schema_set.data::<Value>("updateSettings");
    let before = app
        .gql(
            UPDATE,
            json!({"id": user.user_id, "input": {}}),
            Some(&admin),
        )
        .await
        .data::<Value>("adminUpdateUser");
    for (input, code, field) in [
        (
            json!({"name": "Frank", "metadata": {"plan": "gold"}}),
            "BAD_USER_INPUT",
            Some("metadata/plan"),
        ),
        (
            json!({"name": "Frank", "emails": ["frank@example.com", "taken@example.com"]}),
            "CONFLICT",
            None,
        ),
        (
            json!({"name": "Frank", "emails": ["nope"]}),
            "BAD_USER_INPUT",
            Some("emails.0"),
        ),
        (
            json!({"name": "Frank", "emails": []}),
            "BAD_USER_INPUT",
            Some("emails"),
        ),
    ] {
        let refused = app
            .gql(
                UPDATE,
                json!({"id": user.user_id, "input": input}),
                Some(&admin),
            )
            .await;
        assert_eq!(refused.code(), code, "{input}: {}", refused.0);
        if let Some(field) = field {
            assert_eq!(refused.error().extensions["field"], field);
        }
        let now = app
            .gql(
                UPDATE,
                json!({"id": user.user_id, "input": {}}),
                Some(&admin),
            )
            .await
            .data::<Value>("adminUpdateUser");
        assert_eq!(now, before, "{input} changed something");
    }
    let done = app
        .gql(
            UPDATE,
            json!({"id": user.user_id, "input": {"name": {"first": "Frank", "last": "Ocean"}, "metadata": {"plan": "pro"},
                   "emails": ["f.ocean@example.com", "frank@example.com"]}}),
            Some(&admin),
        )
        .await
        .data::<Value>("adminUpdateUser");
    assert_eq!(done["name"]["first"], "Frank");
    assert_eq!(done["name"]["last"], "Ocean");
    assert_eq!(
        done["name"]["display"], before["name"]["display"],
        "not named: kept"
    );
    assert_eq!(done["metadata"], json!({"plan": "pro"}));
    assert_eq!(done["emails"]["primary"], "f.ocean@example.com");
    assert_eq!(
        done["emails"]["active"],
        json!(["f.ocean@example.com", "frank@example.com"])
    );
    // The new address signs in (the admin vouched for it).
    app.signed_in("f.ocean@example.com", PASSWORD).await;
    let dropped = app
        .gql(
            UPDATE,
            json!({"id": user.user_id, "input": {"emails": ["f.ocean@example.com"]}}),
            Some(&admin),
        )
        .await
        .data::<Value>("adminUpdateUser");
    assert_eq!(
        dropped["emails"]["previous"],
        json!([{"email": "frank@example.com"}])
    );
    let old = app
        .gql(
            SIGN_IN,
            json!({"email": "frank@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(old.code(), "INVALID_CREDENTIALS");
}
