//! RP-initiated logout at `/end_session` (OpenID Connect RP-Initiated Logout 1.0, checklist 63):
//! the `id_token_hint` is verified, a `post_logout_redirect_uri` must be registered, errors are
//! pages and never redirects, and only a hint naming this very session signs out without asking.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

/// The post-logout redirect URI the test client registers.
const BYE: &str = "http://127.0.0.1:5173/signed-out";

/// A public client with `openid` and a registered post-logout redirect URI.
fn oidc_client(app: &TestApp, name: &str) -> TestClient {
    app.register(NewClient {
        name: name.into(),
        scopes: strings(&["openid", "api:read"]),
        post_logout_redirect_uris: vec![BYE.into()],
        ..spa_registration()
    })
}

/// Signs `username` in through the browser code flow with `openid`; the token response (with
/// its `id_token`).
async fn sign_in(app: &TestApp, client: &TestClient, username: &str) -> Value {
    let pkce = pkce();
    let code = app
        .code_as(client, username, &pkce, &[("scope", "openid api:read")])
        .await;
    let tokens = app
        .token()
        .code(&code, &pkce.verifier)
        .client(client)
        .ok()
        .await;
    assert!(tokens.get("id_token").is_some(), "{tokens}");
    tokens
}

/// The cast of most tests: alice signed in to an OpenID Connect client in the test browser.
async fn alice(app: &TestApp) -> (TestClient, Value) {
    app.user("alice", &[]);
    let client = oidc_client(app, "Reports");
    let tokens = sign_in(app, &client, "alice").await;
    (client, tokens)
}

/// `GET /end_session?…` in the test browser.
async fn end_session(app: &TestApp, params: &[(&str, &str)]) -> reqwest::Response {
    app.browse(&format!("/end_session?{}", encode(params)))
        .await
}

/// Whether the test browser's session still lives: /authorize does not start at login.
async fn signed_in(app: &TestApp, client: &TestClient) -> bool {
    let resp = app.authorize(client, &[]).await;
    let status = resp.status().as_u16();
    assert!(status == 302 || status == 303, "{status}");
    !location(&resp).starts_with("/login")
}

/// A 400 page, no redirect, and the browser still signed in.
async fn refused_page(app: &TestApp, client: &TestClient, resp: reqwest::Response, says: &str) {
    assert_eq!(resp.status().as_u16(), 400);
    assert!(header(&resp, "location").is_none(), "never a redirect");
    assert!(header(&resp, "content-type")
        .unwrap_or_default()
        .starts_with("text/html"));
    let page = resp.text().await.unwrap();
    assert!(page.contains(says), "{says}: {page}");
    assert!(signed_in(app, client).await, "nothing ended");
}

fn removes_session_cookie(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.starts_with("gatehouse_session=")
                && ["Max-Age=0", "max-age=0", "1970"]
                    .iter()
                    .any(|m| v.contains(m))
        })
}

both_backends!(rule63_hint_and_registered_uri_sign_out_and_redirect_with_state);
async fn rule63_hint_and_registered_uri_sign_out_and_redirect_with_state(app: TestApp) {
    let rs = app.confidential();
    let (client, tokens) = alice(&app).await;
    assert!(signed_in(&app, &client).await);
    let hint = s(&tokens, "id_token");
    let resp = end_session(
        &app,
        &[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", BYE),
            ("state", "af0ifjsldkj"),
            ("ui_locales", "fr"),
            ("logout_hint", "alice"),
        ],
    )
    .await;
    assert_eq!(
        resp.status().as_u16(),
        303,
        "no page: the hint names this session"
    );
    assert_eq!(location(&resp), format!("{BYE}?state=af0ifjsldkj"));
    assert!(removes_session_cookie(&resp));

    // The session is gone, its grants with it.
    assert!(
        !signed_in(&app, &client).await,
        "a new /authorize needs login"
    );
    let resp = app.refresh(&client, &s(&tokens, "refresh_token")).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    assert_eq!(
        app.introspect(&rs, &s(&tokens, "access_token")).await,
        inactive()
    );
    let events = app.audit_events_named("sign_out");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].client_id.as_deref(), Some(client.id.as_str()));
    assert!(
        events[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains(&client.id),
        "{:?}",
        events[0].detail
    );

    // Without state, the registered URI exactly; with no session left, nothing more to end.
    let resp = end_session(
        &app,
        &[("id_token_hint", &hint), ("post_logout_redirect_uri", BYE)],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp), BYE);
    // Without a redirect URI: the signed-out page.
    let resp = end_session(&app, &[("id_token_hint", &hint)]).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("signed out"));
}

