//! oxide-auth's `Registrar` seam over one registered client: exact redirect-URI matching
//! (RFC 9700 §4.1.3, checklist 1), scope negotiation within the client's allow-list, and
//! constant-time secret checks. The client itself is read from the Diesel registry.

use std::borrow::Cow;

use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, ExactUrl, PreGrant, RegisteredUrl, Registrar, RegistrarError,
};
use oxide_auth::primitives::scope::Scope;

use super::model::Client;
use crate::secret::{constant_time_eq, TokenHash};

/// A client read from the database, answering for itself as oxide-auth's registrar.
pub struct ClientRegistrar<'a>(pub &'a Client);

impl ClientRegistrar<'_> {
    /// True when `uri` is, character for character, one of the registered redirect URIs.
    pub fn redirect_registered(&self, uri: &str) -> bool {
        self.0.redirect_uris.iter().any(|r| r == uri)
    }
}

impl Registrar for ClientRegistrar<'_> {
    fn bound_redirect<'a>(&self, bound: ClientUrl<'a>) -> Result<BoundClient<'a>, RegistrarError> {
        if bound.client_id != self.0.id.as_str() {
            return Err(RegistrarError::Unspecified);
        }
        // The redirect URI is required and compared as a string: no normalisation, no default.
        let uri = bound.redirect_uri.ok_or(RegistrarError::Unspecified)?;
        if !self.redirect_registered(uri.as_str()) {
            return Err(RegistrarError::Unspecified);
        }
        Ok(BoundClient {
            client_id: bound.client_id,
            redirect_uri: Cow::Owned(RegisteredUrl::Exact(uri.into_owned())),
        })
    }

    fn negotiate(
        &self,
        client: BoundClient,
        scope: Option<Scope>,
    ) -> Result<PreGrant, RegistrarError> {
        let allowed = super::scope::allowed_scope(&self.0.scopes)
            .map_err(|_| RegistrarError::PrimitiveError)?;
        let scope = match scope {
            None => allowed,
            Some(s) if s.allow_access(&allowed) => s,
            Some(_) => return Err(RegistrarError::Unspecified),
        };
        Ok(PreGrant {
            client_id: client.client_id.into_owned(),
            redirect_uri: client.redirect_uri.into_owned(),
            scope,
        })
    }

    fn check(&self, client_id: &str, passphrase: Option<&[u8]>) -> Result<(), RegistrarError> {
        let id_ok = constant_time_eq(client_id, self.0.id.as_str());
        let ok = match (&self.0.secret_hash, passphrase) {
            (Some(stored), Some(secret)) => {
                let presented = TokenHash::of(&String::from_utf8_lossy(secret));
                constant_time_eq(presented.as_str(), stored)
            }
            (None, None) => true,
            _ => false,
        };
        if id_ok && ok {
            Ok(())
        } else {
            Err(RegistrarError::Unspecified)
        }
    }
}

/// Parses a redirect URI for oxide-auth without altering its text.
pub fn exact_url(uri: &str) -> Option<ExactUrl> {
    uri.parse::<ExactUrl>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::model::GrantType;

    fn client() -> Client {
        Client {
            id: "cl_x".into(),
            name: "SPA".into(),
            secret_hash: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: vec!["api:read".into()],
            audiences: vec!["https://api.example".into()],
            allowed_origins: vec![],
            created_at: 0,
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: Vec::new(),
        }
    }

    fn bind(uri: &str) -> bool {
        let c = client();
        let reg = ClientRegistrar(&c);
        let Some(url) = exact_url(uri) else {
            return false;
        };
        reg.bound_redirect(ClientUrl {
            client_id: Cow::Borrowed("cl_x"),
            redirect_uri: Some(Cow::Owned(url)),
        })
        .is_ok()
    }

    #[test]
    fn redirect_uri_exact_match() {
        assert!(bind("https://app.example/cb"));
        for bad in [
            "https://app.example:443/cb",
            "https://APP.example/cb",
            "https://app.example/cb?x=1",
            "https://app.example/cb/",
            "https://app.example/cb#f",
            "https://app.example/c",
            "https://app.example/cb2",
            "http://app.example/cb",
        ] {
            assert!(!bind(bad), "{bad} must not match");
        }
    }

    #[test]
    fn public_client_checks_without_secret_only() {
        let c = client();
        let reg = ClientRegistrar(&c);
        assert!(reg.check("cl_x", None).is_ok());
        assert!(reg.check("cl_x", Some(b"secret")).is_err());
        assert!(reg.check("cl_y", None).is_err());
    }
}
