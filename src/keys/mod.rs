//! Signing keys: generation, encryption at rest, the published JWKS, and the key that signs.
//!
//! Keys are parsed once (at start and on reload), never per request. The JWKS document is
//! precomputed bytes with an ETag. `kid` is the RFC 7638 thumbprint of the public key.

pub mod master;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

pub use master::MasterKey;

use crate::store::keys::SigningKeyRow;
use crate::store::AnyConnection;

/// The key that signs new tokens.
pub struct Signer {
    pub kid: String,
    pub alg: Algorithm,
    pub key: EncodingKey,
}

/// Everything the server needs of its keys, parsed once.
pub struct KeySet {
    signer: Option<Signer>,
    verifiers: HashMap<String, (Algorithm, DecodingKey)>,
    jwks: bytes_body::Body,
}

/// Precomputed JWKS bytes and their ETag.
pub mod bytes_body {
    /// A response body computed once.
    #[derive(Clone, Debug)]
    pub struct Body {
        pub bytes: actix_web::web::Bytes,
        pub etag: String,
    }

    impl Body {
        pub fn new(bytes: Vec<u8>) -> Body {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
            let etag = format!("\"{}\"", &crate::secret::hex(digest.as_ref())[..32]);
            Body {
                bytes: actix_web::web::Bytes::from(bytes),
                etag,
            }
        }
    }
}

/// Shared, reloadable key set.
#[derive(Clone)]
pub struct Keys(Arc<RwLock<Arc<KeySet>>>);

impl Keys {
    pub fn new(set: KeySet) -> Keys {
        Keys(Arc::new(RwLock::new(Arc::new(set))))
    }

    /// The current key set (cheap: one Arc clone).
    pub fn current(&self) -> Arc<KeySet> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, set: KeySet) {
        match self.0.write() {
            Ok(mut guard) => *guard = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
    }
}

impl KeySet {
    /// The key that signs now, if any.
    pub fn signer(&self) -> Option<&Signer> {
        self.signer.as_ref()
    }

    /// The published key with this kid, with its algorithm.
    pub fn verifier(&self, kid: &str) -> Option<&(Algorithm, DecodingKey)> {
        self.verifiers.get(kid)
    }

    /// The JWKS document.
    pub fn jwks(&self) -> &bytes_body::Body {
        &self.jwks
    }

    /// Parses the stored keys: those published at `now` go in the JWKS; the newest active one signs.
    pub fn from_rows(
        rows: &[SigningKeyRow],
        master: &MasterKey,
        now: i64,
    ) -> anyhow::Result<KeySet> {
        let mut signer: Option<(i64, Signer)> = None;
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        for row in rows {
            if row.expires_at.is_some_and(|t| t <= now) {
                continue;
            }
            let alg = parse_alg(&row.alg)?;
            let jwk: Jwk = serde_json::from_str(&row.public_jwk)
                .with_context(|| format!("stored public key {} is not a JWK", row.kid))?;
            let decoding = DecodingKey::from_jwk(&jwk)
                .with_context(|| format!("stored public key {} is unusable", row.kid))?;
            verifiers.insert(row.kid.clone(), (alg, decoding));
            published.push(jwk);
            let signs_now = row.activate_at <= now && row.retire_at.is_none_or(|t| t > now);
            if signs_now && signer.as_ref().is_none_or(|(at, _)| row.activate_at >= *at) {
                let der = master.open(&row.private_jwe)?;
                signer = Some((
                    row.activate_at,
                    Signer {
                        kid: row.kid.clone(),
                        alg,
                        key: encoding_key(alg, &der),
                    },
                ));
            }
        }
        let jwks = serde_json::to_vec(&JwkSet { keys: published })?;
        Ok(KeySet {
            signer: signer.map(|(_, s)| s),
            verifiers,
            jwks: bytes_body::Body::new(jwks),
        })
    }

