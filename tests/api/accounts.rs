//! Account changes end what the account held (checklist 21), and forged access tokens are never
//! active (checklist 32, through introspection).

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

/// Whether /authorize in the test browser starts at login, i.e. its session does not live.
async fn starts_at_login(app: &TestApp, client: &TestClient) -> bool {
    let resp = app.authorize(client, &[]).await;
    if resp.status().as_u16() == 302 {
        // The code at once: the session lives (and the consent is remembered).
        return false;
    }
    assert_eq!(resp.status().as_u16(), 303);
    location(&resp).starts_with("/login")
}

both_backends!(disable_user_or_password_change_revokes_tokens_and_sessions);
async fn disable_user_or_password_change_revokes_tokens_and_sessions(app: TestApp) {
    let rs = app.confidential();
    let (spa, tokens) = app.signed_in("alice", &[]).await;
    let (access, refresh) = (s(&tokens, "access_token"), s(&tokens, "refresh_token"));
    assert!(app.is_active(&rs, &access).await);
    assert!(
        !starts_at_login(&app, &spa).await,
        "the browser session is live"
    );

    // Password change: old tokens and the browser session end; the new password works.
    let new_password = "a brand new passphrase";
    app.set_password("alice", new_password);
    assert_oauth_error(app.refresh(&spa, &refresh).await, 400, "invalid_grant").await;
    assert_eq!(app.introspect(&rs, &access).await, inactive());
    let ended = starts_at_login(&app, &spa).await;
    assert!(ended, "the session ended with the password change");
    let pkce = pkce();
    let login = location(
        &app.get_authorize(&authz(&spa.id, &pkce.challenge, &[]))
            .await,
    );
    let old = app.login(&login, "alice", PASSWORD).await.status();
    assert_eq!(old.as_u16(), 200, "the old password no longer logs in");
    let new = app.login(&login, "alice", new_password).await;
    assert_eq!(new.status().as_u16(), 303, "the new password logs in");

    // Disabling: tokens issued after the password change die too, and login is refused.
    let consent = location(&new);
    let code = query_of(&location(&app.consent(&consent, "approve").await))["code"].clone();
    let fresh = ok_json(app.exchange(&spa, &code, &pkce.verifier).await).await;
    app.disable_user("alice").unwrap();
    let resp = app.refresh(&spa, &s(&fresh, "refresh_token")).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    assert_eq!(
        app.introspect(&rs, &s(&fresh, "access_token")).await,
        inactive()
    );
    assert!(starts_at_login(&app, &spa).await);
    let login = location(&app.authorize(&spa, &[]).await);
    let again = app.login(&login, "alice", new_password).await;
    assert_eq!(
        again.status().as_u16(),
        200,
        "a disabled user cannot log in"
    );
    let page = again.text().await.unwrap();
    assert!(page.contains("Invalid username or password"));

    // Unknown users get a readable error.
    let err = app.disable_user("nobody").unwrap_err();
    assert!(err.to_string().contains("no user named"));
}

both_backends!(introspection_rejects_forged_tokens);
async fn introspection_rejects_forged_tokens(app: TestApp) {
    let rs = app.confidential();
    let (_, tokens) = app.signed_in("bob", &[]).await;
    let real = s(&tokens, "access_token");
    assert!(app.is_active(&rs, &real).await);
    let (header, claims) = jwt_parts(&real);
    let kid = s(&header, "kid");
    let signature = real.rsplit('.').next().unwrap();

    // alg none, signed or not.
    let none = b64_json(&json!({"alg": "none", "typ": "at+jwt", "kid": kid}));
    for forged in [
        format!("{none}.{}.", b64_json(&claims)),
        format!("{none}.{}.{signature}", b64_json(&claims)),
    ] {
        assert_eq!(app.introspect(&rs, &forged).await, inactive(), "alg none");
    }

    // HS256 with the published JWKS as the HMAC key (key confusion).
    let jwks = app
        .get("/.well-known/jwks.json")
        .await
        .bytes()
        .await
        .unwrap();
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.typ = Some("at+jwt".into());
    hs.kid = Some(kid.clone());
    let key = jsonwebtoken::EncodingKey::from_secret(&jwks);
    let forged = jsonwebtoken::encode(&hs, &claims, &key).unwrap();
    let confused = app.introspect(&rs, &forged).await;
    assert_eq!(confused, inactive(), "HS256 key confusion");

    // The real signature under an altered header or payload.
    let parts: Vec<&str> = real.split('.').collect();
    let mut wide = claims.clone();
    wide["scope"] = json!("api:read api:write admin");
    let altered = |h: Value| (b64_json(&h), parts[1].to_owned());
    let evil_jku = "https://evil.example/jwks";
    let variants = [
        altered(json!({"alg": "ES256", "typ": "at+jwt", "kid": "unknown-kid"})),
        altered(json!({"alg": "ES256", "typ": "JWT", "kid": kid})),
        altered(json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "jku": evil_jku})),
        (parts[0].to_owned(), b64_json(&wide)),
    ];
    for (h, p) in variants {
        let forged = format!("{h}.{p}.{signature}");
        assert_eq!(app.introspect(&rs, &forged).await, inactive());
    }
}

