//! Scopes (RFC 6749 §3.3): syntax checked strictly, then held as oxide-auth's `Scope` set.

use oxide_auth::primitives::scope::Scope;

use super::errors::OAuthError;

/// Parses a requested scope string: tokens of NQCHAR separated by single spaces, no duplicates.
pub fn parse(text: &str) -> Result<Scope, OAuthError> {
    let mut seen: Vec<&str> = Vec::new();
    for token in text.split(' ') {
        if token.is_empty() {
            return Err(OAuthError::invalid_scope(
                "scope must be tokens separated by single spaces",
            ));
        }
        // NQCHAR = %x21 / %x23-5B / %x5D-7E
        if !token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            return Err(OAuthError::invalid_scope(
                "scope contains a character RFC 6749 §3.3 forbids",
            ));
        }
        if seen.contains(&token) {
            return Err(OAuthError::invalid_scope("scope names a value twice"));
        }
        seen.push(token);
    }
    text.parse::<Scope>()
        .map_err(|_| OAuthError::invalid_scope("scope is not valid"))
}

/// The scope a client may receive: what it asked for, which must lie within what it is allowed;
/// when it asks for nothing, everything it is allowed.
pub fn negotiate(requested: Option<&str>, allowed: &[String]) -> Result<Scope, OAuthError> {
    let allowed_scope = allowed_scope(allowed)?;
    match requested {
        None => Ok(allowed_scope),
        Some(text) => {
            let scope = parse(text)?;
            if scope.allow_access(&allowed_scope) {
                Ok(scope)
            } else {
                Err(OAuthError::invalid_scope(
                    "the requested scope exceeds what this client may ask for",
                ))
            }
        }
    }
}

/// The client's allowed scopes as a set (an empty list allows the empty scope only).
pub fn allowed_scope(allowed: &[String]) -> Result<Scope, OAuthError> {
    allowed
        .join(" ")
        .parse::<Scope>()
        .map_err(|_| OAuthError::invalid_scope("the client's registered scopes are invalid"))
}

/// The scope as a space-separated string, tokens sorted (stable for storage and tokens).
pub fn to_string(scope: &Scope) -> String {
    let mut tokens: Vec<&str> = scope.iter().collect();
    tokens.sort_unstable();
    tokens.join(" ")
}

/// Reads a scope Gatehouse stored itself (validated when it was granted).
pub fn parse_stored(text: &str) -> Result<Scope, OAuthError> {
    text.parse::<Scope>()
        .map_err(|_| OAuthError::invalid_grant("the stored grant is unreadable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["openid".into(), "api:read".into(), "api:write".into()]
    }

    #[test]
    fn scope_within_allow_list_is_granted() {
        let s = negotiate(Some("api:read"), &allowed()).unwrap();
        assert_eq!(to_string(&s), "api:read");
        let all = negotiate(None, &allowed()).unwrap();
        assert_eq!(to_string(&all), "api:read api:write openid");
    }

    #[test]
    fn scope_beyond_allow_list_is_invalid_scope() {
        let err = negotiate(Some("api:read admin"), &allowed()).unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_scope");
    }

    #[test]
    fn odd_whitespace_and_duplicates_rejected() {
        assert!(parse("a  b").is_err());
        assert!(parse(" a").is_err());
        assert!(parse("a\tb").is_err());
        assert!(parse("a a").is_err());
        assert!(parse("a\"b").is_err());
    }
}
