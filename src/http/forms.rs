//! Reading OAuth requests off HTTP: form bodies only, no parameters in the query of a POST,
//! JSON error bodies with the RFC status and headers.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::flows::EndpointError;
use crate::oauth::params::Params;
use crate::oauth::{ErrorCode, OAuthError};

/// Largest accepted request body.
pub const MAX_BODY: usize = 16 * 1024;

/// Parses a POSTed OAuth request (RFC 6749 §3.2): `application/x-www-form-urlencoded` body,
/// nothing in the query string.
pub fn oauth_form(req: &HttpRequest, body: &[u8]) -> Result<Params, OAuthError> {
    if !req.query_string().is_empty() {
        return Err(OAuthError::invalid_request(
            "parameters must be sent in the form body, not the URL",
        ));
    }
    if !is_form(req) {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Params::parse(body)
}

/// Whether the body is `application/x-www-form-urlencoded`.
pub fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The `Authorization` header, if it is readable.
pub fn authorization(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The JSON response of an OAuth error: status per RFC 6749 §5.2, `WWW-Authenticate` on 401
/// (`Basic` for a client, `Bearer` for a bearer token, RFC 6750 §3),
/// never cached. Logged at info with its code and description (which never hold a secret).
pub fn oauth_error(err: &OAuthError) -> HttpResponse {
    tracing::info!(
        error = err.code.as_str(),
        error_description = %err.description,
        "oauth error"
    );
    let status = actix_web::http::StatusCode::from_u16(err.code.status())
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    if err.code == ErrorCode::InvalidClient {
        resp.insert_header((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"gatehouse\", charset=\"UTF-8\""),
        ));
    }
    if err.code == ErrorCode::InvalidToken {
        resp.insert_header((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"gatehouse\", error=\"invalid_token\""),
        ));
    }
    resp.json(err.body())
}

/// Turns an endpoint failure into its response (internal errors are logged once, here).
pub fn endpoint_error(err: EndpointError) -> HttpResponse {
    match err {
        EndpointError::OAuth(e) => oauth_error(&e),
        EndpointError::Internal(e) => actix_web::ResponseError::error_response(&e),
        EndpointError::Busy => busy(),
    }
}

/// Seconds a client is asked to wait before retrying a request refused as busy.
pub const RETRY_AFTER_SECS: &str = "1";

/// 503 with `Retry-After`: too many password checks wait already (checklist 57). RFC 6749
/// §4.1.2.1 names this `temporarily_unavailable` for the authorization endpoint; the token
/// endpoint uses the same word for the same condition.
pub fn busy() -> HttpResponse {
    temporarily_unavailable(
        StatusCode::SERVICE_UNAVAILABLE,
        RETRY_AFTER_SECS,
        "the server is busy checking other passwords; retry shortly",
    )
}

/// 429 with `Retry-After`: this address sent more token requests than `[rate_limits]` allow.
pub fn too_many_requests(retry_after_secs: u64) -> HttpResponse {
    temporarily_unavailable(
        StatusCode::TOO_MANY_REQUESTS,
        &retry_after_secs.to_string(),
        &format!("too many requests from this address; retry in {retry_after_secs} seconds"),
    )
}

/// A JSON `temporarily_unavailable` error with `Retry-After`, never cached.
fn temporarily_unavailable(
    status: StatusCode,
    retry_after: &str,
    description: &str,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::RETRY_AFTER, retry_after))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": description,
        }))
}

/// A JSON success that must never be cached (token and introspection responses, RFC 6749 §5.1).
pub fn no_store_json(body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// An address for a log field: the address, or `-` when there is none (never `Some(…)`).
pub fn shown(ip: Option<std::net::IpAddr>) -> String {
    ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string())
}

/// The client's address: the connection's peer, or, when the peer is a trusted proxy
/// (`server.trusted_proxies`), the last X-Forwarded-For entry, the one that proxy appended.
pub fn client_ip(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .last();
    Some(forwarded.and_then(|v| v.parse().ok()).unwrap_or(peer))
}
