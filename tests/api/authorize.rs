//! The authorization endpoint, login and consent pages (checklist 1-6, 14, 36, 40-44, 46-48, 50).

use std::collections::{BTreeSet, HashMap};

use crate::both_backends;
use crate::helpers::*;

// ---------------------------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------------------------

/// The attributes of a Set-Cookie header, lower-cased, without the name=value pair.
fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase().replace(' ', ""))
        .collect()
}

/// Query parameters of a relative location such as `/consent?interaction=...`.
fn relative_query(app: &TestApp, location: &str) -> HashMap<String, String> {
    assert!(
        location.starts_with('/'),
        "expected a local path, got {location}"
    );
    query_of(&app.url(location))
}

/// Asserts a readable HTML page with `status` and no redirect; returns its text.
async fn assert_page(resp: reqwest::Response, status: u16, what: &str) -> String {
    let got = resp.status().as_u16();
    let location = header(&resp, "location");
    let content_type = header(&resp, "content-type").unwrap_or_default();
    let body = resp.text().await.expect("page body");
    assert_eq!(got, status, "{what}: status (body: {body})");
    assert!(
        location.is_none(),
        "{what}: must not redirect, got Location {location:?}"
    );
    assert!(
        content_type.starts_with("text/html"),
        "{what}: content-type {content_type}"
    );
    assert!(body.contains("<h1>"), "{what}: not a readable page: {body}");
    let internal = body.to_ascii_lowercase().contains("internal error");
    assert!(!internal, "{what}: {body}");
    body
}

/// Asserts a 400 error page and returns its text.
async fn assert_bad_request_page(resp: reqwest::Response, what: &str) -> String {
    let body = assert_page(resp, 400, what).await;
    let readable = body.contains("This request cannot be completed");
    assert!(readable, "{what}: {body}");
    body
}

/// The standard error redirect of these tests: `error`, the standard state.
fn assert_error(
    app: &TestApp,
    resp: &reqwest::Response,
    error: &str,
    what: &str,
) -> HashMap<String, String> {
    assert_error_redirect(app, resp, error, Some(STATE), what)
}

fn assert_security_headers(resp: &reqwest::Response, what: &str) {
    let is = |value: &str, expected: &str| value.eq_ignore_ascii_case(expected);
    let has = |value: &str, expected: &str| value.contains(expected);
    type Matches = fn(&str, &str) -> bool;
    let rules: [(&str, &str, Matches); 5] = [
        ("x-frame-options", "DENY", is),
        ("content-security-policy", "frame-ancestors 'none'", has),
        ("x-content-type-options", "nosniff", is),
        ("referrer-policy", "no-referrer", is),
        ("cache-control", "no-store", has),
    ];
    for (name, expected, matches) in rules {
        let value = header(resp, name).unwrap_or_default();
        assert!(matches(&value, expected), "{what}: {name} {value:?}");
    }
}

/// The hidden interaction and csrf fields of the readable page at `location`, seen by `browser`.
async fn form_fields(app: &TestApp, browser: &reqwest::Client, location: &str) -> (String, String) {
    let resp = get_with(browser, &app.url(location)).await;
    let page = assert_page(resp, 200, location).await;
    (hidden(&page, "interaction"), hidden(&page, "csrf"))
}

/// `/authorize` for `client` in `browser`; returns the login (or consent) location.
async fn start(app: &TestApp, browser: &reqwest::Client, client: &TestClient) -> String {
    let query = authz(&client.id, &pkce().challenge, &[]);
    let resp = get_with(browser, &app.url(&format!("/authorize?{query}"))).await;
    assert_eq!(resp.status().as_u16(), 303, "authorize should continue");
    location(&resp)
}

/// `/authorize` then a successful login in the test browser; returns the consent location.
async fn logged_in_consent(app: &TestApp, client: &TestClient, username: &str) -> String {
    let login = start(app, &app.browser, client).await;
    assert!(login.starts_with("/login?"), "expected login, got {login}");
    let resp = app.login(&login, username, PASSWORD).await;
    assert_eq!(resp.status().as_u16(), 303, "login should answer 303");
    let consent = location(&resp);
    assert!(
        consent.starts_with("/consent?"),
        "expected consent, got {consent}"
    );
    consent
}

/// The consent form's fields.
fn consent_form<'a>(
    interaction: &'a str,
    csrf: &'a str,
    decision: &'a str,
) -> [(&'static str, &'a str); 3] {
    [
        ("interaction", interaction),
        ("csrf", csrf),
        ("decision", decision),
    ]
}

/// The text of every `<tag ...>` opening in a page.
fn tags<'a>(page: &'a str, tag: &str) -> Vec<&'a str> {
    let lower = page.to_ascii_lowercase();
    let open = format!("<{tag}");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&open) {
        let start = from + i;
        let end = lower[start..]
            .find('>')
            .map_or(page.len(), |e| start + e + 1);
        out.push(&page[start..end]);
        from = end;
    }
    out
}

/// The page with numeric character references for `<`, `>`, `"`, `'` and `&` written as named
/// ones, so an escaped value can be looked for in one form.
fn named_entities(page: &str) -> String {
    let mut page = page.to_owned();
    for (named, numeric) in [
        ("&lt;", &["&#60;", "&#x3c;", "&#x3C;"][..]),
        ("&gt;", &["&#62;", "&#x3e;", "&#x3E;"]),
        ("&quot;", &["&#34;", "&#x22;"]),
        ("&apos;", &["&#39;", "&#x27;"]),
        ("&amp;", &["&#38;", "&#x26;"]),
    ] {
        for n in numeric {
            page = page.replace(n, named);
        }
    }
    page
}

fn assert_no_script(page: &str, what: &str) {
    let script = page.to_ascii_lowercase().contains("<script");
    assert!(!script, "{what}: has a script tag: {page}");
}

