//! The whole PKCE login, end to end.

use crate::both_backends;
use crate::helpers::*;

both_backends!(pkce_login_end_to_end, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &["admin"]);
    let tokens = app.tokens_for(&client, "alice").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 43);
    let (header, claims) = jwt_parts(tokens["access_token"].as_str().unwrap());
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["client_id"], client.id);
});
