//! The refresh token grant's service (RFC 6749 §6): one transaction of at most three statements
//! (read, conditional rotate, insert the successor), decided by `oauth::grants::refresh_token`.
//! On PostgreSQL the common case takes two statements and no transaction of its own
//! ([`rotate_at_once`]).
//!
//! The successor of a presented token is derived from it (HMAC under a master-key subkey), so a
//! retry within the window is given the same successor back without storing it in the clear.

use crate::oauth::grants::refresh_token::{decide, lost_race, successor_needed, LostRace};
use crate::oauth::grants::{Issue, Outcome, Write};
use crate::oauth::model::{Client, GrantType};
use crate::oauth::token_request::RefreshRequest;
use crate::oauth::OAuthError;
use crate::secret::{hmac_b64, PlainToken, TokenHash};
use crate::store::{self, refresh, AnyConnection};

use super::{apply_writes, finish, transaction, Applied, Ctx, EndpointError};

/// The successor of a presented refresh token.
fn successor_of(ctx: &Ctx, presented: &str) -> PlainToken {
    PlainToken::from_presented(hmac_b64(
        &ctx.successor_key,
        &["refresh successor", presented],
    ))
}

pub(super) fn refresh(
    conn: &mut AnyConnection,
    ctx: &Ctx,
    client: &Client,
    request: &RefreshRequest,
) -> Result<Result<Issue, OAuthError>, EndpointError> {
    let hash = TokenHash::of(&request.refresh_token);
    let successor = successor_of(ctx, &request.refresh_token);
    if let Some(issue) = rotate_at_once(conn, ctx, client, request, &hash, &successor)? {
        return Ok(Ok(issue));
    }
    let lifetimes = &ctx.lifetimes;
    transaction(conn, |conn| {
        let done = |conn: &mut AnyConnection, plan| {
            finish(
                conn,
                ctx,
                GrantType::RefreshToken,
                plan,
                client,
                hash.log_prefix(),
            )
        };
        let mut attempt = 1;
        loop {
            let found = refresh::find(conn, hash.as_str())?;
            let stored_successor = match &found {
                Some(t) if successor_needed(t, lifetimes, ctx.now) => {
                    refresh::find(conn, successor.hash().as_str())?
                }
                _ => None,
            };
            let plan = decide(
                found.as_ref(),
                stored_successor.as_ref(),
                client,
                request,
                lifetimes,
                successor.clone(),
                ctx.now,
            );
            let (Applied::LostRace, Some(token)) =
                (apply_writes(conn, &plan.writes, ctx.now)?, &found)
            else {
                return done(conn, plan);
            };
            // A concurrent request rotated it a moment ago.
            match lost_race(token, lifetimes, attempt) {
                LostRace::ReadAgain => attempt += 1,
                LostRace::Plan(plan) => {
                    apply_writes(conn, &plan.writes, ctx.now)?;
                    return done(conn, *plan);
                }
            }
        }
    })
}

/// PostgreSQL, the common case in two round trips: read the token (with its grant and user), and,
/// when the core's plan is the plain rotation, rotate it and insert its successor in one
/// statement, whose compare-and-swap decides. `None` for anything else (SQLite, a refusal, a
/// resend within the window, a reuse, a lost race): the transaction in [`refresh`] then reads
/// again and decides with the same rules.
fn rotate_at_once(
    conn: &mut AnyConnection,
    ctx: &Ctx,
    client: &Client,
    request: &RefreshRequest,
    hash: &TokenHash,
    successor: &PlainToken,
) -> Result<Option<Issue>, EndpointError> {
    if !store::is_postgres(conn) {
        return Ok(None);
    }
    let Some(found) = refresh::find(conn, hash.as_str())? else {
        return Ok(None);
    };
    if successor_needed(&found, &ctx.lifetimes, ctx.now) {
        return Ok(None);
    }
    let plan = decide(
        Some(&found),
        None,
        client,
        request,
        &ctx.lifetimes,
        successor.clone(),
        ctx.now,
    );
    let (
        None,
        Outcome::Issue(issue),
        [Write::RotateRefresh { token_hash }, Write::InsertRefresh(new)],
    ) = (&plan.event, plan.outcome, plan.writes.as_slice())
    else {
        return Ok(None);
    };
    match refresh::rotate_and_insert(conn, token_hash, new, ctx.now)? {
        Some(true) => Ok(Some(issue)),
        _ => Ok(None),
    }
}
