//! `/account/consents`: the applications a signed-in user allowed, with what, and withdrawing
//! that consent. Withdrawing forgets it (the next sign-in to that application asks again) and
//! ends the application's grants for the user: its refresh tokens stop working at once, and its
//! access tokens are reported inactive by introspection.

use std::net::IpAddr;

use crate::audit::{self, Actor, AuditEvent, Entry};
use crate::error::AppError;
use crate::oauth::params::Params;
use crate::secret::{constant_time_eq, hmac_b64, TokenHash};
use crate::state::AppState;
use crate::store::consents::{self, ConsentEntry};
use crate::store::grants;
use crate::store::sessions::Session;
use crate::store::users::User;
use crate::store::write_tx;

/// What the page shows.
#[derive(Debug, Clone)]
pub struct ConsentsView {
    pub username: String,
    pub csrf: String,
    pub consents: Vec<ConsentEntry>,
}

/// What a GET or POST answers.
#[derive(Debug)]
pub enum ConsentsOutcome {
    Page(ConsentsView, Option<&'static str>),
    /// No signed-in session in this browser.
    SignInFirst,
    /// A forged or stale form.
    BadRequest(&'static str),
}

fn csrf(state: &AppState, session_hash: &str) -> String {
    hmac_b64(&state.csrf_key, &["account-consents", session_hash])
}

/// The signed-in, active user of the session `cookie` names.
async fn signed_in(
    state: &AppState,
    cookie: Option<&str>,
) -> Result<Option<(String, User)>, AppError> {
    let Some(cookie) = cookie else {
        return Ok(None);
    };
    let session_hash = TokenHash::of(cookie).0;
    let now = state.clock.now();
    state
        .db(move |conn| {
            let Some(session) = Session::find_live(conn, &session_hash, now)? else {
                return Ok::<_, AppError>(None);
            };
            let Some(id) = session.user_id else {
                return Ok(None);
            };
            Ok(User::find(conn, &id)?
                .filter(User::is_active)
                .map(|u| (session_hash, u)))
        })
        .await
}

async fn page_of(
    state: &AppState,
    session_hash: &str,
    user: User,
) -> Result<ConsentsView, AppError> {
    let user_id = user.id.clone();
    let consents = state
        .db(move |conn| consents::list_for_user(conn, &user_id).map_err(AppError::from))
        .await?;
    Ok(ConsentsView {
        username: user.username,
        csrf: csrf(state, session_hash),
        consents,
    })
}

/// `GET /account/consents`.
pub async fn page(state: &AppState, cookie: Option<&str>) -> Result<ConsentsOutcome, AppError> {
    let Some((session_hash, user)) = signed_in(state, cookie).await? else {
        return Ok(ConsentsOutcome::SignInFirst);
    };
    Ok(ConsentsOutcome::Page(
        page_of(state, &session_hash, user).await?,
        None,
    ))
}

/// `POST /account/consents` with `client_id`: withdraws the consent given to that client and
/// ends its grants for this user, audited (`ip` anonymised).
pub async fn withdraw(
    state: &AppState,
    form: &Params,
    cookie: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<ConsentsOutcome, AppError> {
    let Some((session_hash, user)) = signed_in(state, cookie).await? else {
        return Ok(ConsentsOutcome::SignInFirst);
    };
    let expected = csrf(state, &session_hash);
    if !form
        .get("csrf")
        .is_some_and(|c| constant_time_eq(c, &expected))
    {
        return Ok(ConsentsOutcome::BadRequest(
            "The form has expired. Reload the page and try again.",
        ));
    }
    let Some(client_id) = form.get("client_id").map(str::to_owned) else {
        return Ok(ConsentsOutcome::BadRequest("Choose an application."));
    };
    let now = state.clock.now();
    let address = state.anonymise(ip);
    let user_id = user.id.clone();
    let withdrawn = state
        .db(move |conn| {
            write_tx(conn, |conn| {
                if !consents::delete(conn, &user_id, &client_id)? {
                    return Ok::<_, AppError>(false);
                }
                let ended =
                    grants::revoke_all_for_user_and_client(conn, &user_id, &client_id, now)?;
                let entry = Entry::new(
                    AuditEvent::ConsentWithdrawn,
                    audit::Outcome::Success,
                    Actor::User(user_id.clone()),
                    now,
                )
                .user(user_id.clone())
                .client(client_id.clone())
                .address(address)
                .detail(format!("{ended} grants revoked"));
                crate::store::audit::record(conn, &entry)?;
                Ok(true)
            })
        })
        .await?;
    let message = if withdrawn {
        "Consent withdrawn. The application will ask again the next time you sign in to it."
    } else {
        "That application has no consent to withdraw."
    };
    Ok(ConsentsOutcome::Page(
        page_of(state, &session_hash, user).await?,
        Some(message),
    ))
}
