//! `auth-api`: a GraphQL authentication API.
//!
//! Reading order:
//! - [`config`]: settings from flags and environment.
//! - [`domain`]: parsed values (email, password, tenant slug, scope) and plain records.
//! - [`db`]: one sqlx `Any` pool over SQLite or PostgreSQL, and the migrations.
//! - [`store`]: all SQL, one file per aggregate.
//! - [`crypto`], [`keys`]: secrets at rest, random tokens, signing keys and the JWKS.
//! - [`feed`]: the revocation feed verifiers follow.
//! - [`mail`]: templates per tenant, the durable outbox and its SMTP (or log) delivery.
//! - [`service`]: the rules: sign-up, sign-in, codes by mail, password reset, brute-force
//!   limits, sessions, refresh, machine tokens, tenants.
//! - [`graphql`]: resolvers, guards and error codes.
//! - [`http`], [`internal`], [`graphiql`]: the HTTP surface.
//! - [`startup`], [`telemetry`]: building and running the server.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod graphql;
pub mod http;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
