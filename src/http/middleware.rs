//! Security headers on every response (checklist 40, 41, 47; RFC 9700 §4.16).

use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{DefaultHeaders, ErrorHandlerResponse, ErrorHandlers};
use actix_web::HttpResponse;

/// The Content-Security-Policy of every response: no script at all, styles from our origin,
/// no framing. (`form-action` is left out: browsers apply it to the redirect that follows the
/// consent form, which goes to the client's origin.)
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Headers added to every response that does not set its own. `Cache-Control: no-store` is the
/// default; the metadata, JWKS and stylesheet set their own caching.
pub fn security_headers(https: bool) -> DefaultHeaders {
    let mut headers = DefaultHeaders::new()
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CACHE_CONTROL, "no-store"))
        .add((
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ));
    if https {
        headers = headers.add((
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ));
    }
    headers
}

/// A body over the size limit is answered like any other bad OAuth request: 400 with an RFC
/// `invalid_request` JSON body, instead of the framework's plain-text 413.
pub fn body_too_large<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().handler(StatusCode::PAYLOAD_TOO_LARGE, |res: ServiceResponse<B>| {
        let (req, _) = res.into_parts();
        let response = HttpResponse::BadRequest()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({
                "error": "invalid_request",
                "error_description": "the request body is too large",
            }));
        Ok(ErrorHandlerResponse::Response(
            ServiceResponse::new(req, response).map_into_right_body(),
        ))
    })
}
