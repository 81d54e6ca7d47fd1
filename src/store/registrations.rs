//! Dynamic client registration's tables: initial access tokens (`registration_tokens`) and the
//! registration of each dynamically registered client (`client_registrations`). Both keep only
//! SHA-256 hashes of their tokens.

use diesel::prelude::*;

use super::schema::{client_registrations, registration_tokens};
use super::AnyConnection;

/// An initial access token as stored (its hash, never the token).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = registration_tokens)]
pub struct InitialToken {
    pub id: String,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: i64,
    pub uses: i64,
}

impl InitialToken {
    pub fn insert(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        diesel::insert_into(registration_tokens::table)
            .values(self)
            .execute(conn)
            .map(drop)
    }

    /// Every initial access token, oldest first.
    pub fn list(conn: &mut AnyConnection) -> QueryResult<Vec<InitialToken>> {
        registration_tokens::table
            .order((
                registration_tokens::created_at.asc(),
                registration_tokens::id.asc(),
            ))
            .select(InitialToken::as_select())
            .load(conn)
    }

    /// Deletes the token with this id; true when there was one.
    pub fn delete(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
        diesel::delete(registration_tokens::table.find(id))
            .execute(conn)
            .map(|n| n == 1)
    }

    /// Uses the token with this hash once, if it is live at `now` and has a use left: the
    /// compare-and-swap of a registration (`uses < max_uses AND expires_at > now`). Returns the
    /// token's id, or `None` when it is unknown, expired or used up.
    pub fn consume(
        conn: &mut AnyConnection,
        token_hash: &str,
        now: i64,
    ) -> QueryResult<Option<String>> {
        let t = registration_tokens::table;
        let updated = diesel::update(
            t.filter(registration_tokens::token_hash.eq(token_hash))
                .filter(registration_tokens::uses.lt(registration_tokens::max_uses))
                .filter(registration_tokens::expires_at.gt(now)),
        )
        .set(registration_tokens::uses.eq(registration_tokens::uses + 1))
        .execute(conn)?;
        if updated != 1 {
            return Ok(None);
        }
        t.filter(registration_tokens::token_hash.eq(token_hash))
            .select(registration_tokens::id)
            .get_result(conn)
            .optional()
    }
}

/// A dynamically registered client's registration: the hash of its registration access token.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = client_registrations)]
pub struct Registration {
    pub client_id: String,
    pub access_token_hash: String,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub auth_method: String,
    /// The initial access token that registered it; `None` for an open registration.
    pub initial_token_id: Option<String>,
    /// Keyed hash of the registering host (`audit::host_hash`), for open registrations' cap.
    pub address_hash: Option<String>,
    pub created_at: i64,
}

impl Registration {
    pub fn insert(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        diesel::insert_into(client_registrations::table)
            .values(self)
            .execute(conn)
            .map(drop)
    }

    /// The registration whose access token has this hash.
    pub fn find_by_token(
        conn: &mut AnyConnection,
        access_token_hash: &str,
    ) -> QueryResult<Option<Registration>> {
        client_registrations::table
            .filter(client_registrations::access_token_hash.eq(access_token_hash))
            .select(Registration::as_select())
            .get_result(conn)
            .optional()
    }

    /// Whether this client was registered dynamically.
    pub fn exists(conn: &mut AnyConnection, client_id: &str) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            client_registrations::table.find(client_id),
        ))
        .get_result(conn)
    }

    pub fn set_auth_method(
        conn: &mut AnyConnection,
        client_id: &str,
        auth_method: &str,
    ) -> QueryResult<()> {
        diesel::update(client_registrations::table.find(client_id))
            .set(client_registrations::auth_method.eq(auth_method))
            .execute(conn)
            .map(drop)
    }

    /// How many clients were registered without an initial access token from this host.
    pub fn open_from_host(conn: &mut AnyConnection, address_hash: &str) -> QueryResult<i64> {
        client_registrations::table
            .filter(client_registrations::initial_token_id.is_null())
            .filter(client_registrations::address_hash.eq(address_hash))
            .count()
            .get_result(conn)
    }

    /// How many clients were registered without an initial access token, from anywhere.
    pub fn open_total(conn: &mut AnyConnection) -> QueryResult<i64> {
        client_registrations::table
            .filter(client_registrations::initial_token_id.is_null())
            .count()
            .get_result(conn)
    }
}
