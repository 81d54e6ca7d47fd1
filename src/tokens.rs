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
    /// RFC 8176 authentication methods; empty when no user authenticated.
    pub amr: &'a [String],
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
        amr: grant.amr.to_vec(),
        nbf: None,
    };
    let mut header = Header::new(signer.alg);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(signer.kid.clone());
    let jwt = signer.encode(&header, &claims)?;
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
            amr: &[],
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
        let unknown_kid = signer.encode(&forged, &claims).unwrap();
        assert_eq!(verify_own(&keys, ISS, &unknown_kid, NOW), None);

        let mut jwt_typ = Header::new(Algorithm::ES256);
        jwt_typ.typ = Some("JWT".into());
        jwt_typ.kid = Some(signer.kid.clone());
        let wrong_typ = signer.encode(&jwt_typ, &claims).unwrap();
        assert_eq!(verify_own(&keys, ISS, &wrong_typ, NOW), None);

        let mut jku = Header::new(Algorithm::ES256);
        jku.typ = Some("at+jwt".into());
        jku.kid = Some(signer.kid.clone());
        jku.jku = Some("https://evil.example/jwks.json".into());
        let with_jku = signer.encode(&jku, &claims).unwrap();
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

/// Rule 32 of the security checklist, against both callers of the profile: each forged token
/// differs from a valid one in one property only and is otherwise properly signed, so the
/// check of that property is the reason it is refused.
#[cfg(all(test, feature = "server", feature = "verify"))]
mod forged_variants {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{json, Value};

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::Algorithm;

    use super::{check_own, verify_own};
    use crate::jwt_profile::*;
    use crate::keys::{generate, KeySet, MasterKey};
    use crate::verify::{Config, Verifier, VerifyError};

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://auth.example";
    const AUD: &str = "https://api.example";

    fn claims() -> Value {
        json!({"iss": ISS, "sub": "usr_1", "aud": AUD, "client_id": "cl_1", "iat": NOW,
               "exp": NOW + 900, "jti": "at_1", "scope": "api:read"})
    }

    #[tokio::test]
    async fn each_forged_variant_is_refused_by_both_checks() {
        let master = MasterKey::generate();
        let row = generate(&master, "ES256", 0, 0).unwrap();
        let keys = KeySet::from_rows(&[row], &master, NOW).unwrap();
        let signer = keys.signer().unwrap();
        let jwks: JwkSet = serde_json::from_slice(&keys.jwks().bytes).unwrap();
        let mut config = Config::new(ISS, AUD);
        // Nothing listens here, and the unknown kid may not trigger a fetch anyway.
        config.jwks_uri = "http://127.0.0.1:9/jwks.json".into();
        config.min_refetch_interval = std::time::Duration::from_secs(3600);
        let verifier = Verifier::with_jwks(config, &jwks).unwrap();

        let header = || {
            let mut h = Header::new(Algorithm::ES256);
            h.typ = Some("at+jwt".into());
            h.kid = Some(signer.kid.clone());
            h
        };
        let sign = |h: &Header, c: &Value| signer.encode(h, c).unwrap();
        let with_header = |change: &dyn Fn(&mut Header)| {
            let mut h = header();
            change(&mut h);
            sign(&h, &claims())
        };
        let with_claim = |name: &str, value: Value| {
            let mut c = claims();
            c[name] = value;
            sign(&header(), &c)
        };
        let valid = sign(&header(), &claims());
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let payload = b64(&serde_json::to_vec(&claims()).unwrap());
        let valid_signature = valid.rsplit('.').next().unwrap();
        let mut wider = claims();
        wider["scope"] = json!("api:read api:admin");
        let valid_header = valid.split('.').next().unwrap();

        let variants: Vec<(&str, String, Refusal)> = vec![
            (
                "unknown kid",
                with_header(&|h| h.kid = Some("not-published".into())),
                Refusal::UnknownKid,
            ),
            (
                "typ JWT",
                with_header(&|h| h.typ = Some("JWT".into())),
                Refusal::WrongType,
            ),
            (
                "typ missing",
                with_header(&|h| h.typ = None),
                Refusal::WrongType,
            ),
            (
                "jku",
                with_header(&|h| h.jku = Some("https://evil.example/jwks.json".into())),
                Refusal::EmbeddedKey,
            ),
            (
                "jwk (the real public key)",
                with_header(&|h| h.jwk = Some(jwks.keys[0].clone())),
                Refusal::EmbeddedKey,
            ),
            (
                "x5u",
                with_header(&|h| h.x5u = Some("https://evil.example/cert.pem".into())),
                Refusal::EmbeddedKey,
            ),
            (
                "x5c",
                with_header(&|h| h.x5c = Some(vec!["MIIBfake".into()])),
                Refusal::EmbeddedKey,
            ),
            (
                "wrong iss",
                with_claim("iss", json!("https://evil.example")),
                Refusal::WrongIssuer,
            ),
            (
                "expired",
                with_claim("exp", json!(NOW - 3600)),
                Refusal::Expired,
            ),
            (
                "nbf in the future",
                with_claim("nbf", json!(NOW + 3600)),
                Refusal::NotYetValid,
            ),
            (
                "alg none, unsigned",
                format!(
                    "{}.{payload}.",
                    b64(
                        format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#, signer.kid)
                            .as_bytes()
                    )
                ),
                Refusal::AlgorithmNotAllowed("none".into()),
            ),
            (
                "HS256 keyed with the public JWKS",
                {
                    let mut h = header();
                    h.alg = Algorithm::HS256;
                    let secret = EncodingKey::from_secret(&keys.jwks().bytes);
                    jsonwebtoken::encode(&h, &claims(), &secret).unwrap()
                },
                Refusal::AlgorithmNotAllowed("HS256".into()),
            ),
            (
                "payload changed after signing",
                format!(
                    "{valid_header}.{}.{valid_signature}",
                    b64(&serde_json::to_vec(&wider).unwrap())
                ),
                Refusal::BadSignature,
            ),
        ];

        // The unmodified token passes both, so each refusal below is the variant's doing.
        let own = verify_own(&keys, ISS, &valid, NOW).expect("the valid token passes verify_own");
        assert_eq!(own.jti, "at_1");
        let theirs = verifier.verify_at(&valid, NOW as u64).await;
        assert_eq!(theirs.map(|c| c.jti), Ok("at_1".to_owned()));

        // Both accept the same spellings of the type.
        for typ in ["application/at+jwt", "AT+JWT"] {
            let token = with_header(&|h| h.typ = Some(typ.into()));
            assert!(verify_own(&keys, ISS, &token, NOW).is_some(), "{typ}");
            assert!(
                verifier.verify_at(&token, NOW as u64).await.is_ok(),
                "{typ}"
            );
        }

        for (what, token, refusal) in variants {
            assert_eq!(
                check_own(&keys, ISS, &token, NOW),
                Err(refusal.clone()),
                "{what}"
            );
            assert_eq!(verify_own(&keys, ISS, &token, NOW), None, "{what}");
            assert_eq!(
                verifier.verify_at(&token, NOW as u64).await,
                Err(VerifyError::from(refusal)),
                "{what}"
            );
        }
    }
}
