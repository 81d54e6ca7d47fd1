//! `GET /healthz` (the process answers) and `GET /readyz` (database reachable, a key signs).

use actix_web::{web, HttpResponse};

use crate::error::AppError;
use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state
        .db(|conn| {
            diesel::connection::SimpleConnection::batch_execute(conn, "SELECT 1")
                .map_err(AppError::from)
        })
        .await
        .is_ok();
    let key = state.keys.current().signer().is_some();
    let body = serde_json::json!({"database": db, "signing_key": key});
    if db && key {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
