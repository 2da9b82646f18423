//! Outgoing mail: templates rendered per tenant, queued in a durable outbox in the caller's
//! transaction, delivered off the request path by SMTP (or written to the log when
//! `SMTP_URL` is unset).
//!
//! SKELETON: the interface the service is written against; the real rendering and delivery
//! replace these bodies.

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::MasterKey;
use crate::domain::{Email, Tenant, new_id, now_ms};
use crate::store::Store;

/// The mails the service sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// A sign-in code for an email without an account (the account is created on use).
    Signup,
    /// A sign-in code for an existing account.
    Signin,
    /// A password-reset link or token.
    PasswordReset,
    /// A code confirming a newly added email.
    ApproveNewEmail,
    /// Notice that an email was removed from an account.
    RemoveEmail,
    /// Notice that the primary email changed.
    ChangePrimaryEmail,
}

impl Template {
    /// The name used in tenant settings and in the outbox.
    pub fn name(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Signin => "signin",
            Self::PasswordReset => "passwordReset",
            Self::ApproveNewEmail => "approveNewEmail",
            Self::RemoveEmail => "removeEmail",
            Self::ChangePrimaryEmail => "changePrimaryEmail",
        }
    }
}

/// A rendered mail, sealed, ready to be inserted into the outbox.
#[derive(Debug, Clone)]
pub struct Composed {
    /// Outbox row id.
    pub id: String,
    /// Tenant it is sent for.
    pub tenant_id: String,
    /// Template name.
    pub template: &'static str,
    /// Recipient address.
    pub recipient: String,
    /// The message (sender, subject, bodies) sealed with the master key.
    pub sealed: String,
    /// When it was composed.
    pub created_at: i64,
}

/// Composes mail and delivers the outbox.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    master: MasterKey,
    from: String,
    wake: tokio::sync::Notify,
    _store: Store,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for the configuration (`SMTP_URL`, `AUTH_MAIL_FROM`).
    pub fn new(config: &Config, store: Store, master: MasterKey) -> anyhow::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                master,
                from: config.mail_from.clone(),
                wake: tokio::sync::Notify::new(),
                _store: store,
            }),
        })
    }

    /// Render `template` for `tenant` with `vars` (e.g. `code`, `link`) and seal it.
    pub fn compose(
        &self,
        tenant: &Tenant,
        to: &Email,
        template: Template,
        vars: serde_json::Value,
    ) -> anyhow::Result<Composed> {
        let id = new_id();
        let message = serde_json::json!({
            "from": self.inner.from,
            "subject": template.name(),
            "text": vars.to_string(),
        });
        Ok(Composed {
            sealed: self
                .inner
                .master
                .seal(&format!("mail_outbox:{id}"), message.to_string().as_bytes()),
            id,
            tenant_id: tenant.id.clone(),
            template: template.name(),
            recipient: to.as_str().to_owned(),
            created_at: now_ms(),
        })
    }

    /// Wake the sender after a commit that queued mail.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Deliver queued mail until the task is aborted.
    pub async fn run(self) {
        loop {
            self.inner.wake.notified().await;
        }
    }
}
