//! The access-token profile, checked in one place (RFC 9068 §4, RFC 8725 §3).
//!
//! The server's own introspection and revocation ([`crate::tokens`], `server` feature) and the
//! resource-server check ([`crate::verify`], `verify` feature) both run these two functions, so
//! that what one accepts the other accepts too:
//!
//! - [`check_header`], before any key is looked up: an asymmetric algorithm from the caller's
//!   allow-list, no key embedded in or pointed to by the header (`jwk`, `jku`, `x5u`, `x5c`),
//!   `typ` `at+jwt` or `application/at+jwt` (any case), and a `kid`.
//! - [`check_claims`], with the key the `kid` names: the key's own algorithm, the signature,
//!   `iss` exactly, `aud` when the caller names one, and `exp`/`nbf` against the caller's `now`
//!   with one leeway. The wall clock is never read here.
//!
//! Only crates both features have are used here (jsonwebtoken, serde, base64).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Every asymmetric algorithm there is a verifier for. HMAC is never accepted: a published
/// public key must not become a shared secret (RFC 8725 §3.1).
pub const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

/// Why a token does not fit the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not three base64url parts, a header or payload that is not JSON, or a claim of the wrong
    /// shape.
    Malformed,
    /// The header's algorithm, made printable (see [`printable_alg`]).
    AlgorithmNotAllowed(String),
    EmbeddedKey,
    WrongType,
    MissingKid,
    /// None of the caller's keys has the `kid` (the caller's lookup decides this, not the
    /// profile).
    UnknownKid,
    BadSignature,
    WrongIssuer,
    WrongAudience,
    Expired,
    NotYetValid,
}

/// What the header said, once it passed [`check_header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedHeader {
    pub alg: Algorithm,
    pub kid: String,
}

/// The header members the checks need. Each key-bearing member is read as any JSON value, so
/// that its mere presence refuses the token.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    jwk: Option<serde_json::Value>,
    jku: Option<serde_json::Value>,
    x5u: Option<serde_json::Value>,
    x5c: Option<serde_json::Value>,
}

/// Longest algorithm name repeated back in an error.
const ALG_NAME_MAX: usize = 16;

/// The header's `alg` as it may appear in an error description, and so in a
/// `WWW-Authenticate` header: printable ASCII only, truncated. A name with control characters
/// would otherwise make the response header invalid.
pub fn printable_alg(name: &str) -> String {
    name.chars()
        .take(ALG_NAME_MAX)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// Checks the header: algorithm (allowed by the caller and asymmetric), no key in it, the type,
/// a `kid`. Checked in that order, so that an unsigned or HMAC token is named as such.
pub fn check_header(token: &str, allowed: &[Algorithm]) -> Result<CheckedHeader, Refusal> {
    check_header_of(token, allowed, is_access_token_type)
}

/// `typ` at+jwt or application/at+jwt, in any case (RFC 9068 §2.1).
fn is_access_token_type(typ: Option<&str>) -> bool {
    let typ = typ.unwrap_or_default();
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// [`check_header`] for another kind of token, whose `typ` `typ_ok` accepts.
pub fn check_header_of(
    token: &str,
    allowed: &[Algorithm],
    typ_ok: fn(Option<&str>) -> bool,
) -> Result<CheckedHeader, Refusal> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Refusal::Malformed)?;
    let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed)?;
    let alg_name = raw.alg.ok_or(Refusal::Malformed)?;
    let alg = alg_name
        .parse::<Algorithm>()
        .ok()
        .filter(|a| ASYMMETRIC.contains(a) && allowed.contains(a))
        .ok_or_else(|| Refusal::AlgorithmNotAllowed(printable_alg(&alg_name)))?;
    if raw.jwk.is_some() || raw.jku.is_some() || raw.x5u.is_some() || raw.x5c.is_some() {
        return Err(Refusal::EmbeddedKey);
    }
    if !typ_ok(raw.typ.as_deref()) {
        return Err(Refusal::WrongType);
    }
    let kid = raw.kid.ok_or(Refusal::MissingKid)?;
    Ok(CheckedHeader { alg, kid })
}

/// The validity window of a set of claims.
pub trait Lifetime {
    /// `exp`, unix seconds.
    fn exp(&self) -> i64;
    /// `nbf`, unix seconds, when the token has one.
    fn nbf(&self) -> Option<i64>;
}

/// The claims of a Gatehouse access token (RFC 9068 §2.2): what the server signs and what
/// resource servers read, one definition for both.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user's id, or the client's own for client_credentials (never equal, checklist 34).
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub iat: i64,
    pub exp: i64,
    /// Gatehouse issues none; honoured when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The grant (refresh-token family) the token was issued from; introspection reports the
    /// token inactive once that grant is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// How the user authenticated (RFC 8176): `pwd`, and `otp` and `mfa` after a second factor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

impl AccessClaims {
    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

impl Lifetime for AccessClaims {
    fn exp(&self) -> i64 {
        self.exp
    }

    fn nbf(&self) -> Option<i64> {
        self.nbf
    }
}

/// What the claims must say, and the time to check them at.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// Compared exactly with `iss`.
    pub issuer: &'a str,
    /// Compared with `aud`; `None` when the caller decides about the audience itself.
    pub audience: Option<&'a str>,
    /// Clock skew tolerated on both `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// The caller's time, unix seconds.
    pub now: i64,
}

