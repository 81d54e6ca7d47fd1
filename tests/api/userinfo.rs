//! `GET`/`POST /userinfo` (OpenID Connect Core §5.3): tokens from the real browser code flow,
//! the claims each scope releases, the bearer token in the header or the form (RFC 6750 §2),
//! the errors of RFC 6750 §3 (checklist 60: an invalid token is told no more than that), only
//! access tokens with `openid` (checklist 62), and CORS for the token's client.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const USERINFO: &str = "/userinfo";
const NOT_VALID: &str = "the access token is not valid";

/// A public client registered for OpenID Connect and an API scope.
fn oidc_spa(app: &TestApp) -> TestClient {
    app.register(NewClient {
        scopes: strings(&["openid", "profile", "email", "api:read"]),
        ..spa_registration()
    })
}

/// The token response of a full browser sign-in of `username` to `client` asking `scope`.
async fn tokens_with(app: &TestApp, client: &TestClient, username: &str, scope: &str) -> Value {
    let pkce = pkce();
    let code = app
        .code_as(client, username, &pkce, &[("scope", scope)])
        .await;
    app.token()
        .code(&code, &pkce.verifier)
        .client(client)
        .ok()
        .await
}

/// alice with a full profile, and her access token for `scope` from the code flow.
async fn alice_token(app: &TestApp, scope: &str) -> (TestClient, Value) {
    let spa = oidc_spa(app);
    app.user("alice", &[]);
    app.set_profile("alice", "Alice Liddell", "alice@example.com", true);
    let tokens = tokens_with(app, &spa, "alice", scope).await;
    (spa, tokens)
}

async fn get_userinfo(app: &TestApp, token: &str) -> reqwest::Response {
    app.api
        .get(app.url(USERINFO))
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo")
}

/// Asserts RFC 6750's `invalid_token`: 401, its challenge, and nothing more than "not valid".
async fn assert_invalid_token(resp: reqwest::Response, what: &str) {
    let (status, headers, body) = read(resp).await;
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(
        header(&headers, "www-authenticate").as_deref(),
        Some("Bearer realm=\"gatehouse\", error=\"invalid_token\""),
        "{what}"
    );
    assert_eq!(
        body,
        json!({"error": "invalid_token", "error_description": NOT_VALID}),
        "{what}"
    );
}

both_backends!(userinfo_releases_claims_by_scope);
async fn userinfo_releases_claims_by_scope(app: TestApp) {
    let spa = oidc_spa(&app);
    let alice = app.user("alice", &[]);
    app.set_profile("alice", "Alice Liddell", "alice@example.com", true);
    for (scope, expected) in [
        ("openid", json!({"sub": alice})),
        (
            "openid profile",
            json!({"sub": alice, "name": "Alice Liddell", "preferred_username": "alice"}),
        ),
        (
            "openid email",
            json!({"sub": alice, "email": "alice@example.com", "email_verified": true}),
        ),
        (
            "openid profile email api:read",
            json!({
                "sub": alice,
                "name": "Alice Liddell",
                "preferred_username": "alice",
                "email": "alice@example.com",
                "email_verified": true,
            }),
        ),
    ] {
        let tokens = tokens_with(&app, &spa, "alice", scope).await;
        let resp = get_userinfo(&app, &s(&tokens, "access_token")).await;
        let (status, headers, body) = read(resp).await;
        assert_eq!(status, 200, "{scope}: {body}");
        assert_eq!(body, expected, "{scope}");
        assert_eq!(
            header(&headers, "cache-control").as_deref(),
            Some("no-store")
        );
        assert!(header(&headers, "content-type").is_some_and(|c| c.contains("application/json")));
        // The same subject as the ID token's.
        let (_, id_claims) = jwt_parts(&s(&tokens, "id_token"));
        assert_eq!(id_claims["sub"], body["sub"], "{scope}");
    }

    // Claims are read at each request: a changed profile shows at once, a missing one is absent.
    let tokens = tokens_with(&app, &spa, "alice", "openid profile email").await;
    app.set_profile("alice", "Alice L.", "alice@new.example", false);
    let body = ok_json(get_userinfo(&app, &s(&tokens, "access_token")).await).await;
    assert_eq!(body["name"], "Alice L.");
    assert_eq!(body["email_verified"], false);
    // A user without a name or an address (here through the password grant, also a user's
    // grant): the claims are absent, not empty.
    let bob = app.user("bob", &[]);
    let first_party = app.register(NewClient {
        scopes: strings(&["openid", "profile", "email"]),
        ..first_party_registration(&["password"])
    });
    let tokens = app
        .token()
        .password("bob", PASSWORD)
        .scope("openid profile email")
        .basic(&first_party)
        .ok()
        .await;
    let body = ok_json(get_userinfo(&app, &s(&tokens, "access_token")).await).await;
    assert_eq!(
        body,
        json!({"sub": bob, "preferred_username": "bob"}),
        "no name, no address"
    );
}

