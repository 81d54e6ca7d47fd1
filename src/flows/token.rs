//! The token endpoint's service: one client-authentication path, then one function per grant.

use crate::keys::Signer;
use crate::oauth::code_grant::{self, CodeDecision};
use crate::oauth::params::Params;
use crate::oauth::refresh_grant::{self, RefreshDecision};
use crate::oauth::token::{authenticate, client_credentials, TokenRequest};
use crate::oauth::OAuthError;
use crate::secret::{PlainToken, TokenHash};
use crate::state::{now, AppState};
use crate::store::clients::Client;
use crate::store::codes::{AuthCode, Grant, UserState};
use crate::store::refresh::RefreshToken;
use crate::store::{write_tx, AnyConnection};
use crate::tokens::{self, AccessGrant};

use super::{Answer, EndpointError};

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// Everything a grant needs, moved into the blocking pool.
struct Ctx {
    issuer: String,
    access_ttl: i64,
    refresh_ttl: i64,
    refresh_idle: i64,
    now: i64,
    keys: std::sync::Arc<crate::keys::KeySet>,
}

impl Ctx {
    fn signer(&self) -> Result<&Signer, EndpointError> {
        self.keys.signer().ok_or_else(|| {
            EndpointError::Internal(anyhow::anyhow!("no signing key is active").into())
        })
    }
}

#[tracing::instrument(skip_all, fields(grant_type))]
pub async fn token(
    state: &AppState,
    params: Params,
    authorization: Option<String>,
) -> Answer<TokenResponse> {
    let creds = match client_credentials(authorization.as_deref(), &params) {
        Ok(c) => c,
        Err(e) => return Answer::anonymous(e),
    };
    let request = match TokenRequest::from_params(&params) {
        Ok(r) => r,
        Err(e) => return Answer::anonymous(e),
    };
    tracing::Span::current().record("grant_type", request.grant_type());
    let ctx = Ctx {
        issuer: state.issuer().to_owned(),
        access_ttl: state.settings.tokens.access_token_ttl_secs,
        refresh_ttl: state.settings.tokens.refresh_token_ttl_secs,
        refresh_idle: state.settings.tokens.refresh_token_idle_secs,
        now: now(),
        keys: state.keys.current(),
    };
    state
        .db(move |conn| {
            let client = match authenticate(Client::find(conn, &creds.client_id)?, &creds) {
                Ok(c) => c,
                Err(e) => return Ok(Answer::anonymous(e)),
            };
            if !client.allows_grant(request.grant_type()) {
                let e = OAuthError::unauthorized_client("this client may not use this grant type");
                return Ok(Answer::of(&client, Err(e.into())));
            }
            let result = match request {
                TokenRequest::AuthorizationCode {
                    code,
                    redirect_uri,
                    code_verifier,
                    resource,
                } => exchange_code(
                    conn,
                    &ctx,
                    &client,
                    &code,
                    redirect_uri.as_deref(),
                    code_verifier.as_deref(),
                    resource.as_deref(),
                ),
                TokenRequest::RefreshToken {
                    refresh_token,
                    scope,
                    resource,
                } => refresh(
                    conn,
                    &ctx,
                    &client,
                    &refresh_token,
                    scope.as_deref(),
                    resource.as_deref(),
                ),
            };
            Ok(Answer::of(&client, result))
        })
        .await
        .unwrap_or_else(Answer::failed)
}

/// A rejection that must still commit what it wrote (revocations), kept apart from the errors
/// that roll the transaction back.
type Committed<T> = Result<T, OAuthError>;

fn exchange_code(
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
        let Some((stored, user)) = AuthCode::find(conn, hash.as_str())? else {
            return Ok(Err(OAuthError::invalid_grant("the code is not valid")));
        };
        let decision =
            match code_grant::decide(&stored, client, redirect_uri, code_verifier, ctx.now) {
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
            let family_end = stored.created_at + ctx.refresh_ttl;
            Some(insert_refresh(
                conn,
                ctx,
                &stored.grant_id,
                client,
                Some(&stored.user_id),
                &stored.scope,
                &stored.audience,
                family_end,
            )?)
        } else {
            None
        };
        let response = respond(
            ctx,
            client,
            &stored.user_id,
            &stored.audience,
            &stored.scope,
            &user,
            &stored.grant_id,
            refresh,
        )?;
        Ok::<_, EndpointError>(Ok(response))
    })?;
    Ok(outcome?)
}

fn refresh(
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
            &scope,
            &token.audience,
            stored.grant_expires_at,
        )?;
        let response = respond(
            ctx,
            client,
            &subject,
            &token.audience,
            &scope,
            &user,
            &token.grant_id,
            Some(successor),
        )?;
        Ok::<_, EndpointError>(Ok(response))
    })?;
    Ok(outcome?)
}

#[allow(clippy::too_many_arguments)]
fn insert_refresh(
    conn: &mut AnyConnection,
    ctx: &Ctx,
    grant_id: &str,
    client: &Client,
    user_id: Option<&str>,
    scope: &str,
    audience: &str,
    family_end: i64,
) -> Result<PlainToken, EndpointError> {
    let token = PlainToken::generate();
    RefreshToken {
        token_hash: token.hash().0,
        grant_id: grant_id.to_owned(),
        client_id: client.id.clone(),
        user_id: user_id.map(str::to_owned),
        scope: scope.to_owned(),
        audience: audience.to_owned(),
        created_at: ctx.now,
        expires_at: (ctx.now + ctx.refresh_idle).min(family_end),
        rotated_at: None,
    }
    .insert(conn)?;
    Ok(token)
}

#[allow(clippy::too_many_arguments)]
fn respond(
    ctx: &Ctx,
    client: &Client,
    subject: &str,
    audience: &str,
    scope: &str,
    user: &UserState,
    grant_id: &str,
    refresh: Option<PlainToken>,
) -> Result<TokenResponse, EndpointError> {
    let (jwt, claims) = tokens::mint(
        ctx.signer()?,
        &ctx.issuer,
        &AccessGrant {
            subject,
            client_id: &client.id,
            audience,
            scope,
            roles: &user.roles,
            grant_id: Some(grant_id),
        },
        ctx.now,
        ctx.access_ttl,
    )
    .map_err(|e| EndpointError::Internal(anyhow::anyhow!("signing an access token: {e}").into()))?;
    tracing::info!(client_id = %client.id, jti = %claims.jti, "access token issued");
    Ok(TokenResponse {
        access_token: jwt,
        token_type: "Bearer",
        expires_in: ctx.access_ttl,
        refresh_token: refresh.map(|t| t.expose().to_owned()),
        scope: scope.to_owned(),
    })
}
