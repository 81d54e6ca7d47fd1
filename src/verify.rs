//! Resource-server validation of Gatehouse access tokens (RFC 9068 §4, RFC 8725).
//!
//! A resource server never calls Gatehouse per request: [`Verifier`] fetches the JWKS, caches
//! it, and checks each token itself with the profile the server checks its own tokens with
//! ([`crate::jwt_profile`]): an asymmetric algorithm from the allow-list, `typ: at+jwt`, no key
//! embedded in or pointed to by the header, a published `kid`, the signature, `iss`, `aud`, and
//! `exp`/`nbf` with a small leeway.
//!
//! Fetching never holds up a token whose key is cached: a stale cache is refreshed in the
//! background while its keys stay in use, and only a token naming an unknown `kid` waits for a
//! fetch. However stale the cache or failed the last fetch, the JWKS is fetched at most once per
//! [`Config::min_refetch_interval`].
//!
//! With `default-features = false, features = ["verify"]` this module comes without the
//! authorization server (no Diesel, askama or oxide-auth).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::jwt_profile::{self, Expected, Refusal, ASYMMETRIC};

/// What a verifier accepts.
#[derive(Debug, Clone)]
pub struct Config {
    /// The issuer, compared exactly with `iss`.
    pub issuer: String,
    /// This resource server's URI: `aud` must equal it.
    pub audience: String,
    /// Where the keys are published (default: `{issuer}/.well-known/jwks.json`).
    pub jwks_uri: String,
    /// Accepted algorithms. Only asymmetric ones are ever accepted, whatever this lists.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// The JWKS is fetched at most this often, for an unknown `kid`, a stale cache or after a
    /// failure alike.
    pub min_refetch_interval: Duration,
    /// A cached JWKS older than this is refreshed in the background; its keys stay in use
    /// meanwhile, and after a failed refresh.
    pub max_cache_age: Duration,
}

impl Config {
    /// Defaults for a Gatehouse issuer: ES256, RS256 and EdDSA, 30 s leeway, refetch at most every
    /// 30 s, cache for 5 min.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Config {
        let issuer = issuer.into();
        Config {
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            issuer,
            audience: audience.into(),
            algorithms: vec![Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA],
            leeway_secs: 30,
            min_refetch_interval: Duration::from_secs(30),
            max_cache_age: Duration::from_secs(300),
        }
    }
}

/// The claims of a verified Gatehouse access token.
pub use crate::jwt_profile::AccessClaims as Claims;

/// Why a token was refused. `Display` is a short description fit for `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("algorithm {0} is not accepted")]
    AlgorithmNotAllowed(String),
    #[error("the token header embeds or points to a key (jwk, jku, x5u, x5c)")]
    EmbeddedKey,
    #[error("the token type must be at+jwt")]
    WrongType,
    #[error("no published key has this kid")]
    UnknownKey,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the signing keys could not be fetched: {0}")]
    JwksUnavailable(String),
}

impl VerifyError {
    /// True when the failure is the server side's (keys unavailable), not the token's.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, VerifyError::JwksUnavailable(_))
    }
}

impl From<Refusal> for VerifyError {
    fn from(refusal: Refusal) -> VerifyError {
        match refusal {
            Refusal::Malformed => VerifyError::Malformed,
            Refusal::AlgorithmNotAllowed(alg) => VerifyError::AlgorithmNotAllowed(alg),
            Refusal::EmbeddedKey => VerifyError::EmbeddedKey,
            Refusal::WrongType => VerifyError::WrongType,
            Refusal::MissingKid | Refusal::UnknownKid => VerifyError::UnknownKey,
            Refusal::BadSignature => VerifyError::BadSignature,
            Refusal::WrongIssuer => VerifyError::WrongIssuer,
            Refusal::WrongAudience => VerifyError::WrongAudience,
            Refusal::Expired => VerifyError::Expired,
            Refusal::NotYetValid => VerifyError::NotYetValid,
        }
    }
}

/// Published keys by `kid`, with the algorithm each is for, and when they were fetched.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    /// The last successful fetch.
    fetched: Option<Instant>,
    /// The start of the last fetch, successful or not: the next one waits
    /// `min_refetch_interval` from here.
    last_attempt: Option<Instant>,
    /// Why the last fetch failed, until one succeeds.
    last_error: Option<String>,
}

/// Verifies Gatehouse access tokens. Share one per process (it holds the JWKS cache).
pub struct Verifier {
    shared: Arc<Shared>,
}

