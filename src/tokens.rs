//! JWT access tokens (RFC 9068) and their claims.

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};

use crate::keys::{KeySet, Signer};
use crate::secret::new_id;

/// The claims of a Gatehouse access token (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The grant (refresh-token family) the token was issued from; introspection reports the
    /// token inactive once that grant is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// What an access token is issued for.
#[derive(Debug, Clone)]
pub struct AccessGrant<'a> {
    pub subject: &'a str,
    pub client_id: &'a str,
    pub audience: &'a str,
    pub scope: &'a str,
    pub roles: &'a [String],
    pub grant_id: Option<&'a str>,
}

/// Signs an access token. Returns the JWT and its claims.
pub fn mint(
    signer: &Signer,
    issuer: &str,
    grant: &AccessGrant<'_>,
    now: i64,
    ttl: i64,
) -> Result<(String, AccessClaims), jsonwebtoken::errors::Error> {
    let claims = AccessClaims {
        iss: issuer.to_owned(),
        sub: grant.subject.to_owned(),
        aud: grant.audience.to_owned(),
        client_id: grant.client_id.to_owned(),
        iat: now,
        exp: now + ttl,
        jti: new_id("at"),
        scope: grant.scope.to_owned(),
        roles: grant.roles.to_vec(),
        sid: grant.grant_id.map(str::to_owned),
    };
    let mut header = Header::new(signer.alg);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(signer.kid.clone());
    let jwt = jsonwebtoken::encode(&header, &claims, &signer.key)?;
    Ok((jwt, claims))
}

/// Checks one of our own access tokens (introspection): a published key, `typ=at+jwt`, our issuer,
/// not expired at `now`. Any failure is `None`: to the caller the token is simply inactive.
pub fn verify_own(keys: &KeySet, issuer: &str, token: &str, now: i64) -> Option<AccessClaims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.typ.as_deref() != Some("at+jwt") || header.jwk.is_some() || header.jku.is_some() {
        return None;
    }
    let (alg, key) = keys.verifier(header.kid.as_deref()?)?;
    if header.alg != *alg {
        return None;
    }
    let mut validation = Validation::new(*alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    // Expiry is checked below against the `now` we were given, not the wall clock.
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).ok()?;
    (data.claims.exp > now).then_some(data.claims)
}
