//! `/account/mfa`: the signed-in user's two-step verification page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::authorize::{
    new_device_cookie, new_session_cookie, page_params, session_cookie, sign_in_post,
};
use super::pages;
use super::rate_limit::Group;
use crate::flows::account::{self as flow, AccountOutcome};
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
