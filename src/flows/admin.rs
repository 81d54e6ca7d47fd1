//! The administrator's steps that are not registry changes: the signing keys and the audit log.
//! One implementation for the command line, the admin API and the admin console; registry
//! changes are `crate::registry`'s.

use crate::audit::{Actor, AuditEvent};
use crate::config::Settings;
use crate::keys::rotation::{self, Rotation};
use crate::keys::schedule::{Decision, Policy, Trigger};
use crate::keys::{KeyInfo, MasterKey};
use crate::registry::{Fault, RegistryError};
use crate::store::audit::{self, AuditRow, Filter};
use crate::store::keys::SigningKeyRow;
use crate::store::AnyConnection;

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
