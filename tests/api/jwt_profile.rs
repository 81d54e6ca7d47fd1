//! `gatehouse::verify` against a JWKS endpoint that can be made slow or failing (issue 7,
//! security fixes): fetches stay within `min_refetch_interval`, a token whose key is cached
//! verifies while a fetch hangs, and a header `alg` with control characters is a 401.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse::keys::{generate, KeySet, MasterKey};
use gatehouse::tokens::{mint, AccessGrant};
use gatehouse::verify::{Config, Verifier, VerifyError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::AUDIENCE;

const ISS: &str = "https://auth.example";
const NOW: i64 = 1_800_000_000;

/// How long the endpoint takes to answer when it hangs: far beyond what any test waits.
const HANG: Duration = Duration::from_secs(5);

const SERVE: u8 = 0;
const FAIL: u8 = 1;
const HANG_UP: u8 = 2;

/// A JWKS endpoint on 127.0.0.1 that counts its requests and answers as `mode` says.
struct JwksEndpoint {
    uri: String,
    requests: Arc<AtomicUsize>,
    mode: Arc<AtomicU8>,
}

impl JwksEndpoint {
    async fn start(jwks: Vec<u8>, mode: u8) -> JwksEndpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let mode = Arc::new(AtomicU8::new(mode));
        let (count, answer) = (requests.clone(), mode.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (count, answer, jwks) = (count.clone(), answer.clone(), jwks.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let mode = answer.load(Ordering::SeqCst);
                    if mode == HANG_UP {
                        tokio::time::sleep(HANG).await;
                    }
                    let (status, body) = if mode == FAIL {
                        ("500 Internal Server Error", b"{}".to_vec())
                    } else {
                        ("200 OK", jwks)
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                });
            }
        });
        JwksEndpoint {
            uri,
            requests,
            mode,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

fn key_set() -> KeySet {
    let master = MasterKey::generate();
    let row = generate(&master, "ES256", 0, 0).unwrap();
    KeySet::from_rows(&[row], &master, NOW).unwrap()
}

#[expect(
    clippy::disallowed_methods,
    reason = "the example resource server checks tokens against the real clock"
)]
fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A real Gatehouse access token signed by `keys`, issued at `now`.
fn token_at(keys: &KeySet, now: i64) -> String {
    let grant = AccessGrant {
        subject: "usr_1",
        client_id: "cl_1",
        audience: AUDIENCE,
        scope: "api:read",
        roles: &[],
        grant_id: None,
        amr: &[],
    };
    mint(keys.signer().unwrap(), ISS, &grant, now, 900)
        .unwrap()
        .0
}

fn token(keys: &KeySet) -> String {
    token_at(keys, NOW)
}

async fn check(verifier: &Verifier, token: &str) -> Result<gatehouse::verify::Claims, VerifyError> {
    verifier.verify_at(token, NOW as u64).await
}

fn verifier(jwks_uri: &str, min_refetch_interval: Duration, max_cache_age: Duration) -> Verifier {
    let mut config = Config::new(ISS, AUDIENCE);
    config.jwks_uri = jwks_uri.to_owned();
    config.min_refetch_interval = min_refetch_interval;
    config.max_cache_age = max_cache_age;
    Verifier::new(config).unwrap()
}

/// Lets any background fetch the verifier started reach the endpoint.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn jwks_is_not_refetched_for_a_stale_cache_when_the_endpoint_fails() {
    let keys = key_set();
    let endpoint = JwksEndpoint::start(keys.jwks().bytes.to_vec(), SERVE).await;
    // Always stale, and one fetch an hour.
    let verifier = verifier(&endpoint.uri, Duration::from_secs(3600), Duration::ZERO);
    let cached = token(&keys);
    let unknown = token(&key_set());
    assert!(check(&verifier, &cached).await.is_ok());
    assert_eq!(endpoint.requests(), 1);

    endpoint.set(FAIL);
    for _ in 0..20 {
        assert!(
            check(&verifier, &cached).await.is_ok(),
            "cached keys stay in use"
        );
        assert_eq!(
            check(&verifier, &unknown).await,
            Err(VerifyError::UnknownKey)
        );
    }
    settle().await;
    assert_eq!(
        endpoint.requests(),
        1,
        "no fetch within min_refetch_interval"
    );
}

#[tokio::test]
async fn jwks_is_not_refetched_after_a_failed_fetch() {
    let keys = key_set();
    let endpoint = JwksEndpoint::start(keys.jwks().bytes.to_vec(), FAIL).await;
    let verifier = verifier(&endpoint.uri, Duration::from_secs(3600), Duration::ZERO);
    let token = token(&keys);
    for _ in 0..20 {
        let err = check(&verifier, &token).await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(err.to_string().contains(&endpoint.uri), "{err}");
    }
    settle().await;
    assert_eq!(
        endpoint.requests(),
        1,
        "no fetch within min_refetch_interval"
    );
}

