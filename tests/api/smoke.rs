//! The whole PKCE login, end to end.

use crate::both_backends;
use crate::helpers::*;

both_backends!(pkce_login_end_to_end);
async fn pkce_login_end_to_end(app: TestApp) {
    let (client, tokens) = app.signed_in("alice", &["admin"]).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(s(&tokens, "refresh_token").len() >= 43);
    let (header, claims) = jwt_parts(&s(&tokens, "access_token"));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["client_id"], client.id);
}
