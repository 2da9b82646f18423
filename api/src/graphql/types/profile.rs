//! Profile inputs and other users' public profiles.

use async_graphql::{
    ID, InputObject, InputValueError, InputValueResult, Json, MaybeUndefined, Scalar, ScalarType,
    SimpleObject, Value,
};

use super::Name;
use crate::service::{self, PublicProfile};

/// A name for `updateProfile`: a string (the display name) or an object `{first, last,
/// display}` whose given parts are set (`null` clears one, an absent one stays).
#[derive(Debug, Clone)]
pub struct NameInput(pub serde_json::Value);

/// A name: a string sets the display name; an object `{first, last, display}` sets the
/// parts it names (`null` clears one, an absent one stays).
#[Scalar(name = "NameInput")]
impl ScalarType for NameInput {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(_) | Value::Object(_) => {
                Ok(NameInput(value.into_json().map_err(|_| {
                    InputValueError::custom("name is not valid JSON")
                })?))
            }
            _ => Err(InputValueError::custom(
                "name is a string (the display name) or an object {first, last, display}",
            )),
        }
    }

    fn to_value(&self) -> Value {
        Value::from_json(self.0.clone()).unwrap_or(Value::Null)
    }
}

/// What `updateProfile` changes; absent fields stay as they are.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// The name: a string (display name) or `{first, last, display}`.
    pub name: Option<NameInput>,
    /// A `data:` URL of a PNG, JPEG, WebP or GIF image (checked by its bytes; at most
    /// 1024×1024 pixels and `AUTH_AVATAR_MAX_BYTES`); `null` removes the avatar.
    pub avatar: MaybeUndefined<String>,
    /// A JSON object replacing the metadata; checked against the tenant's `metadataSchema`.
    pub metadata: Option<Json<serde_json::Value>>,
}

impl UpdateProfileInput {
    /// The service's form of the input.
    pub fn into_update(self) -> service::ProfileUpdate {
        use crate::domain::Change;
        service::ProfileUpdate {
            name: self.name.map(|n| n.0),
            avatar: match self.avatar {
                MaybeUndefined::Undefined => Change::Keep,
                MaybeUndefined::Null => Change::Clear,
                MaybeUndefined::Value(url) => Change::Set(url),
            },
            metadata: self.metadata.map(|m| m.0),
        }
    }
}

/// Confirming an added address.
#[derive(InputObject)]
pub struct VerifyEmailInput {
    /// The pending address.
    pub email: String,
    /// The code mailed to it.
    pub code: String,
}

/// Another user of the tenant as any signed-in user sees them: no addresses, metadata,
/// roles or sessions.
#[derive(SimpleObject)]
pub struct PublicUser {
    /// User id.
    pub id: ID,
    /// Name.
    pub name: Name,
    /// Avatar (a data URL), or the tenant's `branding.defaultAvatar` when they have none.
    pub avatar: Option<String>,
}

impl From<PublicProfile> for PublicUser {
    fn from(profile: PublicProfile) -> Self {
        PublicUser {
            id: ID(profile.id),
            name: Name {
                first: profile.name_first,
                last: profile.name_last,
                display: profile.name_display,
            },
            avatar: profile.avatar,
        }
    }
}