both_backends!(code_issued_before_password_change_is_refused);
async fn code_issued_before_password_change_is_refused(app: TestApp) {
    let spa = app.spa();
    app.user("carol", &[]);
    let pkce = pkce();
    let code = app.code_as(&spa, "carol", &pkce, &[]).await;
    app.set_password("carol", "another long password");
    let resp = app.exchange(&spa, &code, &pkce.verifier).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
}

/// The session cookie a response sets, if any.
fn session_cookie_of(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gatehouse_session="))
        .map(str::to_owned)
}

both_backends!(logout_ends_session_and_its_grants);
async fn logout_ends_session_and_its_grants(app: TestApp) {
    let rs = app.confidential();
    let (spa, tokens) = app.signed_in("dave", &[]).await;
    assert!(!starts_at_login(&app, &spa).await);

    // The sign-out page carries a CSRF token bound to the session; a forged form is refused.
    let page = app.browse("/logout").await;
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let page = page.text().await.unwrap();
    assert!(page.contains("dave"));
    let csrf = hidden(&page, "csrf");
    let forged = app.browser_post("/logout", &[("csrf", "forged")]).await;
    assert_eq!(forged.status().as_u16(), 400);
    assert!(
        !starts_at_login(&app, &spa).await,
        "a forged form ends nothing"
    );

    let resp = app.browser_post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(resp.status().as_u16(), 200);
    let cleared = session_cookie_of(&resp).expect("the cookie is cleared");
    let expired = ["Max-Age=0", "max-age=0", "1970"]
        .iter()
        .any(|m| cleared.contains(m));
    assert!(expired, "{cleared}");
    assert!(starts_at_login(&app, &spa).await, "logged out");
    let resp = app.refresh(&spa, &s(&tokens, "refresh_token")).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    assert_eq!(
        app.introspect(&rs, &s(&tokens, "access_token")).await,
        inactive()
    );

    // Without a session there is nothing to sign out of.
    let page = app.get("/logout").await.text().await.unwrap();
    assert!(page.contains("not signed in"));
    assert!(!page.contains("name=\"csrf\""));
}

both_backends!(nul_characters_get_rfc_errors_not_500);
async fn nul_characters_get_rfc_errors_not_500(app: TestApp) {
    let spa = app.spa();
    let resp = app.get_authorize("client_id=cl_a%00b&redirect_uri=x").await;
    assert_eq!(resp.status().as_u16(), 400);
    let req = app.token().refresh("x").param("client_id", "a\0b");
    req.fails(400, "invalid_request").await;
    let req = app.token().refresh("x").basic_as("a%00b", "s");
    req.fails(401, "invalid_client").await;
    let req = app.revocation("x").client(&spa).basic_as("a\0b", "s");
    let status = req.send().await.status().as_u16();
    assert!(status == 400 || status == 401);
    let form = login_form("x", "y", "a\0b", "p");
    let resp = app.browser_post("/login", &form).await;
    assert_eq!(resp.status().as_u16(), 400);
}

