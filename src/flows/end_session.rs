//! `/end_session`: RP-initiated logout's service (OpenID Connect RP-Initiated Logout 1.0,
//! checklist 63).
//!
//! It checks the `id_token_hint` against our keys (before any database work), reads the client
//! and this browser's session in one hop, asks `oauth::end_session` what to do, and, when the
//! hint names this very session, ends it in the same hop as `/logout` does
//! (`flows::logout::end_in`). Any other signed-in browser gets a confirmation form whose CSRF
//! token is bound to its session; the form's POST checks the carried request again.

use std::net::IpAddr;

use crate::error::AppError;
use crate::id_token;
use crate::oauth::end_session::{
    self as core, Browser, Checked, EndSessionRequest, Hint, HintCheck, Refusal, Step,
};
use crate::oauth::model::Client;
use crate::oauth::params::Params;
use crate::secret::{constant_time_eq, hmac_b64, TokenHash};
use crate::state::AppState;
use crate::store::sessions::Session;
use crate::store::users::User;
use crate::store::write_tx;

/// How the request came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    /// An application's form POST (not the confirmation form).
    Post,
}

/// The confirmation form: who is signed in, the application that asks, and the checked request
/// it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub csrf: String,
    pub username: String,
    pub client_name: Option<String>,
    pub carried: EndSessionRequest,
}

/// What `/end_session` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 400 page with this reason; never a redirect.
    Refused(&'static str),
    /// Ask before signing out.
    Confirm(Confirm),
    /// Send the browser to this registered URI (with `state`); `signed_out` when a session was
    /// ended now (its cookie is cleared).
    Redirect { location: String, signed_out: bool },
    /// The "you are signed out" page.
    SignedOut { signed_out: bool },
    /// An application's POST came without the session cookie (a SameSite=Lax cookie is not sent
    /// on a cross-site POST): the same checked request again as a GET, without the hint, where
    /// the browser sends its cookie and a signed-in user is asked.
    Again(String),
}

/// The confirmation form's CSRF token, bound to the browser's session.
fn csrf_token(csrf_key: &[u8; 32], session_hash: &str) -> String {
    hmac_b64(csrf_key, &["end_session", session_hash])
}

/// Verifies the hint with our keys: signature, issuer, our own ID tokens only.
fn check_hint(state: &AppState, token: Option<&str>) -> HintCheck {
    let Some(token) = token else {
        return HintCheck::Absent;
    };
    let keys = state.keys.current();
    match id_token::check_hint(&keys, state.issuer(), token) {
        Ok(claims) => HintCheck::Valid(Hint {
            client_id: claims.aud,
            subject: claims.sub,
            sid: claims.sid,
        }),
        Err(refusal) => {
            tracing::info!(?refusal, "id_token_hint refused");
            HintCheck::Invalid
        }
    }
}

/// What one database hop found: the client named and this browser's signed-in session.
struct Found {
    client: Option<Client>,
    session: Option<SignedIn>,
}

/// A signed-in browser session: its hash, and its user's id and login name.
struct SignedIn {
    hash: String,
    user_id: String,
    username: String,
}

fn find(
    conn: &mut crate::store::AnyConnection,
    client_id: Option<&str>,
    session_hash: Option<&str>,
    now: i64,
) -> Result<Found, AppError> {
    let client = match client_id {
        Some(id) => Client::find(conn, id)?,
        None => None,
    };
    let mut session = None;
    if let Some(hash) = session_hash {
        let user_id = Session::find_live(conn, hash, now)?.and_then(|s| s.user_id);
        if let Some(user) = user_id
            .map(|id| User::find(conn, &id))
            .transpose()?
            .flatten()
        {
            session = Some(SignedIn {
                hash: hash.to_owned(),
                user_id: user.id,
                username: user.username,
            });
        }
    }
    Ok(Found { client, session })
}

/// Where to go once the session is ended (or there was none).
fn done(checked: &Checked, signed_out: bool) -> Answer {
    match checked.redirect() {
        Some(location) => Answer::Redirect {
            location,
            signed_out,
        },
        None => Answer::SignedOut { signed_out },
    }
}

