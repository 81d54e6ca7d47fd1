//! The token endpoint: PKCE, codes, refresh-token rotation, client authentication, grant types,
//! JWT access tokens and what gets logged (SECURITY-CHECKLIST rules 6-34, 56).

use std::sync::{Arc, Mutex, Once, OnceLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use diesel::prelude::*;
use gatehouse::registry::NewClient;
use gatehouse::store::schema::{auth_codes, clients, grants, interactions, refresh_tokens};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

/// A second resource server a client may be registered for.
const SECOND_AUDIENCE: &str = "https://reports.example.com";

/// Rounds of each concurrency test.
const ROUNDS: usize = 20;

/// Every error code RFC 6749 §5.2 / RFC 8707 allow at the token endpoint.
const RFC_TOKEN_ERRORS: [&str; 7] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];

// ---------------------------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------------------------

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

fn sha256_hex(value: &str) -> String {
    sha256(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A PKCE pair for an arbitrary (even malformed) verifier: challenge = BASE64URL(SHA256(v)).
fn pkce_for(verifier: &str) -> Pkce {
    Pkce {
        verifier: verifier.to_owned(),
        challenge: URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes())),
    }
}

/// Runs authorize → login (first time) → consent as `alice`, returns the code.
async fn code_for(app: &TestApp, client: &TestClient, pkce: &Pkce) -> String {
    code_with(app, client, pkce, &[]).await
}

async fn code_with(
    app: &TestApp,
    client: &TestClient,
    pkce: &Pkce,
    extra: &[(&str, &str)],
) -> String {
    let q = app.authorize_code(client, "alice", pkce, extra).await;
    q.get("code")
        .unwrap_or_else(|| panic!("no code in redirect: {q:?}"))
        .to_owned()
}

/// Status, headers and JSON body of a response.
async fn read(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, headers, body)
}

/// Asserts a 200 token response and returns its JSON.
async fn ok_json(resp: reqwest::Response) -> Value {
    let (status, _, body) = read(resp).await;
    assert_eq!(status, 200, "expected success, got {body}");
    body
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v}"))
        .to_owned()
}

fn basic_of(client: &TestClient) -> String {
    basic(
        &client.id,
        client.secret.as_deref().expect("confidential client"),
    )
}

/// The authorization-code token request form of a client (no client authentication in it).
fn code_form(code: &str, verifier: &str) -> Vec<(String, String)> {
    vec![
        ("grant_type".into(), "authorization_code".into()),
        ("code".into(), code.into()),
        ("redirect_uri".into(), REDIRECT.into()),
        ("code_verifier".into(), verifier.into()),
    ]
}

fn as_refs(form: &[(String, String)]) -> Vec<(&str, &str)> {
    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Exchanges a code as a confidential client with HTTP Basic.
async fn exchange_basic(
    app: &TestApp,
    client: &TestClient,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    let form = code_form(code, verifier);
    app.post_form("/token", &as_refs(&form), Some(&basic_of(client)))
        .await
}

/// Refreshes as a confidential client with HTTP Basic.
async fn refresh_basic(app: &TestApp, client: &TestClient, rt: &str) -> reqwest::Response {
    app.post_form(
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        Some(&basic_of(client)),
    )
    .await
}

/// Full login + exchange for a confidential client (Basic).
async fn confidential_tokens(app: &TestApp, client: &TestClient) -> Value {
    let p = pkce();
    let code = code_for(app, client, &p).await;
    ok_json(exchange_basic(app, client, &code, &p.verifier).await).await
}

/// A cookie jar of its own: a second user's browser.
fn new_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("browser")
}

/// Sends `n` copies of one token request at the same moment; returns each status and body.
async fn race(app: &TestApp, form: Vec<(String, String)>, n: usize) -> Vec<(u16, Value)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let url = app.url("/token");
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let api = app.api.clone();
            let url = url.clone();
            let form = form.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let resp = api.post(url).form(&form).send().await.expect("POST /token");
                let status = resp.status().as_u16();
                let text = resp.text().await.expect("body");
                let body: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("status {status}: not JSON: {text:?}"));
                (status, body)
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

fn assert_one_winner(results: &[(u16, Value)]) {
    let wins = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(wins, 1, "exactly one success expected: {results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 400, "losers get 400, never 500: {results:?}");
        assert_eq!(
            body["error"], "invalid_grant",
            "losers get invalid_grant: {results:?}"
        );
    }
}

fn assert_no_cache(headers: &reqwest::header::HeaderMap, what: &str) {
    let cc = headers
        .get("cache-control")
        .unwrap_or_else(|| panic!("{what}: no Cache-Control"))
        .to_str()
        .expect("ascii");
    assert!(
        cc.split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("no-store")),
        "{what}: Cache-Control {cc:?} lacks no-store"
    );
    let pragma = headers
        .get("pragma")
        .unwrap_or_else(|| panic!("{what}: no Pragma"))
        .to_str()
        .expect("ascii");
    assert!(
        pragma.eq_ignore_ascii_case("no-cache"),
        "{what}: Pragma {pragma:?}"
    );
}

fn all_code_rows(conn: &mut gatehouse::store::AnyConnection) -> Vec<Vec<String>> {
    auth_codes::table
        .select((
            auth_codes::code_hash,
            auth_codes::grant_id,
            auth_codes::client_id,
            auth_codes::user_id,
            auth_codes::redirect_uri,
            auth_codes::scope,
            auth_codes::audience,
            auth_codes::code_challenge,
        ))
        .load::<(
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
        )>(conn)
        .expect("auth_codes")
        .into_iter()
        .map(|(a, b, c, d, e, f, g, h)| vec![a, b, c, d, e, f, g, h])
        .collect()
}

fn all_refresh_rows(conn: &mut gatehouse::store::AnyConnection) -> Vec<Vec<String>> {
    refresh_tokens::table
        .select((
            refresh_tokens::token_hash,
            refresh_tokens::grant_id,
            refresh_tokens::client_id,
            refresh_tokens::user_id,
            refresh_tokens::scope,
            refresh_tokens::audience,
        ))
        .load::<(String, String, String, Option<String>, String, String)>(conn)
        .expect("refresh_tokens")
        .into_iter()
        .map(|(a, b, c, d, e, f)| vec![a, b, c, d.unwrap_or_default(), e, f])
        .collect()
}

// ---------------------------------------------------------------------------------------------
// P0 — code and PKCE
// ---------------------------------------------------------------------------------------------

