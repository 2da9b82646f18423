//! The one test harness, in reading order:
//!
//! - [`db`]: [`TestDb`], a fresh SQLite file or PostgreSQL database per test.
//! - [`net`]: [`free_port`], waiting for a server to answer, and the plain GET and
//!   `/introspect` requests of the clients below.
//! - [`payloads`]: the common operations (`SIGN_UP`, `SIGN_IN`, `REFRESH`) and their typed
//!   answers: [`Gql`] wraps a whole GraphQL answer, [`AuthPayload`] is what signUp, signIn,
//!   refreshSession, verifyOtp and resetPassword return.
//! - [`client`]: [`Client`], the one GraphQL/HTTP client and `auth-api` CLI runner, shared by
//!   the in-process app and the process harness.
//! - [`app`]: [`TestApp`], the API in process on a port-0 listener (`spawn_app` and friends),
//!   configured without reading the environment.
//! - [`verifier`]: [`Verifier`], `auth-verifier` in process on a port-0 listener, or the real
//!   binary, and the calls tests make to it.
//! - [`process`]: the real `auth-api` and `auth-verifier` binaries, for tests where killing or
//!   restarting a process, reading its output or handing it to nginx is the point.
//! - [`smtp`]: a real SMTP server that keeps what it receives.
//! - [`oidc`]: [`OidcProvider`], a real OpenID provider (`oidc-provider` on Node) and a
//!   browser stand-in for its login and consent pages.
//! - [`forge`]: tokens the API did not mint (own keys, chosen headers and claims), and an API
//!   signing with a key the test holds.

mod app;
mod client;
mod db;
mod forge;
mod net;
mod oidc;
mod payloads;
mod process;
mod smtp;
mod verifier;

pub(crate) use app::{
    TestApp, master_key, spawn_app, spawn_app_with, spawn_on,
    stable_master_key as master_key_of_tests,
};
pub(crate) use client::Client;
pub(crate) use db::TestDb;
pub(crate) use forge::{
    claims_of, ed25519, forge, forge_hs256, jwk, kid_of, spawn_app_signing_with,
};
pub(crate) use net::free_port;
pub(crate) use oidc::{OidcClient, OidcConfig, OidcProvider};
pub(crate) use payloads::{
    AuthPayload, Gql, MachineToken, PASSWORD, REFRESH, SIGN_IN, SIGN_UP, code,
};
pub(crate) use process::{ApiProcess, ApiSettings, Proc, verifier_fails_to_start};
pub(crate) use smtp::SmtpServer;
pub(crate) use verifier::{Verifier, challenge, header};