    /// Loads the keys from the database, generating the first one when there is none that signs.
    pub fn load_or_init(
        conn: &mut AnyConnection,
        master: &MasterKey,
        algorithm: &str,
        now: i64,
    ) -> anyhow::Result<KeySet> {
        let rows = SigningKeyRow::all(conn)?;
        let set = KeySet::from_rows(&rows, master, now)?;
        if set.signer.is_some() {
            return Ok(set);
        }
        let row = generate(master, algorithm, now, now)?;
        row.insert(conn)?;
        tracing::info!(kid = %row.kid, alg = %row.alg, "generated a signing key");
        let rows = SigningKeyRow::all(conn)?;
        KeySet::from_rows(&rows, master, now)
    }
}

fn parse_alg(alg: &str) -> anyhow::Result<Algorithm> {
    match alg {
        "ES256" => Ok(Algorithm::ES256),
        other => anyhow::bail!("unsupported signing algorithm {other:?}"),
    }
}

fn encoding_key(alg: Algorithm, pkcs8_der: &[u8]) -> EncodingKey {
    // ES256 is the one algorithm so far; RS256 and EdDSA will dispatch on `alg` here.
    let _ = alg;
    EncodingKey::from_ec_der(pkcs8_der)
}

/// Generates a key pair, returning the row to store: private part sealed, public JWK with its
/// RFC 7638 thumbprint as `kid`.
pub fn generate(
    master: &MasterKey,
    algorithm: &str,
    now: i64,
    activate_at: i64,
) -> anyhow::Result<SigningKeyRow> {
    let alg = parse_alg(algorithm)?;
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("generating an ES256 key failed"))?;
    let der = pkcs8.as_ref().to_vec();
    let mut jwk = Jwk::from_encoding_key(&encoding_key(alg, &der), alg)?;
    let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(SigningKeyRow {
        kid,
        alg: algorithm.to_owned(),
        private_jwe: master.seal(&der)?,
        public_jwk: serde_json::to_string(&jwk)?,
        created_at: now,
        activate_at,
        retire_at: None,
        expires_at: None,
    })
}

/// One line of `gatehouse keys list`.
#[derive(Debug, serde::Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub state: &'static str,
    pub created_at: i64,
    pub activate_at: i64,
    pub retire_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl KeyInfo {
    pub fn of(row: &SigningKeyRow, now: i64, signing_kid: Option<&str>) -> KeyInfo {
        let state = if row.expires_at.is_some_and(|t| t <= now) {
            "expired"
        } else if signing_kid == Some(row.kid.as_str()) {
            "signing"
        } else if row.activate_at > now {
            "published"
        } else {
            "retired"
        };
        KeyInfo {
            kid: row.kid.clone(),
            alg: row.alg.clone(),
            state,
            created_at: row.created_at,
            activate_at: row.activate_at,
            retire_at: row.retire_at,
            expires_at: row.expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_exposes_public_members_only() {
        let master = MasterKey::generate();
        let row = generate(&master, "ES256", 100, 100).unwrap();
        let set = KeySet::from_rows(std::slice::from_ref(&row), &master, 100).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&set.jwks().bytes).unwrap();
        let key = &doc["keys"][0];
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "JWKS leaks {private}");
        }
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], row.kid);
        assert_eq!(set.signer().unwrap().kid, row.kid);
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        let master = MasterKey::generate();
        let row = generate(&master, "ES256", 0, 0).unwrap();
        let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk).unwrap();
        // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
        let canonical = format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["crv"].as_str().unwrap(),
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        use base64::Engine;
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
        assert_eq!(row.kid, expected);
    }

    #[test]
    fn private_keys_are_stored_encrypted() {
        let master = MasterKey::generate();
        let row = generate(&master, "ES256", 0, 0).unwrap();
        assert_eq!(row.private_jwe.split('.').count(), 5, "compact JWE");
        assert!(!row.private_jwe.contains("PRIVATE KEY"));
        let other = MasterKey::generate();
        assert!(KeySet::from_rows(&[row], &other, 0).is_err());
    }
}
