//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3.1):
//! reading the presented credentials (exactly one method), then checking them against the
//! registered client through its oxide-auth registrar.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use oxide_auth::primitives::registrar::Registrar as _;

use super::errors::OAuthError;
use super::model::Client;
use super::params::Params;
use super::registrar::ClientRegistrar;
use crate::secret::{constant_time_eq, PlainToken, TokenHash};

/// How the client presented its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// `client_id` + `client_secret` in the body (`client_secret_post`).
    Post,
    /// A public client: `client_id` only.
    None,
}

/// The client's presented identity.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<PlainToken>,
    pub method: AuthMethod,
}

/// Extracts client credentials from the `Authorization` header and the body: exactly one method.
pub fn credentials(
    authorization: Option<&str>,
    params: &Params,
) -> Result<ClientCredentials, OAuthError> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    if let Some(header) = authorization {
        let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(OAuthError::invalid_client());
        }
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not both Basic and client_secret",
            ));
        }
        let decoded = STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(OAuthError::invalid_client)?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(OAuthError::invalid_client)?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
        let id = form_decode(id).ok_or_else(OAuthError::invalid_client)?;
        let secret = form_decode(secret).ok_or_else(OAuthError::invalid_client)?;
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the authenticated client",
            ));
        }
        return Ok(ClientCredentials {
            client_id: id,
            secret: Some(PlainToken::from_presented(secret)),
            method: AuthMethod::Basic,
        });
    }
    let id = body_id.ok_or_else(OAuthError::invalid_client)?;
    Ok(ClientCredentials {
        client_id: id.to_owned(),
        secret: body_secret.map(PlainToken::from_presented),
        method: if body_secret.is_some() {
            AuthMethod::Post
        } else {
            AuthMethod::None
        },
    })
}

/// Undoes the form-urlencoding RFC 6749 §2.3.1 applies to Basic credentials: `+` is a space,
/// `%XX` a byte. Everything else, `&` and `=` included, is taken literally.
fn form_decode(text: &str) -> Option<String> {
    let plus_as_space = text.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!decoded.contains('\0')).then_some(decoded)
}

/// A hash no secret has, compared against when the client is unknown so that an unknown client
/// and a wrong secret cost the same (checklist 25).
const DUMMY_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether `creds` are this client's at `now`: its id, and its secret when it has one (in
/// constant time), or the secret a rotation replaced while its grace period lasts.
pub fn presented_by(client: &Client, creds: &ClientCredentials, now: i64) -> bool {
    let passphrase = creds.secret.as_ref().map(|s| s.expose().as_bytes());
    let current = ClientRegistrar(client)
        .check(&creds.client_id, passphrase)
        .is_ok();
    let previous = match (&client.previous_secret, &creds.secret) {
        (Some(previous), Some(secret)) if now < previous.until => {
            creds.client_id == client.id.as_str()
                && constant_time_eq(secret.hash().as_str(), &previous.hash)
        }
        _ => false,
    };
    current || previous
}

/// Authenticates the client through its registrar (`ClientRegistrar::check`): confidential
/// clients by secret, public clients by id alone. Unknown client, missing secret and wrong secret
/// all give the same `invalid_client` after the same work (checklist 25).
pub fn check(
    client: Option<Client>,
    creds: &ClientCredentials,
    now: i64,
) -> Result<Client, OAuthError> {
    match client {
        Some(c) if presented_by(&c, creds, now) => Ok(c),
        Some(_) => Err(OAuthError::invalid_client()),
        None => {
            // The hash and comparison a known client's check would have cost.
            let presented = creds.secret.as_ref().map(PlainToken::hash);
            let _ = constant_time_eq(
                presented.as_ref().map_or(DUMMY_HASH, TokenHash::as_str),
                DUMMY_HASH,
            );
            Err(OAuthError::invalid_client())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confidential() -> Client {
        Client {
            id: "cl_conf".into(),
            name: "backend".into(),
            secret_hash: Some(TokenHash::of("s3cret").0),
            redirect_uris: vec![],
            grant_types: vec![],
            scopes: vec![],
            audiences: vec![],
            allowed_origins: vec![],
            created_at: 0,
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: Vec::new(),
        }
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        let header = format!("Basic {}", STANDARD.encode("cl%3Aconf:s%2B3"));
        let creds = credentials(Some(&header), &Params::default()).unwrap();
        assert_eq!(creds.client_id, "cl:conf");
        assert_eq!(creds.secret.unwrap().expose(), "s+3");
        assert_eq!(creds.method, AuthMethod::Basic);
    }

    #[test]
    fn basic_credentials_keep_ampersands_and_refuse_nul() {
        let header = format!("Basic {}", STANDARD.encode("cl_x:SECRET&junk=1"));
        let creds = credentials(Some(&header), &Params::default()).unwrap();
        assert_eq!(creds.secret.unwrap().expose(), "SECRET&junk=1");
        let header = format!("Basic {}", STANDARD.encode("cl_x%00:s"));
        assert!(credentials(Some(&header), &Params::default()).is_err());
    }

    #[test]
    fn two_auth_methods_rejected() {
        let header = format!("Basic {}", STANDARD.encode("cl_conf:s3cret"));
        let params = Params::parse(b"client_secret=s3cret").unwrap();
        assert!(credentials(Some(&header), &params).is_err());
    }

    #[test]
    fn unknown_client_equals_wrong_secret() {
        let creds = ClientCredentials {
            client_id: "cl_conf".into(),
            secret: Some(PlainToken::from_presented("wrong")),
            method: AuthMethod::Post,
        };
        let wrong = check(Some(confidential()), &creds, 0).unwrap_err();
        let unknown = check(None, &creds, 0).unwrap_err();
        assert_eq!(wrong, unknown);
        let missing = ClientCredentials {
            secret: None,
            ..creds.clone()
        };
        assert_eq!(
            check(Some(confidential()), &missing, 0).unwrap_err(),
            unknown
        );
        let right = ClientCredentials {
            secret: Some(PlainToken::from_presented("s3cret")),
            ..creds
        };
        assert!(check(Some(confidential()), &right, 0).is_ok());
    }

    #[test]
    fn a_rotated_secret_works_until_its_grace_period_ends() {
        let rotated = Client {
            secret_hash: Some(TokenHash::of("new").0),
            previous_secret: Some(crate::oauth::model::PreviousSecret {
                hash: TokenHash::of("s3cret").0,
                until: 100,
            }),
            ..confidential()
        };
        let with = |secret: &str| ClientCredentials {
            client_id: "cl_conf".into(),
            secret: Some(PlainToken::from_presented(secret)),
            method: AuthMethod::Basic,
        };
        assert!(presented_by(&rotated, &with("new"), 99));
        assert!(presented_by(&rotated, &with("s3cret"), 99));
        assert!(
            !presented_by(&rotated, &with("s3cret"), 100),
            "the grace period is over"
        );
        assert!(presented_by(&rotated, &with("new"), 100));
        assert!(!presented_by(&rotated, &with("other"), 99));
        let another_id = ClientCredentials {
            client_id: "cl_other".into(),
            ..with("s3cret")
        };
        assert!(!presented_by(&rotated, &another_id, 99));
    }
}
