//! The token request (RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6) as a type: parsed once, one variant
//! per grant type.

use super::errors::{ErrorCode, OAuthError};
use super::model::GrantType;
use super::params::Params;

/// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5, RFC 8707 §2.2).
#[derive(Clone, PartialEq, Eq)]
pub struct CodeRequest {
    pub code: String,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub resource: Option<String>,
}

/// `grant_type=refresh_token` (RFC 6749 §6).
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshRequest {
    pub refresh_token: String,
    pub scope: Option<String>,
    pub resource: Option<String>,
}

/// `grant_type=password` (RFC 6749 §4.3.2).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordRequest {
    pub username: String,
    pub password: String,
    pub scope: Option<String>,
    pub resource: Option<String>,
    /// A TOTP code, for a user with a second factor.
    pub otp: Option<String>,
    /// A recovery code, instead of `otp`.
    pub recovery_code: Option<String>,
}

/// `grant_type=client_credentials` (RFC 6749 §4.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentialsRequest {
    pub scope: Option<String>,
    pub resource: Option<String>,
}

/// A token request, one variant per grant type.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenRequest {
    AuthorizationCode(CodeRequest),
    RefreshToken(RefreshRequest),
    Password(PasswordRequest),
    ClientCredentials(ClientCredentialsRequest),
}

/// Names the grant only: a request carries codes, tokens and passwords that are never printed.
impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenRequest({})", self.grant_type())
    }
}

impl TokenRequest {
    /// Reads the grant-specific parameters.
    pub fn from_params(params: &Params) -> Result<TokenRequest, OAuthError> {
        let grant_type: GrantType = params.require("grant_type")?.parse().map_err(|_| {
            OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type is not supported",
            )
        })?;
        let owned = |k: &str| params.get(k).map(str::to_owned);
        Ok(match grant_type {
            GrantType::AuthorizationCode => TokenRequest::AuthorizationCode(CodeRequest {
                code: params.require("code")?.to_owned(),
                redirect_uri: owned("redirect_uri"),
                code_verifier: owned("code_verifier"),
                resource: owned("resource"),
            }),
            GrantType::RefreshToken => TokenRequest::RefreshToken(RefreshRequest {
                refresh_token: params.require("refresh_token")?.to_owned(),
                scope: owned("scope"),
                resource: owned("resource"),
            }),
            GrantType::Password => TokenRequest::Password(PasswordRequest {
                username: params.require("username")?.to_owned(),
                password: params.require("password")?.to_owned(),
                scope: owned("scope"),
                resource: owned("resource"),
                otp: owned("otp"),
                recovery_code: owned("recovery_code"),
            }),
            GrantType::ClientCredentials => {
                TokenRequest::ClientCredentials(ClientCredentialsRequest {
                    scope: owned("scope"),
                    resource: owned("resource"),
                })
            }
        })
    }

    pub fn grant_type(&self) -> GrantType {
        match self {
            TokenRequest::AuthorizationCode(_) => GrantType::AuthorizationCode,
            TokenRequest::RefreshToken(_) => GrantType::RefreshToken,
            TokenRequest::Password(_) => GrantType::Password,
            TokenRequest::ClientCredentials(_) => GrantType::ClientCredentials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_grant_type_is_unsupported() {
        let p = Params::parse(b"grant_type=implicit").unwrap();
        assert_eq!(
            TokenRequest::from_params(&p).unwrap_err().code,
            ErrorCode::UnsupportedGrantType
        );
    }

    #[test]
    fn each_grant_reads_its_parameters() {
        let p = Params::parse(b"grant_type=refresh_token&refresh_token=rt&scope=a").unwrap();
        let TokenRequest::RefreshToken(r) = TokenRequest::from_params(&p).unwrap() else {
            panic!("a refresh request");
        };
        assert_eq!(
            (r.refresh_token.as_str(), r.scope.as_deref()),
            ("rt", Some("a"))
        );
        let p = Params::parse(b"grant_type=authorization_code").unwrap();
        assert_eq!(
            TokenRequest::from_params(&p).unwrap_err().code,
            ErrorCode::InvalidRequest,
            "code is required"
        );
    }
}
