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
    /// It was rotated a moment ago and its successor is still unused: answer again with the same
    /// successor and a fresh access token with this scope (the opt-in retry window).
    Resend { scope: String },
    /// It was rotated before: someone holds a copy. Revoke the family, answer `invalid_grant`.
    Reuse,
}

/// `successor_unused`: the service found, within the retry window, that this token's successor
/// exists for the same client and is not yet rotated itself. Always false when the window is off.
pub fn decide(
    stored: &RefreshWithGrant,
    client: &Client,
    requested_scope: Option<&str>,
    now: i64,
    successor_unused: bool,
) -> Result<RefreshDecision, OAuthError> {
    let token = &stored.token;
    let rotated = token.rotated_at.is_some();
    if rotated && !successor_unused && stored.grant_revoked_at.is_none() {
        return Ok(RefreshDecision::Reuse);
    }
    if token.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if stored.grant_revoked_at.is_some() {
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
    Ok(if rotated {
        RefreshDecision::Resend { scope }
    } else {
        RefreshDecision::Rotate { scope }
    })
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
            decide(&stored(), &client(), None, NOW, false),
            Ok(RefreshDecision::Rotate {
                scope: "api:read api:write".into()
            })
        );
    }

    #[test]
    fn rotated_token_is_reuse() {
        let mut s = stored();
        s.token.rotated_at = Some(NOW - 1);
        assert_eq!(
            decide(&s, &client(), None, NOW, false),
            Ok(RefreshDecision::Reuse)
        );
    }

    #[test]
    fn rotated_token_with_unused_successor_is_resent_within_window() {
        let mut s = stored();
        s.token.rotated_at = Some(NOW - 1);
        assert_eq!(
            decide(&s, &client(), None, NOW, true),
            Ok(RefreshDecision::Resend {
                scope: "api:read api:write".into()
            })
        );
        // Another client presenting it is still reuse, whatever the window says: the service
        // only reports an unused successor for the same client, and the client check follows.
        let mut other = client();
        other.id = "cl_b".into();
        assert!(decide(&s, &other, None, NOW, true).is_err());
    }

    #[test]
    fn refresh_scope_narrows_never_widens() {
        assert_eq!(
            decide(&stored(), &client(), Some("api:read"), NOW, false),
            Ok(RefreshDecision::Rotate {
                scope: "api:read".into()
            })
        );
        let mut s = stored();
        s.token.scope = "api:read".into();
        let err = decide(&s, &client(), Some("api:read api:write"), NOW, false).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_scope");
    }

    #[test]
    fn refresh_absolute_and_idle_expiry() {
        let mut idle = stored();
        idle.token.expires_at = NOW;
        assert!(decide(&idle, &client(), None, NOW, false).is_err());
        let mut absolute = stored();
        absolute.grant_expires_at = NOW;
        assert!(decide(&absolute, &client(), None, NOW, false).is_err());
    }

    #[test]
    fn refresh_token_bound_to_client() {
        let mut other = client();
        other.id = "cl_b".into();
        assert_eq!(
            decide(&stored(), &other, None, NOW, false)
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
            decide(&s, &client(), None, NOW, false)
                .unwrap_err()
                .code
                .as_str(),
            "invalid_grant"
        );
    }

    #[test]
    fn revoked_family_is_invalid_grant() {
        let mut s = stored();
        s.grant_revoked_at = Some(NOW - 5);
        assert_eq!(
            decide(&s, &client(), None, NOW, false)
                .unwrap_err()
                .code
                .as_str(),
            "invalid_grant"
        );
    }
}
