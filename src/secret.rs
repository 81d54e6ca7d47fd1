//! Random values and their hashes: codes, refresh tokens, session ids, client secrets, ids.
//!
//! Every value is 256 bits from the operating system's CSPRNG (checklist 13); the database stores
//! only SHA-256 of the secret ones, so a leaked table yields nothing usable.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// 32 random bytes. Panics never: a failing system RNG aborts start-up long before.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // SystemRandom::fill fails only when the OS has no entropy source at all.
    if SystemRandom::new().fill(&mut buf).is_err() {
        std::process::abort();
    }
    buf
}

/// A secret handed to a client or browser once: never logged, never stored in the clear.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(String);

impl PlainToken {
    /// A fresh 256-bit token, base64url without padding (43 characters).
    pub fn generate() -> PlainToken {
        PlainToken(URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
    }

    /// A fresh token whose hash sorts by `at_millis` (unix milliseconds, `state::in_millis`), for
    /// tokens stored at every request (codes, refresh tokens): [`PlainToken::ordered`] of 256
    /// random bits as [`PlainToken::generate`] has them.
    pub fn generate_ordered(at_millis: i64) -> PlainToken {
        PlainToken::ordered(at_millis, &URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
    }

    /// `body` (43 characters of base64url: random, or derived as a refresh token's successor is)
    /// behind `at_millis` (unix milliseconds) as 12 lower-case hex digits: 55 characters.
    /// [`TokenHash::of`] keeps those digits in front of the hash, so the index of these hashes
    /// grows at its end instead of at a random page, and a write touches pages that are cached
    /// and already being written. The time says no more than the `iat` of the tokens issued
    /// with it.
    pub fn ordered(at_millis: i64, body: &str) -> PlainToken {
        PlainToken(format!("{:012x}{body}", at_millis.max(0) & MAX_ORDERED_AT))
    }

    /// Wraps a value received from a client.
    pub fn from_presented(value: impl Into<String>) -> PlainToken {
        PlainToken(value.into())
    }

    /// The value itself, for the one response that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainToken(<redacted>)")
    }
}

/// What an ordered token's 12 hex digits hold of its time (unix milliseconds), as
/// [`new_ordered_id`] keeps it.
const MAX_ORDERED_AT: i64 = 0xffff_ffff_ffff;

/// The length of an ordered token ([`PlainToken::ordered`]) and of its time digits.
const ORDERED_LEN: usize = 55;
const ORDERED_AT_LEN: usize = 12;

/// What the database stores of a secret value: hex SHA-256 of it, behind the time digits of an
/// ordered token ([`PlainToken::ordered`]). A value of any other form (tokens made before ordered
/// ones existed, client secrets, session cookies) keeps the bare hash it always had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(pub String);

impl TokenHash {
    pub fn of(value: &str) -> TokenHash {
        let digest = hex(digest::digest(&digest::SHA256, value.as_bytes()).as_ref());
        match ordered_at(value) {
            Some(at) => TokenHash(format!("{at}{digest}")),
            None => TokenHash(digest),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short, non-reversible prefix of the hash (never of the time digits) for logs.
    pub fn log_prefix(&self) -> &str {
        let digest = self
            .0
            .get(self.0.len().saturating_sub(64)..)
            .unwrap_or(&self.0);
        digest.get(..8).unwrap_or(digest)
    }
}

/// The time digits of an ordered token: 55 characters whose first 12 are lower-case hex.
fn ordered_at(value: &str) -> Option<&str> {
    if value.len() != ORDERED_LEN {
        return None;
    }
    value
        .get(..ORDERED_AT_LEN)
        .filter(|at| at.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Constant-time equality of two strings (client secrets, CSRF tokens).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A new identifier with a prefix naming its kind, e.g. `usr_…` or `cl_…`.
/// The prefixes keep user and client subjects in separate namespaces (checklist 34).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(random_bytes::<16>()))
}

/// A new identifier that sorts after those made before it: the prefix, `at_millis` (the
/// creation time in unix milliseconds, `state::in_millis`) as 12 hex digits, then 128 random
/// bits as [`new_id`] has. For rows inserted at every request (grants): their key's index then
/// grows at its end, as a log does, instead of at a random page, so a write touches a page that
/// is cached and already being written. The random part alone keeps the ids unique and
/// unguessable; the time part says no more than the `iat` of the tokens.
pub fn new_ordered_id(prefix: &str, at_millis: i64) -> String {
    let at = at_millis.max(0) & MAX_ORDERED_AT;
    format!(
        "{prefix}_{at:012x}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<16>())
    )
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// HMAC-SHA256, base64url (CSRF tokens).
pub fn hmac_b64(key: &[u8], parts: &[&str]) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ids_sort_by_creation_and_stay_unguessable() {
        let earlier = new_ordered_id("gr", 1_800_000_000_999);
        let later = new_ordered_id("gr", 1_800_000_001_000);
        assert!(earlier < later, "{earlier} then {later}");
        assert!(later.starts_with("gr_") && later.len() == 3 + 12 + 22);
        let same_millisecond: std::collections::HashSet<_> = (0..100)
            .map(|_| new_ordered_id("gr", 1_800_000_000_000))
            .collect();
        assert_eq!(
            same_millisecond.len(),
            100,
            "the random part keeps them unique"
        );
        // Before 1970 or past the 48 bits, the time part is still 12 hex digits.
        assert_eq!(new_ordered_id("gr", -5).len(), 37);
        assert_eq!(new_ordered_id("gr", i64::MAX).len(), 37);
    }

    #[test]
    fn tokens_are_256_bit_csprng() {
        let a = PlainToken::generate();
        let b = PlainToken::generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        assert_ne!(a, b);
        assert_eq!(a.hash().as_str().len(), 64);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn ordered_tokens_hash_behind_their_time_and_sort_by_it() {
        let a = PlainToken::generate_ordered(1_800_000_000_000);
        let b = PlainToken::generate_ordered(1_800_000_000_001);
        assert_eq!(a.expose().len(), 55);
        assert!(a.expose().starts_with("01a3185c5000"));
        assert_eq!(URL_SAFE_NO_PAD.decode(&a.expose()[12..]).unwrap().len(), 32);
        let (ha, hb) = (a.hash(), b.hash());
        assert_eq!(ha.as_str().len(), 76);
        assert!(ha.as_str().starts_with("01a3185c5000"));
        assert!(
            ha.as_str() < hb.as_str(),
            "a later token's hash sorts after"
        );
        // The hash covers the whole token, time digits included.
        let digest = hex(digest::digest(&digest::SHA256, a.expose().as_bytes()).as_ref());
        assert_eq!(&ha.as_str()[12..], digest);
        let moved = format!("01a3185c5001{}", &a.expose()[12..]);
        assert_ne!(&TokenHash::of(&moved).as_str()[12..], digest);
        // Logs get the hash's first characters, never the time.
        assert_eq!(ha.log_prefix(), &digest[..8]);
        // Before 1970 or past the 48 bits, the form is the same.
        assert_eq!(PlainToken::generate_ordered(-5).expose().len(), 55);
        assert_eq!(PlainToken::generate_ordered(i64::MAX).expose().len(), 55);
    }

    #[test]
    fn a_value_not_in_the_ordered_form_keeps_its_bare_hash() {
        let old = PlainToken::generate();
        assert_eq!(old.hash().as_str().len(), 64);
        assert_eq!(old.hash().log_prefix(), &old.hash().as_str()[..8]);
        for value in [
            // 55 characters, but upper-case or non-hex digits in front.
            "01A3185C5000".to_owned() + &"A".repeat(43),
            "01a3185c500g".to_owned() + &"A".repeat(43),
            // The right digits, a length other than 55.
            "01a3185c5000".to_owned() + &"A".repeat(42),
            // A multi-byte character straddling the digits' end.
            "01a3185c500é".to_owned() + &"A".repeat(42),
        ] {
            assert_eq!(TokenHash::of(&value).as_str().len(), 64, "{value}");
        }
    }

    #[test]
    fn ids_carry_their_namespace() {
        assert!(new_id("usr").starts_with("usr_"));
        assert_ne!(new_id("cl"), new_id("cl"));
    }
}
