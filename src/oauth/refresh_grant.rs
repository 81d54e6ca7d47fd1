//! The refresh token grant's decision (RFC 6749 §6; RFC 9700 §4.14.2): rotation with reuse
//! detection. Pure: the stored token with its grant, and `now`, are passed in.

use super::errors::OAuthError;
use super::scope;
use crate::store::clients::Client;
use crate::store::refresh::RefreshWithGrant;

/// What the service must do with a presented refresh token.
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Rotate it; the access token gets this scope (the successor keeps the token's own).
    Rotate { scope: String },
    /// It was rotated before: someone holds a copy. Revoke the family, answer `invalid_grant`.
    Reuse,
}

pub fn decide(
    stored: &RefreshWithGrant,
    client: &Client,
    requested_scope: Option<&str>,
    now: i64,
) -> Result<RefreshDecision, OAuthError> {
    let token = &stored.token;
    if token.rotated_at.is_some() && stored.grant_revoked_at.is_none() {
        return Ok(RefreshDecision::Reuse);
    }
    if token.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if stored.grant_revoked_at.is_some() || token.rotated_at.is_some() {
        return Err(OAuthError::invalid_grant(
            "the refresh token has been revoked",
        ));
    }
    if token.expires_at <= now || stored.grant_expires_at <= now {
        return Err(OAuthError::invalid_grant("the refresh token has expired"));
    }
    if token.user_id.is_some() && !stored.user.as_ref().is_some_and(|u| u.active) {
        return Err(OAuthError::invalid_grant("the user is disabled"));
    }
    let granted = scope::parse_stored(&token.scope)?;
    let scope = match requested_scope {
        None => token.scope.clone(),
        Some(text) => {
            let requested = scope::parse(text)?;
            if !requested.allow_access(&granted) {
                return Err(OAuthError::invalid_scope(
                    "a refresh may narrow the scope, never widen it",
                ));
            }
            scope::to_string(&requested)
        }
    };
    Ok(RefreshDecision::Rotate { scope })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::refresh::RefreshToken;

    const NOW: i64 = 1_800_000_000;

    fn client() -> Client {
        Client {
            id: "cl_a".into(),
            name: "SPA".into(),
            secret_hash: None,
            redirect_uris: vec![],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["api:read".into(), "api:write".into()],
            audiences: vec![],
            allowed_origins: vec![],
            created_at: 0,
        }
    }

    fn stored() -> RefreshWithGrant {
        RefreshWithGrant {
            token: RefreshToken {
                token_hash: "h".into(),
                grant_id: "g".into(),
                client_id: "cl_a".into(),
                user_id: Some("usr_1".into()),
                scope: "api:read api:write".into(),
                audience: "https://api.example".into(),
                created_at: NOW - 100,
                expires_at: NOW + 100,
                rotated_at: None,
            },
            grant_expires_at: NOW + 1000,
            grant_revoked_at: None,
            user: Some(crate::store::codes::UserState {
                roles: vec![],
                active: true,
            }),
        }
    }

    #[test]
    fn fresh_token_rotates_with_same_scope() {
        assert_eq!(
            decide(&stored(), &client(), None, NOW),
            Ok(RefreshDecision::Rotate {
                scope: "api:read api:write".into()
            })
        );
    }

    #[test]
    fn rotated_token_is_reuse() {
        let mut s = stored();
        s.token.rotated_at = Some(NOW - 1);
        assert_eq!(decide(&s, &client(), None, NOW), Ok(RefreshDecision::Reuse));
    }

    #[test]
    fn refresh_scope_narrows_never_widens() {
        assert_eq!(
            decide(&stored(), &client(), Some("api:read"), NOW),
            Ok(RefreshDecision::Rotate {
                scope: "api:read".into()
            })
        );
        let mut s = stored();
        s.token.scope = "api:read".into();
        let err = decide(&s, &client(), Some("api:read api:write"), NOW).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_scope");
    }

    #[test]
    fn refresh_absolute_and_idle_expiry() {
        let mut idle = stored();
        idle.token.expires_at = NOW;
        assert!(decide(&idle, &client(), None, NOW).is_err());
        let mut absolute = stored();
        absolute.grant_expires_at = NOW;
        assert!(decide(&absolute, &client(), None, NOW).is_err());
    }

    #[test]
    fn refresh_token_bound_to_client() {
        let mut other = client();
        other.id = "cl_b".into();
        assert_eq!(
            decide(&stored(), &other, None, NOW)
                .unwrap_err()
                .code
                .as_str(),
            "invalid_grant"
        );
    }

    #[test]
    fn disabled_user_cannot_refresh() {
        let mut s = stored();
        s.user = Some(crate::store::codes::UserState {
            roles: vec![],
            active: false,
        });
        assert_eq!(
            decide(&s, &client(), None, NOW).unwrap_err().code.as_str(),
            "invalid_grant"
        );
    }

    #[test]
    fn revoked_family_is_invalid_grant() {
        let mut s = stored();
        s.grant_revoked_at = Some(NOW - 5);
        assert_eq!(
            decide(&s, &client(), None, NOW).unwrap_err().code.as_str(),
            "invalid_grant"
        );
    }
}
