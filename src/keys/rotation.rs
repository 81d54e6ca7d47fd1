//! Rotation, the storage side of [`super::schedule`]: opens the transaction that adds a key. The
//! background task that rotates on schedule and reloads a running instance's keys is a service,
//! `flows::keys`.

use anyhow::Context;

use super::schedule::{self, Decision, Policy, Trigger};
use super::{generate, MasterKey};
use crate::audit::{Actor, AuditEvent, Entry, Outcome};
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
/// once, from the command line or from several instances, add one pending key, not two. A
/// rotation is written to the audit log in the same transaction, as done by `actor` (Gatehouse
/// itself for a scheduled one).
#[allow(clippy::too_many_arguments)]
pub fn rotate(
    conn: &mut AnyConnection,
    master: &MasterKey,
    algorithm: &str,
    policy: &Policy,
    trigger: Trigger,
    actor: Actor,
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
                let entry = Entry::new(AuditEvent::KeyRotated, Outcome::Success, actor, now)
                    .detail(format!(
                        "kid={} alg={} signs from {activate_at}; {retiring} retires",
                        new.kid, new.alg
                    ));
                crate::store::audit::record(conn, &entry)?;
                Ok(Rotation::Rotated(new))
            }
            other => Ok(Rotation::Skipped(other)),
        }
    })
}
