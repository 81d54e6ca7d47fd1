//! `GET /authorize`, the login page and the consent page.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::pages;
use super::rate_limit::Group;
use crate::flows::authorize::{self as flow, Outcome, Start};
use crate::flows::lockout::DeviceCookie;
use crate::oauth::params::Params;
use crate::secret::PlainToken;
use crate::state::AppState;

/// The session cookie's name: `__Host-` prefixed (and `Secure`) when the issuer is https.
pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.settings.is_https() {
        "__Host-gatehouse_session"
    } else {
        "gatehouse_session"
    }
}

pub fn session_cookie(state: &AppState, req: &HttpRequest) -> Option<String> {
    req.cookie(session_cookie_name(state))
        .map(|c| c.value().to_owned())
}

/// The device cookie's name (checklist 59): `__Host-` prefixed (and `Secure`) when the issuer is
/// https.
pub fn device_cookie_name(state: &AppState) -> &'static str {
    if state.settings.is_https() {
        "__Host-gatehouse_device"
    } else {
        "gatehouse_device"
    }
}

/// The device cookie: HttpOnly, SameSite=Lax, Secure over https, for its lifetime.
pub(super) fn new_device_cookie(state: &AppState, device: &DeviceCookie) -> Cookie<'static> {
    Cookie::build(device_cookie_name(state), device.expose().to_owned())
        .path("/")
        .http_only(true)
        .secure(state.settings.is_https())
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(
            device.max_age_secs,
        ))
        .finish()
}

fn set_device(state: &AppState, resp: &mut actix_web::HttpResponseBuilder, device: &DeviceCookie) {
    resp.cookie(new_device_cookie(state, device));
}

/// The session cookie carrying `token`: HttpOnly, SameSite=Lax, Secure over https.
pub(super) fn new_session_cookie(state: &AppState, token: &PlainToken) -> Cookie<'static> {
    Cookie::build(session_cookie_name(state), token.expose().to_owned())
        .path("/")
        .http_only(true)
        .secure(state.settings.is_https())
        .same_site(SameSite::Lax)
        .finish()
}

fn set_session(state: &AppState, resp: &mut actix_web::HttpResponseBuilder, token: &PlainToken) {
    resp.cookie(new_session_cookie(state, token));
}

/// A 303 See Other (RFC 9700 §4.12: never 307 after a credential POST).
fn see_other(state: &AppState, location: &str, new_session: Option<&PlainToken>) -> HttpResponse {
    let mut resp = HttpResponse::SeeOther();
    resp.insert_header((header::LOCATION, location));
    if let Some(token) = new_session {
        set_session(state, &mut resp, token);
    }
    resp.finish()
}

fn outcome(state: &AppState, outcome: Outcome, username: &str) -> HttpResponse {
    match outcome {
        Outcome::Retry(view, message) => pages::login(&view, username, Some(message)),
        Outcome::RetryCode(view, message) => pages::otp(&view, Some(message)),
        Outcome::SeeOther {
            location,
            new_session,
        } => see_other(state, &location, new_session.as_ref()),
        Outcome::BadRequest(message) => pages::bad_request(message),
        Outcome::Busy(view) => pages::login_busy(&view, username),
        Outcome::SignedIn {
            location,
            new_session,
            device,
        } => {
            let mut resp = HttpResponse::SeeOther();
            resp.insert_header((header::LOCATION, location));
            set_session(state, &mut resp, &new_session);
            set_device(state, &mut resp, &device);
            resp.finish()
        }
    }
}

pub(super) fn page_params(req: &HttpRequest) -> Result<Params, Box<HttpResponse>> {
    Params::parse(req.query_string().as_bytes())
        .map_err(|e| Box::new(pages::bad_request(&e.description)))
}

