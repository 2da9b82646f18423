//! Where the second step meets passkeys: the four hooks the passkey work fills (issue 15).
//! Until then a user has no passkeys, so `MFA_REQUIRED` never offers `passkey`, and
//! `verifyMfa(input: {passkey})` answers `BAD_USER_INPUT` ("no passkey").
//!
//! Contract for whoever fills them (the bodies may move to `service/passkeys*`, keeping the
//! names and signatures, and this file then goes):
//! - [`Auth::count_passkeys`]: the user's registered passkeys; any above zero turns the
//!   second step on for the user and adds `"passkey"` to `extensions.methods`.
//! - [`Auth::passkey_factor_options`]: WebAuthn request options for the user's credentials,
//!   sent as `extensions.passkeyOptions`; called once per `MFA_REQUIRED`, after the pending
//!   sign-in `mfa_challenge_id` is stored, so the authentication state can be kept under
//!   that id (it is single use and lives as long as the mfaToken).
//! - [`Auth::verify_passkey_factor`]: check an assertion (`credential.toJSON()`) against that
//!   state: `Ok(true)` when it is the user's and valid, `Ok(false)` when it is wrong (counted
//!   like a wrong code), `Err(BAD_USER_INPUT)` when it is malformed.
//! - [`Auth::remove_passkeys_for_reset`]: delete every passkey of the user for
//!   `adminResetMfa`; how many went.

use super::super::{Auth, Error, Result};
use crate::domain::{Tenant, User};

impl Auth {
    /// How many passkeys `user_id` has registered.
    pub(in crate::service) async fn count_passkeys(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<i64> {
        let _ = (tenant_id, user_id);
        Ok(0)
    }

    /// WebAuthn request options for a second step of `user`, bound to the pending sign-in
    /// `mfa_challenge_id`; `None` when the user has no passkey.
    pub(in crate::service) async fn passkey_factor_options(
        &self,
        tenant: &Tenant,
        user: &User,
        mfa_challenge_id: &str,
    ) -> Result<Option<serde_json::Value>> {
        let _ = (tenant, user, mfa_challenge_id);
        Ok(None)
    }

    /// Whether `credential` (an assertion's JSON) proves a passkey of `user` for the
    /// pending sign-in `mfa_challenge_id`.
    pub(in crate::service) async fn verify_passkey_factor(
        &self,
        tenant: &Tenant,
        user: &User,
        mfa_challenge_id: &str,
        credential: &serde_json::Value,
    ) -> Result<bool> {
        let _ = (tenant, user, mfa_challenge_id, credential);
        Err(Error::BadInput(
            "no passkey: this account has no passkey to verify; use totpCode or recoveryCode"
                .into(),
        ))
    }

    /// Delete every passkey of `user_id` (an admin reset); how many were deleted.
    pub(in crate::service) async fn remove_passkeys_for_reset(
        &self,
        tenant: &Tenant,
        user_id: &str,
    ) -> Result<u64> {
        let _ = (tenant, user_id);
        Ok(0)
    }
}
