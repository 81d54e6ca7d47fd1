//! The OAuth error vocabulary (RFC 6749 §4.1.2.1, §5.2; RFC 7009 §2.2.1; RFC 8707 §2; RFC 7591
//! §3.2.2; RFC 6750 §3.1 for a bad or insufficient bearer token), mapped once
//! to an HTTP status, `WWW-Authenticate` on 401 and the JSON body `{error, error_description}`.

use std::borrow::Cow;

/// An RFC error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    ServerError,
    /// RFC 6750 §3.1: a bearer token (an initial or registration access token) that is not valid.
    InvalidToken,
    /// RFC 6750 §3.1: a valid bearer token without the scope the resource needs (403).
    InsufficientScope,
    /// RFC 7591 §3.2.2.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2.
    InvalidClientMetadata,
    /// OpenID Connect Core §3.1.2.6: `prompt=none` and nobody is signed in (or not recently
    /// enough).
    LoginRequired,
    /// OpenID Connect Core §3.1.2.6: `prompt=none` and consent would have to be asked.
    ConsentRequired,
    /// OpenID Connect Core §3.1.2.6: `prompt=none` and another page (a second factor) is needed.
    InteractionRequired,
    /// OpenID Connect Core §3.1.2.6: a `request` object.
    RequestNotSupported,
    /// OpenID Connect Core §3.1.2.6: a `request_uri`.
    RequestUriNotSupported,
    /// OpenID Connect Core §3.1.2.6: a `registration` parameter.
    RegistrationNotSupported,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::RegistrationNotSupported => "registration_not_supported",
        }
    }

    /// The status of a token-endpoint error response (RFC 6749 §5.2).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope => 403,
            ErrorCode::ServerError => 500,
            _ => 400,
        }
    }
}

/// An OAuth error with a human-readable description (never containing a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    /// The password grant's `"mfa_required": true`: the password was right and a second factor
    /// must come with it, so a first-party app knows to ask for a code.
    pub mfa_required: bool,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
            mfa_required: false,
        }
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRequest, d)
    }

    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidGrant, d)
    }

    /// The one answer for an unknown client, a wrong secret or a missing one: indistinguishable.
    pub fn invalid_client() -> OAuthError {
        OAuthError::new(ErrorCode::InvalidClient, "client authentication failed")
    }

    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidScope, d)
    }

    pub fn invalid_target(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidTarget, d)
    }

    pub fn unauthorized_client(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::UnauthorizedClient, d)
    }

    /// The JSON body of the error.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        });
        if self.mfa_required {
            body["mfa_required"] = serde_json::Value::Bool(true);
        }
        body
    }

    /// `invalid_grant` saying a second factor is needed, with `"mfa_required": true`.
    pub fn mfa_required(d: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError {
            mfa_required: true,
            ..OAuthError::invalid_grant(d)
        }
    }
}
