//! PKCE, S256 only (RFC 7636 §4.1–§4.6; RFC 9700 §2.1.1).

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::errors::OAuthError;
use crate::secret::constant_time_eq;

/// The only method Gatehouse accepts and advertises.
pub const METHOD: &str = "S256";

/// Checks the authorization request's challenge: method S256, 43 base64url characters.
pub fn check_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<String, OAuthError> {
    let challenge = challenge.ok_or_else(|| {
        OAuthError::invalid_request("code_challenge is required (PKCE with S256)")
    })?;
    match method {
        Some(METHOD) => {}
        None => {
            // RFC 7636 defaults to plain when the method is omitted; we accept S256 only.
            return Err(OAuthError::invalid_request(
                "code_challenge_method is required and must be S256",
            ));
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ))
        }
    }
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(OAuthError::invalid_request(
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    Ok(challenge.to_owned())
}

/// True when the verifier has the RFC 7636 §4.1 form: 43–128 characters of [A-Za-z0-9-._~].
pub fn verifier_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref())
}

/// Checks a token request's verifier against the stored challenge (`invalid_grant` on mismatch).
pub fn verify(verifier: Option<&str>, challenge: &str) -> Result<(), OAuthError> {
    let verifier =
        verifier.ok_or_else(|| OAuthError::invalid_grant("code_verifier is required"))?;
    if !verifier_well_formed(verifier) {
        return Err(OAuthError::invalid_grant(
            "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]",
        ));
    }
    if !constant_time_eq(&s256(verifier), challenge) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the challenge",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(s256(VERIFIER), CHALLENGE);
        assert!(verify(Some(VERIFIER), CHALLENGE).is_ok());
    }

    #[test]
    fn plain_and_unknown_methods_rejected() {
        assert!(check_challenge(Some(CHALLENGE), Some("plain")).is_err());
        assert!(check_challenge(Some(CHALLENGE), Some("S512")).is_err());
        assert!(check_challenge(Some(CHALLENGE), None).is_err());
        assert!(check_challenge(None, Some("S256")).is_err());
        assert!(check_challenge(Some(CHALLENGE), Some("S256")).is_ok());
    }

    #[test]
    fn verifier_abnf_enforced() {
        assert!(!verifier_well_formed(&"a".repeat(42)));
        assert!(verifier_well_formed(&"a".repeat(43)));
        assert!(verifier_well_formed(&"a".repeat(128)));
        assert!(!verifier_well_formed(&"a".repeat(129)));
        assert!(!verifier_well_formed(&format!("{}+", "a".repeat(43))));
        assert!(check_challenge(Some("short"), Some("S256")).is_err());
        assert!(check_challenge(Some(&format!("{}=", &CHALLENGE[..42])), Some("S256")).is_err());
    }

    #[test]
    fn wrong_or_missing_verifier_is_invalid_grant() {
        let wrong = "x".repeat(43);
        assert_eq!(
            verify(Some(&wrong), CHALLENGE).unwrap_err().code.as_str(),
            "invalid_grant"
        );
        assert_eq!(
            verify(None, CHALLENGE).unwrap_err().code.as_str(),
            "invalid_grant"
        );
    }
}
