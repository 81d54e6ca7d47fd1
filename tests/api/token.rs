//! The token endpoint: PKCE, codes, refresh-token rotation, client authentication, grant types,
//! JWT access tokens and what gets logged (SECURITY-CHECKLIST rules 6-34, 56).

use std::sync::{Arc, Mutex, Once, OnceLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

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

/// Runs authorize → login (first time) → consent as `alice`; returns the code and the PKCE pair
/// that redeems it.
async fn code_for(app: &TestApp, client: &TestClient) -> (String, Pkce) {
    let pkce = pkce();
    (app.code_as(client, "alice", &pkce, &[]).await, pkce)
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
    let cc = header(headers, "cache-control").unwrap_or_else(|| panic!("{what}: no Cache-Control"));
    assert!(
        cc.split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("no-store")),
        "{what}: Cache-Control {cc:?} lacks no-store"
    );
    let pragma = header(headers, "pragma").unwrap_or_else(|| panic!("{what}: no Pragma"));
    assert!(
        pragma.eq_ignore_ascii_case("no-cache"),
        "{what}: Pragma {pragma:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// P0 — code and PKCE
// ---------------------------------------------------------------------------------------------

both_backends!(wrong_or_missing_verifier_is_invalid_grant);
async fn wrong_or_missing_verifier_is_invalid_grant(app: TestApp) {
    let client = app.spa_and_alice();
    let (code, p) = code_for(&app, &client).await;
    let exchange = || app.token().code(&code, &p.verifier).client(&client);

    // A well-formed verifier that is not the one behind the challenge.
    let wrong = URL_SAFE_NO_PAD.encode([7u8; 32]);
    assert_ne!(wrong, p.verifier);
    let resp = app.exchange(&client, &code, &wrong).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    // No verifier at all.
    let no_verifier = exchange().without("code_verifier");
    no_verifier.fails(400, "invalid_grant").await;
    // An empty verifier counts as missing.
    let empty = exchange().set("code_verifier", "");
    empty.fails(400, "invalid_grant").await;

    // The failed attempts did not consume the code: the right verifier still works.
    let tokens = exchange().ok().await;
    assert!(tokens["access_token"].is_string());
}

both_backends!(verifier_abnf_enforced);
async fn verifier_abnf_enforced(app: TestApp) {
    let client = app.spa_and_alice();
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
        let code = app.code_as(&client, "alice", &p, &[]).await;
        let (status, _, body) = read(app.exchange(&client, &code, verifier).await).await;
        let what = format!("verifier {verifier:?} ({} chars)", verifier.len());
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{what}: {body}");
    }
    // The boundaries, with every allowed punctuation character, are accepted.
    let good = [
        format!("{}-._~", "A".repeat(39)),
        format!("{}z9-._~", "Z".repeat(122)),
    ];
    for verifier in &good {
        assert!(verifier.len() == 43 || verifier.len() == 128);
        let p = pkce_for(verifier);
        let code = app.code_as(&client, "alice", &p, &[]).await;
        let (status, _, body) = read(app.exchange(&client, &code, verifier).await).await;
        let chars = verifier.len();
        assert_eq!(
            status, 200,
            "valid verifier of {chars} chars refused: {body}"
        );
    }
}

both_backends!(pkce_downgrade_impossible);
async fn pkce_downgrade_impossible(app: TestApp) {
    let client = app.spa_and_alice();
    let no_challenge = [("code_challenge", None), ("code_challenge_method", None)];
    let method_only = [("code_challenge", None)];
    for overrides in [&no_challenge[..], &method_only[..]] {
        let resp = app.get_authorize(&authz(&client.id, "", overrides)).await;
        assert_error_redirect(&app, &resp, "invalid_request", Some(STATE), "no challenge");
    }
    // Nothing was stored that could become a code.
    assert_eq!(
        app.code_rows().len(),
        0,
        "no code exists without a challenge"
    );
    let pending = app.pending_interactions();
    assert_eq!(pending, 0, "no pending authorization without a challenge");

    // Control: with a challenge the same client does get a code, and every stored code carries
    // a challenge.
    let (_, p) = code_for(&app, &client).await;
    assert_eq!(app.code_challenges(), vec![p.challenge.clone()]);
}

both_backends!(code_single_use_atomically);
async fn code_single_use_atomically(app: TestApp) {
    let client = app.spa_and_alice();
    // Several rounds: a race that is lost only sometimes still shows.
    for _ in 0..ROUNDS {
        let (code, p) = code_for(&app, &client).await;
        let exchange = || app.token().code(&code, &p.verifier).client(&client);
        assert_one_winner(&exchange().race(8).await);
        // And afterwards it is spent.
        exchange().fails(400, "invalid_grant").await;
    }
}

both_backends!(replayed_code_revokes_tokens);
async fn replayed_code_revokes_tokens(app: TestApp) {
    let client = app.spa_and_alice();
    let (code, p) = code_for(&app, &client).await;
    let exchange = || app.token().code(&code, &p.verifier).client(&client);
    let first = exchange().ok().await;
    let at = s(&first, "access_token");
    let rt = s(&first, "refresh_token");
    // Control: the access token is active before the replay.
    let introspector = app.confidential();
    assert_eq!(app.introspect(&introspector, &at).await["active"], true);

    exchange().fails(400, "invalid_grant").await;

    assert_oauth_error(app.refresh(&client, &rt).await, 400, "invalid_grant").await;
    assert_eq!(app.introspect(&introspector, &at).await, inactive());
}

both_backends!(expired_code_is_invalid_grant);
async fn expired_code_is_invalid_grant(app: TestApp) {
    let client = app.spa_and_alice();
    let (code, p) = code_for(&app, &client).await;
    let (created, expires) = app.code_times(&code);
    assert_eq!(expires - created, 60, "code TTL must be 60 s");
    assert!(expires - created <= 600);

    app.expire_code(&code);
    let resp = app.exchange(&client, &code, &p.verifier).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;

    // Control: an unexpired code of the same client is redeemed.
    let (code2, p2) = code_for(&app, &client).await;
    ok_json(app.exchange(&client, &code2, &p2.verifier).await).await;
}

both_backends!(code_bound_to_client_and_redirect_uri);
async fn code_bound_to_client_and_redirect_uri(app: TestApp) {
    let client = app.spa();
    let other = app.spa_and_alice();

    // Another client presents the code.
    let (code, p) = code_for(&app, &client).await;
    let resp = app.exchange(&other, &code, &p.verifier).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;

    for redirect in [
        Some("http://127.0.0.1:5173/callback/"),
        Some("http://127.0.0.1:5173/callback?x=1"),
        Some("http://localhost:5173/callback"),
        Some("http://127.0.0.1:5173/other"),
        None,
    ] {
        let (code, p) = code_for(&app, &client).await;
        let mut req = app.token().code(&code, &p.verifier).client(&client);
        req = req.without("redirect_uri");
        if let Some(r) = redirect {
            req = req.param("redirect_uri", r);
        }
        let (status, _, body) = req.read().await;
        assert_eq!(status, 400, "redirect_uri {redirect:?}: {body}");
        let error = &body["error"];
        assert_eq!(error, "invalid_grant", "redirect_uri {redirect:?}: {body}");
    }

    // Control: the same request with the original redirect_uri by the original client works.
    let (code, p) = code_for(&app, &client).await;
    let req = app.token().code(&code, &p.verifier).client(&client);
    req.set("redirect_uri", REDIRECT).ok().await;
}

both_backends!(codes_and_tokens_are_256_bit);
async fn codes_and_tokens_are_256_bit(app: TestApp) {
    let client = app.spa_and_alice();
    let (code, p) = code_for(&app, &client).await;
    let tokens = ok_json(app.exchange(&client, &code, &p.verifier).await).await;
    let rt1 = s(&tokens, "refresh_token");
    let t2 = ok_json(app.refresh(&client, &rt1).await).await;
    let rt2 = s(&t2, "refresh_token");
    let conf = app.confidential();
    let secret = conf.secret().to_owned();

    // Codes and refresh tokens carry their time in front (12 hex digits of unix milliseconds),
    // then 256 random (or, for a successor, derived) bits; a client secret is the bits alone.
    for (what, value) in [
        ("code", &code),
        ("refresh token", &rt1),
        ("rotated refresh token", &rt2),
        ("client secret", &secret),
    ] {
        let bits = match what {
            "client secret" => value.as_str(),
            _ => {
                let (at, bits) = value.split_at(12);
                assert!(at.bytes().all(|b| b.is_ascii_hexdigit()), "{what}: {value}");
                bits
            }
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(bits)
            .unwrap_or_else(|_| panic!("{what} is not base64url: {value}"));
        assert_eq!(bytes.len(), 32, "{what} must carry 256 bits");
    }
    assert_ne!(rt1, rt2);

    // Stored: SHA-256 hex of the whole value, behind the token's time digits.
    let codes = app.code_rows();
    assert_eq!(codes.len(), 1);
    let stored_code = &codes[0][0];
    assert_eq!(
        stored_code,
        &format!("{}{}", &code[..12], sha256_hex(&code)),
        "auth_codes stores SHA-256 hex of the code behind its time"
    );
    let rts = app.refresh_rows();
    assert_eq!(rts.len(), 2);
    let stored: Vec<&str> = rts.iter().map(|r| r[0].as_str()).collect();
    for rt in [&rt1, &rt2] {
        assert!(stored.contains(&format!("{}{}", &rt[..12], sha256_hex(rt)).as_str()));
    }
    assert_eq!(app.client_secret_hash(&conf), Some(sha256_hex(&secret)));

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
}

// Codes and refresh tokens are stored under keys that sort by their time, so that each write
// lands at the end of its index rather than at a random page of it.
both_backends!(codes_and_refresh_tokens_are_stored_under_keys_that_sort_by_issue);
async fn codes_and_refresh_tokens_are_stored_under_keys_that_sort_by_issue(app: TestApp) {
    let client = app.spa_and_alice();
    let (code1, p1) = code_for(&app, &client).await;
    let rt1 = s(
        &ok_json(app.exchange(&client, &code1, &p1.verifier).await).await,
        "refresh_token",
    );
    app.advance_clock(1);
    let (code2, p2) = code_for(&app, &client).await;
    let rt2 = s(
        &ok_json(app.exchange(&client, &code2, &p2.verifier).await).await,
        "refresh_token",
    );
    app.advance_clock(1);
    let rt3 = s(
        &ok_json(app.refresh(&client, &rt2).await).await,
        "refresh_token",
    );

    let codes: Vec<String> = app.code_rows().into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(codes.len(), 2);
    let refresh: Vec<String> = app
        .refresh_rows()
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(refresh.len(), 3);
    for (earlier, later) in [(&code1, &code2), (&rt1, &rt2), (&rt2, &rt3)] {
        let (a, b) = (stored_key(earlier), stored_key(later));
        assert!(a < b, "a later token's key sorts after: {a} {b}");
        assert!(
            codes.contains(&a) || refresh.contains(&a),
            "stored under {a}"
        );
        assert!(
            codes.contains(&b) || refresh.contains(&b),
            "stored under {b}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// P0 — refresh tokens
// ---------------------------------------------------------------------------------------------

both_backends!(refresh_rotation);
async fn refresh_rotation(app: TestApp) {
    let (client, t0) = app.signed_in("alice", &[]).await;
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
    assert_eq!(app.rotated_refresh_tokens(), 2);
}

both_backends!(refresh_reuse_revokes_family);
async fn refresh_reuse_revokes_family(app: TestApp) {
    let introspector = app.confidential();
    let (client, t0) = app.signed_in("alice", &[]).await;
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
    assert_eq!(app.introspect(&introspector, &at1).await, inactive());
    let at0 = s(&t0, "access_token");
    assert_eq!(app.introspect(&introspector, &at0).await, inactive());
}

both_backends!(concurrent_refresh_one_success);
async fn concurrent_refresh_one_success(app: TestApp) {
    let client = app.spa_and_alice();
    // Several rounds: a race that is lost only sometimes still shows.
    for _ in 0..ROUNDS {
        let t0 = app.tokens_for(&client, "alice").await;
        let refresh = app
            .token()
            .refresh(&s(&t0, "refresh_token"))
            .client(&client);
        assert_one_winner(&refresh.race(8).await);
    }
}

both_backends!(refresh_token_bound_to_client);
async fn refresh_token_bound_to_client(app: TestApp) {
    let client = app.spa();
    let other = app.spa();
    let conf = app.confidential();
    app.user("alice", &[]);

    let t = app.tokens_for(&client, "alice").await;
    let rt = s(&t, "refresh_token");
    assert_oauth_error(app.refresh(&other, &rt).await, 400, "invalid_grant").await;
    // Nor may a confidential client, even authenticated, use it.
    app.token()
        .refresh(&rt)
        .basic(&conf)
        .fails(400, "invalid_grant")
        .await;

    // A confidential client's refresh token needs the client's authentication.
    let ct = app.confidential_tokens(&conf, "alice").await;
    let crt = s(&ct, "refresh_token");
    let (status, headers, body) = app.token().refresh(&crt).client(&conf).read().await; // no secret
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(headers.contains_key("www-authenticate"));
    // The public client cannot use it either.
    assert_oauth_error(app.refresh(&client, &crt).await, 400, "invalid_grant").await;
    // Control: authenticated, the owner refreshes.
    app.token().refresh(&crt).basic(&conf).ok().await;
}

both_backends!(error_descriptions_never_say_more_than_invalid);
/// Rule 60: a token holder learns that a code or refresh token is not valid, and nothing more:
/// another client's, a disabled user's and an unknown one get the very same answer.
async fn error_descriptions_never_say_more_than_invalid(app: TestApp) {
    let spa = app.spa_and_alice();
    let other = app.spa();
    app.user("bob", &[]);

    let unknown = app
        .token()
        .refresh("an-unknown-refresh-token")
        .client(&spa)
        .fails(400, "invalid_grant")
        .await;
    let rt = s(&app.tokens_for(&spa, "alice").await, "refresh_token");
    let foreign = app
        .token()
        .refresh(&rt)
        .client(&other)
        .fails(400, "invalid_grant")
        .await;
    assert_eq!(foreign, unknown, "another client's refresh token");
    app.disable_user("alice").expect("disable alice");
    let disabled = app
        .token()
        .refresh(&rt)
        .client(&spa)
        .fails(400, "invalid_grant")
        .await;
    assert_eq!(disabled, unknown, "a disabled user's refresh token");

    let pkce = pkce();
    let code = app.code_as(&spa, "bob", &pkce, &[]).await;
    let unknown = app
        .token()
        .code("an-unknown-code", &pkce.verifier)
        .client(&other)
        .fails(400, "invalid_grant")
        .await;
    let foreign = app
        .token()
        .code(&code, &pkce.verifier)
        .client(&other)
        .fails(400, "invalid_grant")
        .await;
    assert_eq!(foreign, unknown, "another client's code");
    // Control: the code was not spent by the other client's attempt.
    app.token()
        .code(&code, &pkce.verifier)
        .client(&spa)
        .ok()
        .await;
}

both_backends!(refresh_scope_may_narrow_never_widen);
async fn refresh_scope_may_narrow_never_widen(app: TestApp) {
    let (client, t0) = app.signed_in("alice", &[]).await;
    assert_eq!(sorted_words(&s(&t0, "scope")), ["api:read", "api:write"]);

    let refresh = |t: &Value| app.token().refresh(&s(t, "refresh_token")).client(&client);
    let t1 = refresh(&t0).scope("api:read").ok().await;
    assert_eq!(t1["scope"], "api:read");
    assert_eq!(claims_of(&t1)["scope"], "api:read");

    // RFC 6749 §6: the narrowing applied to that access token only; the new refresh token
    // keeps the scope of the one it replaced, so without a scope parameter it is the
    // originally granted scope again.
    let t2 = refresh(&t1).ok().await;
    let full = sorted_words(&s(&claims_of(&t2), "scope"));
    assert_eq!(full, ["api:read", "api:write"]);

    // Widening beyond the original grant is refused.
    let wider = refresh(&t2).scope("api:read api:write admin");
    wider.fails(400, "invalid_scope").await;
}

both_backends!(refresh_absolute_lifetime);
async fn refresh_absolute_lifetime(app: TestApp) {
    let client = app.spa();
    let user = app.user("alice", &[]);

    // Absolute end of the family.
    let t0 = app.tokens_for(&client, "alice").await;
    let (created, expires) = app.grant_times(&user);
    assert_eq!(
        expires - created,
        app.settings.tokens.refresh_token_ttl_secs
    );
    let rt_expiry = app.refresh_expiry(&s(&t0, "refresh_token"));
    assert!(rt_expiry <= expires, "no refresh token outlives its family");
    // Control: the family is alive and refreshes.
    let t1 = ok_json(app.refresh(&client, &s(&t0, "refresh_token")).await).await;
    app.expire_grants();
    let resp = app.refresh(&client, &s(&t1, "refresh_token")).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;

    // Idle expiry of one token in a live family.
    let t2 = app.tokens_for(&client, "alice").await;
    let rt2 = s(&t2, "refresh_token");
    app.expire_refresh_token(&rt2, 1);
    assert_oauth_error(app.refresh(&client, &rt2).await, 400, "invalid_grant").await;
}

// ---------------------------------------------------------------------------------------------
// P0 — token endpoint, client authentication, grants
// ---------------------------------------------------------------------------------------------

both_backends!(token_responses_not_cached);
async fn token_responses_not_cached(app: TestApp) {
    let client = app.spa_and_alice();
    let (code, p) = code_for(&app, &client).await;
    let issued = read(app.exchange(&client, &code, &p.verifier).await).await;
    let refreshed = read(app.refresh(&client, &s(&issued.2, "refresh_token")).await).await;

    // Errors: invalid_grant, invalid_client (401), unsupported_grant_type, and a malformed request.
    let replayed = read(app.exchange(&client, &code, &p.verifier).await).await;
    let conf = app.confidential();
    let wrong_secret = app.token().refresh("x").basic_as(&conf.id, "wrong");
    let unsupported = app.token().grant_type("password").client(&client);
    let in_query = app.api.post(app.url("/token?x=1"));
    let in_query = in_query.form(&[("grant_type", "refresh_token")]).send();
    for (what, status, (got, headers, _)) in [
        ("code exchange", 200, issued),
        ("refresh", 200, refreshed),
        ("invalid_grant", 400, replayed),
        ("invalid_client", 401, wrong_secret.read().await),
        ("unsupported_grant_type", 400, unsupported.read().await),
        (
            "invalid_request",
            400,
            read(in_query.await.expect("POST")).await,
        ),
    ] {
        assert_eq!(got, status, "{what}");
        assert_no_cache(&headers, what);
    }
}

both_backends!(token_endpoint_accepts_only_form_post);
async fn token_endpoint_accepts_only_form_post(app: TestApp) {
    let client = app.spa_and_alice();
    let (code, p) = code_for(&app, &client).await;
    let form = app
        .token()
        .code(&code, &p.verifier)
        .client(&client)
        .params()
        .to_vec();
    let post = |query: &str| app.api.post(app.url(&format!("/token{query}")));

    // GET, with every parameter in the query.
    let query = encode(&form);
    let resp = app.get(&format!("/token?{query}")).await;
    assert_ne!(resp.status().as_u16(), 200, "GET /token must not work");
    assert!(!resp.status().is_server_error());

    // JSON body.
    let json: serde_json::Map<String, Value> = form
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let resp = post("").json(&json).send().await.expect("POST");
    assert_oauth_error(resp, 400, "invalid_request").await;

    // One parameter in the URL query, the rest in the body.
    let (body_part, query_part) = form.split_at(form.len() - 1);
    let split = post(&format!("?{}", encode(query_part))).form(body_part);
    let resp = split.send().await.expect("POST");
    assert_oauth_error(resp, 400, "invalid_request").await;

    // Everything in the body and (again) in the query.
    let resp = post(&format!("?{query}"))
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_oauth_error(resp, 400, "invalid_request").await;

    // A duplicated parameter, even with the same value.
    let mut dup = form.clone();
    dup.push(("redirect_uri".into(), REDIRECT.into()));
    let resp = post("").form(&dup).send().await.expect("POST");
    assert_oauth_error(resp, 400, "invalid_request").await;
    let mut dup = form.clone();
    dup.insert(0, ("grant_type".into(), "authorization_code".into()));
    let resp = post("").form(&dup).send().await.expect("POST");
    assert_oauth_error(resp, 400, "invalid_request").await;

    // Control: the same parameters as a form body work (none of the above spent the code).
    ok_json(post("").form(&form).send().await.expect("POST")).await;
}

both_backends!(client_secret_basic_is_form_urldecoded_and_one_method_only);
async fn client_secret_basic_is_form_urldecoded_and_one_method_only(app: TestApp) {
    let conf = app.confidential();
    app.user("alice", &[]);
    let secret = conf.secret().to_owned();

    // client_secret_basic.
    let t0 = app.confidential_tokens(&conf, "alice").await;

    // Basic with form-urlencoded id and secret: '_' of the id and every byte of the secret escaped.
    assert!(conf.id.contains('_'));
    let id_enc = conf.id.replace('_', "%5F");
    let secret_enc: String = secret.bytes().map(|b| format!("%{b:02X}")).collect();
    let escaped = format!(
        "Basic {}",
        STANDARD.encode(format!("{id_enc}:{secret_enc}"))
    );
    let refresh = app.token().refresh(&s(&t0, "refresh_token"));
    let t1 = refresh.authorization(&escaped).ok().await;
    let rt1 = s(&t1, "refresh_token");

    // Basic and client_secret in the body: two methods.
    let both = app
        .token()
        .refresh(&rt1)
        .param("client_secret", &secret)
        .basic(&conf);
    both.fails(400, "invalid_request").await;

    // A wrong secret: 401 with a Basic challenge.
    let wrong = app
        .token()
        .refresh(&rt1)
        .basic_as(&conf.id, &format!("{secret}x"));
    let (status, headers, body) = wrong.read().await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    let challenge = header(&headers, "www-authenticate").expect("WWW-Authenticate on 401");
    assert!(challenge.starts_with("Basic"), "{challenge}");

    // client_secret_post.
    app.token().refresh(&rt1).secret_post(&conf).ok().await;
}

both_backends!(unknown_client_same_as_wrong_secret);
async fn unknown_client_same_as_wrong_secret(app: TestApp) {
    let conf = app.confidential();
    let unknown_id = format!("cl_{}", URL_SAFE_NO_PAD.encode([9u8; 16]));

    async fn raw(req: OAuthRequest<'_>) -> (u16, Option<String>, String) {
        let resp = req.send().await;
        let www = header(&resp, "www-authenticate");
        (
            resp.status().as_u16(),
            www,
            resp.text().await.expect("body"),
        )
    }
    let refresh = || app.token().refresh("whatever");

    // HTTP Basic.
    let wrong = raw(refresh().basic_as(&conf.id, "not-the-secret")).await;
    let unknown = raw(refresh().basic_as(&unknown_id, "not-the-secret")).await;
    assert_eq!(wrong.0, 401);
    let body: Value = serde_json::from_str(&wrong.2).expect("json");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(wrong, unknown, "unknown client vs wrong secret (Basic)");

    // client_secret_post.
    let post = |id: &str| {
        refresh()
            .param("client_id", id)
            .param("client_secret", "not-the-secret")
    };
    let wrong_post = raw(post(&conf.id)).await;
    let unknown_post = raw(post(&unknown_id)).await;
    assert_eq!(
        wrong_post, unknown_post,
        "unknown client vs wrong secret (post)"
    );
    assert_eq!(wrong_post, wrong, "both methods answer alike");
}

both_backends!(grant_types_allow_listed);
async fn grant_types_allow_listed(app: TestApp) {
    app.user("alice", &[]);
    let code_only = app.register(NewClient {
        grant_types: parse_grant_types(&["authorization_code"]),
        ..spa_registration()
    });
    let (code, p) = code_for(&app, &code_only).await;
    let tokens = ok_json(app.exchange(&code_only, &code, &p.verifier).await).await;
    assert!(tokens["access_token"].is_string());
    assert!(
        tokens.get("refresh_token").is_none(),
        "no refresh token for a code-only client: {tokens}"
    );
    let refused = |(status, _, body): (u16, _, Value)| {
        assert_eq!(status, 400, "{body}");
        let error = &body["error"];
        assert!(
            error == "unauthorized_client" || error == "invalid_grant",
            "{body}"
        );
    };
    refused(read(app.refresh(&code_only, "some-refresh-token").await).await);

    // A client whose refresh grant is withdrawn cannot use the refresh token it holds, once the
    // client cache's bound has passed (the change is made in the database, as another instance
    // or the command line makes it).
    let spa = app.spa();
    let t = app.tokens_for(&spa, "alice").await;
    app.set_grant_types(&spa, r#"["authorization_code"]"#);
    app.advance_clock(app.settings.clients.cache_secs);
    refused(read(app.refresh(&spa, &s(&t, "refresh_token")).await).await);

    // Grant types the client is not registered for.
    let conf = app.confidential();
    for grant in ["password", "client_credentials"] {
        let req = app.token().grant_type(grant).basic(&conf);
        let req = req.param("username", "alice").param("password", PASSWORD);
        req.fails(400, "unauthorized_client").await;
    }

    // Grant types Gatehouse does not implement.
    for grant in [
        "implicit",
        "foo",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        let req = app.token().grant_type(grant).client(&spa);
        let req = req.param("username", "alice").param("password", PASSWORD);
        let (status, _, body) = req.scope("api:read").read().await;
        assert_eq!(status, 400, "grant {grant}: {body}");
        let error = &body["error"];
        assert_eq!(error, "unsupported_grant_type", "grant {grant}: {body}");
        // Also for an authenticated confidential client.
        let (status, _, body) = app.token().grant_type(grant).basic(&conf).read().await;
        assert_eq!(status, 400, "grant {grant} (confidential): {body}");
        let error = &body["error"];
        assert_eq!(error, "unsupported_grant_type", "grant {grant}: {body}");
    }

    // No grant_type.
    let req = app.token().param("code", "abc").client(&spa);
    req.param("redirect_uri", REDIRECT)
        .fails(400, "invalid_request")
        .await;
}

// ---------------------------------------------------------------------------------------------
// P0 — JWT access tokens
// ---------------------------------------------------------------------------------------------

both_backends!(access_token_header_is_at_jwt);
async fn access_token_header_is_at_jwt(app: TestApp) {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let (client, tokens) = app.signed_in("alice", &[]).await;
    let at = s(&tokens, "access_token");

    let (raw_header, _) = jwt_parts(&at);
    assert_eq!(raw_header["typ"], "at+jwt");
    assert_eq!(raw_header["alg"], "ES256");
    let kid = s(&raw_header, "kid");

    let jwks_json = app.jwks().await;
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
    let decode = |jwt: &str, aud: &str, iss: &str| {
        jsonwebtoken::decode::<Value>(jwt, &key, &validation(aud, iss))
    };
    let data = decode(&at, AUDIENCE, &app.issuer).expect("signature verifies");
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(data.header.alg, Algorithm::ES256);
    assert_eq!(data.claims["client_id"], client.id);

    // The checks are real: other audience, other issuer, a tampered payload all fail.
    assert!(decode(&at, "https://other.example", &app.issuer).is_err());
    assert!(decode(&at, AUDIENCE, "https://evil.example").is_err());
    let parts: Vec<&str> = at.split('.').collect();
    let mut claims = jwt_parts(&at).1;
    claims["sub"] = Value::String("usr_someone_else".into());
    let forged = format!("{}.{}.{}", parts[0], b64_json(&claims), parts[2]);
    assert!(decode(&forged, AUDIENCE, &app.issuer).is_err());
}

both_backends!(access_token_claims);
async fn access_token_claims(app: TestApp) {
    let client = app.spa();
    let alice = app.user("alice", &["admin"]);
    let bob = app.user("bob", &[]);
    let before = app.now();
    let t = app.tokens_for(&client, "alice").await;
    let claims = claims_of(&t);
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["sub"], alice);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["client_id"], client.id);
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    let now = iat >= before - 5 && iat <= app.now() + 5;
    assert!(now, "iat {iat} is now");
    assert_eq!(exp, iat + 900);
    assert_eq!(t["expires_in"], 900);
    assert_eq!(
        sorted_words(&s(&claims, "scope")),
        ["api:read", "api:write"]
    );
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));
    let jti1 = s(&claims, "jti");
    assert!(!jti1.is_empty());

    let t2 = ok_json(app.refresh(&client, &s(&t, "refresh_token")).await).await;
    let claims2 = claims_of(&t2);
    assert_ne!(s(&claims2, "jti"), jti1, "jti is unique");
    assert_eq!(claims2["sub"], alice);
    assert_eq!(claims2["roles"], serde_json::json!(["admin"]));

    // A user without roles: no roles claim.
    let mut app = app;
    app.browser = new_browser();
    let claims3 = claims_of(&app.tokens_for(&client, "bob").await);
    assert_eq!(claims3["sub"], bob);
    assert!(
        claims3.get("roles").is_none(),
        "no roles claim for a user without roles: {claims3}"
    );
    assert_ne!(claims3["jti"], claims["jti"]);
}

both_backends!(unknown_resource_is_invalid_target);
async fn unknown_resource_is_invalid_target(app: TestApp) {
    let client = app.register(NewClient {
        audiences: strings(&[AUDIENCE, SECOND_AUDIENCE]),
        ..spa_registration()
    });
    app.user("alice", &[]);

    // At /authorize.
    let p = pkce();
    let other = Some("https://other.example");
    let query = authz(&client.id, &p.challenge, &[("resource", other)]);
    let resp = app.get_authorize(&query).await;
    assert_error_redirect(
        &app,
        &resp,
        "invalid_target",
        Some(STATE),
        "unknown resource",
    );

    // At /token: a resource other than the authorized one.
    let code = app.code_as(&client, "alice", &p, &[]).await;
    let exchange = |code: &str, p: &Pkce| app.token().code(code, &p.verifier).client(&client);
    for other in ["https://other.example", SECOND_AUDIENCE] {
        let (status, _, body) = exchange(&code, &p).resource(other).read().await;
        assert_eq!(status, 400, "resource {other}: {body}");
        assert_eq!(body["error"], "invalid_target", "resource {other}: {body}");
    }
    // Control: no resource parameter → the first registered audience.
    let (code, p) = code_for(&app, &client).await;
    let t = exchange(&code, &p).ok().await;
    assert_eq!(claims_of(&t)["aud"], AUDIENCE);

    // The second audience, selected by `resource`, becomes the token's aud.
    let p = pkce();
    let code = app
        .code_as(&client, "alice", &p, &[("resource", SECOND_AUDIENCE)])
        .await;
    let t2 = exchange(&code, &p).resource(SECOND_AUDIENCE).ok().await;
    assert_eq!(claims_of(&t2)["aud"], SECOND_AUDIENCE);
    // A refresh cannot move it to the other audience.
    let refresh = || {
        app.token()
            .refresh(&s(&t2, "refresh_token"))
            .client(&client)
    };
    refresh()
        .resource(AUDIENCE)
        .fails(400, "invalid_target")
        .await;
    let t3 = refresh().ok().await;
    assert_eq!(claims_of(&t3)["aud"], SECOND_AUDIENCE);
}

both_backends!(user_and_client_subjects_cannot_collide);
async fn user_and_client_subjects_cannot_collide(app: TestApp) {
    let client = app.spa();
    let conf = app.confidential();
    let user = app.user("alice", &[]);
    assert!(user.starts_with("usr_"), "user id {user}");
    assert!(client.id.starts_with("cl_"), "client id {}", client.id);
    assert!(conf.id.starts_with("cl_"), "client id {}", conf.id);
    let claims = claims_of(&app.tokens_for(&client, "alice").await);
    assert_eq!(claims["sub"], user);
    assert_ne!(claims["sub"], claims["client_id"]);
    assert_eq!(claims["client_id"], client.id);
    // Same for a token issued to a confidential client.
    let claims = claims_of(&app.confidential_tokens(&conf, "alice").await);
    assert_eq!(claims["sub"], user);
    assert_eq!(claims["client_id"], conf.id);
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

both_backends!(token_endpoint_bad_input_gets_rfc_errors);
async fn token_endpoint_bad_input_gets_rfc_errors(app: TestApp) {
    let client = app.spa_and_alice();
    let conf = app.confidential();

    /// Asserts an RFC 6749 §5.2 error (401 for invalid_client only), `expected` if given.
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
    // A form body as raw bytes, with a raw Authorization header.
    let raw = |body: &[u8], authorization: Option<&[u8]>| {
        let form = "application/x-www-form-urlencoded";
        let mut req = app.api.post(app.url("/token")).header("content-type", form);
        if let Some(a) = authorization {
            let a = reqwest::header::HeaderValue::from_bytes(a).expect("header value");
            req = req.header("authorization", a);
        }
        req.body(body.to_vec()).send()
    };
    let invalid_request = Some("invalid_request");
    let mut cases: Vec<(&str, Option<&str>, reqwest::Response)> = Vec::new();

    // Missing code or refresh_token, an empty body, no content type at all.
    let no_code = app.token().code("", &pkce().verifier).without("code");
    cases.push((
        "missing code",
        invalid_request,
        no_code.client(&client).send().await,
    ));
    let no_refresh_token = app.token().grant_type("refresh_token").client(&client);
    let resp = no_refresh_token.send().await;
    cases.push(("missing refresh_token", invalid_request, resp));
    cases.push(("empty body", None, raw(b"", None).await.expect("POST")));
    let refresh_of = format!("grant_type=refresh_token&client_id={}", client.id);
    let untyped = app
        .api
        .post(app.url("/token"))
        .body(format!("{refresh_of}&refresh_token=x"));
    cases.push((
        "no content type",
        invalid_request,
        untyped.send().await.expect("POST"),
    ));
    // Oversized values, an oversized parameter name and too many parameters.
    let big = "a".repeat(5000);
    for (what, key) in [
        ("oversized code", "code"),
        ("oversized client_id", "client_id"),
        ("oversized verifier", "code_verifier"),
    ] {
        let req = app.token().code("abc", "v").client(&client);
        cases.push((what, invalid_request, req.set(key, &big).send().await));
    }
    let long_name = app
        .token()
        .grant_type("refresh_token")
        .param(&"k".repeat(200), "v");
    cases.push(("oversized name", invalid_request, long_name.send().await));
    let many: String = (0..40).map(|i| format!("p{i}=v&")).collect();
    let resp = raw(many.as_bytes(), None).await.expect("POST");
    cases.push(("too many parameters", invalid_request, resp));
    // Non-UTF-8 bytes in the body, raw and percent-encoded.
    let mut body = format!("{refresh_of}&refresh_token=").into_bytes();
    body.extend_from_slice(&[0xff, 0xfe, 0x80]);
    cases.push((
        "raw non-UTF-8 body",
        None,
        raw(&body, None).await.expect("POST"),
    ));
    let body = format!("{refresh_of}&refresh_token=%FF%FE%80");
    let resp = raw(body.as_bytes(), None).await.expect("POST");
    cases.push(("encoded non-UTF-8 body", Some("invalid_grant"), resp));
    let resp = raw(b"grant_type=%FF&client_id=%C0%AF", None).await;
    cases.push(("non-UTF-8 grant_type", None, resp.expect("POST")));
    for (what, expected, resp) in cases {
        check(resp, what, expected).await;
    }

    // Garbage Authorization headers.
    let basic_of = |credentials: &[u8]| format!("Basic {}", STANDARD.encode(credentials));
    for (what, header) in [
        ("not base64", "Basic !!!not*base64!!!".to_owned()),
        ("base64 of non-UTF-8", basic_of(&[0xffu8, 0xfe, b':', 0xfd])),
        ("no colon", basic_of(b"nocolonhere")),
        (
            "bad percent escape",
            basic_of(format!("{}:%zz%", conf.id).as_bytes()),
        ),
        ("empty Basic", "Basic ".to_owned()),
        ("bare Basic", "Basic".to_owned()),
        ("other scheme", "Bearer abc.def.ghi".to_owned()),
    ] {
        let resp = raw(
            b"grant_type=refresh_token&refresh_token=x",
            Some(header.as_bytes()),
        );
        check(resp.await.expect("POST"), what, Some("invalid_client")).await;
    }
    let non_ascii = Some(&b"Basic \xff\xfe\xfd"[..]);
    let resp = raw(b"grant_type=refresh_token&refresh_token=x", non_ascii).await;
    check(
        resp.expect("POST"),
        "non-ASCII header bytes",
        Some("invalid_client"),
    )
    .await;

    // Unknown client (public style, and Basic), unknown code and refresh token.
    let unknown_client = Some("invalid_client");
    let unknown = app
        .token()
        .refresh("x")
        .param("client_id", "cl_doesnotexist");
    check(unknown.send().await, "unknown client", unknown_client).await;
    let unknown = app
        .token()
        .refresh("x")
        .basic_as("cl_doesnotexist", "secret");
    check(
        unknown.send().await,
        "unknown client (Basic)",
        unknown_client,
    )
    .await;
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

/// The session cookie a response sets.
fn session_set_by(resp: &reqwest::Response) -> String {
    cookie_pair(&set_cookie(resp).expect("a session cookie")).1
}

both_backends!(secrets_never_logged);
async fn secrets_never_logged(app: TestApp) {
    let logs = capture_logs();
    let conf = app.confidential();
    let first_party = app.password_client();
    let user = app.user("alice", &[]);
    let secret = conf.secret().to_owned();
    let mut secrets: Vec<(&str, String)> = vec![
        ("password", PASSWORD.to_owned()),
        ("client secret", secret.clone()),
        ("client secret", first_party.secret().to_owned()),
    ];

    // The browser: session cookies before and after login, the forms' CSRF tokens and
    // interaction ids, and a failed login with its wrong password.
    let p = pkce();
    let resp = app.get_authorize(&authz(&conf.id, &p.challenge, &[])).await;
    secrets.push(("session cookie", session_set_by(&resp)));
    let login = location(&resp);
    let (interaction, csrf) = app.form_fields(&app.browser, &login).await;
    let wrong = "wrong password on the login page";
    let failed = app
        .browser_post("/login", &login_form(&interaction, &csrf, "alice", wrong))
        .await;
    assert_eq!(failed.status().as_u16(), 200, "the login failed");
    let resp = app.login(&login, "alice", PASSWORD).await;
    secrets.push(("session cookie", session_set_by(&resp)));
    let consent = location(&resp);
    let (consent_interaction, consent_csrf) = app.form_fields(&app.browser, &consent).await;
    let code = query_of(&location(&app.consent(&consent, "approve").await))["code"].clone();
    secrets.extend([
        ("failed login password", wrong.to_owned()),
        ("interaction id", interaction),
        ("csrf token", csrf),
        ("interaction id", consent_interaction),
        ("csrf token", consent_csrf),
    ]);

    let exchange = || app.token().code(&code, &p.verifier).basic(&conf);
    let t1 = exchange().ok().await;
    // A replay and a failed authentication too: error paths log as well.
    exchange().fails(400, "invalid_grant").await;
    // The replay revoked the grant: a second login for the refresh part.
    let p2 = pkce();
    let code2 = app.code_as(&conf, "alice", &p2, &[]).await;
    let redeem = app.token().code(&code2, &p2.verifier);
    let t2 = redeem.basic(&conf).ok().await;
    let refresh = |t: &Value| app.token().refresh(&s(t, "refresh_token"));
    let t3 = refresh(&t2).basic(&conf).ok().await;
    let wrong_secret = refresh(&t3).basic_as(&conf.id, &format!("{secret}wrong"));
    assert_eq!(wrong_secret.send().await.status().as_u16(), 401);
    // Reuse of a rotated refresh token (logged as a warning).
    refresh(&t2).basic(&conf).fails(400, "invalid_grant").await;
    let t4 = app.confidential_tokens(&conf, "alice").await;
    let revocation = app.revocation(&s(&t4, "refresh_token")).basic(&conf);
    assert_eq!(revocation.send().await.status().as_u16(), 200);

    // The password grant: its password, a wrong one, and the tokens it issues and refreshes.
    let t5 = app
        .token()
        .password("alice", PASSWORD)
        .basic(&first_party)
        .ok()
        .await;
    let t6 = refresh(&t5).basic(&first_party).ok().await;
    let grant_wrong = "wrong password in the password grant";
    let req = app
        .token()
        .password("alice", grant_wrong)
        .basic(&first_party);
    req.fails(400, "invalid_grant").await;
    secrets.push(("password grant password", grant_wrong.to_owned()));

    // Secrets in a query string, a cookie and an Authorization header: the access log names
    // the method, path and parameter names only.
    let at = s(&t1, "access_token");
    let probe = app
        .api
        .get(app.url(&format!("/token?access_token={at}&client_secret={secret}")))
        .header("Authorization", format!("Bearer {at}"))
        .header("Cookie", format!("probe={secret}"))
        .send()
        .await
        .expect("send");
    assert_eq!(probe.status().as_u16(), 405);
    secrets.push(("code_challenge", p.challenge.clone()));
    // An introspection: its access line names the client that asked.
    app.introspection(&s(&t5, "access_token"))
        .basic(&first_party)
        .ok()
        .await;
    // A userinfo request (its token has no openid): the line names the token's client.
    let userinfo = app
        .api
        .get(app.url("/userinfo"))
        .bearer_auth(s(&t5, "access_token"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(userinfo.status().as_u16(), 403);

    let text =
        String::from_utf8_lossy(&logs.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    // The access log: a line per request, with the authenticated client and the route.
    let access = |route: &str, client: &str| {
        text.lines().any(|l| {
            l.contains("access:") && l.contains(&format!("route={route} ")) && l.contains(client)
        })
    };
    assert!(access("/token", &conf.id), "no access line for /token");
    assert!(access("/revoke", &conf.id), "no access line for /revoke");
    assert!(
        access("/introspect", &first_party.id),
        "no access line for /introspect"
    );
    assert!(
        access("/userinfo", &first_party.id),
        "no access line for /userinfo"
    );
    assert!(
        text.lines().any(|l| l.contains("access:")
            && l.contains("path=/token")
            && l.contains("query=access_token,client_secret")),
        "no access line for the probe"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("oauth error") && l.contains("invalid_grant")),
        "OAuth errors are logged with their code"
    );
    assert!(
        !text.contains("Some("),
        "an Option's Debug form in the logs"
    );
    for client in [&conf.id, &first_party.id] {
        let issued = text
            .lines()
            .any(|l| l.contains("access token issued") && l.contains(client));
        assert!(
            issued,
            "the capture works: no 'access token issued' line for {client}"
        );
    }
    // The issues that are not written to the audit table are still audit lines in the log.
    for event in ["token_issued", "token_refreshed"] {
        assert!(
            text.lines()
                .any(|l| l.contains("audit event") && l.contains(event) && l.contains(&conf.id)),
            "no {event} audit line for {}",
            conf.id
        );
    }
    assert!(text.contains(&user), "the login of {user} was logged");
    assert!(text.contains("login failed"), "the failed login was logged");

    secrets.extend([
        ("code", code.clone()),
        ("code", code2.clone()),
        ("code_verifier", p.verifier.clone()),
        ("code_verifier", p2.verifier.clone()),
    ]);
    for t in [&t1, &t2, &t3, &t4, &t5, &t6] {
        secrets.push(("refresh token", s(t, "refresh_token")));
        let at = s(t, "access_token");
        // The signature part: the header part is shared by every token of one key.
        let signature = at.rsplit('.').next().expect("sig").to_owned();
        secrets.push(("access token signature", signature));
        secrets.push(("access token", at));
    }
    for (what, value) in &secrets {
        assert!(!text.contains(value.as_str()), "{what} appears in the logs");
        // Nor a truncated prefix of a random value.
        if value.len() >= 43 && *what != "password" && *what != "access token" {
            let prefix = &value[..16];
            assert!(
                !text.contains(prefix),
                "a prefix of a {what} appears in the logs"
            );
        }
    }
}

both_backends!(oversized_body_gets_invalid_request);
async fn oversized_body_gets_invalid_request(app: TestApp) {
    let client = app.spa();
    let big = "a".repeat(64 * 1024);
    for path in ["/token", "/revoke", "/introspect"] {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", &client.id),
            ("token", &big),
        ];
        let resp = app.post_form(path, &form, None).await;
        let body = assert_oauth_error(resp, 400, "invalid_request").await;
        let description = s(&body, "error_description");
        assert!(description.contains("too large"), "{path}: {body}");
    }
}

both_backends!(
    rotated_client_secret_works_with_the_old_one_during_the_grace_period,
    |s: &mut Settings| s.clients.cache_secs = 0
);
async fn rotated_client_secret_works_with_the_old_one_during_the_grace_period(app: TestApp) {
    use gatehouse::registry;
    let old = app.machine_client();
    let (_, secret) = registry::rotate_secret(
        &mut app.conn(),
        &old.id,
        3600,
        &gatehouse::registry::By::operator(app.now()),
    )
    .expect("rotate");
    let new = TestClient {
        secret: Some(secret.expose().to_owned()),
        ..old.clone()
    };
    app.token().client_credentials().basic(&old).ok().await;
    app.token().client_credentials().basic(&new).ok().await;
    app.advance_clock(3601);
    app.token()
        .client_credentials()
        .basic(&old)
        .fails(401, "invalid_client")
        .await;
    app.token().client_credentials().basic(&new).ok().await;

    // No grace: the old secret stops at once; a public client has none to rotate.
    let (_, newer) = registry::rotate_secret(
        &mut app.conn(),
        &old.id,
        0,
        &gatehouse::registry::By::operator(app.now()),
    )
    .expect("rotate");
    app.token()
        .client_credentials()
        .basic(&new)
        .fails(401, "invalid_client")
        .await;
    let newest = TestClient {
        secret: Some(newer.expose().to_owned()),
        ..old.clone()
    };
    app.token().client_credentials().basic(&newest).ok().await;
    let spa = app.spa();
    let err = registry::rotate_secret(
        &mut app.conn(),
        &spa.id,
        0,
        &gatehouse::registry::By::operator(app.now()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("public client"), "{err}");
    assert_eq!(app.audit_events_named("client_secret_rotated").len(), 2);
}
