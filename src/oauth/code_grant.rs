//! The authorization code grant's decision (RFC 6749 §4.1.3, RFC 7636 §4.6): is this stored code
//! redeemable by this client with this request? Pure: the code row and `now` are passed in.

use super::errors::OAuthError;
use super::pkce;
use crate::store::clients::Client;
use crate::store::codes::AuthCode;

/// What the service must do with a presented code.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeDecision {
    /// Redeem it: consume, then issue tokens.
    Redeem,
    /// It was used before: revoke what it issued, answer `invalid_grant` (RFC 6749 §4.1.2).
    Replay,
}

/// `grant_revoked`: the grant the code starts was revoked (password change, disabled user,
/// logout) before the code was redeemed.
pub fn decide(
    code: &AuthCode,
    grant_revoked: bool,
    client: &Client,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    now: i64,
) -> Result<CodeDecision, OAuthError> {
    if code.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if code.consumed_at.is_some() {
        return Ok(CodeDecision::Replay);
    }
    if grant_revoked {
        return Err(OAuthError::invalid_grant("the authorization was revoked"));
    }
    if code.expires_at <= now {
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    if redirect_uri != Some(code.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri must repeat the authorization request's value exactly",
        ));
    }
    pkce::verify(code_verifier, &code.code_challenge)?;
    Ok(CodeDecision::Redeem)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const NOW: i64 = 1_800_000_000;

    fn client(id: &str) -> Client {
        Client {
            id: id.into(),
            name: "SPA".into(),
            secret_hash: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec!["authorization_code".into()],
            scopes: vec![],
            audiences: vec![],
            allowed_origins: vec![],
            created_at: 0,
        }
    }

    fn code() -> AuthCode {
        AuthCode {
            code_hash: "h".into(),
            grant_id: "g".into(),
            client_id: "cl_a".into(),
            user_id: "usr_1".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: "api:read".into(),
            audience: "https://api.example".into(),
            code_challenge: CHALLENGE.into(),
            created_at: NOW - 10,
            expires_at: NOW + 50,
            consumed_at: None,
        }
    }

    fn run(
        c: &AuthCode,
        client_id: &str,
        uri: Option<&str>,
        v: Option<&str>,
        now: i64,
    ) -> Result<CodeDecision, OAuthError> {
        decide(c, false, &client(client_id), uri, v, now)
    }

    const URI: Option<&str> = Some("https://app.example/cb");

    #[test]
    fn valid_code_is_redeemed() {
        assert_eq!(
            run(&code(), "cl_a", URI, Some(VERIFIER), NOW),
            Ok(CodeDecision::Redeem)
        );
    }

    #[test]
    fn code_bound_to_client_and_redirect_uri() {
        assert!(run(&code(), "cl_b", URI, Some(VERIFIER), NOW).is_err());
        assert!(run(
            &code(),
            "cl_a",
            Some("https://app.example/cb/"),
            Some(VERIFIER),
            NOW
        )
        .is_err());
        assert!(run(&code(), "cl_a", None, Some(VERIFIER), NOW).is_err());
    }

    #[test]
    fn expired_code_is_invalid_grant() {
        let err = run(&code(), "cl_a", URI, Some(VERIFIER), NOW + 50).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_grant");
    }

    #[test]
    fn used_code_is_a_replay() {
        let used = AuthCode {
            consumed_at: Some(NOW - 1),
            ..code()
        };
        assert_eq!(
            run(&used, "cl_a", URI, Some(VERIFIER), NOW),
            Ok(CodeDecision::Replay)
        );
    }

    #[test]
    fn code_of_a_revoked_grant_is_invalid_grant() {
        let err = decide(&code(), true, &client("cl_a"), URI, Some(VERIFIER), NOW).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_grant");
    }

    #[test]
    fn wrong_verifier_is_invalid_grant() {
        let err = run(&code(), "cl_a", URI, Some(&"a".repeat(43)), NOW).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_grant");
    }
}
