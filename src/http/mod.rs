//! HTTP: thin actix-web handlers, one file per endpoint, and the middleware every response passes.

pub mod access_log;
pub mod account;
pub mod admin_api;
pub mod admin_console;
pub mod admin_pages;
pub mod authorize;
pub mod cors;
pub mod end_session;
pub mod forms;
pub mod health;
pub mod introspect;
pub mod logout;
pub mod metadata;
pub mod metrics;
pub mod middleware;
pub mod origin;
pub mod pages;
pub mod rate_limit;
pub mod register;
pub mod revoke;
pub mod token;
pub mod userinfo;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, Resource};

use crate::oauth::metadata::paths;

/// Registers every route. The app also needs `web::Data<AppState>` and the security-header
/// middleware (see [`crate::server::build`]).
///
/// Each path is one resource: a method it does not serve gets 405 with `Allow` and a JSON
/// error, not the HTML 404 of unknown paths. Unknown paths under `/token`, `/revoke` and
/// `/introspect` get a JSON 404 too.
///
/// actix tries the resources in the order they are registered, on every request and again when
/// the access log names the request's route, and a pattern with a `{segment}` costs a regular
/// expression each time: so the protocol's static paths come first, and the patterns after them.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let options = || web::method(Method::OPTIONS);
    cfg.service(
        at(paths::METADATA, "GET, OPTIONS")
            .route(web::get().to(metadata::metadata))
            .route(options().to(cors::preflight_get)),
    )
    .service(
        at(paths::OPENID_CONFIGURATION, "GET, OPTIONS")
            .route(web::get().to(metadata::metadata))
            .route(options().to(cors::preflight_get)),
    )
    .service(
        at(paths::JWKS, "GET, OPTIONS")
            .route(web::get().to(metadata::jwks))
            .route(options().to(cors::preflight_get)),
    )
    .service(at(paths::AUTHORIZE, "GET").route(web::get().to(authorize::authorize)))
    .service(
        at(paths::LOGIN, "GET, POST")
            .route(web::get().to(authorize::login_page))
            .route(web::post().to(authorize::login_submit)),
    )
    .service(
        at(paths::LOGIN_OTP, "GET, POST")
            .route(web::get().to(authorize::otp_page))
            .route(web::post().to(authorize::otp_submit)),
    )
    .service(
        at(paths::ACCOUNT_MFA, "GET, POST")
            .route(web::get().to(account::page))
            .route(web::post().to(account::submit)),
    )
    .service(
        at(paths::ACCOUNT_CONSENTS, "GET, POST")
            .route(web::get().to(account::consents_page))
            .route(web::post().to(account::consents_withdraw)),
    )
    .service(
        at(paths::CONSENT, "GET, POST")
            .route(web::get().to(authorize::consent_page))
            .route(web::post().to(authorize::consent_submit)),
    )
    .service(
        at(paths::LOGOUT, "GET, POST")
            .route(web::get().to(logout::page))
            .route(web::post().to(logout::submit)),
    )
    .service(
        at(paths::USERINFO, "GET, POST, OPTIONS")
            .route(web::get().to(userinfo::userinfo))
            .route(web::post().to(userinfo::userinfo))
            .route(options().to(cors::preflight_get_post)),
    )
    .service(
        at(paths::END_SESSION, "GET, POST")
            .route(web::get().to(end_session::page))
            .route(web::post().to(end_session::submit)),
    )
    .service(
        at(paths::TOKEN, "POST, OPTIONS")
            .route(web::post().to(token::token))
            .route(options().to(cors::preflight_post)),
    )
    .service(
        at(paths::REVOKE, "POST, OPTIONS")
            .route(web::post().to(revoke::revoke))
            .route(options().to(cors::preflight_post)),
    )
    .service(at(paths::INTROSPECT, "POST").route(web::post().to(introspect::introspect)))
    .service(at(paths::HEALTHZ, "GET").route(web::get().to(health::healthz)))
    .service(at(paths::READYZ, "GET").route(web::get().to(health::readyz)))
    .service(at(pages::STYLESHEET_PATH, "GET").route(web::get().to(pages::stylesheet)))
    .service(at("/", "GET").route(web::get().to(pages::home)))
    .service(at("/favicon.ico", "GET").route(web::get().to(pages::no_icon)))
    .service(at("/demo", "GET").route(web::get().to(pages::demo)))
    .service(at(pages::DEMO_SCRIPT_PATH, "GET").route(web::get().to(pages::demo_script)));
    // The admin console (`/admin`, exact paths: `/admin/api/…` is registered on its own).
    admin_console::routes(cfg);
    // The JSON endpoints answer JSON below their paths too.
    for path in [paths::TOKEN, paths::REVOKE, paths::INTROSPECT] {
        cfg.service(
            web::resource(format!("{path}/{{rest:.*}}")).default_service(web::to(no_endpoint)),
        );
    }
    registration_routes(cfg);
    cfg.configure(admin_api::routes)
        .default_service(web::to(pages::not_found));
}

/// Dynamic client registration (RFC 7591, RFC 7592); each handler answers 404 while it is off.
fn registration_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(at(paths::REGISTER, "POST").route(web::post().to(register::register)))
        .service(
            at(paths::REGISTER_CLIENT, "GET, PUT, DELETE")
                .route(web::get().to(register::read))
                .route(web::put().to(register::update))
                .route(web::delete().to(register::delete)),
        );
}

/// A resource at `path` whose other methods get [`method_not_allowed`] with `allow`.
fn at(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        method_not_allowed(&req, allow)
    }))
}

/// 405 with `Allow` (RFC 9110 §15.5.6) and an RFC 6749-style JSON error.
pub fn method_not_allowed(req: &HttpRequest, allow: &'static str) -> HttpResponse {
    HttpResponse::build(StatusCode::METHOD_NOT_ALLOWED)
        .insert_header((header::ALLOW, allow))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "error": "invalid_request",
            "error_description": format!(
                "method {} is not allowed here; allowed: {allow}",
                crate::metrics::method_label(req.method().as_str())
            ),
        }))
}

/// JSON 404 for a path below a JSON endpoint.
async fn no_endpoint() -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "error": "not_found",
            "error_description": "there is no endpoint at this path",
        }))
}
