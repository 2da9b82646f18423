//! Outgoing mail: templates rendered per tenant ([`render`]), queued in a durable outbox in
//! the caller's transaction ([`crate::store::outbox`]), delivered off the request path by
//! SMTP, or written to the log when `SMTP_URL` is unset.
//!
//! The flow: the service calls [`Mailer::compose`] (render and seal, no I/O) before its
//! transaction, inserts the [`Composed`] row with [`crate::store::outbox::insert_mail`]
//! inside it, and calls [`Mailer::wake`] after the commit. [`Mailer::run`] (one task per
//! API process) wakes on that and on a one-second tick, claims due rows, opens them, sends
//! them with a timeout, and records the outcome: sent (the message is erased), or failed
//! with an exponential backoff (1 s, 2 s, 4 s … at most 5 min) until [`MAX_ATTEMPTS`],
//! after which the row is given up; the first mail that goes out after the server could not
//! be reached brings the other retries forward, so an outage delays mail by its own length,
//! not by the backoff. A slow or absent SMTP server therefore never blocks a request, and
//! queued mail survives restarts.
//!
//! Codes, tokens and bodies are never logged, except by the log mailer, whose whole point
//! is to show the mail to a developer.

pub mod render;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::Config;
use crate::crypto::MasterKey;
use crate::domain::{Composed, Email, Tenant, new_id, now_ms};
use crate::store::Store;
use crate::store::outbox::ClaimedMail;
use render::Rendered;

/// Attempts after which a mail is given up.
pub const MAX_ATTEMPTS: i64 = 12;
/// Longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;
/// Longest time one SMTP send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a claim holds a row: longer than a send can take, so two workers never send
/// the same row; a worker that dies leaves the row for this long.
const LEASE_MS: i64 = 60_000;
/// Mails sent at the same time by one worker.
const CONCURRENCY: i64 = 4;
/// How often the worker looks for due mail without being woken.
const POLL: Duration = Duration::from_secs(1);
/// How long sent or failed rows are kept (without their message) before they are deleted.
const KEEP_DONE_MS: i64 = 7 * 24 * 3600 * 1000;

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
    /// Notice that a second factor was added (`factor` names it).
    MfaFactorAdded,
    /// Notice that a second factor was removed (`factor` names it; `by_admin` when an
    /// admin reset them).
    MfaFactorRemoved,
    /// Notice that a passkey was added to the account.
    PasskeyAdded,
    /// Notice that a passkey was removed from the account.
    PasskeyRemoved,
}

impl Template {
    /// Every template, in a fixed order.
    pub const ALL: [Template; 10] = [
        Self::Signup,
        Self::Signin,
        Self::PasswordReset,
        Self::ApproveNewEmail,
        Self::RemoveEmail,
        Self::ChangePrimaryEmail,
        Self::MfaFactorAdded,
        Self::MfaFactorRemoved,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
    ];

    /// The name used in tenant settings and in the outbox.
    pub fn name(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Signin => "signin",
            Self::PasswordReset => "passwordReset",
            Self::ApproveNewEmail => "approveNewEmail",
            Self::RemoveEmail => "removeEmail",
            Self::ChangePrimaryEmail => "changePrimaryEmail",
            Self::MfaFactorAdded => "mfaFactorAdded",
            Self::MfaFactorRemoved => "mfaFactorRemoved",
            Self::PasskeyAdded => "passkeyAdded",
            Self::PasskeyRemoved => "passkeyRemoved",
        }
    }
}

/// Composes mail and delivers the outbox.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    master: MasterKey,
    /// `AUTH_MAIL_FROM`, checked to be a mailbox.
    from: String,
    env: minijinja::Environment<'static>,
    transport: Transport,
    wake: tokio::sync::Notify,
    store: Store,
    /// Set when the server could not be reached for an attempt: the next mail that goes out
    /// brings every retry forward, so mail queued during an outage leaves when the server is
    /// back, not when each row's backoff (up to five minutes) ends.
    backing_off: std::sync::atomic::AtomicBool,
}

/// Where mail goes.
enum Transport {
    /// An SMTP server (`SMTP_URL`).
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// The log, at info level (no `SMTP_URL`).
    Log,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").finish_non_exhaustive()
    }
}

/// Why one delivery attempt failed; the text is stored as `last_error`, so it names the
/// failure without the message's content.
#[derive(Debug)]
enum SendError {
    /// Worth retrying: the server's temporary or permanent reply to this mail.
    Retry(String),
    /// Worth retrying: the server could not be reached or did not answer in time (the
    /// connection, a timeout), so other mail waits on it too.
    Down(String),
    /// Can never succeed (unreadable message, unusable address).
    Fatal(String),
}

