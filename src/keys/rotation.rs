//! Rotation and reload, the service side of [`super::schedule`]: reads the clock, opens the
//! transactions, and runs the background task that keeps a running instance's keys current.

use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;

use super::schedule::{self, Decision, Policy, Trigger};
use super::{generate, KeySet, MasterKey};
use crate::state::{now, AppState};
use crate::store::keys::SigningKeyRow;
use crate::store::{self, AnyConnection};

/// What a rotation request did.
#[derive(Debug)]
pub enum Rotation {
    /// A new key was added (published now, signing from its `activate_at`).
    Rotated(SigningKeyRow),
    /// Nothing changed, for this reason.
    Skipped(Decision),
}

/// Rotates the signing key if `trigger` allows it at `now`: adds a key of `algorithm` that signs
/// from `now + publish_delay`, and schedules the retirement and expiry of the key it replaces.
///
/// The decision is taken again inside one write transaction that serialises rotations (SQLite:
/// `BEGIN IMMEDIATE`; PostgreSQL: a table lock that lets readers through), so two rotations at
/// once, from the command line or from several instances, add one pending key, not two.
pub fn rotate(
    conn: &mut AnyConnection,
    master: &MasterKey,
    algorithm: &str,
    policy: &Policy,
    trigger: Trigger,
    now: i64,
) -> anyhow::Result<Rotation> {
    let rows = SigningKeyRow::all(conn)?;
    let Decision::Rotate { retiring, .. } = schedule::decide(&rows, now, policy, trigger) else {
        return Ok(Rotation::Skipped(schedule::decide(
            &rows, now, policy, trigger,
        )));
    };
    // A key sealed under another master key would make every instance fail to load it: make
    // sure this one opens the key that signs today before adding anything.
    if let Some(current) = rows.iter().find(|r| r.kid == retiring) {
        master.open(&current.private_jwe).with_context(|| {
            format!(
                "the master key does not open the current signing key {}: \
                 use the server's GATEHOUSE_MASTER_KEY (or keys/master.key)",
                current.kid
            )
        })?;
    }
    // Generated before the transaction: an RSA key takes a while, and writers should not wait.
    let mut new = generate(master, algorithm, now, now)?;
    store::write_tx(conn, move |conn| {
        SigningKeyRow::lock_for_rotation(conn)?;
        let rows = SigningKeyRow::all(conn)?;
        match schedule::decide(&rows, now, policy, trigger) {
            Decision::Rotate {
                retiring,
                activate_at,
                retiring_expires_at,
            } => {
                if SigningKeyRow::schedule_retirement(
                    conn,
                    &retiring,
                    activate_at,
                    retiring_expires_at,
                )? != 1
                {
                    anyhow::bail!("signing key {retiring} disappeared during the rotation");
                }
                new.activate_at = activate_at;
                new.insert(conn)?;
                Ok(Rotation::Rotated(new))
            }
            other => Ok(Rotation::Skipped(other)),
        }
    })
}

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

/// One round of the background task: a scheduled rotation when due, then a reload. Returns
/// how long to wait before the next round.
fn tick(state: &AppState) -> Duration {
    let settings = &state.settings;
    let now = now();
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
    if let Err(e) = reload(state, now) {
        tracing::error!(
            error = format!("{e:#}"),
            "reloading the signing keys failed"
        );
    }
    wait_after(state, now)
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
    let mut wait = wait_after(state, now());
    let fallback = Duration::from_secs(state.settings.keys.reload_secs.max(1));
    let state: Weak<AppState> = Arc::downgrade(state);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(wait).await;
            let Some(state) = state.upgrade() else {
                return;
            };
            wait = match tokio::task::spawn_blocking(move || tick(&state)).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %e, "the key reload task failed");
                    fallback
                }
            };
        }
    });
}
