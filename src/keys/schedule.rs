//! The life of a signing key, as plain functions of the stored rows and `now` (no I/O):
//!
//! ```text
//! published (pending) ──activate_at──▶ signing ──retire_at──▶ retired ──expires_at──▶ expired
//! in the JWKS, signs nothing           signs      in the JWKS only        gone
//! ```
//!
//! Rotation publishes before use: the new key is in the JWKS at once and signs only from
//! `now + publish_delay`, which is longer than any cache of the JWKS; the key it replaces stops
//! signing at that instant and stays published until every token it signed has expired.

use crate::config::Settings;
use crate::store::keys::SigningKeyRow;

/// Slack added to the access-token lifetime before a retired key leaves the JWKS (clock skew
/// between instances, a token minted just before the switch).
pub const EXPIRY_SLACK_SECS: i64 = 60;

/// Where a key is in its life at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// In the JWKS, waiting for its `activate_at`.
    Published,
    /// The key that signs new tokens.
    Signing,
    /// Signs no more, still in the JWKS for the tokens it signed.
    Retired,
    /// Out of the JWKS.
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Published => "published",
            KeyState::Signing => "signing",
            KeyState::Retired => "retired",
            KeyState::Expired => "expired",
        }
    }
}

/// In the JWKS at `now`.
pub fn is_published(row: &SigningKeyRow, now: i64) -> bool {
    row.expires_at.is_none_or(|t| t > now)
}

/// Allowed to sign at `now`: activated, not retired, not expired.
pub fn may_sign(row: &SigningKeyRow, now: i64) -> bool {
    row.activate_at <= now && row.retire_at.is_none_or(|t| t > now) && is_published(row, now)
}

/// The key that signs at `now`: of those allowed to, the one activated last.
pub fn signing_key(rows: &[SigningKeyRow], now: i64) -> Option<&SigningKeyRow> {
    rows.iter()
        .filter(|r| may_sign(r, now))
        .max_by_key(|r| r.activate_at)
}

/// A published key that has not started signing yet.
pub fn pending_key(rows: &[SigningKeyRow], now: i64) -> Option<&SigningKeyRow> {
    rows.iter()
        .filter(|r| r.activate_at > now && is_published(r, now))
        .min_by_key(|r| r.activate_at)
}

/// The state of `row` at `now`, given the kid of the key that signs then.
pub fn state_of(row: &SigningKeyRow, now: i64, signing_kid: Option<&str>) -> KeyState {
    if !is_published(row, now) {
        KeyState::Expired
    } else if signing_kid == Some(row.kid.as_str()) {
        KeyState::Signing
    } else if row.activate_at > now {
        KeyState::Published
    } else {
        KeyState::Retired
    }
}

/// The first instant after `now` at which the signing key or the published set may change:
/// a running instance re-reads its keys then, whatever its reload interval.
pub fn next_change(rows: &[SigningKeyRow], now: i64) -> Option<i64> {
    rows.iter()
        .flat_map(|r| [Some(r.activate_at), r.retire_at, r.expires_at])
        .flatten()
        .filter(|t| *t > now)
        .min()
}

/// The settings rotation follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Seconds from a rotation to the new key's first signature.
    pub publish_delay_secs: i64,
    /// Lifetime of the tokens a key signs.
    pub access_token_ttl_secs: i64,
    /// Scheduled rotation: replace the signing key once it is this old (0 = never).
    pub rotate_every_secs: i64,
}

impl Policy {
    pub fn of(settings: &Settings) -> Policy {
        Policy {
            publish_delay_secs: settings.keys.publish_delay_secs,
            access_token_ttl_secs: settings.tokens.access_token_ttl_secs,
            rotate_every_secs: settings.keys.rotate_every_secs,
        }
    }
}

/// Who asks for a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `gatehouse keys rotate`: rotate now, unless a key is already pending.
    Manual,
    /// The background task: rotate only when the signing key is due.
    Scheduled,
}

