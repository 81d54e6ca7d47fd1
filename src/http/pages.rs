//! Server-rendered pages (askama, auto-escaped HTML) and the stylesheet they share.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder};
use askama::Template;

use crate::flows::authorize::PageView;

pub const STYLESHEET_PATH: &str = "/static/gatehouse.css";
const STYLESHEET: &str = include_str!("../../static/gatehouse.css");
pub const DEMO_SCRIPT_PATH: &str = "/static/demo.js";
const DEMO_SCRIPT: &str = include_str!("../../static/demo.js");

/// The demo page's policy: the site's own, plus `connect-src 'self'` for its token requests.
const DEMO_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                        style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                        base-uri 'none'";

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    issuer: &'a str,
    demo: bool,
}

/// `GET /`: what this server is, with links to its metadata, keys and (when on) the demo.
pub async fn home(state: actix_web::web::Data<crate::state::AppState>) -> HttpResponse {
    html(
        StatusCode::OK,
        HomePage {
            issuer: state.issuer(),
            demo: state.settings.demo_enabled(),
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "demo.html")]
struct DemoPage<'a> {
    issuer: &'a str,
    client_id: &'a str,
}

/// `GET /demo`: the PKCE flow in the browser (`demo.enabled`), else not found.
pub async fn demo(state: actix_web::web::Data<crate::state::AppState>) -> HttpResponse {
    if !state.settings.demo_enabled() {
        return not_found().await;
    }
    let mut resp = html(
        StatusCode::OK,
        DemoPage {
            issuer: state.issuer(),
            client_id: crate::registry::DEMO_CLIENT_ID,
        }
        .render(),
    );
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(DEMO_CSP),
    );
    resp
}

/// `GET /favicon.ico`: no icon, and no error in the browser's console either.
pub async fn no_icon() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .finish()
}

