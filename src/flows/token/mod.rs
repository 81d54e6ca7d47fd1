//! The token endpoint's service (RFC 6749 §3.2): one client-authentication path, then one
//! module per grant type, all issuing through [`respond`].

mod authorization_code;
mod client_credentials;
mod password;
mod refresh_token;

use crate::keys::Signer;
use crate::oauth::params::Params;
use crate::oauth::token::{authenticate, client_credentials, TokenRequest};
use crate::oauth::OAuthError;
use crate::secret::PlainToken;
use crate::state::{now, AppState};
use crate::store::clients::Client;
use crate::store::refresh::RefreshToken;
use crate::store::AnyConnection;
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

/// Everything a grant needs, read once per request (the clock included).
struct Ctx {
    issuer: String,
    access_ttl: i64,
    refresh_ttl: i64,
    refresh_idle: i64,
    /// Seconds during which a just-rotated refresh token may be presented again (0 = off).
    retry_window: i64,
    /// Derives a refresh token's successor from it (HMAC), so a retry gets the same one back.
    successor_key: [u8; 32],
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

/// A rejection that must still commit what it wrote (revocations), kept apart from the errors
/// that roll the transaction back.
type Committed<T> = Result<T, OAuthError>;

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
        retry_window: state.settings.tokens.refresh_retry_window_secs,
        successor_key: state.refresh_successor_key,
        now: now(),
        keys: state.keys.current(),
    };
    let id = creds.client_id.clone();
    let client = match state
        .db(move |conn| Ok::<_, EndpointError>(authenticate(Client::find(conn, &id)?, &creds)))
        .await
    {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return Answer::anonymous(e),
        Err(e) => return Answer::failed(e),
    };
    if !client.allows_grant(request.grant_type()) {
        let e = OAuthError::unauthorized_client("this client may not use this grant type");
        return Answer::of(&client, Err(e.into()));
    }
    let result = match request {
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
            resource,
        } => {
            let c = client.clone();
            state
                .db(move |conn| {
                    authorization_code::exchange(
                        conn,
                        &ctx,
                        &c,
                        &code,
                        redirect_uri.as_deref(),
                        code_verifier.as_deref(),
                        resource.as_deref(),
                    )
                })
                .await
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
            resource,
        } => {
            let c = client.clone();
            state
                .db(move |conn| {
                    refresh_token::refresh(
                        conn,
                        &ctx,
                        &c,
                        &refresh_token,
                        scope.as_deref(),
                        resource.as_deref(),
                    )
                })
                .await
        }
        TokenRequest::Password {
            username,
            password,
            scope,
            resource,
        } => {
            password::grant(
                state,
                ctx,
                &client,
                username,
                password,
                scope.as_deref(),
                resource.as_deref(),
            )
            .await
        }
        TokenRequest::ClientCredentials { scope, resource } => {
            client_credentials::grant(&ctx, &client, scope.as_deref(), resource.as_deref())
        }
    };
    Answer::of(&client, result)
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
    token: PlainToken,
) -> Result<PlainToken, EndpointError> {
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

/// What an access token is issued for, and the refresh token going with it.
struct Issue<'a> {
    subject: &'a str,
    audience: &'a str,
    scope: &'a str,
    roles: &'a [String],
    grant_id: Option<&'a str>,
    refresh: Option<PlainToken>,
}

/// Signs the access token and builds the response.
fn respond(ctx: &Ctx, client: &Client, issue: Issue<'_>) -> Result<TokenResponse, EndpointError> {
    let (jwt, claims) = tokens::mint(
        ctx.signer()?,
        &ctx.issuer,
        &AccessGrant {
            subject: issue.subject,
            client_id: &client.id,
            audience: issue.audience,
            scope: issue.scope,
            roles: issue.roles,
            grant_id: issue.grant_id,
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
        refresh_token: issue.refresh.map(|t| t.expose().to_owned()),
        scope: issue.scope.to_owned(),
    })
}
