//! The background task that keeps a running instance's signing keys current: a scheduled
//! rotation when due (`keys::rotation`), then a reload of the keys from the database. Each round
//! also purges audit events past their retention (`flows::audit`) and prunes expired rows
//! (`flows::prune`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::keys::rotation::{rotate, Rotation};
use crate::keys::schedule::{Policy, Trigger};
use crate::keys::KeySet;
use crate::state::AppState;
use crate::store::keys::SigningKeyRow;

/// Re-reads the keys from the database and installs them, as of `now`, in `state.keys`.
///
/// A set without a signing key is not installed: the instance keeps signing with the key it has
/// rather than answering every token request with an error.
pub fn reload(state: &AppState, now: i64) -> anyhow::Result<()> {
    state.keys.reload_with(|current| {
        let rows = {
            let mut conn = state.pool.get()?;
            SigningKeyRow::all(&mut conn)?
        };
        let set = KeySet::from_rows(&rows, &state.master, now)?;
        let Some(signer) = set.signer() else {
            tracing::error!("no stored signing key signs now: keeping the keys loaded before");
            return Ok((None, ()));
        };
        if current.signer().map(|s| s.kid.as_str()) != Some(signer.kid.as_str()) {
            tracing::info!(kid = %signer.kid, alg = ?signer.alg, "now signing with another key");
        }
        if current.jwks().etag != set.jwks().etag {
            let kids: Vec<&str> = set.published_kids().collect();
            tracing::info!(kids = ?kids, "published keys changed");
        }
        Ok((Some(set), ()))
    })
}

/// How long the background task waits before its next round: `keys.reload_secs`, or less when
/// a loaded key activates, retires or expires before that.
fn wait_after(state: &AppState, now: i64) -> Duration {
    let every = Duration::from_secs(state.settings.keys.reload_secs.max(1));
    match state.keys.current().next_change() {
        Some(next) => every.min(Duration::from_secs(
            u64::try_from(next.saturating_sub(now)).unwrap_or(0).max(1),
        )),
        None => every,
    }
}

/// Seconds from a prune round that left a backlog to the next round: short, so that a backlog
/// goes at up to ten thousand rows a second per table, and yet each round's batches are
/// followed by a pause in which writers have the database to themselves.
pub const BACKLOG_PAUSE_SECS: i64 = 1;

/// One round of the background task: a scheduled rotation when due, the audit purge and the
/// prune of expired rows (`flows::prune`) when due (at `next_purge`, every `prune.every_secs`),
/// then a reload. Returns how long to wait before the next round, and when the next purge is
/// due.
fn tick(state: &AppState, next_purge: i64) -> (Duration, i64) {
    let settings = &state.settings;
    let now = state.clock.now();
    if settings.keys.rotate_every_secs > 0 {
        let rotated = state
            .pool
            .get()
            .map_err(anyhow::Error::from)
            .and_then(|mut conn| {
                rotate(
                    &mut conn,
                    &state.master,
                    &settings.keys.algorithm,
                    &Policy::of(settings),
                    Trigger::Scheduled,
                    crate::audit::Actor::System,
                    now,
                )
            });
        match rotated {
            Ok(Rotation::Rotated(row)) => tracing::info!(
                kid = %row.kid,
                alg = %row.alg,
                activate_at = row.activate_at,
                "scheduled rotation: published a new signing key"
            ),
            Ok(Rotation::Skipped(_)) => {}
            Err(e) => tracing::error!(error = format!("{e:#}"), "scheduled key rotation failed"),
        }
    }
    let next_purge = if now >= next_purge {
        match super::audit::purge_expired(state, now) {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "audit events past their retention purged"),
            Err(e) => tracing::error!(error = format!("{e:#}"), "purging audit events failed"),
        }
        // A backlog larger than one round is taken up again a second later, not at the next
        // scheduled round.
        let mut next = now + settings.prune.every_secs;
        match super::prune::prune_expired(state, now) {
            Ok(p) if p.total() == 0 => {}
            Ok(p) => {
                if p.backlog_left() {
                    next = now + BACKLOG_PAUSE_SECS;
                }
                tracing::info!(
                    interactions = p.interactions,
                    sessions = p.sessions,
                    codes = p.codes,
                    refresh_tokens = p.refresh_tokens,
                    grants = p.grants,
                    "expired rows pruned"
                );
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "pruning expired rows failed"),
        }
        next
    } else {
        next_purge
    };
    if let Err(e) = reload(state, now) {
        tracing::error!(
            error = format!("{e:#}"),
            "reloading the signing keys failed"
        );
    }
    (until_next_round(state, now, next_purge), next_purge)
}

/// The shorter of [`wait_after`] (the keys) and the time until the next purge is due.
fn until_next_round(state: &AppState, now: i64, next_purge: i64) -> Duration {
    let purge = Duration::from_secs(
        u64::try_from(next_purge.saturating_sub(now))
            .unwrap_or(0)
            .max(1),
    );
    wait_after(state, now).min(purge)
}

/// Starts the background task that rotates on schedule and reloads the keys every
/// `keys.reload_secs` (sooner when a key activates, retires or expires). It holds the state
/// weakly and ends once the server has dropped it, or with the runtime. Without a Tokio runtime
/// it does nothing but say so.
pub fn spawn_reloader(state: &Arc<AppState>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no async runtime: signing keys will not be reloaded");
        return;
    };
    // The first round (which purges) comes after the first reload or purge interval.
    let first_purge = state
        .clock
        .now()
        .saturating_add(state.settings.prune.every_secs);
    let mut wait = until_next_round(state, state.clock.now(), first_purge);
    let fallback = Duration::from_secs(state.settings.keys.reload_secs.max(1));
    let state: Weak<AppState> = Arc::downgrade(state);
    runtime.spawn(async move {
        // The first round purges.
        let mut next_purge = i64::MIN;
        loop {
            tokio::time::sleep(wait).await;
            let Some(state) = state.upgrade() else {
                return;
            };
            wait = match tokio::task::spawn_blocking(move || tick(&state, next_purge)).await {
                Ok((wait, next)) => {
                    next_purge = next;
                    wait
                }
                Err(e) => {
                    tracing::error!(error = %e, "the key reload task failed");
                    fallback
                }
            };
        }
    });
}
