//! The client credentials grant (RFC 6749 §4.4): a confidential client acting for itself. The
//! token's `sub` is the client id (`cl_…`, never a user id, checklist 34); no refresh token
//! (§4.4.3). The work is the client read already done and one signature.

use crate::oauth::{authorize, scope, OAuthError};
use crate::store::clients::Client;

use super::{respond, Ctx, EndpointError, Issue, TokenResponse};

pub(super) fn grant(
    ctx: &Ctx,
    client: &Client,
    requested_scope: Option<&str>,
    resource: Option<&str>,
) -> Result<TokenResponse, EndpointError> {
    if !client.is_confidential() {
        return Err(OAuthError::unauthorized_client(
            "client_credentials is for confidential clients",
        )
        .into());
    }
    let scope = scope::to_string(&scope::negotiate(requested_scope, &client.scopes)?);
    let audience = authorize::select_audience(resource, client)?;
    respond(
        ctx,
        client,
        Issue {
            subject: &client.id,
            audience: &audience,
            scope: &scope,
            roles: &[],
            grant_id: None,
            refresh: None,
        },
    )
}
