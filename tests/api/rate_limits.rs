//! Per-address rate limits (`[rate_limits]`): 429 with Retry-After, per address, off at 0.

use crate::both_backends;
use crate::helpers::*;

/// Three requests a minute, three at once, on every limited endpoint.
fn tiny(s: &mut Settings) {
    let r = &mut s.rate_limits;
    (r.login_per_minute, r.login_burst) = (3, 3);
    (r.consent_per_minute, r.consent_burst) = (3, 3);
    (r.authorize_per_minute, r.authorize_burst) = (3, 3);
    (r.token_per_minute, r.token_burst) = (3, 3);
}

/// Retry-After in seconds: 3 a minute refills one request every 20 seconds.
fn retry_after(headers: &impl Headers) -> u64 {
    let value = header(headers, "retry-after").expect("Retry-After");
    let secs: u64 = value.parse().expect("Retry-After in seconds");
    assert!((1..=20).contains(&secs), "Retry-After {secs}");
    secs
}

/// A token request that fails (no such client) but is counted all the same.
async fn token_request(app: &TestApp, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut req = app.api.post(app.url("/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "nobody"),
        ("client_secret", "nothing"),
    ]);
    if let Some(address) = forwarded_for {
        req = req.header("X-Forwarded-For", address);
    }
    req.send().await.expect("POST /token")
}

/// A readable 429 page that says how long to wait.
async fn assert_too_many_page(resp: reqwest::Response, what: &str) {
    assert_eq!(resp.status().as_u16(), 429, "{what}");
    let secs = retry_after(resp.headers());
    let page = resp.text().await.expect("page");
    assert!(page.contains("Too many requests"), "{what}: {page}");
    assert!(
        page.contains(&format!("Try again in {secs} seconds")),
        "{what}: {page}"
    );
}

both_backends!(rate_limit_login_answers_429_with_retry_after, tiny);
async fn rate_limit_login_answers_429_with_retry_after(app: TestApp) {
    app.user("alice", &[]);
    let client = app.spa();
    let resp = app.authorize(&client, &[]).await;
    assert_eq!(resp.status().as_u16(), 303);
    let login = location(&resp);
    let (interaction, csrf) = app.form_fields(&app.browser, &login).await;
    let form = login_form(&interaction, &csrf, "alice", "wrong password");
    for _ in 0..3 {
        let resp = app.browser_post("/login", &form).await;
        assert_eq!(resp.status().as_u16(), 200, "a failed login");
    }
    // The fourth sign-in is refused before its password is checked, even the right one.
    let form = login_form(&interaction, &csrf, "alice", PASSWORD);
    assert_too_many_page(app.browser_post("/login", &form).await, "4th login").await;
    // The login page itself is not limited.
    let resp = app.browse(&login).await;
    assert_eq!(resp.status().as_u16(), 200);
}

both_backends!(rate_limit_authorize_and_consent_answer_429_pages, tiny);
async fn rate_limit_authorize_and_consent_answer_429_pages(app: TestApp) {
    let client = app.spa();
    for _ in 0..3 {
        let resp = app.authorize(&client, &[]).await;
        assert_eq!(resp.status().as_u16(), 303, "authorize continues");
    }
    assert_too_many_page(app.authorize(&client, &[]).await, "4th authorize").await;

    let form = [("interaction", "x"), ("csrf", "y"), ("decision", "approve")];
    for _ in 0..3 {
        let resp = app.browser_post("/consent", &form).await;
        assert_ne!(resp.status().as_u16(), 429, "consent within the limit");
    }
    assert_too_many_page(app.browser_post("/consent", &form).await, "4th consent").await;
}

both_backends!(rate_limit_token_answers_429_json, tiny);
async fn rate_limit_token_answers_429_json(app: TestApp) {
    for _ in 0..3 {
        assert_oauth_error(token_request(&app, None).await, 401, "invalid_client").await;
    }
    let (status, headers, body) = read(token_request(&app, None).await).await;
    assert_eq!(status, 429);
    let secs = retry_after(&headers);
    assert_eq!(
        header(&headers, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(body["error"], "temporarily_unavailable");
    let description = s(&body, "error_description");
    assert!(
        description.contains(&format!("retry in {secs} seconds")),
        "{description}"
    );
}

both_backends!(rate_limit_is_per_address, |s: &mut Settings| {
    tiny(s);
    s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
});
async fn rate_limit_is_per_address(app: TestApp) {
    const FIRST: &str = "203.0.113.1";
    for _ in 0..3 {
        let resp = token_request(&app, Some(FIRST)).await;
        assert_eq!(resp.status().as_u16(), 401);
    }
    assert_eq!(
        token_request(&app, Some(FIRST)).await.status().as_u16(),
        429
    );
    // Another client behind the same proxy, and the proxy's own address, have their own budget.
    for address in [Some("203.0.113.2"), Some("198.51.100.7, 203.0.113.3"), None] {
        let resp = token_request(&app, address).await;
        assert_eq!(resp.status().as_u16(), 401, "{address:?}");
    }
    // The forwarding proxy's hop is the one believed: the first address is still limited.
    let resp = token_request(&app, Some("198.51.100.7, 203.0.113.1")).await;
    assert_eq!(resp.status().as_u16(), 429);
}

both_backends!(rate_limits_at_zero_limit_nothing, |s: &mut Settings| {
    tiny(s);
    let r = &mut s.rate_limits;
    r.login_per_minute = 0;
    r.consent_per_minute = 0;
    r.authorize_per_minute = 0;
    r.token_per_minute = 0;
});
async fn rate_limits_at_zero_limit_nothing(app: TestApp) {
    let client = app.spa();
    for _ in 0..10 {
        assert_eq!(token_request(&app, None).await.status().as_u16(), 401);
        let resp = app.authorize(&client, &[]).await;
        assert_eq!(resp.status().as_u16(), 303);
    }
    let form = [("interaction", "x"), ("csrf", "y"), ("decision", "approve")];
    for path in ["/login", "/consent"] {
        for _ in 0..10 {
            let resp = app.browser_post(path, &form).await;
            assert_ne!(resp.status().as_u16(), 429, "{path}");
        }
    }
}

#[test]
fn rate_limit_defaults_stay_out_of_a_real_users_way() {
    let r = Settings::load_from(None, Vec::new())
        .expect("defaults")
        .rate_limits;
    assert_eq!((r.login_per_minute, r.login_burst), (30, 50));
    assert_eq!((r.consent_per_minute, r.consent_burst), (60, 30));
    assert_eq!((r.authorize_per_minute, r.authorize_burst), (120, 60));
    assert_eq!((r.token_per_minute, r.token_burst), (1200, 300));
    assert_eq!(r.max_addresses, 100_000);
    let off = Settings::load_from(
        None,
        vec![(
            "GATEHOUSE_RATE_LIMITS__TOKEN_PER_MINUTE".to_owned(),
            "0".to_owned(),
        )],
    )
    .expect("token limit off");
    assert_eq!(off.rate_limits.token_per_minute, 0);
}
