//! Rendering a mail from a template: the shipped defaults (`api/templates/mail/`), a
//! tenant's overrides, and the tenant's branding.
//!
//! Each template has three parts: a subject, a plain-text body and an HTML body, all
//! minijinja. HTML is autoescaped, the subject and text are not. The shipped bodies are
//! wrapped in a shared layout (logo or product name, accent colour, support address); a
//! tenant's body override is used as it is, without the layout.
//!
//! What templates see: the variables the service passes (`code`, `token`, `link`,
//! `expires_minutes`, `email`, `old_email`, `new_email`, `name` (of a passkey), as the
//! template calls for), plus
//! `product_name`, `branding` (`product_name`, `logo_url`, `primary_color`,
//! `support_email`, `mail_from`) and `tenant` (`slug`, `name`).
//!
//! A tenant part that fails to render (syntax error, runaway loop) is replaced by the
//! default with a warning: a bad template never fails a request. A tenant subject or text
//! that renders empty falls back the same way; a tenant HTML part that renders empty means
//! "send plain text only".

use lettre::message::Mailbox;
use minijinja::{Environment, Value};
use serde::{Deserialize, Serialize};

use super::Template;
use crate::domain::Tenant;

/// Accent colour when the branding names none (or names something that is not a colour).
const DEFAULT_COLOR: &str = "#2f6fed";
/// Longest subject kept, in characters.
const MAX_SUBJECT_CHARS: usize = 200;
/// Instructions a template may run before it is stopped (a tenant's `{% for %}` over a
/// huge range must not hang a request).
const FUEL: u64 = 50_000;

/// What is sealed into the outbox: the sender, subject and bodies. The MIME message is
/// built from it only at send time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// Sender mailbox, e.g. `Acme <no-reply@acme.test>`.
    pub from: String,
    /// Single-line subject.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body; `None` sends plain text only.
    pub html: Option<String>,
}

/// The template engine with the settings every mail is rendered with.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(32);
    // Autoescape follows the name each part is rendered under: `*.html` escapes HTML.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env
}

/// The shipped parts of `template`: subject, text and HTML.
fn defaults(template: Template) -> (&'static str, &'static str, &'static str) {
    macro_rules! parts {
        ($name:literal) => {
            (
                include_str!(concat!("../../../templates/mail/", $name, ".subject.txt")),
                include_str!(concat!("../../../templates/mail/", $name, ".txt")),
                include_str!(concat!("../../../templates/mail/", $name, ".html")),
            )
        };
    }
    match template {
        Template::Signup => parts!("signup"),
        Template::Signin => parts!("signin"),
        Template::PasswordReset => parts!("passwordReset"),
        Template::ApproveNewEmail => parts!("approveNewEmail"),
        Template::RemoveEmail => parts!("removeEmail"),
        Template::ChangePrimaryEmail => parts!("changePrimaryEmail"),
        Template::MfaFactorAdded => parts!("mfaFactorAdded"),
        Template::MfaFactorRemoved => parts!("mfaFactorRemoved"),
        Template::PasskeyAdded => parts!("passkeyAdded"),
        Template::PasskeyRemoved => parts!("passkeyRemoved"),
    }
}

const LAYOUT_TEXT: &str = include_str!("../../../templates/mail/layout.txt");
const LAYOUT_HTML: &str = include_str!("../../../templates/mail/layout.html");