both_backends!(
    wrong_or_missing_verifier_is_invalid_grant,
    |app: TestApp| async move {
        let client = app.spa();
        app.user("alice", &[]);
        let p = pkce();
        let code = code_for(&app, &client, &p).await;

        // A well-formed verifier that is not the one behind the challenge.
        let wrong = URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert_ne!(wrong, p.verifier);
        assert_oauth_error(
            app.exchange(&client, &code, &wrong).await,
            400,
            "invalid_grant",
        )
        .await;

        // No verifier at all.
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("client_id", &client.id),
                ],
                None,
            )
            .await;
        assert_oauth_error(resp, 400, "invalid_grant").await;

        // An empty verifier counts as missing.
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("client_id", &client.id),
                    ("code_verifier", ""),
                ],
                None,
            )
            .await;
        assert_oauth_error(resp, 400, "invalid_grant").await;

        // The failed attempts did not consume the code: the right verifier still works.
        let tokens = ok_json(app.exchange(&client, &code, &p.verifier).await).await;
        assert!(tokens["access_token"].is_string());
    }
);

both_backends!(verifier_abnf_enforced, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
    // Each malformed verifier gets a code whose challenge IS its S256: only the ABNF check can
    // refuse it.
    let bad = [
        "a".repeat(42),
        "b".repeat(129),
        format!("{}+", "c".repeat(42)),
        format!("{} {}", "d".repeat(21), "d".repeat(21)),
        format!("{}/=", "e".repeat(41)),
    ];
    for verifier in &bad {
        let p = pkce_for(verifier);
        let code = code_for(&app, &client, &p).await;
        let resp = app.exchange(&client, &code, verifier).await;
        let (status, _, body) = read(resp).await;
        assert_eq!(
            status,
            400,
            "verifier {verifier:?} ({} chars): {body}",
            verifier.len()
        );
        assert_eq!(
            body["error"], "invalid_grant",
            "verifier {verifier:?}: {body}"
        );
    }
    // The boundaries, with every allowed punctuation character, are accepted.
    let good = [
        format!("{}-._~", "A".repeat(39)),
        format!("{}z9-._~", "Z".repeat(122)),
    ];
    for verifier in &good {
        assert!(verifier.len() == 43 || verifier.len() == 128);
        let p = pkce_for(verifier);
        let code = code_for(&app, &client, &p).await;
        let resp = app.exchange(&client, &code, verifier).await;
        let (status, _, body) = read(resp).await;
        assert_eq!(
            status,
            200,
            "valid verifier of {} chars refused: {body}",
            verifier.len()
        );
    }
});

both_backends!(pkce_downgrade_impossible, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
    for query in [
        // No challenge, no method.
        form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("state", "state-123")
            .finish(),
        // A method but no challenge.
        form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("state", "state-123")
            .append_pair("code_challenge_method", "S256")
            .finish(),
    ] {
        let resp = app.get_authorize(&query).await;
        assert!(
            resp.status().is_redirection(),
            "expected an error redirect, got {}",
            resp.status()
        );
        let loc = location(&resp);
        assert!(loc.starts_with(REDIRECT), "error goes to the client: {loc}");
        let q = query_of(&loc);
        assert_eq!(
            q.get("error").map(String::as_str),
            Some("invalid_request"),
            "{loc}"
        );
        assert_eq!(q.get("state").map(String::as_str), Some("state-123"));
        assert_eq!(q.get("iss"), Some(&app.issuer));
        assert!(
            !q.contains_key("code"),
            "no code without a challenge: {loc}"
        );
    }
    // Nothing was stored that could become a code.
    let mut conn = app.conn();
    let codes: i64 = auth_codes::table
        .count()
        .get_result(&mut conn)
        .expect("count");
    let pending: i64 = interactions::table
        .count()
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(codes, 0, "no code exists without a challenge");
    assert_eq!(pending, 0, "no pending authorization without a challenge");

    // Control: with a challenge the same client does get a code, and every stored code carries
    // a challenge.
    let p = pkce();
    code_for(&app, &client, &p).await;
    let challenges: Vec<String> = auth_codes::table
        .select(auth_codes::code_challenge)
        .load(&mut conn)
        .expect("challenges");
    assert_eq!(challenges, vec![p.challenge.clone()]);
});

both_backends!(code_single_use_atomically, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
    // Several rounds: a race that is lost only sometimes still shows.
    for _ in 0..ROUNDS {
        let p = pkce();
        let code = code_for(&app, &client, &p).await;
        let mut form = code_form(&code, &p.verifier);
        form.push(("client_id".into(), client.id.clone()));
        let results = race(&app, form, 8).await;
        assert_one_winner(&results);
        // And afterwards it is spent.
        assert_oauth_error(
            app.exchange(&client, &code, &p.verifier).await,
            400,
            "invalid_grant",
        )
        .await;
    }
});

both_backends!(replayed_code_revokes_tokens, |app: TestApp| async move {
    let client = app.spa();
    let introspector = app.confidential();
    app.user("alice", &[]);
    let p = pkce();
    let code = code_for(&app, &client, &p).await;
    let first = ok_json(app.exchange(&client, &code, &p.verifier).await).await;
    let at = s(&first, "access_token");
    let rt = s(&first, "refresh_token");
    // Control: the access token is active before the replay.
    assert_eq!(app.introspect(&introspector, &at).await["active"], true);

    assert_oauth_error(
        app.exchange(&client, &code, &p.verifier).await,
        400,
        "invalid_grant",
    )
    .await;

    assert_oauth_error(app.refresh(&client, &rt).await, 400, "invalid_grant").await;
    assert_eq!(
        app.introspect(&introspector, &at).await,
        serde_json::json!({"active": false})
    );
});

both_backends!(expired_code_is_invalid_grant, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
    let p = pkce();
    let code = code_for(&app, &client, &p).await;
    let hash = sha256_hex(&code);
    let mut conn = app.conn();
    let (created, expires): (i64, i64) = auth_codes::table
        .find(&hash)
        .select((auth_codes::created_at, auth_codes::expires_at))
        .first(&mut conn)
        .expect("stored code");
    assert_eq!(expires - created, 60, "code TTL must be 60 s");
    assert!(expires - created <= 600);

    diesel::update(auth_codes::table.find(&hash))
        .set(auth_codes::expires_at.eq(gatehouse::state::now() - 1))
        .execute(&mut conn)
        .expect("expire code");
    assert_oauth_error(
        app.exchange(&client, &code, &p.verifier).await,
        400,
        "invalid_grant",
    )
    .await;

    // Control: an unexpired code of the same client is redeemed.
    let p2 = pkce();
    let code2 = code_for(&app, &client, &p2).await;
    ok_json(app.exchange(&client, &code2, &p2.verifier).await).await;
});

