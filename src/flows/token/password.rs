//! The resource owner password grant (RFC 6749 §4.3), for first-party confidential clients
//! registered with it (RFC 9700 §2.4 discourages it elsewhere). An unknown user, a disabled one
//! and a wrong password give the same `invalid_grant` after the same argon2 work (checklist 50).

use crate::oauth::{authorize, scope, OAuthError};
use crate::secret::{new_id, PlainToken};
use crate::state::AppState;
use crate::store::clients::Client;
use crate::store::codes::Grant;
use crate::store::users::User;
use crate::store::write_tx;

use super::{insert_refresh, respond, Ctx, EndpointError, Issue, TokenResponse};

pub(super) async fn grant(
    state: &AppState,
    ctx: Ctx,
    client: &Client,
    username: String,
    password: String,
    requested_scope: Option<&str>,
    resource: Option<&str>,
) -> Result<TokenResponse, EndpointError> {
    let scope = scope::to_string(&scope::negotiate(requested_scope, &client.scopes)?);
    let audience = authorize::select_audience(resource, client)?;
    let user = state
        .db(move |conn| Ok::<_, EndpointError>(User::find_by_username(conn, &username)?))
        .await?
        .filter(User::is_active);
    let ok = state
        .passwords
        .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
        .await?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(client_id = %client.id, "password grant: wrong credentials");
        return Err(OAuthError::invalid_grant("invalid username or password").into());
    };
    let client = client.clone();
    state
        .db(move |conn| {
            write_tx(conn, |conn| {
                let grant = Grant {
                    id: new_id("gr"),
                    client_id: client.id.clone(),
                    user_id: Some(user.id.clone()),
                    session_hash: None,
                    created_at: ctx.now,
                    expires_at: ctx.now + ctx.refresh_ttl,
                    revoked_at: None,
                };
                grant.insert(conn)?;
                let refresh = if client.allows_grant("refresh_token") {
                    Some(insert_refresh(
                        conn,
                        &ctx,
                        &grant.id,
                        &client,
                        Some(&user.id),
                        &scope,
                        &audience,
                        grant.expires_at,
                        PlainToken::generate(),
                    )?)
                } else {
                    None
                };
                respond(
                    &ctx,
                    &client,
                    Issue {
                        subject: &user.id,
                        audience: &audience,
                        scope: &scope,
                        roles: &user.roles,
                        grant_id: Some(&grant.id),
                        refresh,
                    },
                )
            })
        })
        .await
}
