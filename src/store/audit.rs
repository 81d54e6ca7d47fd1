//! The audit event table: insert, read back with filters, purge past the retention.

use diesel::prelude::*;

use super::schema::audit_events;
use super::AnyConnection;
use crate::audit::Entry;

/// Rows one purge statement deletes at most: each batch is its own short statement, so a large
/// backlog never holds the write lock for long.
pub const PURGE_BATCH: i64 = 500;

/// A stored event, as read back (names and ids as stored).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    pub event: String,
    pub outcome: String,
    pub actor: String,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    /// Keyed hash of the client address (never the address).
    pub address_hash: Option<String>,
    /// The client address's /24 or /48.
    pub network: Option<String>,
    pub detail: Option<String>,
}

impl From<&Entry> for AuditRow {
    fn from(e: &Entry) -> AuditRow {
        AuditRow {
            id: e.id.clone(),
            at: e.at,
            event: e.event.as_str().to_owned(),
            outcome: e.outcome.as_str().to_owned(),
            actor: e.actor.as_str().to_owned(),
            user_id: e.user_id.clone(),
            client_id: e.client_id.clone(),
            address_hash: e.address.as_ref().map(|a| a.hash.clone()),
            network: e.address.as_ref().map(|a| a.network.clone()),
            detail: e.detail.clone(),
        }
    }
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub event: Option<String>,
    /// Only events at or after this time.
    pub since: Option<i64>,
    /// Only events before this time.
    pub until: Option<i64>,
    /// Only events older than this one (its time and id): the cursor of the next page.
    pub before: Option<(i64, String)>,
    /// At most this many, the most recent.
    pub limit: i64,
}

/// Writes `entry` with the caller's connection (inside the caller's transaction, if any) and logs
/// it (the `audit` log line).
pub fn record(conn: &mut AnyConnection, entry: &Entry) -> QueryResult<()> {
    insert(conn, entry)?;
    entry.log();
    Ok(())
}

fn insert(conn: &mut AnyConnection, entry: &Entry) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values(AuditRow::from(entry))
        .execute(conn)
        .map(drop)
}

/// The most recent events that match, oldest first.
pub fn recent(conn: &mut AnyConnection, filter: &Filter) -> QueryResult<Vec<AuditRow>> {
    let mut rows = newest_first(conn, filter)?;
    rows.reverse();
    Ok(rows)
}

/// The most recent events that match, newest first (events at the same second by id, so a
/// page's last event is a stable cursor for the next).
pub fn newest_first(conn: &mut AnyConnection, filter: &Filter) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_events::table
        .select(AuditRow::as_select())
        .order((audit_events::at.desc(), audit_events::id.desc()))
        .limit(filter.limit.max(0))
        .into_boxed();
    if let Some(user) = &filter.user_id {
        query = query.filter(audit_events::user_id.eq(user.clone()));
    }
    if let Some(client) = &filter.client_id {
        query = query.filter(audit_events::client_id.eq(client.clone()));
    }
    if let Some(event) = &filter.event {
        query = query.filter(audit_events::event.eq(event.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_events::at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_events::at.lt(until));
    }
    if let Some((at, id)) = &filter.before {
        query = query.filter(
            audit_events::at.lt(*at).or(audit_events::at
                .eq(*at)
                .and(audit_events::id.lt(id.clone()))),
        );
    }
    query.load(conn)
}

/// Deletes up to [`PURGE_BATCH`] events older than `cutoff` in one statement; returns how many.
pub fn purge_batch(conn: &mut AnyConnection, cutoff: i64) -> QueryResult<usize> {
    // Diesel's DSL has no DELETE … LIMIT on both backends; the subselect is portable. `cutoff`
    // is an integer, formatted, so nothing from outside reaches the SQL text.
    let query = diesel::sql_query(format!(
        "DELETE FROM audit_events WHERE id IN \
         (SELECT id FROM audit_events WHERE at < {cutoff} LIMIT {PURGE_BATCH})"
    ));
    super::serialised(conn, |conn| query.execute(conn))
}
