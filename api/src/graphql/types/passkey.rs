//! Passkeys: the registered credentials a user sees, the WebAuthn options handed to the
//! browser, and the inputs that carry the browser's answers.

use async_graphql::{ID, InputObject, Json, Object, SimpleObject};

use super::DateTime;
use crate::domain;

/// A registered passkey (no key material).
pub struct Passkey(pub domain::Passkey);

#[Object]
impl Passkey {
    /// Id, for `renamePasskey` and `deletePasskey`.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The name the user gave it.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The WebAuthn credential id (base64url), as `credential.id` in the browser.
    async fn credential_id(&self) -> &str {
        &self.0.credential_id
    }
    /// Whether the authenticator may sync it to the user's other devices.
    async fn backup_eligible(&self) -> bool {
        self.0.backup_eligible
    }
    /// Whether it is synced (backed up), as last reported.
    async fn backed_up(&self) -> bool {
        self.0.backed_up
    }
    /// When it was registered.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    /// When it last signed in or confirmed a sign-in.
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(DateTime)
    }
}

/// What `startPasskeyRegistration` answers.
#[derive(SimpleObject)]
pub struct PasskeyOptions {
    /// WebAuthn creation options, `{publicKey: {...}}`: pass `publicKey` to
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` and the result to
    /// `navigator.credentials.create({publicKey})`.
    pub options: Json<serde_json::Value>,
}

/// What `startPasskeySignIn` answers.
#[derive(SimpleObject)]
pub struct PasskeyChallenge {
    /// Names the challenge in `finishPasskeySignIn`; usable once, for five minutes.
    pub challenge_id: ID,
    /// WebAuthn request options, `{publicKey: {...}}` with an empty `allowCredentials`:
    /// pass `publicKey` to `PublicKeyCredential.parseRequestOptionsFromJSON` and the result
    /// to `navigator.credentials.get({publicKey})`.
    pub options: Json<serde_json::Value>,
}

/// `finishPasskeyRegistration` input.
#[derive(InputObject)]
pub struct PasskeyRegistrationInput {
    /// A name for the passkey (1–64 characters), e.g. the device it lives on.
    pub name: String,
    /// The new credential as JSON: `credential.toJSON()` in a browser.
    pub credential: Json<serde_json::Value>,
}

/// `finishPasskeySignIn` input.
#[derive(InputObject)]
pub struct PasskeySignInInput {
    /// From `startPasskeySignIn`.
    pub challenge_id: ID,
    /// The assertion as JSON: `credential.toJSON()` in a browser.
    pub credential: Json<serde_json::Value>,
}
