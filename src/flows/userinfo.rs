//! The userinfo endpoint's service (OpenID Connect Core §5.3): the bearer access token checked
//! by the profile introspection uses (`tokens::verify_own`: our keys, `typ` at+jwt, our issuer,
//! unexpired), then one database hop reads its grant, user and client, and the core
//! (`oauth::userinfo::decide`) answers the claims its scope releases, or why not.

use crate::oauth::userinfo::{self, UserInfo};
use crate::state::AppState;
use crate::store::grants;
use crate::tokens;

use super::{Answer, EndpointError};

/// Answers `GET`/`POST /userinfo` for the presented access `token`, with the CORS origins of the
/// client the token was issued to: none when the token did not verify, or its grant is gone.
#[tracing::instrument(skip_all)]
pub async fn userinfo(state: &AppState, token: String) -> Answer<UserInfo> {
    let now = state.clock.now();
    let Some(claims) = tokens::verify_own(&state.keys.current(), state.issuer(), &token, now)
    else {
        return Answer::anonymous(userinfo::not_valid());
    };
    // Tokens issued to a user name their grant; client_credentials tokens name none.
    let Some(grant_id) = claims.sid.clone() else {
        return Answer::anonymous(userinfo::not_valid());
    };
    let read = state
        .db(move |conn| grants::holder(conn, &grant_id).map_err(EndpointError::from))
        .await;
    let found = match read {
        Ok(found) => found,
        Err(e) => return Answer::failed(e),
    };
    let (holder, allowed_origins) = found.map_or((None, Vec::new()), |(h, o)| (Some(h), o));
    let result = userinfo::decide(&claims, holder.as_ref()).map_err(|e| {
        tracing::info!(
            jti = %claims.jti,
            client_id = %claims.client_id,
            error = e.code.as_str(),
            "userinfo refused"
        );
        EndpointError::from(e)
    });
    // The token was ours, issued to this client: its origins may read the answer, whatever it is.
    Answer {
        allowed_origins,
        result,
        client_id: Some(claims.client_id),
    }
    .noted()
}