/// Render `template` for `tenant` with the service's `vars`. `default_from` is the sender
/// when the branding names none or an invalid one. Fails only when a shipped template
/// fails, which is a bug.
pub(crate) fn render(
    env: &Environment<'static>,
    tenant: &Tenant,
    template: Template,
    vars: serde_json::Value,
    default_from: &str,
) -> anyhow::Result<Rendered> {
    let context = context(tenant, vars);
    let (subject_src, text_src, html_src) = defaults(template);
    let custom = tenant.settings.templates.get(template.name());
    let part = |part: &str| custom.and_then(|custom| custom_source(custom, part));
    let render_part = |part_name: &str, default: &str, ext: &str, ctx: &Value| {
        let name = format!("{}.{part_name}.{ext}", template.name());
        if let Some(source) = part(part_name) {
            match env.render_named_str(&name, source, ctx) {
                Ok(out) if part_name == "html" || !out.trim().is_empty() => {
                    return Ok((out, true));
                }
                Ok(_) => tracing::warn!(
                    tenant = %tenant.slug, template = template.name(), part = part_name,
                    "tenant mail template rendered empty; using the default"
                ),
                Err(error) => warn_bad_template(tenant, template, part_name, &error),
            }
        }
        env.render_named_str(&name, default, ctx)
            .map(|out| (out, false))
            .map_err(|error| {
                anyhow::anyhow!(
                    "default mail template {name} failed: {}",
                    error_summary(&error)
                )
            })
    };

    let (subject, _) = render_part("subject", subject_src, "txt", &context)?;
    let subject = single_line(&subject);
    let with = |content: String, safe: bool| {
        let content = if safe {
            Value::from_safe_string(content)
        } else {
            Value::from(content)
        };
        minijinja::context! { content => content, subject => subject.clone() }
    };
    let layout_ctx = |content: String, safe: bool| {
        minijinja::context! { ..with(content, safe), ..context.clone() }
    };

    let (text, custom_text) = render_part("text", text_src, "txt", &context)?;
    let text = if custom_text {
        text
    } else {
        env.render_named_str("layout.txt", LAYOUT_TEXT, layout_ctx(text, false))
            .map_err(|error| anyhow::anyhow!("mail layout.txt failed: {}", error_summary(&error)))?
    };

    let html_ctx = minijinja::context! { subject => subject.clone(), ..context.clone() };
    let (html, custom_html) = render_part("html", html_src, "html", &html_ctx)?;
    let html = if custom_html {
        Some(html).filter(|html| !html.trim().is_empty())
    } else {
        Some(
            env.render_named_str("layout.html", LAYOUT_HTML, layout_ctx(html, true))
                .map_err(|error| {
                    anyhow::anyhow!("mail layout.html failed: {}", error_summary(&error))
                })?,
        )
    };

    Ok(Rendered {
        from: sender(tenant, default_from),
        subject,
        text: ensure_newline(text),
        html,
    })
}

fn custom_source<'a>(custom: &'a crate::domain::MailTemplate, part: &str) -> Option<&'a str> {
    match part {
        "subject" => custom.subject.as_deref(),
        "text" => custom.text.as_deref(),
        _ => custom.html.as_deref(),
    }
}

/// Log a tenant template failure without values: the kind and line, and the detail only
/// for syntax errors (which are found before any value is touched).
fn warn_bad_template(tenant: &Tenant, template: Template, part: &str, error: &minijinja::Error) {
    tracing::warn!(
        tenant = %tenant.slug,
        template = template.name(),
        part,
        error = %error_summary(error),
        "tenant mail template failed to render; using the default"
    );
}

fn error_summary(error: &minijinja::Error) -> String {
    let line = error
        .line()
        .map(|line| format!(" at line {line}"))
        .unwrap_or_default();
    match (error.kind(), error.detail()) {
        (minijinja::ErrorKind::SyntaxError, Some(detail)) => {
            format!("syntax error{line}: {detail}")
        }
        (kind, _) => format!("{kind}{line}"),
    }
}

/// What every template sees besides the service's variables.
fn context(tenant: &Tenant, vars: serde_json::Value) -> Value {
    let branding = &tenant.settings.branding;
    let product_name = branding
        .product_name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or(&tenant.name)
        .to_owned();
    let logo_url = branding
        .logo_url
        .as_deref()
        .map(str::trim)
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"));
    let primary_color = branding
        .primary_color
        .as_deref()
        .map(str::trim)
        .filter(|color| is_hex_color(color))
        .unwrap_or(DEFAULT_COLOR);
    let mut map = match vars {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("vars".to_owned(), other)]),
    };
    map.insert("product_name".into(), product_name.clone().into());
    map.insert(
        "branding".into(),
        serde_json::json!({
            "product_name": product_name,
            "logo_url": logo_url,
            "primary_color": primary_color,
            "support_email": branding.support_email,
            "mail_from": branding.mail_from,
        }),
    );
    map.insert(
        "tenant".into(),
        serde_json::json!({"slug": tenant.slug, "name": tenant.name}),
    );
    Value::from(minijinja::value::Serde(&map))
}

