//! `POST /register` (RFC 7591) and `GET`/`PUT`/`DELETE /register/{client_id}` (RFC 7592): JSON in,
//! JSON out, never cached. Not served (404) while `registration.mode` is `off`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::forms::{authorization, endpoint_error, oauth_error};
use crate::flows::registration::{self, RegisterError};
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;

/// Open registrations beyond their cap: how long a client is asked to wait.
const OPEN_FULL_RETRY_SECS: u64 = 3_600;

/// The JSON body of a registration request: `application/json`, within `forms::MAX_BODY`,
/// nothing in the query. A body too large or unreadable is `invalid_client_metadata`, like a
/// malformed one (RFC 7591 §3.2.2).
fn json_body(
    req: &HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<web::Bytes, OAuthError> {
    let bad = |d: &'static str| OAuthError::new(ErrorCode::InvalidClientMetadata, d);
    if !req.query_string().is_empty() {
        return Err(bad("parameters must be sent in the JSON body, not the URL"));
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(bad("the body must be application/json"));
    }
    body.map_err(|_| bad("the request body is too large or could not be read"))
}

fn json(status: actix_web::http::StatusCode, body: &serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    if !registration::enabled(&state.settings) {
        return super::pages::not_found().await;
    }
    let ip = super::forms::client_ip(&req, &state.settings.server.trusted_proxies);
    if let Some(wait) = super::rate_limit::over_limit(&req, ip, super::rate_limit::Group::Token) {
        return super::forms::too_many_requests(wait);
    }
    let body = match json_body(&req, body) {
        Ok(b) => b,
        Err(e) => return oauth_error(&e),
    };
    match registration::register(&state, &body, authorization(&req), ip).await {
        Ok(info) => json(actix_web::http::StatusCode::CREATED, &info),
        Err(RegisterError::Endpoint(e)) => endpoint_error(e),
        Err(RegisterError::OpenFull) => super::forms::too_many_requests(OPEN_FULL_RETRY_SECS),
    }
}

pub async fn read(
    state: web::Data<AppState>,
    req: HttpRequest,
    client_id: web::Path<String>,
) -> HttpResponse {
    if !registration::enabled(&state.settings) {
        return super::pages::not_found().await;
    }
    match registration::read(&state, client_id.into_inner(), authorization(&req)).await {
        Ok(info) => json(actix_web::http::StatusCode::OK, &info),
        Err(e) => endpoint_error(e),
    }
}

pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    client_id: web::Path<String>,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    if !registration::enabled(&state.settings) {
        return super::pages::not_found().await;
    }
    let body = match json_body(&req, body) {
        Ok(b) => b,
        Err(e) => return oauth_error(&e),
    };
    let client_id = client_id.into_inner();
    match registration::update(&state, client_id, authorization(&req), &body).await {
        Ok(info) => json(actix_web::http::StatusCode::OK, &info),
        Err(e) => endpoint_error(e),
    }
}

pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    client_id: web::Path<String>,
) -> HttpResponse {
    if !registration::enabled(&state.settings) {
        return super::pages::not_found().await;
    }
    match registration::delete(&state, client_id.into_inner(), authorization(&req)).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => endpoint_error(e),
    }
}