both_backends!(
    code_bound_to_client_and_redirect_uri,
    |app: TestApp| async move {
        let client = app.spa();
        let other = app.spa();
        app.user("alice", &[]);

        // Another client presents the code.
        let p = pkce();
        let code = code_for(&app, &client, &p).await;
        assert_oauth_error(
            app.exchange(&other, &code, &p.verifier).await,
            400,
            "invalid_grant",
        )
        .await;

        let with_redirect = |code: String, verifier: String, redirect: Option<&'static str>| {
            let mut form = vec![
                ("grant_type".to_owned(), "authorization_code".to_owned()),
                ("code".to_owned(), code),
                ("client_id".to_owned(), client.id.clone()),
                ("code_verifier".to_owned(), verifier),
            ];
            if let Some(r) = redirect {
                form.push(("redirect_uri".to_owned(), r.to_owned()));
            }
            form
        };
        for redirect in [
            Some("http://127.0.0.1:5173/callback/"),
            Some("http://127.0.0.1:5173/callback?x=1"),
            Some("http://localhost:5173/callback"),
            Some("http://127.0.0.1:5173/other"),
            None,
        ] {
            let p = pkce();
            let code = code_for(&app, &client, &p).await;
            let form = with_redirect(code, p.verifier.clone(), redirect);
            let resp = app.post_form("/token", &as_refs(&form), None).await;
            let (status, _, body) = read(resp).await;
            assert_eq!(status, 400, "redirect_uri {redirect:?}: {body}");
            assert_eq!(
                body["error"], "invalid_grant",
                "redirect_uri {redirect:?}: {body}"
            );
        }

        // Control: the same request with the original redirect_uri by the original client works.
        let p = pkce();
        let code = code_for(&app, &client, &p).await;
        let form = with_redirect(code, p.verifier.clone(), Some(REDIRECT));
        ok_json(app.post_form("/token", &as_refs(&form), None).await).await;
    }
);

both_backends!(codes_and_tokens_are_256_bit, |app: TestApp| async move {
    let client = app.spa();
    let conf = app.confidential();
    app.user("alice", &[]);
    let p = pkce();
    let code = code_for(&app, &client, &p).await;
    let tokens = ok_json(app.exchange(&client, &code, &p.verifier).await).await;
    let rt1 = s(&tokens, "refresh_token");
    let rt2 = s(
        &ok_json(app.refresh(&client, &rt1).await).await,
        "refresh_token",
    );
    let secret = conf.secret.clone().expect("secret");

    for (what, value) in [
        ("code", &code),
        ("refresh token", &rt1),
        ("rotated refresh token", &rt2),
        ("client secret", &secret),
    ] {
        let bytes = URL_SAFE_NO_PAD
            .decode(value)
            .unwrap_or_else(|_| panic!("{what} is not base64url: {value}"));
        assert_eq!(bytes.len(), 32, "{what} must carry 256 bits");
    }
    assert_ne!(rt1, rt2);

    let mut conn = app.conn();
    let codes = all_code_rows(&mut conn);
    assert_eq!(codes.len(), 1);
    assert_eq!(
        codes[0][0],
        sha256_hex(&code),
        "auth_codes stores SHA-256 hex of the code"
    );
    let rts = all_refresh_rows(&mut conn);
    assert_eq!(rts.len(), 2);
    let stored: Vec<&str> = rts.iter().map(|r| r[0].as_str()).collect();
    assert!(stored.contains(&sha256_hex(&rt1).as_str()));
    assert!(stored.contains(&sha256_hex(&rt2).as_str()));
    let secret_hash: Option<String> = clients::table
        .find(&conf.id)
        .select(clients::secret_hash)
        .first(&mut conn)
        .expect("client row");
    assert_eq!(secret_hash, Some(sha256_hex(&secret)));

    for row in codes.iter().chain(rts.iter()) {
        for col in row {
            for (what, value) in [
                ("code", &code),
                ("refresh token", &rt1),
                ("refresh token", &rt2),
            ] {
                assert!(
                    !col.contains(value.as_str()),
                    "plaintext {what} stored in {row:?}"
                );
            }
        }
    }
});

// ---------------------------------------------------------------------------------------------
// P0 — refresh tokens
// ---------------------------------------------------------------------------------------------

both_backends!(refresh_rotation, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
    let t0 = app.tokens_for(&client, "alice").await;
    let rt0 = s(&t0, "refresh_token");
    let t1 = ok_json(app.refresh(&client, &rt0).await).await;
    let rt1 = s(&t1, "refresh_token");
    assert_ne!(rt1, rt0, "a refresh returns a new refresh token");
    assert_ne!(s(&t1, "access_token"), s(&t0, "access_token"));
    let t2 = ok_json(app.refresh(&client, &rt1).await).await;
    let rt2 = s(&t2, "refresh_token");
    assert_ne!(rt2, rt1);
    assert_ne!(rt2, rt0);
    // The old ones are dead.
    assert_oauth_error(app.refresh(&client, &rt0).await, 400, "invalid_grant").await;
    assert_oauth_error(app.refresh(&client, &rt1).await, 400, "invalid_grant").await;
    // Exactly one live (unrotated, unrevoked) token per family at a time in storage.
    let mut conn = app.conn();
    let rotated: i64 = refresh_tokens::table
        .filter(refresh_tokens::rotated_at.is_not_null())
        .count()
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(rotated, 2);
});

both_backends!(refresh_reuse_revokes_family, |app: TestApp| async move {
    let client = app.spa();
    let introspector = app.confidential();
    app.user("alice", &[]);
    let t0 = app.tokens_for(&client, "alice").await;
    let rt0 = s(&t0, "refresh_token");
    let t1 = ok_json(app.refresh(&client, &rt0).await).await;
    let rt1 = s(&t1, "refresh_token");
    let at1 = s(&t1, "access_token");
    // Control: the successor is live.
    assert_eq!(app.introspect(&introspector, &at1).await["active"], true);

    // Reuse of the rotated token.
    assert_oauth_error(app.refresh(&client, &rt0).await, 400, "invalid_grant").await;
    // The whole family is gone: the current token and its access token.
    assert_oauth_error(app.refresh(&client, &rt1).await, 400, "invalid_grant").await;
    assert_eq!(
        app.introspect(&introspector, &at1).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        app.introspect(&introspector, &s(&t0, "access_token")).await,
        serde_json::json!({"active": false})
    );
});

both_backends!(concurrent_refresh_one_success, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
    // Several rounds: a race that is lost only sometimes still shows.
    for _ in 0..ROUNDS {
        let t0 = app.tokens_for(&client, "alice").await;
        let form = vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), s(&t0, "refresh_token")),
            ("client_id".to_owned(), client.id.clone()),
        ];
        let results = race(&app, form, 8).await;
        assert_one_winner(&results);
    }
});

