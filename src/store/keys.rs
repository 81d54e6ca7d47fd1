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

    /// Every key, in the order they sign (the JWKS and `keys list` show them so).
    pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<SigningKeyRow>> {
        signing_keys::table
            .order((
                signing_keys::activate_at.asc(),
                signing_keys::created_at.asc(),
                signing_keys::kid.asc(),
            ))
            .select(SigningKeyRow::as_select())
            .load(conn)
    }

    /// Inside a write transaction: serialises key rotations. On PostgreSQL (READ COMMITTED) a
    /// check-then-insert would let two transactions both see "no pending key"; this lock makes
    /// the second wait and then read what the first committed. Readers are not blocked. On
    /// SQLite the `BEGIN IMMEDIATE` of [`super::write_tx`] already holds the write lock.
    pub fn lock_for_rotation(conn: &mut AnyConnection) -> QueryResult<()> {
        if super::is_postgres(conn) {
            diesel::sql_query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
                .execute(conn)?;
        }
        Ok(())
    }

    /// Sets when a key stops signing and when it leaves the JWKS. Returns the rows changed.
    pub fn schedule_retirement(
        conn: &mut AnyConnection,
        kid: &str,
        retire_at: i64,
        expires_at: i64,
    ) -> QueryResult<usize> {
        diesel::update(signing_keys::table.filter(signing_keys::kid.eq(kid)))
            .set((
                signing_keys::retire_at.eq(Some(retire_at)),
                signing_keys::expires_at.eq(Some(expires_at)),
            ))
            .execute(conn)
    }
}
