//! Strict parameter parsing for every endpoint (RFC 6749 §3.1, §3.2): a parameter given twice is
//! an error, an empty value counts as absent, and sizes are bounded.

use std::collections::BTreeMap;

use super::errors::OAuthError;

/// Longest accepted parameter value; longer ones are rejected, not truncated.
pub const MAX_VALUE_LEN: usize = 4096;
/// Most parameters one request may carry.
pub const MAX_PARAMS: usize = 32;

/// Decoded request parameters, each present at most once.
#[derive(Debug, Default, Clone)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a body or a query string).
    pub fn parse(encoded: &[u8]) -> Result<Params, OAuthError> {
        let mut map = BTreeMap::new();
        for (count, (key, value)) in form_urlencoded::parse(encoded).enumerate() {
            if count >= MAX_PARAMS {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            if value.len() > MAX_VALUE_LEN || key.len() > 64 {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {} is too long",
                    printable(&key)
                )));
            }
            // No backend stores a NUL in text (PostgreSQL refuses it): refuse it here, for all.
            if key.contains('\0') || value.contains('\0') {
                return Err(OAuthError::invalid_request(
                    "parameters must not contain NUL characters",
                ));
            }
            if map.contains_key(key.as_ref()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {} is given more than once",
                    printable(&key)
                )));
            }
            map.insert(key.into_owned(), value.into_owned());
        }
        // RFC 6749 §3.1: parameters sent without a value are treated as omitted.
        map.retain(|_, v| !v.is_empty());
        Ok(Params(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A required parameter.
    pub fn require(&self, key: &'static str) -> Result<&str, OAuthError> {
        self.get(key)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {key}")))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// A parameter name safe to echo in a description.
fn printable(key: &str) -> String {
    let clean: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect();
    if clean.is_empty() {
        "(unnamed)".to_owned()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_params_rejected() {
        let err = Params::parse(b"grant_type=a&grant_type=b").unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_request");
    }

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::parse(b"scope=&state=x").unwrap();
        assert!(p.get("scope").is_none());
        assert_eq!(p.get("state"), Some("x"));
    }

    #[test]
    fn nul_characters_rejected() {
        assert!(Params::parse(b"client_id=a%00b").is_err());
        assert!(Params::parse(b"a%00=b").is_err());
    }

    #[test]
    fn oversized_values_rejected() {
        let body = format!("state={}", "a".repeat(MAX_VALUE_LEN + 1));
        assert!(Params::parse(body.as_bytes()).is_err());
    }
}
