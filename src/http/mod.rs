//! HTTP: thin actix-web handlers, one file per endpoint, and the middleware every response passes.

pub mod account;
pub mod admin_api;
pub mod admin_console;
pub mod admin_pages;
pub mod authorize;
pub mod cors;
pub mod forms;
pub mod health;
pub mod introspect;
pub mod logout;
pub mod metadata;
pub mod middleware;
pub mod origin;
pub mod pages;
pub mod rate_limit;
pub mod register;
pub mod revoke;
pub mod token;

use actix_web::web;

use crate::oauth::metadata::paths;

/// Registers every route. The app also needs `web::Data<AppState>` and the security-header
/// middleware (see [`crate::server::build`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    // The admin console (`/admin`, exact paths: `/admin/api/…` is registered on its own).
    admin_console::routes(cfg);

    let options = || web::method(actix_web::http::Method::OPTIONS);
    cfg.route(paths::METADATA, web::get().to(metadata::metadata))
        .route(paths::METADATA, options().to(cors::preflight_get))
        .route(paths::JWKS, web::get().to(metadata::jwks))
        .route(paths::JWKS, options().to(cors::preflight_get))
        .route(paths::AUTHORIZE, web::get().to(authorize::authorize))
        .route(paths::LOGIN, web::get().to(authorize::login_page))
        .route(paths::LOGIN, web::post().to(authorize::login_submit))
        .route(paths::LOGIN_OTP, web::get().to(authorize::otp_page))
        .route(paths::LOGIN_OTP, web::post().to(authorize::otp_submit))
        .route(paths::ACCOUNT_MFA, web::get().to(account::page))
        .route(paths::ACCOUNT_MFA, web::post().to(account::submit))
        .route(paths::CONSENT, web::get().to(authorize::consent_page))
        .route(paths::CONSENT, web::post().to(authorize::consent_submit))
        .route(paths::LOGOUT, web::get().to(logout::page))
        .route(paths::LOGOUT, web::post().to(logout::submit))
        .route(paths::TOKEN, web::post().to(token::token))
        .route(paths::TOKEN, options().to(cors::preflight_post))
        .route(paths::REVOKE, web::post().to(revoke::revoke))
        .route(paths::REVOKE, options().to(cors::preflight_post))
        .route(paths::INTROSPECT, web::post().to(introspect::introspect))
        .route(paths::HEALTHZ, web::get().to(health::healthz))
        .route(paths::READYZ, web::get().to(health::readyz))
        .route(pages::STYLESHEET_PATH, web::get().to(pages::stylesheet))
        .route("/", web::get().to(pages::home))
        .route("/favicon.ico", web::get().to(pages::no_icon))
        .route("/demo", web::get().to(pages::demo))
        .route(pages::DEMO_SCRIPT_PATH, web::get().to(pages::demo_script));
    registration_routes(cfg);
    cfg.configure(admin_api::routes)
        .default_service(web::to(pages::not_found));
}

/// Dynamic client registration (RFC 7591, RFC 7592); each handler answers 404 while it is off.
fn registration_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(paths::REGISTER, web::post().to(register::register))
        .route(paths::REGISTER_CLIENT, web::get().to(register::read))
        .route(paths::REGISTER_CLIENT, web::put().to(register::update))
        .route(paths::REGISTER_CLIENT, web::delete().to(register::delete));
}