/// The demo page's script (same origin, as the CSP requires).
pub async fn demo_script(state: actix_web::web::Data<crate::state::AppState>) -> HttpResponse {
    if !state.settings.demo_enabled() {
        return not_found().await;
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(DEMO_SCRIPT)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    client_name: &'a str,
    via_name: &'a str,
    via_value: &'a str,
    csrf: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client_name: &'a str,
    interaction: &'a str,
    csrf: &'a str,
    username: Option<&'a str>,
    scopes: &'a [crate::flows::authorize::ScopeView],
    audience: &'a str,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    title: &'a str,
    message: &'a str,
    csrf: Option<&'a str>,
}

/// The sign-out page: a confirmation form when `csrf` is given, else a message.
pub fn logout(status: StatusCode, title: &str, message: &str, csrf: Option<&str>) -> HttpResponse {
    html(
        status,
        LogoutPage {
            title,
            message,
            csrf,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

pub(super) fn html(status: StatusCode, rendered: Result<String, askama::Error>) -> HttpResponse {
    match rendered {
        Ok(body) => HttpResponseBuilder::new(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("internal error")
        }
    }
}

pub fn login(view: &PageView, username: &str, error: Option<&str>) -> HttpResponse {
    login_with(StatusCode::OK, view, username, error)
}

/// The login form again, as 503 with `Retry-After`: too many password checks wait already
/// (checklist 57). The form stays usable: the user signs in again from it.
pub fn login_busy(view: &PageView, username: &str) -> HttpResponse {
    let mut resp = login_with(
        StatusCode::SERVICE_UNAVAILABLE,
        view,
        username,
        Some("Too many sign-ins are being checked right now. Wait a moment, then try again."),
    );
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_static(super::forms::RETRY_AFTER_SECS),
    );
    resp
}

fn login_with(
    status: StatusCode,
    view: &PageView,
    username: &str,
    error: Option<&str>,
) -> HttpResponse {
    html(
        status,
        LoginPage {
            client_name: &view.client_name,
            via_name: view.via.name(),
            via_value: view.via.value(),
            csrf: &view.csrf,
            // What was typed, else the request's login_hint.
            username: if username.is_empty() {
                view.login_hint.as_deref().unwrap_or("")
            } else {
                username
            },
            error,
        }
        .render(),
    )
}

pub fn consent(view: &PageView) -> HttpResponse {
    html(
        StatusCode::OK,
        ConsentPage {
            client_name: &view.client_name,
            interaction: view.via.value(),
            csrf: &view.csrf,
            username: view.username.as_deref(),
            scopes: &view.scopes,
            audience: &view.audience,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "otp.html")]
struct OtpPage<'a> {
    client_name: &'a str,
    via_name: &'a str,
    via_value: &'a str,
    csrf: &'a str,
    username: Option<&'a str>,
    error: Option<&'a str>,
}

/// The sign-in's code step. A refused code answers 200 with the message, like a wrong password.
pub fn otp(view: &PageView, error: Option<&str>) -> HttpResponse {
    no_store(html(
        StatusCode::OK,
        OtpPage {
            client_name: &view.client_name,
            via_name: view.via.name(),
            via_value: view.via.value(),
            csrf: &view.csrf,
            username: view.username.as_deref(),
            error,
        }
        .render(),
    ))
}

#[derive(Template)]
#[template(path = "account_mfa.html")]
struct AccountMfaPage<'a> {
    username: &'a str,
    csrf: &'a str,
    via: Option<&'a crate::flows::authorize::Via>,
    continue_to: Option<String>,
    in_sign_in: bool,
    enrolment: Option<&'a crate::flows::mfa::Enrolment>,
    codes_left: i64,
    error: Option<&'a str>,
}

/// The account's two-step verification page: enrolment (QR code, key, confirm) or the active
/// factor's actions. `no-store`: it can show a secret.
pub fn account_mfa(view: &crate::flows::account::AccountView, error: Option<&str>) -> HttpResponse {
    use crate::flows::account::Factor;
    let (enrolment, codes_left) = match &view.factor {
        Factor::Enrol(e) => (Some(e), 0),
        Factor::Active {
            recovery_codes_left,
        } => (None, *recovery_codes_left),
    };
    let continue_to = view.via.as_ref().map(crate::flows::authorize::Via::done);
    no_store(html(
        StatusCode::OK,
        AccountMfaPage {
            username: &view.username,
            csrf: &view.csrf,
            via: view.via.as_ref(),
            continue_to,
            in_sign_in: view.in_sign_in,
            enrolment,
            codes_left,
            error,
        }
        .render(),
    ))
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryCodesPage<'a> {
    codes: &'a [String],
    continue_to: Option<&'a str>,
}

/// Recovery codes, shown once (`no-store`).
pub fn recovery_codes(codes: &[String], continue_to: Option<&str>) -> HttpResponse {
    no_store(html(
        StatusCode::OK,
        RecoveryCodesPage { codes, continue_to }.render(),
    ))
}

fn no_store(mut resp: HttpResponse) -> HttpResponse {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// A readable error page.
/// One consent on the account page.
pub struct ConsentRow {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<crate::flows::authorize::ScopeView>,
    pub audiences: String,
}

#[derive(Template)]
#[template(path = "account_consents.html")]
struct AccountConsentsPage<'a> {
    username: &'a str,
    csrf: &'a str,
    consents: &'a [ConsentRow],
    message: Option<&'a str>,
}

/// `/account/consents`: the applications the user allowed, each with a Withdraw form.
pub fn account_consents(
    view: &crate::flows::consents::ConsentsView,
    consents: &[ConsentRow],
    message: Option<&str>,
) -> HttpResponse {
    no_store(html(
        StatusCode::OK,
        AccountConsentsPage {
            username: &view.username,
            csrf: &view.csrf,
            consents,
            message,
        }
        .render(),
    ))
}

pub fn error(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    html(status, ErrorPage { title, message }.render())
}

/// 429 with `Retry-After`: this address sent more of these requests than `[rate_limits]` allow.
pub fn too_many_requests(retry_after_secs: u64) -> HttpResponse {
    let message = format!(
        "Too many requests came from your address. Try again in {retry_after_secs} seconds."
    );
    let mut resp = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests", &message);
    if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, value);
    }
    resp
}

pub fn bad_request(message: &str) -> HttpResponse {
    error(
        StatusCode::BAD_REQUEST,
        "This request cannot be completed",
        message,
    )
}

pub async fn not_found() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}
