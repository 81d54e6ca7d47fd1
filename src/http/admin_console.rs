//! `/admin`: the admin console's handlers. Each reads the request, lets the service say who may
//! enter (`flows::admin_console::admit`), calls one service function and renders
//! (`admin_pages`). A visit without a session that may enter starts a sign-in on the login and
//! code pages that returns here; a form from anyone but a signed-in administrator with a second
//! factor, from another site, or without the session's CSRF token changes nothing.
//!
//! The routes are exact paths (none under `/admin/api/`), and none of them adds CORS headers.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::admin_pages::{self as page, Confirm};
use super::authorize::{browser_form, new_session_cookie, page_params, session_cookie};
use super::pages;
use super::rate_limit::Group;
use crate::error::AppError;
use crate::flows::admin_console::{
    self as flow, Admin, AuditFilters, ClientForm, Gate, Refused, UserAction, HOME,
};
use crate::flows::authorize::{self as sign_in, Start};
use crate::oauth::model::GrantType;
use crate::oauth::params::Params;
use crate::registry::{Fault, ProfileChanges};
use crate::secret::PlainToken;
use crate::state::AppState;

/// Registers the console's routes: exact paths, so `/admin/api/…` stays free for the admin API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(HOME, web::get().to(home))
        .route("/admin/clients", web::get().to(clients))
        .route("/admin/clients/new", web::get().to(new_client))
        .route("/admin/clients/new", web::post().to(create_client))
        .route("/admin/clients/{id}", web::get().to(client))
        .route("/admin/clients/{id}", web::post().to(update_client))
        .route("/admin/clients/{id}/secret", web::post().to(rotate_secret))
        .route("/admin/clients/{id}/delete", web::post().to(delete_client))
        .route("/admin/users", web::get().to(users))
        .route("/admin/users/{id}", web::get().to(user))
        .route("/admin/users/{id}/{action}", web::post().to(user_action))
        .route("/admin/keys", web::get().to(keys))
        .route("/admin/keys/rotate", web::post().to(rotate_key))
        .route("/admin/audit", web::get().to(audit))
        .route(page::SCRIPT_PATH, web::get().to(page::script));
}

type Answer = Result<HttpResponse, AppError>;

fn see_other(state: &AppState, location: &str, new_session: Option<&PlainToken>) -> HttpResponse {
    let mut resp = HttpResponse::SeeOther();
    resp.insert_header((header::LOCATION, location));
    if let Some(token) = new_session {
        resp.cookie(new_session_cookie(state, token));
    }
    resp.finish()
}

fn not_admin() -> HttpResponse {
    pages::error(
        StatusCode::FORBIDDEN,
        "Administrators only",
        "The admin console is for users with the admin role. Nothing was changed.",
    )
}

fn sign_in_again() -> HttpResponse {
    pages::error(
        StatusCode::FORBIDDEN,
        "Sign in with your second factor",
        "The admin console needs a session signed in with a password and a second factor. \
         Open /admin to sign in again. Nothing was changed.",
    )
}