/// Reads a browser form POST: form-encoded, from our own origin.
pub fn browser_form(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Params, Box<HttpResponse>> {
    let header_str = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let origin = header_str(header::ORIGIN);
    let fetch_site = header_str(header::HeaderName::from_static("sec-fetch-site"));
    if !super::origin::origin_allowed(state.issuer(), origin, fetch_site) {
        return Err(Box::new(pages::error(
            actix_web::http::StatusCode::FORBIDDEN,
            "Request refused",
            "This form was sent from another site.",
        )));
    }
    Params::parse(body).map_err(|e| Box::new(pages::bad_request(&e.description)))
}

/// A sign-in form POST as its handler needs it: rate-limited per address, same-origin, parsed.
pub(super) struct SignInPost {
    pub form: Params,
    pub session: Option<String>,
    pub device: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

/// Reads a sign-in form POST (password, code, account page): the `group`'s rate limit first,
/// then [`browser_form`]; the answer to send instead when either refuses.
pub(super) fn sign_in_post(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
    group: Group,
) -> Result<SignInPost, Box<HttpResponse>> {
    let ip = super::forms::client_ip(req, &state.settings.server.trusted_proxies);
    if let Some(secs) = super::rate_limit::over_limit(req, ip, group) {
        return Err(Box::new(pages::too_many_requests(secs)));
    }
    let form = browser_form(state, req, body)?;
    Ok(SignInPost {
        form,
        session: session_cookie(state, req),
        device: req
            .cookie(device_cookie_name(state))
            .map(|c| c.value().to_owned()),
        ip,
    })
}

/// Seconds to wait when this address is over the group's `[rate_limits]`.
fn limited(state: &AppState, req: &HttpRequest, group: Group) -> Option<u64> {
    let ip = super::forms::client_ip(req, &state.settings.server.trusted_proxies);
    super::rate_limit::over_limit(req, ip, group)
}

pub async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, crate::error::AppError> {
    let ip = super::forms::client_ip(&req, &state.settings.server.trusted_proxies);
    if let Some(secs) = super::rate_limit::over_limit(&req, ip, Group::Authorize) {
        return Ok(pages::too_many_requests(secs));
    }
    let start = flow::start(
        &state,
        req.query_string().as_bytes(),
        session_cookie(&state, &req),
        ip,
    )
    .await?;
    Ok(match start {
        Start::BadRequest(message) => pages::bad_request(&message),
        Start::Redirect(location) => HttpResponse::Found()
            .insert_header((header::LOCATION, location))
            .finish(),
        Start::Continue {
            location,
            new_session,
        } => see_other(&state, &location, new_session.as_ref()),
        Start::TooMany(secs) => pages::too_many_requests(secs),
    })
}

pub async fn login_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, crate::error::AppError> {
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let cookie = session_cookie(&state, &req);
    Ok(
        match flow::login_page(&state, flow::Via::from_params(&params), cookie.as_deref()).await? {
            Ok(view) => pages::login(&view, "", None),
            Err(message) => pages::bad_request(message),
        },
    )
}

pub async fn login_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, crate::error::AppError> {
    let post = match sign_in_post(&state, &req, &body, Group::Login) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let username = post.form.get("username").unwrap_or("").to_owned();
    let span = tracing::info_span!("login", client_ip = %super::forms::shown(post.ip));
    let result = tracing::Instrument::instrument(
        flow::login_submit(
            &state,
            post.form,
            post.session.as_deref(),
            post.device.as_deref(),
            post.ip,
        ),
        span,
    )
    .await?;
    Ok(outcome(&state, result, &username))
}

pub async fn consent_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, crate::error::AppError> {
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let cookie = session_cookie(&state, &req);
    Ok(
        match flow::consent_page(&state, params.get("interaction"), cookie.as_deref()).await? {
            Ok(view) => pages::consent(&view),
            Err(other) => outcome(&state, other, ""),
        },
    )
}

pub async fn consent_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, crate::error::AppError> {
    if let Some(secs) = limited(&state, &req, Group::Consent) {
        return Ok(pages::too_many_requests(secs));
    }
    let form = match browser_form(&state, &req, &body) {
        Ok(f) => f,
        Err(resp) => return Ok(*resp),
    };
    let cookie = session_cookie(&state, &req);
    let result = flow::consent_submit(&state, form, cookie.as_deref()).await?;
    Ok(outcome(&state, result, ""))
}

pub async fn otp_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, crate::error::AppError> {
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let cookie = session_cookie(&state, &req);
    Ok(
        match flow::otp_page(&state, flow::Via::from_params(&params), cookie.as_deref()).await? {
            Ok(view) => pages::otp(&view, None),
            Err(other) => outcome(&state, other, ""),
        },
    )
}

pub async fn otp_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, crate::error::AppError> {
    let post = match sign_in_post(&state, &req, &body, Group::Login) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let result = flow::otp_submit(
        &state,
        post.form,
        post.session.as_deref(),
        post.device.as_deref(),
        post.ip,
    )
    .await?;
    Ok(outcome(&state, result, ""))
}
