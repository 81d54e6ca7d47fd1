//! Security headers on every response (checklist 40, 41, 47; RFC 9700 §4.16).

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::DefaultHeaders;

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
