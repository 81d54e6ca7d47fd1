//! Bounded storage (checklist 58): the background task (`flows::keys`) removes expired sessions,
//! pending authorizations and codes, ended grants with their refresh tokens, and expired initial
//! access tokens of dynamic registration, in batches of
//! [`PRUNE_BATCH`] rows, each its own short transaction. No request prunes.

use crate::state::AppState;
use crate::store::prune::{self, PRUNE_BATCH};
use crate::store::AnyConnection;

/// Most batches one round deletes per table; a larger backlog is finished by the next rounds.
pub const MAX_BATCHES_PER_ROUND: usize = 20;

/// What one round deleted, per table (cascaded rows not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub interactions: usize,
    pub sessions: usize,
    pub codes: usize,
    pub refresh_tokens: usize,
    pub grants: usize,
    /// Expired initial access tokens (dynamic client registration).
    pub registration_tokens: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.interactions
            + self.sessions
            + self.codes
            + self.refresh_tokens
            + self.grants
            + self.registration_tokens
    }

    /// Whether some table used its whole round, so a backlog may be left for the next one.
    pub fn backlog_left(&self) -> bool {
        let full = MAX_BATCHES_PER_ROUND * PRUNE_BATCH as usize;
        [
            self.interactions,
            self.sessions,
            self.codes,
            self.refresh_tokens,
            self.grants,
            self.registration_tokens,
        ]
        .iter()
        .any(|&n| n >= full)
    }
}

/// One prune round at `now`. A revoked grant is kept for the longest access or refresh token
/// lifetime after its revocation, then removed; a grant past its absolute end is removed at once
/// (every token of it is dead, so reuse detection no longer needs its rotated tokens).
pub fn prune_expired(state: &AppState, now: i64) -> anyhow::Result<Pruned> {
    let tokens = &state.settings.tokens;
    let keep_revoked = tokens
        .access_token_ttl_secs
        .max(tokens.refresh_token_ttl_secs);
    let mut conn = state.pool.get()?;
    Ok(prune_round(
        &mut conn,
        now,
        now.saturating_sub(keep_revoked),
    )?)
}

/// Runs each table's batch statement until it deletes less than a full batch, at most
/// [`MAX_BATCHES_PER_ROUND`] times.
pub fn prune_round(
    conn: &mut AnyConnection,
    now: i64,
    revoked_before: i64,
) -> diesel::QueryResult<Pruned> {
    Ok(Pruned {
        interactions: batches(|| prune::interactions(conn, now))?,
        sessions: batches(|| prune::sessions(conn, now))?,
        codes: batches(|| prune::codes(conn, now))?,
        refresh_tokens: batches(|| prune::refresh_of_ended_grants(conn, now, revoked_before))?,
        grants: batches(|| prune::grants(conn, now, revoked_before))?,
        registration_tokens: batches(|| prune::registration_tokens(conn, now))?,
    })
}

fn batches(mut batch: impl FnMut() -> diesel::QueryResult<usize>) -> diesel::QueryResult<usize> {
    let mut total = 0;
    for _ in 0..MAX_BATCHES_PER_ROUND {
        let deleted = batch()?;
        total += deleted;
        if deleted < PRUNE_BATCH as usize {
            break;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule58_backlog_left_when_a_table_used_its_whole_round() {
        let full = MAX_BATCHES_PER_ROUND * PRUNE_BATCH as usize;
        assert!(!Pruned::default().backlog_left());
        let partial = Pruned {
            sessions: full - 1,
            ..Pruned::default()
        };
        assert!(!partial.backlog_left());
        let whole = Pruned {
            grants: full,
            ..Pruned::default()
        };
        assert!(whole.backlog_left());
    }
}
