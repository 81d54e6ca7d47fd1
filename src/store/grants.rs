//! Grants: one per authorization, the family of its codes and refresh tokens. Revoking a grant
//! revokes all of them, and (through introspection) the access tokens that carry its id.

use diesel::prelude::*;

use super::prepared::{self, Value};
use super::schema::{clients, grants, users};
use super::users::{account, AccountRow, ACCOUNT_COLUMNS};
use super::AnyConnection;
use crate::oauth::model::{GrantState, NewGrant};
use crate::oauth::userinfo::Holder;

/// The columns of `grants` a join reads for [`state`].
pub type StateColumns = (
    grants::expires_at,
    grants::revoked_at,
    grants::amr,
    grants::auth_time,
    grants::nonce,
    grants::session_hash,
);

/// [`StateColumns`], in order.
pub const STATE_COLUMNS: StateColumns = (
    grants::expires_at,
    grants::revoked_at,
    grants::amr,
    grants::auth_time,
    grants::nonce,
    grants::session_hash,
);

/// What a join read of [`STATE_COLUMNS`].
pub type StateRow = (
    i64,
    Option<i64>,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// The core's view of a grant from the columns a join read.
pub fn state(row: StateRow) -> GrantState {
    let (expires_at, revoked_at, amr, auth_time, nonce, session_hash) = row;
    GrantState {
        expires_at,
        revoked_at,
        amr: super::decode_list(&amr),
        auth_time,
        nonce,
        session_hash,
    }
}

/// Stores a new grant.
pub fn insert(conn: &mut AnyConnection, grant: &NewGrant) -> QueryResult<()> {
    let amr = super::encode_list(&grant.amr);
    prepared::execute(
        conn,
        "INSERT INTO grants (id, client_id, user_id, session_hash, created_at, expires_at, \
         revoked_at, amr, auth_time, nonce) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
        &[
            Value::Text(grant.id.as_str()),
            Value::Text(grant.client_id.as_str()),
            Value::NullableText(grant.user_id.as_ref().map(|u| u.as_str())),
            Value::NullableText(grant.session_hash.as_deref()),
            Value::Int(grant.created_at),
            Value::Int(grant.expires_at),
            Value::Text(&amr),
            Value::NullableInt(grant.auth_time),
            Value::NullableText(grant.nonce.as_deref()),
        ],
    )
    .map(|_| ())
}

/// Revokes the grant: every refresh token of its family, and every access token carrying its
/// id (for introspection), is dead from now on. One statement, one row lock.
pub fn revoke(conn: &mut AnyConnection, id: &str, now: i64) -> QueryResult<()> {
    diesel::update(grants::table.find(id).filter(grants::revoked_at.is_null()))
        .set(grants::revoked_at.eq(now))
        .execute(conn)
        .map(|_| ())
}

/// Revokes every live grant of a user (disabled account, new password).
pub fn revoke_all_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        grants::table
            .filter(grants::user_id.eq(user_id))
            .filter(grants::revoked_at.is_null()),
    )
    .set(grants::revoked_at.eq(now))
    .execute(conn)
}

/// Revokes every live grant of a user with one client (consent withdrawn).
pub fn revoke_all_for_user_and_client(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        grants::table
            .filter(grants::user_id.eq(user_id))
            .filter(grants::client_id.eq(client_id))
            .filter(grants::revoked_at.is_null()),
    )
    .set(grants::revoked_at.eq(now))
    .execute(conn)
}

/// Revokes the grants a browser session produced (logout).
pub fn revoke_all_for_session(
    conn: &mut AnyConnection,
    session_hash: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        grants::table
            .filter(grants::session_hash.eq(session_hash))
            .filter(grants::revoked_at.is_null()),
    )
    .set(grants::revoked_at.eq(now))
    .execute(conn)
}

/// Whether this session approved a grant whose ID token carries `nonce` (a nonce is used once
/// per session). One search of the index on (session, nonce), however many grants the session
/// has.
pub fn nonce_used(conn: &mut AnyConnection, session_hash: &str, nonce: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        grants::table
            .filter(grants::session_hash.eq(session_hash))
            .filter(grants::nonce.eq(nonce)),
    ))
    .get_result(conn)
}

/// Whether the grant is live: it exists (it goes with its client) and is not revoked.
pub fn is_live(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
    grants::table
        .find(id)
        .select(grants::revoked_at)
        .get_result::<Option<i64>>(conn)
        .optional()
        .map(|r| matches!(r, Some(None)))
}

/// The grant an access token names, with its user and client (one statement): the token's
/// [`Holder`] and the client's CORS origins. `None` when the grant is unknown (it goes with its
/// client) or has no user, or the user is gone.
pub fn holder(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<(Holder, Vec<String>)>> {
    grants::table
        .inner_join(users::table.on(users::id.nullable().eq(grants::user_id)))
        .inner_join(clients::table.on(clients::id.eq(grants::client_id)))
        .filter(grants::id.eq(id))
        .select((
            grants::client_id,
            users::id,
            STATE_COLUMNS,
            ACCOUNT_COLUMNS,
            clients::allowed_origins,
        ))
        .get_result::<(String, String, StateRow, AccountRow, String)>(conn)
        .optional()
        .map(|r| {
            r.map(|(client_id, user_id, grant, user, origins)| {
                let holder = Holder {
                    client_id: client_id.into(),
                    grant: state(grant),
                    user: account(&user_id, user),
                };
                (holder, super::decode_list(&origins))
            })
        })
}

#[cfg(test)]
mod tests {
    use crate::store::plans;

    /// The nonce check is one search of the index on (session, nonce), not a walk through the
    /// session's grants: the plan SQLite makes for the statement `nonce_used` sends.
    #[test]
    fn nonce_check_searches_one_index_entry() {
        use diesel::connection::InstrumentationEvent;
        use std::sync::{Arc, Mutex};
        let (_dir, mut conn) = plans::migrated();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let seen = sent.clone();
        diesel::Connection::set_instrumentation(
            &mut conn,
            move |event: InstrumentationEvent<'_>| {
                if let InstrumentationEvent::StartQuery { query, .. } = event {
                    seen.lock().unwrap().push(query.to_string());
                }
            },
        );
        assert!(!super::nonce_used(&mut conn, "s", "n").unwrap());
        let statement = sent.lock().unwrap().last().cloned().unwrap();
        // The text without the binds Diesel lists after it; unbound parameters are NULL.
        let sql = statement.split(" -- binds").next().unwrap();
        let details = plans::of(&mut conn, sql);
        assert!(
            details
                .iter()
                .any(|d| d.contains("INDEX grants_session_nonce (session_hash=? AND nonce=?)")),
            "{statement}: {details:?}"
        );
    }
}
