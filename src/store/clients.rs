//! The client registry table.

use diesel::prelude::*;

use super::schema::clients;
use super::{decode_list, encode_list, AnyConnection};

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
}

/// A registered client with its allow-lists decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Client {
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the secret; `None` for public clients.
    #[serde(skip)]
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub created_at: i64,
}

impl Client {
    pub fn is_confidential(&self) -> bool {
        self.secret_hash.is_some()
    }

    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }

    /// The audience a token gets when the request names none: the client's first registered one.
    pub fn default_audience(&self) -> Option<&str> {
        self.audiences.first().map(String::as_str)
    }

    pub fn insert(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        diesel::insert_into(clients::table)
            .values(ClientRow::from(self.clone()))
            .execute(conn)
            .map(|_| ())
    }

    pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Client>> {
        clients::table
            .find(id)
            .select(ClientRow::as_select())
            .first(conn)
            .optional()
            .map(|row| row.map(Client::from))
    }

    pub fn list(conn: &mut AnyConnection) -> QueryResult<Vec<Client>> {
        clients::table
            .order(clients::created_at.asc())
            .select(ClientRow::as_select())
            .load(conn)
            .map(|rows| rows.into_iter().map(Client::from).collect())
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
            id: row.id,
            name: row.name,
            secret_hash: row.secret_hash,
            redirect_uris: decode_list(&row.redirect_uris),
            grant_types: decode_list(&row.grant_types),
            scopes: decode_list(&row.scopes),
            audiences: decode_list(&row.audiences),
            allowed_origins: decode_list(&row.allowed_origins),
            created_at: row.created_at,
        }
    }
}

impl From<Client> for ClientRow {
    fn from(c: Client) -> Self {
        ClientRow {
            id: c.id,
            name: c.name,
            secret_hash: c.secret_hash,
            redirect_uris: encode_list(&c.redirect_uris),
            grant_types: encode_list(&c.grant_types),
            scopes: encode_list(&c.scopes),
            audiences: encode_list(&c.audiences),
            allowed_origins: encode_list(&c.allowed_origins),
            created_at: c.created_at,
        }
    }
}
