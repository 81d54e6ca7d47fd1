//! JWT access tokens (RFC 9068) and their claims.

use jsonwebtoken::Header;

use crate::jwt_profile::{self, Expected, Refusal};
use crate::keys::{KeySet, Signer};
use crate::secret::new_id;

pub use crate::jwt_profile::AccessClaims;

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
        nbf: None,
    };
    let mut header = Header::new(signer.alg);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(signer.kid.clone());
    let jwt = jsonwebtoken::encode(&header, &claims, &signer.key)?;
    Ok((jwt, claims))
}

/// Clock skew tolerated by the server's check of its own tokens: none. The same clock issued
/// them, so a token is inactive from its `exp` on, exactly the lifetime it was issued with.
/// Resource servers, on other clocks, have `verify::Config::leeway_secs`.
pub const OWN_LEEWAY_SECS: u64 = 0;

/// Checks one of our own access tokens (introspection, revocation) against the profile that
/// resource servers check too ([`jwt_profile`]): a key of our key set, with its own algorithm,
/// `typ` at+jwt, our issuer, valid at `now` with [`OWN_LEEWAY_SECS`]. The audience is the
/// caller's to judge. Any failure is `None`: to the caller the token is simply inactive.
pub fn verify_own(keys: &KeySet, issuer: &str, token: &str, now: i64) -> Option<AccessClaims> {
    check_own(keys, issuer, token, now).ok()
}

/// [`verify_own`], saying why a token is refused.
pub(crate) fn check_own(
    keys: &KeySet,
    issuer: &str,
    token: &str,
    now: i64,
) -> Result<AccessClaims, Refusal> {
    // Any asymmetric algorithm passes the header; the key the kid names then fixes the one.
    let header = jwt_profile::check_header(token, jwt_profile::ASYMMETRIC)?;
    // Keys come only from our own key set (RFC 8725 §3.10).
    let (key_alg, key) = keys.verifier(&header.kid).ok_or(Refusal::UnknownKid)?;
    let expected = Expected {
        issuer,
        audience: None,
        leeway_secs: OWN_LEEWAY_SECS,
        now,
    };
    jwt_profile::check_claims::<AccessClaims>(token, &header, *key_alg, key, &expected)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey};

    use super::*;
    use crate::keys::{generate, MasterKey};

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://auth.example";

    fn keyset() -> KeySet {
        let master = MasterKey::generate();
        let row = generate(&master, "ES256", 0, 0).unwrap();
        KeySet::from_rows(&[row], &master, NOW).unwrap()
    }

    fn grant() -> AccessGrant<'static> {
        AccessGrant {
            subject: "usr_1",
            client_id: "cl_1",
            audience: "https://api.example",
            scope: "api:read",
            roles: &[],
            grant_id: Some("gr_1"),
        }
    }

    fn claims_b64(claims: &AccessClaims) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    }

    #[test]
    fn own_tokens_verify_until_they_expire() {
        let keys = keyset();
        let (jwt, claims) = mint(keys.signer().unwrap(), ISS, &grant(), NOW, 900).unwrap();
        assert_eq!(verify_own(&keys, ISS, &jwt, NOW + 899), Some(claims));
        assert_eq!(verify_own(&keys, ISS, &jwt, NOW + 900), None, "expired");
        assert_eq!(
            verify_own(&keys, "https://other.example", &jwt, NOW),
            None,
            "wrong iss"
        );
        assert_eq!(
            verify_own(&keyset(), ISS, &jwt, NOW),
            None,
            "another key set"
        );
    }

    #[test]
    fn verifier_rejects_forged_tokens() {
        let keys = keyset();
        let signer = keys.signer().unwrap();
        let (jwt, claims) = mint(signer, ISS, &grant(), NOW, 900).unwrap();
        let payload = claims_b64(&claims);
        let signature = jwt.rsplit('.').next().unwrap();

        // alg: none, with and without a signature.
        let none = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#,
            signer.kid
        ));
        assert_eq!(
            verify_own(&keys, ISS, &format!("{none}.{payload}."), NOW),
            None
        );
        assert_eq!(
            verify_own(&keys, ISS, &format!("{none}.{payload}.{signature}"), NOW),
            None
        );

        // HS256 "signed" with the public key as the HMAC secret (key confusion).
        let public = keys.jwks().bytes.clone();
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(signer.kid.clone());
        let hs =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&public)).unwrap();
        assert_eq!(verify_own(&keys, ISS, &hs, NOW), None);

        // Unknown kid, wrong typ, embedded jwk / jku.
        let mut forged = Header::new(Algorithm::ES256);
        forged.typ = Some("at+jwt".into());
        forged.kid = Some("not-a-published-kid".into());
        let unknown_kid = jsonwebtoken::encode(&forged, &claims, &signer.key).unwrap();
        assert_eq!(verify_own(&keys, ISS, &unknown_kid, NOW), None);

        let mut jwt_typ = Header::new(Algorithm::ES256);
        jwt_typ.typ = Some("JWT".into());
        jwt_typ.kid = Some(signer.kid.clone());
        let wrong_typ = jsonwebtoken::encode(&jwt_typ, &claims, &signer.key).unwrap();
        assert_eq!(verify_own(&keys, ISS, &wrong_typ, NOW), None);

        let mut jku = Header::new(Algorithm::ES256);
        jku.typ = Some("at+jwt".into());
        jku.kid = Some(signer.kid.clone());
        jku.jku = Some("https://evil.example/jwks.json".into());
        let with_jku = jsonwebtoken::encode(&jku, &claims, &signer.key).unwrap();
        assert_eq!(verify_own(&keys, ISS, &with_jku, NOW), None);

        // A payload changed after signing.
        let mut altered = claims.clone();
        altered.scope = "admin".into();
        let tampered = format!(
            "{}.{}.{}",
            jwt.split('.').next().unwrap(),
            claims_b64(&altered),
            signature
        );
        assert_eq!(verify_own(&keys, ISS, &tampered, NOW), None);

        // Garbage.
        assert_eq!(verify_own(&keys, ISS, "not.a.jwt", NOW), None);
        assert_eq!(verify_own(&keys, ISS, "", NOW), None);
    }
}
