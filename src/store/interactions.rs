//! Pending authorization requests: what `/authorize` validated, kept server-side while the
//! browser goes through login and consent. The forms carry the random id; the table keeps its hash
//! and the session it is bound to.

use diesel::prelude::*;

use super::schema::interactions;
use super::AnyConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = interactions)]
pub struct Interaction {
    pub id_hash: String,
    pub session_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub audience: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// OpenID Connect: the request's `nonce`, `max_age`, `prompt` (as
    /// `oauth::oidc::Prompt::as_stored`) and `login_hint`.
    pub nonce: Option<String>,
    pub max_age: Option<i64>,
    pub prompt: String,
    pub login_hint: Option<String>,
}

impl Interaction {
    pub fn insert(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        diesel::insert_into(interactions::table)
            .values(self.clone())
            .execute(conn)
            .map(|_| ())
    }

    /// The live interaction with this id, bound to this session.
    pub fn find(
        conn: &mut AnyConnection,
        id_hash: &str,
        session_hash: &str,
        now: i64,
    ) -> QueryResult<Option<Interaction>> {
        interactions::table
            .find(id_hash)
            .filter(interactions::session_hash.eq(session_hash))
            .filter(interactions::expires_at.gt(now))
            .select(Interaction::as_select())
            .get_result(conn)
            .optional()
    }

    /// Deletes the interaction if it is still there: true for exactly one caller, so a consent
    /// form submitted twice issues one code.
    pub fn take(conn: &mut AnyConnection, id_hash: &str, session_hash: &str) -> QueryResult<bool> {
        diesel::delete(
            interactions::table
                .find(id_hash)
                .filter(interactions::session_hash.eq(session_hash)),
        )
        .execute(conn)
        .map(|n| n == 1)
    }

    /// Deletes the session's oldest pending requests so that, with `newest`, at most `keep`
    /// remain (checklist 58: one cookie cannot grow the table). `newest` is always kept; among
    /// older ones, those created in the same second go in no particular order.
    pub fn trim_session(
        conn: &mut AnyConnection,
        session_hash: &str,
        newest: &str,
        keep: i64,
    ) -> QueryResult<usize> {
        let excess: Vec<String> = interactions::table
            .filter(interactions::session_hash.eq(session_hash))
            .filter(interactions::id_hash.ne(newest))
            .order(interactions::created_at.desc())
            .select(interactions::id_hash)
            .limit(i64::MAX)
            .offset(keep.saturating_sub(1).max(0))
            .load(conn)?;
        if excess.is_empty() {
            return Ok(0);
        }
        diesel::delete(interactions::table.filter(interactions::id_hash.eq_any(excess)))
            .execute(conn)
    }
}
