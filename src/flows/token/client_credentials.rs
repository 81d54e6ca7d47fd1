//! The client credentials grant's service (RFC 6749 §4.4): the client read already done, nothing
//! written, one signature.

use crate::oauth::grants::client_credentials::decide;
use crate::oauth::grants::Issue;
use crate::oauth::model::Client;
use crate::oauth::token_request::ClientCredentialsRequest;
use crate::oauth::OAuthError;

pub(super) fn grant(
    client: &Client,
    request: &ClientCredentialsRequest,
) -> Result<Issue, OAuthError> {
    decide(client, request).into_result()
}
