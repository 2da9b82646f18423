//! `auth-protocol`: everything that crosses the wire between `auth-api` (the issuer) and
//! `auth-verifier`, and nothing else, so that the two binaries cannot drift apart. It depends
//! on `serde` and `jsonwebtoken` only.
//!
//! Modules, in reading order (every public item is re-exported here: write
//! `auth_protocol::AccessClaims`):
//! - `token`: the two kinds of bearer token ([`MACHINE_TOKEN_PREFIX`]), the claims of an
//!   access token ([`AccessClaims`]) and the one [`validation`] policy both sides apply.
//! - `jwk`: the published signing keys ([`JwkSet`], [`Jwk`]).
//! - `revocation`: the cut-offs the API streams to verifiers ([`RevocationEntry`] with one
//!   constructor per [`RevocationKind`], [`RevocationList`]) and the rules by which an entry
//!   revokes an access token or a machine token.
//! - `introspection`: the RFC 7662 answer ([`Introspection`], [`TokenType`]).
//! - `discovery`: `/.well-known/openid-configuration` ([`Discovery`]).
//! - `secret`: [`Secret`], a string that does not print itself.
//! - `exemption`: the tokenless loopback rule of the machine endpoints
//!   ([`loopback_exempt`], [`FORWARDING_HEADERS`]).

mod discovery;
mod exemption;
mod introspection;
mod jwk;
mod revocation;
mod secret;
mod token;

pub use discovery::Discovery;
pub use exemption::{FORWARDING_HEADERS, loopback_exempt};
pub use introspection::{Introspection, TokenType};
pub use jwk::{Jwk, JwkSet};
pub use revocation::{RevocationEntry, RevocationKind, RevocationList};
pub use secret::Secret;
pub use token::{AccessClaims, MACHINE_TOKEN_PREFIX, validation};
