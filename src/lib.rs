//! Gatehouse: a standalone OAuth 2.0 authorization server.
//!
//! Authorization code flow with PKCE (S256 only), JWT access tokens (RFC 9068), rotating refresh
//! tokens with reuse detection, RFC 7009 revocation, RFC 7662 introspection, RFC 8414 metadata
//! and a JWKS for resource servers. Storage is Diesel over SQLite or PostgreSQL.

pub mod config;
pub mod error;
pub mod flows;
pub mod http;
pub mod keys;
pub mod oauth;
pub mod passwords;
pub mod registry;
pub mod secret;
pub mod server;
pub mod state;
pub mod store;
pub mod tokens;