both_backends!(refresh_token_bound_to_client, |app: TestApp| async move {
    let client = app.spa();
    let other = app.spa();
    let conf = app.confidential();
    app.user("alice", &[]);

    let t = app.tokens_for(&client, "alice").await;
    let rt = s(&t, "refresh_token");
    assert_oauth_error(app.refresh(&other, &rt).await, 400, "invalid_grant").await;
    // Nor may a confidential client, even authenticated, use it.
    assert_oauth_error(refresh_basic(&app, &conf, &rt).await, 400, "invalid_grant").await;

    // A confidential client's refresh token needs the client's authentication.
    let ct = confidential_tokens(&app, &conf).await;
    let crt = s(&ct, "refresh_token");
    let resp = app.refresh(&conf, &crt).await; // client_id only, no secret
    let (status, headers, body) = read(resp).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(headers.contains_key("www-authenticate"));
    // The public client cannot use it either.
    assert_oauth_error(app.refresh(&client, &crt).await, 400, "invalid_grant").await;
    // Control: authenticated, the owner refreshes.
    ok_json(refresh_basic(&app, &conf, &crt).await).await;
});

both_backends!(
    refresh_scope_may_narrow_never_widen,
    |app: TestApp| async move {
        let client = app.spa();
        app.user("alice", &[]);
        let t0 = app.tokens_for(&client, "alice").await;
        let mut granted: Vec<&str> = t0["scope"].as_str().expect("scope").split(' ').collect();
        granted.sort_unstable();
        assert_eq!(granted, ["api:read", "api:write"]);

        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &s(&t0, "refresh_token")),
                    ("client_id", &client.id),
                    ("scope", "api:read"),
                ],
                None,
            )
            .await;
        let t1 = ok_json(resp).await;
        assert_eq!(t1["scope"], "api:read");
        let (_, claims) = jwt_parts(&s(&t1, "access_token"));
        assert_eq!(claims["scope"], "api:read");

        // RFC 6749 §6: the narrowing applied to that access token only; the new refresh token
        // keeps the scope of the one it replaced, so without a scope parameter it is the
        // originally granted scope again.
        let t2 = ok_json(app.refresh(&client, &s(&t1, "refresh_token")).await).await;
        let (_, claims) = jwt_parts(&s(&t2, "access_token"));
        let mut full: Vec<&str> = claims["scope"].as_str().unwrap().split(' ').collect();
        full.sort_unstable();
        assert_eq!(full, ["api:read", "api:write"]);

        // Widening beyond the original grant is refused.
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &s(&t2, "refresh_token")),
                    ("client_id", &client.id),
                    ("scope", "api:read api:write admin"),
                ],
                None,
            )
            .await;
        assert_oauth_error(resp, 400, "invalid_scope").await;
    }
);

both_backends!(refresh_absolute_lifetime, |app: TestApp| async move {
    let client = app.spa();
    let user = app.user("alice", &[]);
    let mut conn = app.conn();

    // Absolute end of the family.
    let t0 = app.tokens_for(&client, "alice").await;
    let (created, expires): (i64, i64) = grants::table
        .filter(grants::user_id.eq(&user))
        .select((grants::created_at, grants::expires_at))
        .first(&mut conn)
        .expect("grant");
    assert_eq!(
        expires - created,
        app.settings.tokens.refresh_token_ttl_secs
    );
    let rt_expiry: i64 = refresh_tokens::table
        .find(sha256_hex(&s(&t0, "refresh_token")))
        .select(refresh_tokens::expires_at)
        .first(&mut conn)
        .expect("rt");
    assert!(rt_expiry <= expires, "no refresh token outlives its family");
    // Control: the family is alive and refreshes.
    let t1 = ok_json(app.refresh(&client, &s(&t0, "refresh_token")).await).await;
    diesel::update(grants::table)
        .set(grants::expires_at.eq(gatehouse::state::now() - 1))
        .execute(&mut conn)
        .expect("expire grant");
    assert_oauth_error(
        app.refresh(&client, &s(&t1, "refresh_token")).await,
        400,
        "invalid_grant",
    )
    .await;

    // Idle expiry of one token in a live family.
    let t2 = app.tokens_for(&client, "alice").await;
    let rt2 = s(&t2, "refresh_token");
    diesel::update(refresh_tokens::table.find(sha256_hex(&rt2)))
        .set(refresh_tokens::expires_at.eq(gatehouse::state::now() - 1))
        .execute(&mut conn)
        .expect("expire rt");
    assert_oauth_error(app.refresh(&client, &rt2).await, 400, "invalid_grant").await;
});

// ---------------------------------------------------------------------------------------------
// P0 — token endpoint, client authentication, grants
// ---------------------------------------------------------------------------------------------

both_backends!(token_responses_not_cached, |app: TestApp| async move {
    let client = app.spa();
    let conf = app.confidential();
    app.user("alice", &[]);
    let p = pkce();
    let code = code_for(&app, &client, &p).await;

    let resp = app.exchange(&client, &code, &p.verifier).await;
    let (status, headers, body) = read(resp).await;
    assert_eq!(status, 200);
    assert_no_cache(&headers, "code exchange");

    let resp = app.refresh(&client, &s(&body, "refresh_token")).await;
    let (status, headers, _) = read(resp).await;
    assert_eq!(status, 200);
    assert_no_cache(&headers, "refresh");

    // Errors: invalid_grant, invalid_client (401), unsupported_grant_type, and a malformed request.
    let resp = app.exchange(&client, &code, &p.verifier).await;
    let (status, headers, _) = read(resp).await;
    assert_eq!(status, 400);
    assert_no_cache(&headers, "invalid_grant");

    let resp = app
        .post_form(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
            Some(&basic(&conf.id, "wrong")),
        )
        .await;
    let (status, headers, _) = read(resp).await;
    assert_eq!(status, 401);
    assert_no_cache(&headers, "invalid_client");

    let resp = app
        .post_form(
            "/token",
            &[("grant_type", "password"), ("client_id", &client.id)],
            None,
        )
        .await;
    let (status, headers, _) = read(resp).await;
    assert_eq!(status, 400);
    assert_no_cache(&headers, "unsupported_grant_type");

    let resp = app
        .api
        .post(app.url("/token?x=1"))
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .expect("POST");
    let (status, headers, _) = read(resp).await;
    assert_eq!(status, 400);
    assert_no_cache(&headers, "invalid_request");
});

