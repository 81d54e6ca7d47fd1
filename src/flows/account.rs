//! `/account/mfa`: a signed-in user sets up TOTP (QR code and secret, activated by one valid
//! code), regenerates recovery codes or turns TOTP off with a current code. A half-signed-in
//! session whose client or policy requires a second factor comes here to enrol before consent;
//! enrolling finishes its sign-in.

use std::net::IpAddr;

use crate::audit::{self, Actor, AuditEvent, Entry};
use crate::error::AppError;
use crate::flows::authorize::Via;
use crate::flows::lockout::{self, Attempt, DeviceCookie};
use crate::flows::mfa::{self as service, ConfirmError, Enrolment, Refusal};
use crate::mfa::{amr, RecoveryCode};
use crate::oauth::params::Params;
use crate::secret::{constant_time_eq, hmac_b64, PlainToken, TokenHash};
use crate::state::AppState;
use crate::store::interactions::Interaction;
use crate::store::mfa::{recovery_codes_left, TotpFactor};
use crate::store::sessions::{PendingStage, Session};
use crate::store::users::User;

/// What the account page shows.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub csrf: String,
    pub username: String,
    /// The sign-in to go back to (consent, or the admin console), when there is one.
    pub via: Option<Via>,
    /// The session is half signed in: enrolment is the step before consent.
    pub in_sign_in: bool,
    pub factor: Factor,
}

/// The user's TOTP as the page shows it.
#[derive(Debug, Clone)]
pub enum Factor {
    /// Not active yet: scan this and confirm with a code.
    Enrol(Enrolment),
    /// Active.
    Active { recovery_codes_left: i64 },
}

