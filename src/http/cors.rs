//! CORS for browser apps on other origins: `/token`, `/revoke`, `/userinfo` and the metadata and
//! JWKS documents, with their `OPTIONS` preflights. Only origins a client registered get
//! `Access-Control-Allow-Origin`: on `/token` and `/revoke` the authenticated client's own, on
//! `/userinfo` those of the client the access token was issued to, on the preflights, the
//! documents and answers that name no client any client's (`flows::origins`). Unknown origins get
//! no CORS headers, and nothing else (`/authorize`, the pages) ever does.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::AppError;
use crate::flows::origins;
use crate::state::AppState;

/// The request headers a preflight may ask for.
pub const ALLOWED_HEADERS: &str = "Content-Type, Authorization, DPoP";
/// How long a browser may remember a preflight's answer.
pub const MAX_AGE_SECS: &str = "600";

fn origin(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
}

/// `Access-Control-Allow-Origin: origin` and `Vary: Origin` on `resp`.
fn allow(resp: &mut HttpResponse, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
}

fn vary(resp: &mut HttpResponse) {
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Origin"));
}

/// Adds CORS for the request's `Origin` when it is one of `allowed` (the authenticated client's).
pub fn with_cors(req: &HttpRequest, allowed: &[String], mut resp: HttpResponse) -> HttpResponse {
    vary(&mut resp);
    if let Some(origin) = origin(req).filter(|o| allowed.iter().any(|a| a == o)) {
        allow(&mut resp, origin);
    }
    resp
}

/// Adds CORS for the request's `Origin` when some client registered it (the documents).
pub async fn for_registered(
    state: &AppState,
    req: &HttpRequest,
    mut resp: HttpResponse,
) -> Result<HttpResponse, AppError> {
    vary(&mut resp);
    if let Some(origin) = origin(req) {
        if origins::is_registered(state, origin).await? {
            allow(&mut resp, origin);
        }
    }
    Ok(resp)
}

async fn preflight(
    state: &AppState,
    req: &HttpRequest,
    methods: &'static str,
) -> Result<HttpResponse, AppError> {
    let mut resp = HttpResponse::NoContent().finish();
    vary(&mut resp);
    let Some(origin) = origin(req) else {
        return Ok(resp);
    };
    if !origins::is_registered(state, origin).await? {
        return Ok(resp);
    }
    allow(&mut resp, origin);
    let headers = resp.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_SECS),
    );
    Ok(resp)
}

/// `OPTIONS /token`, `OPTIONS /revoke`.
pub async fn preflight_post(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    preflight(&state, &req, "POST, OPTIONS").await
}

/// `OPTIONS` on the metadata and JWKS documents.
pub async fn preflight_get(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    preflight(&state, &req, "GET, OPTIONS").await
}

/// `OPTIONS /userinfo`: GET or POST with `Authorization`.
pub async fn preflight_get_post(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    preflight(&state, &req, "GET, POST, OPTIONS").await
}
