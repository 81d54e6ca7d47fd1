//! Token revocation (RFC 7009). Revoking a refresh token revokes its whole grant (family), and so
//! its access tokens; revoking an access token revokes its grant too (§2.1 allows it). Unknown
//! tokens and other clients' tokens get the same 200 and are left alone (§2.2).

use std::net::IpAddr;

use crate::audit::{Actor, AuditEvent, Entry, Outcome};
use crate::oauth::client_auth;
use crate::oauth::params::Params;
use crate::secret::TokenHash;
use crate::state::AppState;
use crate::store::{grants, refresh, write_tx};
use crate::tokens;

use super::client_auth::authenticate_client;
use super::{Answer, EndpointError};

/// A grant revoked is written to the audit log in the revoking transaction (client address
/// anonymised); an unknown or foreign token writes nothing, as it changes nothing.
#[tracing::instrument(skip_all)]
pub async fn revoke(
    state: &AppState,
    params: Params,
    authorization: Option<String>,
    ip: Option<IpAddr>,
) -> Answer<()> {
    let creds = match client_auth::credentials(authorization.as_deref(), &params) {
        Ok(c) => c,
        Err(e) => return Answer::anonymous(e),
    };
    let token = match params.require("token") {
        Ok(t) => t.to_owned(),
        Err(e) => return Answer::anonymous(e),
    };
    let now = state.clock.now();
    let keys = state.keys.current();
    let issuer = state.issuer().to_owned();
    let address = state.anonymise(ip);
    state
        .db(move |conn| {
            let client = match authenticate_client(conn, &creds, now)? {
                Ok(c) => c,
                Err(e) => return Ok(Answer::anonymous(e)),
            };
            let hash = TokenHash::of(&token);
            // The grant to revoke, its user, and what was presented (for the audit log).
            let found = match refresh::find(conn, hash.as_str())? {
                Some(rt) => (rt.client_id == client.id).then(|| {
                    let user = rt.user_id.map(|u| u.to_string());
                    let what = format!("refresh token {}", hash.log_prefix());
                    (rt.grant_id.to_string(), user, what)
                }),
                None => tokens::verify_own(&keys, &issuer, &token, now)
                    .filter(|c| client.id == c.client_id.as_str())
                    .and_then(|c| {
                        // A client_credentials token's subject is the client itself.
                        let user = (c.sub != c.client_id).then(|| c.sub.clone());
                        let what = format!("access token jti={}", c.jti);
                        c.sid.map(|grant| (grant, user, what))
                    }),
            };
            if let Some((grant_id, user, what)) = found {
                let mut entry = Entry::new(
                    AuditEvent::TokenRevoked,
                    Outcome::Success,
                    Actor::Client(client.id.to_string()),
                    now,
                )
                .client(client.id.to_string())
                .address(address)
                .detail(format!("{what}: grant {grant_id} revoked"));
                entry.user_id = user;
                write_tx(conn, |conn| {
                    grants::revoke(conn, &grant_id, now)?;
                    crate::store::audit::record(conn, &entry)
                })?;
                tracing::info!(client_id = %client.id, grant = %grant_id, "grant revoked");
            }
            Ok::<_, EndpointError>(Answer::of(&client, Ok(())))
        })
        .await
        .unwrap_or_else(Answer::failed)
        .noted()
}
