//! The password grant's service (RFC 6749 §4.3): one pool hop reads the client, the user and the
//! user's TOTP factor, argon2 checks the password (the same work for an unknown user, checklist
//! 50), and a second hop applies `oauth::grants::password`'s plan. A user with a second factor
//! needs `otp` or `recovery_code` too (checklist 28); its compare-and-swap is the plan's first
//! write, in the grant's transaction.
//!
//! Each attempt on a real user counts against the lockout of the user's unknown devices
//! (`flows::lockout`, checklist 49): the password and the second factor each have their count.

use crate::audit::{Actor, AuditEvent, Entry, Outcome};
use crate::flows::lockout::{self, Attempt, Device, Factor};
use crate::flows::mfa::{self, Presented, Refusal};
use crate::oauth::client_auth::ClientCredentials;
use crate::oauth::grants::password::{check_request, decide, Fresh, SecondFactor};
use crate::oauth::grants::Issue;
use crate::oauth::model::{Client, GrantType};
use crate::oauth::token_request::PasswordRequest;
use crate::secret::{new_ordered_id, PlainToken};
use crate::state::AppState;
use crate::store::mfa::TotpFactor;
use crate::store::users::User;

use super::{apply_writes, finish, transaction, with_client, Applied, Ctx, EndpointError, Hop};

