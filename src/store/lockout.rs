//! The sign-in failure counters (`sign_in_failures`), one per user, device and factor. Every
//! change is a single statement whose affected-row count says whether it won: an `INSERT` that a
//! concurrent one may beat (a unique violation, reported as `false`), or an `UPDATE` conditional
//! on the whole counter read before (compare-and-swap). Portable SQL, both backends.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use super::schema::sign_in_failures as t;
use super::AnyConnection;
use crate::oauth::lockout::{Counter, Device, Factor};

/// Which counter: a user's, for one device (or the unknown devices) and one factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub user_id: String,
    pub device: Device,
    pub factor: Factor,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = t)]
struct Row {
    failures: i32,
    locked_until: Option<i64>,
    updated_at: i64,
}

/// The counter, if one is stored.
pub fn find(conn: &mut AnyConnection, key: &Key) -> QueryResult<Option<Counter>> {
    t::table
        .find((&key.user_id, key.device.key(), key.factor.as_str()))
        .select(Row::as_select())
        .get_result(conn)
        .optional()
        .map(|r| {
            r.map(|r| Counter {
                failures: r.failures,
                locked_until: r.locked_until,
                updated_at: r.updated_at,
            })
        })
}

/// Stores a first counter; false when another request stored one first.
pub fn insert(conn: &mut AnyConnection, key: &Key, counter: &Counter) -> QueryResult<bool> {
    let inserted = diesel::insert_into(t::table)
        .values((
            t::user_id.eq(&key.user_id),
            t::device.eq(key.device.key()),
            t::factor.eq(key.factor.as_str()),
            t::failures.eq(counter.failures),
            t::locked_until.eq(counter.locked_until),
            t::updated_at.eq(counter.updated_at),
        ))
        .execute(conn);
    match inserted {
        Ok(n) => Ok(n == 1),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replaces the counter with `new` if it still is `old`; false when another request changed
/// (or removed) it meanwhile.
pub fn swap(
    conn: &mut AnyConnection,
    key: &Key,
    old: &Counter,
    new: &Counter,
) -> QueryResult<bool> {
    let mut update = diesel::update(t::table)
        .filter(t::user_id.eq(&key.user_id))
        .filter(t::device.eq(key.device.key()))
        .filter(t::factor.eq(key.factor.as_str()))
        .filter(t::failures.eq(old.failures))
        .filter(t::updated_at.eq(old.updated_at))
        .into_boxed();
    update = match old.locked_until {
        Some(until) => update.filter(t::locked_until.eq(until)),
        None => update.filter(t::locked_until.is_null()),
    };
    update
        .set((
            t::failures.eq(new.failures),
            t::locked_until.eq(new.locked_until),
            t::updated_at.eq(new.updated_at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Removes one counter (a success starts it again).
pub fn delete(conn: &mut AnyConnection, key: &Key) -> QueryResult<()> {
    diesel::delete(t::table.find((&key.user_id, key.device.key(), key.factor.as_str())))
        .execute(conn)
        .map(drop)
}

/// Removes every counter and lock of a user; returns how many there were.
pub fn delete_for_user(conn: &mut AnyConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(t::table.filter(t::user_id.eq(user_id))).execute(conn)
}
