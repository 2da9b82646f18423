//! Passkeys (WebAuthn with webauthn-rs): registering discoverable credentials, signing in
//! with one alone, and using one as the second factor of a sign-in.
//!
//! Every ceremony keeps its state server-side (`passkey_challenges`) from its start to its
//! finish, for five minutes, and is taken (deleted) by the finish whatever the outcome, so a
//! challenge is answered once. A registration and a second factor are found again by the
//! challenge the browser signed (within the user's own ceremonies); a passkey sign-in by its
//! `challengeId`. Credentials are looked up within the tenant only. After a verified
//! assertion the stored credential (sign counter, backup state) is updated as webauthn-rs
//! advises, in one conditional statement that also fails when the credential was deleted
//! meanwhile or the counter did not move forward.
//!
//! webauthn-rs's `Passkey` type always requires user verification (a PIN or biometric on the
//! authenticator), at registration and at every assertion: a passkey is then a complete
//! second factor by itself, which is why a passkey sign-in never asks for another one.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey as WebauthnPasskey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use super::limits::Guarded;
use super::mail::Template;
use super::mfa::Cleared;
use super::{Auth, Caller, Error, Issued, Result, user_of};
use crate::config::Config;
use crate::domain::{
    AuditAction, Device, Email, EmailState, FieldInvalid, Passkey, SignInMethod, Tenant, User,
    new_id, now_ms, passkey_name,
};
use crate::store::audit::AuditEvent;
use crate::store::passkeys::{CeremonyKind, NewCeremony, NewPasskey, PasskeyUse, StoredPasskey};

/// How long a ceremony may take, start to finish (also the browser's timeout).
const CEREMONY_TTL: Duration = Duration::from_secs(300);

const NOT_ACCEPTED: Error = Error::WrongSecret("this passkey was not accepted");
const CHALLENGE_GONE: Error =
    Error::WrongSecret("this passkey challenge has expired or was already used; start again");

/// The relying party: webauthn-rs configured from `AUTH_WEBAUTHN_RP_ID` and
/// `AUTH_WEBAUTHN_ORIGINS`, or why passkeys are off.
#[derive(Clone)]
pub(super) struct RelyingParty {
    webauthn: std::result::Result<Arc<Webauthn>, String>,
}

impl RelyingParty {
    /// The relying party of `config`. An explicit `AUTH_WEBAUTHN_RP_ID` or
    /// `AUTH_WEBAUTHN_ORIGINS` that cannot work stops start-up; the defaults (from
    /// `AUTH_ISSUER`) that cannot work (an IP address is no relying-party id) only turn
    /// passkeys off.
    pub(super) fn new(config: &Config) -> anyhow::Result<Self> {
        let explicit = config.webauthn_rp_id.is_some() || !config.webauthn_origins.is_empty();
        match build(&config.webauthn_rp_id(), &config.webauthn_origins()) {
            Ok(webauthn) => Ok(Self {
                webauthn: Ok(Arc::new(webauthn)),
            }),
            Err(why) if explicit => anyhow::bail!("{why}"),
            Err(why) => {
                tracing::info!(reason = %why, "passkeys are off: set AUTH_WEBAUTHN_RP_ID and AUTH_WEBAUTHN_ORIGINS");
                Ok(Self {
                    webauthn: Err(format!(
                        "passkeys are not configured on this server ({why}); set AUTH_WEBAUTHN_RP_ID and AUTH_WEBAUTHN_ORIGINS"
                    )),
                })
            }
        }
    }

    fn get(&self) -> Result<&Webauthn> {
        self.webauthn
            .as_deref()
            .map_err(|why| Error::Forbidden(why.clone()))
    }

    /// Whether passkeys can be used at all.
    pub(super) fn enabled(&self) -> bool {
        self.webauthn.is_ok()
    }
}

