//! The protocol core: plain functions over typed requests, with `now` passed in. No I/O.
//!
//! What oxide-auth provides here: the `Registrar` seam ([`registrar::ClientRegistrar`]: exact
//! redirect-URI matching, scope negotiation, client authentication for every endpoint) and the
//! `Scope` type. Gatehouse does not implement oxide-auth's `Authorizer` and `Issuer` traits:
//! their `Result<_, ()>` and `Option<Grant>` signatures cannot tell a replayed code from an
//! unknown one, a lost rotation race from a database failure, which the RFC error mapping and
//! replay/reuse revocation (checklist 9, 10, 16, 17) depend on. Codes and refresh tokens are
//! therefore table code (`store::codes`, `store::refresh`) driven by [`code_grant`] and
//! [`refresh_grant`], and the `/authorize` flow with its login and consent steps is Gatehouse's.

pub mod authorize;
pub mod code_grant;
pub mod errors;
pub mod metadata;
pub mod params;
pub mod pkce;
pub mod refresh_grant;
pub mod registrar;
pub mod scope;
pub mod token;

pub use errors::{ErrorCode, OAuthError};