/// What a background refresh needs of the verifier.
struct Shared {
    config: Config,
    http: reqwest::Client,
    /// Never held across an `.await`: a token with a cached key never waits for a fetch.
    cache: RwLock<KeyCache>,
    /// Held for the whole of a fetch, so that a token with an unknown `kid` can wait for the
    /// fetch in flight instead of starting another.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

/// Parses a JWKS document into verification keys: signature keys of an allowed asymmetric
/// algorithm with a `kid`; anything else (symmetric `oct` keys above all) is ignored.
pub fn keys_from_jwks(
    jwks: &JwkSet,
    allowed: &[Algorithm],
) -> HashMap<String, (Algorithm, DecodingKey)> {
    let mut keys = HashMap::new();
    for jwk in &jwks.keys {
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            continue;
        }
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        let (Some(kid), Some(alg)) = (&jwk.common.key_id, jwk.common.key_algorithm) else {
            continue;
        };
        let Ok(alg) = Algorithm::try_from(alg) else {
            continue;
        };
        if !ASYMMETRIC.contains(&alg) || !allowed.contains(&alg) {
            continue;
        }
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.insert(kid.clone(), (alg, key));
        }
    }
    keys
}

#[expect(
    clippy::disallowed_methods,
    reason = "Verifier::verify is the resource server's clock; verify_at takes `now`"
)]
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verifier {
    /// A verifier that fetches keys from `config.jwks_uri` when it first needs them.
    pub fn new(config: Config) -> Result<Verifier, VerifyError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| VerifyError::JwksUnavailable(format!("HTTP client: {e}")))?;
        Ok(Verifier {
            shared: Arc::new(Shared {
                config,
                http,
                cache: RwLock::new(KeyCache::default()),
                fetching: Arc::new(tokio::sync::Mutex::new(())),
            }),
        })
    }

    /// A verifier with the given keys already cached (tests, or keys obtained another way).
    pub fn with_jwks(config: Config, jwks: &JwkSet) -> Result<Verifier, VerifyError> {
        let verifier = Verifier::new(config)?;
        let keys = keys_from_jwks(jwks, &verifier.shared.config.algorithms);
        let mut cache = verifier.shared.cache_mut();
        cache.keys = keys;
        cache.fetched = Some(Instant::now());
        cache.last_attempt = Some(Instant::now());
        drop(cache);
        Ok(verifier)
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Verifies a token now.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verify_at(token, unix_now()).await
    }

    /// Verifies a token at `now` (unix seconds).
    ///
    /// A token whose key is cached is checked at once, even when the cache is stale: a
    /// refresh then runs in the background. Only a token with an unknown `kid` waits for a
    /// fetch. Either way the JWKS is fetched at most once per `min_refetch_interval`.
    pub async fn verify_at(&self, token: &str, now: u64) -> Result<Claims, VerifyError> {
        let config = &self.shared.config;
        let header = jwt_profile::check_header(token, &config.algorithms)?;
        let expected = Expected {
            issuer: &config.issuer,
            audience: Some(&config.audience),
            leeway_secs: config.leeway_secs,
            now: i64::try_from(now).unwrap_or(i64::MAX),
        };
        let check = |key_alg: Algorithm, key: &DecodingKey| {
            jwt_profile::check_claims::<Claims>(token, &header, key_alg, key, &expected)
                .map_err(VerifyError::from)
        };
        if let Some(result) = self.shared.with_key(&header.kid, check) {
            if self.shared.is_stale() {
                self.refresh_in_background();
            }
            return result;
        }
        // Unknown kid: the keys may have been rotated since the last fetch.
        self.shared.refresh_now().await;
        match self.shared.with_key(&header.kid, check) {
            Some(result) => result,
            None => Err(match self.shared.cache().last_error.clone() {
                // Whether the kid is published cannot be told without the JWKS.
                Some(why) => VerifyError::JwksUnavailable(why),
                None => VerifyError::UnknownKey,
            }),
        }
    }

    /// Starts a fetch without waiting for it, unless one is in flight, there is no runtime to
    /// run it on, or the last one began less than `min_refetch_interval` ago.
    fn refresh_in_background(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Taken here, not in the task, so that a token with an unknown kid arriving meanwhile
        // waits for this fetch.
        let Ok(fetching) = self.shared.fetching.clone().try_lock_owned() else {
            return;
        };
        if !self.shared.claim_attempt() {
            return;
        }
        let shared = self.shared.clone();
        runtime.spawn(async move {
            let _fetching = fetching;
            // A failure is kept in the cache; the keys already cached stay in use.
            shared.fetch_and_store().await;
        });
    }
}