impl Mailer {
    /// A mailer for the configuration (`SMTP_URL`, `AUTH_MAIL_FROM`). Fails when
    /// `SMTP_URL` is malformed or `AUTH_MAIL_FROM` is not a mailbox. Connects to nothing:
    /// the SMTP server is reached when mail is sent.
    pub fn new(config: &Config, store: Store, master: MasterKey) -> anyhow::Result<Self> {
        let from = config
            .mail_from
            .parse::<Mailbox>()
            .map_err(|error| anyhow::anyhow!("AUTH_MAIL_FROM is not a valid mailbox: {error}"))?
            .to_string();
        let transport = match config.smtp_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|error| anyhow::anyhow!("SMTP_URL is malformed: {error}"))?
                    .timeout(Some(SEND_TIMEOUT))
                    .pool_config(
                        lettre::transport::smtp::PoolConfig::new()
                            .max_size(CONCURRENCY as u32)
                            .idle_timeout(Duration::from_secs(30)),
                    )
                    .build(),
            ),
            _ => Transport::Log,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                master,
                from,
                env: render::environment(),
                transport,
                wake: tokio::sync::Notify::new(),
                store,
                backing_off: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Render `template` for `tenant` with `vars` (e.g. `code`, `link`) and seal it. No
    /// I/O. A tenant template that fails falls back to the shipped one; this fails only
    /// when a shipped template does (a bug).
    pub fn compose(
        &self,
        tenant: &Tenant,
        to: &Email,
        template: Template,
        vars: serde_json::Value,
    ) -> anyhow::Result<Composed> {
        let rendered = render::render(&self.inner.env, tenant, template, vars, &self.inner.from)?;
        let id = new_id();
        let message = serde_json::to_vec(&rendered).context("serialising a mail")?;
        Ok(Composed {
            sealed: self.inner.master.seal(&seal_context(&id), &message),
            id,
            tenant_id: tenant.id.clone(),
            template: template.name(),
            recipient: to.as_str().to_owned(),
            created_at: now_ms(),
        })
    }

    /// Open a sealed outbox message (for tests and operators); `None` when it does not open
    /// under this master key and row id.
    pub fn open(&self, id: &str, sealed: &str) -> Option<Rendered> {
        let plain = self.inner.master.open(&seal_context(id), sealed)?;
        serde_json::from_slice(&plain).ok()
    }

    /// Wake the sender after a commit that queued mail.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Deliver queued mail until the task is aborted. Never returns an error: database
    /// and SMTP failures are logged and retried.
    pub async fn run(self) {
        if matches!(self.inner.transport, Transport::Log) {
            tracing::warn!("SMTP_URL is not set: mail is written to the log instead of being sent");
        }
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge = 0;
        loop {
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tick.tick() => {}
            }
            if let Err(error) = self.deliver_due().await {
                tracing::warn!(error = %error, "mail outbox: claiming due mail failed");
            }
            let now = now_ms();
            if now - last_purge > 3600 * 1000 {
                last_purge = now;
                match self.inner.store.purge_mail(now - KEEP_DONE_MS).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "mail outbox: old rows deleted"),
                    Err(error) => tracing::warn!(error = %error, "mail outbox: purge failed"),
                }
            }
        }
    }

    /// Send every mail that is due now, a few at a time, and record each outcome; returns
    /// how many rows were attempted. Fails only when the database cannot be reached for a
    /// claim. [`Mailer::run`] calls this; tests may call it to deliver without waiting.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let mut attempted = 0;
        loop {
            let claimed = self
                .inner
                .store
                .claim_due_mail(now_ms(), LEASE_MS, CONCURRENCY)
                .await?;
            let count = claimed.len();
            attempted += count;
            futures_util::future::join_all(claimed.into_iter().map(|mail| self.attempt(mail)))
                .await;
            if count < CONCURRENCY as usize {
                return Ok(attempted);
            }
        }
    }

    /// One delivery attempt of a claimed row, and its outcome recorded.
    async fn attempt(&self, mail: ClaimedMail) {
        let outcome = match self.message_of(&mail) {
            Ok(message) => self.send(&mail, message).await,
            Err(error) => Err(error),
        };
        let store = &self.inner.store;
        let now = now_ms();
        let recorded = match outcome {
            Ok(kind) => {
                metrics::counter!("auth_mail_sent_total", "outcome" => kind).increment(1);
                let recorded = store.mark_mail_sent(&mail.id, now).await;
                self.server_back(now).await;
                recorded
            }
            Err(error) => {
                let (reason, give_up) = match &error {
                    SendError::Retry(reason) => (reason, mail.attempts >= MAX_ATTEMPTS),
                    SendError::Down(reason) => {
                        // Brought forward once the server answers again; a mail the server
                        // itself turned away is not (each retry costs one of its attempts).
                        self.inner.backing_off.store(true, Ordering::Release);
                        (reason, mail.attempts >= MAX_ATTEMPTS)
                    }
                    SendError::Fatal(reason) => (reason, true),
                };
                let outcome = if give_up { "failed" } else { "retry" };
                metrics::counter!("auth_mail_sent_total", "outcome" => outcome).increment(1);
                let next = now + backoff_ms(mail.attempts);
                if give_up {
                    tracing::error!(mail = %mail.id, template = %mail.template, attempts = mail.attempts, error = %reason, "mail given up");
                } else {
                    tracing::warn!(mail = %mail.id, template = %mail.template, attempts = mail.attempts, error = %reason, retry_in_ms = next - now, "mail not sent; will retry");
                }
                store
                    .mark_mail_failed(&mail.id, reason, now, next, give_up)
                    .await
            }
        };
        if let Err(error) = recorded {
            // The lease runs out and the row is tried again: at worst a duplicate mail.
            tracing::warn!(mail = %mail.id, error = %error, "mail outbox: recording an outcome failed");
        }
    }

    /// A mail went out: if others are waiting out a backoff, make them due now and wake the
    /// worker for them.
    async fn server_back(&self, now: i64) {
        if !self.inner.backing_off.swap(false, Ordering::AcqRel) {
            return;
        }
        match self.inner.store.retry_waiting_mail(now).await {
            Ok(0) => {}
            Ok(count) => {
                tracing::info!(count, "mail server answers again: waiting mail retried now");
                self.wake();
            }
            Err(error) => {
                tracing::warn!(error = %error, "mail outbox: bringing retries forward failed");
            }
        }
    }

    /// Open the sealed row and build the MIME message.
    fn message_of(&self, mail: &ClaimedMail) -> Result<(Rendered, Message), SendError> {
        let rendered = mail
            .message
            .as_deref()
            .and_then(|sealed| self.open(&mail.id, sealed))
            .ok_or_else(|| {
                SendError::Fatal("the sealed message does not open under this master key".into())
            })?;
        let to: Mailbox = mail
            .recipient
            .parse()
            .map_err(|_| SendError::Fatal("the recipient is not a valid address".into()))?;
        let from: Mailbox = rendered
            .from
            .parse()
            .or_else(|_| self.inner.from.parse())
            .map_err(|_| SendError::Fatal("the sender is not a valid mailbox".into()))?;
        let builder = Message::builder()
            .from(from)
            .to(to)
            .subject(render::single_line(&rendered.subject));
        let built = match &rendered.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                rendered.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(SinglePart::plain(rendered.text.clone())),
        };
        let message = built
            .map_err(|error| SendError::Fatal(format!("cannot build the message: {error}")))?;
        Ok((rendered, message))
    }

    /// Hand the message to the transport; returns the metric outcome.
    async fn send(
        &self,
        mail: &ClaimedMail,
        (rendered, message): (Rendered, Message),
    ) -> Result<&'static str, SendError> {
        match &self.inner.transport {
            Transport::Log => {
                tracing::info!(
                    to = %mail.recipient,
                    from = %rendered.from,
                    subject = %rendered.subject,
                    template = %mail.template,
                    "mail (SMTP_URL unset, so it is logged instead of sent):\n{}",
                    rendered.text
                );
                Ok("logged")
            }
            Transport::Smtp(transport) => {
                match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
                    Ok(Ok(_)) => Ok("sent"),
                    Ok(Err(error)) if error.is_permanent() || error.is_transient() => {
                        Err(SendError::Retry(smtp_error(&error)))
                    }
                    Ok(Err(error)) => Err(SendError::Down(smtp_error(&error))),
                    Err(_) => Err(SendError::Down(format!(
                        "SMTP send timed out after {} s",
                        SEND_TIMEOUT.as_secs()
                    ))),
                }
            }
        }
    }
}