both_backends!(oversized_body_keeps_security_headers);
async fn oversized_body_keeps_security_headers(app: TestApp) {
    let big = "a".repeat(64 * 1024);
    let resp = app.post_form("/token", &[("token", &big)], None).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let csp = header(&resp, "content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));
}

both_backends!(role_change_applies_to_the_next_access_token);
async fn role_change_applies_to_the_next_access_token(app: TestApp) {
    let (spa, t0) = app.signed_in("hank", &["admin"]).await;
    assert_eq!(claims_of(&t0)["roles"], json!(["admin"]));
    let refreshed = |t: Value| {
        let (app, spa) = (&app, &spa);
        async move {
            let resp = app.refresh(spa, &s(&t, "refresh_token")).await;
            resp.json::<Value>().await.unwrap()
        }
    };

    app.set_roles("hank", &["ops", "ops", "audit"]).unwrap();
    let t1 = refreshed(t0).await;
    assert_eq!(claims_of(&t1)["roles"], json!(["ops", "audit"]));

    app.set_roles("hank", &[]).unwrap();
    let claims = claims_of(&refreshed(t1).await);
    assert!(claims.get("roles").is_none(), "{claims}");

    let err = app.set_roles("hank", &["bad role"]).unwrap_err();
    assert!(err.to_string().contains("role"), "{err}");
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    use actix_web::test::TestRequest;
    use gatehouse::http::forms::client_ip;
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let request = |peer: &str, forwarded_for: &str| {
        let req = TestRequest::default().peer_addr(peer.parse().unwrap());
        req.insert_header(("X-Forwarded-For", forwarded_for))
            .to_http_request()
    };
    let via_proxy = request("10.1.2.3:4000", "198.51.100.7, 203.0.113.9");
    let last_hop = Some("203.0.113.9".parse().unwrap());
    assert_eq!(client_ip(&via_proxy, &trusted), last_hop);
    let direct = request("192.0.2.1:4000", "203.0.113.9");
    let peer = Some("192.0.2.1".parse().unwrap());
    assert_eq!(client_ip(&direct, &trusted), peer);
    assert_eq!(client_ip(&direct, &[]), peer);
    let env = |value: &str| {
        vec![(
            "GATEHOUSE_SERVER__TRUSTED_PROXIES".to_owned(),
            value.to_owned(),
        )]
    };
    let settings = Settings::load_from(None, env("172.16.0.0/12, 10.0.0.1/32")).unwrap();
    assert_eq!(settings.server.trusted_proxies.len(), 2);
    assert!(Settings::load_from(None, env("not-an-ip")).is_err());
}

both_backends!(deleting_a_user_ends_sessions_and_refresh_tokens_and_enabling_restores_sign_in);
async fn deleting_a_user_ends_sessions_and_refresh_tokens_and_enabling_restores_sign_in(
    app: TestApp,
) {
    use gatehouse::registry;
    // Enable after disable: the user signs in again (the old grants stay ended).
    let (spa, tokens) = app.signed_in("alice", &[]).await;
    app.disable_user("alice").expect("disable");
    assert_oauth_error(
        app.refresh(&spa, &s(&tokens, "refresh_token")).await,
        400,
        "invalid_grant",
    )
    .await;
    registry::enable_user(
        &mut app.conn(),
        "alice",
        &gatehouse::registry::By::operator(app.now()),
    )
    .expect("enable");
    let again = app.tokens_for(&spa, "alice").await;
    assert!(again.get("access_token").is_some());

    // Delete: the refresh token, the session and the second factor go; the name is free again.
    let rs = app.confidential();
    let access = s(&again, "access_token");
    assert!(app.is_active(&rs, &access).await);
    let deleted = registry::delete_user(
        &mut app.conn(),
        "alice",
        &gatehouse::registry::By::operator(app.now()),
    )
    .expect("delete");
    assert_oauth_error(
        app.refresh(&spa, &s(&again, "refresh_token")).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(app.introspect(&rs, &access).await, inactive());
    assert!(starts_at_login(&app, &spa).await, "the session ended");
    assert_eq!(app.rows("grants"), 0);
    let events = app.audit_events_named("user_deleted");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user_id.as_deref(), Some(deleted.id.as_str()));
    app.user("alice", &[]);
    let err = registry::delete_user(
        &mut app.conn(),
        "nobody",
        &gatehouse::registry::By::operator(app.now()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nobody"));
}

both_backends!(user_list_pages_and_searches_by_name);
async fn user_list_pages_and_searches_by_name(app: TestApp) {
    use gatehouse::registry;
    for name in ["alice", "bob", "carol", "dave_x", "erin%"] {
        app.user(name, &[]);
    }
    let names = |search: Option<&str>, limit: i64, offset: i64| -> Vec<String> {
        registry::list_users(&mut app.conn(), search, limit, offset)
            .expect("list")
            .items
            .into_iter()
            .map(|u| u.username)
            .collect()
    };
    assert_eq!(names(None, 2, 0), ["alice", "bob"]);
    assert_eq!(names(None, 2, 2), ["carol", "dave_x"]);
    let last = registry::list_users(&mut app.conn(), None, 2, 4).expect("list");
    assert_eq!(last.next_offset, None, "the last page says so");
    let first = registry::list_users(&mut app.conn(), None, 2, 0).expect("list");
    assert_eq!(first.next_offset, Some(2));
    assert_eq!(names(Some("AR"), 10, 0), ["carol"], "any case");
    assert_eq!(
        names(Some("_"), 10, 0),
        ["dave_x"],
        "LIKE wildcards are plain characters"
    );
    assert_eq!(names(Some("%"), 10, 0), ["erin%"]);
    assert!(registry::list_users(&mut app.conn(), None, 0, 0).is_err());
    assert!(registry::list_users(&mut app.conn(), None, 10, -1).is_err());
}
