//! Lockout that spares the real user (checklist 49, 59): the service around
//! `oauth::lockout`'s policy and the device cookie.
//!
//! A sign-in step calls [`begin`] before it checks a secret and one of [`succeeded`], [`failed`]
//! or [`unchecked`] after:
//!
//! ```text
//! let device = lockout::recognise(state, device_cookie, &user.id, now);
//! match lockout::begin(state, &user.id, Factor::Password, &device, now).await? {
//!     Attempt::Open(ticket) => { check the secret; then succeeded / failed / unchecked }
//!     Attempt::Locked => { spend the same work on a dummy check; answer as for a wrong secret }
//! }
//! ```
//!
//! [`begin`] charges the attempt as a failure *before* the check, by compare-and-swap on the
//! stored counter, so parallel guesses on any number of instances get at most `max_failures`
//! checks between them; [`succeeded`] resets the counter. Only real users have counters: a name
//! that matches no user is never stored.

use crate::audit::{Actor, AuditEvent, Entry, Outcome};
use crate::error::AppError;
use crate::oauth::device_cookie;
use crate::oauth::lockout::{Charge, Counter, Policy, State};
use crate::secret::new_id;
use crate::state::AppState;
use crate::store::lockout::{self as store, Key};
use crate::store::write_tx;

pub use crate::oauth::lockout::{Device, Factor};

/// Compare-and-swap rounds one attempt tries before it gives up; each round some contender wins,
/// so only a flood on one counter gets here, and it is refused (as locked).
const MAX_ROUNDS: usize = 32;

/// What [`begin`] answers.
#[derive(Debug)]
pub enum Attempt {
    /// Check the secret, then report how it went with the ticket.
    Open(Ticket),
    /// Refused: check nothing real, answer exactly as for a wrong secret.
    Locked,
}

impl Attempt {
    pub fn is_locked(&self) -> bool {
        matches!(self, Attempt::Locked)
    }
}

/// One charged attempt, to be settled by [`succeeded`], [`failed`] or [`unchecked`] (a ticket
/// dropped unsettled stays charged as a failure).
#[derive(Debug)]
#[must_use = "settle the attempt: succeeded, failed or unchecked"]
pub struct Ticket {
    key: Key,
    charged: Counter,
    /// This attempt's charge reached the limit (and set the lock).
    locks: bool,
}

impl Ticket {
    pub fn user_id(&self) -> &str {
        &self.key.user_id
    }

    pub fn device(&self) -> &Device {
        &self.key.device
    }

    pub fn factor(&self) -> Factor {
        self.key.factor
    }
}

/// The device cookie to set after a successful browser sign-in.
pub struct DeviceCookie {
    value: String,
    /// The cookie's `Max-Age`.
    pub max_age_secs: i64,
}

impl DeviceCookie {
    /// The value, for the `Set-Cookie` header.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for DeviceCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceCookie(<redacted>)")
    }
}

fn policy(state: &AppState) -> Policy {
    Policy {
        max_failures: state.settings.lockout.max_failures,
        duration_secs: state.settings.lockout.duration_secs,
    }
}

/// The device a browser's device cookie names for `user_id`: known when its MAC verifies, it was
/// issued to `user_id` and has not expired; unknown otherwise (absent, forged, expired, another
/// user's).
pub fn recognise(state: &AppState, cookie: Option<&str>, user_id: &str, now: i64) -> Device {
    let ttl = state.settings.lockout.device_cookie_ttl_secs;
    cookie
        .and_then(|c| device_cookie::verify(&state.device_key, c, user_id, now, ttl))
        .map_or(Device::Unknown, Device::Known)
}

/// The device cookie after `user_id` signed in at `now` from `device`: the same device id,
/// re-issued, for a known device; a new one otherwise.
pub fn device_cookie(state: &AppState, user_id: &str, device: &Device, now: i64) -> DeviceCookie {
    let id = match device {
        Device::Known(id) => id.clone(),
        Device::Unknown => new_id("dev"),
    };
    DeviceCookie {
        value: device_cookie::sign(&state.device_key, user_id, &id, now),
        max_age_secs: state.settings.lockout.device_cookie_ttl_secs,
    }
}

