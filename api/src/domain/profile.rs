//! What a user may change about themself: the name, the avatar (an image as a data URL,
//! checked by its bytes) and the metadata object. Parsed here, with no I/O; the tenant's
//! metadata schema is applied by the service.

use base64::Engine as _;

use super::Invalid;

/// Longest name part, in characters.
pub const NAME_MAX_CHARS: usize = 100;
/// Largest width and height of an avatar, in pixels.
pub const AVATAR_MAX_SIDE: usize = 1024;
/// Largest metadata object, serialized, in bytes.
pub const METADATA_MAX_BYTES: usize = 16 * 1024;

/// A change to one optional value: leave it, clear it, or set it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Change<T> {
    /// Not given: unchanged.
    #[default]
    Keep,
    /// `null`: cleared.
    Clear,
    /// A new value.
    Set(T),
}

impl<T> Change<T> {
    /// Whether this changes anything.
    pub fn is_change(&self) -> bool {
        !matches!(self, Change::Keep)
    }

    /// The value after the change, given the current one.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Change::Keep => current,
            Change::Clear => None,
            Change::Set(value) => Some(value),
        }
    }
}

/// A change of name: each part kept, cleared or set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameChange {
    /// First name.
    pub first: Change<String>,
    /// Last name.
    pub last: Change<String>,
    /// Display name.
    pub display: Change<String>,
}

impl NameChange {
    /// Parse the `name` of `updateProfile`: a string sets the display name (an empty one
    /// clears it); an object `{first, last, display}` sets the parts it names (`null` or an
    /// empty string clears one, an absent one stays).
    pub fn parse(value: &serde_json::Value) -> Result<Self, FieldInvalid> {
        use serde_json::Value;
        match value {
            Value::String(display) => Ok(Self {
                display: name_part("name.display", Some(display))?,
                ..Self::default()
            }),
            Value::Object(parts) => {
                if let Some(unknown) = parts
                    .keys()
                    .find(|k| !["first", "last", "display"].contains(&k.as_str()))
                {
                    return Err(FieldInvalid::new(
                        format!("name.{unknown}"),
                        "name has only first, last and display",
                    ));
                }
                let part = |key: &str| -> Result<Change<String>, FieldInvalid> {
                    let field = format!("name.{key}");
                    match parts.get(key) {
                        None => Ok(Change::Keep),
                        Some(Value::Null) => Ok(Change::Clear),
                        Some(Value::String(text)) => name_part(&field, Some(text)),
                        Some(_) => Err(FieldInvalid::new(field, "a name part is a string")),
                    }
                };
                Ok(Self {
                    first: part("first")?,
                    last: part("last")?,
                    display: part("display")?,
                })
            }
            _ => Err(FieldInvalid::new(
                "name",
                "name is a string (the display name) or an object {first, last, display}",
            )),
        }
    }
}

fn name_part(field: &str, text: Option<&str>) -> Result<Change<String>, FieldInvalid> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(Change::Clear);
    };
    if text.chars().count() > NAME_MAX_CHARS || text.chars().any(char::is_control) {
        return Err(FieldInvalid::new(
            field,
            format!("{field} must have at most {NAME_MAX_CHARS} printable characters"),
        ));
    }
    Ok(Change::Set(text.to_owned()))
}

/// A value refused with the field it is about (a dotted path, or a JSON pointer inside a
/// JSON value, as `metadata/level`); becomes `BAD_USER_INPUT` with `extensions.field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldInvalid {
    /// The field.
    pub field: String,
    /// Why.
    pub message: String,
}

impl FieldInvalid {
    /// A refusal of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<Invalid> for FieldInvalid {
    fn from(invalid: Invalid) -> Self {
        Self::new("", invalid.0)
    }
}

/// An image format an avatar may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
    /// GIF.
    Gif,
}

impl ImageFormat {
    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
        }
    }

    fn by_mime(mime: &str) -> Option<Self> {
        [Self::Png, Self::Jpeg, Self::Webp, Self::Gif]
            .into_iter()
            .find(|f| f.mime() == mime || (mime == "image/jpg" && *f == Self::Jpeg))
    }

    fn by_bytes(bytes: &[u8]) -> Option<Self> {
        use imagesize::ImageType;
        match imagesize::image_type(bytes).ok()? {
            ImageType::Png => Some(Self::Png),
            ImageType::Jpeg => Some(Self::Jpeg),
            ImageType::Webp => Some(Self::Webp),
            ImageType::Gif => Some(Self::Gif),
            _ => None,
        }
    }
}

/// An avatar that passed every check: a `data:` URL of a PNG, JPEG, WebP or GIF image whose
/// bytes are of the declared format, whose header decodes to at most
/// [`AVATAR_MAX_SIDE`]×[`AVATAR_MAX_SIDE`] pixels, and whose size is within the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avatar {
    /// The data URL as stored and returned (`data:image/png;base64,…`).
    pub data_url: String,
    /// Its format.
    pub format: ImageFormat,
    /// Bytes of the image.
    pub bytes: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

