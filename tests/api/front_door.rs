//! A front door for newcomers: `/` says what this server is; `/demo` runs the PKCE flow in the
//! browser with the demo client (on for loopback issuers).

use crate::both_backends;
use crate::helpers::*;

fn demo_on(s: &mut Settings) {
    s.demo.enabled = gatehouse::config::DemoMode::Auto;
}

both_backends!(
    front_door_home_page_links_to_the_metadata_and_the_demo,
    demo_on
);
async fn front_door_home_page_links_to_the_metadata_and_the_demo(app: TestApp) {
    let resp = app.get("/").await;
    assert_eq!(resp.status().as_u16(), 200);
    let page = resp.text().await.expect("page");
    assert!(page.contains("OAuth 2.0 authorization server"));
    assert!(page.contains("href=\"/.well-known/oauth-authorization-server\""));
    assert!(page.contains("href=\"/.well-known/jwks.json\""));
    assert!(page.contains("href=\"/demo\""));
    assert!(page.contains(&app.issuer));
}

both_backends!(
    front_door_demo_page_runs_the_flow_with_its_own_client,
    demo_on
);
async fn front_door_demo_page_runs_the_flow_with_its_own_client(app: TestApp) {
    let resp = app.get("/demo").await;
    assert_eq!(resp.status().as_u16(), 200);
    let csp = header(&resp, "content-security-policy").expect("CSP");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let page = resp.text().await.expect("page");
    assert!(page.contains("<script src=\"/static/demo.js\" defer></script>"));
    assert_eq!(page.matches("<script").count(), 1, "no inline script");
    assert!(page.contains("data-client-id=\"cl_demo\""));
    let resp = app.get("/static/demo.js").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(header(&resp, "content-type").is_some_and(|c| c.starts_with("text/javascript")));

    // The demo client is registered at start: a public PKCE client for <issuer>/demo.
    app.user("alice", &[]);
    let pkce = pkce();
    let redirect = format!("{}/demo", app.issuer);
    let query = encode(&[
        ("response_type", "code"),
        ("client_id", "cl_demo"),
        ("redirect_uri", redirect.as_str()),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "s1"),
    ]);
    let resp = app.get_authorize(&query).await;
    let login = location(&resp);
    assert!(login.starts_with("/login?"), "{login}");
    let code = app.sign_in_and_approve(&login, "alice").await;
    let tokens = app
        .token()
        .code(&code, &pkce.verifier)
        .param("client_id", "cl_demo")
        .set("redirect_uri", &redirect)
        .origin(&app.issuer)
        .ok()
        .await;
    assert!(tokens.get("refresh_token").is_some());
    let refreshed = app
        .token()
        .refresh(&s(&tokens, "refresh_token"))
        .param("client_id", "cl_demo")
        .ok()
        .await;
    assert!(refreshed.get("access_token").is_some());
}

both_backends!(front_door_demo_off_is_not_found, |s: &mut Settings| {
    s.demo.enabled = gatehouse::config::DemoMode::Off;
});
async fn front_door_demo_off_is_not_found(app: TestApp) {
    assert_eq!(app.get("/demo").await.status().as_u16(), 404);
    assert_eq!(app.get("/static/demo.js").await.status().as_u16(), 404);
    let page = app.get("/").await.text().await.expect("page");
    assert!(!page.contains("href=\"/demo\""));
    assert_eq!(app.rows("clients"), 0, "no demo client registered");
}
