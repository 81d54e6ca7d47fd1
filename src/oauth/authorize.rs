//! The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707 §2, RFC 9207).
//!
//! Two steps, in this order: [`bind`] checks `client_id` and `redirect_uri` (errors are shown as a
//! page and never redirect, RFC 6749 §4.1.2.1); then [`validate`] checks the rest (errors go back
//! to the now trusted redirect URI with `error`, `state` and `iss`).

use std::borrow::Cow;

use oxide_auth::primitives::registrar::{ClientUrl, Registrar};

use super::errors::{ErrorCode, OAuthError};
use super::model::{Client, GrantType};
use super::oidc::{self, OidcRequest};
use super::params::Params;
use super::registrar::{exact_url, ClientRegistrar};
use super::{pkce, scope};

/// A client and redirect URI that passed [`bind`]: from here on errors may redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundRedirect {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
}

/// A validated authorization request, ready for login and consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationParams {
    pub bound: BoundRedirect,
    pub scope: String,
    pub code_challenge: String,
    pub audience: String,
    /// `nonce`, `prompt`, `max_age`, `login_hint` (OpenID Connect).
    pub oidc: OidcRequest,
}

/// Why a request cannot even be redirected back: shown to the user as a 400 page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError(pub Cow<'static, str>);

/// The request's `client_id`, if any (the service looks the client up with it).
pub fn client_id(params: &Params) -> Option<&str> {
    params.get("client_id")
}

/// Step one: the client exists and the redirect URI is one of its registered URIs, exactly.
pub fn bind(params: &Params, client: Option<&Client>) -> Result<BoundRedirect, PageError> {
    let Some(client_id) = params.get("client_id") else {
        return Err(PageError("The request has no client_id.".into()));
    };
    let Some(client) = client.filter(|c| c.id == client_id) else {
        return Err(PageError(
            "The application (client_id) is not registered here.".into(),
        ));
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Err(PageError("The request has no redirect_uri.".into()));
    };
    let registrar = ClientRegistrar(client);
    let url = exact_url(redirect_uri)
        .ok_or_else(|| PageError("The redirect_uri is not a valid URL.".into()))?;
    registrar
        .bound_redirect(ClientUrl {
            client_id: Cow::Borrowed(client_id),
            redirect_uri: Some(Cow::Owned(url)),
        })
        .map_err(|_| {
            PageError("The redirect_uri is not registered for this application.".into())
        })?;
    Ok(BoundRedirect {
        client_id: client.id.to_string(),
        redirect_uri: redirect_uri.to_owned(),
        state: params.get("state").map(str::to_owned),
    })
}

/// Step two: response type, PKCE, scope and resource. Errors here redirect.
pub fn validate(
    params: &Params,
    client: &Client,
    bound: BoundRedirect,
) -> Result<AuthorizationParams, (BoundRedirect, OAuthError)> {
    let fail = |b: &BoundRedirect, e: OAuthError| (b.clone(), e);
    match params.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                &bound,
                OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ),
            ))
        }
        None => {
            return Err(fail(
                &bound,
                OAuthError::invalid_request("missing response_type"),
            ))
        }
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(fail(
            &bound,
            OAuthError::unauthorized_client("this client may not use the authorization code flow"),
        ));
    }
    if params
        .get("response_mode")
        .is_some_and(|m| !super::metadata::RESPONSE_MODES.contains(&m))
    {
        return Err(fail(
            &bound,
            OAuthError::invalid_request("response_mode must be query"),
        ));
    }
    let challenge = pkce::check_challenge(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )
    .map_err(|e| fail(&bound, e))?;
    let granted =
        scope::negotiate(params.get("scope"), &client.scopes).map_err(|e| fail(&bound, e))?;
    let audience = select_audience(params.get("resource"), client).map_err(|e| fail(&bound, e))?;
    let scope = scope::to_string(&granted);
    let oidc = oidc::read_request(params, oidc::is_openid(&scope)).map_err(|e| fail(&bound, e))?;
    Ok(AuthorizationParams {
        bound,
        scope,
        code_challenge: challenge,
        audience,
        oidc,
    })
}

