//! The protocol core: plain functions over typed requests, with `now` passed in. No I/O.
//!
//! What oxide-auth provides here: the `Registrar` seam ([`registrar::ClientRegistrar`]: exact
//! redirect-URI matching, scope negotiation, client authentication for every endpoint) and the
//! `Scope` type. Gatehouse does not implement oxide-auth's `Authorizer` and `Issuer` traits:
//! their `Result<_, ()>` and `Option<Grant>` signatures cannot tell a replayed code from an
//! unknown one, a lost rotation race from a database failure, which the RFC error mapping and
//! replay/reuse revocation (checklist 9, 10, 16, 17) depend on. The grants are therefore pure
//! decisions ([`grants`]) over the core's own [`model`], whose plans the service applies to the
//! store, and the `/authorize` flow with its login and consent steps is Gatehouse's.
//!
//! This module imports nothing from `crate::store`: the store maps its rows into [`model`].

pub mod admin_access;
pub mod authorize;
pub mod client_auth;
pub mod device_cookie;
pub mod end_session;
pub mod errors;
pub mod grants;
pub mod lockout;
pub mod metadata;
pub mod model;
pub mod oidc;
pub mod params;
pub mod pkce;
pub mod registrar;
pub mod registration;
pub mod scope;
pub mod token_request;
pub mod userinfo;

pub use errors::{ErrorCode, OAuthError};