fn is_hex_color(value: &str) -> bool {
    value.strip_prefix('#').is_some_and(|hex| {
        matches!(hex.len(), 3 | 4 | 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The sender: the branding's `mail_from` when it is a valid mailbox, else `default_from`.
fn sender(tenant: &Tenant, default_from: &str) -> String {
    match tenant.settings.branding.mail_from.as_deref().map(str::trim) {
        Some(from) if !from.is_empty() => match from.parse::<Mailbox>() {
            Ok(mailbox) => mailbox.to_string(),
            Err(_) => {
                tracing::warn!(tenant = %tenant.slug, "branding mailFrom is not a valid mailbox; using AUTH_MAIL_FROM");
                default_from.to_owned()
            }
        },
        _ => default_from.to_owned(),
    }
}

/// One line: line breaks (and other control characters) become spaces, so a subject cannot
/// add headers; runs of whitespace collapse; overlong subjects are cut.
pub(crate) fn single_line(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > MAX_SUBJECT_CHARS {
        out = out.chars().take(MAX_SUBJECT_CHARS - 1).collect::<String>() + "…";
    }
    out
}

fn ensure_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Branding, MailTemplate, TenantSettings};
    use serde_json::json;

    fn tenant(settings: TenantSettings) -> Tenant {
        Tenant {
            id: "t1".into(),
            slug: "acme".into(),
            name: "Acme".into(),
            created_at: 0,
            settings,
        }
    }

    fn code_vars() -> serde_json::Value {
        json!({"code": "123456", "expires_minutes": 10, "email": "ada@example.com"})
    }

    fn with_template(template: MailTemplate) -> TenantSettings {
        let mut settings = TenantSettings::default();
        settings.templates.insert("signin".into(), template);
        settings
    }

    const FROM: &str = "Auth <no-reply@localhost>";

    #[test]
    fn every_default_renders_with_the_variables_the_service_passes() {
        let env = environment();
        let tenant = tenant(TenantSettings::default());
        let cases = [
            (Template::Signup, code_vars()),
            (Template::Signin, code_vars()),
            (
                Template::PasswordReset,
                json!({"token": "tok-123", "link": "https://app.test/reset?token=tok-123", "expires_minutes": 60, "email": "ada@example.com"}),
            ),
            (
                Template::PasswordReset,
                json!({"token": "tok-123", "link": null, "expires_minutes": 60, "email": "ada@example.com"}),
            ),
            (Template::ApproveNewEmail, code_vars()),
            (Template::RemoveEmail, json!({"email": "old@example.com"})),
            (
                Template::ChangePrimaryEmail,
                json!({"email": "new@example.com", "old_email": "old@example.com", "new_email": "new@example.com"}),
            ),
            (
                Template::MfaFactorAdded,
                json!({"factor": "An authenticator app", "email": "ada@example.com"}),
            ),
            (
                Template::MfaFactorRemoved,
                json!({"factor": "An authenticator app", "by_admin": true, "email": "ada@example.com"}),
            ),
            (
                Template::PasskeyAdded,
                json!({"name": "Laptop", "email": "ada@example.com"}),
            ),
            (
                Template::PasskeyRemoved,
                json!({"name": "Laptop", "email": "ada@example.com"}),
            ),
        ];
        for (template, vars) in cases {
            let mail = render(&env, &tenant, template, vars.clone(), FROM).unwrap();
            assert!(!mail.subject.is_empty(), "{template:?}");
            assert!(!mail.subject.contains('\n'));
            assert!(mail.text.contains("Acme"), "{template:?}: {}", mail.text);
            let html = mail.html.expect("default has HTML");
            assert!(html.contains("<!doctype html>"));
            // The body is put into the layout once, not escaped a second time.
            assert!(html.contains("<p style=\"margin:0 0 16px\">"), "{html}");
            assert!(!html.contains("&lt;p") && !html.contains("&amp;"), "{html}");
            assert_eq!(mail.from, FROM);
            for key in ["code", "token", "old_email"] {
                if let Some(value) = vars[key].as_str() {
                    assert!(
                        mail.text.contains(value),
                        "{template:?} text lacks {key}: {}",
                        mail.text
                    );
                    assert!(html.contains(value), "{template:?} html lacks {key}");
                }
            }
        }
    }

    #[test]
    fn reset_mail_carries_the_link_when_there_is_one_and_the_token_otherwise() {
        let env = environment();
        let tenant = tenant(TenantSettings::default());
        let with_link = render(
            &env,
            &tenant,
            Template::PasswordReset,
            json!({"token": "tok-123", "link": "https://app.test/reset?a=1&token=tok-123", "expires_minutes": 60, "email": "a@example.com"}),
            FROM,
        )
        .unwrap();
        assert!(
            with_link
                .text
                .contains("https://app.test/reset?a=1&token=tok-123")
        );
        assert!(
            with_link
                .html
                .unwrap()
                .contains("https:&#x2f;&#x2f;app.test&#x2f;reset?a=1&amp;token=tok-123")
        );
        let without = render(
            &env,
            &tenant,
            Template::PasswordReset,
            json!({"token": "tok-123", "link": null, "expires_minutes": 60, "email": "a@example.com"}),
            FROM,
        )
        .unwrap();
        assert!(without.text.contains("tok-123"));
        assert!(!without.text.contains("link"));
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let env = environment();
        let settings = TenantSettings {
            branding: Branding {
                product_name: Some("Tom & <Jerry>".into()),
                ..Branding::default()
            },
            ..TenantSettings::default()
        };
        let mail = render(&env, &tenant(settings), Template::Signin, code_vars(), FROM).unwrap();
        assert!(mail.subject.contains("Tom & <Jerry>"));
        assert!(mail.text.contains("Tom & <Jerry>"));
        let html = mail.html.unwrap();
        assert!(html.contains("Tom &amp; &lt;Jerry&gt;"), "{html}");
        assert!(!html.contains("<Jerry>"));
    }

    #[test]
    fn branding_values_that_are_not_urls_or_colours_are_dropped() {
        let env = environment();
        let settings = TenantSettings {
            branding: Branding {
                logo_url: Some("javascript:alert(1)".into()),
                primary_color: Some("red;background:url(x)".into()),
                ..Branding::default()
            },
            ..TenantSettings::default()
        };
        let html = render(&env, &tenant(settings), Template::Signin, code_vars(), FROM)
            .unwrap()
            .html
            .unwrap();
        assert!(!html.contains("javascript"));
        assert!(!html.contains("url(x)"));
        assert!(html.contains(DEFAULT_COLOR));
    }

    #[test]
    fn tenant_overrides_replace_their_part_only() {
        let env = environment();
        let settings = with_template(MailTemplate {
            subject: Some("{{ tenant.name }} code {{ code }}".into()),
            text: None,
            html: Some("<p>Code: <b>{{ code }}</b> for {{ email }}</p>".into()),
        });
        let mail = render(&env, &tenant(settings), Template::Signin, code_vars(), FROM).unwrap();
        assert_eq!(mail.subject, "Acme code 123456");
        assert!(mail.text.contains("Use this code to sign in to Acme"));
        assert_eq!(
            mail.html.as_deref(),
            Some("<p>Code: <b>123456</b> for ada@example.com</p>")
        );
    }

    #[test]
    fn a_broken_override_falls_back_to_the_default() {
        let env = environment();
        let settings = with_template(MailTemplate {
            subject: Some("{% if %}".into()),
            text: Some("{{ code | no_such_filter }}".into()),
            html: Some("{% for i in range(100000000) %}{{ i }}{% endfor %}".into()),
        });
        let mail = render(&env, &tenant(settings), Template::Signin, code_vars(), FROM).unwrap();
        assert_eq!(mail.subject, "Your Acme sign-in code: 123456");
        assert!(mail.text.contains("Use this code to sign in to Acme"));
        assert!(mail.html.unwrap().contains("<!doctype html>"));
    }

    #[test]
    fn an_empty_html_override_sends_text_only() {
        let env = environment();
        let settings = with_template(MailTemplate {
            subject: Some("   ".into()),
            text: Some("Code {{ code }}".into()),
            html: Some(String::new()),
        });
        let mail = render(&env, &tenant(settings), Template::Signin, code_vars(), FROM).unwrap();
        assert_eq!(mail.subject, "Your Acme sign-in code: 123456");
        assert_eq!(mail.text, "Code 123456\n");
        assert_eq!(mail.html, None);
    }

    #[test]
    fn subjects_are_single_lines() {
        let env = environment();
        let settings = with_template(MailTemplate {
            subject: Some("Code {{ code }}\r\nBcc: victim@example.com\n{{ email }}".into()),
            ..MailTemplate::default()
        });
        let mail = render(&env, &tenant(settings), Template::Signin, code_vars(), FROM).unwrap();
        assert_eq!(
            mail.subject,
            "Code 123456 Bcc: victim@example.com ada@example.com"
        );
        assert_eq!(
            single_line(&"x".repeat(500)).chars().count(),
            MAX_SUBJECT_CHARS
        );
        assert_eq!(single_line(" a\u{0}\tb \u{85} c "), "a b c");
    }

    #[test]
    fn sender_comes_from_branding_when_it_is_a_mailbox() {
        let env = environment();
        let mut settings = TenantSettings::default();
        settings.branding.mail_from = Some("Acme <hello@acme.test>".into());
        let mail = render(
            &env,
            &tenant(settings.clone()),
            Template::Signin,
            code_vars(),
            FROM,
        )
        .unwrap();
        assert_eq!(mail.from, "Acme <hello@acme.test>");
        settings.branding.mail_from = Some("not a mailbox\r\nBcc: x@y.z".into());
        let mail = render(&env, &tenant(settings), Template::Signin, code_vars(), FROM).unwrap();
        assert_eq!(mail.from, FROM);
    }
}