/// What a rotation request leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Add a key that signs from `activate_at`; `retiring` stops signing then and leaves the
    /// JWKS at `retiring_expires_at`.
    Rotate {
        retiring: String,
        activate_at: i64,
        retiring_expires_at: i64,
    },
    /// A rotation is already under way: `kid` signs from `activate_at`.
    AlreadyPending { kid: String, activate_at: i64 },
    /// No key signs: the server creates the first one when it starts.
    NoSigningKey,
    /// Scheduled rotation is off (`keys.rotate_every_secs = 0`).
    ScheduleOff,
    /// Scheduled rotation: the signing key is not old enough yet.
    NotDue { due_at: i64 },
}

/// Decides a rotation at `now`. A key is due `rotate_every_secs` after it was created, so each
/// scheduled key signs for about that long.
pub fn decide(rows: &[SigningKeyRow], now: i64, policy: &Policy, trigger: Trigger) -> Decision {
    if trigger == Trigger::Scheduled && policy.rotate_every_secs <= 0 {
        return Decision::ScheduleOff;
    }
    if let Some(pending) = pending_key(rows, now) {
        return Decision::AlreadyPending {
            kid: pending.kid.clone(),
            activate_at: pending.activate_at,
        };
    }
    let Some(signer) = signing_key(rows, now) else {
        return Decision::NoSigningKey;
    };
    if trigger == Trigger::Scheduled {
        let due_at = signer.created_at.saturating_add(policy.rotate_every_secs);
        if now < due_at {
            return Decision::NotDue { due_at };
        }
    }
    let activate_at = now.saturating_add(policy.publish_delay_secs.max(0));
    Decision::Rotate {
        retiring: signer.kid.clone(),
        activate_at,
        retiring_expires_at: activate_at
            .saturating_add(policy.access_token_ttl_secs)
            .saturating_add(EXPIRY_SLACK_SECS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const POLICY: Policy = Policy {
        publish_delay_secs: 600,
        access_token_ttl_secs: 900,
        rotate_every_secs: 86_400,
    };

    fn row(
        kid: &str,
        created: i64,
        activate: i64,
        retire: Option<i64>,
        expires: Option<i64>,
    ) -> SigningKeyRow {
        SigningKeyRow {
            kid: kid.to_owned(),
            alg: "ES256".to_owned(),
            private_jwe: String::new(),
            public_jwk: String::new(),
            created_at: created,
            activate_at: activate,
            retire_at: retire,
            expires_at: expires,
        }
    }

    /// The rows a rotation at NOW leaves behind: `old` retires when `new` activates.
    fn rotated() -> Vec<SigningKeyRow> {
        let Decision::Rotate {
            retiring,
            activate_at,
            retiring_expires_at,
        } = decide(
            &[row("old", 0, 0, None, None)],
            NOW,
            &POLICY,
            Trigger::Manual,
        )
        else {
            panic!("expected a rotation");
        };
        assert_eq!(retiring, "old");
        vec![
            row("old", 0, 0, Some(activate_at), Some(retiring_expires_at)),
            row("new", NOW, activate_at, None, None),
        ]
    }

    fn states(rows: &[SigningKeyRow], now: i64) -> Vec<(&str, KeyState)> {
        let signing = signing_key(rows, now).map(|r| r.kid.as_str());
        rows.iter()
            .map(|r| (r.kid.as_str(), state_of(r, now, signing)))
            .collect()
    }

    #[test]
    fn rotation_publishes_before_use_and_retires_after_the_last_token_expires() {
        let rows = rotated();
        let activate = NOW + 600;
        let expires = activate + 900 + EXPIRY_SLACK_SECS;
        assert_eq!(rows[0].retire_at, Some(activate));
        assert_eq!(rows[0].expires_at, Some(expires));

        // Right after the rotation both are published and the old key still signs.
        assert_eq!(
            states(&rows, NOW),
            [("old", KeyState::Signing), ("new", KeyState::Published)]
        );
        assert_eq!(states(&rows, activate - 1)[0].1, KeyState::Signing);
        // At activate_at the new key takes over, the old one stays published.
        assert_eq!(
            states(&rows, activate),
            [("old", KeyState::Retired), ("new", KeyState::Signing)]
        );
        assert!(is_published(&rows[0], expires - 1));
        // Once every token the old key signed has expired, it leaves the JWKS.
        assert_eq!(
            states(&rows, expires),
            [("old", KeyState::Expired), ("new", KeyState::Signing)]
        );
        assert!(!is_published(&rows[0], expires));
    }

    #[test]
    fn the_key_activated_last_signs() {
        let rows = [
            row("a", 0, 0, None, None),
            row("b", 10, 10, None, None),
            row("c", 20, 30, None, None),
        ];
        assert_eq!(signing_key(&rows, 5).map(|r| r.kid.as_str()), Some("a"));
        assert_eq!(signing_key(&rows, 25).map(|r| r.kid.as_str()), Some("b"));
        assert_eq!(signing_key(&rows, 30).map(|r| r.kid.as_str()), Some("c"));
        // A retired or expired key never signs, even if it is the newest.
        let rows = [
            row("a", 0, 0, None, None),
            row("b", 10, 10, Some(20), None),
            row("c", 10, 15, None, Some(20)),
        ];
        assert_eq!(signing_key(&rows, 20).map(|r| r.kid.as_str()), Some("a"));
        assert_eq!(signing_key(&[], 20).map(|r| r.kid.as_str()), None);
    }

    #[test]
    fn next_change_is_the_first_transition_after_now() {
        let rows = rotated();
        assert_eq!(next_change(&rows, NOW), Some(NOW + 600));
        assert_eq!(next_change(&rows, NOW + 600), Some(NOW + 600 + 960));
        assert_eq!(next_change(&rows, NOW + 600 + 960), None);
    }

    #[test]
    fn second_rotation_while_pending_is_refused() {
        let rows = rotated();
        for trigger in [Trigger::Manual, Trigger::Scheduled] {
            assert_eq!(
                decide(&rows, NOW + 1, &POLICY, trigger),
                Decision::AlreadyPending {
                    kid: "new".into(),
                    activate_at: NOW + 600
                }
            );
        }
        // Once the new key signs, the next manual rotation retires it in turn.
        assert!(matches!(
            decide(&rows, NOW + 600, &POLICY, Trigger::Manual),
            Decision::Rotate { retiring, activate_at, .. }
                if retiring == "new" && activate_at == NOW + 1200
        ));
    }

    #[test]
    fn rotation_needs_a_signing_key() {
        assert_eq!(
            decide(&[], NOW, &POLICY, Trigger::Manual),
            Decision::NoSigningKey
        );
        let expired = [row("a", 0, 0, Some(10), Some(20))];
        assert_eq!(
            decide(&expired, NOW, &POLICY, Trigger::Manual),
            Decision::NoSigningKey
        );
    }

    #[test]
    fn scheduled_rotation_waits_until_the_signing_key_is_due() {
        let rows = [row("a", NOW - 100, NOW - 100, None, None)];
        assert_eq!(
            decide(&rows, NOW, &POLICY, Trigger::Scheduled),
            Decision::NotDue {
                due_at: NOW - 100 + 86_400
            }
        );
        assert!(matches!(
            decide(&rows, NOW - 100 + 86_400, &POLICY, Trigger::Scheduled),
            Decision::Rotate { .. }
        ));
        let off = Policy {
            rotate_every_secs: 0,
            ..POLICY
        };
        assert_eq!(
            decide(&rows, NOW + 10 * 86_400, &off, Trigger::Scheduled),
            Decision::ScheduleOff
        );
        // A manual rotation ignores the schedule.
        assert!(matches!(
            decide(&rows, NOW, &off, Trigger::Manual),
            Decision::Rotate { .. }
        ));
    }

    #[test]
    fn scheduled_rotation_keeps_publish_before_use() {
        // Due, but a key from an earlier rotation is still pending: nothing happens until it signs.
        let rows = [
            row("a", 0, 0, Some(NOW + 300), Some(NOW + 1260)),
            row("b", NOW - 300, NOW + 300, None, None),
        ];
        assert!(matches!(
            decide(&rows, NOW, &POLICY, Trigger::Scheduled),
            Decision::AlreadyPending { kid, .. } if kid == "b"
        ));
        // After b signs it is not due until a day after its creation.
        assert_eq!(
            decide(&rows, NOW + 300, &POLICY, Trigger::Scheduled),
            Decision::NotDue {
                due_at: NOW - 300 + 86_400
            }
        );
    }
}
