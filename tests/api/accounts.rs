//! Account changes end what the account held (checklist 21), and forged access tokens are never
//! active (checklist 32, through introspection).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse::passwords::Passwords;
use gatehouse::registry;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

fn inactive() -> Value {
    json!({"active": false})
}

/// A second browser-like client: /authorize in it starts at login unless its session lives.
async fn starts_at_login(app: &TestApp, client: &TestClient) -> bool {
    let pkce = pkce();
    let resp = app
        .get_authorize(&app.authorize_query(client, &pkce.challenge, &[]))
        .await;
    assert_eq!(resp.status().as_u16(), 303);
    location(&resp).starts_with("/login")
}

both_backends!(
    disable_user_or_password_change_revokes_tokens_and_sessions,
    |app: TestApp| async move {
        let spa = app.spa();
        let rs = app.confidential();
        app.user("alice", &[]);
        let tokens = app.tokens_for(&spa, "alice").await;
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(app.introspect(&rs, &access).await["active"], true);
        assert!(
            !starts_at_login(&app, &spa).await,
            "the browser session is live"
        );

        // Password change: old tokens and the browser session end; the new password works.
        let passwords = Passwords::new(&app.settings.passwords).unwrap();
        let new_password = "a brand new passphrase";
        registry::set_password(
            &mut app.conn(),
            &passwords,
            "alice",
            new_password,
            gatehouse::state::now(),
        )
        .unwrap();
        assert_oauth_error(app.refresh(&spa, &refresh).await, 400, "invalid_grant").await;
        assert_eq!(app.introspect(&rs, &access).await, inactive());
        assert!(
            starts_at_login(&app, &spa).await,
            "the session ended with the password change"
        );
        let pkce = pkce();
        let resp = app
            .get_authorize(&app.authorize_query(&spa, &pkce.challenge, &[]))
            .await;
        let login = location(&resp);
        let old = app.login(&login, "alice", PASSWORD).await;
        assert_eq!(
            old.status().as_u16(),
            200,
            "the old password no longer logs in"
        );
        let new = app.login(&login, "alice", new_password).await;
        assert_eq!(new.status().as_u16(), 303, "the new password logs in");

        // Disabling: tokens issued after the password change die too, and login is refused.
        let consent = location(&new);
        let code = query_of(&location(&app.consent(&consent, "approve").await))["code"].clone();
        let fresh: Value = app
            .exchange(&spa, &code, &pkce.verifier)
            .await
            .json()
            .await
            .unwrap();
        let fresh_refresh = fresh["refresh_token"].as_str().unwrap();
        registry::disable_user(&mut app.conn(), "alice", gatehouse::state::now()).unwrap();
        assert_oauth_error(app.refresh(&spa, fresh_refresh).await, 400, "invalid_grant").await;
        assert_eq!(
            app.introspect(&rs, fresh["access_token"].as_str().unwrap())
                .await,
            inactive()
        );
        assert!(starts_at_login(&app, &spa).await);
        let resp = app
            .get_authorize(&app.authorize_query(&spa, &pkce.challenge, &[]))
            .await;
        let again = app.login(&location(&resp), "alice", new_password).await;
        assert_eq!(
            again.status().as_u16(),
            200,
            "a disabled user cannot log in"
        );
        assert!(again
            .text()
            .await
            .unwrap()
            .contains("Invalid username or password"));

        // Unknown users get a readable error.
        let err =
            registry::disable_user(&mut app.conn(), "nobody", gatehouse::state::now()).unwrap_err();
        assert!(err.to_string().contains("no user named"));
    }
);

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

