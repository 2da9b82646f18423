//! End-to-end tests: the real app over real HTTP on a real database (SQLite, or PostgreSQL
//! when `TEST_DATABASE_URL` is set). One binary with a module per feature keeps link time down;
//! `support` is the one harness every module uses.

mod support;

mod account;
mod admin_audit;
mod admin_settings;
mod admin_users;
mod connections;
mod cors;
mod emails;
mod faults;
mod hardening;
mod http;
mod janitor;
mod limits;
mod mail;
mod mfa;
mod oauth;
mod otp;
mod passkeys;
mod plans;
mod profile;
mod properties;
mod proxy_nginx;
mod regressions;
mod reset;
mod schema;
mod sessions;
mod shutdown;
mod sign_up;
mod subscriptions;
mod tenants;
mod tokens;
mod verifier;
mod writers;
