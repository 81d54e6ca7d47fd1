//! The password grant's service (RFC 6749 §4.3): one pool hop reads the client and the user,
//! argon2 checks the password (the same work for an unknown user, checklist 50), and a second hop
//! applies `oauth::grants::password`'s plan. Each attempt on a real user counts against the
//! lockout of the user's unknown devices (`flows::lockout`, checklist 49).

use crate::audit::{Actor, AuditEvent, Entry, Outcome};
use crate::flows::lockout::{self, Attempt, Device, Factor};
use crate::oauth::client_auth::ClientCredentials;
use crate::oauth::grants::password::{check_request, decide, Fresh};
use crate::oauth::grants::Issue;
use crate::oauth::model::GrantType;
use crate::oauth::token_request::PasswordRequest;
use crate::secret::{new_id, PlainToken};
use crate::state::AppState;
use crate::store::users::User;

use super::{apply_writes, finish, transaction, with_client, Ctx, EndpointError, Hop};

pub(super) async fn grant(
    state: &AppState,
    ctx: Ctx,
    creds: ClientCredentials,
    request: PasswordRequest,
) -> Result<Hop<Issue>, EndpointError> {
    let username = request.username.clone();
    let found = state
        .db(move |conn| {
            with_client(conn, &creds, GrantType::Password, |conn, client| {
                let target = match check_request(client, &request) {
                    Ok(t) => t,
                    Err(e) => return Ok(Err(e)),
                };
                let user = User::find_by_username(conn, &username)?;
                Ok(Ok((target, user, request)))
            })
        })
        .await?;
    let (client, (target, user, request)) = match found {
        Ok((client, Ok(found))) => (client, found),
        Ok((client, Err(e))) => return Ok(Ok((client, Err(e)))),
        Err(e) => return Ok(Err(e)),
    };
    // Lockout (checklist 49): charged before the password is checked, always as an unknown
    // device; a locked attempt checks the dummy hash instead (same cost, same answer).
    let attempt = match &user {
        Some(u) => {
            Some(lockout::begin(state, &u.id, Factor::Password, &Device::Unknown, ctx.now).await?)
        }
        None => None,
    };
    let locked = attempt.as_ref().is_some_and(Attempt::is_locked);
    let stored = user
        .as_ref()
        .filter(|_| !locked)
        .map(|u| u.password_hash.clone());
    let password_ok = match state.passwords.verify(request.password, stored).await {
        Ok(ok) => ok,
        Err(e) => {
            lockout::settle_unchecked(state, attempt).await?;
            return Err(e.into());
        }
    };
    let account = user.as_ref().map(User::account);
    let plan = decide(
        target,
        account.as_ref(),
        password_ok,
        &client,
        &ctx.lifetimes,
        Fresh {
            grant_id: new_id("gr").into(),
            refresh: PlainToken::generate(),
        },
        ctx.now,
    );
    if plan.writes.is_empty() {
        tracing::info!(client_id = %client.id, "password grant: wrong credentials");
        // A refused password check is a failed sign-in; the user is named only when it exists.
        let mut entry = Entry::new(
            AuditEvent::SignIn,
            Outcome::Failure,
            Actor::Client(client.id.to_string()),
            ctx.now,
        )
        .client(client.id.to_string())
        .address(ctx.address.clone())
        .detail("password grant");
        entry.user_id = account.as_ref().map(|a| a.id.to_string());
        lockout::settle_failure(state, attempt, ctx.now, entry).await?;
        return Ok(Ok((client, plan.into_result())));
    }
    if let Some(Attempt::Open(ticket)) = attempt {
        lockout::succeeded(state, ticket).await?;
    }
    let c = client.clone();
    let result = state
        .db(move |conn| {
            transaction(conn, |conn| {
                apply_writes(conn, &plan.writes, ctx.now)?;
                finish(conn, &ctx, GrantType::Password, plan, &c, "")
            })
        })
        .await?;
    Ok(Ok((client, result)))
}
