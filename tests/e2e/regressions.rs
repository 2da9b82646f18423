//! Regressions for what is sound: tokens that carry or point at their own key (`jwk`,
//! `jku`, `x5u`), other keys behind real kids, tokens presented to another tenant, and no
//! secret in the logs of the real `auth-api` binary at debug level (text and JSON).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};

use crate::support::{
    ApiProcess, ApiSettings, REFRESH, SIGN_IN, SIGN_UP, TestDb, claims_of, code, ed25519, forge,
    forge_hs256, free_port, jwk, kid_of, master_key, spawn_app_signing_with,
};

const ME: &str = "{ me { id } }";

/// An attacker's HTTP server answering every request with `body` (a JWK set); counts the
/// requests it gets, so a test can tell whether anyone fetched from it.
async fn attacker_server(body: Value) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let body = body.clone();
        async move { axum::Json(body) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn tokens_carrying_or_pointing_at_their_own_key_are_refused() {
    let (real_key, pem) = ed25519();
    let app = spawn_app_signing_with(&pem).await;
    let signed = app.sign_up("jwk@example.com").await;
    let token = signed.access_token.as_str();
    let kid = kid_of(token);
    let claims = claims_of(token);

    // Control: a token forged here with the API's own key and header passes, so each
    // refusal below is about the one thing it changes.
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let genuine = forge(&header, &claims, &real_key);
    let body = app.gql(ME, json!({}), Some(&genuine)).await;
    assert_eq!(body["data"]["me"]["id"], signed.user_id, "{body}");

    let (attacker, _) = ed25519();
    let attacker_jwk = jwk(&attacker, Some("attacker"));
    // The attacker's server publishes its key under both the attacker's kid and the real one.
    let (evil, hits) = attacker_server(json!({"keys": [
        attacker_jwk,
        jwk(&attacker, Some(&kid)),
    ]}))
    .await;
    let with = |extra: Value| {
        let mut header = json!({"alg": "EdDSA", "typ": "JWT"});
        for (name, value) in extra.as_object().unwrap() {
            header[name] = value.clone();
        }
        header
    };
    let forged = [
        (
            "jwk header, real kid",
            with(json!({"kid": kid, "jwk": jwk(&attacker, Some(&kid))})),
        ),
        (
            "jwk header, unknown kid",
            with(json!({"kid": "attacker", "jwk": attacker_jwk})),
        ),
        (
            "jwk header, no kid",
            with(json!({"jwk": jwk(&attacker, None)})),
        ),
        (
            "jku at the attacker, unknown kid",
            with(json!({"kid": "attacker", "jku": format!("{evil}/jwks.json")})),
        ),
        (
            "jku at the attacker, real kid",
            with(json!({"kid": kid, "jku": format!("{evil}/jwks.json")})),
        ),
        (
            "x5u at the attacker, unknown kid",
            with(json!({"kid": "attacker", "x5u": format!("{evil}/cert.pem")})),
        ),
        (
            "x5u at the attacker, real kid",
            with(json!({"kid": kid, "x5u": format!("{evil}/cert.pem")})),
        ),
        (
            "jwk, jku and x5u together, real kid",
            with(json!({"kid": kid, "jwk": jwk(&attacker, Some(&kid)),
                "jku": format!("{evil}/jwks.json"), "x5u": format!("{evil}/cert.pem")})),
        ),
        ("real kid, another key", with(json!({"kid": kid}))),
        (
            "kid as a path",
            with(json!({"kid": "../../../../../../dev/null"})),
        ),
        ("kid as SQL", with(json!({"kid": "x' OR '1'='1"}))),
    ];
    let mut refused: Vec<(String, String)> = forged
        .iter()
        .map(|(name, header)| {
            let token = forge(header, &claims, &attacker);
            // The forged header parses: the refusal is not a parse error of the test's own.
            let parsed = jsonwebtoken::decode_header(&token)
                .unwrap_or_else(|e| panic!("{name}: header does not parse: {e}"));
            assert_eq!(parsed.jwk.is_some(), header.get("jwk").is_some(), "{name}");
            assert_eq!(parsed.jku.is_some(), header.get("jku").is_some(), "{name}");
            assert_eq!(parsed.x5u.is_some(), header.get("x5u").is_some(), "{name}");
            (name.to_string(), token)
        })
        .collect();
    // HS256 under an empty secret with a kid naming an empty file.
    refused.push((
        "HS256, empty secret, kid /dev/null".into(),
        forge_hs256(
            &json!({"alg": "HS256", "typ": "JWT", "kid": "../../../../../../dev/null"}),
            &claims,
            b"",
        ),
    ));

    let verify = app.machine_token("default", &["verify"]).await;
    for (name, bad) in &refused {
        let body = app.gql(ME, json!({}), Some(bad)).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{name}: {body}");
        let introspected = app.introspect(&verify, bad).await;
        assert_eq!(introspected, json!({"active": false}), "{name}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the API fetched a key from a URL a token named"
    );
    // The genuine token still works after all of that.
    assert!(app.gql(ME, json!({}), Some(token)).await["errors"].is_null());
}

#[tokio::test]
async fn a_token_is_refused_in_any_tenant_but_its_own_whatever_x_tenant_says() {
    let (real_key, pem) = ed25519();
    let app = spawn_app_signing_with(&pem).await;
    let platform = app.machine_token("default", &["platform"]).await;
    for slug in ["acme", "globex"] {
        app.create_tenant(&platform, slug).await;
    }
    let home = app.sign_up("cross@example.com").await;
    let away = app.sign_up_in("cross@example.com", Some("acme")).await;
    let home_token = home.access_token.as_str();
    let away_token = away.access_token.as_str();

    // Each token in its own tenant, named or by default.
    for (token, tenant, user) in [
        (home_token, None, &home),
        (home_token, Some("default"), &home),
        (away_token, Some("acme"), &away),
    ] {
        let (_, body) = app.gql_raw(ME, json!({}), Some(token), tenant).await;
        assert_eq!(body["data"]["me"]["id"], user.user_id, "{tenant:?}: {body}");
    }
    // Anywhere else: FORBIDDEN.
    for (what, token, tenant) in [
        ("default token, X-Tenant: acme", home_token, "acme"),
        ("default token, X-Tenant: globex", home_token, "globex"),
        ("acme token, X-Tenant: default", away_token, "default"),
        ("acme token, X-Tenant: globex", away_token, "globex"),
    ] {
        let (_, body) = app.gql_raw(ME, json!({}), Some(token), Some(tenant)).await;
        assert_eq!(code(&body), "FORBIDDEN", "{what}: {body}");
    }
    let (_, refresh) = app
        .gql_raw(
            REFRESH,
            json!({"token": home.refresh_token}),
            None,
            Some("acme"),
        )
        .await;
    assert_eq!(
        code(&refresh),
        "FORBIDDEN",
        "refresh across tenants: {refresh}"
    );

    // A token validly signed for acme but naming a session of default: the session is
    // looked up in acme, where it does not exist.
    let mut claims = claims_of(home_token);
    claims["tid"] = json!("acme");
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid_of(home_token)});
    let moved = forge(&header, &claims, &real_key);
    let (_, body) = app.gql_raw(ME, json!({}), Some(&moved), Some("acme")).await;
    assert!(
        matches!(code(&body), "UNAUTHENTICATED" | "FORBIDDEN"),
        "a default session under tid acme: {body}"
    );

    // A machine token of acme is not an admin of default.
    let acme_admin = app.machine_token("acme", &["admin"]).await;
    let (_, own) = app
        .gql_raw(
            "{ apiTokens { id } }",
            json!({}),
            Some(&acme_admin),
            Some("acme"),
        )
        .await;
    assert!(own["errors"].is_null(), "{own}");
    let (_, other) = app
        .gql_raw(
            "{ apiTokens { id } }",
            json!({}),
            Some(&acme_admin),
            Some("default"),
        )
        .await;
    assert_eq!(code(&other), "FORBIDDEN", "{other}");
}