/// Charges an attempt of `user_id` (an existing user) at `factor` from `device`, before its
/// secret is checked: [`Attempt::Open`] when the counter allowed it (it now counts as a
/// failure until settled), [`Attempt::Locked`] when it is locked.
pub async fn begin(
    state: &AppState,
    user_id: &str,
    factor: Factor,
    device: &Device,
    now: i64,
) -> Result<Attempt, AppError> {
    let policy = policy(state);
    let key = Key {
        user_id: user_id.to_owned(),
        device: device.clone(),
        factor,
    };
    state
        .db(move |conn| {
            for _ in 0..MAX_ROUNDS {
                let current = store::find(conn, &key)?;
                let (write, locks) = match policy.charge(current.as_ref(), now) {
                    Charge::Locked { .. } => return Ok(Attempt::Locked),
                    Charge::Open { write, locks } => (write, locks),
                };
                let won = match &current {
                    None => store::insert(conn, &key, &write)?,
                    Some(old) => store::swap(conn, &key, old, &write)?,
                };
                if won {
                    return Ok(Attempt::Open(Ticket {
                        key,
                        charged: write,
                        locks,
                    }));
                }
            }
            tracing::warn!(
                factor = factor.as_str(),
                "sign-in counter too contended: attempt refused"
            );
            Ok::<_, AppError>(Attempt::Locked)
        })
        .await
}

/// The secret was right: the counter starts again (and any lock this attempt set is lifted).
pub async fn succeeded(state: &AppState, ticket: Ticket) -> Result<(), AppError> {
    state
        .db(move |conn| store::delete(conn, &ticket.key).map_err(AppError::from))
        .await
}

/// The secret was wrong: the charge stays. Writes `failure` (the caller's audit entry of the
/// failed attempt, e.g. `SignIn` or `MfaFailed`), and, when this failure reached the limit,
/// `LockedOut` naming the factor and the device kind, in one transaction.
pub async fn failed(
    state: &AppState,
    ticket: Ticket,
    now: i64,
    failure: Entry,
) -> Result<(), AppError> {
    let policy = policy(state);
    let metrics = state.metrics.clone();
    metrics.sign_in_failed(ticket.key.factor.as_str());
    state
        .db(move |conn| {
            write_tx(conn, |conn| {
                crate::store::audit::record(conn, &failure)?;
                if !ticket.locks {
                    return Ok(());
                }
                // The lock may already be gone again (an unlock or a success in between).
                let current = store::find(conn, &ticket.key)?;
                if let State::Locked { until } = policy.state(current.as_ref(), now) {
                    tracing::warn!(
                        user_id = %ticket.key.user_id,
                        factor = ticket.key.factor.as_str(),
                        device = ticket.key.device.describe(),
                        until,
                        "sign-in locked after too many failures"
                    );
                    metrics.locked_out(ticket.key.factor.as_str());
                    let mut locked =
                        Entry::new(AuditEvent::LockedOut, Outcome::Failure, Actor::System, now)
                            .user(ticket.key.user_id.clone())
                            .address(failure.address.clone())
                            .detail(format!(
                                "{}; {}; until {until}",
                                ticket.key.factor.describe(),
                                ticket.key.device.describe()
                            ));
                    locked.client_id = failure.client_id.clone();
                    crate::store::audit::record(conn, &locked)?;
                }
                Ok::<_, AppError>(())
            })
        })
        .await
}

/// The secret could not be checked at all (no hash slot was free): the charge is given back.
pub async fn unchecked(state: &AppState, ticket: Ticket) -> Result<(), AppError> {
    let policy = policy(state);
    state
        .db(move |conn| {
            for _ in 0..MAX_ROUNDS {
                let Some(current) = store::find(conn, &ticket.key)? else {
                    return Ok(());
                };
                let Some(back) = policy.refund(&current, &ticket.charged) else {
                    return Ok(());
                };
                if store::swap(conn, &ticket.key, &current, &back)? {
                    return Ok(());
                }
            }
            Ok::<_, AppError>(())
        })
        .await
}

/// A failed attempt of a step that may not know the user (`attempt` is `None` for a name that
/// matches no user): settles an open ticket with [`failed`]; records an attempt refused by a lock
/// with `; locked` added to its detail (so the log tells real checks from refused ones); records
/// the failure alone otherwise.
pub async fn settle_failure(
    state: &AppState,
    attempt: Option<Attempt>,
    now: i64,
    mut failure: Entry,
) -> Result<(), AppError> {
    match attempt {
        Some(Attempt::Open(ticket)) => failed(state, ticket, now, failure).await,
        refused => {
            let factor = match failure.event {
                AuditEvent::MfaFailed => Factor::SecondFactor,
                _ => Factor::Password,
            };
            state.metrics.sign_in_failed(factor.as_str());
            if refused.is_some() {
                let detail = failure.detail.take().unwrap_or_default();
                failure.detail = Some(format!("{detail}; locked"));
            }
            state
                .db(move |conn| crate::store::audit::record(conn, &failure).map_err(AppError::from))
                .await
        }
    }
}

/// [`unchecked`] for an attempt that may not exist or be open.
pub async fn settle_unchecked(state: &AppState, attempt: Option<Attempt>) -> Result<(), AppError> {
    match attempt {
        Some(Attempt::Open(ticket)) => unchecked(state, ticket).await,
        _ => Ok(()),
    }
}
