//! Authorization codes: stored by hash, single use, each starting a grant.

use diesel::prelude::*;

use super::grants::{state, StateRow, STATE_COLUMNS};
use super::prepared::{self, Value};
use super::schema::{auth_codes, grants, users};
use super::users::{account, AccountRow, ACCOUNT_COLUMNS};
use super::AnyConnection;
use crate::oauth::model::StoredCode;
use crate::on_backend;

/// An authorization code as stored (only its hash).
#[derive(Debug, Clone, Queryable, Selectable)]
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
        prepared::execute(
            conn,
            "INSERT INTO auth_codes (code_hash, grant_id, client_id, user_id, redirect_uri, \
             scope, audience, code_challenge, created_at, expires_at, consumed_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                Value::Text(&self.code_hash),
                Value::Text(&self.grant_id),
                Value::Text(&self.client_id),
                Value::Text(&self.user_id),
                Value::Text(&self.redirect_uri),
                Value::Text(&self.scope),
                Value::Text(&self.audience),
                Value::Text(&self.code_challenge),
                Value::Int(self.created_at),
                Value::Int(self.expires_at),
                Value::NullableInt(self.consumed_at),
            ],
        )
        .map(|_| ())
    }

    /// The code with the state of its grant and user, as the core sees it (one statement).
    pub fn find(conn: &mut AnyConnection, code_hash: &str) -> QueryResult<Option<StoredCode>> {
        on_backend!(conn, |c| auth_codes::table
            .inner_join(users::table.on(users::id.eq(auth_codes::user_id)))
            .inner_join(grants::table)
            .filter(auth_codes::code_hash.eq(code_hash))
            .select((AuthCode::as_select(), ACCOUNT_COLUMNS, STATE_COLUMNS))
            .get_result::<(AuthCode, AccountRow, StateRow)>(c)
            .optional())
        .map(|r| {
            r.map(|(code, user, grant)| StoredCode {
                user: account(&code.user_id, user),
                code_hash: code.code_hash,
                grant_id: code.grant_id.into(),
                client_id: code.client_id.into(),
                redirect_uri: code.redirect_uri,
                scope: code.scope,
                audience: code.audience,
                code_challenge: code.code_challenge,
                expires_at: code.expires_at,
                consumed_at: code.consumed_at,
                grant: state(grant),
            })
        })
    }

    /// Marks the code used. True for exactly one caller, even under concurrency.
    pub fn consume(conn: &mut AnyConnection, code_hash: &str, now: i64) -> QueryResult<bool> {
        prepared::execute(
            conn,
            "UPDATE auth_codes SET consumed_at = ? WHERE code_hash = ? AND consumed_at IS NULL",
            &[Value::Int(now), Value::Text(code_hash)],
        )
        .map(|n| n == 1)
    }
}
