//! TOTP factors and recovery codes. The secret is stored only as a JWE under the master key; a
//! recovery code only as its SHA-256. Accepting a code and using a recovery code are each one
//! conditional `UPDATE` whose affected-row count decides, so two instances cannot both accept the
//! same code (checklist 52).

use diesel::prelude::*;

use super::schema::{recovery_codes, totp_factors};
use super::AnyConnection;

/// A user's TOTP factor. `confirmed_at` is `None` while enrolment waits for its first code.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = totp_factors)]
pub struct TotpFactor {
    pub user_id: String,
    pub secret_jwe: String,
    pub last_step: Option<i64>,
    pub confirmed_at: Option<i64>,
    pub created_at: i64,
}

impl std::fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor")
            .field("user_id", &self.user_id)
            .field("confirmed_at", &self.confirmed_at)
            .finish_non_exhaustive()
    }
}

impl TotpFactor {
    pub fn is_active(&self) -> bool {
        self.confirmed_at.is_some()
    }

    pub fn find(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Option<TotpFactor>> {
        totp_factors::table
            .find(user_id)
            .select(TotpFactor::as_select())
            .get_result(conn)
            .optional()
    }

    /// True when the user has an active (confirmed) factor.
    pub fn is_enrolled(conn: &mut AnyConnection, user_id: &str) -> QueryResult<bool> {
        Ok(Self::find(conn, user_id)?.is_some_and(|f| f.is_active()))
    }

    /// Stores a pending factor, replacing a pending one, inside the caller's write transaction.
    /// False (nothing written) when the user already has an active factor: enrolling twice
    /// needs the old one disabled or reset first.
    pub fn put_pending(&self, conn: &mut AnyConnection) -> QueryResult<bool> {
        if Self::is_enrolled(conn, &self.user_id)? {
            return Ok(false);
        }
        diesel::delete(totp_factors::table.find(&self.user_id)).execute(conn)?;
        diesel::insert_into(totp_factors::table)
            .values(self.clone())
            .execute(conn)?;
        Ok(true)
    }

    /// Activates a pending factor with the step of its first code. False when it was not
    /// pending any more (another request confirmed it, or it was replaced).
    pub fn confirm(
        conn: &mut AnyConnection,
        user_id: &str,
        secret_jwe: &str,
        step: i64,
        now: i64,
    ) -> QueryResult<bool> {
        diesel::update(
            totp_factors::table
                .find(user_id)
                .filter(totp_factors::confirmed_at.is_null())
                .filter(totp_factors::secret_jwe.eq(secret_jwe)),
        )
        .set((
            totp_factors::confirmed_at.eq(Some(now)),
            totp_factors::last_step.eq(Some(step)),
        ))
        .execute(conn)
        .map(|n| n == 1)
    }

    /// Records `step` as accepted when it is later than the last accepted one: the
    /// compare-and-swap that makes a code single use across instances.
    pub fn accept_step(conn: &mut AnyConnection, user_id: &str, step: i64) -> QueryResult<bool> {
        diesel::update(
            totp_factors::table
                .find(user_id)
                .filter(totp_factors::confirmed_at.is_not_null())
                .filter(
                    totp_factors::last_step
                        .is_null()
                        .or(totp_factors::last_step.lt(step)),
                ),
        )
        .set(totp_factors::last_step.eq(Some(step)))
        .execute(conn)
        .map(|n| n == 1)
    }

    /// Removes the factor and the recovery codes. True when there was a factor.
    pub fn delete(conn: &mut AnyConnection, user_id: &str) -> QueryResult<bool> {
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
            .execute(conn)?;
        diesel::delete(totp_factors::table.find(user_id))
            .execute(conn)
            .map(|n| n == 1)
    }
}

/// Replaces the user's recovery codes by these hashes (the old ones stop working).
pub fn replace_recovery_codes(
    conn: &mut AnyConnection,
    user_id: &str,
    hashes: &[String],
    now: i64,
) -> QueryResult<()> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    let rows: Vec<_> = hashes
        .iter()
        .map(|h| {
            (
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(h),
                recovery_codes::created_at.eq(now),
            )
        })
        .collect();
    for row in rows {
        diesel::insert_into(recovery_codes::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// Uses a recovery code: true once, for an unused code of this user.
pub fn use_recovery_code(
    conn: &mut AnyConnection,
    user_id: &str,
    code_hash: &str,
    now: i64,
) -> QueryResult<bool> {
    diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(code_hash))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(Some(now)))
    .execute(conn)
    .map(|n| n == 1)
}

/// Unused recovery codes left.
pub fn recovery_codes_left(conn: &mut AnyConnection, user_id: &str) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}
