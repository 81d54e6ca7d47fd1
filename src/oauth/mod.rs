//! The protocol core: plain functions over typed requests, with `now` passed in. No I/O.

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
