//! The userinfo endpoint's rules (OpenID Connect Core §5.3): how the access token is presented
//! (RFC 6750 §2), and what a request with it is answered (RFC 6750 §3). Plain functions.
//!
//! Only Gatehouse's own access tokens are accepted, with the profile introspection checks
//! (`tokens::verify_own`); an ID token (`typ` JWT) is not an access token and is refused there
//! (checklist 62). The token's audience is not required to name the userinfo endpoint: an access
//! token is issued for one resource server, and OpenID Connect lets the same token read userinfo,
//! so what decides is the scope `openid`, the grant and the user.

use serde::Serialize;

use super::errors::{ErrorCode, OAuthError};
use super::model::{Account, ClientId, GrantState};
use super::oidc::{self, ProfileClaims};
use super::params::Params;
use crate::jwt_profile::AccessClaims;

/// The parameter of RFC 6750 §2.2 (form body) and §2.3 (query, never accepted here).
pub const ACCESS_TOKEN_PARAM: &str = "access_token";

/// How a request presented its access token (RFC 6750 §2): `Ok(None)` when it carries none.
/// `authorization` is the `Authorization` header; `form` the form-encoded body of a POST;
/// `in_query` whether the URL has an `access_token` parameter. A token in the URL is refused
/// (checklist 40), and so is one sent two ways at once.
pub fn presented_token(
    authorization: Option<&str>,
    form: Option<&Params>,
    in_query: bool,
) -> Result<Option<String>, OAuthError> {
    if in_query {
        return Err(OAuthError::invalid_request(
            "an access token is never accepted in the URL: send it in the Authorization header",
        ));
    }
    // The scheme's name is case-insensitive (RFC 9110 §11.1); other schemes carry no bearer token.
    let header = authorization.and_then(|value| {
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    });
    let body = form
        .and_then(|f| f.get(ACCESS_TOKEN_PARAM))
        .map(str::to_owned);
    match (header, body) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "the access token was sent two ways: use the Authorization header or the form, not both",
        )),
        (Some(token), None) if token.is_empty() => Err(OAuthError::invalid_request(
            "the Authorization header names the Bearer scheme but carries no token",
        )),
        (Some(token), None) | (None, Some(token)) => Ok(Some(token)),
        (None, None) => Ok(None),
    }
}

/// What the service read about a verified access token: the grant it names, with its client
/// and the user it was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub client_id: ClientId,
    pub grant: GrantState,
    pub user: Account,
}

/// The userinfo response: `sub` and the claims the token's scope releases (OIDC Core §5.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(flatten)]
    pub claims: ProfileClaims,
}

/// `invalid_token`, saying no more than that (checklist 60): not whether the token expired, was
/// revoked, or its user was disabled.
pub fn not_valid() -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, "the access token is not valid")
}

/// `insufficient_scope`: a valid token issued without `openid`.
pub fn needs_openid() -> OAuthError {
    OAuthError::new(
        ErrorCode::InsufficientScope,
        "the access token was not issued with scope openid",
    )
}

