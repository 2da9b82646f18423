//! The wire types of `auth-protocol`, under their old path `auth_verifier::token`, for
//! `auth-api` until it names `auth_protocol` itself. Nothing in this crate uses this module;
//! it goes once the API has switched.

pub use auth_protocol::*;