both_backends!(
    token_endpoint_accepts_only_form_post,
    |app: TestApp| async move {
        let client = app.spa();
        app.user("alice", &[]);
        let p = pkce();
        let code = code_for(&app, &client, &p).await;
        let mut form = code_form(&code, &p.verifier);
        form.push(("client_id".into(), client.id.clone()));

        // GET, with every parameter in the query.
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish();
        let resp = app
            .api
            .get(app.url(&format!("/token?{query}")))
            .send()
            .await
            .expect("GET");
        assert_ne!(resp.status().as_u16(), 200, "GET /token must not work");
        assert!(!resp.status().is_server_error());

        // JSON body.
        let json: serde_json::Map<String, Value> = form
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let resp = app
            .api
            .post(app.url("/token"))
            .json(&json)
            .send()
            .await
            .expect("POST");
        assert_oauth_error(resp, 400, "invalid_request").await;

        // One parameter in the URL query, the rest in the body.
        let (body_part, query_part) = form.split_at(form.len() - 1);
        let resp = app
            .api
            .post(app.url(&format!(
            "/token?{}",
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query_part.iter())
                .finish()
        )))
            .form(body_part)
            .send()
            .await
            .expect("POST");
        assert_oauth_error(resp, 400, "invalid_request").await;

        // Everything in the body and (again) in the query.
        let resp = app
            .api
            .post(app.url(&format!("/token?{query}")))
            .form(&form)
            .send()
            .await
            .expect("POST");
        assert_oauth_error(resp, 400, "invalid_request").await;

        // A duplicated parameter, even with the same value.
        let mut dup = form.clone();
        dup.push(("redirect_uri".into(), REDIRECT.into()));
        let resp = app
            .api
            .post(app.url("/token"))
            .form(&dup)
            .send()
            .await
            .expect("POST");
        assert_oauth_error(resp, 400, "invalid_request").await;
        let mut dup = form.clone();
        dup.insert(0, ("grant_type".into(), "authorization_code".into()));
        let resp = app
            .api
            .post(app.url("/token"))
            .form(&dup)
            .send()
            .await
            .expect("POST");
        assert_oauth_error(resp, 400, "invalid_request").await;

        // Control: the same parameters as a form body work (none of the above spent the code).
        ok_json(
            app.api
                .post(app.url("/token"))
                .form(&form)
                .send()
                .await
                .expect("POST"),
        )
        .await;
    }
);

both_backends!(
    client_secret_basic_is_form_urldecoded_and_one_method_only,
    |app: TestApp| async move {
        let conf = app.confidential();
        app.user("alice", &[]);
        let secret = conf.secret.clone().expect("secret");

        // client_secret_basic.
        let t0 = confidential_tokens(&app, &conf).await;

        // Basic with form-urlencoded id and secret: '_' of the id and every byte of the secret escaped.
        assert!(conf.id.contains('_'));
        let id_enc = conf.id.replace('_', "%5F");
        let secret_enc: String = secret.bytes().map(|b| format!("%{b:02X}")).collect();
        let header = format!(
            "Basic {}",
            STANDARD.encode(format!("{id_enc}:{secret_enc}"))
        );
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &s(&t0, "refresh_token")),
                ],
                Some(&header),
            )
            .await;
        let t1 = ok_json(resp).await;
        let rt1 = s(&t1, "refresh_token");

        // Basic and client_secret in the body: two methods.
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt1),
                    ("client_secret", &secret),
                ],
                Some(&basic_of(&conf)),
            )
            .await;
        assert_oauth_error(resp, 400, "invalid_request").await;

        // A wrong secret: 401 with a Basic challenge.
        let resp = app
            .post_form(
                "/token",
                &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
                Some(&basic(&conf.id, &format!("{secret}x"))),
            )
            .await;
        let (status, headers, body) = read(resp).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");
        let challenge = headers
            .get("www-authenticate")
            .expect("WWW-Authenticate on 401")
            .to_str()
            .expect("ascii");
        assert!(challenge.starts_with("Basic"), "{challenge}");

        // client_secret_post.
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt1),
                    ("client_id", &conf.id),
                    ("client_secret", &secret),
                ],
                None,
            )
            .await;
        ok_json(resp).await;
    }
);

both_backends!(
    unknown_client_same_as_wrong_secret,
    |app: TestApp| async move {
        let conf = app.confidential();
        let unknown_id = format!("cl_{}", URL_SAFE_NO_PAD.encode([9u8; 16]));
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", "whatever"),
        ];

        async fn raw(resp: reqwest::Response) -> (u16, Option<String>, String) {
            let status = resp.status().as_u16();
            let www = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().expect("ascii").to_owned());
            (status, www, resp.text().await.expect("body"))
        }

        // HTTP Basic.
        let wrong = raw(app
            .post_form("/token", &form, Some(&basic(&conf.id, "not-the-secret")))
            .await)
        .await;
        let unknown = raw(app
            .post_form("/token", &form, Some(&basic(&unknown_id, "not-the-secret")))
            .await)
        .await;
        assert_eq!(wrong.0, 401);
        assert_eq!(
            serde_json::from_str::<Value>(&wrong.2).expect("json")["error"],
            "invalid_client"
        );
        assert_eq!(wrong, unknown, "unknown client vs wrong secret (Basic)");

        // client_secret_post.
        let post = |id: &str| {
            vec![
                ("grant_type".to_owned(), "refresh_token".to_owned()),
                ("refresh_token".to_owned(), "whatever".to_owned()),
                ("client_id".to_owned(), id.to_owned()),
                ("client_secret".to_owned(), "not-the-secret".to_owned()),
            ]
        };
        let wrong_post = raw(app
            .post_form("/token", &as_refs(&post(&conf.id)), None)
            .await)
        .await;
        let unknown_post = raw(app
            .post_form("/token", &as_refs(&post(&unknown_id)), None)
            .await)
        .await;
        assert_eq!(
            wrong_post, unknown_post,
            "unknown client vs wrong secret (post)"
        );
        assert_eq!(wrong_post, wrong, "both methods answer alike");
    }
);

