//! Signing keys: generation, encryption at rest, the published JWKS, and the key that signs.
//!
//! Keys are parsed once (at start and on reload), never per request: [`Signer::encode`] signs
//! with the parsed key pair. The JWKS document is precomputed bytes with an ETag. `kid` is the
//! RFC 7638 thumbprint of the public key.

pub mod master;
pub mod rotation;
pub mod schedule;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

pub use master::MasterKey;

use crate::document::Document;
use crate::store::keys::SigningKeyRow;
use crate::store::AnyConnection;

/// The key that signs new tokens.
pub struct Signer {
    pub kid: String,
    pub alg: Algorithm,
    /// The private key parsed once into aws-lc's key pair: [`Signer::encode`] signs with it,
    /// where `jsonwebtoken::encode` would parse (and check) the private key at every signature.
    pair: KeyPair,
}

/// A parsed private key, ready to sign.
enum KeyPair {
    Es256(EcdsaKeyPair),
    Rs256(aws_lc_rs::rsa::KeyPair),
    EdDsa(Ed25519KeyPair),
}

impl KeyPair {
    /// Parses a stored private key (PKCS#8 v1 DER) for `alg`.
    fn parse(alg: Algorithm, pkcs8_der: &[u8]) -> anyhow::Result<KeyPair> {
        let unusable = |_| anyhow::anyhow!("the {alg:?} private key cannot be parsed");
        Ok(match alg {
            Algorithm::ES256 => KeyPair::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8_der)
                    .map_err(unusable)?,
            ),
            Algorithm::RS256 => {
                KeyPair::Rs256(aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8_der).map_err(unusable)?)
            }
            Algorithm::EdDSA => {
                KeyPair::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8_der).map_err(unusable)?)
            }
            other => anyhow::bail!("unsupported signing algorithm {other:?}"),
        })
    }

    /// The JWS signature of `message` (RFC 7518 §3: ES256 as the fixed-width `R || S`).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, jsonwebtoken::errors::Error> {
        let failed = |_| jsonwebtoken::errors::ErrorKind::InvalidKeyFormat;
        Ok(match self {
            KeyPair::Es256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            KeyPair::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(failed)?;
                signature
            }
            KeyPair::EdDsa(pair) => pair.sign(message).as_ref().to_vec(),
        })
    }
}

impl Signer {
    /// A compact JWS (RFC 7515 §7.1) of `claims` under `header`, signed with this key: what
    /// `jsonwebtoken::encode` makes with the same key, without parsing the key again.
    pub fn encode<T: serde::Serialize>(
        &self,
        header: &jsonwebtoken::Header,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        if header.alg != self.alg {
            return Err(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into());
        }
        let mut jws = String::with_capacity(1024);
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(header)?, &mut jws);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut jws);
        let signature = self.pair.sign(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }
}

/// Everything the server needs of its keys, parsed once.
pub struct KeySet {
    signer: Option<Signer>,
    verifiers: HashMap<String, (Algorithm, DecodingKey)>,
    jwks: Document,
    /// When a stored key activates, retires or expires next: the set is stale from then on.
    next_change: Option<i64>,
}

/// Shared, reloadable key set.
#[derive(Clone)]
pub struct Keys {
    current: Arc<RwLock<Arc<KeySet>>>,
    /// Held from reading the rows to replacing the set, so that a slow reload cannot replace
    /// the result of a later one.
    reloading: Arc<Mutex<()>>,
}

impl Keys {
    pub fn new(set: KeySet) -> Keys {
        Keys {
            current: Arc::new(RwLock::new(Arc::new(set))),
            reloading: Arc::new(Mutex::new(())),
        }
    }

