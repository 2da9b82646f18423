//! Brute-force protection through real HTTP: rate limits that count every aliased and
//! batched operation, the lockout after failed sign-ins (alike for unknown addresses), and
//! the tenant's allow and deny lists.

use serde_json::{Value, json};

use auth_api::store::limits::Failures;

use crate::support::{Gql, PASSWORD, SIGN_UP, TestApp, code, spawn_app, spawn_app_with};

/// One request that tries `aliases` wrong passwords for each address of `emails`.
fn aliased_sign_ins(emails: &[String], aliases: usize) -> Vec<Value> {
    emails
        .iter()
        .map(|email| {
            let fields: String = (0..aliases)
                .map(|i| {
                    format!(
                        "a{i}: signIn(input: {{email: \"{email}\", password: \"wrong password {i}\"}}) {{ accessToken }} "
                    )
                })
                .collect();
            json!({ "query": format!("mutation {{ {fields}}}") })
        })
        .collect()
}

/// The `extensions.code` of every error in a batch of answers.
fn error_codes(batch: &Value) -> Vec<String> {
    batch
        .as_array()
        .expect("a batch answer")
        .iter()
        .flat_map(|answer| answer["errors"].as_array().cloned().unwrap_or_default())
        .map(|error| {
            error["extensions"]["code"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect()
}

/// The counted sign-in attempts of `email` in the default tenant, read from the store.
async fn failures_on_record(app: &TestApp, email: &str) -> Option<Failures> {
    let store = app.store().await;
    let tenant = store.tenant_by_slug("default").await.unwrap();
    store.sign_in_failures(&tenant.id, email).await.unwrap()
}

#[tokio::test]
async fn aliased_and_batched_sign_ins_each_count_against_the_ip_limit() {
    // Half the default per-IP limit: 30 sign-ins a minute.
    let app = spawn_app_with(|config| config.rate_limit_factor = 0.5).await;
    let emails: Vec<String> = (0..10).map(|i| format!("nobody{i}@example.com")).collect();
    // Ten requests, each a batch of two operations with two aliases: four attempts per
    // request (the most one request may hash), 40 in all.
    let mut codes = Vec::new();
    let mut answers = Vec::new();
    for pair in emails.chunks(2) {
        let (status, batch) = app.gql_batch(&aliased_sign_ins(pair, 2)).await;
        assert_eq!(status, 200, "{batch}");
        codes.extend(error_codes(&batch));
        answers.extend(batch.as_array().unwrap().iter().cloned());
        let (status, batch) = app.gql_batch(&aliased_sign_ins(pair, 2)).await;
        assert_eq!(status, 200, "{batch}");
        codes.extend(error_codes(&batch));
        answers.extend(batch.as_array().unwrap().iter().cloned());
    }
    assert_eq!(codes.len(), 40, "{codes:?}");
    let wrong = codes.iter().filter(|c| *c == "INVALID_CREDENTIALS").count();
    let limited = codes.iter().filter(|c| *c == "RATE_LIMITED").count();
    assert_eq!((wrong, limited), (30, 10), "{codes:?}");
    let limited_error = answers
        .iter()
        .flat_map(|a| a["errors"].as_array().cloned().unwrap_or_default())
        .find(|e| e["extensions"]["code"] == "RATE_LIMITED")
        .unwrap();
    let retry_after = limited_error["extensions"]["retryAfter"].as_u64().unwrap();
    assert!((1..=60).contains(&retry_after), "{limited_error}");

    // A good password from the same IP is refused too until the window ends.
    app.update_settings("default", |_| {}).await;
    let body = app.sign_in("nobody0@example.com", PASSWORD).await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
}

#[tokio::test]
async fn repeated_failures_lock_the_address_known_or_not_with_a_retry_after() {
    let app = spawn_app().await;
    app.sign_up("victim@example.com").await;
    for email in ["victim@example.com", "ghost@example.com"] {
        // Aliases in one request count one by one: 4 per request (the complexity cap).
        let (_, first) = app.gql_batch(&aliased_sign_ins(&[email.into()], 4)).await;
        assert_eq!(
            error_codes(&first),
            vec!["INVALID_CREDENTIALS"; 4],
            "{first}"
        );
        let fifth = app.sign_in(email, "still wrong password").await;
        assert_eq!(code(&fifth), "INVALID_CREDENTIALS", "{fifth}");
        // Locked now, even with the right password, and alike for an unknown address.
        let locked = app.sign_in(email, PASSWORD).await;
        assert_eq!(code(&locked), "RATE_LIMITED", "{email}: {locked}");
        let retry_after = locked["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap();
        assert!((25..=30).contains(&retry_after), "{locked}");
    }
    // Other addresses are unaffected.
    app.sign_up("bystander@example.com").await;
    let body = app.sign_in("bystander@example.com", PASSWORD).await;
    assert!(body["errors"].is_null(), "{body}");

    // Once the lock ends, a success clears the count.
    let failures = failures_on_record(&app, "victim@example.com")
        .await
        .expect("failures on record");
    assert_eq!(failures.failures, 5);
    let store = app.store().await;
    sqlx::query("UPDATE sign_in_failures SET locked_until = 0")
        .execute(store.pool())
        .await
        .unwrap();
    let body = app.sign_in("victim@example.com", PASSWORD).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(failures_on_record(&app, "victim@example.com").await, None);
}

#[tokio::test]
async fn an_attempt_the_rate_limit_refuses_is_not_counted_toward_the_lockout() {
    // The limits at 0.3: three attempts per address a minute. The rate buckets and the
    // lockout count are one statement on PostgreSQL; what it counts must be what the two
    // did one after the other: a refused attempt costs no hash and earns no lock.
    let app = spawn_app_with(|config| config.rate_limit_factor = 0.3).await;
    app.sign_up("victim@example.com").await;
    let mut codes = Vec::new();
    for i in 0..5 {
        let body = app
            .sign_in("victim@example.com", &format!("wrong password {i}"))
            .await;
        codes.push(code(&body).to_owned());
        if i >= 3 {
            let retry_after = body["errors"][0]["extensions"]["retryAfter"]
                .as_u64()
                .unwrap();
            assert!((1..=60).contains(&retry_after), "{body}");
        }
    }
    assert_eq!(
        codes,
        [
            "INVALID_CREDENTIALS",
            "INVALID_CREDENTIALS",
            "INVALID_CREDENTIALS",
            "RATE_LIMITED",
            "RATE_LIMITED"
        ]
    );
    let failures = failures_on_record(&app, "victim@example.com")
        .await
        .expect("failures on record");
    assert_eq!(failures.failures, 3, "{failures:?}");
    assert_eq!(failures.locked_until, 0, "{failures:?}");
}

#[tokio::test]
async fn deny_and_allow_lists_stop_sign_ups_and_codes() {
    let app = spawn_app().await;
    app.update_settings("default", |settings| {
        settings.deny_list = vec!["@spam.test".into(), "mallory@example.com".into()];
    })
    .await;
    let sign_up = |email: &'static str| {
        let app = &app;
        async move {
            app.gql(SIGN_UP, json!({"email": email, "password": PASSWORD}), None)
                .await
        }
    };
    let request_otp = |email: &'static str| {
        let app = &app;
        async move {
            app.gql(
                "mutation($e: String!) { requestOtp(input: {email: $e}) { challengeId } }",
                json!({"e": email}),
                None,
            )
            .await
        }
    };
    for email in ["eve@spam.test", "eve@mail.spam.test", "Mallory@Example.com"] {
        assert_eq!(code(&sign_up(email).await), "FORBIDDEN", "{email}");
        assert_eq!(code(&request_otp(email).await), "FORBIDDEN", "{email}");
    }
    // Nothing was written for them.
    let store = app.store().await;
    let tenant = store.tenant_by_slug("default").await.unwrap();
    let email = auth_api::domain::Email::parse("eve@spam.test").unwrap();
    assert!(
        store
            .user_by_email(&tenant.id, &email)
            .await
            .unwrap()
            .is_none()
    );
    let (queued,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM mail_outbox")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(queued, 0);
    // Not listed: fine.
    assert!(sign_up("alice@example.com").await["errors"].is_null());

    // An allow list admits only what it names.
    app.update_settings("default", |settings| {
        settings.deny_list.clear();
        settings.allow_list = vec!["corp.test".into()];
    })
    .await;
    assert_eq!(code(&sign_up("bob@example.com").await), "FORBIDDEN");
    assert!(sign_up("bob@corp.test").await["errors"].is_null());
    assert!(request_otp("carol@corp.test").await["errors"].is_null());
    assert_eq!(code(&request_otp("carol@example.com").await), "FORBIDDEN");
}

#[tokio::test]
async fn code_and_reset_requests_are_limited_per_address_whatever_the_account() {
    let app = spawn_app().await;
    app.sign_up("someone@example.com").await;
    for email in ["someone@example.com", "no-one@example.com"] {
        // requestPasswordReset: 3 per address per 10 minutes.
        let answers: Vec<Gql> = repeat(&app, 4, |app| async move {
            app.gql(
                "mutation($e: String!) { requestPasswordReset(email: $e) }",
                json!({"e": email}),
                None,
            )
            .await
        })
        .await;
        for answer in &answers[..3] {
            assert_eq!(answer["data"]["requestPasswordReset"], true, "{answer}");
        }
        assert_eq!(code(&answers[3]), "RATE_LIMITED", "{email}: {}", answers[3]);
    }
    // requestOtp: 5 per address per 10 minutes; verifyOtp: 10 per address a minute.
    let request_otp =
        "mutation { requestOtp(input: {email: \"otp@example.com\"}) { challengeId } }";
    let answers = repeat(&app, 6, |app| app.gql(request_otp, json!({}), None)).await;
    for answer in &answers[..5] {
        assert!(answer["errors"].is_null(), "{answer}");
    }
    assert_eq!(code(&answers[5]), "RATE_LIMITED", "{}", answers[5]);
    let guess = "mutation { verifyOtp(input: {email: \"otp@example.com\", challengeId: \"x\", code: \"000000\"}) { accessToken } }";
    for _ in 0..10 {
        assert_eq!(
            code(&app.gql(guess, json!({}), None).await),
            "INVALID_CREDENTIALS"
        );
    }
    assert_eq!(code(&app.gql(guess, json!({}), None).await), "RATE_LIMITED");
}

/// Run `op` `times` times one after the other; the answers in order.
async fn repeat<'a, F, Fut>(app: &'a TestApp, times: usize, op: F) -> Vec<Gql>
where
    F: Fn(&'a TestApp) -> Fut,
    Fut: std::future::Future<Output = Gql>,
{
    let mut answers = Vec::with_capacity(times);
    for _ in 0..times {
        answers.push(op(app).await);
    }
    answers
}
