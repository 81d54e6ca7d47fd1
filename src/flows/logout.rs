//! Signing out of Gatehouse in a browser: the session ends, and so do the grants (refresh-token
//! families, and for introspection their access tokens) that the session's logins produced
//! (checklist 21, 46). Tokens from other browsers and from the password grant stay.
//! RP-initiated logout (`flows::end_session`) ends a session the same way ([`end_in`]).

use std::net::IpAddr;

use crate::audit::{Actor, Address, AuditEvent, Entry, Outcome};
use crate::error::AppError;
use crate::oauth::params::Params;
use crate::secret::{constant_time_eq, hmac_b64, TokenHash};
use crate::state::AppState;
use crate::store::grants;
use crate::store::sessions::Session;
use crate::store::users::User;
use crate::store::{write_tx, AnyConnection};

/// What `/logout` shows.
#[derive(Debug, PartialEq, Eq)]
pub enum LogoutView {
    /// Signed in: the form, with its CSRF token, and the user's name.
    Confirm { csrf: String, username: String },
    /// No live session in this browser.
    NotSignedIn,
}

fn csrf_token(state: &AppState, session_hash: &str) -> String {
    hmac_b64(&state.csrf_key, &["logout", session_hash])
}

/// `GET /logout`.
pub async fn page(state: &AppState, session_cookie: Option<&str>) -> Result<LogoutView, AppError> {
    let Some(cookie) = session_cookie else {
        return Ok(LogoutView::NotSignedIn);
    };
    let hash = TokenHash::of(cookie).0;
    let now = state.clock.now();
    let lookup = hash.clone();
    let user = state
        .db(move |conn| {
            let Some(session) = Session::find_live(conn, &lookup, now)? else {
                return Ok::<_, AppError>(None);
            };
            match session.user_id {
                Some(id) => Ok(User::find(conn, &id)?),
                None => Ok(None),
            }
        })
        .await?;
    Ok(match user {
        Some(user) => LogoutView::Confirm {
            csrf: csrf_token(state, &hash),
            username: user.username,
        },
        None => LogoutView::NotSignedIn,
    })
}

/// `POST /logout`: true when a session was ended, false when the form was stale or forged. A
/// signed-in session's end is written to the audit log in the same transaction (`ip`, the
/// client's address, anonymised).
pub async fn submit(
    state: &AppState,
    form: &Params,
    session_cookie: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<bool, AppError> {
    let Some(cookie) = session_cookie else {
        return Ok(false);
    };
    let hash = TokenHash::of(cookie).0;
    let expected = csrf_token(state, &hash);
    if !form
        .get("csrf")
        .is_some_and(|c| constant_time_eq(c, &expected))
    {
        return Ok(false);
    }
    let now = state.clock.now();
    let address = state.anonymise(ip);
    state
        .db(move |conn| write_tx(conn, |conn| end_in(conn, &hash, now, address, None)))
        .await
}

/// Ends a browser session inside the caller's transaction: the grants its sign-ins produced are
/// revoked and the session deleted; a signed-in user's sign-out goes to the audit log (`address`
/// anonymised), naming the application that asked for it, if one did (`client`). True when a
/// session was ended. `/logout` and `/end_session` both end a session here.
pub fn end_in(
    conn: &mut AnyConnection,
    session_hash: &str,
    now: i64,
    address: Option<Address>,
    client: Option<&str>,
) -> Result<bool, AppError> {
    let user = Session::find_live(conn, session_hash, now)?.and_then(|s| s.user_id);
    let revoked = grants::revoke_all_for_session(conn, session_hash, now)?;
    let ended = Session::delete(conn, session_hash)?;
    if let Some(user) = user.filter(|_| ended) {
        let mut entry = Entry::new(
            AuditEvent::SignOut,
            Outcome::Success,
            Actor::User(user.clone()),
            now,
        )
        .user(user)
        .address(address);
        entry = match client {
            Some(client) => entry
                .client(client)
                .detail(format!("{revoked} grants revoked; asked by {client}")),
            None => entry.detail(format!("{revoked} grants revoked")),
        };
        crate::store::audit::record(conn, &entry)?;
    }
    tracing::info!(
        grants = revoked,
        client = client.unwrap_or("-"),
        "signed out"
    );
    Ok(ended)
}
