//! The administrator's steps that are not registry changes: the signing keys and the audit log.
//! One implementation for the command line, the admin API and the admin console; registry
//! changes are `crate::registry`'s.

use crate::audit::{Actor, AuditEvent};
use crate::config::Settings;
use crate::error::AppError;
use crate::keys::rotation::{self, Rotation};
use crate::keys::schedule::{Decision, Policy, Trigger};
use crate::keys::{KeyInfo, MasterKey};
use crate::oauth::admin_access::{self, Caller, Denial, Holder};
use crate::oauth::model::Client;
use crate::registry::By;
use crate::registry::{Fault, RegistryError};
use crate::state::AppState;
use crate::store::audit::{self, AuditRow, Filter};
use crate::store::grants;
use crate::store::keys::SigningKeyRow;
use crate::store::users::User;
use crate::store::AnyConnection;
use crate::tokens;

/// An admin API call's failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The caller may not use the admin API: nothing was read or changed.
    #[error("{}", .0.message())]
    Denied(Denial),
    /// The change was refused, or the store failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        ApiError::Registry(RegistryError::Other(e.0))
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> ApiError {
        ApiError::Registry(e.into())
    }
}

/// Who made an admin API change, for the audit log.
pub fn actor(caller: &Caller) -> Actor {
    match caller {
        Caller::User(id) => Actor::User(id.clone()),
        Caller::Client(id) => Actor::Client(id.clone()),
    }
}

/// Runs `action` for the holder of `bearer` (an `Authorization` header's value) if they may call
/// the admin API (`oauth::admin_access::decide`, checklist 64): the token checked, its holder
/// read and the action done in one database hop, the clock read once. `action` gets who is
/// acting and when, for the audit log.
pub async fn as_admin<T, F>(
    state: &AppState,
    bearer: Option<String>,
    action: F,
) -> Result<T, ApiError>
where
    F: FnOnce(&mut AnyConnection, &By) -> Result<T, RegistryError> + Send + 'static,
    T: Send + 'static,
{
    let now = state.clock.now();
    // RFC 6750 §2.1; the scheme's name is case-insensitive (RFC 9110 §11.1).
    let token = bearer
        .as_deref()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Denied(Denial::InvalidToken))?;
    let claims = tokens::verify_own(&state.keys.current(), state.issuer(), token, now)
        .ok_or(ApiError::Denied(Denial::InvalidToken))?;
    let issuer = state.issuer().to_owned();
    state
        .db(move |conn| {
            let client = Client::find(conn, &claims.client_id)?;
            let user = if claims.sub == claims.client_id {
                None
            } else {
                User::find(conn, &claims.sub)?.map(|u| u.account())
            };
            let grant_live = match &claims.sid {
                Some(sid) => grants::is_live(conn, sid)?,
                None => true,
            };
            let holder = Holder {
                client: client.as_ref(),
                user: user.as_ref(),
                grant_live,
            };
            let caller = admin_access::decide(&claims, &issuer, holder).map_err(|denial| {
                tracing::info!(
                    jti = %claims.jti,
                    client_id = %claims.client_id,
                    reason = denial.message(),
                    "admin API call refused"
                );
                ApiError::Denied(denial)
            })?;
            let by = By {
                actor: actor(&caller),
                now,
            };
            Ok(action(conn, &by)?)
        })
        .await
}

/// After a client was changed or deleted through this instance: its remembered form goes, so the
/// change holds here at once (other instances within `clients.cache_secs`).
pub fn client_changed(state: &AppState, client_id: &str) {
    state.clients.forget(client_id);
}

/// Every stored signing key with its state at `now`, in the order they sign.
pub fn keys(conn: &mut AnyConnection, now: i64) -> Result<Vec<KeyInfo>, RegistryError> {
    let rows = SigningKeyRow::all(conn)?;
    Ok(KeyInfo::list(&rows, now))
}

