//! Mail: the outbox delivered by the running app over real SMTP (the test server in
//! `support/smtp.rs`), with the tenant's branding and templates; sealed at rest and erased once
//! sent; surviving a restart while SMTP is down; leaving as soon as SMTP is back rather than
//! when its backoff ends; claimed once across several workers; and the log mailer when
//! `SMTP_URL` is unset.
//!
//! Mail is queued the way the service queues it (compose, insert in the outbox, wake),
//! through a `Store` and `Mailer` of the test's own over the app's database; the app's
//! worker polls the outbox every second and picks the rows up.

use std::time::Duration;

use auth_api::domain::Composed;
use auth_api::domain::{Email, MailTemplate, Tenant};
use auth_api::service::mail::{Mailer, Template};
use auth_api::store::Db;
use auth_api::store::Store;
use auth_api::store::outbox::{OutboxRow, insert_mail};
use serde_json::json;

use crate::support::{SmtpServer, TestApp, free_port, spawn_app, spawn_app_with, spawn_on};

const WAIT: Duration = Duration::from_secs(20);

/// A store and mailer of the test's own over the app's database, with the app's master key.
async fn queue_side(app: &TestApp) -> (Store, Mailer) {
    let db = Db::connect(&app.db.url, 2).await.expect("test connects");
    let store = Store::new(db);
    let master = app
        .config
        .master_key
        .clone()
        .expect("tests set a master key");
    let mailer = Mailer::new(&app.config, store.clone(), master).expect("mailer");
    (store, mailer)
}

async fn default_tenant(store: &Store) -> Tenant {
    store
        .tenant_by_slug("default")
        .await
        .expect("default tenant")
}

/// Compose a sign-in code mail and queue it as the service does.
async fn queue_code(
    store: &Store,
    mailer: &Mailer,
    tenant: &Tenant,
    to: &str,
    code: &str,
) -> Composed {
    let email = Email::parse(to).expect("email");
    let composed = mailer
        .compose(
            tenant,
            &email,
            Template::Signin,
            json!({"code": code, "expires_minutes": 10, "email": to}),
        )
        .expect("compose");
    insert_mail(&store.db().pool, &composed)
        .await
        .expect("queued");
    mailer.wake();
    composed
}

/// Poll the outbox row until `done` holds.
async fn row_until(
    store: &Store,
    id: &str,
    what: &str,
    done: impl Fn(&OutboxRow) -> bool,
) -> OutboxRow {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let row = store.outbox_row(id).await.expect("outbox row");
        if done(&row) {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox row never {what}: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn queued_mail_goes_out_over_smtp_with_the_tenants_branding_and_template() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(|config| config.smtp_url = Some(smtp.url())).await;
    let (store, mailer) = queue_side(&app).await;

    let mut tenant = default_tenant(&store).await;
    tenant.settings.branding.product_name = Some("Acme & Co".into());
    tenant.settings.branding.primary_color = Some("#ff5500".into());
    tenant.settings.branding.logo_url = Some("https://acme.test/logo.png".into());
    tenant.settings.branding.mail_from = Some("Acme <hello@acme.test>".into());
    tenant.settings.branding.support_email = Some("help@acme.test".into());
    tenant.settings.templates.insert(
        "signin".into(),
        MailTemplate {
            subject: Some("{{ product_name }}: your code is {{ code }}".into()),
            text: None,
            html: Some(
                "<h1 style=\"color:{{ branding.primary_color }}\">{{ code }}</h1><p>{{ product_name }}</p>"
                    .into(),
            ),
        },
    );
    store
        .set_tenant_settings(&tenant.id, &tenant.settings)
        .await
        .expect("settings");
    let tenant = default_tenant(&store).await;

    let composed = queue_code(&store, &mailer, &tenant, "Ada@Example.com", "482913").await;
    let mail = smtp.wait_for("ada@example.com", WAIT).await;

    assert_eq!(mail.from_address, "hello@acme.test");
    assert_eq!(mail.from, "Acme <hello@acme.test>");
    assert_eq!(mail.subject, "Acme & Co: your code is 482913");
    assert_eq!(mail.code(), "482913");
    assert!(
        mail.text.contains("Use this code to sign in to Acme & Co"),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("help@acme.test"), "{}", mail.text);
    let html = mail.html.as_deref().expect("an HTML part");
    assert!(
        html.contains("<h1 style=\"color:#ff5500\">482913</h1>"),
        "{html}"
    );
    assert!(html.contains("<p>Acme &amp; Co</p>"), "{html}");
    assert!(mail.raw.contains("multipart/alternative"));

    // Sent: the row is closed and its message erased.
    let row = row_until(&store, &composed.id, "sent", |row| row.sent_at.is_some()).await;
    assert_eq!(row.message, None);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_error, None);
    assert!(smtp.received().is_empty(), "exactly one mail");
}

