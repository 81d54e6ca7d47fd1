//! Refresh tokens: rotating, one family per grant.
//!
//! Rotation locks only the token's row and revocation only the grant's row, so concurrent
//! refreshes and revocations on PostgreSQL never wait on each other in a cycle. What makes a
//! token live is the core's rule (`oauth::grants::refresh_token::liveness`); this is table code.

use diesel::prelude::*;

use super::grants::{state, StateRow, STATE_COLUMNS};
use super::schema::{grants, refresh_tokens, users};
use super::users::{account, AccountRow, ACCOUNT_COLUMNS};
use super::AnyConnection;
use crate::oauth::model::{NewRefresh, StoredRefresh};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
struct RefreshRow {
    token_hash: String,
    grant_id: String,
    client_id: String,
    user_id: Option<String>,
    scope: String,
    audience: String,
    created_at: i64,
    expires_at: i64,
    rotated_at: Option<i64>,
}

/// Stores a new refresh token.
pub fn insert(conn: &mut AnyConnection, token: &NewRefresh) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values(RefreshRow {
            token_hash: token.token_hash.clone(),
            grant_id: token.grant_id.to_string(),
            client_id: token.client_id.to_string(),
            user_id: token.user_id.as_ref().map(ToString::to_string),
            scope: token.scope.clone(),
            audience: token.audience.clone(),
            created_at: token.created_at,
            expires_at: token.expires_at,
            rotated_at: None,
        })
        .execute(conn)
        .map(|_| ())
}

/// The token with the state of its grant and user, as the core sees it (one statement).
pub fn find(conn: &mut AnyConnection, token_hash: &str) -> QueryResult<Option<StoredRefresh>> {
    refresh_tokens::table
        .inner_join(grants::table)
        .left_join(users::table.on(users::id.nullable().eq(refresh_tokens::user_id)))
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((
            RefreshRow::as_select(),
            STATE_COLUMNS,
            ACCOUNT_COLUMNS.nullable(),
        ))
        .first::<(RefreshRow, StateRow, Option<AccountRow>)>(conn)
        .optional()
        .map(|r| {
            r.map(|(row, grant, user)| {
                let user = match (&row.user_id, user) {
                    (Some(id), Some(user)) => Some(account(id, user)),
                    _ => None,
                };
                StoredRefresh {
                    token_hash: row.token_hash,
                    grant_id: row.grant_id.into(),
                    client_id: row.client_id.into(),
                    user_id: row.user_id.map(Into::into),
                    scope: row.scope,
                    audience: row.audience,
                    created_at: row.created_at,
                    expires_at: row.expires_at,
                    rotated_at: row.rotated_at,
                    grant: state(grant),
                    user,
                }
            })
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

/// PostgreSQL: marks the token rotated and inserts its successor in one statement (one round
/// trip, atomic without a transaction of its own). True when this call rotated it; false when it
/// was already rotated (nothing is inserted then). `None` on SQLite, whose `WITH` cannot update:
/// there the two statements run in the caller's transaction.
pub fn rotate_and_insert(
    conn: &mut AnyConnection,
    token_hash: &str,
    successor: &NewRefresh,
    now: i64,
) -> QueryResult<Option<bool>> {
    #[cfg(feature = "postgres")]
    if let AnyConnection::Postgresql(c) = conn {
        use diesel::sql_types::{BigInt, Nullable, Text};
        return diesel::sql_query(
            "WITH rotated AS (\
                 UPDATE refresh_tokens SET rotated_at = $1 \
                 WHERE token_hash = $2 AND rotated_at IS NULL RETURNING 1\
             ) \
             INSERT INTO refresh_tokens \
                 (token_hash, grant_id, client_id, user_id, scope, audience, created_at, \
                  expires_at, rotated_at) \
             SELECT $3, $4, $5, $6, $7, $8, $9, $10, NULL FROM rotated",
        )
        .bind::<BigInt, _>(now)
        .bind::<Text, _>(token_hash)
        .bind::<Text, _>(&successor.token_hash)
        .bind::<Text, _>(successor.grant_id.as_str())
        .bind::<Text, _>(successor.client_id.as_str())
        .bind::<Nullable<Text>, _>(successor.user_id.as_ref().map(|u| u.as_str()))
        .bind::<Text, _>(&successor.scope)
        .bind::<Text, _>(&successor.audience)
        .bind::<BigInt, _>(successor.created_at)
        .bind::<BigInt, _>(successor.expires_at)
        .execute(c)
        .map(|n| Some(n == 1));
    }
    let _ = (conn, token_hash, successor, now);
    Ok(None)
}