    /// The current key set (cheap: one Arc clone).
    pub fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, set: KeySet) {
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
    }

    /// Runs `load` and installs the set it returns, one reload at a time. `load` returns the
    /// set, or `None` to keep the current one, and a value passed back to the caller.
    pub fn reload_with<T>(
        &self,
        load: impl FnOnce(&KeySet) -> anyhow::Result<(Option<KeySet>, T)>,
    ) -> anyhow::Result<T> {
        let _one_at_a_time = match self.reloading.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (set, out) = load(&self.current())?;
        if let Some(set) = set {
            self.replace(set);
        }
        Ok(out)
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
    pub fn jwks(&self) -> &Document {
        &self.jwks
    }

    /// Parses the stored keys: those published at `now` go in the JWKS, each verifying with
    /// its own algorithm; the one [`schedule::signing_key`] names signs.
    pub fn from_rows(
        rows: &[SigningKeyRow],
        master: &MasterKey,
        now: i64,
    ) -> anyhow::Result<KeySet> {
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        for row in rows.iter().filter(|r| schedule::is_published(r, now)) {
            let alg = parse_alg(&row.alg)?;
            let jwk: Jwk = serde_json::from_str(&row.public_jwk)
                .with_context(|| format!("stored public key {} is not a JWK", row.kid))?;
            let decoding = DecodingKey::from_jwk(&jwk)
                .with_context(|| format!("stored public key {} is unusable", row.kid))?;
            verifiers.insert(row.kid.clone(), (alg, decoding));
            published.push(jwk);
        }
        let signer = match schedule::signing_key(rows, now) {
            Some(row) => {
                let alg = parse_alg(&row.alg)?;
                let der = master.open(&row.private_jwe)?;
                Some(Signer {
                    kid: row.kid.clone(),
                    alg,
                    pair: KeyPair::parse(alg, &der)
                        .with_context(|| format!("stored private key {} is unusable", row.kid))?,
                })
            }
            None => None,
        };
        let jwks = serde_json::to_vec(&JwkSet { keys: published })?;
        Ok(KeySet {
            signer,
            verifiers,
            jwks: Document::new(jwks),
            next_change: schedule::next_change(rows, now),
        })
    }

    /// When this set goes stale by itself (a key activates, retires or expires), if ever.
    pub fn next_change(&self) -> Option<i64> {
        self.next_change
    }

    /// The kids in the JWKS.
    pub fn published_kids(&self) -> impl Iterator<Item = &str> {
        self.verifiers.keys().map(String::as_str)
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

/// The signing algorithms `keys.algorithm` may name.
pub use crate::config::SIGNING_ALGORITHMS as ALGORITHMS;

/// The algorithm a stored key (or `keys.algorithm`) names.
pub fn parse_alg(alg: &str) -> anyhow::Result<Algorithm> {
    match alg {
        "ES256" => Ok(Algorithm::ES256),
        "RS256" => Ok(Algorithm::RS256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => anyhow::bail!(
            "unsupported signing algorithm {other:?}: use one of {}",
            ALGORITHMS.join(", ")
        ),
    }
}

/// The jsonwebtoken signing key of a stored private key (PKCS#8 v1 DER for every algorithm).
fn encoding_key(alg: Algorithm, pkcs8_der: &[u8]) -> anyhow::Result<EncodingKey> {
    match alg {
        // jsonwebtoken's aws-lc backend reads ECDSA and Ed25519 keys as PKCS#8 …
        Algorithm::ES256 => Ok(EncodingKey::from_ec_der(pkcs8_der)),
        Algorithm::EdDSA => Ok(EncodingKey::from_ed_der(pkcs8_der)),
        // … but RSA keys as PKCS#1 `RSAPrivateKey`: its PEM reader unwraps the PKCS#8 envelope.
        Algorithm::RS256 => {
            use base64::Engine;
            let body = base64::engine::general_purpose::STANDARD.encode(pkcs8_der);
            // The PEM armour is built at run time around the key just decrypted; no key text
            // lives in the source.
            const LABEL: &str = "PRIVATE KEY";
            let pem = format!("-----BEGIN {LABEL}-----\n{body}\n-----END {LABEL}-----\n");
            Ok(EncodingKey::from_rsa_pem(pem.as_bytes())?)
        }
        other => anyhow::bail!("unsupported signing algorithm {other:?}"),
    }
}

/// A fresh private key for `alg`, as PKCS#8 v1 DER (jsonwebtoken needs v1 for Ed25519).
fn new_private_key(alg: Algorithm) -> anyhow::Result<Vec<u8>> {
    let failed = |_| anyhow::anyhow!("generating a {alg:?} key failed");
    Ok(match alg {
        Algorithm::ES256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(failed)?
                .as_ref()
                .to_vec()
        }
        Algorithm::RS256 => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(failed)?
            .as_der()
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        other => anyhow::bail!("unsupported signing algorithm {other:?}"),
    })
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
    let der = new_private_key(alg)?;
    let mut jwk = Jwk::from_encoding_key(&encoding_key(alg, &der)?, alg)?;
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
    /// Every stored key with its state at `now`.
    pub fn list(rows: &[SigningKeyRow], now: i64) -> Vec<KeyInfo> {
        let signing = schedule::signing_key(rows, now).map(|r| r.kid.as_str());
        rows.iter().map(|r| KeyInfo::of(r, now, signing)).collect()
    }

    pub fn of(row: &SigningKeyRow, now: i64, signing_kid: Option<&str>) -> KeyInfo {
        KeyInfo {
            kid: row.kid.clone(),
            alg: row.alg.clone(),
            state: schedule::state_of(row, now, signing_kid).as_str(),
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
    fn every_algorithm_signs_and_publishes_its_public_key_only() {
        use crate::tokens::{mint, verify_own, AccessGrant};
        let master = MasterKey::generate();
        let grant = AccessGrant {
            subject: "usr_1",
            client_id: "cl_1",
            audience: "https://api.example",
            scope: "api:read",
            roles: &[],
            grant_id: None,
            amr: &[],
        };
        for (alg, kty) in [("ES256", "EC"), ("RS256", "RSA"), ("EdDSA", "OKP")] {
            let row = generate(&master, alg, 100, 100).unwrap();
            assert_eq!(row.alg, alg);
            let set = KeySet::from_rows(std::slice::from_ref(&row), &master, 100).unwrap();
            let doc: serde_json::Value = serde_json::from_slice(&set.jwks().bytes).unwrap();
            let key = &doc["keys"][0];
            assert_eq!(key["kty"], kty, "{alg}");
            assert_eq!(key["alg"], alg);
            assert_eq!(key["kid"], row.kid);
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(key.get(private).is_none(), "{alg} JWKS leaks {private}");
            }
            let jwk: Jwk = serde_json::from_value(key.clone()).unwrap();
            assert_eq!(jwk.thumbprint(ThumbprintHash::SHA256).unwrap(), row.kid);
            let signer = set.signer().unwrap();
            assert_eq!(signer.alg, parse_alg(alg).unwrap());
            let (jwt, claims) = mint(signer, "https://as.example", &grant, 100, 900).unwrap();
            assert_eq!(
                verify_own(&set, "https://as.example", &jwt, 101),
                Some(claims),
                "{alg}"
            );
        }
    }

    #[test]
    fn signer_signs_once_parsed_as_jsonwebtoken_would() {
        use jsonwebtoken::{decode, Header, Validation};
        let master = MasterKey::generate();
        let claims = serde_json::json!({"sub": "usr_1", "exp": 4_000_000_000_i64, "n": "ü"});
        for alg in ["ES256", "RS256", "EdDSA"] {
            let row = generate(&master, alg, 100, 100).unwrap();
            let set = KeySet::from_rows(std::slice::from_ref(&row), &master, 100).unwrap();
            let signer = set.signer().unwrap();
            let mut header = Header::new(signer.alg);
            header.kid = Some(signer.kid.clone());
            let ours = signer.encode(&header, &claims).unwrap();
            let key = encoding_key(signer.alg, &master.open(&row.private_jwe).unwrap()).unwrap();
            let theirs = jsonwebtoken::encode(&header, &claims, &key).unwrap();
            // The same header and payload; RS256 and EdDSA signatures are deterministic, so
            // the same token; ES256's are not, so it must verify instead.
            let (signed, _) = ours.rsplit_once('.').unwrap();
            assert_eq!(signed, theirs.rsplit_once('.').unwrap().0, "{alg}");
            if alg != "ES256" {
                assert_eq!(ours, theirs, "{alg}");
            }
            let (key_alg, key) = set.verifier(&signer.kid).unwrap();
            let mut validation = Validation::new(*key_alg);
            validation.required_spec_claims.clear();
            let decoded = decode::<serde_json::Value>(&ours, key, &validation).unwrap();
            assert_eq!(decoded.claims, claims, "{alg}");
            // A header naming another algorithm is refused, not signed.
            let other = Header::new(if alg == "RS256" {
                Algorithm::ES256
            } else {
                Algorithm::RS256
            });
            assert!(signer.encode(&other, &claims).is_err(), "{alg}");
        }
    }

    #[test]
    fn tokens_of_every_published_key_verify_with_its_own_algorithm() {
        use crate::tokens::{mint, verify_own, AccessGrant};
        let master = MasterKey::generate();
        let grant = AccessGrant {
            subject: "usr_1",
            client_id: "cl_1",
            audience: "https://api.example",
            scope: "",
            roles: &[],
            grant_id: None,
            amr: &[],
        };
        // ES256 signed until 200; RS256 since. Both are published at 250.
        let mut old = generate(&master, "ES256", 0, 0).unwrap();
        old.retire_at = Some(200);
        old.expires_at = Some(2000);
        let new = generate(&master, "RS256", 100, 200).unwrap();
        let rows = [old.clone(), new.clone()];
        let before = KeySet::from_rows(&rows, &master, 150).unwrap();
        let after = KeySet::from_rows(&rows, &master, 250).unwrap();
        assert_eq!(before.signer().unwrap().kid, old.kid);
        assert_eq!(after.signer().unwrap().kid, new.kid);
        assert_eq!(after.signer().unwrap().alg, Algorithm::RS256);
        let (es, _) = mint(before.signer().unwrap(), "https://as", &grant, 150, 900).unwrap();
        let (rs, _) = mint(after.signer().unwrap(), "https://as", &grant, 250, 900).unwrap();
        for set in [&before, &after] {
            assert!(verify_own(set, "https://as", &es, 250).is_some());
            assert!(verify_own(set, "https://as", &rs, 250).is_some());
        }
        assert_eq!(before.next_change(), Some(200));
        // Once the ES256 key expires, its tokens are no longer ours.
        let later = KeySet::from_rows(&rows, &master, 2000).unwrap();
        assert!(verify_own(&later, "https://as", &es, 1000).is_none());
        assert!(verify_own(&later, "https://as", &rs, 1000).is_some());
        assert_eq!(
            later.published_kids().collect::<Vec<_>>(),
            [new.kid.as_str()]
        );
    }

    #[test]
    fn unknown_algorithms_are_refused() {
        let master = MasterKey::generate();
        for alg in ["HS256", "none", "es256", "PS256", ""] {
            assert!(generate(&master, alg, 0, 0).is_err(), "{alg}");
        }
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