impl Shared {
    fn cache(&self) -> RwLockReadGuard<'_, KeyCache> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn cache_mut(&self) -> RwLockWriteGuard<'_, KeyCache> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the cached key for `kid`; `None` when there is no such key.
    fn with_key<T>(&self, kid: &str, f: impl FnOnce(Algorithm, &DecodingKey) -> T) -> Option<T> {
        self.cache().keys.get(kid).map(|(alg, key)| f(*alg, key))
    }

    fn is_stale(&self) -> bool {
        self.cache()
            .fetched
            .is_none_or(|t| t.elapsed() > self.config.max_cache_age)
    }

    /// Takes the right to fetch: true at most once per `min_refetch_interval`, whatever the
    /// state of the cache or the outcome of the last fetch.
    fn claim_attempt(&self) -> bool {
        let mut cache = self.cache_mut();
        if cache
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.config.min_refetch_interval)
        {
            return false;
        }
        cache.last_attempt = Some(Instant::now());
        true
    }

    /// Waits for the fetch in flight, if any; then fetches unless the last attempt was too
    /// recent. The outcome is in the cache.
    async fn refresh_now(&self) {
        let _fetching = self.fetching.lock().await;
        if self.claim_attempt() {
            self.fetch_and_store().await;
        }
    }

    async fn fetch_and_store(&self) {
        let fetched = self.fetch().await;
        let mut cache = self.cache_mut();
        match fetched {
            Ok(jwks) => {
                cache.keys = keys_from_jwks(&jwks, &self.config.algorithms);
                cache.fetched = Some(Instant::now());
                cache.last_error = None;
            }
            Err(why) => cache.last_error = Some(why),
        }
    }

    /// GETs and parses the JWKS; the error says what failed, naming the URI.
    async fn fetch(&self) -> Result<JwkSet, String> {
        let uri = &self.config.jwks_uri;
        let resp = self
            .http
            .get(uri)
            .send()
            .await
            .map_err(|e| format!("GET {uri}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {uri} answered {}", resp.status()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reading {uri}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("{uri} is not a JWKS: {e}"))
    }
}

