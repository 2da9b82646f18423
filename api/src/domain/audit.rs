//! The names the service records: audit actions, sign-in methods and the reasons sessions
//! end, each an enum with the one spelling that is stored and shown.

/// Writes `as_str` and `Display` for a fieldless enum from `(variant, "name")` pairs.
macro_rules! named {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$(Self::$variant,)+];

            /// The variant stored as `name`, if any.
            pub fn parse(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name)
            }

            /// The name as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// An event as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Event id.
    pub id: String,
    /// When.
    pub at: super::Millis,
    /// What.
    pub action: String,
    /// Who: `user:<id>`, `token:<id>`, `system`.
    pub actor: Option<String>,
    /// Whose.
    pub user_id: Option<String>,
    /// The session concerned.
    pub session_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client `User-Agent`.
    pub user_agent: Option<String>,
    /// Details, JSON.
    pub detail: serde_json::Value,
}

named! {
    /// What an audit event records.
    AuditAction {
        /// An account was created (and signed in).
        UserSignUp => "user.sign_up",
        /// A session started.
        UserSignIn => "user.sign_in",
        /// A wrong password for an existing account.
        UserSignInFailed => "user.sign_in_failed",
        /// A password was set with a reset secret (every session ended, a new one started).
        UserPasswordReset => "user.password_reset",
        /// A reset mail was asked for.
        UserPasswordResetRequested => "user.password_reset_requested",
        /// An address was proven for the first time (an unproven password removed with it).
        UserEmailVerified => "user.email_verified",
        /// The password was changed.
        UserPasswordChanged => "user.password_changed",
        /// A password change with a wrong current password.
        UserPasswordChangeFailed => "user.password_change_failed",
        /// The account was deleted.
        UserDeleted => "user.deleted",
        /// The name or metadata changed (the detail names which).
        UserProfileUpdated => "user.profile_updated",
        /// The avatar was set or cleared.
        UserAvatarChanged => "user.avatar_changed",
        /// An address was added, pending until its code comes back.
        UserEmailAdded => "user.email_added",
        /// An added address was confirmed with its code and is active.
        UserEmailConfirmed => "user.email_confirmed",
        /// A wrong code for an added address.
        UserEmailConfirmFailed => "user.email_confirm_failed",
        /// An address was removed (it is remembered as previous).
        UserEmailRemoved => "user.email_removed",
        /// Another active address became the primary one (old and new in the detail).
        UserPrimaryEmailChanged => "user.primary_email_changed",
        /// One session was revoked.
        SessionRevoked => "session.revoked",
        /// The user signed out (their own session ended).
        SessionSignedOut => "session.signed_out",
        /// A refresh token was exchanged for a new pair.
        SessionRefreshed => "session.refreshed",
        /// A sign-in code was asked for (with or without an account).
        UserOtpRequested => "user.otp_requested",
        /// A machine token was created.
        AdminTokenCreated => "admin.token_created",
        /// A machine token was deleted.
        AdminTokenDeleted => "admin.token_deleted",
        /// A tenant was created (recorded in the default tenant).
        PlatformTenantCreated => "platform.tenant_created",
        /// A tenant was deleted with everything it owned (recorded in the default tenant).
        PlatformTenantDeleted => "platform.tenant_deleted",
        /// Every session of the user was revoked.
        SessionRevokedAll => "session.revoked_all",
        /// A spent refresh token came back after the grace window; the session ended.
        SessionRefreshReuse => "session.refresh_reuse",
        /// An admin ended every session of a user.
        AdminSessionsRevoked => "admin.sessions_revoked",
        /// An admin changed the tenant's settings.
        AdminSettingsUpdated => "admin.settings_updated",
        /// An admin changed a user's name, metadata or addresses.
        AdminUserUpdated => "admin.user_updated",
        /// An admin changed a user's roles.
        AdminRolesChanged => "admin.roles_changed",
        /// An admin disabled a user (every session ended).
        AdminUserDisabled => "admin.user_disabled",
        /// An admin let a disabled user in again.
        AdminUserEnabled => "admin.user_enabled",
        /// A correct sign-in of a disabled account was refused.
        UserSignInDisabled => "user.sign_in_disabled",
        /// A session was refused at refresh for being unused too long, and revoked.
        SessionIdleExpired => "session.idle_expired",
        /// An admin created or changed a provider configuration.
        ProviderUpserted => "provider.upserted",
        /// An admin deleted a provider configuration.
        ProviderDeleted => "provider.deleted",
        /// A provider account was linked to a user as a connection.
        ConnectionLinked => "connection.linked",
        /// A connection was removed (its tokens revoked at the provider).
        ConnectionUnlinked => "connection.unlinked",
        /// A connection's access token was replaced (the old one revoked).
        ConnectionRefreshed => "connection.refreshed",
        /// A backend (a machine token with scope `connections`) was handed a user's
        /// provider tokens.
        ConnectionTokensIssued => "connection.tokens_issued",
        /// A sign-in proved its first factor and now waits for the second (`MFA_REQUIRED`);
        /// the detail says which methods were offered, or that enrolment is demanded.
        MfaChallenged => "mfa.challenged",
        /// A second factor was accepted by `verifyMfa` (the session's own event follows).
        MfaVerified => "mfa.verified",
        /// A wrong, replayed or unknown second factor.
        MfaFailed => "mfa.failed",
        /// An authenticator app enrolment was started (nothing is switched on yet).
        MfaTotpEnrollmentStarted => "mfa.totp_enrollment_started",
        /// An authenticator app was switched on with its first code.
        MfaTotpEnabled => "mfa.totp_enabled",
        /// The authenticator app was switched off.
        MfaTotpDisabled => "mfa.totp_disabled",
        /// New recovery codes replaced the old ones.
        MfaRecoveryCodesRegenerated => "mfa.recovery_codes_regenerated",
        /// A recovery code was spent (the detail says how many are left).
        MfaRecoveryCodeUsed => "mfa.recovery_code_used",
        /// An admin removed every second factor of a user.
        AdminMfaReset => "admin.mfa_reset",
        /// A passkey was registered (its id and name in the detail).
        PasskeyRegistered => "passkey.registered",
        /// A passkey registration was refused (the reason in the detail).
        PasskeyRegistrationFailed => "passkey.registration_failed",
        /// A passkey assertion was refused at sign-in or as a second factor.
        PasskeySignInFailed => "passkey.sign_in_failed",
        /// A passkey was renamed.
        PasskeyRenamed => "passkey.renamed",
        /// A passkey was deleted; it never signs in again.
        PasskeyDeleted => "passkey.deleted",
    }
}

