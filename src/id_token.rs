//! OpenID Connect ID tokens (OIDC Core §2, §3.1.3.6): minted beside the access token of the same
//! grant, signed with the current asymmetric key, and read back only as an `id_token_hint`.
//!
//! An ID token is never an access token (checklist 62): its `typ` is `JWT`, which the access-token
//! profile (`jwt_profile::check_header`, `at+jwt` only) refuses, and its audience is the client,
//! not a resource.

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};

use crate::jwt_profile::{self, Expected, Lifetime, Refusal};
use crate::keys::{KeySet, Signer};
use crate::oauth::oidc::{self, IdTokenFacts, ProfileClaims};
use crate::secret::hmac_b64;

/// The `typ` of Gatehouse's ID tokens.
pub const TYPE: &str = "JWT";

/// The claims of an ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    /// The user's id: the same `sub` as the grant's access tokens.
    pub sub: String,
    /// The client's id (and nothing else).
    pub aud: String,
    /// The client the token was issued to, as OIDC Core §2 names it.
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The authorization request's `nonce`, exactly; never after a refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The browser session that signed in, keyed-hashed (stable for that session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The left half of the access token's hash (OIDC Core §3.1.3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(flatten)]
    pub profile: ProfileClaims,
}

impl Lifetime for IdClaims {
    fn exp(&self) -> i64 {
        self.exp
    }

    fn nbf(&self) -> Option<i64> {
        None
    }
}

/// What one ID token is for.
#[derive(Debug, Clone)]
pub struct IdGrant<'a> {
    pub subject: &'a str,
    pub client_id: &'a str,
    pub amr: &'a [String],
    pub facts: &'a IdTokenFacts,
    /// The access token issued with it (for `at_hash`).
    pub access_token: &'a str,
    /// Derives `sid` from the session's hash ([`session_id`]).
    pub sid_key: &'a [u8; 32],
}

/// The `sid` of a browser session: a keyed hash of its id's hash, stable for the session and
/// telling nothing about its cookie.
pub fn session_id(key: &[u8; 32], session_hash: &str) -> String {
    let mac = hmac_b64(key, &["oidc sid", session_hash]);
    mac[..22.min(mac.len())].to_owned()
}