#[cfg(test)]
#[cfg(feature = "server")]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;
    use crate::keys::{generate, KeySet, MasterKey};

    const NOW: u64 = 1_800_000_000;
    const ISS: &str = "https://auth.example";
    const AUD: &str = "https://api.example";

    struct Fixture {
        keys: KeySet,
        verifier: Verifier,
    }

    fn fixture() -> Fixture {
        let master = MasterKey::generate();
        let row = generate(&master, "ES256", 0, 0).unwrap();
        let keys = KeySet::from_rows(&[row], &master, NOW as i64).unwrap();
        let jwks: JwkSet = serde_json::from_slice(&keys.jwks().bytes).unwrap();
        let mut config = Config::new(ISS, AUD);
        // Nothing listens here: a refetch would fail, and must not be attempted too often.
        config.jwks_uri = "http://127.0.0.1:9/jwks.json".into();
        config.min_refetch_interval = Duration::from_secs(3600);
        let verifier = Verifier::with_jwks(config, &jwks).unwrap();
        Fixture { keys, verifier }
    }

    fn claims() -> serde_json::Value {
        json!({"iss": ISS, "sub": "usr_1", "aud": AUD, "client_id": "cl_1", "iat": NOW,
               "exp": NOW + 900, "jti": "at_1", "scope": "api:read", "roles": ["admin"]})
    }

    fn sign(f: &Fixture, header: Header, claims: &serde_json::Value) -> String {
        f.keys.signer().unwrap().encode(&header, claims).unwrap()
    }

    fn header(f: &Fixture) -> Header {
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(f.keys.signer().unwrap().kid.clone());
        h
    }

    async fn check(f: &Fixture, token: &str) -> Result<Claims, VerifyError> {
        f.verifier.verify_at(token, NOW).await
    }

    #[tokio::test]
    async fn valid_token_verifies_with_scopes_and_roles() {
        let f = fixture();
        let c = check(&f, &sign(&f, header(&f), &claims())).await.unwrap();
        assert_eq!(c.sub, "usr_1");
        assert!(c.has_scope("api:read") && !c.has_scope("api:write"));
        assert!(c.has_role("admin") && !c.has_role("ops"));
    }

    #[tokio::test]
    async fn verifier_rejects_alg_none_and_hs256() {
        let f = fixture();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
        assert_eq!(
            check(&f, &format!("{none}.{body}.")).await,
            Err(VerifyError::AlgorithmNotAllowed("none".into()))
        );
        let mut hs = header(&f);
        hs.alg = Algorithm::HS256;
        let public = f.keys.jwks().bytes.clone();
        let forged =
            jsonwebtoken::encode(&hs, &claims(), &EncodingKey::from_secret(&public)).unwrap();
        assert_eq!(
            check(&f, &forged).await,
            Err(VerifyError::AlgorithmNotAllowed("HS256".into()))
        );
    }

    #[tokio::test]
    async fn verifier_rejects_embedded_keys_and_bad_typ() {
        let f = fixture();
        let mut jku = header(&f);
        jku.jku = Some("https://evil.example/jwks".into());
        assert_eq!(
            check(&f, &sign(&f, jku, &claims())).await,
            Err(VerifyError::EmbeddedKey)
        );
        let mut x5u = header(&f);
        x5u.x5u = Some("https://evil.example/cert".into());
        assert_eq!(
            check(&f, &sign(&f, x5u, &claims())).await,
            Err(VerifyError::EmbeddedKey)
        );
        let mut typ = header(&f);
        typ.typ = Some("JWT".into());
        assert_eq!(
            check(&f, &sign(&f, typ, &claims())).await,
            Err(VerifyError::WrongType)
        );
    }

    #[tokio::test]
    async fn verifier_rejects_unknown_kid_after_refetch() {
        let f = fixture();
        let mut h = header(&f);
        h.kid = Some("not-published".into());
        assert_eq!(
            check(&f, &sign(&f, h, &claims())).await,
            Err(VerifyError::UnknownKey)
        );
    }

    #[tokio::test]
    async fn verifier_checks_iss_aud_exp_nbf_with_leeway() {
        let f = fixture();
        let with = |k: &str, v: serde_json::Value| {
            let mut c = claims();
            c[k] = v;
            sign(&f, header(&f), &c)
        };
        assert_eq!(
            check(&f, &with("iss", json!("https://other.example"))).await,
            Err(VerifyError::WrongIssuer)
        );
        assert_eq!(
            check(&f, &with("aud", json!("https://other-api.example"))).await,
            Err(VerifyError::WrongAudience)
        );
        assert_eq!(
            check(&f, &with("exp", json!(NOW - 31))).await,
            Err(VerifyError::Expired)
        );
        assert!(
            check(&f, &with("exp", json!(NOW - 29))).await.is_ok(),
            "within leeway"
        );
        assert_eq!(
            check(&f, &with("nbf", json!(NOW + 31))).await,
            Err(VerifyError::NotYetValid)
        );
        assert!(
            check(&f, &with("nbf", json!(NOW + 29))).await.is_ok(),
            "within leeway"
        );
    }

    #[tokio::test]
    async fn verifier_rejects_tampering_and_garbage() {
        let f = fixture();
        let token = sign(&f, header(&f), &claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut wide = claims();
        wide["scope"] = json!("api:read admin");
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wide).unwrap());
        parts[1] = &body;
        assert_eq!(
            check(&f, &parts.join(".")).await,
            Err(VerifyError::BadSignature)
        );
        for garbage in ["", "a.b", "a.b.c.d", "!!!.???.###"] {
            assert_eq!(
                check(&f, garbage).await,
                Err(VerifyError::Malformed),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn jwks_keeps_only_asymmetric_signature_keys() {
        let jwks: JwkSet = serde_json::from_value(json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "alg": "ES256",
             "x": "fhlDA8AKOD-Z0Nm0ehf7Bg20vfGbDdlurCMZQhvKajI", "y": "qaRVUQeUDkNvCFbgEqgD3Vuaf8T_d5YpMnamYbtE0KA"},
            {"kty": "EC", "crv": "P-256", "kid": "sig", "use": "sig", "alg": "ES256",
             "x": "fhlDA8AKOD-Z0Nm0ehf7Bg20vfGbDdlurCMZQhvKajI", "y": "qaRVUQeUDkNvCFbgEqgD3Vuaf8T_d5YpMnamYbtE0KA"}
        ]}))
        .unwrap();
        let keys = keys_from_jwks(&jwks, &[Algorithm::ES256, Algorithm::HS256]);
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["sig"]);
    }

    #[tokio::test]
    async fn unreachable_jwks_is_a_clear_error() {
        let mut config = Config::new(ISS, AUD);
        config.jwks_uri = "http://127.0.0.1:9/jwks.json".into();
        let verifier = Verifier::new(config).unwrap();
        let f = fixture();
        let err = verifier
            .verify_at(&sign(&f, header(&f), &claims()), NOW)
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    }
}