/// The page of a refused action: 404, 400 with the faults, or 409 with the reason.
fn refused(r: Refused) -> HttpResponse {
    match r {
        Refused::NotFound => pages::error(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no client or user with this id.",
        ),
        Refused::Invalid(faults) => pages::bad_request(
            &faults
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Refused::Conflict(message) => pages::error(StatusCode::CONFLICT, "Not done", &message),
    }
}

/// The administrator behind a page request, or the answer instead: a sign-in that returns to
/// this page, or 403 for a user who is not an administrator.
async fn enter(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Result<Admin, HttpResponse>, AppError> {
    let cookie = session_cookie(state, req);
    match flow::admit(state, cookie.as_deref()).await? {
        Gate::Admin(admin) => Ok(Ok(admin)),
        Gate::NotAdmin => Ok(Err(not_admin())),
        Gate::SignIn => {
            let ip = super::forms::client_ip(req, &state.settings.server.trusted_proxies);
            if let Some(secs) = super::rate_limit::over_limit(req, ip, Group::Authorize) {
                return Ok(Err(pages::too_many_requests(secs)));
            }
            let here = req.uri().path_and_query().map_or(HOME, |p| p.as_str());
            let return_to = flow::return_path(here).unwrap_or_else(|| HOME.to_owned());
            Ok(Err(
                match sign_in::console_sign_in(state, return_to, cookie, ip).await? {
                    Start::Continue {
                        location,
                        new_session,
                    } => see_other(state, &location, new_session.as_ref()),
                    Start::TooMany(secs) => pages::too_many_requests(secs),
                    Start::BadRequest(message) => pages::bad_request(&message),
                    Start::Redirect(location) => see_other(state, &location, None),
                },
            ))
        }
    }
}

/// The administrator and form behind a POST, or the answer instead: 403 for a form from another
/// site, a user who is not an administrator or a session without a second factor; 400 for a
/// missing or wrong CSRF token.
async fn enter_form(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Result<(Admin, Params), HttpResponse>, AppError> {
    let form = match browser_form(state, req, body) {
        Ok(f) => f,
        Err(resp) => return Ok(Err(*resp)),
    };
    let cookie = session_cookie(state, req);
    let admin = match flow::admit(state, cookie.as_deref()).await? {
        Gate::Admin(admin) => admin,
        Gate::NotAdmin => return Ok(Err(not_admin())),
        Gate::SignIn => return Ok(Err(sign_in_again())),
    };
    if !admin.csrf_ok(&form) {
        return Ok(Err(pages::bad_request(
            "The form has expired or did not come from the admin console. Reload the page and \
             try again. Nothing was changed.",
        )));
    }
    Ok(Ok((admin, form)))
}

macro_rules! admitted {
    ($e:expr) => {
        match $e.await? {
            Ok(v) => v,
            Err(resp) => return Ok(resp),
        }
    };
}

macro_rules! done {
    ($e:expr) => {
        match $e.await? {
            Ok(v) => v,
            Err(r) => return Ok(refused(r)),
        }
    };
}

/// The fixed message a `done` code in the query stands for (never the query's own text).
fn notice(params: &Params) -> Option<&'static str> {
    Some(match params.get("done")? {
        "client-created" => "The client is registered.",
        "client-updated" => "The client's settings are saved.",
        "client-deleted" => "The client is deleted, and every token it held is revoked.",
        "roles" => "The roles are saved. Tokens issued from now on carry them.",
        "profile" => "The profile is saved. ID tokens and userinfo answers from now on carry it.",
        "disabled" => "The user is disabled: their sessions and refresh tokens have ended.",
        "enabled" => "The user is enabled and may sign in again.",
        "unlocked" => "The user is unlocked: every failed sign-in count is cleared.",
        "mfa-reset" => "Two-step verification is reset: the user signs in with the password alone, or sets it up again where it is required.",
        "user-deleted" => "The user is deleted, with their sessions and refresh tokens.",
        "key-rotated" => "A new key is published: it signs once its time comes.",
        _ => return None,
    })
}

fn search(params: &Params) -> Option<String> {
    params
        .get("q")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
}

fn confirmed(form: &Params) -> bool {
    form.get("confirm") == Some("yes")
}

pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let admin = admitted!(enter(&state, &req));
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    Ok(page::home(&admin, notice(&params)))
}

pub async fn clients(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let admin = admitted!(enter(&state, &req));
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let q = search(&params);
    let found = done!(flow::clients(&state, q.clone()));
    let (list, full) = (found.items, found.next_offset.is_some());
    Ok(page::clients(
        &admin,
        notice(&params),
        q.as_deref().unwrap_or(""),
        &list,
        full,
    ))
}

pub async fn new_client(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let admin = admitted!(enter(&state, &req));
    let form = ClientForm {
        grant_types: GrantType::DEFAULT
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect(),
        ..Default::default()
    };
    Ok(page::client_form(&admin, None, None, &form, &[]))
}

pub async fn create_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Answer {
    let (admin, params) = admitted!(enter_form(&state, &req, &body));
    let form = ClientForm::from_params(&params);
    match flow::create_client(&state, &admin, &form).await? {
        Ok(registered) => Ok(match &registered.secret {
            Some(secret) => page::secret(
                &admin,
                "Client registered",
                &registered.client,
                secret.expose(),
                None,
            ),
            None => see_other(
                &state,
                &format!(
                    "/admin/clients/{}?done=client-created",
                    registered.client.id
                ),
                None,
            ),
        }),
        Err(Refused::Invalid(faults)) => Ok(page::client_form(&admin, None, None, &form, &faults)),
        Err(other) => Ok(refused(other)),
    }
}

pub async fn client(state: web::Data<AppState>, req: HttpRequest, id: web::Path<String>) -> Answer {
    let admin = admitted!(enter(&state, &req));
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let client = done!(flow::client(&state, id.into_inner()));
    let id = client.id.to_string();
    Ok(page::client_form(
        &admin,
        notice(&params),
        Some(&id),
        &ClientForm::of(&client),
        &[],
    ))
}

pub async fn update_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    let (admin, params) = admitted!(enter_form(&state, &req, &body));
    let id = id.into_inner();
    let current = done!(flow::client(&state, id.clone()));
    let form = ClientForm {
        confidential: current.is_confidential(),
        ..ClientForm::from_params(&params)
    };
    match flow::update_client(&state, &admin, id.clone(), &form).await? {
        Ok(_) => Ok(see_other(
            &state,
            &format!("/admin/clients/{id}?done=client-updated"),
            None,
        )),
        Err(Refused::Invalid(faults)) => {
            Ok(page::client_form(&admin, None, Some(&id), &form, &faults))
        }
        Err(other) => Ok(refused(other)),
    }
}