both_backends!(
    introspection_rejects_forged_tokens,
    |app: TestApp| async move {
        let spa = app.spa();
        let rs = app.confidential();
        app.user("bob", &[]);
        let tokens = app.tokens_for(&spa, "bob").await;
        let real = tokens["access_token"].as_str().unwrap();
        assert_eq!(app.introspect(&rs, real).await["active"], true);
        let (header, claims) = jwt_parts(real);
        let kid = header["kid"].as_str().unwrap();
        let signature = real.rsplit('.').next().unwrap();

        // alg none, signed or not.
        let none = b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid}));
        for forged in [
            format!("{none}.{}.", b64(&claims)),
            format!("{none}.{}.{signature}", b64(&claims)),
        ] {
            assert_eq!(app.introspect(&rs, &forged).await, inactive(), "alg none");
        }

        // HS256 with the published JWKS as the HMAC key (key confusion).
        let jwks = app
            .api
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        hs.typ = Some("at+jwt".into());
        hs.kid = Some(kid.to_owned());
        let forged =
            jsonwebtoken::encode(&hs, &claims, &jsonwebtoken::EncodingKey::from_secret(&jwks))
                .unwrap();
        assert_eq!(
            app.introspect(&rs, &forged).await,
            inactive(),
            "HS256 key confusion"
        );

        // The real signature under an altered header or payload.
        let parts: Vec<&str> = real.split('.').collect();
        let mut wide = claims.clone();
        wide["scope"] = json!("api:read api:write admin");
        let variants = [
            (
                b64(&json!({"alg": "ES256", "typ": "at+jwt", "kid": "unknown-kid"})),
                parts[1].to_owned(),
            ),
            (
                b64(&json!({"alg": "ES256", "typ": "JWT", "kid": kid})),
                parts[1].to_owned(),
            ),
            (
                b64(
                    &json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "jku": "https://evil.example/jwks"}),
                ),
                parts[1].to_owned(),
            ),
            (parts[0].to_owned(), b64(&wide)),
        ];
        for (h, p) in variants {
            assert_eq!(
                app.introspect(&rs, &format!("{h}.{p}.{signature}")).await,
                inactive()
            );
        }
    }
);

both_backends!(
    code_issued_before_password_change_is_refused,
    |app: TestApp| async move {
        let spa = app.spa();
        app.user("carol", &[]);
        let pkce = pkce();
        let q = app.authorize_code(&spa, "carol", &pkce, &[]).await;
        let passwords = Passwords::new(&app.settings.passwords).unwrap();
        registry::set_password(
            &mut app.conn(),
            &passwords,
            "carol",
            "another long password",
            gatehouse::state::now(),
        )
        .unwrap();
        let resp = app.exchange(&spa, &q["code"], &pkce.verifier).await;
        assert_oauth_error(resp, 400, "invalid_grant").await;
    }
);

/// The session cookie value a response sets, if any.
fn session_cookie_of(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gatehouse_session="))
        .map(str::to_owned)
}

both_backends!(
    logout_ends_session_and_its_grants,
    |app: TestApp| async move {
        let spa = app.spa();
        let rs = app.confidential();
        app.user("dave", &[]);
        let tokens = app.tokens_for(&spa, "dave").await;
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
        assert!(
            cleared.contains("Max-Age=0")
                || cleared.contains("max-age=0")
                || cleared.contains("1970"),
            "{cleared}"
        );
        assert!(starts_at_login(&app, &spa).await, "logged out");
        assert_oauth_error(
            app.refresh(&spa, tokens["refresh_token"].as_str().unwrap())
                .await,
            400,
            "invalid_grant",
        )
        .await;
        assert_eq!(
            app.introspect(&rs, tokens["access_token"].as_str().unwrap())
                .await,
            inactive()
        );

        // Without a session there is nothing to sign out of.
        let page = app
            .api
            .get(app.url("/logout"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("not signed in"));
        assert!(!page.contains("name=\"csrf\""));
    }
);

both_backends!(
    nul_characters_get_rfc_errors_not_500,
    |app: TestApp| async move {
        let spa = app.spa();
        let resp = app.get_authorize("client_id=cl_a%00b&redirect_uri=x").await;
        assert_eq!(resp.status().as_u16(), 400);
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", "x"),
                    ("client_id", "a\0b"),
                ],
                None,
            )
            .await;
        assert_oauth_error(resp, 400, "invalid_request").await;
        let resp = app
            .post_form(
                "/token",
                &[("grant_type", "refresh_token"), ("refresh_token", "x")],
                Some(&basic("a%00b", "s")),
            )
            .await;
        assert_oauth_error(resp, 401, "invalid_client").await;
        let resp = app
            .post_form(
                "/revoke",
                &[("token", "x"), ("client_id", &spa.id)],
                Some(&basic("a\0b", "s")),
            )
            .await;
        assert!(resp.status().as_u16() == 400 || resp.status().as_u16() == 401);
        let resp = app
            .browser_post(
                "/login",
                &[
                    ("interaction", "x"),
                    ("csrf", "y"),
                    ("username", "a\0b"),
                    ("password", "p"),
                ],
            )
            .await;
        assert_eq!(resp.status().as_u16(), 400);
    }
);