/// The audience of the tokens: the `resource` parameter (RFC 8707) if the client is registered for
/// it, else the client's first registered audience.
pub fn select_audience(resource: Option<&str>, client: &Client) -> Result<String, OAuthError> {
    match resource {
        Some(r) => {
            let parsed = url::Url::parse(r)
                .map_err(|_| OAuthError::invalid_target("resource must be an absolute URI"))?;
            if parsed.fragment().is_some() {
                return Err(OAuthError::invalid_target(
                    "resource must not have a fragment",
                ));
            }
            if client.audiences.iter().any(|a| a == r) {
                Ok(r.to_owned())
            } else {
                Err(OAuthError::invalid_target(
                    "resource is not registered for this client",
                ))
            }
        }
        None => client
            .default_audience()
            .map(str::to_owned)
            .ok_or_else(|| OAuthError::invalid_target("the client has no registered audience")),
    }
}

/// The redirect URI with the given response parameters added (RFC 6749 §4.1.2; `iss` per RFC 9207).
pub fn redirect_url(bound: &BoundRedirect, issuer: &str, params: &[(&str, &str)]) -> String {
    let Ok(mut url) = url::Url::parse(&bound.redirect_uri) else {
        // bind() parsed it already; an unparsable URI cannot reach here.
        return bound.redirect_uri.clone();
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        if let Some(state) = &bound.state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    url.to_string()
}

/// The error redirect for a validated redirect URI.
pub fn error_redirect(bound: &BoundRedirect, issuer: &str, error: &OAuthError) -> String {
    redirect_url(
        bound,
        issuer,
        &[
            ("error", error.code.as_str()),
            ("error_description", &error.description),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client() -> Client {
        Client {
            id: "cl_spa".into(),
            name: "SPA".into(),
            secret_hash: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: vec!["api:read".into(), "api:write".into()],
            audiences: vec!["https://api.example".into()],
            allowed_origins: vec![],
            created_at: 0,
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: Vec::new(),
        }
    }

    fn params(extra: &str) -> Params {
        let base = format!(
            "client_id=cl_spa&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&response_type=code\
             &state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}"
        );
        Params::parse(base.as_bytes()).unwrap()
    }

    fn run(p: &Params) -> Result<AuthorizationParams, OAuthError> {
        let c = client();
        let bound = bind(p, Some(&c)).map_err(|e| OAuthError::invalid_request(e.0))?;
        validate(p, &c, bound).map_err(|(_, e)| e)
    }

    #[test]
    fn valid_request_binds_and_validates() {
        let ok = run(&params("&scope=api:read")).unwrap();
        assert_eq!(ok.scope, "api:read");
        assert_eq!(ok.audience, "https://api.example");
        assert_eq!(ok.bound.state.as_deref(), Some("xyz"));
    }

    #[test]
    fn bad_client_or_redirect_is_a_page_error() {
        let c = client();
        let p =
            Params::parse(b"client_id=nope&redirect_uri=https%3A%2F%2Fapp.example%2Fcb").unwrap();
        assert!(bind(&p, None).is_err());
        let p = Params::parse(b"client_id=cl_spa&redirect_uri=https%3A%2F%2Fevil.example%2Fcb")
            .unwrap();
        assert!(bind(&p, Some(&c)).is_err());
        let p = Params::parse(b"client_id=cl_spa").unwrap();
        assert!(bind(&p, Some(&c)).is_err());
    }

    #[test]
    fn response_type_token_refused() {
        let p = Params::parse(
            format!(
                "client_id=cl_spa&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&response_type=token\
                 &code_challenge={CHALLENGE}&code_challenge_method=S256"
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            run(&p).unwrap_err().code,
            ErrorCode::UnsupportedResponseType
        );
    }

    #[test]
    fn unknown_resource_is_invalid_target() {
        let err = run(&params("&resource=https%3A%2F%2Fother.example")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidTarget);
    }

    #[test]
    fn error_redirect_carries_state_and_iss() {
        let bound = BoundRedirect {
            client_id: "c".into(),
            redirect_uri: "https://app.example/cb?keep=1".into(),
            state: Some("s t".into()),
        };
        let url = error_redirect(
            &bound,
            "https://issuer.example",
            &OAuthError::invalid_scope("x"),
        );
        assert!(url.starts_with("https://app.example/cb?keep=1&error=invalid_scope"));
        assert!(url.contains("state=s+t"));
        assert!(url.contains("iss=https%3A%2F%2Fissuer.example"));
    }
}