/// What a GET or POST of the page answers.
#[derive(Debug)]
pub enum AccountOutcome {
    /// The page, with a message when there is one.
    Page(AccountView, Option<&'static str>),
    /// Recovery codes to show once (after enrolment or regeneration), then where to continue.
    Codes {
        codes: Vec<String>,
        continue_to: Option<String>,
        /// When enrolling finished a sign-in: the signed-in session and the device cookie.
        new_session: Option<(PlainToken, DeviceCookie)>,
    },
    /// Done, with a message (TOTP turned off).
    Done(&'static str),
    /// No signed-in session: sign in through an application first.
    SignInFirst,
    /// A forged or expired form.
    BadRequest(&'static str),
}

const FORM_EXPIRED: &str = "The form has expired. Reload the page and try again.";

/// The page's answer to a refused code.
const CODE_REFUSED: &str =
    "That code is not valid. Enter the current 6-digit code from your authenticator app.";
const CODE_MALFORMED: &str = "Enter the 6-digit code from your authenticator app.";

fn csrf(state: &AppState, session_hash: &str) -> String {
    hmac_b64(&state.csrf_key, &["account-mfa", session_hash])
}

/// Who the page is for: the signed-in user, or the half-signed-in one that must enrol.
struct Who {
    session: Session,
    user: User,
    in_sign_in: bool,
    via: Option<Via>,
}

async fn who(
    state: &AppState,
    cookie: Option<&str>,
    via: Option<Via>,
) -> Result<Option<Who>, AppError> {
    let Some(cookie) = cookie else {
        return Ok(None);
    };
    let session_hash = TokenHash::of(cookie).0;
    let now = state.clock.now();
    state
        .db(move |conn| {
            let Some(session) = Session::find_live(conn, &session_hash, now)? else {
                return Ok(None);
            };
            let (user_id, in_sign_in) = match (&session.user_id, session.pending(now)) {
                (Some(id), _) => (id.clone(), false),
                (None, Some((id, PendingStage::Enrol))) => (id.to_owned(), true),
                _ => return Ok(None),
            };
            let Some(user) = User::find(conn, &user_id)?.filter(User::is_active) else {
                return Ok(None);
            };
            // The request to continue with must be this session's and still pending; a console
            // path is one already (`Via::from_params`).
            let via = match via {
                Some(Via::Interaction(i)) => {
                    Interaction::find(conn, TokenHash::of(&i).as_str(), &session_hash, now)?
                        .map(|_| Via::Interaction(i))
                }
                other => other,
            };
            Ok::<_, AppError>(Some(Who {
                session,
                user,
                in_sign_in,
                via,
            }))
        })
        .await
}

async fn view(state: &AppState, who: &Who) -> Result<AccountView, AppError> {
    let master = state.master.clone();
    let issuer_name = state.settings.mfa.issuer_name.clone();
    let user_id = who.user.id.clone();
    let username = who.user.username.clone();
    let now = state.clock.now();
    let factor = state
        .db(move |conn| {
            if TotpFactor::is_enrolled(conn, &user_id)? {
                let left = recovery_codes_left(conn, &user_id)?;
                return Ok::<_, AppError>(Factor::Active {
                    recovery_codes_left: left,
                });
            }
            match service::begin(conn, &master, &issuer_name, &user_id, &username, now)
                .map_err(AppError::from)?
            {
                Some(e) => Ok(Factor::Enrol(e)),
                None => Ok(Factor::Active {
                    recovery_codes_left: recovery_codes_left(conn, &user_id)?,
                }),
            }
        })
        .await?;
    Ok(AccountView {
        csrf: csrf(state, &who.session.id_hash),
        username: who.user.username.clone(),
        via: who.via.clone(),
        in_sign_in: who.in_sign_in,
        factor,
    })
}

/// Where to continue after the page: consent, or the admin console.
fn continue_url(who: &Who) -> Option<String> {
    who.via.as_ref().map(Via::done)
}

/// `GET /account/mfa`.
pub async fn page(
    state: &AppState,
    cookie: Option<&str>,
    via: Option<Via>,
) -> Result<AccountOutcome, AppError> {
    let Some(who) = who(state, cookie, via).await? else {
        return Ok(AccountOutcome::SignInFirst);
    };
    Ok(AccountOutcome::Page(view(state, &who).await?, None))
}

/// `POST /account/mfa`: `action` is `enable` (confirm enrolment with `code`), `regenerate`
/// (new recovery codes, with `code`) or `disable` (with `code`). A code checked against the
/// active factor counts against the second factor's lockout of this device, as at sign-in.
#[tracing::instrument(skip_all)]
pub async fn submit(
    state: &AppState,
    form: Params,
    cookie: Option<&str>,
    device_cookie: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<AccountOutcome, AppError> {
    let Some(who) = who(state, cookie, Via::from_params(&form)).await? else {
        return Ok(AccountOutcome::SignInFirst);
    };
    let expected = csrf(state, &who.session.id_hash);
    if !form
        .get("csrf")
        .is_some_and(|c| constant_time_eq(c, &expected))
    {
        return Ok(AccountOutcome::BadRequest(FORM_EXPIRED));
    }
    let code = form.get("code").unwrap_or("").to_owned();
    let now = state.clock.now();
    let master = state.master.clone();
    let user_id = who.user.id.clone();
    let device = lockout::recognise(state, device_cookie, &who.user.id, now);
    match form.get("action") {
        Some("enable") => {
            let new_session = who.in_sign_in.then(PlainToken::generate);
            let promote = new_session.as_ref().map(|cookie| {
                Session::signed_in(
                    cookie.hash().0,
                    &who.user.id,
                    &amr::password_and_otp(),
                    now,
                    state.settings.session.ttl_secs,
                )
            });
            let old = who.session.id_hash.clone();
            let address = state.anonymise(ip);
            let confirmed = state
                .db(move |conn| {
                    service::confirm(conn, &master, &user_id, &code, now, |conn| {
                        let Some(new) = &promote else {
                            return Ok(true);
                        };
                        // Enrolling was the sign-in's last step: it is the second factor.
                        let entry = Entry::new(
                            AuditEvent::SignIn,
                            audit::Outcome::Success,
                            Actor::User(user_id.clone()),
                            now,
                        )
                        .user(user_id.clone())
                        .address(address.clone())
                        .detail("browser, enrolled a second factor");
                        if !Session::replace_in(conn, &old, new)? {
                            return Ok(false);
                        }
                        crate::store::audit::record(conn, &entry)?;
                        Ok(true)
                    })
                    .map_err(AppError::from)
                })
                .await?;
            match confirmed {
                Ok(codes) => {
                    tracing::info!(user_id = %who.user.id, "TOTP enrolled");
                    Ok(AccountOutcome::Codes {
                        codes: codes.iter().map(RecoveryCode::display).collect(),
                        continue_to: continue_url(&who),
                        new_session: new_session.map(|token| {
                            (
                                token,
                                lockout::device_cookie(state, &who.user.id, &device, now),
                            )
                        }),
                    })
                }
                Err(e) => {
                    let message = match e {
                        ConfirmError::Malformed => CODE_MALFORMED,
                        ConfirmError::Wrong => CODE_REFUSED,
                        ConfirmError::NothingPending => "Two-step verification is already on.",
                        ConfirmError::Expired => {
                            return Ok(AccountOutcome::BadRequest(FORM_EXPIRED))
                        }
                    };
                    Ok(AccountOutcome::Page(
                        view(state, &who).await?,
                        Some(message),
                    ))
                }
            }
        }
        Some(action @ ("regenerate" | "disable")) if !who.in_sign_in => {
            let regenerate = action == "regenerate";
            let attempt = lockout::begin(
                state,
                &who.user.id,
                lockout::Factor::SecondFactor,
                &device,
                now,
            )
            .await?;
            let failure = |refusal| {
                service::audit_entry(&Err(refusal), None, &who.user.id, now)
                    .address(state.anonymise(ip))
            };
            let Attempt::Open(ticket) = attempt else {
                lockout::settle_failure(state, Some(Attempt::Locked), now, failure(Refusal::Wrong))
                    .await?;
                return Ok(AccountOutcome::Page(
                    view(state, &who).await?,
                    Some(CODE_REFUSED),
                ));
            };
            let result = state
                .db(move |conn| {
                    if regenerate {
                        service::regenerate_recovery_codes(conn, &master, &user_id, &code, now)
                            .map(|r| r.map(Some))
                    } else {
                        service::disable(conn, &master, &user_id, &code, now)
                            .map(|r| r.map(|()| None))
                    }
                    .map_err(AppError::from)
                })
                .await?;
            match &result {
                Ok(_) => lockout::succeeded(state, ticket).await?,
                Err(Refusal::NotEnrolled) => lockout::unchecked(state, ticket).await?,
                Err(refusal) => lockout::failed(state, ticket, now, failure(*refusal)).await?,
            }
            match result {
                Ok(Some(codes)) => Ok(AccountOutcome::Codes {
                    codes: codes.iter().map(RecoveryCode::display).collect(),
                    continue_to: continue_url(&who),
                    new_session: None,
                }),
                Ok(None) => {
                    tracing::info!(user_id = %who.user.id, "TOTP turned off");
                    Ok(AccountOutcome::Done(
                        "Two-step verification is off for your account.",
                    ))
                }
                Err(refusal) => {
                    let message = match refusal {
                        Refusal::Malformed => CODE_MALFORMED,
                        Refusal::NotEnrolled => "Two-step verification is not on.",
                        Refusal::Wrong | Refusal::Replayed => CODE_REFUSED,
                    };
                    Ok(AccountOutcome::Page(
                        view(state, &who).await?,
                        Some(message),
                    ))
                }
            }
        }
        _ => Ok(AccountOutcome::BadRequest(
            "Choose an action on the page and try again.",
        )),
    }
}