fn grace_words(secs: i64) -> String {
    match secs {
        0 => "stops working at once".to_owned(),
        s if s % 86_400 == 0 => format!("keeps working for {} day(s)", s / 86_400),
        s if s % 3_600 == 0 => format!("keeps working for {} hour(s)", s / 3_600),
        s => format!("keeps working for {s} seconds"),
    }
}

pub async fn rotate_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    let (admin, params) = admitted!(enter_form(&state, &req, &body));
    let id = id.into_inner();
    let Some(grace) = params.get("grace_secs").unwrap_or("0").parse::<i64>().ok() else {
        return Ok(pages::bad_request(
            "Choose how long the old secret keeps working.",
        ));
    };
    let client = done!(flow::client(&state, id.clone()));
    if !confirmed(&params) {
        let action = format!("/admin/clients/{id}/secret");
        let cancel = format!("/admin/clients/{id}");
        return Ok(page::confirm(
            &admin,
            &Confirm {
                title: "Rotate the client secret?",
                message: format!(
                    "{} gets a new secret, shown once. The current one {}.",
                    client.name,
                    grace_words(grace)
                ),
                action: &action,
                fields: vec![("grace_secs", grace.to_string())],
                button: "Rotate secret",
                cancel: &cancel,
            },
        ));
    }
    let (client, secret) = done!(flow::rotate_secret(&state, &admin, id, grace));
    let until = client.previous_secret.as_ref().map(|p| p.until);
    Ok(page::secret(
        &admin,
        "New client secret",
        &client,
        secret.expose(),
        until,
    ))
}

pub async fn delete_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    let (admin, params) = admitted!(enter_form(&state, &req, &body));
    let id = id.into_inner();
    if !confirmed(&params) {
        let client = done!(flow::client(&state, id.clone()));
        let action = format!("/admin/clients/{id}/delete");
        let cancel = format!("/admin/clients/{id}");
        return Ok(page::confirm(
            &admin,
            &Confirm {
                title: "Delete this client?",
                message: format!(
                    "{} ({id}) is deleted, and every grant and token it holds is revoked at once. \
                     This cannot be undone.",
                    client.name
                ),
                action: &action,
                fields: Vec::new(),
                button: "Delete client",
                cancel: &cancel,
            },
        ));
    }
    done!(flow::delete_client(&state, &admin, id));
    Ok(see_other(
        &state,
        "/admin/clients?done=client-deleted",
        None,
    ))
}

pub async fn users(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let admin = admitted!(enter(&state, &req));
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let q = search(&params);
    let found = done!(flow::users(&state, q.clone()));
    let (list, full) = (found.items, found.next_offset.is_some());
    Ok(page::users(
        &admin,
        notice(&params),
        q.as_deref().unwrap_or(""),
        &list,
        full,
    ))
}

pub async fn user(state: web::Data<AppState>, req: HttpRequest, id: web::Path<String>) -> Answer {
    let admin = admitted!(enter(&state, &req));
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let view = done!(flow::user(&state, id.into_inner()));
    Ok(page::user(&admin, notice(&params), &view, &[]))
}

