//! Gatehouse's integration tests: one binary, a fresh server and database per test.

// Test helpers outside #[test] functions may panic on a broken fixture.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod helpers;

mod accounts;
mod admin_api;
mod admin_console;
mod audit;
mod authorize;
mod bounded_storage;
mod bounded_work;
mod cli;
mod cli_output;
mod compose;
mod cors;
mod doctor;
mod end_session;
mod endpoints;
mod front_door;
mod grants;
mod instances;
mod jwt_profile;
mod keys;
mod lockout;
mod mfa;
mod oidc;
mod oidc_client;
mod ops;
mod pool;
mod rate_limits;
mod readme;
mod refresh_window;
mod registration;
mod resource_server;
mod smoke;
mod token;
mod userinfo;
mod usernames;