/// Answers a request with the verified access token `claims`, its grant's `holder` as read
/// (none when the token names no grant, or the grant or its user is gone): the user's claims
/// when the grant is live, issued to this user and client, the user active and the scope
/// `openid`; else `invalid_token`, or `insufficient_scope` for a valid token without `openid`.
pub fn decide(claims: &AccessClaims, holder: Option<&Holder>) -> Result<UserInfo, OAuthError> {
    let Some(holder) = holder else {
        return Err(not_valid());
    };
    let issued_to_them =
        holder.user.id.as_str() == claims.sub && holder.client_id.as_str() == claims.client_id;
    if holder.grant.is_revoked() || !issued_to_them || !holder.user.active {
        return Err(not_valid());
    }
    if !oidc::is_openid(&claims.scope) {
        return Err(needs_openid());
    }
    Ok(UserInfo {
        sub: claims.sub.clone(),
        claims: oidc::profile_claims(&claims.scope, &holder.user),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::model::Profile;

    fn params(body: &str) -> Params {
        Params::parse(body.as_bytes()).unwrap()
    }

    fn claims(scope: &str) -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example".into(),
            sub: "usr_1".into(),
            aud: "https://api.example".into(),
            client_id: "cl_1".into(),
            iat: 0,
            exp: 900,
            nbf: None,
            jti: "at_1".into(),
            scope: scope.into(),
            roles: vec![],
            sid: Some("gr_1".into()),
            amr: vec![],
        }
    }

    fn holder() -> Holder {
        Holder {
            client_id: "cl_1".into(),
            grant: GrantState {
                expires_at: 10_000,
                revoked_at: None,
                amr: vec!["pwd".into()],
                auth_time: Some(0),
                nonce: None,
                session_hash: None,
            },
            user: Account {
                id: "usr_1".into(),
                roles: vec![],
                active: true,
                username: "alice".into(),
                profile: Profile {
                    name: Some("Alice Liddell".into()),
                    email: Some("alice@example.com".into()),
                    email_verified: false,
                },
            },
        }
    }

    #[test]
    fn bearer_token_from_header_or_form_never_both_never_the_url() {
        let form = params("access_token=t-form");
        assert_eq!(
            presented_token(Some("Bearer t-1"), None, false).unwrap(),
            Some("t-1".into())
        );
        assert_eq!(
            presented_token(Some("bearer t-1"), None, false).unwrap(),
            Some("t-1".into())
        );
        assert_eq!(
            presented_token(None, Some(&form), false).unwrap(),
            Some("t-form".into())
        );
        assert_eq!(presented_token(None, None, false).unwrap(), None);
        assert_eq!(
            presented_token(Some("Basic YTpi"), None, false).unwrap(),
            None
        );
        for (header, form, in_query) in [
            (Some("Bearer t-1"), Some(&form), false),
            (Some("Bearer t-1"), None, true),
            (None, None, true),
            (Some("Bearer "), None, false),
            (Some("Bearer"), None, false),
        ] {
            let e = presented_token(header, form, in_query).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{header:?} {in_query}");
        }
    }

    #[test]
    fn userinfo_releases_claims_by_scope() {
        let h = holder();
        let only = decide(&claims("openid"), Some(&h)).unwrap();
        assert_eq!(only.sub, "usr_1");
        assert_eq!(only.claims, ProfileClaims::default());
        let all = decide(&claims("email openid profile"), Some(&h)).unwrap();
        let json = serde_json::to_value(&all).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "sub": "usr_1",
                "name": "Alice Liddell",
                "preferred_username": "alice",
                "email": "alice@example.com",
                "email_verified": false,
            })
        );
    }

    #[test]
    fn userinfo_accepts_only_access_tokens_with_openid() {
        let e = decide(&claims("api:read profile"), Some(&holder())).unwrap_err();
        assert_eq!(e.code, ErrorCode::InsufficientScope);
    }

    #[test]
    fn revoked_grant_disabled_or_deleted_user_is_invalid_token_and_says_no_more() {
        let revoked = Holder {
            grant: GrantState {
                revoked_at: Some(5),
                ..holder().grant
            },
            ..holder()
        };
        let mut disabled = holder();
        disabled.user.active = false;
        let mut other_user = holder();
        other_user.user.id = "usr_2".into();
        let mut other_client = holder();
        other_client.client_id = "cl_2".into();
        for (what, h) in [
            ("revoked", Some(&revoked)),
            ("disabled", Some(&disabled)),
            ("another user", Some(&other_user)),
            ("another client", Some(&other_client)),
            ("gone", None),
        ] {
            // Even without openid: an invalid token is never told about its scope.
            for scope in ["openid", "api:read"] {
                let e = decide(&claims(scope), h).unwrap_err();
                assert_eq!(e, not_valid(), "{what} {scope}");
            }
        }
    }
}
