//! Grants (one per authorization: the refresh-token family) and authorization codes.

use diesel::prelude::*;

use super::schema::{auth_codes, grants, users};
use super::{decode_list, AnyConnection};

/// What a grant needs to know of its user when tokens are issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub roles: Vec<String>,
    pub active: bool,
}

impl UserState {
    pub fn new(roles: &str, disabled_at: Option<i64>) -> UserState {
        UserState {
            roles: decode_list(roles),
            active: disabled_at.is_none(),
        }
    }
}

/// One authorization: codes and refresh tokens issued from it share its id, and revoking it
/// revokes all of them (and, through introspection, the access tokens that carry its id).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = grants)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    /// The browser session whose login produced it (none for the password grant); logging that
    /// session out revokes the grant.
    pub session_hash: Option<String>,
    pub created_at: i64,
    /// Absolute end of the family: no refresh token from it lives longer.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl Grant {
    pub fn insert(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        diesel::insert_into(grants::table)
            .values(self.clone())
            .execute(conn)
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

    /// When the grant was revoked, if it was (`None` also for an unknown id).
    pub fn revoked_at(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Option<i64>>> {
        grants::table
            .find(id)
            .select(grants::revoked_at)
            .first(conn)
            .optional()
    }
}

/// A code with what its redemption depends on.
#[derive(Debug, Clone)]
pub struct CodeWithGrant {
    pub code: AuthCode,
    pub user: UserState,
    pub grant_expires_at: i64,
    pub grant_revoked_at: Option<i64>,
}

/// An authorization code as stored (only its hash).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = auth_codes)]
pub struct AuthCode {
    pub code_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub audience: String,
    pub code_challenge: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
}

impl AuthCode {
    pub fn insert(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        diesel::insert_into(auth_codes::table)
            .values(self.clone())
            .execute(conn)
            .map(|_| ())
    }

    /// The code with the state of its grant and user (one statement).
    pub fn find(conn: &mut AnyConnection, code_hash: &str) -> QueryResult<Option<CodeWithGrant>> {
        auth_codes::table
            .inner_join(users::table.on(users::id.eq(auth_codes::user_id)))
            .inner_join(grants::table)
            .filter(auth_codes::code_hash.eq(code_hash))
            .select((
                AuthCode::as_select(),
                users::roles,
                users::disabled_at,
                grants::expires_at,
                grants::revoked_at,
            ))
            .first::<(AuthCode, String, Option<i64>, i64, Option<i64>)>(conn)
            .optional()
            .map(|r| {
                r.map(
                    |(code, roles, disabled_at, grant_expires_at, grant_revoked_at)| {
                        CodeWithGrant {
                            code,
                            user: UserState::new(&roles, disabled_at),
                            grant_expires_at,
                            grant_revoked_at,
                        }
                    },
                )
            })
    }

    /// Marks the code used. True for exactly one caller, even under concurrency.
    pub fn consume(conn: &mut AnyConnection, code_hash: &str, now: i64) -> QueryResult<bool> {
        diesel::update(
            auth_codes::table
                .find(code_hash)
                .filter(auth_codes::consumed_at.is_null()),
        )
        .set(auth_codes::consumed_at.eq(now))
        .execute(conn)
        .map(|n| n == 1)
    }
}
