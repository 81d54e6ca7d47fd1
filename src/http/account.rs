//! `/account/mfa`: the signed-in user's two-step verification page; `/account/consents`: the
//! applications they allowed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::authorize::{
    browser_form, new_device_cookie, new_session_cookie, page_params, session_cookie, sign_in_post,
};
use super::pages;
use super::rate_limit::Group;
use crate::flows::account::{self as flow, AccountOutcome};
use crate::flows::authorize::ScopeView;
use crate::flows::consents::{self, ConsentsOutcome};
use crate::state::AppState;

fn respond(state: &AppState, outcome: AccountOutcome) -> HttpResponse {
    match outcome {
        AccountOutcome::Page(view, message) => pages::account_mfa(&view, message),
        AccountOutcome::Codes {
            codes,
            continue_to,
            new_session,
        } => {
            let mut resp = pages::recovery_codes(&codes, continue_to.as_deref());
            if let Some((token, device)) = new_session {
                // The page itself finishes the sign-in (no redirect: the codes show once): the
                // signed-in session and the device cookie (checklist 59).
                for cookie in [new_session_cookie(state, &token), new_device_cookie(state, &device)] {
                    if let Err(e) = resp.add_cookie(&cookie) {
                        tracing::error!(error = %e, "setting a cookie failed");
                    }
                }
            }
            resp
        }
        AccountOutcome::Done(message) => pages::error(StatusCode::OK, "Two-step verification", message),
        AccountOutcome::SignInFirst => pages::error(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "Sign in to an application through Gatehouse, then follow its link to two-step verification.",
        ),
        AccountOutcome::BadRequest(message) => pages::bad_request(message),
    }
}

pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, crate::error::AppError> {
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let cookie = session_cookie(&state, &req);
    let via = crate::flows::authorize::Via::from_params(&params);
    let outcome = flow::page(&state, cookie.as_deref(), via).await?;
    Ok(respond(&state, outcome))
}

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, crate::error::AppError> {
    let post = match sign_in_post(&state, &req, &body, Group::Login) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let outcome = flow::submit(
        &state,
        post.form,
        post.session.as_deref(),
        post.device.as_deref(),
        post.ip,
    )
    .await?;
    Ok(respond(&state, outcome))
}

fn consents_response(state: &AppState, outcome: ConsentsOutcome) -> HttpResponse {
    match outcome {
        ConsentsOutcome::Page(view, message) => {
            let consent = &state.settings.consent;
            let rows: Vec<pages::ConsentRow> = view
                .consents
                .iter()
                .map(|c| pages::ConsentRow {
                    client_id: c.client_id.clone(),
                    client_name: c.client_name.clone(),
                    scopes: c
                        .consented
                        .scopes
                        .iter()
                        .map(|name| ScopeView {
                            name: name.clone(),
                            description: consent.describe(name).map(str::to_owned),
                        })
                        .collect(),
                    audiences: c.consented.audiences.join(", "),
                })
                .collect();
            pages::account_consents(&view, &rows, message)
        }
        ConsentsOutcome::SignInFirst => pages::error(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "Sign in to an application through Gatehouse, then come back to this page.",
        ),
        ConsentsOutcome::BadRequest(message) => pages::bad_request(message),
    }
}

/// `GET /account/consents`.
pub async fn consents_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, crate::error::AppError> {
    let cookie = session_cookie(&state, &req);
    let outcome = consents::page(&state, cookie.as_deref()).await?;
    Ok(consents_response(&state, outcome))
}

/// `POST /account/consents`: withdraw one (same-origin form with its CSRF token).
pub async fn consents_withdraw(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, crate::error::AppError> {
    let form = match browser_form(&state, &req, &body) {
        Ok(f) => f,
        Err(resp) => return Ok(*resp),
    };
    let ip = super::forms::client_ip(&req, &state.settings.server.trusted_proxies);
    let cookie = session_cookie(&state, &req);
    let outcome = consents::withdraw(&state, &form, cookie.as_deref(), ip).await?;
    Ok(consents_response(&state, outcome))
}
