//! `POST /token` (RFC 6749 §3.2).

use actix_web::{web, HttpRequest, HttpResponse};

use super::cors::with_cors;
use super::forms::{
    authorization, endpoint_error, no_store_json, oauth_error, oauth_form, too_many_requests,
};
use super::rate_limit::Group;
use crate::flows;
use crate::state::AppState;

pub async fn token(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let ip = super::forms::client_ip(&req, &state.settings.server.trusted_proxies);
    if let Some(secs) = super::rate_limit::over_limit(&req, ip, Group::Token) {
        return too_many_requests(secs);
    }
    let params = match oauth_form(&req, &body) {
        Ok(p) => p,
        Err(e) => return oauth_error(&e),
    };
    let span = tracing::info_span!("token", client_ip = %super::forms::shown(ip));
    let answer = tracing::Instrument::instrument(
        flows::token::token(&state, params, authorization(&req), ip),
        span,
    )
    .await;
    let resp = match answer.result {
        Ok(response) => no_store_json(&response),
        Err(e) => endpoint_error(e),
    };
    with_cors(&req, &answer.allowed_origins, resp)
}