both_backends!(grant_types_allow_listed, |app: TestApp| async move {
    app.user("alice", &[]);
    let code_only = app.register(NewClient {
        name: "Code only".into(),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: vec!["authorization_code".parse().expect("grant type")],
        scopes: vec!["api:read".into()],
        audiences: vec![AUDIENCE.into()],
        ..Default::default()
    });
    let p = pkce();
    let code = code_for(&app, &code_only, &p).await;
    let tokens = ok_json(app.exchange(&code_only, &code, &p.verifier).await).await;
    assert!(tokens["access_token"].is_string());
    assert!(
        tokens.get("refresh_token").is_none(),
        "no refresh token for a code-only client: {tokens}"
    );
    let (status, _, body) = read(app.refresh(&code_only, "some-refresh-token").await).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"] == "unauthorized_client" || body["error"] == "invalid_grant",
        "{body}"
    );

    // A client whose refresh grant is withdrawn cannot use the refresh token it holds.
    let spa = app.spa();
    let t = app.tokens_for(&spa, "alice").await;
    let mut conn = app.conn();
    diesel::update(clients::table.find(&spa.id))
        .set(clients::grant_types.eq(r#"["authorization_code"]"#))
        .execute(&mut conn)
        .expect("withdraw grant");
    let (status, _, body) = read(app.refresh(&spa, &s(&t, "refresh_token")).await).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"] == "unauthorized_client" || body["error"] == "invalid_grant",
        "{body}"
    );

    // Grant types the client is not registered for.
    let conf = app.confidential();
    for grant in ["password", "client_credentials"] {
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", grant),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ],
                Some(&basic_of(&conf)),
            )
            .await;
        assert_oauth_error(resp, 400, "unauthorized_client").await;
    }

    // Grant types Gatehouse does not implement.
    for grant in [
        "implicit",
        "foo",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", grant),
                    ("client_id", &spa.id),
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("scope", "api:read"),
                ],
                None,
            )
            .await;
        let (status, _, body) = read(resp).await;
        assert_eq!(status, 400, "grant {grant}: {body}");
        assert_eq!(
            body["error"], "unsupported_grant_type",
            "grant {grant}: {body}"
        );
        // Also for an authenticated confidential client.
        let resp = app
            .post_form("/token", &[("grant_type", grant)], Some(&basic_of(&conf)))
            .await;
        let (status, _, body) = read(resp).await;
        assert_eq!(status, 400, "grant {grant} (confidential): {body}");
        assert_eq!(
            body["error"], "unsupported_grant_type",
            "grant {grant}: {body}"
        );
    }

    // No grant_type.
    let resp = app
        .post_form(
            "/token",
            &[
                ("code", "abc"),
                ("client_id", &spa.id),
                ("redirect_uri", REDIRECT),
            ],
            None,
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
});

// ---------------------------------------------------------------------------------------------
// P0 — JWT access tokens
// ---------------------------------------------------------------------------------------------

both_backends!(access_token_header_is_at_jwt, |app: TestApp| async move {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let client = app.spa();
    app.user("alice", &[]);
    let tokens = app.tokens_for(&client, "alice").await;
    let at = s(&tokens, "access_token");

    let (raw_header, _) = jwt_parts(&at);
    assert_eq!(raw_header["typ"], "at+jwt");
    assert_eq!(raw_header["alg"], "ES256");
    let kid = raw_header["kid"].as_str().expect("kid").to_owned();

    let jwks_resp = app
        .api
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("JWKS");
    assert_eq!(jwks_resp.status().as_u16(), 200);
    let jwks_json: Value = jwks_resp.json().await.expect("JWKS json");
    let keys = jwks_json["keys"].as_array().expect("keys");
    let published: Vec<&Value> = keys.iter().filter(|k| k["kid"] == kid.as_str()).collect();
    assert_eq!(
        published.len(),
        1,
        "kid {kid} published exactly once in {jwks_json}"
    );
    assert!(published[0].get("d").is_none(), "no private member in JWKS");

    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(jwks_json.clone()).expect("JwkSet");
    let key = DecodingKey::from_jwk(jwks.find(&kid).expect("kid")).expect("decoding key");
    let validation = |aud: &str, iss: &str| {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[aud]);
        v.set_issuer(&[iss]);
        v
    };
    let data = jsonwebtoken::decode::<Value>(&at, &key, &validation(AUDIENCE, &app.issuer))
        .expect("signature verifies");
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(data.header.alg, Algorithm::ES256);
    assert_eq!(data.claims["client_id"], client.id);

    // The checks are real: other audience, other issuer, a tampered payload all fail.
    assert!(jsonwebtoken::decode::<Value>(
        &at,
        &key,
        &validation("https://other.example", &app.issuer)
    )
    .is_err());
    assert!(jsonwebtoken::decode::<Value>(
        &at,
        &key,
        &validation(AUDIENCE, "https://evil.example")
    )
    .is_err());
    let parts: Vec<&str> = at.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    claims["sub"] = Value::String("usr_someone_else".into());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json")),
        parts[2]
    );
    assert!(
        jsonwebtoken::decode::<Value>(&forged, &key, &validation(AUDIENCE, &app.issuer)).is_err()
    );
});

both_backends!(access_token_claims, |app: TestApp| async move {
    let client = app.spa();
    let alice = app.user("alice", &["admin"]);
    let bob = app.user("bob", &[]);
    let before = gatehouse::state::now();
    let t = app.tokens_for(&client, "alice").await;
    let (_, claims) = jwt_parts(&s(&t, "access_token"));
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["sub"], alice);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["client_id"], client.id);
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(
        iat >= before - 5 && iat <= gatehouse::state::now() + 5,
        "iat {iat} is now"
    );
    assert_eq!(exp, iat + 900);
    assert_eq!(t["expires_in"], 900);
    let mut scope: Vec<&str> = claims["scope"]
        .as_str()
        .expect("scope")
        .split(' ')
        .collect();
    scope.sort_unstable();
    assert_eq!(scope, ["api:read", "api:write"]);
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));
    let jti1 = claims["jti"].as_str().expect("jti").to_owned();
    assert!(!jti1.is_empty());

    let t2 = ok_json(app.refresh(&client, &s(&t, "refresh_token")).await).await;
    let (_, claims2) = jwt_parts(&s(&t2, "access_token"));
    assert_ne!(claims2["jti"].as_str().expect("jti"), jti1, "jti is unique");
    assert_eq!(claims2["sub"], alice);
    assert_eq!(claims2["roles"], serde_json::json!(["admin"]));

    // A user without roles: no roles claim.
    let mut app = app;
    app.browser = new_browser();
    let tb = app.tokens_for(&client, "bob").await;
    let (_, claims3) = jwt_parts(&s(&tb, "access_token"));
    assert_eq!(claims3["sub"], bob);
    assert!(
        claims3.get("roles").is_none(),
        "no roles claim for a user without roles: {claims3}"
    );
    assert_ne!(claims3["jti"], claims["jti"]);
});

