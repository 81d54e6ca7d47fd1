//! Signing keys. The private part is a JWE (dir + A256GCM) under the master key.

use diesel::prelude::*;

use super::schema::signing_keys;
use super::AnyConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_jwe: String,
    pub public_jwk: String,
    pub created_at: i64,
    /// Signs from this time on (publish before use).
    pub activate_at: i64,
    /// Stops signing from this time on.
    pub retire_at: Option<i64>,
    /// Leaves the JWKS from this time on.
    pub expires_at: Option<i64>,
}

impl SigningKeyRow {
    pub fn insert(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        diesel::insert_into(signing_keys::table)
            .values(self.clone())
            .execute(conn)
            .map(|_| ())
    }

    pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<SigningKeyRow>> {
        signing_keys::table
            .order(signing_keys::created_at.asc())
            .select(SigningKeyRow::as_select())
            .load(conn)
    }
}