#[tokio::test]
async fn jwks_is_refetched_once_the_interval_has_passed() {
    let keys = key_set();
    let endpoint = JwksEndpoint::start(keys.jwks().bytes.to_vec(), FAIL).await;
    let interval = Duration::from_millis(300);
    let verifier = verifier(&endpoint.uri, interval, Duration::ZERO);
    let token = token(&keys);
    assert!(check(&verifier, &token).await.is_err());
    assert_eq!(endpoint.requests(), 1);
    tokio::time::sleep(interval * 2).await;
    endpoint.set(SERVE);
    assert!(
        check(&verifier, &token).await.is_ok(),
        "the endpoint is back"
    );
    assert_eq!(endpoint.requests(), 2);
}

#[tokio::test]
async fn cached_kid_verifies_while_the_jwks_endpoint_hangs() {
    let keys = key_set();
    let endpoint = JwksEndpoint::start(keys.jwks().bytes.to_vec(), SERVE).await;
    // Always stale, and allowed to refetch at every request: each one wants a refresh.
    let verifier = verifier(&endpoint.uri, Duration::ZERO, Duration::ZERO);
    let token = token(&keys);
    assert!(check(&verifier, &token).await.is_ok());

    endpoint.set(HANG_UP);
    let checks = async {
        for _ in 0..10 {
            assert!(check(&verifier, &token).await.is_ok());
            // Let the background fetch start and reach the hanging endpoint.
            tokio::task::yield_now().await;
        }
    };
    // Well before the endpoint's HANG: no check waited for the fetch.
    tokio::time::timeout(Duration::from_secs(2), checks)
        .await
        .expect("a token with a cached key waited for the JWKS fetch");
    // The refresh did start; while it hangs, more checks start no other.
    for _ in 0..30 {
        if endpoint.requests() >= 2 {
            break;
        }
        settle().await;
    }
    for _ in 0..10 {
        assert!(check(&verifier, &token).await.is_ok());
    }
    settle().await;
    assert_eq!(endpoint.requests(), 2, "one refresh in flight at a time");
}

/// The example binary, built by `cargo test` next to the test binary.
fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/resource_server");
    assert!(
        path.exists(),
        "{} is missing: cargo test builds examples",
        path.display()
    );
    path
}

/// Stops the example when the test ends, whichever way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A token whose header names `alg` (JSON-escaped), with a valid-looking rest.
fn token_with_alg(escaped_alg: &str) -> String {
    let header = format!(r#"{{"alg":"{escaped_alg}","typ":"at+jwt","kid":"k1"}}"#);
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"{ISS}","sub":"usr_1"}}"#))
    )
}

const CONTROL_ALGS: [&str; 5] = [
    r"ES\u0000256",
    r"\u0007",
    r"ES256\r\n",
    r"\u007f",
    r"RS256\u001b[2J",
];

#[tokio::test]
async fn alg_with_control_characters_is_a_clean_verify_error() {
    let keys = key_set();
    let endpoint = JwksEndpoint::start(keys.jwks().bytes.to_vec(), SERVE).await;
    let verifier = verifier(
        &endpoint.uri,
        Duration::from_secs(30),
        Duration::from_secs(300),
    );
    for alg in CONTROL_ALGS {
        let err = check(&verifier, &token_with_alg(alg)).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::AlgorithmNotAllowed(_)),
            "{alg}: {err:?}"
        );
        // What a resource server puts in WWW-Authenticate must be a valid header value.
        let description = err.to_string();
        assert!(
            reqwest::header::HeaderValue::from_str(&description).is_ok()
                && description
                    .chars()
                    .all(|c| c == ' ' || c.is_ascii_graphic()),
            "{alg}: {description:?}"
        );
    }
    assert_eq!(
        endpoint.requests(),
        0,
        "refused before any key is looked up"
    );
}

#[tokio::test]
async fn example_answers_401_to_an_alg_with_control_characters() {
    let keys = key_set();
    let endpoint = JwksEndpoint::start(keys.jwks().bytes.to_vec(), SERVE).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _example = Running(
        Command::new(example_binary())
            .env("RS_BIND", format!("127.0.0.1:{port}"))
            .env("RS_ISSUER", ISS)
            .env("RS_AUDIENCE", AUDIENCE)
            .env("RS_JWKS_URI", &endpoint.uri)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let read = format!("http://127.0.0.1:{port}/read");
    let mut up = false;
    for _ in 0..100 {
        if http.get(&read).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the example resource server did not start");

    for alg in CONTROL_ALGS {
        let resp = http
            .get(&read)
            .bearer_auth(token_with_alg(alg))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{alg}");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{alg}: {challenge}");
    }
    // A valid token still passes, so the 401s above are the header's doing.
    let resp = http
        .get(&read)
        .bearer_auth(token_at(&keys, wall_clock()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}
