//! `GET /logout` (a confirmation form) and `POST /logout`.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::authorize::{browser_form, session_cookie, session_cookie_name};
use super::pages;
use crate::error::AppError;
use crate::flows::logout::{self as flow, LogoutView};
use crate::state::AppState;

pub async fn page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let cookie = session_cookie(&state, &req);
    Ok(match flow::page(&state, cookie.as_deref()).await? {
        LogoutView::Confirm { csrf, username } => pages::logout(
            StatusCode::OK,
            "Sign out?",
            &format!("You are signed in as {username}. Signing out also ends the sessions of the apps you signed in to in this browser."),
            Some(&csrf),
        ),
        LogoutView::NotSignedIn => {
            pages::logout(StatusCode::OK, "Signed out", "You are not signed in.", None)
        }
    })
}

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let form = match browser_form(&state, &req, &body) {
        Ok(f) => f,
        Err(resp) => return Ok(*resp),
    };
    let cookie = session_cookie(&state, &req);
    let ip = super::forms::client_ip(&req, &state.settings.server.trusted_proxies);
    if !flow::submit(&state, &form, cookie.as_deref(), ip).await? {
        return Ok(pages::bad_request(
            "This sign-out form has expired. Open the sign-out page again.",
        ));
    }
    let mut resp = pages::logout(StatusCode::OK, "Signed out", "You have signed out.", None);
    clear_session_cookie(&state, &mut resp);
    Ok(resp)
}

/// Removes the session cookie of a browser whose session just ended.
pub(super) fn clear_session_cookie(state: &AppState, resp: &mut HttpResponse) {
    let mut removal = Cookie::new(session_cookie_name(state), "");
    removal.set_path("/");
    removal.make_removal();
    if let Err(e) = resp.add_removal_cookie(&removal) {
        tracing::warn!(error = %e, "could not clear the session cookie");
    }
}