/// `at_hash`: base64url of the left half of the access token's hash with the signing
/// algorithm's hash function (SHA-512 for Ed25519).
pub fn at_hash(alg: Algorithm, access_token: &str) -> String {
    let algorithm = match alg {
        Algorithm::ES384 | Algorithm::RS384 | Algorithm::PS384 => &digest::SHA384,
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => &digest::SHA512,
        _ => &digest::SHA256,
    };
    let hash = digest::digest(algorithm, access_token.as_bytes());
    let bytes = hash.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

/// Signs an ID token with the current key.
pub fn mint(
    signer: &Signer,
    issuer: &str,
    grant: &IdGrant<'_>,
    now: i64,
    ttl: i64,
) -> Result<(String, IdClaims), jsonwebtoken::errors::Error> {
    let claims = IdClaims {
        iss: issuer.to_owned(),
        sub: grant.subject.to_owned(),
        aud: grant.client_id.to_owned(),
        azp: grant.client_id.to_owned(),
        exp: now + ttl,
        iat: now,
        auth_time: grant.facts.auth_time,
        nonce: grant.facts.nonce.clone(),
        amr: grant.amr.to_vec(),
        acr: (!grant.amr.is_empty()).then(|| oidc::acr(grant.amr).to_owned()),
        sid: grant
            .facts
            .session_hash
            .as_deref()
            .map(|s| session_id(grant.sid_key, s)),
        at_hash: Some(at_hash(signer.alg, grant.access_token)),
        profile: grant.facts.claims.clone(),
    };
    let mut header = Header::new(signer.alg);
    header.typ = Some(TYPE.to_owned());
    header.kid = Some(signer.kid.clone());
    let jwt = signer.encode(&header, &claims)?;
    Ok((jwt, claims))
}

/// `typ` JWT, or none (OIDC Core leaves it out; Gatehouse's own say JWT). Never `at+jwt`.
fn is_id_token_type(typ: Option<&str>) -> bool {
    typ.is_none_or(|t| t.eq_ignore_ascii_case(TYPE))
}

/// Reads an `id_token_hint` (OIDC Core §3.1.2.1, RP-Initiated Logout §2): one of our keys, its
/// own algorithm, the signature, our issuer. An expired ID token is still a hint: it says which
/// user and client the request is about, not that anyone is signed in.
pub fn check_hint(keys: &KeySet, issuer: &str, token: &str) -> Result<IdClaims, Refusal> {
    let header = jwt_profile::check_header_of(token, jwt_profile::ASYMMETRIC, is_id_token_type)?;
    let (key_alg, key) = keys.verifier(&header.kid).ok_or(Refusal::UnknownKid)?;
    let expected = Expected {
        issuer,
        audience: None,
        leeway_secs: u64::MAX,
        now: 0,
    };
    jwt_profile::check_claims::<IdClaims>(token, &header, *key_alg, key, &expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate, MasterKey};
    use crate::tokens::{self, AccessGrant};

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://auth.example";

    fn keyset(alg: &str) -> KeySet {
        let master = MasterKey::generate();
        let row = generate(&master, alg, 0, 0).unwrap();
        KeySet::from_rows(&[row], &master, NOW).unwrap()
    }

    fn facts() -> IdTokenFacts {
        IdTokenFacts {
            auth_time: Some(NOW - 30),
            nonce: Some("n-0S6_WzA2Mj".into()),
            session_hash: Some("abc".into()),
            claims: ProfileClaims {
                name: Some("Alice".into()),
                ..ProfileClaims::default()
            },
        }
    }

    fn mint_one(keys: &KeySet, access_token: &str) -> (String, IdClaims) {
        let amr = vec!["pwd".to_owned(), "otp".to_owned(), "mfa".to_owned()];
        let facts = facts();
        mint(
            keys.signer().unwrap(),
            ISS,
            &IdGrant {
                subject: "usr_1",
                client_id: "cl_1",
                amr: &amr,
                facts: &facts,
                access_token,
                sid_key: &[7; 32],
            },
            NOW,
            300,
        )
        .unwrap()
    }

    #[test]
    fn id_token_has_client_audience_nonce_at_hash_and_auth_time() {
        let keys = keyset("ES256");
        let (jwt, claims) = mint_one(&keys, "access.token.value");
        assert_eq!(claims.aud, "cl_1");
        assert_eq!(claims.azp, "cl_1");
        assert_eq!(claims.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
        assert_eq!(claims.auth_time, Some(NOW - 30));
        assert_eq!(claims.acr.as_deref(), Some(oidc::ACR_MFA));
        assert_eq!(claims.sid, Some(session_id(&[7; 32], "abc")));
        assert_eq!(claims.profile.name.as_deref(), Some("Alice"));
        assert_eq!(claims.exp, NOW + 300);
        // at_hash: left 128 bits of SHA-256, base64url (OIDC Core §3.1.3.6).
        let full = digest::digest(&digest::SHA256, b"access.token.value");
        assert_eq!(
            claims.at_hash.as_deref(),
            Some(URL_SAFE_NO_PAD.encode(&full.as_ref()[..16]).as_str())
        );
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(check_hint(&keys, ISS, &jwt), Ok(claims));
    }

    #[test]
    fn id_token_is_never_an_access_token() {
        let keys = keyset("ES256");
        let (jwt, _) = mint_one(&keys, "a.b.c");
        assert_eq!(tokens::verify_own(&keys, ISS, &jwt, NOW), None);
        // Nor is an access token an ID token hint.
        let (access, _) = tokens::mint(
            keys.signer().unwrap(),
            ISS,
            &AccessGrant {
                subject: "usr_1",
                client_id: "cl_1",
                audience: "https://api.example",
                scope: "openid",
                roles: &[],
                grant_id: None,
                amr: &[],
            },
            NOW,
            300,
        )
        .unwrap();
        assert_eq!(check_hint(&keys, ISS, &access), Err(Refusal::WrongType));
    }

    #[test]
    fn id_token_hint_from_another_key_or_issuer_is_refused() {
        let keys = keyset("ES256");
        let (jwt, _) = mint_one(&keys, "a.b.c");
        assert_eq!(
            check_hint(&keyset("ES256"), ISS, &jwt),
            Err(Refusal::UnknownKid)
        );
        assert_eq!(
            check_hint(&keys, "https://other.example", &jwt),
            Err(Refusal::WrongIssuer)
        );
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://auth.example","sub":"usr_2","aud":"cl_1","azp":"cl_1","exp":1,"iat":1}"#);
        parts[1] = &forged;
        assert_eq!(
            check_hint(&keys, ISS, &parts.join(".")),
            Err(Refusal::BadSignature)
        );
        assert_eq!(check_hint(&keys, ISS, "not a jwt"), Err(Refusal::Malformed));
    }

    #[test]
    fn at_hash_follows_the_signing_algorithm() {
        for (alg, len) in [
            (Algorithm::ES256, 16),
            (Algorithm::RS256, 16),
            (Algorithm::EdDSA, 32),
        ] {
            let decoded = URL_SAFE_NO_PAD.decode(at_hash(alg, "t")).unwrap();
            assert_eq!(decoded.len(), len, "{alg:?}");
        }
        for alg in ["RS256", "EdDSA"] {
            let keys = keyset(alg);
            let (jwt, claims) = mint_one(&keys, "x");
            assert_eq!(check_hint(&keys, ISS, &jwt), Ok(claims), "{alg}");
        }
    }
}