impl Avatar {
    /// Check a data URL: `data:<type>;base64,<data>` with one of the four image types, at
    /// most `max_bytes` bytes once decoded, the bytes of the declared type (magic number and
    /// a header that decodes), at most 1024×1024 pixels.
    pub fn parse(data_url: &str, max_bytes: usize) -> Result<Self, Invalid> {
        let refuse = |why: &str| Invalid(format!("avatar {why}"));
        let rest = data_url
            .trim()
            .strip_prefix("data:")
            .ok_or_else(|| refuse("must be a data: URL (data:image/png;base64,…)"))?;
        let (header, data) = rest
            .split_once(',')
            .ok_or_else(|| refuse("must be a data: URL (data:image/png;base64,…)"))?;
        let mime = header
            .strip_suffix(";base64")
            .ok_or_else(|| refuse("must be base64-encoded (data:image/png;base64,…)"))?
            .to_ascii_lowercase();
        let declared = ImageFormat::by_mime(&mime)
            .ok_or_else(|| refuse("must be a PNG, JPEG, WebP or GIF image"))?;
        // Refuse by length before decoding anything large.
        if data.len() > max_bytes.div_ceil(3) * 4 {
            return Err(refuse(&format!("must be at most {max_bytes} bytes")));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| refuse("is not valid base64"))?;
        if bytes.len() > max_bytes {
            return Err(refuse(&format!("must be at most {max_bytes} bytes")));
        }
        let actual = ImageFormat::by_bytes(&bytes)
            .ok_or_else(|| refuse("is not an image: its bytes are not PNG, JPEG, WebP or GIF"))?;
        if actual != declared {
            return Err(refuse(&format!(
                "is declared {} but its bytes are {}",
                declared.mime(),
                actual.mime()
            )));
        }
        let size = imagesize::blob_size(&bytes)
            .map_err(|_| refuse("has a header that does not decode"))?;
        if size.width == 0 || size.height == 0 {
            return Err(refuse("has no pixels"));
        }
        if size.width > AVATAR_MAX_SIDE || size.height > AVATAR_MAX_SIDE {
            return Err(refuse(&format!(
                "is {}×{} pixels; at most {AVATAR_MAX_SIDE}×{AVATAR_MAX_SIDE}",
                size.width, size.height
            )));
        }
        Ok(Self {
            data_url: format!("data:{};base64,{data}", actual.mime()),
            format: actual,
            bytes: bytes.len(),
            width: size.width,
            height: size.height,
        })
    }
}

/// Check a metadata value before the tenant's schema: a JSON object of at most
/// [`METADATA_MAX_BYTES`] bytes serialized.
pub fn check_metadata(value: &serde_json::Value) -> Result<(), FieldInvalid> {
    if !value.is_object() {
        return Err(FieldInvalid::new(
            "metadata",
            "metadata must be a JSON object",
        ));
    }
    let size = serde_json::to_string(value).map_or(usize::MAX, |text| text.len());
    if size > METADATA_MAX_BYTES {
        return Err(FieldInvalid::new(
            "metadata",
            format!("metadata must be at most {METADATA_MAX_BYTES} bytes as JSON"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    const GIF_1X1: &str = "R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==";

    #[test]
    fn an_avatar_is_checked_by_its_bytes() {
        let ok = Avatar::parse(&format!("data:image/png;base64,{PNG_1X1}"), 1000).unwrap();
        assert_eq!((ok.format, ok.width, ok.height), (ImageFormat::Png, 1, 1));
        let gif = Avatar::parse(&format!("data:image/gif;base64,{GIF_1X1}"), 1000).unwrap();
        assert_eq!(gif.format, ImageFormat::Gif);
        for bad in [
            format!("data:image/png;base64,{GIF_1X1}"),
            "data:image/png;base64,aGVsbG8gd29ybGQ=".to_owned(),
            format!("data:image/svg+xml;base64,{PNG_1X1}"),
            format!("data:image/png,{PNG_1X1}"),
            format!("https://example.com/{PNG_1X1}"),
            "data:image/png;base64,!!!".to_owned(),
        ] {
            assert!(Avatar::parse(&bad, 1000).is_err(), "{bad} accepted");
        }
        assert!(Avatar::parse(&format!("data:image/png;base64,{PNG_1X1}"), 10).is_err());
    }

    #[test]
    fn names_parse_from_a_string_or_parts() {
        let display = NameChange::parse(&serde_json::json!("Ada")).unwrap();
        assert_eq!(display.display, Change::Set("Ada".into()));
        assert_eq!(display.first, Change::Keep);
        let parts = NameChange::parse(&serde_json::json!({"first": "Ada", "last": null})).unwrap();
        assert_eq!(parts.first, Change::Set("Ada".into()));
        assert_eq!(parts.last, Change::Clear);
        assert_eq!(parts.display, Change::Keep);
        assert_eq!(
            NameChange::parse(&serde_json::json!({"middle": "x"}))
                .unwrap_err()
                .field,
            "name.middle"
        );
        assert!(NameChange::parse(&serde_json::json!(3)).is_err());
        assert!(NameChange::parse(&serde_json::json!("x".repeat(101))).is_err());
    }
}
