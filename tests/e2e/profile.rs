//! The profile: `updateProfile` (name, avatar checked by its bytes, metadata against the
//! tenant's schema), `me`, and the audit events of each change. Images are built here by
//! small honest encoders (a PNG with stored deflate blocks, a baseline JPEG of one 8×8
//! block), or are well-known complete files (a 1×1 GIF, a 1×1 lossless WebP).

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{Gql, TestApp, spawn_app};

pub(crate) const UPDATE: &str = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { id name { first last display } avatar metadata } }";
const ME: &str = "{ me { id name { first last display } avatar metadata emails { primary active } roles createdAt } }";

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend(data);
    out.extend(&body);
    out.extend(crc32(&body).to_be_bytes());
}

/// A complete RGB PNG of `width`×`height` pixels (zlib with stored blocks, so its size is
/// about 3·w·h bytes), or with `header_only` a PNG whose header claims that size over one
/// row of data.
pub(crate) fn png(width: u32, height: u32, header_only: bool) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let rows = if header_only { 1 } else { height };
    let mut raw = Vec::new();
    for y in 0..rows {
        raw.push(0);
        for x in 0..width {
            raw.extend([(x % 256) as u8, (y % 256) as u8, 0x80]);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend(*block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A complete baseline JPEG: one grey 8×8 block (quantisation all 1, one Huffman code for
/// DC difference 0 and one for end-of-block).
pub(crate) fn jpeg() -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    out.extend([
        0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    ]);
    out.extend([0xFF, 0xDB, 0, 67, 0]);
    out.extend([1u8; 64]);
    out.extend([0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    for class in [0x00u8, 0x10] {
        out.extend([0xFF, 0xC4, 0, 20, class, 1]);
        out.extend([0u8; 15]);
        out.push(0);
    }
    out.extend([0xFF, 0xDA, 0, 8, 1, 1, 0x00, 0, 63, 0]);
    out.push(0x3F);
    out.extend([0xFF, 0xD9]);
    out
}

/// A complete 1×1 GIF.
pub(crate) const GIF: &str = "R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==";
/// A complete 1×1 lossless WebP.
pub(crate) const WEBP: &str = "UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==";

pub(crate) fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

async fn update(app: &TestApp, bearer: &str, input: Value) -> Gql {
    app.gql(UPDATE, json!({ "i": input }), Some(bearer)).await
}

async fn me(app: &TestApp, bearer: &str) -> Value {
    let body = app.gql(ME, json!({}), Some(bearer)).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["me"].clone()
}

/// The details of the tenant's audit events with `action`, oldest first.
pub(crate) async fn audit_details(app: &TestApp, action: &str) -> Vec<Value> {
    let store = app.store().await;
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT detail FROM audit_events WHERE action = $1 ORDER BY at, id")
            .bind(action)
            .fetch_all(store.pool())
            .await
            .expect("audit read");
    rows.into_iter()
        .map(|(detail,)| serde_json::from_str(&detail).expect("detail is JSON"))
        .collect()
}

fn assert_bad_field(body: &Gql, field: &str) {
    let error = body.error();
    assert_eq!(error.code, "BAD_USER_INPUT", "{body}");
    assert_eq!(error.extensions["field"], field, "{body}");
}

#[tokio::test]
async fn update_profile_sets_name_avatar_and_metadata_and_me_shows_them() {
    let app = spawn_app().await;
    let ada = app.sign_up("ada@example.com").await;
    let bearer = &ada.access_token;

    let body = update(&app, bearer, json!({"name": "Ada L."})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        body["data"]["updateProfile"]["name"],
        json!({"first": null, "last": null, "display": "Ada L."})
    );

    let body = update(
        &app,
        bearer,
        json!({"name": {"first": "Ada", "last": "Lovelace"}}),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = update(
        &app,
        bearer,
        json!({"metadata": {"team": "engines", "level": 3}}),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");

    for (mime, bytes) in [
        ("image/png", png(16, 8, false)),
        ("image/jpeg", jpeg()),
        ("image/webp", b64(WEBP)),
        ("image/gif", b64(GIF)),
    ] {
        let url = data_url(mime, &bytes);
        let body = update(&app, bearer, json!({"avatar": url})).await;
        assert!(body["errors"].is_null(), "{mime}: {body}");
        let shown = me(&app, bearer).await;
        assert_eq!(shown["avatar"], url, "{mime}");
    }
    let shown = me(&app, bearer).await;
    assert_eq!(shown["id"], ada.user_id);
    assert_eq!(
        shown["name"],
        json!({"first": "Ada", "last": "Lovelace", "display": "Ada L."}),
        "parts kept"
    );
    assert_eq!(shown["metadata"], json!({"team": "engines", "level": 3}));
    assert_eq!(shown["emails"]["primary"], "ada@example.com");
    assert!(shown["createdAt"].is_string());

    // null clears one part or the avatar; what is not named stays.
    let body = update(
        &app,
        bearer,
        json!({"name": {"last": null}, "avatar": null}),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let shown = me(&app, bearer).await;
    assert_eq!(
        shown["name"],
        json!({"first": "Ada", "last": null, "display": "Ada L."})
    );
    assert_eq!(shown["avatar"], Value::Null);
    assert_eq!(shown["metadata"], json!({"team": "engines", "level": 3}));

    // With no avatar of their own, a user shows the tenant's default one.
    app.update_settings("default", |settings| {
        settings.branding.default_avatar = Some("https://cdn.example.com/anon.png".into());
    })
    .await;
    assert_eq!(
        me(&app, bearer).await["avatar"],
        "https://cdn.example.com/anon.png"
    );
    let body = app
        .gql(
            "query($k: String!) { user(idOrEmail: $k) { avatar } }",
            json!({"k": "ada@example.com"}),
            Some(bearer),
        )
        .await;
    assert_eq!(
        body["data"]["user"]["avatar"], "https://cdn.example.com/anon.png",
        "{body}"
    );

    let profile = audit_details(&app, "user.profile_updated").await;
    assert_eq!(profile.len(), 4, "{profile:?}");
    assert_eq!(profile[0]["fields"], json!(["name.display"]));
    assert_eq!(profile[2]["fields"], json!(["metadata"]));
    let avatars = audit_details(&app, "user.avatar_changed").await;
    assert_eq!(avatars.len(), 5, "four set, one cleared: {avatars:?}");
    assert_eq!(avatars[0]["avatar"]["type"], "image/png");
    assert_eq!(avatars[0]["avatar"]["width"], 16);
    assert_eq!(avatars[4]["avatar"], Value::Null);

    // Not signed in, or a machine token: no profile to change.
    let body = app.gql(UPDATE, json!({"i": {"name": "x"}}), None).await;
    assert_eq!(body.code(), "UNAUTHENTICATED", "{body}");
    let admin = app.machine_token("default", &["admin"]).await;
    let body = update(&app, &admin, json!({"name": "x"})).await;
    assert_eq!(body.code(), "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn avatars_are_checked_by_their_bytes_and_a_refusal_changes_nothing() {
    let app = spawn_app().await;
    let ada = app.sign_up("bytes@example.com").await;
    let bearer = &ada.access_token;
    let good = data_url("image/png", &png(4, 4, false));
    assert!(
        update(&app, bearer, json!({"avatar": good, "name": "Before"})).await["errors"].is_null()
    );

    let max = app.config.avatar_max_bytes;
    let oversized = png(400, 220, false);
    assert!(oversized.len() > max, "{} bytes", oversized.len());
    let cases = [
        (
            "text declared PNG",
            data_url("image/png", b"hello, I am not an image at all"),
        ),
        ("GIF bytes declared PNG", data_url("image/png", &b64(GIF))),
        (
            "PNG bytes declared JPEG",
            data_url("image/jpeg", &png(2, 2, false)),
        ),
        (
            "SVG",
            data_url(
                "image/svg+xml",
                b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            ),
        ),
        ("oversized", data_url("image/png", &oversized)),
        (
            "huge declared dimensions",
            data_url("image/png", &png(5000, 5000, true)),
        ),
        ("1025 wide", data_url("image/png", &png(1025, 1, true))),
        ("a URL", "https://example.com/a.png".to_owned()),
        ("bad base64", "data:image/png;base64,%%%".to_owned()),
        (
            "truncated header",
            data_url("image/png", &png(4, 4, false)[..20]),
        ),
    ];
    for (what, avatar) in cases {
        let body = update(&app, bearer, json!({"avatar": avatar, "name": "After"})).await;
        assert_bad_field(&body, "avatar");
        let shown = me(&app, bearer).await;
        assert_eq!(shown["avatar"], good, "{what}: avatar unchanged");
        assert_eq!(
            shown["name"]["display"], "Before",
            "{what}: nothing written"
        );
    }

    // The largest allowed avatar fits in a request (a 160 KiB image was a 413 before).
    let big = png(320, 180, false);
    assert!(
        big.len() > 160 * 1024 && big.len() <= max,
        "{} bytes",
        big.len()
    );
    let url = data_url("image/png", &big);
    let body = update(&app, bearer, json!({"avatar": url})).await;
    assert!(
        body["errors"].is_null(),
        "{}",
        &body.to_string()[..200.min(body.to_string().len())]
    );
    assert_eq!(me(&app, bearer).await["avatar"], url);
}

#[tokio::test]
async fn names_are_checked_per_part() {
    let app = spawn_app().await;
    let ada = app.sign_up("names@example.com").await;
    let bearer = &ada.access_token;
    let body = update(&app, bearer, json!({"name": {"first": "x".repeat(101)}})).await;
    assert_bad_field(&body, "name.first");
    let body = update(&app, bearer, json!({"name": {"nick": "x"}})).await;
    assert_bad_field(&body, "name.nick");
    let body = update(&app, bearer, json!({"name": {"last": 7}})).await;
    assert_bad_field(&body, "name.last");
    let body = update(&app, bearer, json!({"name": 7})).await;
    assert_eq!(body.code(), "BAD_USER_INPUT", "{body}");
    let body = update(&app, bearer, json!({"metadata": [1, 2]})).await;
    assert_bad_field(&body, "metadata");
    let body = update(
        &app,
        bearer,
        json!({"metadata": {"blob": "x".repeat(17 * 1024)}}),
    )
    .await;
    assert_bad_field(&body, "metadata");
    assert_eq!(me(&app, bearer).await["name"]["display"], "Test");
}

#[tokio::test]
async fn metadata_is_checked_against_the_tenants_schema_which_is_recompiled_when_it_changes() {
    let app = spawn_app().await;
    let ada = app.sign_up("schema@example.com").await;
    let bearer = &ada.access_token;
    app.update_settings("default", |settings| {
        settings.metadata_schema = Some(json!({
            "type": "object",
            "properties": {
                "level": {"type": "integer", "minimum": 1},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["level"]
        }));
    })
    .await;

    let body = update(&app, bearer, json!({"metadata": {"level": "high"}})).await;
    assert_bad_field(&body, "metadata/level");
    assert!(body.error().message.contains("metadata/level"), "{body}");
    let body = update(
        &app,
        bearer,
        json!({"metadata": {"level": 2, "tags": ["a", 3]}}),
    )
    .await;
    assert_bad_field(&body, "metadata/tags/1");
    let body = update(&app, bearer, json!({"metadata": {"tags": []}})).await;
    assert_bad_field(&body, "metadata");
    assert_eq!(
        me(&app, bearer).await["metadata"],
        json!({}),
        "nothing written"
    );

    let body = update(
        &app,
        bearer,
        json!({"metadata": {"level": 2, "tags": ["a"]}}),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");

    // A new schema applies from the next request.
    app.update_settings("default", |settings| {
        settings.metadata_schema =
            Some(json!({"type": "object", "properties": {"level": {"maximum": 1}}}));
    })
    .await;
    let body = update(&app, bearer, json!({"metadata": {"level": 2}})).await;
    assert_bad_field(&body, "metadata/level");
    app.update_settings("default", |settings| settings.metadata_schema = None)
        .await;
    let body = update(&app, bearer, json!({"metadata": {"level": 2}})).await;
    assert!(body["errors"].is_null(), "{body}");
}
