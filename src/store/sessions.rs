//! Browser login sessions. The cookie carries a 256-bit id; the table keeps its SHA-256.

use diesel::prelude::*;

use super::schema::{grants, interactions, sessions};
use super::AnyConnection;
use crate::on_backend;

/// A session row. `user_id` is `None` until the browser has signed in with every factor it
/// needs; between the password and the second factor (or enrolment) the user is in
/// `pending_user_id`, for `pending_stage`, until `pending_until`: a half-signed-in session, which
/// reaches neither consent nor a code (checklist 54).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id_hash: String,
    pub user_id: Option<String>,
    pub auth_time: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    /// How the user signed in (RFC 8176 `amr`, a JSON list): carried by the grants it approves.
    pub amr: String,
    pub pending_user_id: Option<String>,
    pub pending_stage: Option<String>,
    pub pending_until: Option<i64>,
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

/// What a half-signed-in session waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingStage {
    /// A TOTP code or a recovery code.
    SecondFactor,
    /// Enrolment in TOTP, which a client or the policy requires.
    Enrol,
}

impl PendingStage {
    pub fn as_str(self) -> &'static str {
        match self {
            PendingStage::SecondFactor => "otp",
            PendingStage::Enrol => "enrol",
        }
    }

    fn parse(s: &str) -> Option<PendingStage> {
        match s {
            "otp" => Some(PendingStage::SecondFactor),
            "enrol" => Some(PendingStage::Enrol),
            _ => None,
        }
    }
}

impl Session {
    /// An anonymous session (no one signed in).
    pub fn anonymous(id_hash: String, now: i64, ttl: i64) -> Session {
        Session {
            id_hash,
            user_id: None,
            auth_time: None,
            created_at: now,
            expires_at: now + ttl,
            amr: "[]".to_owned(),
            pending_user_id: None,
            pending_stage: None,
            pending_until: None,
            address_hash: None,
        }
    }

    /// A signed-in session.
    pub fn signed_in(
        id_hash: String,
        user_id: &str,
        amr: &[String],
        now: i64,
        ttl: i64,
    ) -> Session {
        Session {
            user_id: Some(user_id.to_owned()),
            auth_time: Some(now),
            amr: super::encode_list(amr),
            ..Session::anonymous(id_hash, now, ttl)
        }
    }

    /// A half-signed-in session: the password was right, `stage` comes next, until `until`.
    pub fn half_signed_in(
        id_hash: String,
        user_id: &str,
        stage: PendingStage,
        now: i64,
        until: i64,
    ) -> Session {
        Session {
            pending_user_id: Some(user_id.to_owned()),
            pending_stage: Some(stage.as_str().to_owned()),
            pending_until: Some(until),
            ..Session::anonymous(id_hash, now, until - now)
        }
    }

    /// The user and stage a half-signed-in session waits for, while it has not run out.
    pub fn pending(&self, now: i64) -> Option<(&str, PendingStage)> {
        if self.pending_until? <= now {
            return None;
        }
        let stage = PendingStage::parse(self.pending_stage.as_deref()?)?;
        Some((self.pending_user_id.as_deref()?, stage))
    }

    /// The session's `amr` list.
    pub fn amr_list(&self) -> Vec<String> {
        super::decode_list(&self.amr)
    }

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
        on_backend!(conn, |c| sessions::table
            .find(id_hash)
            .filter(sessions::expires_at.gt(now))
            .select(Session::as_select())
            .get_result(c)
            .optional())
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
            .get_result::<(i64, Option<i64>)>(conn)?;
        Ok(FromHost {
            count,
            first_expiry,
        })
    }

    /// Replaces a session by a new one (a new id on login, ASVS 3.2.1), moves its pending
    /// authorization requests and its grants to it, and runs `also` (the sign-in's audit event), in one
    /// transaction. False (and nothing changed) when the old session is already gone, e.g. a
    /// login form submitted twice.
    pub fn replace(
        conn: &mut AnyConnection,
        old_hash: &str,
        new: &Session,
        also: impl FnOnce(&mut AnyConnection) -> QueryResult<()>,
    ) -> QueryResult<bool> {
        super::write_tx(conn, |conn| {
            if !Session::replace_in(conn, old_hash, new)? {
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

    /// [`Session::replace`] inside the caller's transaction: false when the old session is gone,
    /// and the caller must then roll back (the new session was inserted).
    pub fn replace_in(
        conn: &mut AnyConnection,
        old_hash: &str,
        new: &Session,
    ) -> QueryResult<bool> {
        new.insert(conn)?;
        diesel::update(interactions::table.filter(interactions::session_hash.eq(old_hash)))
            .set(interactions::session_hash.eq(&new.id_hash))
            .execute(conn)?;
        // The browser's grants follow it: signing out still ends them, and a nonce stays used.
        diesel::update(grants::table.filter(grants::session_hash.eq(old_hash)))
            .set(grants::session_hash.eq(&new.id_hash))
            .execute(conn)?;
        Ok(diesel::delete(sessions::table.find(old_hash)).execute(conn)? == 1)
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