pub(super) async fn grant(
    state: &AppState,
    ctx: Ctx,
    creds: ClientCredentials,
    request: PasswordRequest,
) -> Result<Hop<Issue>, EndpointError> {
    let username = request.username.clone();
    let now = ctx.now;
    let found = state
        .db(move |conn| {
            with_client(
                conn,
                &creds,
                None,
                now,
                GrantType::Password,
                |conn, client| {
                    let target = match check_request(client, &request) {
                        Ok(t) => t,
                        Err(e) => return Ok(Err(e)),
                    };
                    let user = User::find_by_username(conn, &username)?;
                    let factor = match &user {
                        Some(u) => TotpFactor::find(conn, &u.id)?.filter(TotpFactor::is_active),
                        None => None,
                    };
                    Ok(Ok((target, user, factor, request)))
                },
            )
        })
        .await?;
    let (client, (target, user, factor, request)) = match found {
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
    let password_ok = match state
        .passwords
        .verify(request.password.clone(), stored)
        .await
    {
        Ok(ok) => ok,
        Err(e) => {
            lockout::settle_unchecked(state, attempt).await?;
            return Err(e.into());
        }
    };
    let presented = mfa::presented(request.otp.as_deref(), request.recovery_code.as_deref());
    let account = user.as_ref().map(User::account);
    let user_id = account.as_ref().map(|a| a.id.to_string());
    let password_accepted = password_ok && account.as_ref().is_some_and(|a| a.active);
    let (factor_attempt, second) = if password_accepted {
        if let Some(Attempt::Open(ticket)) = attempt {
            lockout::succeeded(state, ticket).await?;
        }
        // The second factor has its own count, charged when one is presented to an enrolled user.
        let factor_attempt = match (&user_id, &factor, &presented) {
            (Some(id), Some(_), Ok(Some(_)) | Err(_)) => Some(
                lockout::begin(state, id, Factor::SecondFactor, &Device::Unknown, ctx.now).await?,
            ),
            _ => None,
        };
        let second = if factor_attempt.as_ref().is_some_and(Attempt::is_locked) {
            SecondFactor::Wrong
        } else {
            second_factor(state, &client, factor.as_ref(), &presented, ctx.now)?
        };
        (factor_attempt, second)
    } else {
        tracing::info!(client_id = %client.id, "password grant: wrong credentials");
        // A refused password check is a failed sign-in; the user is named only when it exists.
        let entry = sign_in_failure(&client, &ctx, user_id.clone(), "password grant");
        lockout::settle_failure(state, attempt, ctx.now, entry).await?;
        (None, SecondFactor::NotNeeded)
    };
    let at = crate::state::in_millis(ctx.now);
    let plan = decide(
        target,
        account.as_ref(),
        password_ok,
        second.clone(),
        &client,
        &ctx.lifetimes,
        Fresh {
            grant_id: new_ordered_id("gr", at).into(),
            refresh: PlainToken::generate_ordered(at),
        },
        ctx.now,
    );
    if !password_accepted {
        // Already on record (and counted) above.
        return Ok(Ok((client, plan.into_result())));
    }
    if plan.writes.is_empty() {
        // Refused before writing: a right password whose second factor is missing or wrong.
        let entry = match (&user_id, &second) {
            (Some(id), SecondFactor::Wrong | SecondFactor::Totp { .. }) => {
                tracing::info!(client_id = %client.id, "password grant: second factor refused");
                let refusal = match second {
                    SecondFactor::Totp { .. } => Refusal::Replayed,
                    _ => presented.clone().err().unwrap_or(Refusal::Wrong),
                };
                factor_failure(id, &client, &ctx, &presented, refusal)
            }
            (Some(id), SecondFactor::Missing | SecondFactor::NotEnrolled) => {
                tracing::info!(client_id = %client.id, "password grant: second factor required");
                sign_in_failure(
                    &client,
                    &ctx,
                    Some(id.clone()),
                    "password grant: second factor required",
                )
            }
            _ => sign_in_failure(&client, &ctx, user_id.clone(), "password grant"),
        };
        if factor_attempt.is_some() {
            lockout::settle_failure(state, factor_attempt, ctx.now, entry).await?;
        } else {
            state
                .db(move |conn| {
                    crate::store::audit::record(conn, &entry).map_err(EndpointError::from)
                })
                .await?;
        }
        return Ok(Ok((client, plan.into_result())));
    }
    let c = client.clone();
    let tx_ctx = ctx.clone();
    let used = user_id.clone().map(|id| {
        let via = presented.clone().ok().flatten();
        (id, via)
    });
    let result = state
        .db(move |conn| {
            let ctx = tx_ctx;
            transaction(conn, |conn| {
                if let Applied::LostRace = apply_writes(conn, &plan.writes, ctx.now)? {
                    // The code or recovery code was used by a concurrent request first.
                    return Err(super::TxEnd::Rollback(
                        crate::oauth::grants::password::second_factor_not_valid(),
                    ));
                }
                if let Some((id, Some(via))) = &used {
                    let entry = mfa::audit_entry(&Ok(Vec::new()), Some(via), id, ctx.now)
                        .client(c.id.to_string())
                        .address(ctx.address());
                    crate::store::audit::record(conn, &entry)?;
                }
                finish(conn, &ctx, GrantType::Password, plan, &c, "")
            })
        })
        .await?;
    match (&result, &user_id) {
        (Err(_), Some(id)) => {
            // The rollback took the grant back; the failed factor is still on record.
            let entry = factor_failure(id, &client, &ctx, &presented, Refusal::Replayed);
            lockout::settle_failure(state, factor_attempt, ctx.now, entry).await?;
        }
        _ => {
            if let Some(Attempt::Open(ticket)) = factor_attempt {
                lockout::succeeded(state, ticket).await?;
            }
        }
    }
    Ok(Ok((client, result)))
}

/// What the core needs to know of the second factor, once the password was right.
fn second_factor(
    state: &AppState,
    client: &Client,
    factor: Option<&TotpFactor>,
    presented: &Result<Option<Presented>, Refusal>,
    now: i64,
) -> Result<SecondFactor, EndpointError> {
    let Some(factor) = factor else {
        let required = crate::mfa::required(
            client.require_mfa,
            state.settings.mfa.required_for_all_clients,
        );
        return Ok(if required {
            SecondFactor::NotEnrolled
        } else {
            SecondFactor::NotNeeded
        });
    };
    Ok(match presented {
        Err(_) => SecondFactor::Wrong,
        Ok(None) => SecondFactor::Missing,
        Ok(Some(Presented::Recovery(code))) => SecondFactor::Recovery {
            code_hash: code.hash().0,
        },
        Ok(Some(Presented::Totp(code))) => {
            let secret = state
                .master
                .open(&factor.secret_jwe)
                .map_err(|e| EndpointError::Internal(e.into()))?;
            match crate::mfa::TotpSecret::from_bytes(secret).matched_step(code, now) {
                Some(step) => SecondFactor::Totp {
                    step,
                    last_step: factor.last_step,
                },
                None => SecondFactor::Wrong,
            }
        }
    })
}

fn sign_in_failure(client: &Client, ctx: &Ctx, user_id: Option<String>, detail: &str) -> Entry {
    let mut entry = Entry::new(
        AuditEvent::SignIn,
        Outcome::Failure,
        Actor::Client(client.id.to_string()),
        ctx.now,
    )
    .client(client.id.to_string())
    .address(ctx.address())
    .detail(detail.to_owned());
    entry.user_id = user_id;
    entry
}

fn factor_failure(
    user_id: &str,
    client: &Client,
    ctx: &Ctx,
    presented: &Result<Option<Presented>, Refusal>,
    refusal: Refusal,
) -> Entry {
    let via = presented.as_ref().ok().and_then(Option::as_ref);
    mfa::audit_entry(&Err(refusal), via, user_id, ctx.now)
        .client(client.id.to_string())
        .address(ctx.address())
}