fn build(rp_id: &str, origins: &[String]) -> std::result::Result<Webauthn, String> {
    if rp_id.is_empty() || rp_id.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "AUTH_WEBAUTHN_RP_ID must be a domain name, not {rp_id:?}"
        ));
    }
    let urls = origins
        .iter()
        .map(|origin| {
            let url = Url::parse(origin)
                .map_err(|_| format!("AUTH_WEBAUTHN_ORIGINS: {origin} is not an origin"))?;
            let on_domain = url
                .domain()
                .is_some_and(|host| host == rp_id || host.ends_with(&format!(".{rp_id}")));
            if !on_domain {
                return Err(format!(
                    "AUTH_WEBAUTHN_ORIGINS: {origin} is not on the relying party's domain {rp_id} (AUTH_WEBAUTHN_RP_ID)"
                ));
            }
            Ok(url)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let (first, rest) = urls
        .split_first()
        .ok_or_else(|| "AUTH_WEBAUTHN_ORIGINS names no origin".to_owned())?;
    let mut builder = WebauthnBuilder::new(rp_id, first)
        .map_err(|error| format!("AUTH_WEBAUTHN_RP_ID {rp_id}: {error}"))?
        .rp_name(rp_id)
        .timeout(CEREMONY_TTL);
    for url in rest {
        builder = builder.append_allowed_origin(url);
    }
    builder
        .build()
        .map_err(|error| format!("WebAuthn configuration: {error}"))
}

/// The challenge a browser signed, from the credential's `clientDataJSON`.
fn signed_challenge(client_data_json: &[u8]) -> Option<String> {
    let data: Value = serde_json::from_slice(client_data_json).ok()?;
    data["challenge"].as_str().map(str::to_owned)
}

fn bad_credential(why: impl std::fmt::Display) -> Error {
    FieldInvalid::new("credential", format!("not a WebAuthn credential: {why}")).into()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|error| Error::Internal(error.into()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|error| Error::Internal(anyhow::anyhow!("stored {what} unreadable: {error}")))
}

/// The challenge of creation or request options, as the browser will sign it.
fn options_challenge(options: &Value) -> Result<String> {
    options["publicKey"]["challenge"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("WebAuthn options without a challenge")))
}

/// The backup flags webauthn-rs recorded for a credential (eligible, state).
fn backup_flags(passkey: &WebauthnPasskey) -> (bool, bool) {
    let value = serde_json::to_value(passkey).unwrap_or_default();
    (
        value["cred"]["backup_eligible"].as_bool().unwrap_or(false),
        value["cred"]["backup_state"].as_bool().unwrap_or(false),
    )
}

