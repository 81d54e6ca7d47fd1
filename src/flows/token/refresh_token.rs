//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2):
//! one transaction of three statements (read, conditional rotate, insert the successor).
//!
//! A successor is derived from the token it replaces (HMAC under a master-key subkey), never
//! stored in the clear. With the opt-in retry window, a client whose response was lost (or two
//! tabs refreshing at once) may present the just-rotated token again within a few seconds and get
//! the *same* successor back: still one live token per family, so whoever rotates next turns the
//! other copy into a detected reuse. Outside the window, or from another client, it is reuse.

use crate::oauth::refresh_grant::{self, RefreshDecision};
use crate::oauth::OAuthError;
use crate::secret::{hmac_b64, PlainToken, TokenHash};
use crate::store::clients::Client;
use crate::store::codes::{Grant, UserState};
use crate::store::refresh::{RefreshToken, RefreshWithGrant};
use crate::store::{write_tx, AnyConnection};

use super::{insert_refresh, respond, Committed, Ctx, EndpointError, Issue, TokenResponse};

/// The successor of a presented refresh token.
fn successor_of(ctx: &Ctx, presented: &str) -> PlainToken {
    PlainToken::from_presented(hmac_b64(
        &ctx.successor_key,
        &["refresh successor", presented],
    ))
}

/// Within the retry window: is the successor still this client's live, unrotated token?
fn successor_unused(
    conn: &mut AnyConnection,
    ctx: &Ctx,
    client: &Client,
    stored: &RefreshWithGrant,
    successor: &PlainToken,
) -> Result<bool, EndpointError> {
    let Some(rotated_at) = stored.token.rotated_at else {
        return Ok(false);
    };
    if ctx.retry_window <= 0 || ctx.now >= rotated_at + ctx.retry_window {
        return Ok(false);
    }
    Ok(
        RefreshToken::find(conn, successor.hash().as_str())?.is_some_and(|s| {
            s.token.rotated_at.is_none()
                && s.grant_revoked_at.is_none()
                && s.token.client_id == client.id
                && stored.token.client_id == client.id
        }),
    )
}

pub(super) fn refresh(
    conn: &mut AnyConnection,
    ctx: &Ctx,
    client: &Client,
    presented: &str,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<TokenResponse, EndpointError> {
    let hash = TokenHash::of(presented);
    let successor = successor_of(ctx, presented);
    let outcome: Committed<TokenResponse> = write_tx(conn, |conn| {
        // A second pass only when a concurrent refresh won the rotation and the retry window
        // may let this request share its successor.
        for _ in 0..2 {
            let Some(stored) = RefreshToken::find(conn, hash.as_str())? else {
                return Ok(Err(OAuthError::invalid_grant(
                    "the refresh token is not valid",
                )));
            };
            let unused = successor_unused(conn, ctx, client, &stored, &successor)?;
            let decision = match refresh_grant::decide(&stored, client, scope, ctx.now, unused) {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
            let token = &stored.token;
            let (scope, resend) = match decision {
                RefreshDecision::Rotate { scope } => {
                    if !RefreshToken::rotate(conn, hash.as_str(), ctx.now)? {
                        // A concurrent request rotated it a moment ago.
                        if ctx.retry_window > 0 {
                            continue;
                        }
                        return revoke_for_reuse(conn, ctx, client, &stored, &hash);
                    }
                    (scope, false)
                }
                RefreshDecision::Resend { scope } => (scope, true),
                RefreshDecision::Reuse => {
                    return revoke_for_reuse(conn, ctx, client, &stored, &hash)
                }
            };
            if let Some(r) = resource {
                if r != token.audience {
                    return Err(OAuthError::invalid_target(
                        "resource differs from the one authorized",
                    )
                    .into());
                }
            }
            let user = stored.user.clone().unwrap_or(UserState {
                roles: Vec::new(),
                active: true,
            });
            let subject = token.user_id.clone().unwrap_or_else(|| client.id.clone());
            let successor = if resend {
                tracing::info!(client_id = %client.id, token = %hash.log_prefix(), "refresh retried within the window: same successor");
                successor.clone()
            } else {
                insert_refresh(
                    conn,
                    ctx,
                    &token.grant_id,
                    client,
                    token.user_id.as_deref(),
                    // RFC 6749 §6: a narrower scope applies to this access token only; the new
                    // refresh token carries the scope of the one it replaces.
                    &token.scope,
                    &token.audience,
                    stored.grant_expires_at,
                    successor.clone(),
                )?
            };
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
            return Ok::<_, EndpointError>(Ok(response));
        }
        Ok(Err(OAuthError::invalid_grant(
            "the refresh token was already used",
        )))
    })?;
    Ok(outcome?)
}

/// A second copy of the token is in use: the whole family goes (RFC 9700 §4.14.2).
fn revoke_for_reuse(
    conn: &mut AnyConnection,
    ctx: &Ctx,
    client: &Client,
    stored: &RefreshWithGrant,
    hash: &TokenHash,
) -> Result<Committed<TokenResponse>, EndpointError> {
    Grant::revoke(conn, &stored.token.grant_id, ctx.now)?;
    tracing::warn!(client_id = %client.id, token = %hash.log_prefix(), "refresh token reuse: family revoked");
    Ok(Err(OAuthError::invalid_grant(
        "the refresh token was already used",
    )))
}
