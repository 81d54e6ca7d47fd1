//! Internal errors: logged once with their cause chain where they are answered, as an opaque 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// Anything that is not the client's fault.
#[derive(Debug, thiserror::Error)]
#[error("internal error")]
pub struct AppError(#[source] pub anyhow::Error);

impl AppError {
    pub fn new(e: impl Into<anyhow::Error>) -> AppError {
        AppError(e.into())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError(e.into())
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        AppError(e)
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        AppError(anyhow::anyhow!("blocking task failed: {e}"))
    }
}

impl From<r2d2_error::PoolError> for AppError {
    fn from(e: r2d2_error::PoolError) -> Self {
        AppError(anyhow::anyhow!("database pool: {e}"))
    }
}

/// Re-export of the pool's error type.
pub mod r2d2_error {
    pub type PoolError = diesel::r2d2::PoolError;
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        tracing::error!(error = ?self.0, "internal error");
        HttpResponse::InternalServerError()
            .content_type("application/json")
            .body(r#"{"error":"server_error","error_description":"internal error"}"#)
    }
}