fn credential_id_text(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

impl Auth {
    /// The signed-in user's passkeys, oldest first.
    pub async fn passkeys(&self, tenant: &Tenant, caller: &Caller) -> Result<Vec<Passkey>> {
        let user_id = user_of(caller)?;
        let stored = self.store.passkeys(&tenant.id, user_id).await?;
        Ok(stored.into_iter().map(|p| p.record).collect())
    }

    /// Start registering a passkey for the signed-in user: WebAuthn creation options for a
    /// discoverable credential with user verification, excluding the user's existing ones.
    pub async fn start_passkey_registration(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        origin: &Device,
    ) -> Result<Value> {
        let webauthn = self.passkey_rp.get()?;
        let user_id = user_of(caller)?;
        self.throttle(tenant, Guarded::PasskeyRegistration, user_id, origin)
            .await?;
        let user = self.store.user_by_id(&tenant.id, user_id).await?;
        let handle = Uuid::parse_str(&user.id)
            .map_err(|_| Error::Internal(anyhow::anyhow!("user id is not a UUID")))?;
        let existing = self.store.passkeys(&tenant.id, &user.id).await?;
        let exclude = existing
            .iter()
            .map(|stored| {
                from_json::<WebauthnPasskey>(&stored.passkey, "passkey")
                    .map(|p| p.cred_id().clone())
            })
            .collect::<Result<Vec<_>>>()?;
        let email = self.owner_address(tenant, &user.id).await?;
        let account = email.as_deref().unwrap_or(&user.id);
        let display = user.name_display.as_deref().unwrap_or(account);
        let (options, state) = webauthn
            .start_passkey_registration(handle, account, display, Some(exclude))
            .map_err(|error| Error::Internal(anyhow::anyhow!("WebAuthn registration: {error}")))?;
        let mut options = serde_json::to_value(&options).map_err(anyhow::Error::from)?;
        // A discoverable credential (a passkey in the strict sense: it signs in without a
        // user named first), verified by PIN or biometric (webauthn-rs checks the flag).
        options["publicKey"]["authenticatorSelection"] = json!({
            "residentKey": "required",
            "requireResidentKey": true,
            "userVerification": "required",
        });
        options["publicKey"]["rp"]["name"] = json!(product_name(tenant));
        self.open_ceremony(
            tenant,
            CeremonyKind::Registration,
            Some(&user.id),
            &options,
            &to_json::<PasskeyRegistration>(&state)?,
        )
        .await?;
        Ok(options)
    }

    /// Finish a registration with the browser's credential (`credential.toJSON()`); the new
    /// passkey, named `name`. The owner is told by mail.
    pub async fn finish_passkey_registration(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        name: &str,
        credential: Value,
        origin: &Device,
    ) -> Result<Passkey> {
        let webauthn = self.passkey_rp.get()?;
        let user_id = user_of(caller)?;
        let name = passkey_name(name)?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(bad_credential)?;
        let challenge = signed_challenge(credential.response.client_data_json.as_ref())
            .ok_or_else(|| bad_credential("clientDataJSON carries no challenge"))?;
        let Some(ceremony) = self
            .store
            .take_ceremony_by_challenge(
                &tenant.id,
                CeremonyKind::Registration,
                user_id,
                &challenge,
                now_ms(),
            )
            .await?
        else {
            return Err(CHALLENGE_GONE);
        };
        let state: PasskeyRegistration = from_json(&ceremony.state, "registration")?;
        let passkey = match webauthn.finish_passkey_registration(&credential, &state) {
            Ok(passkey) => passkey,
            Err(error) => {
                self.audit_detail(
                    tenant,
                    AuditAction::PasskeyRegistrationFailed,
                    user_id,
                    origin,
                    json!({ "reason": error.to_string() }),
                )
                .await;
                return Err(FieldInvalid::new(
                    "credential",
                    format!("the passkey was not accepted: {error}"),
                )
                .into());
            }
        };
        let id = new_id();
        let credential_id = credential_id_text(passkey.cred_id().as_ref());
        let (backup_eligible, backed_up) = backup_flags(&passkey);
        let mail = self
            .passkey_notice(tenant, user_id, Template::PasskeyAdded, &name)
            .await?;
        let event = AuditEvent {
            detail: json!({ "passkeyId": id, "name": name, "backupEligible": backup_eligible }),
            ..self.event(
                AuditAction::PasskeyRegistered,
                None,
                user_id,
                session_of(caller),
                origin,
            )
        };
        let new = NewPasskey {
            id: &id,
            user_id,
            credential_id: &credential_id,
            name: &name,
            passkey: &to_json(&passkey)?,
            backup_eligible,
            backed_up,
            created_at: now_ms(),
        };
        let added = match self
            .store
            .add_passkey(&tenant.id, &new, mail.as_ref(), &event)
            .await
        {
            Err(crate::store::StoreError::Conflict(_)) => {
                return Err(Error::Conflict("this passkey is registered already".into()));
            }
            other => other?,
        };
        if mail.is_some() {
            self.mailer.wake();
        }
        Ok(added)
    }

    /// Start a passkey sign-in: request options with no user named and an empty
    /// `allowCredentials` (the authenticator offers the discoverable credentials it holds
    /// for this relying party), and the `challengeId` to finish with.
    pub async fn start_passkey_sign_in(
        &self,
        tenant: &Tenant,
        origin: &Device,
    ) -> Result<(String, Value)> {
        let webauthn = self.passkey_rp.get()?;
        let ip = origin.ip.as_deref().unwrap_or("unknown");
        self.throttle(tenant, Guarded::PasskeySignIn, ip, origin)
            .await?;
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(|error| Error::Internal(anyhow::anyhow!("WebAuthn sign-in: {error}")))?;
        let mut options = serde_json::to_value(&options).map_err(anyhow::Error::from)?;
        // webauthn-rs asks for conditional mediation (autofill); the page chooses that.
        if let Some(options) = options.as_object_mut() {
            options.remove("mediation");
        }
        let id = self
            .open_ceremony(
                tenant,
                CeremonyKind::SignIn,
                None,
                &options,
                &to_json::<DiscoverableAuthentication>(&state)?,
            )
            .await?;
        Ok((id, options))
    }

    /// Finish a passkey sign-in with the browser's assertion: a new session with method
    /// `passkey`. `INVALID_CREDENTIALS` for a used or expired challenge and for any
    /// assertion that does not verify (unknown, deleted or another tenant's credential,
    /// wrong signature, origin or relying party, no user verification, a counter that went
    /// back).
    pub async fn finish_passkey_sign_in(
        &self,
        tenant: &Tenant,
        challenge_id: &str,
        credential: Value,
        origin: &Device,
    ) -> Result<Issued> {
        let webauthn = self.passkey_rp.get()?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential).map_err(bad_credential)?;
        let Some(ceremony) = self
            .store
            .take_ceremony(
                &tenant.id,
                CeremonyKind::SignIn,
                challenge_id.trim(),
                now_ms(),
            )
            .await?
        else {
            return Err(CHALLENGE_GONE);
        };
        let state: DiscoverableAuthentication = from_json(&ceremony.state, "sign-in")?;
        let fail = |user_id: Option<String>, reason: String| async move {
            self.passkey_failed(tenant, user_id.as_deref(), origin, "sign_in", &reason)
                .await;
            NOT_ACCEPTED
        };
        let Ok((handle, raw_id)) = webauthn.identify_discoverable_authentication(&credential)
        else {
            return Err(fail(None, "no user handle".into()).await);
        };
        let credential_id = credential_id_text(raw_id);
        let Some(stored) = self
            .store
            .passkey_by_credential(&tenant.id, &credential_id)
            .await?
        else {
            return Err(fail(None, "unknown credential".into()).await);
        };
        let owner = stored.record.user_id.clone();
        if handle.to_string() != owner {
            return Err(fail(Some(owner), "user handle of another user".into()).await);
        }
        let mut passkey: WebauthnPasskey = from_json(&stored.passkey, "passkey")?;
        let result = match webauthn.finish_discoverable_authentication(
            &credential,
            state,
            &[DiscoverableKey::from(&passkey)],
        ) {
            Ok(result) => result,
            Err(error) => return Err(fail(Some(owner), error.to_string()).await),
        };
        let user = self.store.user_by_id(&tenant.id, &owner).await?;
        // A disabled account is refused before the credential's counter moves.
        self.refuse_disabled(tenant, &user, SignInMethod::Passkey, origin)
            .await?;
        if !self
            .count_use(tenant, &stored, &mut passkey, &result)
            .await?
        {
            return Err(fail(Some(owner), "deleted or counter did not advance".into()).await);
        }
        metrics::counter!("auth_sign_ins_total", "method" => "passkey", "outcome" => "success")
            .increment(1);
        // Verified with user verification, a passkey is both factors: no second step.
        self.open_session(
            tenant,
            user,
            SignInMethod::Passkey,
            AuditAction::UserSignIn,
            origin,
            None,
            None,
            Cleared::by_passkey_sign_in(),
        )
        .await
    }

    /// Rename one of the signed-in user's passkeys; `NOT_FOUND` for an id that is not
    /// theirs.
    pub async fn rename_passkey(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        id: &str,
        name: &str,
        origin: &Device,
    ) -> Result<Passkey> {
        let user_id = user_of(caller)?;
        let name = passkey_name(name)?;
        let event = AuditEvent {
            detail: json!({ "passkeyId": id, "name": name }),
            ..self.event(
                AuditAction::PasskeyRenamed,
                None,
                user_id,
                session_of(caller),
                origin,
            )
        };
        match self
            .store
            .rename_passkey(&tenant.id, user_id, id, &name, &event)
            .await
        {
            Err(crate::store::StoreError::NotFound) => Err(Error::NotFound("passkey")),
            other => Ok(other?),
        }
    }

    /// Delete one of the signed-in user's passkeys: it never signs in again. `NOT_FOUND`
    /// for an id that is not theirs. The owner is told by mail.
    pub async fn delete_passkey(
        &self,
        tenant: &Tenant,
        caller: &Caller,
        id: &str,
        origin: &Device,
    ) -> Result<bool> {
        let user_id = user_of(caller)?;
        let stored = self.store.passkeys(&tenant.id, user_id).await?;
        let Some(found) = stored.iter().find(|p| p.record.id == id) else {
            return Err(Error::NotFound("passkey"));
        };
        let mail = self
            .passkey_notice(
                tenant,
                user_id,
                Template::PasskeyRemoved,
                &found.record.name,
            )
            .await?;
        let event = AuditEvent {
            detail: json!({ "passkeyId": id, "name": found.record.name }),
            ..self.event(
                AuditAction::PasskeyDeleted,
                None,
                user_id,
                session_of(caller),
                origin,
            )
        };
        match self
            .store
            .delete_passkey(&tenant.id, user_id, id, mail.as_ref(), &event)
            .await
        {
            Err(crate::store::StoreError::NotFound) => return Err(Error::NotFound("passkey")),
            other => other?,
        }
        if mail.is_some() {
            self.mailer.wake();
        }
        Ok(true)
    }

    /// For the second step of a sign-in: how many of the user's `registered` passkeys count
    /// (any turns the second step on and offers `passkey`); none while passkeys are off.
    pub(in crate::service) fn passkeys_counted(&self, registered: i64) -> i64 {
        if self.passkey_rp.enabled() {
            registered
        } else {
            0
        }
    }

    /// For the second step of a sign-in: WebAuthn request options for `user`'s passkeys,
    /// their state kept under the pending sign-in `mfa_challenge_id` (as long as it lives);
    /// `None` when the user has none or passkeys are off.
    pub(in crate::service) async fn passkey_factor_options(
        &self,
        tenant: &Tenant,
        user: &User,
        mfa_challenge_id: &str,
    ) -> Result<Option<Value>> {
        let Ok(webauthn) = self.passkey_rp.get() else {
            return Ok(None);
        };
        let stored = self.store.passkeys(&tenant.id, &user.id).await?;
        if stored.is_empty() {
            return Ok(None);
        }
        let passkeys = stored
            .iter()
            .map(|s| from_json::<WebauthnPasskey>(&s.passkey, "passkey"))
            .collect::<Result<Vec<_>>>()?;
        let (options, state) = webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|error| Error::Internal(anyhow::anyhow!("WebAuthn second factor: {error}")))?;
        let options = serde_json::to_value(&options).map_err(anyhow::Error::from)?;
        let now = now_ms();
        let new = NewCeremony {
            id: mfa_challenge_id,
            kind: CeremonyKind::SecondFactor,
            user_id: Some(&user.id),
            challenge: &options_challenge(&options)?,
            state: &to_json::<PasskeyAuthentication>(&state)?,
            expires_at: now + CEREMONY_TTL.as_millis() as i64,
        };
        self.store.open_ceremony(&tenant.id, &new, now).await?;
        Ok(Some(options))
    }

    /// For the second step of a sign-in: whether `credential` (an assertion's JSON,
    /// answering the options of [`Auth::passkey_factor_options`] for `mfa_challenge_id`)
    /// proves one of `user`'s passkeys. A wrong one is `Ok(false)` and leaves the ceremony
    /// for another try (the mfaToken counts the attempts); a right one ends it, once, even
    /// when raced. `BAD_USER_INPUT` when the user has no passkey, or (field `passkey`) when
    /// it is no assertion at all.
    pub(in crate::service) async fn verify_passkey_factor(
        &self,
        tenant: &Tenant,
        user: &User,
        mfa_challenge_id: &str,
        credential: &Value,
    ) -> Result<bool> {
        let no_passkey = || {
            Error::BadInput(
                "no passkey: this account has no passkey to verify; use totpCode or recoveryCode"
                    .into(),
            )
        };
        let Ok(webauthn) = self.passkey_rp.get() else {
            return Err(no_passkey());
        };
        if self.store.passkeys(&tenant.id, &user.id).await?.is_empty() {
            return Err(no_passkey());
        }
        let credential: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|error| {
                Error::from(FieldInvalid::new(
                    "passkey",
                    format!("not a WebAuthn assertion: {error}"),
                ))
            })?;
        let origin = Device::default();
        let reason = match self
            .passkey_factor(webauthn, tenant, user, mfa_challenge_id, &credential)
            .await?
        {
            None => return Ok(true),
            Some(reason) => reason,
        };
        self.passkey_failed(tenant, Some(&user.id), &origin, "second_factor", &reason)
            .await;
        Ok(false)
    }

    /// [`Auth::verify_passkey_factor`] once the assertion parsed: `None` when it proved a
    /// passkey of the user (and the ceremony ended), else why not.
    async fn passkey_factor(
        &self,
        webauthn: &Webauthn,
        tenant: &Tenant,
        user: &User,
        mfa_challenge_id: &str,
        credential: &PublicKeyCredential,
    ) -> Result<Option<String>> {
        let now = now_ms();
        let Some(ceremony) = self
            .store
            .ceremony(
                &tenant.id,
                CeremonyKind::SecondFactor,
                mfa_challenge_id,
                now,
            )
            .await?
            .filter(|c| c.user_id.as_deref() == Some(user.id.as_str()))
        else {
            return Ok(Some("no passkey challenge for this sign-in".into()));
        };
        let state: PasskeyAuthentication = from_json(&ceremony.state, "second factor")?;
        let credential_id = credential_id_text(credential.get_credential_id());
        let Some(stored) = self
            .store
            .passkey_by_credential(&tenant.id, &credential_id)
            .await?
            .filter(|stored| stored.record.user_id == user.id)
        else {
            return Ok(Some("unknown credential".into()));
        };
        let mut passkey: WebauthnPasskey = from_json(&stored.passkey, "passkey")?;
        let result = match webauthn.finish_passkey_authentication(credential, &state) {
            Ok(result) => result,
            Err(error) => return Ok(Some(error.to_string())),
        };
        if !self
            .store
            .end_ceremony(&tenant.id, mfa_challenge_id)
            .await?
        {
            return Ok(Some("challenge already used".into()));
        }
        if !self
            .count_use(tenant, &stored, &mut passkey, &result)
            .await?
        {
            return Ok(Some("deleted or counter did not advance".into()));
        }
        Ok(None)
    }

    /// For an admin's reset of a user's factors: delete every passkey of `user_id`; how many
    /// went.
    pub(in crate::service) async fn remove_passkeys_for_reset(
        &self,
        tenant: &Tenant,
        user_id: &str,
    ) -> Result<u64> {
        Ok(self.store.delete_user_passkeys(&tenant.id, user_id).await?)
    }

    /// Record a ceremony for the options about to be sent; its id.
    async fn open_ceremony(
        &self,
        tenant: &Tenant,
        kind: CeremonyKind,
        user_id: Option<&str>,
        options: &Value,
        state: &str,
    ) -> Result<String> {
        let id = new_id();
        let now = now_ms();
        let challenge = options_challenge(options)?;
        let new = NewCeremony {
            id: &id,
            kind,
            user_id,
            challenge: &challenge,
            state,
            expires_at: now + CEREMONY_TTL.as_millis() as i64,
        };
        self.store.open_ceremony(&tenant.id, &new, now).await?;
        Ok(id)
    }

    /// Store what a verified assertion says about its credential (counter, backup state,
    /// last use), as webauthn-rs advises; false when the credential is gone or its counter
    /// did not advance (raced or cloned).
    async fn count_use(
        &self,
        tenant: &Tenant,
        stored: &StoredPasskey,
        passkey: &mut WebauthnPasskey,
        result: &webauthn_rs::prelude::AuthenticationResult,
    ) -> Result<bool> {
        passkey.update_credential(result);
        let used = PasskeyUse {
            id: &stored.record.id,
            sign_count: i64::from(result.counter()),
            passkey: &to_json(passkey)?,
            backed_up: result.backup_state(),
            backup_eligible: result.backup_eligible(),
            now: now_ms(),
        };
        Ok(self.store.use_passkey(&tenant.id, &used).await?)
    }

    async fn passkey_failed(
        &self,
        tenant: &Tenant,
        user_id: Option<&str>,
        origin: &Device,
        step: &str,
        reason: &str,
    ) {
        metrics::counter!("auth_sign_ins_total", "method" => "passkey", "outcome" => "invalid_credentials")
            .increment(1);
        let event = AuditEvent {
            action: AuditAction::PasskeySignInFailed,
            actor: user_id.map(Caller::user_actor),
            user_id,
            session_id: None,
            ip: origin.ip.as_deref(),
            user_agent: origin.user_agent.as_deref(),
            detail: json!({ "step": step, "reason": reason }),
        };
        self.store.audit(&tenant.id, event).await;
    }

    /// The notice about a passkey for the user's primary address, if they have one.
    async fn passkey_notice(
        &self,
        tenant: &Tenant,
        user_id: &str,
        template: Template,
        name: &str,
    ) -> Result<Option<crate::domain::Composed>> {
        let Some(address) = self.owner_address(tenant, user_id).await? else {
            return Ok(None);
        };
        let email = Email::parse(&address)?;
        Ok(Some(self.mailer.compose(
            tenant,
            &email,
            template,
            json!({ "name": name, "email": email.as_str() }),
        )?))
    }

    /// The user's primary address, if active.
    async fn owner_address(&self, tenant: &Tenant, user_id: &str) -> Result<Option<String>> {
        let emails = self.store.user_emails(&tenant.id, user_id).await?;
        Ok(emails
            .into_iter()
            .find(|e| e.state == EmailState::Active && e.is_primary)
            .map(|e| e.email))
    }
}

