//! Token introspection (RFC 7662) for authenticated confidential clients. A caller sees a token
//! active only if it was issued to it, or (access tokens) names one of its audiences; anything
//! else, like an unknown, expired or revoked token, is exactly `{"active": false}`.

use serde::Serialize;

use crate::oauth::params::Params;
use crate::oauth::token::{authenticate, client_credentials};
use crate::oauth::OAuthError;
use crate::secret::TokenHash;
use crate::state::{now, AppState};
use crate::store::clients::Client;
use crate::store::codes::Grant;
use crate::store::refresh::RefreshToken;
use crate::tokens;

use super::EndpointError;

/// An introspection answer: `{"active":false}` or the token's claims.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Introspection {
    Inactive { active: bool },
    Active(ActiveToken),
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ActiveToken {
    pub active: bool,
    pub scope: String,
    pub client_id: String,
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub aud: String,
    pub iss: String,
    pub token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

const INACTIVE: Introspection = Introspection::Inactive { active: false };

#[tracing::instrument(skip_all)]
pub async fn introspect(
    state: &AppState,
    params: Params,
    authorization: Option<String>,
) -> Result<Introspection, EndpointError> {
    let creds = client_credentials(authorization.as_deref(), &params)?;
    let token = params.require("token")?.to_owned();
    let now = now();
    let keys = state.keys.current();
    let issuer = state.issuer().to_owned();
    state
        .db(move |conn| {
            let client = authenticate(Client::find(conn, &creds.client_id)?, &creds)?;
            if !client.is_confidential() {
                return Err(OAuthError::invalid_client().into());
            }
            if let Some(rt) = RefreshToken::find(conn, TokenHash::of(&token).as_str())? {
                let t = &rt.token;
                let live = t.rotated_at.is_none()
                    && rt.grant_revoked_at.is_none()
                    && t.expires_at > now
                    && rt.grant_expires_at > now
                    && t.client_id == client.id;
                if !live {
                    return Ok(INACTIVE);
                }
                return Ok(Introspection::Active(ActiveToken {
                    active: true,
                    scope: t.scope.clone(),
                    client_id: t.client_id.clone(),
                    sub: t.user_id.clone().unwrap_or_else(|| t.client_id.clone()),
                    exp: t.expires_at,
                    iat: t.created_at,
                    aud: t.audience.clone(),
                    iss: issuer,
                    token_type: "refresh_token",
                    jti: None,
                }));
            }
            let Some(claims) = tokens::verify_own(&keys, &issuer, &token, now) else {
                return Ok(INACTIVE);
            };
            if claims.client_id != client.id && !client.audiences.contains(&claims.aud) {
                return Ok(INACTIVE);
            }
            if let Some(sid) = &claims.sid {
                // Unknown grant (deleted with its client) or revoked: inactive.
                match Grant::revoked_at(conn, sid)? {
                    Some(None) => {}
                    _ => return Ok(INACTIVE),
                }
            }
            Ok(Introspection::Active(ActiveToken {
                active: true,
                scope: claims.scope,
                client_id: claims.client_id,
                sub: claims.sub,
                exp: claims.exp,
                iat: claims.iat,
                aud: claims.aud,
                iss: claims.iss,
                token_type: "Bearer",
                jti: Some(claims.jti),
            }))
        })
        .await
}
