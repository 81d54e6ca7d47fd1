//! Removing rows nobody can use any more, in batches: each statement deletes at most
//! [`PRUNE_BATCH`] rows and is its own transaction, so a large backlog never holds the write lock
//! for long (checklist 58). Called by `flows::prune` on a schedule, never by a request.

use diesel::prelude::*;

use super::AnyConnection;

/// Rows one prune statement deletes at most.
pub const PRUNE_BATCH: i64 = 500;

// Diesel's DSL has no DELETE … LIMIT on both backends; the subselect is portable. Table and
// column names are constants and every value is an `i64` formatted into the text, so nothing
// from outside reaches the SQL.
fn delete_batch(
    conn: &mut AnyConnection,
    table: &str,
    key: &str,
    cond: &str,
) -> QueryResult<usize> {
    let query = diesel::sql_query(format!(
        "DELETE FROM {table} WHERE {key} IN \
         (SELECT {key} FROM {table} WHERE {cond} LIMIT {PRUNE_BATCH})"
    ));
    super::serialised(conn, |conn| query.execute(conn))
}

/// Pending authorization requests past their expiry.
pub fn interactions(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    delete_batch(
        conn,
        "interactions",
        "id_hash",
        &format!("expires_at <= {now}"),
    )
}

/// Sessions past their expiry (their remaining interactions go with them: foreign key).
pub fn sessions(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    delete_batch(conn, "sessions", "id_hash", &format!("expires_at <= {now}"))
}

/// Authorization codes past their expiry that were never redeemed. A redeemed code stays as long
/// as its grant (it goes with it, foreign key): presented again, even late, it is a replay that
/// revokes what it issued (checklist 10). Codes exist only after a sign-in and a consent, so
/// keeping them does not let anonymous requests grow storage.
pub fn codes(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    delete_batch(
        conn,
        "auth_codes",
        "code_hash",
        &format!("expires_at <= {now} AND consumed_at IS NULL"),
    )
}

/// The condition for a grant that has ended: past its absolute end, or revoked before
/// `revoked_before` (by then every token it issued has expired).
fn ended_grant(now: i64, revoked_before: i64) -> String {
    format!("expires_at <= {now} OR (revoked_at IS NOT NULL AND revoked_at <= {revoked_before})")
}

/// Refresh tokens of ended grants. Rotated tokens of a live grant are kept: they are what
/// detects the reuse of an old copy (checklist 16). Deleted before their grants, so that one
/// grant statement never cascades into a long family.
pub fn refresh_of_ended_grants(
    conn: &mut AnyConnection,
    now: i64,
    revoked_before: i64,
) -> QueryResult<usize> {
    delete_batch(
        conn,
        "refresh_tokens",
        "token_hash",
        &format!(
            "grant_id IN (SELECT id FROM grants WHERE {})",
            ended_grant(now, revoked_before)
        ),
    )
}

/// Ended grants (their codes and any remaining refresh tokens go with them: foreign keys).
pub fn grants(conn: &mut AnyConnection, now: i64, revoked_before: i64) -> QueryResult<usize> {
    delete_batch(conn, "grants", "id", &ended_grant(now, revoked_before))
}

/// Initial access tokens of dynamic client registration past their expiry (used up or not: an
/// expired token registers nothing). The clients they registered stay.
pub fn registration_tokens(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    delete_batch(
        conn,
        "registration_tokens",
        "id",
        &format!("expires_at <= {now}"),
    )
}

#[cfg(test)]
mod tests {
    use diesel::RunQueryDsl as _;

    use crate::store::plans;

    #[derive(diesel::QueryableByName)]
    struct IndexRow {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        partial: i32,
    }

    /// The index of revoked grants holds only revoked ones (a live grant's insert writes nothing
    /// to it), and the prune still finds ended grants through it and the expiry index, not by
    /// reading the table.
    #[test]
    fn only_revoked_grants_are_indexed_by_revocation_and_the_prune_searches_them() {
        let (_dir, mut conn) = plans::migrated();
        let index = diesel::sql_query(
            "SELECT partial FROM pragma_index_list('grants') WHERE name = 'grants_revoked_at'",
        )
        .get_result::<IndexRow>(&mut conn)
        .unwrap();
        assert_eq!(index.partial, 1, "grants_revoked_at is a partial index");
        let sql = format!(
            "SELECT id FROM grants WHERE {} LIMIT 1",
            super::ended_grant(1_800_000_000, 1_799_000_000)
        );
        let details = plans::of(&mut conn, &sql);
        for index in ["grants_expires_at", "grants_revoked_at"] {
            assert!(
                details
                    .iter()
                    .any(|d| d.contains(&format!("SEARCH grants USING INDEX {index}"))),
                "{sql}: {details:?}"
            );
        }
    }
}
