//! `GET /end_session` and `POST /end_session` (OpenID Connect RP-Initiated Logout 1.0): an
//! application's logout request, and the confirmation form's POST.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::authorize::{browser_form, page_params, session_cookie};
use super::forms::client_ip;
use super::logout::clear_session_cookie;
use super::pages;
use crate::error::AppError;
use crate::flows::end_session::{self as flow, Answer, Confirm, Method};
use crate::oauth::params::Params;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "end_session.html")]
struct ConfirmPage<'a> {
    username: &'a str,
    client_name: Option<&'a str>,
    csrf: &'a str,
    client_id: Option<&'a str>,
    post_logout_redirect_uri: Option<&'a str>,
    state: Option<&'a str>,
}

fn confirm_page(view: &Confirm) -> HttpResponse {
    let mut resp = pages::html(
        StatusCode::OK,
        ConfirmPage {
            username: &view.username,
            client_name: view.client_name.as_deref(),
            csrf: &view.csrf,
            client_id: view.carried.client_id.as_deref(),
            post_logout_redirect_uri: view.carried.post_logout_redirect_uri.as_deref(),
            state: view.carried.state.as_deref(),
        }
        .render(),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn render(state: &AppState, answer: Answer) -> HttpResponse {
    match answer {
        Answer::Refused(message) => pages::bad_request(message),
        Answer::Confirm(view) => confirm_page(&view),
        Answer::Again(location) => see_other(&location),
        Answer::Redirect {
            location,
            signed_out,
        } => {
            let mut resp = see_other(&location);
            if signed_out {
                clear_session_cookie(state, &mut resp);
            }
            resp
        }
        Answer::SignedOut { signed_out: true } => {
            let mut resp =
                pages::logout(StatusCode::OK, "Signed out", "You have signed out.", None);
            clear_session_cookie(state, &mut resp);
            resp
        }
        Answer::SignedOut { signed_out: false } => {
            pages::logout(StatusCode::OK, "Signed out", "You are signed out.", None)
        }
    }
}

/// `GET /end_session`.
pub async fn page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let cookie = session_cookie(&state, &req);
    let ip = client_ip(&req, &state.settings.server.trusted_proxies);
    let answer = flow::request(&state, &params, cookie.as_deref(), ip, Method::Get).await?;
    Ok(render(&state, answer))
}

/// `POST /end_session`: the confirmation form (it carries `csrf`, and must come from our own
/// pages), or an application's logout request sent as a form (from its own site).
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return Ok(pages::bad_request(&e.description)),
    };
    let cookie = session_cookie(&state, &req);
    let ip = client_ip(&req, &state.settings.server.trusted_proxies);
    let answer = if params.contains("csrf") {
        let form = match browser_form(&state, &req, &body) {
            Ok(f) => f,
            Err(resp) => return Ok(*resp),
        };
        flow::confirm(&state, &form, cookie.as_deref(), ip).await?
    } else {
        flow::request(&state, &params, cookie.as_deref(), ip, Method::Post).await?
    };
    Ok(render(&state, answer))
}
