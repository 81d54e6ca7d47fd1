//! The client credentials grant's service (RFC 6749 §4.4): nothing written, one signature. A
//! client that authenticated a moment ago is answered from the client cache
//! (`flows::client_cache`) without a database hop; any other presentation reads the client in
//! one hop, and a client that authenticates there is remembered.

use crate::oauth::client_auth::ClientCredentials;
use crate::oauth::grants::client_credentials::decide;
use crate::oauth::grants::Issue;
use crate::oauth::model::GrantType;
use crate::oauth::token_request::ClientCredentialsRequest;
use crate::state::AppState;

use super::{in_hop, may_use, EndpointError, Hop};

pub(super) async fn grant(
    state: &AppState,
    creds: ClientCredentials,
    request: ClientCredentialsRequest,
    now: i64,
) -> Result<Hop<Issue>, EndpointError> {
    if let Some(client) = state.clients.authenticate(&creds, now) {
        let result = may_use(&client, GrantType::ClientCredentials)
            .and_then(|()| decide(&client, &request).into_result());
        return Ok(Ok((client, result)));
    }
    in_hop(
        state,
        creds,
        now,
        GrantType::ClientCredentials,
        false,
        move |_, client| Ok(decide(client, &request).into_result()),
    )
    .await
}
