//! The authorization code grant's service (RFC 6749 §4.1.3): one transaction of at most three
//! statements (read the code, consume it, insert the refresh token), decided by
//! `oauth::grants::authorization_code`.

use crate::oauth::grants::authorization_code::{decide, lost_race};
use crate::oauth::model::{Client, GrantType};
use crate::oauth::token_request::CodeRequest;
use crate::oauth::OAuthError;
use crate::secret::{PlainToken, TokenHash};
use crate::store::codes::AuthCode;
use crate::store::AnyConnection;

use super::{apply_writes, finish, transaction, Applied, Ctx, EndpointError};
use crate::oauth::grants::Issue;

pub(super) fn exchange(
    conn: &mut AnyConnection,
    ctx: &Ctx,
    client: &Client,
    request: &CodeRequest,
) -> Result<Result<Issue, OAuthError>, EndpointError> {
    let hash = TokenHash::of(&request.code);
    // Made before the transaction, so that on SQLite the writer's turn holds only the statements.
    let refresh = PlainToken::generate_ordered(crate::state::in_millis(ctx.now));
    transaction(conn, |conn| {
        let found = AuthCode::find(conn, hash.as_str())?;
        let plan = decide(
            found.as_ref(),
            client,
            request,
            &ctx.lifetimes,
            refresh,
            ctx.now,
        );
        let plan = match (apply_writes(conn, &plan.writes, ctx.now)?, &found) {
            (Applied::LostRace, Some(code)) => {
                // A concurrent request consumed it first: a replay.
                let replay = lost_race(code);
                apply_writes(conn, &replay.writes, ctx.now)?;
                replay
            }
            _ => plan,
        };
        finish(
            conn,
            ctx,
            GrantType::AuthorizationCode,
            plan,
            client,
            hash.log_prefix(),
        )
    })
}
