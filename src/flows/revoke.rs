//! Token revocation (RFC 7009). Revoking a refresh token revokes its whole grant (family), and so
//! its access tokens; revoking an access token revokes its grant too (§2.1 allows it). Unknown
//! tokens and other clients' tokens get the same 200 and are left alone (§2.2).

use crate::oauth::client_auth;
use crate::oauth::params::Params;
use crate::secret::TokenHash;
use crate::state::AppState;
use crate::store::{grants, refresh, write_tx};
use crate::tokens;

use super::client_auth::authenticate_client;
use super::{Answer, EndpointError};

#[tracing::instrument(skip_all)]
pub async fn revoke(state: &AppState, params: Params, authorization: Option<String>) -> Answer<()> {
    let creds = match client_auth::credentials(authorization.as_deref(), &params) {
        Ok(c) => c,
        Err(e) => return Answer::anonymous(e),
    };
    let token = match params.require("token") {
        Ok(t) => t.to_owned(),
        Err(e) => return Answer::anonymous(e),
    };
    let now = state.clock.now();
    let keys = state.keys.current();
    let issuer = state.issuer().to_owned();
    state
        .db(move |conn| {
            let client = match authenticate_client(conn, &creds)? {
                Ok(c) => c,
                Err(e) => return Ok(Answer::anonymous(e)),
            };
            let grant_id = match refresh::find(conn, TokenHash::of(&token).as_str())? {
                Some(rt) => (rt.client_id == client.id).then(|| rt.grant_id.to_string()),
                None => tokens::verify_own(&keys, &issuer, &token, now)
                    .filter(|c| client.id == c.client_id.as_str())
                    .and_then(|c| c.sid),
            };
            if let Some(grant_id) = grant_id {
                write_tx(conn, |conn| grants::revoke(conn, &grant_id, now))?;
                tracing::info!(client_id = %client.id, grant = %grant_id, "grant revoked");
            }
            Ok::<_, EndpointError>(Answer::of(&client, Ok(())))
        })
        .await
        .unwrap_or_else(Answer::failed)
}