named! {
    /// How a session was started.
    SignInMethod {
        /// Email and password (or a password reset).
        Password => "password",
        /// A code by mail.
        Otp => "otp",
        /// An OAuth2 / OpenID Connect provider's authorization code.
        OAuth => "oauth",
        /// A provider's id_token (native sign-in on a phone).
        IdToken => "id_token",
        /// A passkey alone (WebAuthn, discoverable credential with user verification).
        Passkey => "passkey",
    }
}

named! {
    /// Why a session ended, as recorded on it.
    RevokeReason {
        /// The user signed out or revoked it.
        Revoked => "revoked",
        /// The user revoked all their sessions.
        RevokedAll => "revoked_all",
        /// Its refresh token was reused after the grace window.
        RefreshReuse => "refresh_reuse",
        /// The password was changed from another session.
        PasswordChanged => "password_changed",
        /// The password was reset by mail.
        PasswordReset => "password_reset",
        /// The account was deleted.
        AccountDeleted => "account_deleted",
        /// An admin ended it.
        AdminRevoked => "admin_revoked",
        /// The address was proven by its owner, ending the sessions of an unproven password.
        EmailProven => "email_proven",
        /// An admin disabled the account.
        Disabled => "disabled",
        /// Unused for longer than the tenant's idle lifetime.
        Idle => "idle",
    }
}
