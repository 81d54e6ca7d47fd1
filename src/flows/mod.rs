//! The service layer: reads the clock once, runs the database work in the blocking pool inside a
//! transaction, calls the protocol core for every decision, and signs tokens.

pub mod account;
pub mod admin;
pub mod admin_console;
pub mod audit;
pub mod authorize;
pub mod client_auth;
pub mod client_cache;
pub mod consents;
pub mod doctor;
pub mod end_session;
pub mod introspect;
pub mod keys;
pub mod lockout;
pub mod logout;
pub mod metrics;
pub mod mfa;
pub mod origins;
pub mod prune;
pub mod registration;
pub mod revoke;
pub mod token;
pub mod userinfo;
pub mod wal;

use crate::error::AppError;
use crate::oauth::OAuthError;

/// An endpoint's failure: the client's (an RFC error) or ours (an opaque 500).
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error(transparent)]
    Internal(#[from] AppError),
    /// Too much password hashing is queued: answered 503 with `Retry-After` (checklist 57).
    #[error("too many password checks are waiting")]
    Busy,
}

impl From<crate::passwords::PasswordError> for EndpointError {
    fn from(e: crate::passwords::PasswordError) -> Self {
        match e {
            crate::passwords::PasswordError::Busy => EndpointError::Busy,
            crate::passwords::PasswordError::Internal(e) => EndpointError::Internal(e.into()),
        }
    }
}

impl From<diesel::result::Error> for EndpointError {
    fn from(e: diesel::result::Error) -> Self {
        EndpointError::Internal(e.into())
    }
}

/// An endpoint's result with the CORS origins of the client it authenticated (none when the
/// client is unknown): browser apps registered with `--allowed-origin` may read the response.
#[derive(Debug)]
pub struct Answer<T> {
    pub allowed_origins: Vec<String>,
    pub result: Result<T, EndpointError>,
    /// The client that authenticated, for the access log.
    pub client_id: Option<String>,
}

impl<T> Answer<T> {
    pub fn of(client: &crate::oauth::model::Client, result: Result<T, EndpointError>) -> Answer<T> {
        Answer {
            allowed_origins: client.allowed_origins.clone(),
            result,
            client_id: Some(client.id.to_string()),
        }
    }

    /// Notes the authenticated client for the request's access-log line (call it on the
    /// request's task, not in the blocking pool).
    pub fn noted(self) -> Answer<T> {
        if let Some(id) = &self.client_id {
            crate::logging::note_client(id);
        }
        self
    }

    pub fn anonymous(e: impl Into<EndpointError>) -> Answer<T> {
        Answer::failed(e.into())
    }

    /// A failure before any client was authenticated (no CORS origins).
    pub fn failed(e: EndpointError) -> Answer<T> {
        Answer {
            allowed_origins: Vec::new(),
            result: Err(e),
            client_id: None,
        }
    }
}
