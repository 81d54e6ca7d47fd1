//! Refresh tokens: rotating, one family per grant.
//!
//! Rotation locks only the token's row and revocation only the grant's row, so concurrent
//! refreshes and revocations on PostgreSQL never wait on each other in a cycle. What makes a
//! token live is the core's rule (`oauth::grants::refresh_token::liveness`); this is table code.

use diesel::prelude::*;

use super::grants::{state, StateRow, STATE_COLUMNS};
use super::prepared::{self, Value};
use super::schema::{grants, refresh_tokens, users};
use super::users::{account, AccountRow, ACCOUNT_COLUMNS};
use super::AnyConnection;
use crate::oauth::model::{NewRefresh, StoredRefresh};
use crate::on_backend;

#[derive(Debug, Clone, Queryable, Selectable)]
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
    prepared::execute(conn, INSERT, &successor_values(token)).map(|_| ())
}

const INSERT: &str = "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, user_id, \
                      scope, audience, created_at, expires_at, rotated_at) \
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)";

/// A new token's values, in the order of [`INSERT`]'s columns.
fn successor_values(token: &NewRefresh) -> [Value<'_>; 8] {
    [
        Value::Text(&token.token_hash),
        Value::Text(token.grant_id.as_str()),
        Value::Text(token.client_id.as_str()),
        Value::NullableText(token.user_id.as_ref().map(|u| u.as_str())),
        Value::Text(&token.scope),
        Value::Text(&token.audience),
        Value::Int(token.created_at),
        Value::Int(token.expires_at),
    ]
}

/// The token with the state of its grant and user, as the core sees it (one statement).
pub fn find(conn: &mut AnyConnection, token_hash: &str) -> QueryResult<Option<StoredRefresh>> {
    on_backend!(conn, |c| refresh_tokens::table
        .inner_join(grants::table)
        .left_join(users::table.on(users::id.nullable().eq(refresh_tokens::user_id)))
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((
            RefreshRow::as_select(),
            STATE_COLUMNS,
            ACCOUNT_COLUMNS.nullable(),
        ))
        .get_result::<(RefreshRow, StateRow, Option<AccountRow>)>(c)
        .optional())
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
    prepared::execute(
        conn,
        "UPDATE refresh_tokens SET rotated_at = ? WHERE token_hash = ? AND rotated_at IS NULL",
        &[Value::Int(now), Value::Text(token_hash)],
    )
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
    if !super::is_postgres(conn) {
        return Ok(None);
    }
    let [hash, grant, client, user, scope, audience, created, expires] =
        successor_values(successor);
    prepared::execute(
        conn,
        "WITH rotated AS (\
             UPDATE refresh_tokens SET rotated_at = ? \
             WHERE token_hash = ? AND rotated_at IS NULL RETURNING 1\
         ) \
         INSERT INTO refresh_tokens \
             (token_hash, grant_id, client_id, user_id, scope, audience, created_at, \
              expires_at, rotated_at) \
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, NULL FROM rotated",
        &[
            Value::Int(now),
            Value::Text(token_hash),
            hash,
            grant,
            client,
            user,
            scope,
            audience,
            created,
            expires,
        ],
    )
    .map(|n| Some(n == 1))
}
