//! `POST /revoke` (RFC 7009).

use actix_web::{web, HttpRequest, HttpResponse};

use super::cors::with_cors;
use super::forms::{authorization, endpoint_error, oauth_error, oauth_form};
use crate::flows;
use crate::state::AppState;

pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let params = match oauth_form(&req, &body) {
        Ok(p) => p,
        Err(e) => return oauth_error(&e),
    };
    let ip = super::forms::client_ip(&req, &state.settings.server.trusted_proxies);
    let answer = flows::revoke::revoke(&state, params, authorization(&req), ip).await;
    let resp = match answer.result {
        Ok(()) => HttpResponse::Ok().finish(),
        Err(e) => endpoint_error(e),
    };
    with_cors(&req, &answer.allowed_origins, resp)
}