/// The action a user form names, and the code of its notice.
fn user_action_of(name: &str, form: &Params) -> Option<(UserAction, &'static str)> {
    Some(match name {
        "roles" => {
            let roles = form
                .get("roles")
                .unwrap_or("")
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect();
            (UserAction::Roles(roles), "roles")
        }
        // Every field of the form is sent: an empty one clears, the box unticked is unverified.
        "profile" => (
            UserAction::Profile(ProfileChanges {
                name: Some(form.get("name").map(str::to_owned)),
                email: Some(form.get("email").map(str::to_owned)),
                email_verified: Some(form.get("email_verified") == Some("on")),
            }),
            "profile",
        ),
        "disable" => (UserAction::Disable, "disabled"),
        "enable" => (UserAction::Enable, "enabled"),
        "unlock" => (UserAction::Unlock, "unlocked"),
        "reset-mfa" => (UserAction::ResetMfa, "mfa-reset"),
        "delete" => (UserAction::Delete, "user-deleted"),
        _ => return None,
    })
}

fn confirmation_of(action: &UserAction, name: &str) -> (&'static str, String, &'static str) {
    match action {
        UserAction::Delete => (
            "Delete this user?",
            format!("{name} is deleted with their sessions, refresh tokens and second factor. This cannot be undone."),
            "Delete user",
        ),
        UserAction::ResetMfa => (
            "Reset two-step verification?",
            format!("{name}'s authenticator and recovery codes stop working; they sign in with the password alone, or set up a new authenticator where one is required."),
            "Reset two-step verification",
        ),
        _ => (
            "Disable this user?",
            format!("{name} can no longer sign in, and their sessions and refresh tokens end now."),
            "Disable user",
        ),
    }
}

pub async fn user_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Answer {
    let (admin, params) = admitted!(enter_form(&state, &req, &body));
    let (id, name) = path.into_inner();
    let Some((action, code)) = user_action_of(&name, &params) else {
        return Ok(pages::not_found().await);
    };
    if action.is_destructive() && !confirmed(&params) {
        let view = done!(flow::user(&state, id.clone()));
        let (title, message, button) = confirmation_of(&action, &view.user.username);
        let target = format!("/admin/users/{id}/{name}");
        let cancel = format!("/admin/users/{id}");
        return Ok(page::confirm(
            &admin,
            &Confirm {
                title,
                message,
                action: &target,
                fields: Vec::new(),
                button,
                cancel: &cancel,
            },
        ));
    }
    let deleting = action == UserAction::Delete;
    let submitted = match &action {
        UserAction::Profile(changes) => Some(changes.clone()),
        _ => None,
    };
    let faults = match flow::user_action(&state, &admin, id.clone(), action).await? {
        Ok(()) if deleting => return Ok(see_other(&state, "/admin/users?done=user-deleted", None)),
        Ok(()) => {
            return Ok(see_other(
                &state,
                &format!("/admin/users/{id}?done={code}"),
                None,
            ))
        }
        Err(Refused::Invalid(faults)) => faults,
        Err(Refused::Conflict(message)) => vec![Fault {
            field: None,
            message,
        }],
        Err(Refused::NotFound) => return Ok(refused(Refused::NotFound)),
    };
    let mut view = done!(flow::user(&state, id));
    // A refused profile is shown as it was typed, its faults beside its fields.
    if let Some(changes) = submitted {
        let profile = &mut view.user.profile;
        profile.name = changes.name.unwrap_or_default();
        profile.email = changes.email.unwrap_or_default();
        profile.email_verified = changes.email_verified.unwrap_or_default();
    }
    Ok(page::user(&admin, None, &view, &faults))
}

pub async fn keys(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let admin = admitted!(enter(&state, &req));
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let list = done!(flow::keys(&state));
    Ok(page::keys(&admin, notice(&params), &list, &[]))
}

pub async fn rotate_key(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Answer {
    let (admin, _) = admitted!(enter_form(&state, &req, &body));
    match flow::rotate_key(&state, &admin).await? {
        Ok(_) => Ok(see_other(&state, "/admin/keys?done=key-rotated", None)),
        Err(Refused::Conflict(message)) => {
            let list = done!(flow::keys(&state));
            Ok(page::keys(&admin, None, &list, &[&message]))
        }
        Err(other) => Ok(refused(other)),
    }
}

pub async fn audit(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let admin = admitted!(enter(&state, &req));
    let params = match page_params(&req) {
        Ok(p) => p,
        Err(resp) => return Ok(*resp),
    };
    let filters = AuditFilters::from_params(&params);
    Ok(match flow::audit(&state, &filters).await? {
        Ok(found) => page::audit(&admin, &filters, Some(&found), &[]),
        Err(Refused::Invalid(faults)) => page::audit(&admin, &filters, None, &faults),
        Err(other) => refused(other),
    })
}