both_backends!(rule63_unregistered_post_logout_redirect_uri_is_a_400_page);
async fn rule63_unregistered_post_logout_redirect_uri_is_a_400_page(app: TestApp) {
    let (client, tokens) = alice(&app).await;
    let hint = s(&tokens, "id_token");
    for uri in [
        "https://evil.example/bye",
        "http://127.0.0.1:5173/signed-out/",
        "http://127.0.0.1:5173/signed-out?x=1",
        REDIRECT,
    ] {
        let resp = end_session(
            &app,
            &[
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", uri),
                ("state", "s"),
            ],
        )
        .await;
        refused_page(&app, &client, resp, "not registered").await;
    }
}

both_backends!(rule63_hint_for_another_client_is_refused);
async fn rule63_hint_for_another_client_is_refused(app: TestApp) {
    let (client, tokens) = alice(&app).await;
    let other = oidc_client(&app, "Other app");
    let resp = end_session(
        &app,
        &[
            ("id_token_hint", &s(&tokens, "id_token")),
            ("client_id", &other.id),
            ("post_logout_redirect_uri", BYE),
        ],
    )
    .await;
    refused_page(&app, &client, resp, "another application").await;
}

both_backends!(rule63_hint_not_signed_by_our_keys_is_refused);
async fn rule63_hint_not_signed_by_our_keys_is_refused(app: TestApp) {
    let (client, tokens) = alice(&app).await;
    let hint = s(&tokens, "id_token");

    // An ID token from another Gatehouse (its own keys and issuer), for a client of the same id.
    let other = app.sibling(|_| {}).await;
    other.user("alice", &[]);
    let theirs = sign_in(&other, &oidc_client(&other, "Reports"), "alice").await;
    // The same claims with a changed subject: the signature no longer matches.
    let (_, mut claims) = jwt_parts(&hint);
    claims["sub"] = Value::String("usr_someone_else".into());
    let parts: Vec<&str> = hint.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64_json(&claims), parts[2]);
    // Unsigned.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64_json(&claims)
    );
    for (what, bad) in [
        ("another instance's", s(&theirs, "id_token")),
        ("forged", forged),
        ("unsigned", none),
        ("not a JWT", "not-a-jwt".to_owned()),
    ] {
        for params in [
            vec![
                ("id_token_hint", bad.as_str()),
                ("post_logout_redirect_uri", BYE),
            ],
            vec![("id_token_hint", bad.as_str())],
        ] {
            let resp = end_session(&app, &params).await;
            assert_eq!(resp.status().as_u16(), 400, "{what}");
            refused_page(&app, &client, resp, "not a valid ID token").await;
        }
    }
}

both_backends!(rule63_access_token_as_hint_is_refused);
async fn rule63_access_token_as_hint_is_refused(app: TestApp) {
    let (client, tokens) = alice(&app).await;
    let resp = end_session(
        &app,
        &[
            ("id_token_hint", &s(&tokens, "access_token")),
            ("post_logout_redirect_uri", BYE),
        ],
    )
    .await;
    refused_page(&app, &client, resp, "not a valid ID token").await;
}

both_backends!(rule63_redirect_uri_without_client_or_hint_is_refused);
async fn rule63_redirect_uri_without_client_or_hint_is_refused(app: TestApp) {
    let (client, _) = alice(&app).await;
    let resp = end_session(&app, &[("post_logout_redirect_uri", BYE), ("state", "s")]).await;
    refused_page(&app, &client, resp, "no application").await;
    let resp = end_session(
        &app,
        &[
            ("client_id", "cl_unknown"),
            ("post_logout_redirect_uri", BYE),
        ],
    )
    .await;
    refused_page(&app, &client, resp, "not registered").await;
}

both_backends!(rule63_without_hint_asks_first_then_redirects);
async fn rule63_without_hint_asks_first_then_redirects(app: TestApp) {
    let (client, tokens) = alice(&app).await;
    let resp = end_session(
        &app,
        &[
            ("client_id", &client.id),
            ("post_logout_redirect_uri", BYE),
            ("state", "xyz"),
        ],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200, "a confirmation page");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let page = resp.text().await.unwrap();
    assert!(page.contains("Reports"), "names the application: {page}");
    assert!(page.contains("alice"), "{page}");
    assert!(!page.contains("id_token_hint"), "{page}");
    assert!(signed_in(&app, &client).await, "asking ends nothing");

    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("client_id", hidden(&page, "client_id")),
        (
            "post_logout_redirect_uri",
            hidden(&page, "post_logout_redirect_uri"),
        ),
        ("state", hidden(&page, "state")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = app.browser_post("/end_session", &form).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp), format!("{BYE}?state=xyz"));
    assert!(removes_session_cookie(&resp));
    assert!(!signed_in(&app, &client).await);
    let resp = app.refresh(&client, &s(&tokens, "refresh_token")).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
}

