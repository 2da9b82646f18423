//! GraphQL over HTTP: malformed requests, GET, batches, limits; health, metrics, shutdown.

use serde_json::{Value, json};

use crate::support::{PASSWORD, SIGN_IN, TestApp, code, spawn_app, spawn_app_with};

async fn post_raw(app: &TestApp, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn malformed_requests_get_graphql_shaped_4xx() {
    let app = spawn_app_with(|c| {
        c.max_body_bytes = 16 * 1024;
        c.avatar_max_bytes = 1024;
    })
    .await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("application/json", b"{not json".to_vec(), 400),
        ("application/json", b"[]".to_vec(), 400),
        ("application/json", b"{\"variables\": {}}".to_vec(), 400),
        ("application/json", br#"{"query": 42}"#.to_vec(), 400),
        ("text/plain", b"{ me { id } }".to_vec(), 415),
        (
            "application/json",
            format!("{{\"query\": \"{}\"}}", "a".repeat(20_000)).into_bytes(),
            413,
        ),
    ];
    for (content_type, body, status) in cases {
        let (got, json) = post_raw(&app, content_type, body).await;
        assert_eq!(got, status, "{json}");
        assert_eq!(code(&json), "BAD_USER_INPUT", "{json}");
    }
    // Validation errors: wrong types, missing fields, unknown fields.
    for query in [
        "mutation { signIn(input: {email: 1, password: \"x\"}) { accessToken } }",
        "mutation { signIn(input: {email: \"a@example.com\"}) { accessToken } }",
        "{ nothing }",
        "{ me { id ",
    ] {
        let body = app.gql(query, json!({}), None).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{query}: {body}");
    }
    let too_deep = format!(
        "{{ __schema {{ types {{ fields {{ type {}name{} }} }} }} }}",
        "{ ofType ".repeat(16),
        " }".repeat(16)
    );
    let body = app.gql(&too_deep, json!({}), None).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body}"
    );
}

#[tokio::test]
async fn get_queries_batches_and_graphql_response_json() {
    let app = spawn_app().await;
    let (status, _, body) = app
        .get("/graphql?query=%7B%20tenantInfo%20%7B%20slug%20%7D%20%7D")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["data"]["tenantInfo"]["slug"],
        "default"
    );
    let (status, headers, _) = app
        .get("/graphql?query=mutation%20%7B%20signOut%20%7D")
        .await;
    assert_eq!(status, 405);
    assert!(headers["allow"].to_str().unwrap().contains("POST"));

    app.sign_up("b@example.com").await;
    let batch = json!([
        {"query": SIGN_IN, "variables": {"email": "b@example.com", "password": PASSWORD}},
        {"query": "{ tenantInfo { slug } }"}
    ]);
    let response = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("accept", "application/graphql-response+json")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/graphql-response+json"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body[0]["data"]["signIn"]["accessToken"].is_string(),
        "{body}"
    );
    assert_eq!(body[1]["data"]["tenantInfo"]["slug"], "default");
    let too_many: Vec<Value> = (0..11)
        .map(|_| json!({"query": "{ tenantInfo { slug } }"}))
        .collect();
    let (status, body) = post_raw(
        &app,
        "application/json",
        serde_json::to_vec(&too_many).unwrap(),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "BAD_USER_INPUT"));
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(app.get("/readyz").await.0, 200);
    app.sign_up("m@example.com").await;
    app.sign_in("m@example.com", "wrong password here").await;
    let (status, _, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("auth_sign_ins_total"), "{text}");
    assert!(text.contains("outcome=\"invalid_credentials\""), "{text}");
    assert!(text.contains("http_requests_total"), "{text}");
    let (status, _, body) = app.get("/nowhere").await;
    assert_eq!(status, 404);
    assert_eq!(
        code(&serde_json::from_str::<Value>(&body).unwrap()),
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn introspection_answers_machine_callers() {
    let app = spawn_app().await;
    let user = app.sign_up("i@example.com").await;
    let verify = app.machine_token("default", &["verify"]).await;
    let introspect = |token: String, auth: Option<String>| {
        let mut request = app
            .client
            .post(format!("{}/introspect", app.base))
            .form(&[("token", token)]);
        if let Some(auth) = auth {
            request = request.bearer_auth(auth);
        }
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let access = user.access_token.clone();
    let (status, body) = introspect(access.clone(), Some(verify.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], user.user_id);
    assert_eq!(body["tid"], "default");
    let (_, machine) = introspect(verify.clone(), Some(verify.clone())).await;
    assert_eq!(
        (machine["active"].as_bool(), machine["scope"].as_str()),
        (Some(true), Some("verify"))
    );
    let (_, garbage) = introspect("nope".into(), Some(verify.clone())).await;
    assert_eq!(garbage, json!({"active": false}));
    // A user token is not a machine credential.
    let (status, _) = introspect(access.clone(), Some(access.clone())).await;
    assert_eq!(status, 401);
    app.gql("mutation { signOut }", json!({}), Some(&access))
        .await;
    let (_, revoked) = introspect(access, Some(verify)).await;
    assert_eq!(revoked, json!({"active": false}));
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let app = spawn_app().await;
    app.sign_up("g@example.com").await;
    let client = app.client.clone();
    let url = format!("{}/graphql", app.base);
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({"query": SIGN_IN, "variables": {"email": "g@example.com", "password": PASSWORD}}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let _db = app.stop().await;
    let body = in_flight.await.unwrap();
    assert!(body["data"]["signIn"]["accessToken"].is_string(), "{body}");
}
