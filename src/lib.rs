//! Gatehouse: a standalone OAuth 2.0 authorization server.
//!
//! Authorization code flow with PKCE (S256 only), JWT access tokens (RFC 9068), rotating refresh
//! tokens with reuse detection, RFC 7009 revocation, RFC 7662 introspection, RFC 8414 metadata
//! and a JWKS for resource servers. Storage is Diesel over SQLite or PostgreSQL.
//!
//! Features: `server` (the authorization server) and `verify` (the resource-server token
//! check, [`verify`]); both are on by default.

#[cfg(feature = "server")]
pub mod audit;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod doctor;
#[cfg(feature = "server")]
pub mod document;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod flows;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod id_token;
#[cfg(any(feature = "server", feature = "verify"))]
pub mod jwt_profile;
#[cfg(feature = "server")]
pub mod keys;
#[cfg(feature = "server")]
pub mod logging;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod mfa;
#[cfg(feature = "server")]
pub mod oauth;
#[cfg(feature = "server")]
pub mod passwords;
#[cfg(feature = "server")]
pub mod registry;
#[cfg(feature = "server")]
pub mod secret;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod tokens;
#[cfg(feature = "verify")]
pub mod verify;
#[cfg(feature = "server")]
pub mod version;
