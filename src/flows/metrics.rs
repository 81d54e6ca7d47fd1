//! The scrape of `/metrics`: reads what the gauges show at this instant (the password queue, the
//! database pool, the published signing keys and the next scheduled rotation) and renders every
//! metric. The counters are bumped by the services where their events happen.

use crate::error::AppError;
use crate::keys::schedule::{self, Decision, Policy, Trigger};
use crate::metrics::{KeyAge, Snapshot};
use crate::state::AppState;
use crate::store::keys::SigningKeyRow;

/// The Prometheus text of every metric, as of now.
pub async fn scrape(state: &AppState) -> String {
    let now = state.clock.now();
    let pool = state.pool.state();
    let mut snap = Snapshot {
        password_queued: state.passwords.queued(),
        password_running: state.passwords.running(),
        pool_connections: pool.connections,
        pool_idle: pool.idle_connections,
        pool_max: state.pool.max_size(),
        ..Snapshot::default()
    };
    let rows = state
        .db(|conn| SigningKeyRow::all(conn).map_err(AppError::from))
        .await;
    match rows {
        Ok(rows) => {
            let (keys, next) = keys_at(&rows, now, &Policy::of(&state.settings));
            snap.keys = Some(keys);
            snap.next_rotation = Some(next);
        }
        // The other metrics still answer; the key gauges keep their last values.
        Err(e) => tracing::warn!(error = %e, "metrics: the signing keys could not be read"),
    }
    state.metrics.render(&snap)
}

/// The published keys' ages and states at `now`, and when the next scheduled rotation is due
/// (0 when scheduled rotation is off).
fn keys_at(rows: &[SigningKeyRow], now: i64, policy: &Policy) -> (Vec<KeyAge>, i64) {
    let signing = schedule::signing_key(rows, now).map(|r| r.kid.as_str());
    let keys = rows
        .iter()
        .filter(|r| schedule::is_published(r, now))
        .map(|r| KeyAge {
            kid: r.kid.clone(),
            state: schedule::state_of(r, now, signing).as_str(),
            age_secs: now.saturating_sub(r.created_at).max(0),
        })
        .collect();
    let next = match schedule::decide(rows, now, policy, Trigger::Scheduled) {
        Decision::ScheduleOff | Decision::NoSigningKey => 0,
        Decision::NotDue { due_at } => due_at,
        Decision::Rotate { .. } => now,
        // The pending key is due once it has signed for the rotation period.
        Decision::AlreadyPending { kid, .. } => rows
            .iter()
            .find(|r| r.kid == kid)
            .map_or(0, |r| r.created_at.saturating_add(policy.rotate_every_secs)),
    };
    (keys, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kid: &str, created: i64, activate: i64) -> SigningKeyRow {
        SigningKeyRow {
            kid: kid.to_owned(),
            alg: "ES256".to_owned(),
            private_jwe: String::new(),
            public_jwk: String::new(),
            created_at: created,
            activate_at: activate,
            retire_at: None,
            expires_at: None,
        }
    }

    const POLICY: Policy = Policy {
        publish_delay_secs: 600,
        access_token_ttl_secs: 900,
        rotate_every_secs: 86_400,
    };

    #[test]
    fn key_ages_and_next_rotation() {
        let rows = [row("a", 1_000, 1_000), row("b", 5_000, 9_000)];
        let (keys, next) = keys_at(&rows, 6_000, &POLICY);
        assert_eq!(keys.len(), 2);
        assert_eq!((keys[0].state, keys[0].age_secs), ("signing", 5_000));
        assert_eq!((keys[1].state, keys[1].age_secs), ("published", 1_000));
        assert_eq!(
            next,
            5_000 + 86_400,
            "b is pending: due a period after its creation"
        );
        let (_, next) = keys_at(&rows[..1], 6_000, &POLICY);
        assert_eq!(next, 1_000 + 86_400);
        let off = Policy {
            rotate_every_secs: 0,
            ..POLICY
        };
        assert_eq!(keys_at(&rows, 6_000, &off).1, 0);
    }
}