#[tokio::test]
async fn no_secret_reaches_the_text_logs() {
    no_secret_reaches_the_logs("text").await;
}

#[tokio::test]
async fn no_secret_reaches_the_json_logs() {
    no_secret_reaches_the_logs("json").await;
}

/// The text the mail log record announces its body with (`mail::Mailer::send`).
const MAIL_RECORD: &str = "logged instead of sent";

/// Run the real binary at debug level with `format` logs, drive every flow that handles a
/// secret, and look for each secret in everything it printed.
async fn no_secret_reaches_the_logs(format: &str) {
    let db = TestDb::new().await;
    let out_path = db.dir().join("stdout.log");
    let err_path = db.dir().join("stderr.log");
    // SMTP_URL unset (the process harness passes on none of the test's settings), so mail
    // goes to the log; a master key of this test alone, so finding it means this process
    // printed it.
    let mut settings = ApiSettings::on_port(free_port()).with_env(&[("AUTH_LOG_FORMAT", format)]);
    settings.master_key = master_key();
    settings.rust_log = "debug".to_owned();
    settings.logs = Some((out_path.clone(), err_path.clone()));
    let master_key = settings.master_key.clone();
    let mut server = ApiProcess::start_with(&db, settings).await;
    let gql = |query: &'static str, variables: Value, bearer: Option<String>| {
        let server = &server;
        async move { server.gql(query, variables, bearer.as_deref()).await }
    };

    let email = "logs@example.com";
    let password = format!("log-secret {} passphrase", uuid::Uuid::new_v4().simple());
    let wrong = format!("log-wrong {} passphrase", uuid::Uuid::new_v4().simple());
    let new_password = format!("log-new {} passphrase", uuid::Uuid::new_v4().simple());
    let mut access = Vec::new();
    let mut refresh = Vec::new();
    let mut keep = |payload: &Value, what: &str| {
        let a = payload["accessToken"].as_str();
        let r = payload["refreshToken"].as_str();
        assert!(a.is_some() && r.is_some(), "{what}: {payload}");
        access.push(a.unwrap().to_owned());
        refresh.push(r.unwrap().to_owned());
        a.unwrap().to_owned()
    };

    let up = gql(SIGN_UP, json!({"email": email, "password": password}), None).await;
    keep(&up["data"]["signUp"], "signUp");
    let failed = gql(SIGN_IN, json!({"email": email, "password": wrong}), None).await;
    assert_eq!(code(&failed), "INVALID_CREDENTIALS", "{failed}");
    let unknown = gql(
        SIGN_IN,
        json!({"email": "nobody@example.com", "password": password}),
        None,
    )
    .await;
    assert_eq!(code(&unknown), "INVALID_CREDENTIALS", "{unknown}");
    let signed_in = gql(SIGN_IN, json!({"email": email, "password": password}), None).await;
    keep(&signed_in["data"]["signIn"], "signIn");
    let renewed = gql(
        REFRESH,
        json!({"token": signed_in["data"]["signIn"]["refreshToken"]}),
        None,
    )
    .await;
    let bearer = keep(&renewed["data"]["refreshSession"], "refreshSession");
    let me = gql(ME, json!({}), Some(bearer.clone())).await;
    assert!(me["errors"].is_null(), "{me}");
    // A spent refresh token presented again within the grace window: the same new pair.
    let again = gql(
        REFRESH,
        json!({"token": signed_in["data"]["signIn"]["refreshToken"]}),
        None,
    )
    .await;
    assert!(again["errors"].is_null(), "{again}");
    let otp = gql(
        "mutation($e: String!) { requestOtp(input: {email: $e}) { challengeId } }",
        json!({"e": email}),
        None,
    )
    .await;
    assert!(otp["errors"].is_null(), "{otp}");
    for address in [email, "nobody@example.com"] {
        let reset = gql(
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({"e": address}),
            None,
        )
        .await;
        assert_eq!(
            reset["data"]["requestPasswordReset"],
            json!(true),
            "{reset}"
        );
    }

    // The OTP mail and the reset mail are written to the log by the mail worker.
    let deadline = Instant::now() + Duration::from_secs(20);
    let reset_token = loop {
        let text = strip_ansi(&std::fs::read_to_string(&out_path).unwrap());
        let token = records(&text, format)
            .iter()
            .filter(|r| r.contains(MAIL_RECORD))
            .find_map(|r| reset_token_in(&message_of(r, format)));
        if let Some(token) = token {
            break token;
        }
        assert!(Instant::now() < deadline, "no reset mail logged: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reset = gql(
        "mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { accessToken refreshToken } }",
        json!({"t": reset_token, "p": new_password}),
        None,
    )
    .await;
    let bearer = keep(&reset["data"]["resetPassword"], "resetPassword");

    // A machine token created with the CLI (its stdout shows the secret once, by design),
    // used, and used to create another.
    let cli = server
        .command(&["token", "create", "--scope", "admin,verify"])
        .output()
        .await
        .unwrap();
    let cli_out = strip_ansi(&String::from_utf8_lossy(&cli.stdout));
    let cli_err = strip_ansi(&String::from_utf8_lossy(&cli.stderr));
    assert!(cli.status.success(), "token create: {cli_out} {cli_err}");
    let machine = cli_out
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .unwrap_or_else(|| panic!("no secret in {cli_out}"))
        .trim()
        .to_owned();
    let listed = gql("{ apiTokens { id } }", json!({}), Some(machine.clone())).await;
    assert!(listed["errors"].is_null(), "{listed}");
    let created = gql(
        "mutation { createApiToken(input: {name: \"logs\", scopes: [\"verify\"]}) { secret } }",
        json!({}),
        Some(machine.clone()),
    )
    .await;
    let second = created["data"]["createApiToken"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let introspected = server.introspect(&second, &bearer).await;
    assert_eq!(introspected["active"], json!(true), "{introspected}");
    let signed_out = gql("mutation { signOut }", json!({}), Some(bearer)).await;
    assert_eq!(signed_out["data"]["signOut"], json!(true), "{signed_out}");

    // Let the last requests' logs (and any background work) reach the files.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.stop();
    let stdout = strip_ansi(&std::fs::read_to_string(&out_path).unwrap());
    let stderr = strip_ansi(&std::fs::read_to_string(&err_path).unwrap());
    let debug_marker = if format == "json" {
        "\"level\":\"DEBUG\""
    } else {
        " DEBUG "
    };
    assert!(
        stdout.contains(debug_marker) || stderr.contains(debug_marker),
        "RUST_LOG=debug did not take effect: {stdout}"
    );

    let mut secrets: Vec<(String, String)> = Vec::new();
    for (what, value) in [
        ("password", &password),
        ("wrong password", &wrong),
        ("new password", &new_password),
        ("machine token", &machine),
        ("machine token from the API", &second),
    ] {
        secrets.push((what.into(), value.clone()));
    }
    for token in &access {
        secrets.push(("access token".into(), token.clone()));
        // The signature alone (header and claims are not secret by themselves).
        secrets.push((
            "access token signature".into(),
            token.rsplit('.').next().unwrap().to_owned(),
        ));
    }
    for token in &refresh {
        secrets.push(("refresh token".into(), token.clone()));
    }
    for secret in [&machine, &second] {
        secrets.push((
            "machine token without its prefix".into(),
            secret.trim_start_matches("mt_").to_owned(),
        ));
    }
    let raw_key = STANDARD.decode(&master_key).unwrap();
    secrets.push(("master key".into(), master_key.clone()));
    secrets.push(("master key (base64url)".into(), B64.encode(&raw_key)));
    secrets.push((
        "master key (hex)".into(),
        raw_key.iter().map(|b| format!("{b:02x}")).collect(),
    ));

    // The server's output, and the CLI's without the one line that shows the secret.
    let cli_rest: String = cli_out
        .lines()
        .filter(|l| !l.starts_with("secret:"))
        .collect::<Vec<_>>()
        .join("\n");
    let outputs = [
        ("server stdout", stdout.as_str()),
        ("server stderr", stderr.as_str()),
        ("token create stdout", cli_rest.as_str()),
        ("token create stderr", cli_err.as_str()),
    ];
    for (output, text) in outputs {
        for (what, secret) in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} `{secret}` in the {format} {output}:\n{}",
                context(text, secret)
            );
        }
    }
    // The reset token: the log mailer prints each mail's body, and with it the reset
    // token, by design (SMTP_URL unset, the mail is the log record). So mail records, and
    // only they, are left out for this one secret; every other secret above was looked for
    // in them too.
    let mails = records(&stdout, format)
        .into_iter()
        .filter(|r| r.contains(MAIL_RECORD))
        .count();
    assert_eq!(mails, 2, "the OTP mail and one reset mail were logged");
    for (output, text) in outputs {
        for record in records(text, format) {
            if record.contains(MAIL_RECORD) && output == "server stdout" {
                continue;
            }
            assert!(
                !record.contains(&reset_token),
                "reset token outside a mail record in the {format} {output}: {record}"
            );
        }
    }
}