both_backends!(userinfo_accepts_the_token_in_a_post_form_or_header);
async fn userinfo_accepts_the_token_in_a_post_form_or_header(app: TestApp) {
    let (_, tokens) = alice_token(&app, "openid profile").await;
    let at = s(&tokens, "access_token");
    let form = app
        .api
        .post(app.url(USERINFO))
        .form(&[("access_token", at.as_str())])
        .send()
        .await
        .expect("post");
    let body = ok_json(form).await;
    assert_eq!(body["preferred_username"], "alice");
    let header_post = app
        .api
        .post(app.url(USERINFO))
        .bearer_auth(&at)
        .send()
        .await
        .expect("post");
    assert_eq!(ok_json(header_post).await["preferred_username"], "alice");

    // Two ways at once, or the same field twice: invalid_request.
    let both = app
        .api
        .post(app.url(USERINFO))
        .bearer_auth(&at)
        .form(&[("access_token", at.as_str())])
        .send()
        .await
        .expect("post");
    assert_oauth_error(both, 400, "invalid_request").await;
    let twice = app
        .api
        .post(app.url(USERINFO))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(encode(&[("access_token", &at), ("access_token", &at)]))
        .send()
        .await
        .expect("post");
    assert_oauth_error(twice, 400, "invalid_request").await;
}

both_backends!(rule40_userinfo_never_accepts_a_token_in_the_url);
async fn rule40_userinfo_never_accepts_a_token_in_the_url(app: TestApp) {
    let (_, tokens) = alice_token(&app, "openid").await;
    let at = s(&tokens, "access_token");
    for method in [Method::GET, Method::POST] {
        let resp = app
            .api
            .request(
                method.clone(),
                app.url(&format!("{USERINFO}?access_token={at}")),
            )
            .send()
            .await
            .expect("request");
        let body = assert_oauth_error(resp, 400, "invalid_request").await;
        assert!(!body.to_string().contains(&at), "{method}");
    }
}

both_backends!(userinfo_without_a_token_is_401_with_no_error_code);
async fn userinfo_without_a_token_is_401_with_no_error_code(app: TestApp) {
    let bare = app.api.get(app.url(USERINFO)).send().await.expect("get");
    let basic = app
        .api
        .post(app.url(USERINFO))
        .header("Authorization", basic("cl_x", "secret"))
        .send()
        .await
        .expect("post");
    for resp in [bare, basic] {
        assert_eq!(resp.status().as_u16(), 401);
        assert_eq!(
            header(&resp, "www-authenticate").as_deref(),
            Some("Bearer realm=\"gatehouse\"")
        );
        assert_eq!(header(&resp, "cache-control").as_deref(), Some("no-store"));
        let body = resp.text().await.unwrap();
        assert!(!body.contains("error"), "{body}");
    }
    let empty = app
        .api
        .get(app.url(USERINFO))
        .header("Authorization", "Bearer ")
        .send()
        .await
        .expect("get");
    assert_oauth_error(empty, 400, "invalid_request").await;
    // Other methods: 405 with Allow.
    let put = app.api.put(app.url(USERINFO)).send().await.expect("put");
    assert_eq!(put.status().as_u16(), 405);
    assert_eq!(header(&put, "allow").as_deref(), Some("GET, POST, OPTIONS"));
}

both_backends!(rule60_userinfo_refuses_forged_expired_and_revoked_tokens_saying_only_not_valid);
async fn rule60_userinfo_refuses_forged_expired_and_revoked_tokens_saying_only_not_valid(
    app: TestApp,
) {
    let (spa, tokens) = alice_token(&app, "openid profile").await;
    let at = s(&tokens, "access_token");
    assert_eq!(get_userinfo(&app, &at).await.status().as_u16(), 200);

    // Forged: not a JWT, a changed payload, a changed signature.
    let (header_b64, rest) = at.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let (_, mut claims) = jwt_parts(&at);
    claims["sub"] = json!("usr_someone_else");
    let other_payload = format!("{header_b64}.{}.{signature}", b64_json(&claims));
    let flipped = format!(
        "{}{}",
        &at[..at.len() - 2],
        if at.ends_with("AA") { "BB" } else { "AA" }
    );
    for (what, forged) in [
        ("not a JWT", "not-a-token".to_owned()),
        ("another payload", other_payload),
        ("another signature", flipped),
    ] {
        assert_invalid_token(get_userinfo(&app, &forged).await, what).await;
    }

    // Revoked: the refresh token's revocation ends its grant, and the access token with it.
    let revoked = app
        .revocation(&s(&tokens, "refresh_token"))
        .client(&spa)
        .send()
        .await;
    assert_eq!(revoked.status().as_u16(), 200);
    assert_invalid_token(get_userinfo(&app, &at).await, "revoked").await;

    // Expired: a new token, then past its lifetime.
    let tokens = tokens_with(&app, &spa, "alice", "openid profile").await;
    let at = s(&tokens, "access_token");
    assert_eq!(get_userinfo(&app, &at).await.status().as_u16(), 200);
    app.advance_clock(app.settings.tokens.access_token_ttl_secs + 1);
    assert_invalid_token(get_userinfo(&app, &at).await, "expired").await;
}