/// Adds a signing key that signs after the publish delay, as `actor` asked; the key signing now
/// retires then and stays published until its tokens have expired. A rotation that would not
/// happen (a key is already waiting to sign) is a [`RegistryError::Conflict`] saying why.
pub fn rotate_key(
    conn: &mut AnyConnection,
    master: &MasterKey,
    settings: &Settings,
    actor: Actor,
    now: i64,
) -> Result<KeyInfo, RegistryError> {
    let rotation = rotation::rotate(
        conn,
        master,
        &settings.keys.algorithm,
        &Policy::of(settings),
        Trigger::Manual,
        actor,
        now,
    )?;
    match rotation {
        Rotation::Rotated(row) => Ok(KeyInfo::of(&row, now, None)),
        Rotation::Skipped(Decision::AlreadyPending { kid, activate_at }) => {
            Err(RegistryError::Conflict(format!(
                "key {kid} is already waiting to sign (from {activate_at}, in {} s): \
                 rotate again once it signs",
                activate_at - now
            )))
        }
        Rotation::Skipped(Decision::NoSigningKey) => Err(RegistryError::Conflict(
            "no key signs yet: the server creates the first one when it starts; rotate after that"
                .into(),
        )),
        Rotation::Skipped(other) => Err(RegistryError::Conflict(format!("no rotation: {other:?}"))),
    }
}

/// Most audit events one page holds.
pub const MAX_AUDIT_PAGE: i64 = 500;

/// Which audit events to read: each filter narrows, `cursor` continues a previous page.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    /// An event name ([`AuditEvent::as_str`]).
    pub event: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    /// 1 to [`MAX_AUDIT_PAGE`].
    pub limit: i64,
}

/// One page of audit events, newest first.
#[derive(Debug, serde::Serialize)]
pub struct AuditPage {
    pub events: Vec<AuditRow>,
    /// Give this as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn fault(field: &'static str, message: String) -> Fault {
    Fault {
        field: Some(field),
        message,
    }
}

/// A page of audit events that match `query`, newest first.
pub fn audit_page(
    conn: &mut AnyConnection,
    query: &AuditQuery,
) -> Result<AuditPage, RegistryError> {
    let mut faults = Vec::new();
    if !(1..=MAX_AUDIT_PAGE).contains(&query.limit) {
        faults.push(fault(
            "limit",
            format!("the page size must be between 1 and {MAX_AUDIT_PAGE}"),
        ));
    }
    if let Some(name) = &query.event {
        if AuditEvent::parse(name).is_none() {
            let names: Vec<&str> = AuditEvent::ALL.iter().map(|e| e.as_str()).collect();
            faults.push(fault(
                "event",
                format!("unknown event {name:?}: use one of {}", names.join(", ")),
            ));
        }
    }
    let before = match &query.cursor {
        None => None,
        Some(c) => match parse_cursor(c) {
            Some(at_id) => Some(at_id),
            None => {
                faults.push(fault(
                    "cursor",
                    "the cursor is not one a previous page gave".into(),
                ));
                None
            }
        },
    };
    if !faults.is_empty() {
        return Err(RegistryError::Invalid(faults));
    }
    let filter = Filter {
        user_id: query.user_id.clone(),
        client_id: query.client_id.clone(),
        event: query.event.clone(),
        since: query.since,
        until: query.until,
        before,
        // One more than asked, to know whether another page follows.
        limit: query.limit + 1,
    };
    let mut events = audit::newest_first(conn, &filter)?;
    let more = events.len() as i64 > query.limit;
    events.truncate(query.limit as usize);
    let next_cursor = more
        .then(|| events.last().map(|e| format!("{}.{}", e.at, e.id)))
        .flatten();
    Ok(AuditPage {
        events,
        next_cursor,
    })
}

fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (at, id) = cursor.split_once('.')?;
    let ok_id = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    ok_id.then_some(())?;
    Some((at.parse().ok()?, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_cursor_round_trips_and_refuses_anything_else() {
        assert_eq!(
            parse_cursor("1700000000.ev_abc-1"),
            Some((1_700_000_000, "ev_abc-1".into()))
        );
        assert_eq!(parse_cursor("x.ev_a"), None);
        assert_eq!(parse_cursor("17."), None);
        assert_eq!(parse_cursor("17"), None);
        assert_eq!(parse_cursor("17.a'b"), None);
    }
}