/// The session of a signed-in caller.
fn session_of(caller: &Caller) -> Option<&str> {
    match caller {
        Caller::User { session_id, .. } => Some(session_id),
        Caller::Machine { .. } => None,
    }
}

/// What the browser shows as the relying party's name.
fn product_name(tenant: &Tenant) -> &str {
    tenant
        .settings
        .branding
        .product_name
        .as_deref()
        .unwrap_or(&tenant.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relying_parties_need_a_domain_and_origins_on_it() {
        assert!(build("localhost", &["http://localhost:5173".into()]).is_ok());
        assert!(
            build(
                "example.com",
                &[
                    "https://app.example.com".into(),
                    "https://example.com".into()
                ]
            )
            .is_ok()
        );
        let ip = build("127.0.0.1", &["http://127.0.0.1:8080".into()]).unwrap_err();
        assert!(ip.contains("domain name"), "{ip}");
        let off = build("example.com", &["https://example.org".into()]).unwrap_err();
        assert!(off.contains("https://example.org"), "{off}");
        let lookalike = build("example.com", &["https://badexample.com".into()]).unwrap_err();
        assert!(lookalike.contains("badexample"), "{lookalike}");
    }

    #[test]
    fn the_signed_challenge_is_read_from_client_data() {
        let data = br#"{"type":"webauthn.get","challenge":"abc_-","origin":"https://x.test"}"#;
        assert_eq!(signed_challenge(data).as_deref(), Some("abc_-"));
        assert_eq!(signed_challenge(b"not json"), None);
        assert_eq!(signed_challenge(br#"{"challenge":1}"#), None);
    }
}