fn seal_context(id: &str) -> String {
    format!("mail_outbox:{id}")
}

/// Wait before the attempt after `attempts` failed ones: 1 s, 2 s, 4 s … at most 5 min.
fn backoff_ms(attempts: i64) -> i64 {
    let exponent = attempts.clamp(1, 20) - 1;
    (1000_i64 << exponent).min(MAX_BACKOFF_MS)
}

/// The SMTP error for `last_error`: what kind, the server's code and the error text
/// (lettre's errors carry the server's reply, never the message or credentials), with
/// the whole `source` chain, cut to a reasonable length.
fn smtp_error(error: &lettre::transport::smtp::Error) -> String {
    let kind = if error.is_permanent() {
        "permanent SMTP error"
    } else if error.is_transient() {
        "temporary SMTP error"
    } else if error.is_timeout() {
        "SMTP timeout"
    } else {
        "SMTP connection error"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff_ms(1), 1000);
        assert_eq!(backoff_ms(2), 2000);
        assert_eq!(backoff_ms(3), 4000);
        assert_eq!(backoff_ms(9), 256_000);
        assert_eq!(backoff_ms(10), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(MAX_ATTEMPTS), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(1000), MAX_BACKOFF_MS);
    }

    #[test]
    fn template_names_are_distinct() {
        let names: std::collections::BTreeSet<_> = Template::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names.len(), Template::ALL.len());
    }
}