/// Checks signature and claims of a token whose header passed [`check_header`], with the key
/// its `kid` names and the algorithm that key is for.
pub fn check_claims<C: DeserializeOwned + Lifetime>(
    token: &str,
    header: &CheckedHeader,
    key_alg: Algorithm,
    key: &DecodingKey,
    expected: &Expected<'_>,
) -> Result<C, Refusal> {
    use jsonwebtoken::errors::ErrorKind;
    // A key verifies only with the algorithm it was published for (RFC 8725 §3.1).
    if header.alg != key_alg {
        return Err(Refusal::AlgorithmNotAllowed(format!("{:?}", header.alg)));
    }
    let mut validation = Validation::new(key_alg);
    validation.set_issuer(&[expected.issuer]);
    match expected.audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Time is checked below against the caller's `now`: the library would read the wall clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims: C = jsonwebtoken::decode::<C>(token, key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => Refusal::BadSignature,
            ErrorKind::InvalidIssuer => Refusal::WrongIssuer,
            ErrorKind::InvalidAudience => Refusal::WrongAudience,
            ErrorKind::InvalidAlgorithm => {
                Refusal::AlgorithmNotAllowed(format!("{:?}", header.alg))
            }
            _ => Refusal::Malformed,
        })?
        .claims;
    let leeway = i64::try_from(expected.leeway_secs).unwrap_or(i64::MAX);
    if claims.exp().saturating_add(leeway) <= expected.now {
        return Err(Refusal::Expired);
    }
    if claims
        .nbf()
        .is_some_and(|nbf| nbf.saturating_sub(leeway) > expected.now)
    {
        return Err(Refusal::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(json: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(json))
    }

    #[test]
    fn typ_is_at_jwt_or_its_media_type_in_any_case() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+JWT",
        ] {
            let token = header_of(&format!(r#"{{"alg":"ES256","typ":"{typ}","kid":"k"}}"#));
            assert_eq!(
                check_header(&token, ASYMMETRIC),
                Ok(CheckedHeader {
                    alg: Algorithm::ES256,
                    kid: "k".into()
                }),
                "{typ}"
            );
        }
        for typ in [
            r#""JWT""#,
            r#""jwt""#,
            r#""at+jwt ""#,
            r#""application/jwt""#,
            "null",
        ] {
            let token = header_of(&format!(r#"{{"alg":"ES256","typ":{typ},"kid":"k"}}"#));
            assert_eq!(
                check_header(&token, ASYMMETRIC),
                Err(Refusal::WrongType),
                "{typ}"
            );
        }
        let no_typ = header_of(r#"{"alg":"ES256","kid":"k"}"#);
        assert_eq!(check_header(&no_typ, ASYMMETRIC), Err(Refusal::WrongType));
    }

    #[test]
    fn only_allowed_asymmetric_algorithms_pass() {
        let with_alg =
            |alg: &str| header_of(&format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"k"}}"#));
        for alg in ["HS256", "HS384", "HS512", "none", "None", "es256", ""] {
            assert_eq!(
                check_header(&with_alg(alg), ASYMMETRIC),
                Err(Refusal::AlgorithmNotAllowed(alg.into())),
                "{alg}"
            );
        }
        // Allowed by the profile, but not by this caller.
        assert_eq!(
            check_header(&with_alg("RS256"), &[Algorithm::ES256]),
            Err(Refusal::AlgorithmNotAllowed("RS256".into()))
        );
        // HMAC stays out even when a caller lists it.
        assert_eq!(
            check_header(&with_alg("HS256"), &[Algorithm::HS256]),
            Err(Refusal::AlgorithmNotAllowed("HS256".into()))
        );
    }

    #[test]
    fn alg_with_control_characters_is_refused_in_printable_form() {
        for alg in [
            r"ES\u0000256",
            r"\u0007\r\n",
            r"ES256\u007f",
            "\u{e9}\u{202e}",
            r#"a\"b"#,
        ] {
            let token = header_of(&format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"k"}}"#));
            let Err(Refusal::AlgorithmNotAllowed(shown)) = check_header(&token, ASYMMETRIC) else {
                panic!("{alg} passed");
            };
            assert!(shown.chars().all(|c| c.is_ascii_graphic()), "{shown:?}");
        }
        let long = "A".repeat(10_000);
        let token = header_of(&format!(r#"{{"alg":"{long}","typ":"at+jwt","kid":"k"}}"#));
        assert_eq!(
            check_header(&token, ASYMMETRIC),
            Err(Refusal::AlgorithmNotAllowed("A".repeat(ALG_NAME_MAX)))
        );
        // Not a string at all.
        let token = header_of(r#"{"alg":5,"typ":"at+jwt","kid":"k"}"#);
        assert_eq!(check_header(&token, ASYMMETRIC), Err(Refusal::Malformed));
    }

    #[test]
    fn keys_in_the_header_and_a_missing_kid_are_refused() {
        for member in [
            r#""jwk":{"kty":"EC"}"#,
            r#""jku":"https://evil.example/jwks""#,
            r#""x5u":"https://evil.example/cert""#,
            r#""x5c":["MIIB"]"#,
        ] {
            let token = header_of(&format!(
                r#"{{"alg":"ES256","typ":"at+jwt","kid":"k",{member}}}"#
            ));
            assert_eq!(
                check_header(&token, ASYMMETRIC),
                Err(Refusal::EmbeddedKey),
                "{member}"
            );
        }
        let token = header_of(r#"{"alg":"ES256","typ":"at+jwt"}"#);
        assert_eq!(check_header(&token, ASYMMETRIC), Err(Refusal::MissingKid));
    }
}
