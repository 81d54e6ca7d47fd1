//! `GET /.well-known/oauth-authorization-server` and `GET /.well-known/jwks.json`: precomputed
//! bytes, cacheable, with an ETag; CORS for the origins clients registered.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::document::Document;
use crate::error::AppError;
use crate::state::AppState;

fn cached(req: &HttpRequest, body: &Document, cache: &str) -> HttpResponse {
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == body.etag));
    let mut resp = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, body.etag.clone()));
    if not_modified {
        resp.finish()
    } else {
        resp.content_type("application/json")
            .body(body.bytes.clone())
    }
}

pub async fn metadata(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let resp = cached(&req, &state.metadata, &state.documents_cache_control);
    super::cors::for_registered(&state, &req, resp).await
}

pub async fn jwks(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let keys = state.keys.current();
    let resp = cached(&req, keys.jwks(), &state.documents_cache_control);
    super::cors::for_registered(&state, &req, resp).await
}