both_backends!(
    oversized_body_keeps_security_headers,
    |app: TestApp| async move {
        let big = "a".repeat(64 * 1024);
        let resp = app.post_form("/token", &[("token", &big)], None).await;
        assert_eq!(resp.status().as_u16(), 400);
        assert_eq!(resp.headers()["x-frame-options"], "DENY");
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        assert!(resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
    }
);

both_backends!(
    role_change_applies_to_the_next_access_token,
    |app: TestApp| async move {
        let spa = app.spa();
        app.user("hank", &["admin"]);
        let t0 = app.tokens_for(&spa, "hank").await;
        let (_, claims) = jwt_parts(t0["access_token"].as_str().unwrap());
        assert_eq!(claims["roles"], json!(["admin"]));

        registry::set_roles(
            &mut app.conn(),
            "hank",
            &["ops".into(), "ops".into(), "audit".into()],
        )
        .unwrap();
        let t1: Value = app
            .refresh(&spa, t0["refresh_token"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        let (_, claims) = jwt_parts(t1["access_token"].as_str().unwrap());
        assert_eq!(claims["roles"], json!(["ops", "audit"]));

        registry::set_roles(&mut app.conn(), "hank", &[]).unwrap();
        let t2: Value = app
            .refresh(&spa, t1["refresh_token"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        let (_, claims) = jwt_parts(t2["access_token"].as_str().unwrap());
        assert!(claims.get("roles").is_none(), "{claims}");

        let err = registry::set_roles(&mut app.conn(), "hank", &["bad role".into()]).unwrap_err();
        assert!(err.to_string().contains("role"), "{err}");
    }
);

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    use actix_web::test::TestRequest;
    use gatehouse::http::forms::client_ip;
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let via_proxy = TestRequest::default()
        .peer_addr("10.1.2.3:4000".parse().unwrap())
        .insert_header(("X-Forwarded-For", "198.51.100.7, 203.0.113.9"))
        .to_http_request();
    assert_eq!(
        client_ip(&via_proxy, &trusted),
        Some("203.0.113.9".parse().unwrap())
    );
    let direct = TestRequest::default()
        .peer_addr("192.0.2.1:4000".parse().unwrap())
        .insert_header(("X-Forwarded-For", "203.0.113.9"))
        .to_http_request();
    assert_eq!(
        client_ip(&direct, &trusted),
        Some("192.0.2.1".parse().unwrap())
    );
    assert_eq!(client_ip(&direct, &[]), Some("192.0.2.1".parse().unwrap()));
    let env = vec![(
        "GATEHOUSE_SERVER__TRUSTED_PROXIES".to_owned(),
        "172.16.0.0/12, 10.0.0.1/32".to_owned(),
    )];
    let settings = gatehouse::config::Settings::load_from(None, env).unwrap();
    assert_eq!(settings.server.trusted_proxies.len(), 2);
    let bad = vec![(
        "GATEHOUSE_SERVER__TRUSTED_PROXIES".to_owned(),
        "not-an-ip".to_owned(),
    )];
    assert!(gatehouse::config::Settings::load_from(None, bad).is_err());
}