both_backends!(rule21_userinfo_refuses_the_token_of_a_disabled_or_deleted_user);
async fn rule21_userinfo_refuses_the_token_of_a_disabled_or_deleted_user(app: TestApp) {
    let (_, tokens) = alice_token(&app, "openid").await;
    let at = s(&tokens, "access_token");
    app.disable_user("alice").unwrap();
    assert_invalid_token(get_userinfo(&app, &at).await, "disabled").await;
    // Enabled again, the old grant stays ended.
    gatehouse::registry::enable_user(
        &mut app.conn(),
        "alice",
        &gatehouse::registry::By::operator(app.now()),
    )
    .unwrap();
    assert_invalid_token(get_userinfo(&app, &at).await, "enabled again").await;

    // (Another client: this one's consent is remembered, and asked of nobody.)
    let tokens = tokens_with(&app, &oidc_spa(&app), "alice", "openid").await;
    let at = s(&tokens, "access_token");
    assert_eq!(get_userinfo(&app, &at).await.status().as_u16(), 200);
    gatehouse::registry::delete_user(
        &mut app.conn(),
        "alice",
        &gatehouse::registry::By::operator(app.now()),
    )
    .unwrap();
    assert_invalid_token(get_userinfo(&app, &at).await, "deleted").await;
}

both_backends!(rule62_userinfo_accepts_only_access_tokens_with_openid);
async fn rule62_userinfo_accepts_only_access_tokens_with_openid(app: TestApp) {
    let (_, tokens) = alice_token(&app, "api:read profile").await;
    let resp = get_userinfo(&app, &s(&tokens, "access_token")).await;
    let (status, headers, body) = read(resp).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(
        header(&headers, "www-authenticate").as_deref(),
        Some("Bearer realm=\"gatehouse\", error=\"insufficient_scope\", scope=\"openid\"")
    );
    assert!(tokens.get("id_token").is_none(), "no openid, no ID token");

    // A client's own token (client_credentials) has no user: even with openid it is not valid.
    let machine = app.register(NewClient {
        scopes: strings(&["openid", "api:read"]),
        ..first_party_registration(&["client_credentials"])
    });
    let tokens = app
        .token()
        .client_credentials()
        .scope("openid api:read")
        .basic(&machine)
        .ok()
        .await;
    assert_invalid_token(
        get_userinfo(&app, &s(&tokens, "access_token")).await,
        "client_credentials",
    )
    .await;
}

both_backends!(rule62_an_id_token_is_not_an_access_token_at_userinfo);
async fn rule62_an_id_token_is_not_an_access_token_at_userinfo(app: TestApp) {
    let (_, tokens) = alice_token(&app, "openid profile").await;
    let id_token = s(&tokens, "id_token");
    let (header, _) = jwt_parts(&id_token);
    assert_eq!(header["typ"], "JWT");
    assert_invalid_token(get_userinfo(&app, &id_token).await, "ID token").await;
    let form = app
        .api
        .post(app.url(USERINFO))
        .form(&[("access_token", id_token.as_str())])
        .send()
        .await
        .expect("post");
    assert_invalid_token(form, "ID token in the form").await;
}

both_backends!(userinfo_cors_preflight_and_the_tokens_client_origins);
async fn userinfo_cors_preflight_and_the_tokens_client_origins(app: TestApp) {
    let (_, tokens) = alice_token(&app, "openid").await;
    let at = s(&tokens, "access_token");
    // Another client's origin is registered, but not for this token's client.
    let other_origin = "https://other.example";
    app.register(NewClient {
        allowed_origins: vec![other_origin.into()],
        ..spa_registration()
    });

    let preflight = |origin: &'static str| {
        app.api
            .request(Method::OPTIONS, app.url(USERINFO))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let resp = preflight(ORIGIN).await.expect("preflight");
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );
    let methods = header(&resp, "access-control-allow-methods").expect("methods");
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    let headers = header(&resp, "access-control-allow-headers").expect("headers");
    assert!(headers.contains("Authorization"), "{headers}");
    let resp = preflight("https://evil.example").await.expect("preflight");
    assert!(header(&resp, "access-control-allow-origin").is_none());

    let from = |origin: &'static str| {
        app.api
            .get(app.url(USERINFO))
            .bearer_auth(&at)
            .header("Origin", origin)
            .send()
    };
    let resp = from(ORIGIN).await.expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );
    assert!(header(&resp, "vary").is_some_and(|v| v.contains("Origin")));
    for origin in [other_origin, "https://evil.example"] {
        let resp = from(origin).await.expect("get");
        assert_eq!(resp.status().as_u16(), 200);
        assert!(
            header(&resp, "access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
    // A browser app may read that its token stopped working; an unknown origin may not.
    let refused = |origin: &'static str| {
        app.api
            .get(app.url(USERINFO))
            .bearer_auth("not-a-token")
            .header("Origin", origin)
            .send()
    };
    let resp = refused(ORIGIN).await.expect("get");
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );
    let resp = refused("https://evil.example").await.expect("get");
    assert!(header(&resp, "access-control-allow-origin").is_none());
}
