//! `GET` and `POST /userinfo` (OpenID Connect Core §5.3). The access token comes in the
//! `Authorization` header (RFC 6750 §2.1) or, for a POST, the form field `access_token`
//! (§2.2); never in the URL. Errors follow RFC 6750 §3: no token is a bare `Bearer` challenge,
//! a token that is not valid `invalid_token`, a valid one without `openid` `insufficient_scope`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use super::cors;
use super::forms::{authorization, endpoint_error, is_form, no_store_json, oauth_error};
use crate::flows::{self, EndpointError};
use crate::oauth::params::Params;
use crate::oauth::userinfo::{presented_token, ACCESS_TOKEN_PARAM};
use crate::oauth::ErrorCode;
use crate::state::AppState;

/// The realm of the endpoint's challenges.
const CHALLENGE: &str = "Bearer realm=\"gatehouse\"";

pub async fn userinfo(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let in_query = form_urlencoded::parse(req.query_string().as_bytes())
        .any(|(name, _)| name == ACCESS_TOKEN_PARAM);
    let form = if req.method() == Method::POST && is_form(&req) {
        match Params::parse(&body) {
            Ok(form) => Some(form),
            Err(e) => return anyone_registered(&state, &req, oauth_error(&e)).await,
        }
    } else {
        None
    };
    let token = match presented_token(authorization(&req).as_deref(), form.as_ref(), in_query) {
        Ok(Some(token)) => token,
        Ok(None) => return anyone_registered(&state, &req, no_token()).await,
        Err(e) => return anyone_registered(&state, &req, oauth_error(&e)).await,
    };
    let answer = flows::userinfo::userinfo(&state, token).await;
    let resp = match answer.result {
        Ok(info) => no_store_json(&info),
        Err(EndpointError::OAuth(e)) if e.code == ErrorCode::InsufficientScope => {
            let mut resp = oauth_error(&e);
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"gatehouse\", error=\"insufficient_scope\", scope=\"openid\"",
                ),
            );
            resp
        }
        Err(e) => endpoint_error(e),
    };
    if answer.client_id.is_some() {
        cors::with_cors(&req, &answer.allowed_origins, resp)
    } else {
        anyone_registered(&state, &req, resp).await
    }
}

/// 401 with the bare challenge and no error code: the request carried no token (RFC 6750 §3.1).
fn no_token() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, CHALLENGE))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A refusal before any client is known: readable by any registered origin, so a browser app
/// learns that its token stopped working (the answer says nothing more).
async fn anyone_registered(
    state: &AppState,
    req: &HttpRequest,
    resp: HttpResponse,
) -> HttpResponse {
    cors::for_registered(state, req, resp)
        .await
        .unwrap_or_else(|e| actix_web::ResponseError::error_response(&e))
}