#[tokio::test]
async fn outbox_survives_a_restart_while_smtp_is_down_and_is_sealed_until_sent() {
    // SMTP_URL names a port where nothing listens yet.
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with({
        let smtp_url = smtp_url.clone();
        move |config| config.smtp_url = Some(smtp_url)
    })
    .await;
    let (store, mailer) = queue_side(&app).await;
    let tenant = default_tenant(&store).await;
    let composed = queue_code(&store, &mailer, &tenant, "grace@example.com", "730155").await;

    // The worker tried, failed, and scheduled a retry; the request path was never involved.
    let row = row_until(&store, &composed.id, "failed once", |row| {
        row.attempts >= 1 && row.last_error.is_some()
    })
    .await;
    assert!(row.sent_at.is_none() && row.failed_at.is_none());
    assert!(row.next_attempt_at > composed.created_at);
    let last_error = row.last_error.as_deref().unwrap_or_default();
    assert!(!last_error.contains("730155"), "{last_error}");

    // At rest the message is sealed: no code, no subject, no address in it, and it opens
    // only under the master key and this row's id.
    let sealed = row.message.clone().expect("message kept until sent");
    assert!(!sealed.contains("730155"));
    assert!(!sealed.contains("sign-in"));
    let opened = mailer
        .open(&composed.id, &sealed)
        .expect("opens for its row");
    assert!(opened.text.contains("730155"));
    assert!(mailer.open("another-row", &sealed).is_none());

    // Stop the app; bring SMTP up on that port; start the app again on the same database.
    let db = app.stop().await;
    let smtp = SmtpServer::start_on(port).await;
    assert_eq!(smtp.url(), smtp_url);
    let app = spawn_on(db, |config| config.smtp_url = Some(smtp.url())).await;

    // Backoff after a few failures is a few seconds; a lease left by an attempt cut short
    // at shutdown would add up to a minute.
    let mail = smtp
        .wait_for("grace@example.com", Duration::from_secs(90))
        .await;
    assert_eq!(mail.code(), "730155");
    let row = row_until(&store, &composed.id, "sent", |row| row.sent_at.is_some()).await;
    assert_eq!(row.message, None, "erased once sent");
    assert!(row.attempts >= 2, "{row:?}");
    drop(app);
}

#[tokio::test]
async fn mail_queued_during_an_outage_leaves_when_the_server_is_back_not_after_its_backoff() {
    let port = free_port();
    let app =
        spawn_app_with(move |config| config.smtp_url = Some(format!("smtp://127.0.0.1:{port}")))
            .await;
    let (store, mailer) = queue_side(&app).await;
    let tenant = default_tenant(&store).await;
    let early = queue_code(&store, &mailer, &tenant, "early@example.com", "111222").await;
    row_until(&store, &early.id, "failed once", |row| {
        row.attempts >= 1 && row.last_error.is_some()
    })
    .await;
    // As after a long outage: its next attempt is minutes away (the backoff's longest).
    sqlx::query("UPDATE mail_outbox SET next_attempt_at = $1 WHERE id = $2")
        .bind(early.created_at + 5 * 60 * 1000)
        .bind(&early.id)
        .execute(store.pool())
        .await
        .expect("backoff set");

    // The server comes back; the next mail goes out and brings the waiting one with it.
    let smtp = SmtpServer::start_on(port).await;
    queue_code(&store, &mailer, &tenant, "late@example.com", "333444").await;
    assert_eq!(
        smtp.wait_for("late@example.com", WAIT).await.code(),
        "333444"
    );
    let mail = smtp
        .wait_for("early@example.com", Duration::from_secs(10))
        .await;
    assert_eq!(mail.code(), "111222");
    let row = row_until(&store, &early.id, "sent", |row| row.sent_at.is_some()).await;
    assert!(row.attempts >= 2, "{row:?}");
    // Each went out once: nothing else arrives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(smtp.received().is_empty(), "{:?}", smtp.received());
}

#[tokio::test]
async fn each_mail_is_sent_once_with_several_workers() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(|config| config.smtp_url = Some(smtp.url())).await;
    let (store, _) = queue_side(&app).await;
    let tenant = default_tenant(&store).await;

    // Three more workers on the same database, as other API replicas would run.
    let mut config = app.config.clone();
    config.smtp_url = Some(smtp.url());
    let master = app.config.master_key.clone().expect("master key");
    let mut workers = Vec::new();
    let mut mailers = Vec::new();
    for _ in 0..3 {
        let db = Db::connect(&app.db.url, 2).await.expect("connects");
        let mailer = Mailer::new(&config, Store::new(db), master.clone()).expect("mailer");
        workers.push(tokio::spawn(mailer.clone().run()));
        mailers.push(mailer);
    }

    let count = 16;
    for i in 0..count {
        let mailer = &mailers[i % mailers.len()];
        queue_code(
            &store,
            mailer,
            &tenant,
            &format!("user{i}@example.com"),
            &format!("{:06}", 100_000 + i),
        )
        .await;
    }
    for i in 0..count {
        let mail = smtp.wait_for(&format!("user{i}@example.com"), WAIT).await;
        assert_eq!(mail.code(), format!("{:06}", 100_000 + i));
    }
    // Nothing else arrives: no mail went out twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        smtp.received().is_empty(),
        "duplicates: {:?}",
        smtp.received()
    );
    for worker in workers {
        worker.abort();
    }
}

#[tokio::test]
async fn without_smtp_url_mail_goes_through_the_outbox_to_the_log() {
    let app = spawn_app().await;
    let (store, mailer) = queue_side(&app).await;
    let tenant = default_tenant(&store).await;
    let composed = queue_code(&store, &mailer, &tenant, "linus@example.com", "555123").await;
    let row = row_until(&store, &composed.id, "logged", |row| row.sent_at.is_some()).await;
    assert_eq!(row.message, None);
    assert_eq!(row.last_error, None);
}

#[tokio::test]
async fn a_malformed_smtp_url_is_a_start_up_error_naming_it() {
    let app = spawn_app().await;
    let mut config = app.config.clone();
    config.smtp_url = Some("smtp://exa mple.com:25".into());
    let master = config.master_key.clone().expect("master key");
    let db = Db::connect(&app.db.url, 1).await.expect("connects");
    let error = Mailer::new(&config, Store::new(db), master)
        .expect_err("refused")
        .to_string();
    assert!(error.contains("SMTP_URL"), "{error}");
}