both_backends!(
    unknown_resource_is_invalid_target,
    |app: TestApp| async move {
        let client = app.register(NewClient {
            name: "Two APIs".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: vec!["api:read".into(), "api:write".into()],
            audiences: vec![AUDIENCE.into(), SECOND_AUDIENCE.into()],
            ..Default::default()
        });
        app.user("alice", &[]);

        // At /authorize.
        let p = pkce();
        let resp = app
            .get_authorize(&app.authorize_query(
                &client,
                &p.challenge,
                &[("resource", "https://other.example")],
            ))
            .await;
        assert!(resp.status().is_redirection(), "status {}", resp.status());
        let loc = location(&resp);
        assert!(loc.starts_with(REDIRECT), "{loc}");
        let q = query_of(&loc);
        assert_eq!(
            q.get("error").map(String::as_str),
            Some("invalid_target"),
            "{loc}"
        );
        assert_eq!(q.get("iss"), Some(&app.issuer));
        assert!(!q.contains_key("code"));

        // At /token: a resource other than the authorized one.
        let code = code_for(&app, &client, &p).await;
        for other in ["https://other.example", SECOND_AUDIENCE] {
            let mut form = code_form(&code, &p.verifier);
            form.push(("client_id".into(), client.id.clone()));
            form.push(("resource".into(), other.into()));
            let resp = app.post_form("/token", &as_refs(&form), None).await;
            let (status, _, body) = read(resp).await;
            assert_eq!(status, 400, "resource {other}: {body}");
            assert_eq!(body["error"], "invalid_target", "resource {other}: {body}");
        }
        // Control: no resource parameter → the first registered audience.
        let p = pkce();
        let code = code_for(&app, &client, &p).await;
        let t = ok_json(app.exchange(&client, &code, &p.verifier).await).await;
        assert_eq!(jwt_parts(&s(&t, "access_token")).1["aud"], AUDIENCE);

        // The second audience, selected by `resource`, becomes the token's aud.
        let p = pkce();
        let code = code_with(&app, &client, &p, &[("resource", SECOND_AUDIENCE)]).await;
        let mut form = code_form(&code, &p.verifier);
        form.push(("client_id".into(), client.id.clone()));
        form.push(("resource".into(), SECOND_AUDIENCE.into()));
        let t2 = ok_json(app.post_form("/token", &as_refs(&form), None).await).await;
        assert_eq!(jwt_parts(&s(&t2, "access_token")).1["aud"], SECOND_AUDIENCE);
        // A refresh cannot move it to the other audience.
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &s(&t2, "refresh_token")),
                    ("client_id", &client.id),
                    ("resource", AUDIENCE),
                ],
                None,
            )
            .await;
        assert_oauth_error(resp, 400, "invalid_target").await;
        let t3 = ok_json(app.refresh(&client, &s(&t2, "refresh_token")).await).await;
        assert_eq!(jwt_parts(&s(&t3, "access_token")).1["aud"], SECOND_AUDIENCE);
    }
);

both_backends!(
    user_and_client_subjects_cannot_collide,
    |app: TestApp| async move {
        let client = app.spa();
        let conf = app.confidential();
        let user = app.user("alice", &[]);
        assert!(user.starts_with("usr_"), "user id {user}");
        assert!(client.id.starts_with("cl_"), "client id {}", client.id);
        assert!(conf.id.starts_with("cl_"), "client id {}", conf.id);
        let t = app.tokens_for(&client, "alice").await;
        let (_, claims) = jwt_parts(&s(&t, "access_token"));
        assert_eq!(claims["sub"], user);
        assert_ne!(claims["sub"], claims["client_id"]);
        assert_eq!(claims["client_id"], client.id);
        // Same for a token issued to a confidential client.
        let ct = confidential_tokens(&app, &conf).await;
        let (_, claims) = jwt_parts(&s(&ct, "access_token"));
        assert_eq!(claims["sub"], user);
        assert_eq!(claims["client_id"], conf.id);
    }
);

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

both_backends!(
    token_endpoint_bad_input_gets_rfc_errors,
    |app: TestApp| async move {
        let client = app.spa();
        let conf = app.confidential();
        app.user("alice", &[]);
        let form_ct = "application/x-www-form-urlencoded";

        async fn check(resp: reqwest::Response, what: &str, expected: Option<&str>) {
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("body");
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{what}: status {status}, not JSON: {text:?}"));
            assert!(
                status == 400 || status == 401,
                "{what}: status {status}: {body}"
            );
            let error = body["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no error in {body}"));
            assert!(
                RFC_TOKEN_ERRORS.contains(&error),
                "{what}: {error} is not an RFC code"
            );
            if status == 401 {
                assert_eq!(
                    error, "invalid_client",
                    "{what}: 401 is for invalid_client only: {body}"
                );
            }
            if let Some(e) = expected {
                assert_eq!(error, e, "{what}: {body}");
            }
        }
        let raw = |body: Vec<u8>, auth: Option<reqwest::header::HeaderValue>| {
            let mut req = app
                .api
                .post(app.url("/token"))
                .header("content-type", form_ct)
                .body(body);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            req.send()
        };
        let hv = |s: &[u8]| reqwest::header::HeaderValue::from_bytes(s).expect("header value");

        // Missing code.
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", &client.id),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", &pkce().verifier),
                ],
                None,
            )
            .await;
        check(resp, "missing code", Some("invalid_request")).await;
        // Missing refresh_token.
        let resp = app
            .post_form(
                "/token",
                &[("grant_type", "refresh_token"), ("client_id", &client.id)],
                None,
            )
            .await;
        check(resp, "missing refresh_token", Some("invalid_request")).await;
        // Empty body.
        check(
            raw(Vec::new(), None).await.expect("POST"),
            "empty body",
            None,
        )
        .await;
        // No content type at all.
        let resp = app
            .api
            .post(app.url("/token"))
            .body(format!(
                "grant_type=refresh_token&refresh_token=x&client_id={}",
                client.id
            ))
            .send()
            .await
            .expect("POST");
        check(resp, "no content type", Some("invalid_request")).await;
        // Oversized values.
        let big = "a".repeat(5000);
        for (what, key) in [
            ("oversized code", "code"),
            ("oversized client_id", "client_id"),
            ("oversized verifier", "code_verifier"),
        ] {
            let mut form = vec![
                ("grant_type", "authorization_code"),
                ("code", "abc"),
                ("redirect_uri", REDIRECT),
                ("client_id", client.id.as_str()),
                ("code_verifier", "v"),
            ];
            for pair in form.iter_mut() {
                if pair.0 == key {
                    pair.1 = &big;
                }
            }
            check(
                app.post_form("/token", &form, None).await,
                what,
                Some("invalid_request"),
            )
            .await;
        }
        // Oversized parameter name and too many parameters.
        let long_key = "k".repeat(200);
        let resp = app
            .post_form(
                "/token",
                &[("grant_type", "refresh_token"), (&long_key, "v")],
                None,
            )
            .await;
        check(resp, "oversized name", Some("invalid_request")).await;
        let many: String = (0..40).map(|i| format!("p{i}=v&")).collect();
        check(
            raw(many.into_bytes(), None).await.expect("POST"),
            "too many parameters",
            Some("invalid_request"),
        )
        .await;
        // Non-UTF-8 bytes in the body, raw and percent-encoded.
        let mut body = format!(
            "grant_type=refresh_token&client_id={}&refresh_token=",
            client.id
        )
        .into_bytes();
        body.extend_from_slice(&[0xff, 0xfe, 0x80]);
        check(
            raw(body, None).await.expect("POST"),
            "raw non-UTF-8 body",
            None,
        )
        .await;
        let body = format!(
            "grant_type=refresh_token&client_id={}&refresh_token=%FF%FE%80",
            client.id
        );
        check(
            raw(body.into_bytes(), None).await.expect("POST"),
            "encoded non-UTF-8 body",
            Some("invalid_grant"),
        )
        .await;
        let body = "grant_type=%FF&client_id=%C0%AF";
        check(
            raw(body.as_bytes().to_vec(), None).await.expect("POST"),
            "non-UTF-8 grant_type",
            None,
        )
        .await;

        // Garbage Authorization headers.
        let refresh_body = b"grant_type=refresh_token&refresh_token=x".to_vec();
        for (what, header) in [
            ("not base64", hv(b"Basic !!!not*base64!!!")),
            (
                "base64 of non-UTF-8",
                hv(format!("Basic {}", STANDARD.encode([0xffu8, 0xfe, b':', 0xfd])).as_bytes()),
            ),
            (
                "no colon",
                hv(format!("Basic {}", STANDARD.encode("nocolonhere")).as_bytes()),
            ),
            (
                "bad percent escape",
                hv(format!("Basic {}", STANDARD.encode(format!("{}:%zz%", conf.id))).as_bytes()),
            ),
            ("empty Basic", hv(b"Basic ")),
            ("bare Basic", hv(b"Basic")),
            ("other scheme", hv(b"Bearer abc.def.ghi")),
            ("non-ASCII header bytes", hv(b"Basic \xff\xfe\xfd")),
        ] {
            check(
                raw(refresh_body.clone(), Some(header)).await.expect("POST"),
                what,
                Some("invalid_client"),
            )
            .await;
        }
        // Unknown client (public style, and Basic).
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", "x"),
                    ("client_id", "cl_doesnotexist"),
                ],
                None,
            )
            .await;
        check(resp, "unknown client", Some("invalid_client")).await;
        let resp = app
            .post_form(
                "/token",
                &[("grant_type", "refresh_token"), ("refresh_token", "x")],
                Some(&basic("cl_doesnotexist", "secret")),
            )
            .await;
        check(resp, "unknown client (Basic)", Some("invalid_client")).await;
        // Unknown code / refresh token.
        let resp = app
            .exchange(&client, "no-such-code", &pkce().verifier)
            .await;
        check(resp, "unknown code", Some("invalid_grant")).await;
        let resp = app.refresh(&client, "no-such-refresh-token").await;
        check(resp, "unknown refresh token", Some("invalid_grant")).await;

        // The server is still fine afterwards.
        let t = app.tokens_for(&client, "alice").await;
        assert!(t["access_token"].is_string());
    }
);

