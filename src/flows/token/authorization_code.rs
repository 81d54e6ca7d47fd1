//! The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6): one transaction of three
//! statements (read the code, consume it, insert the refresh token), then one signature.

use crate::oauth::code_grant::{self, CodeDecision};
use crate::oauth::OAuthError;
use crate::secret::{PlainToken, TokenHash};
use crate::store::clients::Client;
use crate::store::codes::{AuthCode, Grant};
use crate::store::{write_tx, AnyConnection};

use super::{insert_refresh, respond, Committed, Ctx, EndpointError, Issue, TokenResponse};

pub(super) fn exchange(
    conn: &mut AnyConnection,
    ctx: &Ctx,
    client: &Client,
    code: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    resource: Option<&str>,
) -> Result<TokenResponse, EndpointError> {
    let hash = TokenHash::of(code);
    let outcome: Committed<TokenResponse> = write_tx(conn, |conn| {
        let Some(found) = AuthCode::find(conn, hash.as_str())? else {
            return Ok(Err(OAuthError::invalid_grant("the code is not valid")));
        };
        let (stored, user) = (&found.code, &found.user);
        let revoked = found.grant_revoked_at.is_some();
        let decision = match code_grant::decide(
            stored,
            revoked,
            client,
            redirect_uri,
            code_verifier,
            ctx.now,
        ) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        if decision == CodeDecision::Replay || !AuthCode::consume(conn, hash.as_str(), ctx.now)? {
            Grant::revoke(conn, &stored.grant_id, ctx.now)?;
            tracing::warn!(client_id = %client.id, code = %hash.log_prefix(), "authorization code replayed: grant revoked");
            return Ok(Err(OAuthError::invalid_grant(
                "the code was already used; tokens issued from it are revoked",
            )));
        }
        if let Some(r) = resource {
            if r != stored.audience {
                return Err(EndpointError::OAuth(OAuthError::invalid_target(
                    "resource differs from the one authorized",
                )));
            }
        }
        if !user.active {
            return Err(OAuthError::invalid_grant("the user is disabled").into());
        }
        let refresh = if client.allows_grant("refresh_token") {
            let family_end = found.grant_expires_at;
            Some(insert_refresh(
                conn,
                ctx,
                &stored.grant_id,
                client,
                Some(&stored.user_id),
                &stored.scope,
                &stored.audience,
                family_end,
                PlainToken::generate(),
            )?)
        } else {
            None
        };
        let response = respond(
            ctx,
            client,
            Issue {
                subject: &stored.user_id,
                audience: &stored.audience,
                scope: &stored.scope,
                roles: &user.roles,
                grant_id: Some(&stored.grant_id),
                refresh,
            },
        )?;
        Ok::<_, EndpointError>(Ok(response))
    })?;
    Ok(outcome?)
}
