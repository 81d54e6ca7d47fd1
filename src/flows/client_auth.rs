//! Client authentication for the token, revocation and introspection endpoints: one read of the
//! client, one check (`oauth::client_auth::check`), the same for all three.

use crate::oauth::client_auth::{self, ClientCredentials};
use crate::oauth::model::Client;
use crate::oauth::OAuthError;
use crate::store::AnyConnection;

/// Reads the presented client and checks its credentials. The outer error is the database's;
/// the inner one the client's (`invalid_client`, the same for every failure, checklist 25).
pub fn authenticate_client(
    conn: &mut AnyConnection,
    creds: &ClientCredentials,
    now: i64,
) -> diesel::QueryResult<Result<Client, OAuthError>> {
    Ok(client_auth::check(
        Client::find(conn, &creds.client_id)?,
        creds,
        now,
    ))
}
