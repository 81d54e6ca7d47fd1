//! `POST /introspect` (RFC 7662).

use actix_web::{web, HttpRequest, HttpResponse};

use super::forms::{authorization, endpoint_error, no_store_json, oauth_error, oauth_form};
use crate::flows;
use crate::state::AppState;

pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let params = match oauth_form(&req, &body) {
        Ok(p) => p,
        Err(e) => return oauth_error(&e),
    };
    match flows::introspect::introspect(&state, params, authorization(&req)).await {
        Ok(answer) => no_store_json(&answer),
        Err(e) => endpoint_error(e),
    }
}