both_backends!(rule63_confirmation_checks_csrf_origin_and_the_carried_uri);
async fn rule63_confirmation_checks_csrf_origin_and_the_carried_uri(app: TestApp) {
    let (client, _) = alice(&app).await;
    let page = end_session(
        &app,
        &[("client_id", &client.id), ("post_logout_redirect_uri", BYE)],
    )
    .await
    .text()
    .await
    .unwrap();
    let csrf = hidden(&page, "csrf");

    // A wrong CSRF token signs nobody out.
    let resp = app
        .browser_post(
            "/end_session",
            &[
                ("csrf", "forged"),
                ("client_id", &client.id),
                ("post_logout_redirect_uri", BYE),
            ],
        )
        .await;
    refused_page(&app, &client, resp, "expired").await;
    // Nor does the right one from another site.
    let resp = app
        .browser
        .post(app.url("/end_session"))
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("csrf", csrf.as_str()), ("client_id", client.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(signed_in(&app, &client).await);
    // The carried URI is checked again: an edited form does not redirect elsewhere.
    let resp = app
        .browser_post(
            "/end_session",
            &[
                ("csrf", &csrf),
                ("client_id", &client.id),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
        )
        .await;
    refused_page(&app, &client, resp, "not registered").await;
    // Without the session's cookie (another browser), the token is worth nothing.
    let resp = post_with(
        &new_browser(),
        &app.url("/end_session"),
        &[("csrf", &csrf), ("client_id", &client.id)],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(signed_in(&app, &client).await);
}

both_backends!(rule63_hint_of_another_session_asks_first);
async fn rule63_hint_of_another_session_asks_first(app: TestApp) {
    let (client, tokens) = alice(&app).await;
    let old_hint = s(&tokens, "id_token");
    // Signed out and in again: a new session, which the old hint does not name.
    let page = app.browse("/logout").await.text().await.unwrap();
    let resp = app
        .browser_post("/logout", &[("csrf", &hidden(&page, "csrf"))])
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let login = app.authorize(&client, &[]).await;
    assert_to_login(&login, "signed out");
    let resp = app.login(&location(&login), "alice", PASSWORD).await;
    assert_eq!(resp.status().as_u16(), 303, "signed in again");
    assert!(signed_in(&app, &client).await);
    let resp = end_session(
        &app,
        &[
            ("id_token_hint", &old_hint),
            ("post_logout_redirect_uri", BYE),
        ],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200, "asked, not signed out");
    assert!(resp.text().await.unwrap().contains("name=\"csrf\""));
    assert!(signed_in(&app, &client).await);
}

both_backends!(rule63_expired_hint_still_signs_out);
async fn rule63_expired_hint_still_signs_out(app: TestApp) {
    let (client, tokens) = alice(&app).await;
    let hint = s(&tokens, "id_token");
    app.advance_clock(app.settings.tokens.id_token_ttl_secs + 60);
    let resp = end_session(
        &app,
        &[("id_token_hint", &hint), ("post_logout_redirect_uri", BYE)],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp), BYE);
    assert!(!signed_in(&app, &client).await);
}

both_backends!(rule63_no_session_nothing_to_end);
async fn rule63_no_session_nothing_to_end(app: TestApp) {
    let (client, tokens) = alice(&app).await;
    let hint = s(&tokens, "id_token");
    // Another browser, never signed in: straight back to the application, or a page.
    let browser = new_browser();
    let url = app.url(&format!(
        "/end_session?{}",
        encode(&[
            ("id_token_hint", hint.as_str()),
            ("post_logout_redirect_uri", BYE),
            ("state", "s")
        ])
    ));
    let resp = get_with(&browser, &url).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp), format!("{BYE}?state=s"));
    let resp = get_with(&browser, &app.url("/end_session")).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("signed out"));
    assert!(
        signed_in(&app, &client).await,
        "alice's browser is untouched"
    );
}

both_backends!(rule63_application_post_signs_out_like_get);
async fn rule63_application_post_signs_out_like_get(app: TestApp) {
    let (client, tokens) = alice(&app).await;
    let hint = s(&tokens, "id_token");
    // A form POST without the session cookie (a SameSite=Lax cookie stays home on a cross-site
    // POST): the checked request again as a GET, without the hint.
    let resp = post_with(
        &new_browser(),
        &app.url("/end_session"),
        &[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", BYE),
            ("state", "s"),
        ],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303);
    let again = location(&resp);
    assert!(again.starts_with("/end_session?"), "{again}");
    assert!(
        !again.contains("id_token_hint"),
        "no token in a URL: {again}"
    );
    let q = query_of(&app.url(&again));
    assert_eq!(q["client_id"], client.id);
    assert_eq!(q["post_logout_redirect_uri"], BYE);
    assert_eq!(q["state"], "s");
    // Followed in alice's browser (where the cookie goes with a GET): she is asked.
    let resp = app.browse(&again).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(signed_in(&app, &client).await);

    // With the cookie, a POST is a logout request like a GET.
    let resp = app
        .browser_post(
            "/end_session",
            &[("id_token_hint", &hint), ("post_logout_redirect_uri", BYE)],
        )
        .await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp), BYE);
    assert!(!signed_in(&app, &client).await);
}
