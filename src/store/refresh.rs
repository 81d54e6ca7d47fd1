//! Refresh tokens: rotating, one family per grant.
//!
//! A token is live while it is not rotated and its grant is not revoked. Rotation locks only the
//! token's row and revocation only the grant's row, so concurrent refreshes and revocations on
//! PostgreSQL never wait on each other in a cycle.

use diesel::prelude::*;

use super::codes::UserState;
use super::schema::{grants, refresh_tokens, users};
use super::AnyConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshToken {
    pub token_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub scope: String,
    pub audience: String,
    pub created_at: i64,
    /// min(created + idle timeout, the grant's absolute end).
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
}

/// A refresh token with the state of its grant.
#[derive(Debug, Clone)]
pub struct RefreshWithGrant {
    pub token: RefreshToken,
    pub grant_expires_at: i64,
    pub grant_revoked_at: Option<i64>,
    /// The token's user, when it has one and still exists.
    pub user: Option<UserState>,
}

impl RefreshToken {
    pub fn insert(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        diesel::insert_into(refresh_tokens::table)
            .values(self.clone())
            .execute(conn)
            .map(|_| ())
    }

    pub fn find(
        conn: &mut AnyConnection,
        token_hash: &str,
    ) -> QueryResult<Option<RefreshWithGrant>> {
        refresh_tokens::table
            .inner_join(grants::table)
            .left_join(users::table.on(users::id.nullable().eq(refresh_tokens::user_id)))
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .select((
                RefreshToken::as_select(),
                grants::expires_at,
                grants::revoked_at,
                users::roles.nullable(),
                users::disabled_at.nullable(),
            ))
            .first::<(RefreshToken, i64, Option<i64>, Option<String>, Option<i64>)>(conn)
            .optional()
            .map(|r| {
                r.map(
                    |(token, grant_expires_at, grant_revoked_at, roles, disabled_at)| {
                        RefreshWithGrant {
                            token,
                            grant_expires_at,
                            grant_revoked_at,
                            user: roles.map(|roles| UserState::new(&roles, disabled_at)),
                        }
                    },
                )
            })
    }

    /// Marks the token rotated. True for exactly one caller: the conditional update is the
    /// compare-and-swap that makes concurrent refreshes of one token yield one success.
    pub fn rotate(conn: &mut AnyConnection, token_hash: &str, now: i64) -> QueryResult<bool> {
        diesel::update(
            refresh_tokens::table
                .find(token_hash)
                .filter(refresh_tokens::rotated_at.is_null()),
        )
        .set(refresh_tokens::rotated_at.eq(now))
        .execute(conn)
        .map(|n| n == 1)
    }
}
