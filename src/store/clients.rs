//! The client registry table.

use diesel::prelude::*;

use super::schema::clients;
use super::{decode_list, encode_list, AnyConnection};
use crate::oauth::model::{Client, GrantType, PreviousSecret};
use crate::on_backend;

/// A registered client as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub audiences: String,
    pub allowed_origins: String,
    pub created_at: i64,
    pub require_mfa: bool,
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub skip_consent: bool,
    pub post_logout_redirect_uris: String,
}

/// Table code for the core's [`Client`]: rows are mapped into it here, allow-lists decoded
/// (an unknown grant type in a row is dropped: deny by default).
impl Client {
    pub fn insert(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        diesel::insert_into(clients::table)
            .values(ClientRow::from(self.clone()))
            .execute(conn)
            .map(|_| ())
    }

    pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Client>> {
        on_backend!(conn, |c| clients::table
            .find(id)
            .select(ClientRow::as_select())
            .get_result(c)
            .optional())
        .map(|row| row.map(Client::from))
    }

    pub fn list(conn: &mut AnyConnection) -> QueryResult<Vec<Client>> {
        clients::table
            .order(clients::created_at.asc())
            .select(ClientRow::as_select())
            .load(conn)
            .map(|rows| rows.into_iter().map(Client::from).collect())
    }

    /// Clients by creation time (then id), `limit` from `offset`, those whose id or name contains
    /// `search` (any case) when given.
    pub fn page(
        conn: &mut AnyConnection,
        search: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> QueryResult<Vec<Client>> {
        let mut query = clients::table
            .order((clients::created_at.asc(), clients::id.asc()))
            .limit(limit)
            .offset(offset)
            .select(ClientRow::as_select())
            .into_boxed();
        if let Some(search) = search.filter(|s| !s.is_empty()) {
            let pattern = super::contains_pattern(search);
            query = query.filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("(LOWER(name) LIKE LOWER(")
                    .bind::<diesel::sql_types::Text, _>(pattern.clone())
                    .sql(") ESCAPE '\\' OR LOWER(id) LIKE LOWER(")
                    .bind::<diesel::sql_types::Text, _>(pattern)
                    .sql(") ESCAPE '\\')"),
            );
        }
        query
            .load(conn)
            .map(|rows| rows.into_iter().map(Client::from).collect())
    }

    /// Replaces the stored client by this one (same id).
    pub fn update(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        let row = ClientRow::from(self.clone());
        diesel::update(clients::table.find(&row.id))
            .set((
                clients::name.eq(&row.name),
                clients::secret_hash.eq(&row.secret_hash),
                clients::redirect_uris.eq(&row.redirect_uris),
                clients::grant_types.eq(&row.grant_types),
                clients::scopes.eq(&row.scopes),
                clients::audiences.eq(&row.audiences),
                clients::allowed_origins.eq(&row.allowed_origins),
                clients::require_mfa.eq(row.require_mfa),
                clients::previous_secret_hash.eq(&row.previous_secret_hash),
                clients::previous_secret_expires_at.eq(row.previous_secret_expires_at),
                clients::skip_consent.eq(row.skip_consent),
                clients::post_logout_redirect_uris.eq(&row.post_logout_redirect_uris),
            ))
            .execute(conn)
            .map(|_| ())
    }

    /// Every origin some client registered (for CORS before a client has authenticated).
    pub fn all_origins(conn: &mut AnyConnection) -> QueryResult<std::collections::HashSet<String>> {
        clients::table
            .select(clients::allowed_origins)
            .load::<String>(conn)
            .map(|rows| rows.iter().flat_map(|r| decode_list(r)).collect())
    }

    /// Deletes a client and, through foreign keys, its grants and tokens. True when it existed.
    pub fn delete(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
        diesel::delete(clients::table.find(id))
            .execute(conn)
            .map(|n| n == 1)
    }
}

impl From<ClientRow> for Client {
    fn from(row: ClientRow) -> Self {
        Client {
            id: row.id.into(),
            name: row.name,
            secret_hash: row.secret_hash,
            redirect_uris: decode_list(&row.redirect_uris),
            grant_types: decode_list(&row.grant_types)
                .iter()
                .filter_map(|g| g.parse::<GrantType>().ok())
                .collect(),
            scopes: decode_list(&row.scopes),
            audiences: decode_list(&row.audiences),
            allowed_origins: decode_list(&row.allowed_origins),
            created_at: row.created_at,
            require_mfa: row.require_mfa,
            previous_secret: match (row.previous_secret_hash, row.previous_secret_expires_at) {
                (Some(hash), Some(until)) => Some(PreviousSecret { hash, until }),
                _ => None,
            },
            skip_consent: row.skip_consent,
            post_logout_redirect_uris: decode_list(&row.post_logout_redirect_uris),
        }
    }
}

impl From<Client> for ClientRow {
    fn from(c: Client) -> Self {
        let grant_types: Vec<String> = c.grant_types.iter().map(ToString::to_string).collect();
        ClientRow {
            id: c.id.0,
            name: c.name,
            secret_hash: c.secret_hash,
            redirect_uris: encode_list(&c.redirect_uris),
            grant_types: encode_list(&grant_types),
            scopes: encode_list(&c.scopes),
            audiences: encode_list(&c.audiences),
            allowed_origins: encode_list(&c.allowed_origins),
            created_at: c.created_at,
            require_mfa: c.require_mfa,
            previous_secret_hash: c.previous_secret.as_ref().map(|p| p.hash.clone()),
            previous_secret_expires_at: c.previous_secret.as_ref().map(|p| p.until),
            skip_consent: c.skip_consent,
            post_logout_redirect_uris: encode_list(&c.post_logout_redirect_uris),
        }
    }
}
