//! Browser login sessions. The cookie carries a 256-bit id; the table keeps its SHA-256.

use diesel::prelude::*;

use super::schema::{interactions, sessions};
use super::AnyConnection;

/// A session row. `user_id` is `None` until the browser has logged in.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id_hash: String,
    pub user_id: Option<String>,
    pub auth_time: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Until the browser has logged in: the keyed hash of the host it came from
    /// (`audit::host_hash`), by which `/authorize` caps such sessions per address.
    pub address_hash: Option<String>,
}

/// The live sessions not yet signed in that came from one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FromHost {
    pub count: i64,
    /// When the oldest of them expires.
    pub first_expiry: Option<i64>,
}

impl Session {
    pub fn insert(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        diesel::insert_into(sessions::table)
            .values(self.clone())
            .execute(conn)
            .map(|_| ())
    }

    /// The session with this id hash, if it has not expired.
    pub fn find_live(
        conn: &mut AnyConnection,
        id_hash: &str,
        now: i64,
    ) -> QueryResult<Option<Session>> {
        sessions::table
            .find(id_hash)
            .filter(sessions::expires_at.gt(now))
            .select(Session::as_select())
            .first(conn)
            .optional()
    }

    /// How many live sessions not yet signed in came from the host with this hash (the index
    /// on `(address_hash, expires_at)` reads only those), and when the first of them expires.
    pub fn from_host(
        conn: &mut AnyConnection,
        address_hash: &str,
        now: i64,
    ) -> QueryResult<FromHost> {
        let (count, first_expiry) = sessions::table
            .filter(sessions::address_hash.eq(address_hash))
            .filter(sessions::expires_at.gt(now))
            .select((
                diesel::dsl::count_star(),
                diesel::dsl::min(sessions::expires_at),
            ))
            .first::<(i64, Option<i64>)>(conn)?;
        Ok(FromHost {
            count,
            first_expiry,
        })
    }

    /// Replaces a session by a new one (a new id on login, ASVS 3.2.1), moves its pending
    /// authorization requests to it, and runs `also` (the sign-in's audit event), in one
    /// transaction. False (and nothing changed) when the old session is already gone, e.g. a
    /// login form submitted twice.
    pub fn replace(
        conn: &mut AnyConnection,
        old_hash: &str,
        new: &Session,
        also: impl FnOnce(&mut AnyConnection) -> QueryResult<()>,
    ) -> QueryResult<bool> {
        super::write_tx(conn, |conn| {
            new.insert(conn)?;
            diesel::update(interactions::table.filter(interactions::session_hash.eq(old_hash)))
                .set(interactions::session_hash.eq(&new.id_hash))
                .execute(conn)?;
            if diesel::delete(sessions::table.find(old_hash)).execute(conn)? != 1 {
                return Err(diesel::result::Error::RollbackTransaction);
            }
            also(conn)
        })
        .map(|()| true)
        .or_else(|e| match e {
            diesel::result::Error::RollbackTransaction => Ok(false),
            other => Err(other),
        })
    }

    /// Ends one session; its pending authorization requests go with it (foreign key).
    pub fn delete(conn: &mut AnyConnection, id_hash: &str) -> QueryResult<bool> {
        diesel::delete(sessions::table.find(id_hash))
            .execute(conn)
            .map(|n| n == 1)
    }

    /// Ends every session of a user.
    pub fn delete_for_user(conn: &mut AnyConnection, user_id: &str) -> QueryResult<usize> {
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
    }
}
