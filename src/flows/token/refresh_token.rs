//! The refresh token grant's service (RFC 6749 §6): one transaction of at most three statements
//! (read, conditional rotate, insert the successor), decided by `oauth::grants::refresh_token`.
//! On PostgreSQL the common case takes two statements and no transaction of its own
//! ([`rotate_at_once`]).
//!
//! The successor of a presented token is derived from it (HMAC under a master-key subkey) and
//! ordered by the second of the rotation (`PlainToken::ordered`), so a retry within the window,
//! which finds the token rotated at that time, is given the same successor back without storing
//! it in the clear.

use crate::oauth::grants::refresh_token::{decide, lost_race, successor_needed, LostRace};
use crate::oauth::grants::{Issue, Outcome, Write};
use crate::oauth::model::{Client, GrantType, StoredRefresh};
use crate::oauth::token_request::RefreshRequest;
use crate::oauth::OAuthError;
use crate::secret::{hmac_b64, PlainToken, TokenHash};
use crate::store::{self, refresh, AnyConnection};

use super::{apply_writes, finish, transaction, Applied, Ctx, EndpointError};

/// The derived part of a presented refresh token's successor: by itself, the whole successor of
/// a token rotated before successors carried their time.
fn derived(ctx: &Ctx, presented: &str) -> String {
    hmac_b64(&ctx.successor_key, &["refresh successor", presented])
}

/// The successor, of `derived` part, of a token rotated at `at` (unix seconds): an ordered token
/// ([`PlainToken::ordered`]) of that second, so that a retry, which finds the token rotated at
/// `at`, makes the same successor again.
fn successor_of(derived: &str, at: i64) -> PlainToken {
    PlainToken::ordered(at.saturating_mul(1000), derived)
}

/// The successor of a token found rotated at `rotated_at`, and what the store holds under its
/// hash: in either form (with its time, or the derived part alone for a rotation made before
/// successors carried their time).
fn stored_successor(
    conn: &mut AnyConnection,
    derived: &str,
    rotated_at: i64,
) -> diesel::QueryResult<(PlainToken, Option<StoredRefresh>)> {
    let ordered = successor_of(derived, rotated_at);
    if let Some(stored) = refresh::find(conn, ordered.hash().as_str())? {
        return Ok((ordered, Some(stored)));
    }
    let bare = PlainToken::from_presented(derived);
    match refresh::find(conn, bare.hash().as_str())? {
        Some(stored) => Ok((bare, Some(stored))),
        None => Ok((ordered, None)),
    }
}

pub(super) fn refresh(
    conn: &mut AnyConnection,
    ctx: &Ctx,
    client: &Client,
    request: &RefreshRequest,
) -> Result<Result<Issue, OAuthError>, EndpointError> {
    let hash = TokenHash::of(&request.refresh_token);
    // Made before the transaction, so that on SQLite the writer's turn holds only the statements.
    let derived = derived(ctx, &request.refresh_token);
    if let Some(issue) = rotate_at_once(conn, ctx, client, request, &hash, &derived)? {
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
            let (successor, stored_successor) = match &found {
                Some(t) if successor_needed(t, lifetimes, ctx.now) => {
                    stored_successor(conn, &derived, t.rotated_at.unwrap_or(ctx.now))?
                }
                _ => (successor_of(&derived, ctx.now), None),
            };
            let plan = decide(
                found.as_ref(),
                stored_successor.as_ref(),
                client,
                request,
                lifetimes,
                successor,
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
    derived: &str,
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
        successor_of(derived, ctx.now),
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
