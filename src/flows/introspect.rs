//! Token introspection (RFC 7662) for authenticated confidential clients. A caller sees a token
//! active only if it was issued to it, or (access tokens) names one of its audiences; anything
//! else, like an unknown, expired or revoked token, is exactly `{"active": false}`.

use serde::Serialize;

use crate::oauth::client_auth;
use crate::oauth::grants::refresh_token::{liveness, Liveness};
use crate::oauth::params::Params;
use crate::oauth::OAuthError;
use crate::secret::TokenHash;
use crate::state::AppState;
use crate::store::{grants, refresh};
use crate::tokens;

use super::client_auth::authenticate_client;
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
    let creds = client_auth::credentials(authorization.as_deref(), &params)?;
    let token = params.require("token")?.to_owned();
    let now = state.clock.now();
    let keys = state.keys.current();
    let issuer = state.issuer().to_owned();
    state
        .db(move |conn| {
            let client = authenticate_client(conn, &creds, now)??;
            let client_id = client.id.to_string();
            let answer = || -> Result<Introspection, EndpointError> {
                if !client.is_confidential() {
                    return Err(OAuthError::invalid_client().into());
                }
                if let Some(t) = refresh::find(conn, TokenHash::of(&token).as_str())? {
                    if liveness(&t, now) != Liveness::Live || t.client_id != client.id {
                        return Ok(INACTIVE);
                    }
                    return Ok(Introspection::Active(ActiveToken {
                        active: true,
                        scope: t.scope,
                        sub: t
                            .user_id
                            .map_or_else(|| t.client_id.to_string(), |u| u.to_string()),
                        client_id: t.client_id.to_string(),
                        exp: t.expires_at,
                        iat: t.created_at,
                        aud: t.audience,
                        iss: issuer,
                        token_type: "refresh_token",
                        jti: None,
                    }));
                }
                let Some(claims) = tokens::verify_own(&keys, &issuer, &token, now) else {
                    return Ok(INACTIVE);
                };
                if client.id != claims.client_id.as_str() && !client.audiences.contains(&claims.aud)
                {
                    return Ok(INACTIVE);
                }
                // Unknown grant (deleted with its client) or revoked: inactive.
                if let Some(sid) = &claims.sid {
                    if !grants::is_live(conn, sid)? {
                        return Ok(INACTIVE);
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
            };
            Ok((client_id, answer()?))
        })
        .await
        .map(|(client_id, answer)| {
            // For the request's access-log line (on the request's task, not in the pool).
            crate::logging::note_client(&client_id);
            answer
        })
}
