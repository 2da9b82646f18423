//! Drop-in test with a real reverse proxy: nginx (the Debian package) with `auth_request` in
//! front of a small upstream, the real API and a real `auth-verifier` behind it. A request
//! with a good token reaches the upstream with the identity headers; a bad or missing one gets
//! 401 with the verifier's challenge. The verifier's `/introspect`, proxied by nginx on the
//! same host, never gets the loopback exemption. nginx runs in the foreground as a child
//! process with everything (pid, logs, temp paths) inside a temp dir.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use crate::support::{Proc, Verifier, free_port, spawn_app};

fn nginx_bin() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// An upstream that echoes what nginx forwarded.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        format!(
            "user={} tenant={} session={} roles={}",
            h("x-auth-user"),
            h("x-auth-tenant"),
            h("x-auth-session"),
            h("x-auth-roles")
        )
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

fn config(dir: &std::path::Path, port: u16, verifier: &str, upstream: u16) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /_auth {{
      internal;
      proxy_pass {verifier}/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}
    location = /introspect {{
      proxy_pass {verifier}/introspect;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
    location / {{
      auth_request /_auth;
      auth_request_set $auth_user $upstream_http_x_auth_user;
      auth_request_set $auth_tenant $upstream_http_x_auth_tenant;
      auth_request_set $auth_session $upstream_http_x_auth_session;
      auth_request_set $auth_roles $upstream_http_x_auth_roles;
      auth_request_set $auth_challenge $upstream_http_www_authenticate;
      add_header WWW-Authenticate $auth_challenge always;
      proxy_set_header X-Auth-User $auth_user;
      proxy_set_header X-Auth-Tenant $auth_tenant;
      proxy_set_header X-Auth-Session $auth_session;
      proxy_set_header X-Auth-Roles $auth_roles;
      proxy_pass http://127.0.0.1:{upstream};
    }}
  }}
}}
"#
    )
}

#[tokio::test]
async fn nginx_auth_request_passes_good_tokens_with_identity_and_refuses_bad_ones() {
    let Some(nginx) = nginx_bin() else {
        eprintln!("skipped: nginx is not installed (apt-get install -y nginx; .ci/run does)");
        return;
    };
    let app = spawn_app().await;
    let machine = app.machine_token("default", &["verify"]).await;
    // The loopback exemption of `/introspect` on: nginx on the same host must not pass it on.
    let v = Verifier::start_process(
        &app.base,
        Some(&machine),
        &[("VERIFIER_INTROSPECT_LOOPBACK_NO_TOKEN", "true")],
    )
    .await
    .ready()
    .await;
    let up = upstream().await;

    let dir = app.db.dir().join("nginx");
    std::fs::create_dir_all(&dir).expect("nginx dir");
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config(&dir, port, &v.base, up)).expect("config");
    let mut proc = Proc::new(
        Command::new(&nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("nginx starts"),
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get(&base).send().await.is_err() {
        assert!(
            !proc.exited(),
            "nginx exited: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "nginx did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let signed = app.sign_up("nginx@example.com").await;
    let token = signed.access_token.as_str();
    let user = &signed.user_id;
    let session = &signed.session_id;

    let r = client
        .get(format!("{base}/orders/42?x=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with(&format!(
            "user={user} tenant=default session={session} roles="
        )),
        "{body}"
    );

    // A client cannot smuggle its own identity headers past the proxy.
    let r = client
        .get(format!("{base}/orders"))
        .header("x-auth-user", "forged")
        .header("authorization", "Bearer not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    let r = client.get(format!("{base}/orders")).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token");

    // `/introspect` through nginx: from loopback, but forwarded, so a token is needed.
    let introspect = |url: String, bearer: Option<&str>| {
        let mut r = client.post(url).form(&[("token", token)]);
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        r.send()
    };
    let direct = introspect(format!("{}/introspect", v.base), None)
        .await
        .unwrap();
    assert_eq!(direct.status(), 200, "direct loopback caller: exempt");
    let proxied = introspect(format!("{base}/introspect"), None)
        .await
        .unwrap();
    assert_eq!(proxied.status(), 401, "proxied caller without a token");
    let proxied = introspect(format!("{base}/introspect"), Some(&machine))
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200, "proxied caller with a verify token");
    let answer: serde_json::Value = proxied.json().await.unwrap();
    assert_eq!(answer["active"], serde_json::json!(true), "{answer}");

    // Revocation flows through the proxy too (nginx itself caches nothing here).
    let out = app
        .gql("mutation { signOut }", serde_json::json!({}), Some(token))
        .await;
    assert_eq!(out["data"]["signOut"], serde_json::json!(true), "{out}");
    v.until(token, 401, Duration::from_secs(1)).await;
    let r = client
        .get(format!("{base}/orders"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "revoked token through nginx");
    proc.kill();
}