// ---------------------------------------------------------------------------------------------
// P1/P2 — logging
// ---------------------------------------------------------------------------------------------

/// Everything any Gatehouse in this process logs, once the capture is installed.
static LOG_BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
static LOG_INSTALL: Once = Once::new();

#[derive(Clone)]
struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CaptureWriter {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs (once per process) a global subscriber writing into an in-memory buffer.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    let buffer = LOG_BUFFER
        .get_or_init(|| Arc::new(Mutex::new(Vec::new())))
        .clone();
    LOG_INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,gatehouse=trace"))
            .with_ansi(false)
            .with_writer(CaptureWriter(buffer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global tracing subscriber may be installed before this test");
    });
    buffer
}

both_backends!(secrets_never_logged, |app: TestApp| async move {
    let logs = capture_logs();
    let conf = app.confidential();
    let user = app.user("alice", &[]);
    let secret = conf.secret.clone().expect("secret");

    let p = pkce();
    let code = code_for(&app, &conf, &p).await;
    let t1 = ok_json(exchange_basic(&app, &conf, &code, &p.verifier).await).await;
    // A replay and a failed authentication too: error paths log as well.
    assert_oauth_error(
        exchange_basic(&app, &conf, &code, &p.verifier).await,
        400,
        "invalid_grant",
    )
    .await;
    // The replay revoked the grant: a second login for the refresh part.
    let p2 = pkce();
    let code2 = code_for(&app, &conf, &p2).await;
    let t2 = ok_json(exchange_basic(&app, &conf, &code2, &p2.verifier).await).await;
    let t3 = ok_json(refresh_basic(&app, &conf, &s(&t2, "refresh_token")).await).await;
    let resp = app
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &s(&t3, "refresh_token")),
            ],
            Some(&basic(&conf.id, &format!("{secret}wrong"))),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 401);
    // Reuse of a rotated refresh token (logged as a warning).
    assert_oauth_error(
        refresh_basic(&app, &conf, &s(&t2, "refresh_token")).await,
        400,
        "invalid_grant",
    )
    .await;
    let p3 = pkce();
    let code3 = code_for(&app, &conf, &p3).await;
    let t4 = ok_json(exchange_basic(&app, &conf, &code3, &p3.verifier).await).await;
    let revoke = app
        .post_form(
            "/revoke",
            &[("token", &s(&t4, "refresh_token"))],
            Some(&basic_of(&conf)),
        )
        .await;
    assert_eq!(revoke.status().as_u16(), 200);

    let text =
        String::from_utf8_lossy(&logs.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(
        text.lines()
            .any(|l| l.contains("access token issued") && l.contains(&conf.id)),
        "the capture works: no 'access token issued' line for {}",
        conf.id
    );
    assert!(text.contains(&user), "the login of {user} was logged");

    let mut secrets: Vec<(&str, String)> = vec![
        ("password", PASSWORD.to_owned()),
        ("client secret", secret.clone()),
        ("code", code.clone()),
        ("code", code2.clone()),
        ("code", code3.clone()),
        ("code_verifier", p.verifier.clone()),
        ("code_verifier", p2.verifier.clone()),
    ];
    for t in [&t1, &t2, &t3, &t4] {
        secrets.push(("refresh token", s(t, "refresh_token")));
        let at = s(t, "access_token");
        // The signature part: the header part is shared by every token of one key.
        secrets.push((
            "access token signature",
            at.rsplit('.').next().expect("sig").to_owned(),
        ));
        secrets.push(("access token", at));
    }
    for (what, value) in &secrets {
        assert!(!text.contains(value.as_str()), "{what} appears in the logs");
        // Nor a truncated prefix of a random value.
        if value.len() >= 43 && *what != "password" && *what != "access token" {
            assert!(
                !text.contains(&value[..16]),
                "a prefix of a {what} appears in the logs"
            );
        }
    }
});

both_backends!(
    oversized_body_gets_invalid_request,
    |app: TestApp| async move {
        let client = app.spa();
        let big = "a".repeat(64 * 1024);
        for path in ["/token", "/revoke", "/introspect"] {
            let resp = app
                .post_form(
                    path,
                    &[
                        ("grant_type", "refresh_token"),
                        ("client_id", &client.id),
                        ("token", &big),
                    ],
                    None,
                )
                .await;
            let body = assert_oauth_error(resp, 400, "invalid_request").await;
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("too large"),
                "{path}: {body}"
            );
        }
    }
);