/// `GET /end_session`, or an application's `POST /end_session`.
#[tracing::instrument(skip_all)]
pub async fn request(
    state: &AppState,
    params: &Params,
    session_cookie: Option<&str>,
    ip: Option<IpAddr>,
    method: Method,
) -> Result<Answer, AppError> {
    let req = EndSessionRequest::read(params);
    let hint = check_hint(state, req.id_token_hint.as_deref());
    if hint == HintCheck::Invalid {
        return Ok(Answer::Refused(Refusal::InvalidHint.message()));
    }
    let client_id = core::client_named(&req, &hint).map(str::to_owned);
    let session_hash = session_cookie.map(|c| TokenHash::of(c).0);
    let now = state.clock.now();
    let address = state.anonymise(ip);
    let sid_key = state.sid_key;
    let csrf_key = state.csrf_key;
    state
        .db(move |conn| {
            let found = find(conn, client_id.as_deref(), session_hash.as_deref(), now)?;
            let checked = match core::check(&req, hint, found.client.as_ref()) {
                Ok(c) => c,
                Err(refusal) => return Ok(Answer::Refused(refusal.message())),
            };
            if method == Method::Post && session_hash.is_none() {
                return Ok(Answer::Again(again(&checked)));
            }
            let browser = match &found.session {
                Some(s) => Browser::SignedIn {
                    user_id: s.user_id.clone(),
                    sid: id_token::session_id(&sid_key, &s.hash),
                },
                None => Browser::NotSignedIn,
            };
            Ok(match (core::next_step(&checked, &browser), found.session) {
                (Step::SignOut, Some(s)) => {
                    let ended = write_tx(conn, |conn| {
                        crate::flows::logout::end_in(
                            conn,
                            &s.hash,
                            now,
                            address,
                            checked.client_id(),
                        )
                    })?;
                    done(&checked, ended)
                }
                (Step::Confirm, Some(s)) => Answer::Confirm(Confirm {
                    csrf: csrf_token(&csrf_key, &s.hash),
                    username: s.username,
                    client_name: checked.client_name().map(str::to_owned),
                    carried: checked.carried(),
                }),
                _ => done(&checked, false),
            })
        })
        .await
}

/// The same checked request as a GET, without the hint.
fn again(checked: &Checked) -> String {
    let carried = checked.carried();
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("client_id", &carried.client_id),
        (
            "post_logout_redirect_uri",
            &carried.post_logout_redirect_uri,
        ),
        ("state", &carried.state),
    ] {
        if let Some(v) = value {
            query.append_pair(name, v);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        crate::oauth::metadata::paths::END_SESSION.to_owned()
    } else {
        format!("{}?{query}", crate::oauth::metadata::paths::END_SESSION)
    }
}

/// `POST /end_session` from the confirmation form: the CSRF token bound to this browser's
/// session, then the carried request checked again; signs out and goes where it says. A stale
/// or forged form ends nothing.
#[tracing::instrument(skip_all)]
pub async fn confirm(
    state: &AppState,
    form: &Params,
    session_cookie: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<Answer, AppError> {
    const STALE: &str = "This sign-out form has expired. Nothing was changed; sign out again \
                         from the application.";
    let Some(cookie) = session_cookie else {
        return Ok(Answer::Refused(STALE));
    };
    let hash = TokenHash::of(cookie).0;
    if !form
        .get("csrf")
        .is_some_and(|c| constant_time_eq(c, &csrf_token(&state.csrf_key, &hash)))
    {
        return Ok(Answer::Refused(STALE));
    }
    // The form carries no hint: the client it names is checked again, with its URIs as they
    // are now.
    let req = EndSessionRequest {
        id_token_hint: None,
        ..EndSessionRequest::read(form)
    };
    let now = state.clock.now();
    let address = state.anonymise(ip);
    state
        .db(move |conn| {
            let client = match &req.client_id {
                Some(id) => Client::find(conn, id)?,
                None => None,
            };
            let checked = match core::check(&req, HintCheck::Absent, client.as_ref()) {
                Ok(c) => c,
                Err(refusal) => return Ok(Answer::Refused(refusal.message())),
            };
            let ended = write_tx(conn, |conn| {
                crate::flows::logout::end_in(conn, &hash, now, address, checked.client_id())
            })?;
            Ok(done(&checked, ended))
        })
        .await
}
