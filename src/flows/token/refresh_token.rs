//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2):
//! one transaction of three statements (read, conditional rotate, insert the successor).

use crate::oauth::refresh_grant::{self, RefreshDecision};
use crate::oauth::OAuthError;
use crate::secret::TokenHash;
use crate::store::clients::Client;
use crate::store::codes::{Grant, UserState};
use crate::store::refresh::RefreshToken;
use crate::store::{write_tx, AnyConnection};

use super::{insert_refresh, respond, Committed, Ctx, EndpointError, Issue, TokenResponse};

pub(super) fn refresh(
    conn: &mut AnyConnection,
    ctx: &Ctx,
    client: &Client,
    presented: &str,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<TokenResponse, EndpointError> {
    let hash = TokenHash::of(presented);
    let outcome: Committed<TokenResponse> = write_tx(conn, |conn| {
        let Some(stored) = RefreshToken::find(conn, hash.as_str())? else {
            return Ok(Err(OAuthError::invalid_grant(
                "the refresh token is not valid",
            )));
        };
        let decision = match refresh_grant::decide(&stored, client, scope, ctx.now) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        let token = &stored.token;
        let scope = match decision {
            RefreshDecision::Rotate { scope }
                if RefreshToken::rotate(conn, hash.as_str(), ctx.now)? =>
            {
                scope
            }
            // Rotated before, or by a concurrent request a moment ago: either way a second copy
            // of the token is in use, so the whole family goes (RFC 9700 §4.14.2).
            _ => {
                Grant::revoke(conn, &token.grant_id, ctx.now)?;
                tracing::warn!(client_id = %client.id, token = %hash.log_prefix(), "refresh token reuse: family revoked");
                return Ok(Err(OAuthError::invalid_grant(
                    "the refresh token was already used",
                )));
            }
        };
        if let Some(r) = resource {
            if r != token.audience {
                return Err(
                    OAuthError::invalid_target("resource differs from the one authorized").into(),
                );
            }
        }
        let user = stored.user.clone().unwrap_or(UserState {
            roles: Vec::new(),
            active: true,
        });
        let subject = token.user_id.clone().unwrap_or_else(|| client.id.clone());
        let successor = insert_refresh(
            conn,
            ctx,
            &token.grant_id,
            client,
            token.user_id.as_deref(),
            // RFC 6749 §6: a narrower scope applies to this access token only; the new refresh
            // token carries the scope of the one it replaces.
            &token.scope,
            &token.audience,
            stored.grant_expires_at,
        )?;
        let response = respond(
            ctx,
            client,
            Issue {
                subject: &subject,
                audience: &token.audience,
                scope: &scope,
                roles: &user.roles,
                grant_id: Some(&token.grant_id),
                refresh: Some(successor),
            },
        )?;
        Ok::<_, EndpointError>(Ok(response))
    })?;
    Ok(outcome?)
}
