//! The audit log's retention: events older than `audit.retention_days` are deleted by the
//! background task (`flows::keys`), [`PURGE_BATCH`] rows per statement.

use crate::state::AppState;
use crate::store::audit::{purge_batch, PURGE_BATCH};
use crate::store::AnyConnection;

/// Most batches one round deletes; a larger backlog is finished by the next rounds, so one round
/// never keeps the database busy for long.
pub const MAX_BATCHES_PER_ROUND: usize = 20;

/// Deletes the events that are past the retention at `now`; returns how many.
pub fn purge_expired(state: &AppState, now: i64) -> anyhow::Result<usize> {
    let cutoff = now.saturating_sub(state.settings.audit.retention_secs());
    let mut conn = state.pool.get()?;
    Ok(purge_before(&mut conn, cutoff)?)
}

/// Deletes events older than `cutoff`, one batch per statement (each its own transaction), at
/// most [`MAX_BATCHES_PER_ROUND`] batches.
pub fn purge_before(conn: &mut AnyConnection, cutoff: i64) -> diesel::QueryResult<usize> {
    let mut total = 0;
    for _ in 0..MAX_BATCHES_PER_ROUND {
        let deleted = purge_batch(conn, cutoff)?;
        total += deleted;
        if deleted < PURGE_BATCH as usize {
            break;
        }
    }
    Ok(total)
}