fn assert_no_third_party_assets(page: &str, what: &str) {
    assert_no_script(page, what);
    for tag in ["link", "script", "img", "iframe"] {
        for t in tags(page, tag) {
            let t = t.to_ascii_lowercase();
            let third_party = t.contains("http:") || t.contains("https:") || t.contains("\"//");
            assert!(!third_party, "{what}: third-party asset in {t}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. redirect_uri exact match
// ---------------------------------------------------------------------------------------------

both_backends!(redirect_uri_exact_match);
async fn redirect_uri_exact_match(app: TestApp) {
    let client = app.spa();
    let https_client = app.register(NewClient {
        name: "Https app".into(),
        redirect_uris: strings(&["https://app.example/cb"]),
        ..spa_registration()
    });
    let variants = [
        "http://127.0.0.1:5173/callback/",
        "http://127.0.0.1:5173/callback?x=1",
        "http://127.0.0.1:5173/callback?",
        "http://127.0.0.1:5173/callback#frag",
        "http://127.0.0.1:5173/callback#",
        "http://localhost:5173/callback",
        "http://LOCALHOST:5173/callback",
        "HTTP://127.0.0.1:5173/callback",
        "http://127.0.0.1:5173/Callback",
        "http://127.0.0.1:5173/%63allback",
        "http://127.0.0.1:5173/x/../callback",
        "http://127.0.0.1:5174/callback",
        "http://127.0.0.1/callback",
        "https://127.0.0.1:5173/callback",
        "http://[::1]:5173/callback",
        "http://127.0.0.1:5173/callbac",
        "http://127.0.0.1:5173/callbackx",
        "http://127.0.0.1:5173/callback.evil.example",
        "http://127.0.0.1:5173/callback/evil",
        "http://127.0.0.1:5173",
        "http://127.0.0.1:5173/",
        "http://user@127.0.0.1:5173/callback",
        "http://evil.example/?http://127.0.0.1:5173/callback",
        " http://127.0.0.1:5173/callback",
        "http://127.0.0.1:5173/callback ",
        "/callback",
        "not a url",
    ];
    for bad in variants {
        let resp = app.authorize(&client, &[("redirect_uri", Some(bad))]).await;
        let body = assert_bad_request_page(resp, bad).await;
        assert!(
            body.contains("redirect_uri"),
            "{bad}: the page should say what is wrong: {body}"
        );
    }
    for bad in [
        "https://app.example:443/cb",
        "https://APP.example/cb",
        "https://app.example./cb",
        "https://app.example/cb/",
        "https://app.example/CB",
        "http://app.example/cb",
    ] {
        let resp = app
            .authorize(&https_client, &[("redirect_uri", Some(bad))])
            .await;
        assert_bad_request_page(resp, bad).await;
    }
    // The registered URIs, character for character, are accepted.
    let resp = app.authorize(&client, &[]).await;
    assert_to_login(&resp, "the exact registered URI is accepted");
    let registered = [("redirect_uri", Some("https://app.example/cb"))];
    let resp = app.authorize(&https_client, &registered).await;
    let status = resp.status().as_u16();
    assert_eq!(status, 303, "the exact registered https URI is accepted");
    // A URI registered for another client is not registered for this one.
    let resp = app.authorize(&client, &registered).await;
    assert_bad_request_page(resp, "another client's redirect URI").await;
}

// ---------------------------------------------------------------------------------------------
// 2. bad client or redirect URI never redirects
// ---------------------------------------------------------------------------------------------

both_backends!(bad_client_or_redirect_never_redirects);
async fn bad_client_or_redirect_never_redirects(app: TestApp) {
    let client = app.spa();
    let pkce = pkce();
    let with = |overrides: &[(&str, Option<&str>)]| authz(&client.id, &pkce.challenge, overrides);
    let evil = Some("https://evil.example/cb");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown client_id",
            authz("cl_does_not_exist", &pkce.challenge, &[]),
            "client_id",
        ),
        (
            "missing client_id",
            with(&[("client_id", None)]),
            "client_id",
        ),
        (
            "empty client_id",
            with(&[("client_id", Some(""))]),
            "client_id",
        ),
        (
            "missing redirect_uri",
            with(&[("redirect_uri", None)]),
            "redirect_uri",
        ),
        (
            "unregistered redirect_uri",
            with(&[("redirect_uri", evil)]),
            "redirect_uri",
        ),
        (
            // Other errors are present too: the bad redirect URI still wins, no redirect.
            "unregistered redirect_uri with bad scope and no PKCE",
            with(&[
                ("redirect_uri", evil),
                ("scope", Some("admin")),
                ("code_challenge", None),
                ("response_type", Some("token")),
            ]),
            "redirect_uri",
        ),
        (
            "unknown client with bad response_type",
            authz(
                "cl_nope",
                &pkce.challenge,
                &[("response_type", Some("token"))],
            ),
            "client_id",
        ),
        ("no parameters at all", String::new(), "client_id"),
    ];
    for (what, query, mentions) in cases {
        let resp = app.get_authorize(&query).await;
        let body = assert_bad_request_page(resp, what).await;
        assert!(
            body.contains(mentions),
            "{what}: page should mention {mentions}: {body}"
        );
        let links = body.contains("evil.example");
        assert!(!links, "{what}: no link to the attacker's URI");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. other authorize errors redirect with error, state and iss
// ---------------------------------------------------------------------------------------------

both_backends!(authorize_errors_redirect_with_state_and_iss);
async fn authorize_errors_redirect_with_state_and_iss(app: TestApp) {
    let client = app.spa();
    for scope in ["admin", "api:read admin", "api:read  api:write"] {
        let resp = app.authorize(&client, &[("scope", Some(scope))]).await;
        let q = assert_error(&app, &resp, "invalid_scope", scope);
        assert!(q.contains_key("error_description"));
    }
    // An unknown resource is an error for the client too.
    let resource = [("resource", Some("https://other.example"))];
    let resp = app.authorize(&client, &resource).await;
    assert_error(&app, &resp, "invalid_target", "unknown resource");
    // The state is returned verbatim, special characters included.
    let state = "a b&c=d/é";
    let resp = app
        .authorize(&client, &[("scope", Some("admin")), ("state", Some(state))])
        .await;
    assert_error_redirect(
        &app,
        &resp,
        "invalid_scope",
        Some(state),
        "state round trip",
    );
    // A request within the allowed scopes is not an error.
    let resp = app.authorize(&client, &[("scope", Some("api:read"))]).await;
    assert_to_login(&resp, "scope api:read");
}

// ---------------------------------------------------------------------------------------------
// 4-6. PKCE on the authorization request
// ---------------------------------------------------------------------------------------------

both_backends!(public_client_without_code_challenge_rejected);
async fn public_client_without_code_challenge_rejected(app: TestApp) {
    let client = app.spa();
    for (what, overrides) in [
        (
            "no challenge, no method",
            vec![("code_challenge", None), ("code_challenge_method", None)],
        ),
        ("method without challenge", vec![("code_challenge", None)]),
        ("empty challenge", vec![("code_challenge", Some(""))]),
    ] {
        let resp = app.authorize(&client, &overrides).await;
        let q = assert_error(&app, &resp, "invalid_request", what);
        assert!(
            q["error_description"].contains("code_challenge"),
            "{what}: {q:?}"
        );
    }
    // With a challenge the same request goes on to login.
    assert_to_login(&app.authorize(&client, &[]).await, "with a challenge");
}

both_backends!(plain_or_unknown_challenge_method_rejected);
async fn plain_or_unknown_challenge_method_rejected(app: TestApp) {
    let client = app.spa();
    let pkce = pkce();
    for method in [
        Some("plain"),
        None,
        Some("S512"),
        Some("s256"),
        Some("S256 "),
        Some("RS256"),
    ] {
        let resp = app
            .authorize(&client, &[("code_challenge_method", method)])
            .await;
        assert_error(
            &app,
            &resp,
            "invalid_request",
            &format!("method {method:?}"),
        );
    }
    // Plain with the verifier itself as the challenge (43 chars) is refused too.
    let plain = [("code_challenge_method", Some("plain"))];
    let resp = app
        .get_authorize(&authz(&client.id, &pkce.verifier, &plain))
        .await;
    assert_error(&app, &resp, "invalid_request", "plain with verifier");
    // The metadata advertises S256 only.
    let meta = ok_json(app.get("/.well-known/oauth-authorization-server").await).await;
    let methods = &meta["code_challenge_methods_supported"];
    assert_eq!(methods, &serde_json::json!(["S256"]));
    // S256 is accepted.
    assert_eq!(app.authorize(&client, &[]).await.status().as_u16(), 303);
}

both_backends!(malformed_code_challenge_rejected);
async fn malformed_code_challenge_rejected(app: TestApp) {
    let client = app.spa();
    let good = pkce().challenge;
    assert_eq!(good.len(), 43);
    let bad = [
        good[..42].to_owned(),
        format!("{good}A"),
        format!("{}=", &good[..42]),
        format!("{good}="),
        format!("{}+", &good[..42]),
        format!("{}/", &good[..42]),
        format!("{}.", &good[..42]),
        format!("{}~", &good[..42]),
        format!("{} ", &good[..42]),
        format!("{}é", &good[..41]),
        "short".to_owned(),
        "a".repeat(128),
        "a".repeat(129),
    ];
    for challenge in &bad {
        let resp = app.get_authorize(&authz(&client.id, challenge, &[])).await;
        let q = assert_error(&app, &resp, "invalid_request", challenge);
        assert!(
            q["error_description"].contains("code_challenge"),
            "{challenge}: {q:?}"
        );
    }
    let resp = app.get_authorize(&authz(&client.id, &good, &[])).await;
    assert_to_login(&resp, "a well-formed challenge is accepted");
}

// ---------------------------------------------------------------------------------------------
// 14. response_type / response_mode
// ---------------------------------------------------------------------------------------------

both_backends!(response_type_token_refused);
async fn response_type_token_refused(app: TestApp) {
    let client = app.spa();
    for rt in [
        "token",
        "code token",
        "id_token",
        "code id_token",
        "token code",
        "CODE",
    ] {
        let resp = app.authorize(&client, &[("response_type", Some(rt))]).await;
        assert_error(&app, &resp, "unsupported_response_type", rt);
    }
    let resp = app.authorize(&client, &[("response_type", None)]).await;
    assert_error(&app, &resp, "invalid_request", "no response_type");
    for mode in ["fragment", "form_post", "query.jwt", "web_message"] {
        let resp = app
            .authorize(&client, &[("response_mode", Some(mode))])
            .await;
        assert_error(&app, &resp, "invalid_request", mode);
    }
    let resp = app
        .authorize(&client, &[("response_mode", Some("query"))])
        .await;
    assert_to_login(&resp, "response_mode=query is fine");
}

// ---------------------------------------------------------------------------------------------
// 36. iss on every authorization response
// ---------------------------------------------------------------------------------------------

both_backends!(iss_on_every_authorization_response);
async fn iss_on_every_authorization_response(app: TestApp) {
    let client = app.spa_and_alice();
    // Success.
    let q = app.authorize_code(&client, "alice", &pkce(), &[]).await;
    assert_eq!(q.get("iss"), Some(&app.issuer), "success redirect: {q:?}");
    assert_eq!(q.get("state").map(String::as_str), Some(STATE));
    let code = q.get("code").is_some_and(|c| c.len() >= 43);
    assert!(code, "code in {q:?}");
    assert!(!q.contains_key("error"));
    // Errors from /authorize.
    for (what, overrides, error) in [
        ("bad scope", vec![("scope", Some("admin"))], "invalid_scope"),
        ("no pkce", vec![("code_challenge", None)], "invalid_request"),
        (
            "token",
            vec![("response_type", Some("token"))],
            "unsupported_response_type",
        ),
    ] {
        let resp = app.authorize(&client, &overrides).await;
        assert_error(&app, &resp, error, what);
    }
    // Without a state: iss still present, no state invented.
    let resp = app
        .authorize(&client, &[("state", None), ("scope", Some("admin"))])
        .await;
    assert_error_redirect(&app, &resp, "invalid_scope", None, "no state");
    // The user says no (asked again with prompt=consent: the first answer is remembered).
    let resp = app.authorize(&client, &[("prompt", Some("consent"))]).await;
    assert_eq!(resp.status().as_u16(), 303);
    let consent = location(&resp);
    assert!(consent.starts_with("/consent?"), "logged in: {consent}");
    let resp = app.consent(&consent, "deny").await;
    assert_error(&app, &resp, "access_denied", "deny");
}

// ---------------------------------------------------------------------------------------------
// 43. consent needs an explicit POST; deny gives access_denied; one answer per form
// ---------------------------------------------------------------------------------------------

both_backends!(consent_requires_explicit_post_and_deny_gives_access_denied);
async fn consent_requires_explicit_post_and_deny_gives_access_denied(app: TestApp) {
    let client = app.spa_and_alice();
    let consent = logged_in_consent(&app, &client, "alice").await;
    // GET shows the page, whatever the query says; it never redirects to the client.
    let page = assert_page(app.browse(&consent).await, 200, "consent page").await;
    assert!(
        page.contains("Test SPA") && page.contains("decision"),
        "{page}"
    );
    assert!(page.contains("method=\"post\""), "{page}");
    let auto = format!("{consent}&decision=approve&csrf=x");
    assert_page(app.browse(&auto).await, 200, "GET with decision=approve").await;
    // No decision or an unknown one: nothing is issued, the request stays open.
    let (interaction, csrf) = form_fields(&app, &app.browser, &consent).await;
    for decision in [None, Some("maybe"), Some("APPROVE")] {
        let mut form = vec![
            ("interaction", interaction.as_str()),
            ("csrf", csrf.as_str()),
        ];
        form.extend(decision.map(|d| ("decision", d)));
        let resp = app.browser_post("/consent", &form).await;
        assert_bad_request_page(resp, &format!("decision {decision:?}")).await;
    }
    // Deny (the request was not approved by the GETs above).
    let deny = consent_form(&interaction, &csrf, "deny");
    let resp = app.browser_post("/consent", &deny).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_error(&app, &resp, "access_denied", "deny");
    // The same form again, either way: one answer only.
    let resp = app.browser_post("/consent", &deny).await;
    assert_bad_request_page(resp, "deny twice").await;
    let approve = consent_form(&interaction, &csrf, "approve");
    let resp = app.browser_post("/consent", &approve).await;
    assert_bad_request_page(resp, "approve after deny").await;
    // Approve then approve again.
    let consent = location(&app.authorize(&client, &[("prompt", Some("consent"))]).await);
    let (interaction, csrf) = form_fields(&app, &app.browser, &consent).await;
    let approve = consent_form(&interaction, &csrf, "approve");
    let resp = app.browser_post("/consent", &approve).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert!(query_of(&location(&resp)).contains_key("code"));
    let resp = app.browser_post("/consent", &approve).await;
    assert_bad_request_page(resp, "approve twice").await;
    // Two submissions at once: exactly one answer.
    let consent = location(&app.authorize(&client, &[("prompt", Some("consent"))]).await);
    let (interaction, csrf) = form_fields(&app, &app.browser, &consent).await;
    let approve = consent_form(&interaction, &csrf, "approve");
    let (a, b) = tokio::join!(
        app.browser_post("/consent", &approve),
        app.browser_post("/consent", &approve)
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [303, 400], "parallel consent submissions");
}

// ---------------------------------------------------------------------------------------------
// 42. CSRF token on login and consent; Origin check
// ---------------------------------------------------------------------------------------------

both_backends!(csrf_token_required_on_login_and_consent);
async fn csrf_token_required_on_login_and_consent(app: TestApp) {
    let client = app.spa_and_alice();
    let login = start(&app, &app.browser, &client).await;
    let (interaction, csrf) = form_fields(&app, &app.browser, &login).await;
    // A second browser with its own session and its own valid csrf.
    let other = new_browser();
    let other_login = start(&app, &other, &client).await;
    let (other_interaction, other_csrf) = form_fields(&app, &other, &other_login).await;
    assert_ne!(csrf, other_csrf);

    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let suffixed = format!("{csrf}x");
    for (what, token) in [
        ("no csrf", None),
        ("empty csrf", Some("")),
        ("wrong csrf", Some(wrong)),
        ("another browser's csrf", Some(other_csrf.as_str())),
        ("csrf with a suffix", Some(suffixed.as_str())),
    ] {
        let mut form = vec![("interaction", interaction.as_str()), ("username", "alice")];
        form.push(("password", PASSWORD));
        form.extend(token.map(|c| ("csrf", c)));
        let resp = app.browser_post("/login", &form).await;
        assert!(set_cookie(&resp).is_none(), "{what}: no new session");
        assert_bad_request_page(resp, what).await;
    }
    // The other browser cannot use this browser's interaction, even with its csrf.
    let stolen = login_form(&interaction, &csrf, "alice", PASSWORD);
    let resp = post_with(&other, &app.url("/login"), &stolen).await;
    assert!(set_cookie(&resp).is_none());
    assert_bad_request_page(resp, "stolen interaction and csrf").await;
    // A cross-site post is refused outright, even with the right csrf: by Origin, or by
    // Sec-Fetch-Site when the browser sends it.
    let post_from = |origin: &str, fetch_site: Option<&str>, path: &str| {
        let req = app.browser.post(app.url(path)).header("Origin", origin);
        match fetch_site {
            Some(site) => req.header("Sec-Fetch-Site", site),
            None => req,
        }
    };
    let cross_site: [(&str, Option<&str>); 5] = [
        ("https://evil.example", None),
        ("http://127.0.0.1:5173", None),
        ("null", Some("cross-site")),
        ("http://127.0.0.1:5173", Some("same-site")),
        (app.address.as_str(), Some("cross-site")),
    ];
    for (origin, fetch_site) in cross_site {
        let resp = post_from(origin, fetch_site, "/login")
            .form(&stolen)
            .send()
            .await
            .expect("POST");
        assert!(set_cookie(&resp).is_none(), "origin {origin}: no session");
        assert_page(resp, 403, origin).await;
    }
    // None of that logged the browser in.
    let resp = app
        .browse(&format!(
            "/consent?interaction={}",
            encode_value(&interaction)
        ))
        .await;
    let status = resp.status().as_u16();
    assert_eq!(status, 303, "not logged in: consent sends back to login");
    assert!(location(&resp).starts_with("/login?"));
    // The genuine form works: what Chromium sends for our own page under
    // Referrer-Policy: no-referrer is `Origin: null` with `Sec-Fetch-Site: same-origin`.
    let genuine = post_from("null", Some("same-origin"), "/login").form(&stolen);
    let resp = genuine.send().await.expect("POST");
    assert_eq!(resp.status().as_u16(), 303, "same-origin login");
    let consent = location(&resp);
    assert!(consent.starts_with("/consent?"));

    // Consent: the same checks.
    let (interaction, csrf) = form_fields(&app, &app.browser, &consent).await;
    for (what, token) in [
        ("no csrf", None),
        ("wrong csrf", Some(wrong)),
        ("another browser's csrf", Some(other_csrf.as_str())),
    ] {
        let mut form = vec![
            ("interaction", interaction.as_str()),
            ("decision", "approve"),
        ];
        form.extend(token.map(|t| ("csrf", t)));
        let resp = app.browser_post("/consent", &form).await;
        assert_bad_request_page(resp, &format!("consent: {what}")).await;
    }
    let good = consent_form(&interaction, &csrf, "approve");
    let resp = post_with(&other, &app.url("/consent"), &good).await;
    assert_bad_request_page(resp, "consent from another browser").await;
    let evil = post_from("https://evil.example", None, "/consent").form(&good);
    let resp = evil.send().await.expect("POST");
    assert_page(resp, 403, "consent cross-site origin").await;
    // The forged attempts consumed nothing: the real form still gets its one code.
    let resp = app.browser_post("/consent", &good).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert!(query_of(&location(&resp)).contains_key("code"));
    // The other browser's own flow is untouched and still not logged in.
    let other_form = login_form(&other_interaction, &csrf, "alice", PASSWORD);
    let resp = post_with(&other, &app.url("/login"), &other_form).await;
    assert_bad_request_page(resp, "other browser with this browser's csrf").await;
}

// ---------------------------------------------------------------------------------------------
// 44. 303 after credential POSTs
// ---------------------------------------------------------------------------------------------

both_backends!(login_post_answers_303);
async fn login_post_answers_303(app: TestApp) {
    let client = app.spa_and_alice();
    let login = start(&app, &app.browser, &client).await;
    let resp = app.login(&login, "alice", PASSWORD).await;
    assert_eq!(
        resp.status().as_u16(),
        303,
        "login answers 303, never 302/307"
    );
    let consent = location(&resp);
    assert!(consent.starts_with("/consent?interaction="), "{consent}");
    let resp = app.consent(&consent, "approve").await;
    assert_eq!(resp.status().as_u16(), 303, "consent approve answers 303");
    assert!(location(&resp).starts_with(REDIRECT));
    let again = app.authorize(&client, &[("prompt", Some("consent"))]).await;
    let resp = app.consent(&location(&again), "deny").await;
    assert_eq!(resp.status().as_u16(), 303, "consent deny answers 303");
    // A failed login is no redirect at all.
    let other = new_browser();
    let login = start(&app, &other, &client).await;
    assert!(login.starts_with("/login?"));
    let (interaction, csrf) = form_fields(&app, &other, &login).await;
    let form = login_form(&interaction, &csrf, "alice", "nope");
    let resp = post_with(&other, &app.url("/login"), &form).await;
    assert_page(resp, 200, "failed login").await;
}

// ---------------------------------------------------------------------------------------------
// 46. session cookie
// ---------------------------------------------------------------------------------------------

/// Asserts the flags every session cookie carries; returns its name, value and attributes.
fn session_cookie(resp: &reqwest::Response, what: &str) -> (String, String, Vec<String>) {
    let cookie = set_cookie(resp).unwrap_or_else(|| panic!("a session cookie {what}"));
    let (name, value) = cookie_pair(&cookie);
    let attrs = cookie_attributes(&cookie);
    for flag in ["httponly", "samesite=lax", "path=/"] {
        assert!(
            attrs.contains(&flag.to_owned()),
            "{what}: {flag} in {cookie}"
        );
    }
    let domain = attrs.iter().any(|a| a.starts_with("domain"));
    assert!(!domain, "host-only cookie: {cookie}");
    (name, value, attrs)
}

both_backends!(session_cookie_flags);
async fn session_cookie_flags(app: TestApp) {
    let client = app.spa_and_alice();
    let resp = app.authorize(&client, &[]).await;
    assert_eq!(resp.status().as_u16(), 303);
    let (name, before, attrs) = session_cookie(&resp, "after /authorize");
    let login = location(&resp);
    assert_eq!(name, "gatehouse_session");
    assert!(before.len() >= 43, "session id of 256 bits: {before}");
    // Plain http (loopback development): no Secure, or the browser could not send it back.
    assert!(!attrs.contains(&"secure".to_owned()), "{attrs:?}");

    // Login issues a new session id; the old one is dead.
    let resp = app.login(&login, "alice", PASSWORD).await;
    assert_eq!(resp.status().as_u16(), 303);
    let (name, after, _) = session_cookie(&resp, "after login");
    assert_eq!(name, "gatehouse_session");
    assert_ne!(before, after, "login must change the session id");
    let consent = location(&resp);
    let with_session = |id: &str| {
        let cookieless = app.api.get(app.url(&consent));
        cookieless
            .header("Cookie", format!("gatehouse_session={id}"))
            .send()
    };
    let resp = with_session(&before).await.expect("GET");
    assert_bad_request_page(resp, "pre-login session id after login").await;
    let resp = with_session(&after).await.expect("GET");
    assert_page(resp, 200, "new session id").await;

    // An https issuer: __Host- prefix, Secure, HSTS.
    let secure = app
        .sibling(|s| s.server.issuer = "https://auth.example".into())
        .await;
    let resp = secure.authorize(&secure.spa(), &[]).await;
    assert_eq!(resp.status().as_u16(), 303);
    let (name, _, attrs) = session_cookie(&resp, "on https");
    assert_eq!(name, "__Host-gatehouse_session");
    assert!(attrs.contains(&"secure".to_owned()), "{attrs:?}");
    let hsts = header(&resp, "strict-transport-security").expect("HSTS on an https issuer");
    assert!(hsts.contains("max-age="), "{hsts}");
    let resp = secure.browse("/no-such-page").await;
    let hsts = header(&resp, "strict-transport-security");
    assert!(hsts.is_some(), "HSTS on every response");
}

// ---------------------------------------------------------------------------------------------
// 41. framing
// ---------------------------------------------------------------------------------------------

both_backends!(pages_forbid_framing);
async fn pages_forbid_framing(app: TestApp) {
    let client = app.spa_and_alice();
    let resp = app.authorize(&client, &[]).await;
    assert_security_headers(&resp, "authorize redirect");
    let login = location(&resp);
    let resp = app.browse(&login).await;
    assert_security_headers(&resp, "login page");
    assert_page(resp, 200, "login page").await;
    let resp = app.login(&login, "alice", PASSWORD).await;
    assert_security_headers(&resp, "login POST");
    let resp = app.browse(&location(&resp)).await;
    assert_security_headers(&resp, "consent page");
    assert_page(resp, 200, "consent page").await;
    let resp = app.get_authorize("client_id=nope").await;
    assert_security_headers(&resp, "400 page");
    assert_bad_request_page(resp, "400 page").await;
    let resp = app.browse("/no-such-page").await;
    assert_security_headers(&resp, "404 page");
    assert_page(resp, 404, "404 page").await;
    let cross_site = app
        .browser
        .post(app.url("/login"))
        .header("Origin", "https://evil.example");
    let resp = cross_site
        .form(&[("interaction", "x")])
        .send()
        .await
        .expect("POST");
    assert_security_headers(&resp, "403 page");
    assert_page(resp, 403, "403 page").await;
}

// ---------------------------------------------------------------------------------------------
// 47. escaping and no inline script
// ---------------------------------------------------------------------------------------------

/// The Content-Security-Policy of a page: scripts from our origin only.
fn assert_script_policy(resp: &reqwest::Response) {
    let csp = header(resp, "content-security-policy").expect("CSP");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let unsafe_ = csp.contains("unsafe-inline") || csp.contains("unsafe-eval");
    assert!(!unsafe_, "{csp}");
}

both_backends!(pages_escape_client_name_and_no_inline_script);
async fn pages_escape_client_name_and_no_inline_script(app: TestApp) {
    let client = app.register(NewClient {
        name: "<script>alert(1)</script>".into(),
        scopes: strings(&["api:read", "<img>"]),
        ..spa_registration()
    });
    app.user("alice", &[]);
    let login = location(&app.authorize(&client, &[]).await);
    let resp = app.browse(&login).await;
    assert_script_policy(&resp);
    let page = assert_page(resp, 200, "login").await;
    let escaped = named_entities(&page).contains("&lt;script&gt;alert(1)&lt;/script&gt;");
    assert!(escaped, "client name escaped: {page}");
    assert_no_script(&page, "login");
    // The username echoed back after a failed login is escaped, attribute included.
    let (interaction, csrf) = form_fields(&app, &app.browser, &login).await;
    let evil_user = "\"><script>alert(2)</script>";
    let form = login_form(&interaction, &csrf, evil_user, "x");
    let page = assert_page(app.browser_post("/login", &form).await, 200, "failed login").await;
    let escaped = named_entities(&page).contains("&quot;&gt;&lt;script&gt;alert(2)");
    assert!(escaped, "{page}");
    assert_no_script(&page, "failed login");
    assert!(!page.contains("\"><"), "attribute break-out: {page}");
    // Consent page: client name and scopes escaped.
    let consent = location(&app.login(&login, "alice", PASSWORD).await);
    let resp = app.browse(&consent).await;
    assert_script_policy(&resp);
    let page = assert_page(resp, 200, "consent").await;
    let entities = named_entities(&page);
    assert!(entities.contains("&lt;script&gt;alert(1)"), "{page}");
    assert!(entities.contains("&lt;img&gt;"), "scope escaped: {page}");
    assert_no_script(&page, "consent");
    assert!(!page.to_ascii_lowercase().contains("<img"), "{page}");
    // Error pages have no script either.
    let resp = app
        .get_authorize("client_id=%3Cscript%3Ealert(3)%3C/script%3E")
        .await;
    let page = assert_bad_request_page(resp, "error page").await;
    assert_no_script(&page, "error page");
    let page = assert_page(app.browse("/%3Cscript%3E").await, 404, "404").await;
    assert_no_script(&page, "404");
}

// ---------------------------------------------------------------------------------------------
// 40. no tokens in URLs, no third-party assets
// ---------------------------------------------------------------------------------------------

both_backends!(no_tokens_in_urls);
async fn no_tokens_in_urls(app: TestApp) {
    let client = app.spa_and_alice();
    let no_referrer = |resp: &reqwest::Response| {
        assert_eq!(
            header(resp, "referrer-policy").as_deref(),
            Some("no-referrer")
        );
    };
    let login = location(&app.authorize(&client, &[]).await);
    let keys: BTreeSet<String> = relative_query(&app, &login).into_keys().collect();
    assert_eq!(keys, set(&["interaction"]), "login URL: {login}");
    assert!(login.starts_with("/login?"));
    let resp = app.browse(&login).await;
    no_referrer(&resp);
    let page = assert_page(resp, 200, "login").await;
    let action = page.contains("action=\"/login\"");
    assert!(action, "form posts to /login with no query: {page}");
    assert!(page.contains("type=\"password\""));
    assert_no_third_party_assets(&page, "login");
    let consent = location(&app.login(&login, "alice", PASSWORD).await);
    assert!(consent.starts_with("/consent?"));
    let consent_q = relative_query(&app, &consent);
    assert_eq!(consent_q.len(), 1, "consent URL: {consent}");
    assert!(
        consent_q.contains_key("interaction"),
        "consent URL: {consent}"
    );
    let resp = app.browse(&consent).await;
    no_referrer(&resp);
    let page = assert_page(resp, 200, "consent").await;
    assert!(page.contains("action=\"/consent\""), "{page}");
    assert_no_third_party_assets(&page, "consent");
    // The code appears only in the final redirect, never in our own URLs.
    let final_location = location(&app.consent(&consent, "approve").await);
    let q = query_of(&final_location);
    let keys: BTreeSet<String> = q.keys().cloned().collect();
    assert_eq!(keys, set(&["code", "state", "iss"]), "{final_location}");
    assert!(!login.contains(&q["code"]) && !consent.contains(&q["code"]));
    assert_ne!(consent_q["interaction"], q["code"]);
    // Error pages: same.
    let resp = app.get_authorize("client_id=nope").await;
    no_referrer(&resp);
    let page = assert_bad_request_page(resp, "400").await;
    assert_no_third_party_assets(&page, "400");
    // The stylesheet is ours.
    assert!(page.contains("href=\"/static/gatehouse.css\""), "{page}");
    let resp = app.get("/static/gatehouse.css").await;
    assert_eq!(resp.status().as_u16(), 200);
    let ct = header(&resp, "content-type").unwrap_or_default();
    assert!(ct.starts_with("text/css"), "{ct}");
    let css = resp.text().await.expect("css");
    assert!(!css.contains("@import"), "no imported third-party CSS");
}

// ---------------------------------------------------------------------------------------------
// 48. login never redirects off site
// ---------------------------------------------------------------------------------------------

both_backends!(login_never_redirects_off_site);
async fn login_never_redirects_off_site(app: TestApp) {
    let client = app.spa_and_alice();
    let overrides = [
        ("return_to", Some("https://evil.example")),
        ("next", Some("//evil.example/x")),
    ];
    let resp = app.authorize(&client, &overrides).await;
    assert_eq!(resp.status().as_u16(), 303);
    let login = location(&resp);
    assert!(
        login.starts_with("/login?") && !login.contains("evil"),
        "{login}"
    );
    let with_next = format!("{login}&return_to=https%3A%2F%2Fevil.example&next=%2F%2Fevil.example");
    let (interaction, csrf) = form_fields(&app, &app.browser, &with_next).await;
    let mut form = login_form(&interaction, &csrf, "alice", PASSWORD).to_vec();
    form.extend([
        ("return_to", "https://evil.example"),
        ("next", "//evil.example/x"),
        ("redirect_uri", "https://evil.example/cb"),
    ]);
    let resp = app.browser_post("/login", &form).await;
    assert_eq!(resp.status().as_u16(), 303);
    let consent = location(&resp);
    assert!(
        consent.starts_with("/consent?"),
        "login goes to consent only: {consent}"
    );
    assert!(!consent.contains("evil"), "{consent}");
    let done = location(&app.consent(&consent, "approve").await);
    assert!(done.starts_with(&format!("{REDIRECT}?")), "{done}");
    assert!(!done.contains("evil"), "{done}");
}

// ---------------------------------------------------------------------------------------------
// 50. no user enumeration
// ---------------------------------------------------------------------------------------------

/// A failed login as `username` on a fresh login page: status, whether a session cookie was
/// set, and the page with what differs per attempt (ids, the echoed username) normalised.
async fn failed_login(app: &TestApp, client: &TestClient, username: &str) -> (u16, bool, String) {
    let login = start(app, &app.browser, client).await;
    let (interaction, csrf) = form_fields(app, &app.browser, &login).await;
    let form = login_form(&interaction, &csrf, username, "wrong password");
    let resp = app.browser_post("/login", &form).await;
    let status = resp.status().as_u16();
    let cookie = set_cookie(&resp).is_some();
    let page = resp.text().await.expect("page");
    let normalised = page
        .replace(&interaction, "INTERACTION")
        .replace(&csrf, "CSRF")
        .replace(&format!("value=\"{username}\""), "value=\"USER\"");
    (status, cookie, normalised)
}

// Argon2 at its production cost, so that the timing below compares hashes.
both_backends!(no_user_enumeration_on_login, production_argon2);
async fn no_user_enumeration_on_login(app: TestApp) {
    let client = app.spa_and_alice();
    let (unknown_status, unknown_cookie, unknown_page) =
        failed_login(&app, &client, "mallory").await;
    let (known_status, known_cookie, known_page) = failed_login(&app, &client, "alice").await;
    assert_eq!(unknown_status, 200);
    assert_eq!(known_status, 200);
    assert!(
        !unknown_cookie && !known_cookie,
        "no session change on failure"
    );
    let message = "Invalid username or password";
    assert!(unknown_page.contains(message), "{unknown_page}");
    assert!(known_page.contains(message), "{known_page}");
    assert_eq!(
        unknown_page, known_page,
        "pages must not tell the two cases apart"
    );

    // Nor does the time: a wrong password for a known user and any password for an unknown
    // one each cost one argon2 hash, so their medians stay within a factor of two.
    let login = start(&app, &app.browser, &client).await;
    let (interaction, csrf) = form_fields(&app, &app.browser, &login).await;
    let (app, interaction, csrf) = (&app, &interaction, &csrf);
    let what = "login page: wrong password (true), unknown user (false)";
    assert_same_cost(what, |known| async move {
        let username = if known { "alice" } else { "mallory" };
        let form = login_form(interaction, csrf, username, "wrong password");
        let resp = app.browser_post("/login", &form).await;
        assert_eq!(resp.status().as_u16(), 200, "a failed login");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

both_backends!(authorize_rejects_duplicate_and_oversized_params);
async fn authorize_rejects_duplicate_and_oversized_params(app: TestApp) {
    let client = app.spa();
    let pkce = pkce();
    let with = |overrides: &[(&str, Option<&str>)]| authz(&client.id, &pkce.challenge, overrides);
    let base = with(&[]);
    let other = app.spa();
    let long_redirect = format!("{REDIRECT}?{}", "a".repeat(4100));
    let many: Vec<String> = (0..40).map(|i| format!("p{i}=1")).collect();
    let cases = [
        (
            "client_id twice, same value",
            format!("{base}&client_id={}", client.id),
        ),
        (
            "client_id twice, two clients",
            format!("{base}&client_id={}", other.id),
        ),
        ("state twice", format!("{base}&state=other")),
        (
            "redirect_uri twice",
            format!("{base}&redirect_uri={}", encode_value(REDIRECT)),
        ),
        ("response_type twice", format!("{base}&response_type=code")),
        (
            "code_challenge twice",
            format!("{base}&code_challenge={}", pkce.challenge),
        ),
        (
            "state too long",
            with(&[("state", Some(&"s".repeat(4097)))]),
        ),
        (
            "scope too long",
            with(&[("scope", Some(&"a".repeat(5000)))]),
        ),
        (
            "redirect_uri too long",
            with(&[("redirect_uri", Some(&long_redirect))]),
        ),
        (
            "parameter name too long",
            format!("{base}&{}=1", "k".repeat(100)),
        ),
        ("too many parameters", format!("{base}&{}", many.join("&"))),
    ];
    for (what, query) in cases {
        let resp = app.get_authorize(&query).await;
        assert_bad_request_page(resp, what).await;
    }
    // At the limit is fine.
    let resp = app
        .get_authorize(&with(&[("state", Some(&"s".repeat(4096)))]))
        .await;
    assert_to_login(&resp, "a 4096-character state is accepted");
}

both_backends!(login_with_expired_or_unknown_interaction_shows_readable_page);
async fn login_with_expired_or_unknown_interaction_shows_readable_page(app: TestApp) {
    let client = app.spa_and_alice();
    let bogus = "not-a-real-interaction-0123456789abcdefghijklmnop";
    async fn readable(resp: reqwest::Response, what: &str) {
        let body = assert_bad_request_page(resp, what).await;
        assert!(
            body.contains("expired") || body.contains("start again"),
            "{what}: {body}"
        );
    }
    // A browser with no session at all.
    let fresh = new_browser();
    let bogus_login = format!("/login?interaction={bogus}");
    readable(
        get_with(&fresh, &app.url(&bogus_login)).await,
        "GET no session",
    )
    .await;
    readable(
        get_with(&fresh, &app.url("/login")).await,
        "GET no interaction",
    )
    .await;
    let form = login_form(bogus, "x", "alice", PASSWORD);
    readable(
        post_with(&fresh, &app.url("/login"), &form).await,
        "POST no session",
    )
    .await;
    readable(
        post_with(&fresh, &app.url("/login"), &[]).await,
        "POST empty",
    )
    .await;
    // A browser with a session and a real interaction, using a bogus one.
    let login = start(&app, &app.browser, &client).await;
    let (_, csrf) = form_fields(&app, &app.browser, &login).await;
    readable(app.browse(&bogus_login).await, "GET bogus").await;
    let resp = app
        .browser_post("/login", &login_form(bogus, &csrf, "alice", PASSWORD))
        .await;
    assert!(set_cookie(&resp).is_none());
    readable(resp, "POST bogus").await;
    let bogus_consent = format!("/consent?interaction={bogus}");
    readable(app.browse(&bogus_consent).await, "consent GET bogus").await;
    let form = consent_form(bogus, &csrf, "approve");
    readable(
        app.browser_post("/consent", &form).await,
        "consent POST bogus",
    )
    .await;
    let duplicate = app.browse("/login?interaction=a&interaction=b").await;
    let body = assert_bad_request_page(duplicate, "duplicate").await;
    assert!(body.contains("interaction"), "{body}");

    // A real interaction that expired.
    let login = start(&app, &app.browser, &client).await;
    let (interaction, csrf) = form_fields(&app, &app.browser, &login).await;
    app.advance_clock(app.settings.session.interaction_ttl_secs);
    readable(app.browse(&login).await, "GET expired").await;
    let form = login_form(&interaction, &csrf, "alice", PASSWORD);
    let resp = app.browser_post("/login", &form).await;
    assert!(set_cookie(&resp).is_none());
    readable(resp, "POST expired").await;
}

// ---------------------------------------------------------------------------------------------
// Login failures and existing sessions
// ---------------------------------------------------------------------------------------------

both_backends!(login_wrong_password_shows_error_and_no_session_user);
async fn login_wrong_password_shows_error_and_no_session_user(app: TestApp) {
    let client = app.spa_and_alice();
    let login = start(&app, &app.browser, &client).await;
    for (user, password) in [
        ("alice", "wrong password"),
        ("alice", ""),
        ("", PASSWORD),
        ("ALICE", "x"),
    ] {
        let resp = app.login(&login, user, password).await;
        assert!(
            set_cookie(&resp).is_none(),
            "{user}/{password}: no new session"
        );
        let page = assert_page(resp, 200, "wrong password").await;
        assert!(page.contains("Invalid username or password"), "{page}");
        assert!(
            page.contains("name=\"password\""),
            "the form is shown again"
        );
        let echoed = page.contains("wrong password") || page.contains(PASSWORD);
        assert!(!echoed, "password never echoed");
    }
    // The session has no user: consent sends back to login, and no code can be had.
    let interaction = relative_query(&app, &login)["interaction"].clone();
    let consent = format!("/consent?interaction={}", encode_value(&interaction));
    let resp = app.browse(&consent).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert!(location(&resp).starts_with("/login?"), "not logged in");
    let (_, csrf) = form_fields(&app, &app.browser, &login).await;
    let form = consent_form(&interaction, &csrf, "approve");
    let resp = app.browser_post("/consent", &form).await;
    assert_bad_request_page(resp, "consent without login").await;
    let resp = app.authorize(&client, &[]).await;
    assert!(
        location(&resp).starts_with("/login?"),
        "still not logged in"
    );
    // The right password still works afterwards.
    let resp = app.login(&login, "alice", PASSWORD).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert!(location(&resp).starts_with("/consent?"));
}

both_backends!(already_logged_in_browser_skips_login);
async fn already_logged_in_browser_skips_login(app: TestApp) {
    let client = app.spa_and_alice();
    let q = app.authorize_code(&client, "alice", &pkce(), &[]).await;
    assert!(q.contains_key("code"));
    // Signed in, consent remembered: the code comes at once.
    let resp = app.authorize(&client, &[]).await;
    assert_eq!(resp.status().as_u16(), 302);
    assert!(query_of(&location(&resp)).contains_key("code"));
    assert!(set_cookie(&resp).is_none(), "the existing session is kept");
    // prompt=consent asks again, without a new sign-in.
    let resp = app.authorize(&client, &[("prompt", Some("consent"))]).await;
    assert_eq!(resp.status().as_u16(), 303);
    let consent = location(&resp);
    assert!(
        consent.starts_with("/consent?interaction="),
        "logged-in browser goes to consent: {consent}"
    );
    let page = assert_page(app.browse(&consent).await, 200, "consent").await;
    assert!(page.contains("alice"), "{page}");
    let resp = app.consent(&consent, "approve").await;
    assert!(query_of(&location(&resp)).contains_key("code"));
    // Another browser is not logged in.
    let login = start(&app, &new_browser(), &client).await;
    assert!(login.starts_with("/login?"), "{login}");
}

both_backends!(client_update_takes_effect_on_the_next_authorization);
async fn client_update_takes_effect_on_the_next_authorization(app: TestApp) {
    let spa = app.spa();
    let moved = "http://127.0.0.1:5173/moved";
    gatehouse::registry::update_client(
        &mut app.conn(),
        &spa.id,
        gatehouse::registry::ClientChanges {
            redirect_uris: Some(vec![moved.to_owned()]),
            ..Default::default()
        },
        &gatehouse::registry::By::operator(app.now()),
    )
    .expect("update");
    let pkce = pkce();
    let old = app
        .get_authorize(&authz(&spa.id, &pkce.challenge, &[]))
        .await;
    assert_eq!(
        old.status().as_u16(),
        400,
        "the old redirect URI is no longer registered"
    );
    let new = app
        .get_authorize(&authz(
            &spa.id,
            &pkce.challenge,
            &[("redirect_uri", Some(moved))],
        ))
        .await;
    assert_eq!(new.status().as_u16(), 303);
}