/// The log's records: JSON lines, or text records that each start with a timestamp (a
/// mail body runs over several lines).
fn records(text: &str, format: &str) -> Vec<String> {
    if format == "json" {
        return text.lines().map(str::to_owned).collect();
    }
    let mut records: Vec<String> = Vec::new();
    for line in text.lines() {
        let starts = line.len() >= 11
            && line.as_bytes()[..10].iter().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    *b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
            && line.as_bytes()[10] == b'T';
        match records.last_mut() {
            Some(last) if !starts => {
                last.push('\n');
                last.push_str(line);
            }
            _ => records.push(line.to_owned()),
        }
    }
    records
}

/// A record's message: the `fields.message` of a JSON line, or the text record itself.
fn message_of(record: &str, format: &str) -> String {
    if format == "json" {
        serde_json::from_str::<Value>(record)
            .ok()
            .and_then(|v| v["fields"]["message"].as_str().map(str::to_owned))
            .unwrap_or_default()
    } else {
        record.to_owned()
    }
}

/// The token of a reset mail's body (`templates/mail/passwordReset.txt`, no link set).
fn reset_token_in(message: &str) -> Option<String> {
    let (_, after) = message.split_once("Use this token to choose a new password:")?;
    after
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

/// `text` without ANSI colour sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Some text around the first occurrence of `needle`, for a failure message.
fn context(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or(0);
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(300)
        .map_or(0, |(i, _)| i);
    let end = (at + needle.len() + 300).min(text.len());
    let end = (end..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..end].to_owned()
}
