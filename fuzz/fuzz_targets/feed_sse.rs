//! The verifier's revocation feed: the SSE parser never panics on any byte stream cut into
//! any chunks, gives the same events however the stream is cut, and every `revocation`
//! event it yields goes through the same decoding and revocation set as the live feed.

#![no_main]

use auth_protocol::RevocationEntry;
use auth_verifier::revocation::{RevocationSet, TokenRef};
use auth_verifier::sse::{Item, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the stream is cut.
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut cut = Parser::default();
    let mut items = Vec::new();
    for chunk in stream.chunks(step) {
        items.extend(cut.push(chunk));
    }
    let mut whole = Parser::default();
    assert_eq!(whole.push(stream), items, "cutting the stream changed its events");
    let set = RevocationSet::default();
    for item in items {
        let Item::Event(event) = item else { continue };
        if event.event == "revocation" {
            if let Ok(entry) = serde_json::from_str::<RevocationEntry>(&event.data) {
                set.apply(entry);
            }
        }
    }
    let _ = set.revokes(TokenRef {
        tid: "default",
        sub: "u",
        sid: "s",
        iat: 1,
        kid: "k",
    });
    let _ = set.revokes_api_token("t");
    let _ = set.revokes_tenant_token("default", Some(1));
    set.prune(i64::MAX);
});
