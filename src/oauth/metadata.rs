//! RFC 8414 authorization server metadata, built from the same constants the endpoints enforce.
//! The OpenID Connect discovery document (`/.well-known/openid-configuration`) is the same
//! document: RFC 8414 §2 takes OpenID Connect Discovery's members, so one source serves both.

use serde::Serialize;

use super::model::GrantType;
use super::{oidc, pkce};

/// The HTTP paths Gatehouse serves; the router and the metadata both read them from here.
pub mod paths {
    pub const METADATA: &str = "/.well-known/oauth-authorization-server";
    /// OpenID Connect Discovery 1.0 §4: the same document as [`METADATA`].
    pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
    /// OpenID Connect Core §5.3.
    pub const USERINFO: &str = "/userinfo";
    /// OpenID Connect RP-Initiated Logout 1.0 §2.
    pub const END_SESSION: &str = "/end_session";
    /// Where a signed-in user sees and withdraws the consent they gave.
    pub const ACCOUNT_CONSENTS: &str = "/account/consents";
    pub const JWKS: &str = "/.well-known/jwks.json";
    pub const AUTHORIZE: &str = "/authorize";
    pub const LOGIN: &str = "/login";
    pub const CONSENT: &str = "/consent";
    /// The sign-in's second step: a TOTP code or a recovery code.
    pub const LOGIN_OTP: &str = "/login/otp";
    /// Setting up, using and turning off TOTP.
    pub const ACCOUNT_MFA: &str = "/account/mfa";
    pub const LOGOUT: &str = "/logout";
    pub const TOKEN: &str = "/token";
    pub const REVOKE: &str = "/revoke";
    pub const INTROSPECT: &str = "/introspect";
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    /// The admin API's versioned root.
    pub const ADMIN_API: &str = "/admin/api/v1";
    /// Dynamic client registration (RFC 7591), when on.
    pub const REGISTER: &str = "/register";
    /// A registered client's configuration endpoint (RFC 7592): `/register/{client_id}`.
    pub const REGISTER_CLIENT: &str = "/register/{client_id}";
}

/// The response types `/authorize` accepts.
pub const RESPONSE_TYPES: [&str; 1] = ["code"];
/// How `/authorize` returns its response.
pub const RESPONSE_MODES: [&str; 1] = ["query"];
/// Client authentication at the token and revocation endpoints (`none` = public clients).
pub const TOKEN_AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];
/// Introspection needs an authenticated confidential client (RFC 7662 §2.1).
pub const INTROSPECTION_AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];

#[derive(Debug, Serialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub response_types_supported: Vec<&'static str>,
    pub response_modes_supported: Vec<&'static str>,
    pub grant_types_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    pub authorization_response_iss_parameter_supported: bool,
    // OpenID Connect Discovery 1.0 §3.
    pub userinfo_endpoint: String,
    pub end_session_endpoint: String,
    pub scopes_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
    /// The algorithm of the signing key: ID tokens and access tokens are signed with it.
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub claims_supported: Vec<&'static str>,
    pub prompt_values_supported: Vec<&'static str>,
    pub acr_values_supported: Vec<&'static str>,
    pub claims_parameter_supported: bool,
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    /// Only when dynamic client registration is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
}

impl Metadata {
    /// The document of `issuer`, whose tokens are signed with `signing_alg`.
    pub fn new(issuer: &str, signing_alg: &str) -> Metadata {
        let at = |path: &str| format!("{issuer}{path}");
        Metadata {
            issuer: issuer.to_owned(),
            authorization_endpoint: at(paths::AUTHORIZE),
            token_endpoint: at(paths::TOKEN),
            jwks_uri: at(paths::JWKS),
            revocation_endpoint: at(paths::REVOKE),
            introspection_endpoint: at(paths::INTROSPECT),
            response_types_supported: RESPONSE_TYPES.to_vec(),
            response_modes_supported: RESPONSE_MODES.to_vec(),
            grant_types_supported: GrantType::ALL.map(GrantType::as_str).to_vec(),
            code_challenge_methods_supported: vec![pkce::METHOD],
            token_endpoint_auth_methods_supported: TOKEN_AUTH_METHODS.to_vec(),
            revocation_endpoint_auth_methods_supported: TOKEN_AUTH_METHODS.to_vec(),
            introspection_endpoint_auth_methods_supported: INTROSPECTION_AUTH_METHODS.to_vec(),
            authorization_response_iss_parameter_supported: true,
            userinfo_endpoint: at(paths::USERINFO),
            end_session_endpoint: at(paths::END_SESSION),
            scopes_supported: oidc::SCOPES.to_vec(),
            subject_types_supported: vec!["public"],
            id_token_signing_alg_values_supported: vec![signing_alg.to_owned()],
            claims_supported: oidc::CLAIMS.to_vec(),
            prompt_values_supported: oidc::PROMPT_VALUES.to_vec(),
            acr_values_supported: oidc::ACR_VALUES.to_vec(),
            claims_parameter_supported: false,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            registration_endpoint: None,
        }
    }

    /// The document advertising dynamic client registration (RFC 8414 §2 `registration_endpoint`).
    pub fn with_registration(mut self) -> Metadata {
        self.registration_endpoint = Some(format!("{}{}", self.issuer, paths::REGISTER));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_lists_only_s256() {
        let m = Metadata::new("https://auth.example", "ES256");
        assert_eq!(m.code_challenge_methods_supported, vec!["S256"]);
        assert_eq!(m.issuer, "https://auth.example");
        assert!(m.authorization_response_iss_parameter_supported);
        assert_eq!(m.token_endpoint, "https://auth.example/token");
        assert!(m.registration_endpoint.is_none());
        assert_eq!(
            m.with_registration().registration_endpoint.as_deref(),
            Some("https://auth.example/register")
        );
    }
}
