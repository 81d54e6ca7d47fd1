//! The authorization endpoint, login and consent pages (checklist 1-6, 14, 36, 40-44, 46-48, 50).

// Test code: the helpers below panic on a broken response, like the tests themselves.
#![allow(clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};

use gatehouse::registry::NewClient;
use reqwest::redirect::Policy;

use crate::both_backends;
use crate::helpers::*;

// ---------------------------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------------------------

/// The standard authorize parameters for `client_id`, with overrides: `Some(v)` replaces (or
/// adds) a parameter, `None` removes it.
fn authz(client_id: &str, challenge: &str, overrides: &[(&str, Option<&str>)]) -> String {
    let mut pairs: Vec<(String, String)> = vec![
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), REDIRECT.into()),
        ("response_type".into(), "code".into()),
        ("state".into(), "state-123".into()),
        ("code_challenge".into(), challenge.into()),
        ("code_challenge_method".into(), "S256".into()),
    ];
    for (k, v) in overrides {
        let pos = pairs.iter().position(|(name, _)| name == k);
        match (pos, v) {
            (Some(i), Some(v)) => pairs[i].1 = (*v).to_owned(),
            (Some(i), None) => {
                pairs.remove(i);
            }
            (None, Some(v)) => pairs.push(((*k).to_owned(), (*v).to_owned())),
            (None, None) => {}
        }
    }
    encode(
        &pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    )
}

/// Form-urlencodes pairs, in order (duplicates kept).
fn encode(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_owned())
}

fn set_cookie(resp: &reqwest::Response) -> Option<String> {
    header(resp, "set-cookie")
}

/// (name, value) of a Set-Cookie header.
fn cookie_pair(set_cookie: &str) -> (String, String) {
    let first = set_cookie.split(';').next().expect("cookie pair").trim();
    let (name, value) = first.split_once('=').expect("name=value");
    (name.to_owned(), value.to_owned())
}

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
    assert!(
        !body.to_ascii_lowercase().contains("internal error"),
        "{what}: {body}"
    );
    body
}

/// Asserts a 400 error page and returns its text.
async fn assert_bad_request_page(resp: reqwest::Response, what: &str) -> String {
    let body = assert_page(resp, 400, what).await;
    assert!(
        body.contains("This request cannot be completed"),
        "{what}: {body}"
    );
    body
}

/// Asserts an error redirect to exactly the registered redirect URI and returns its parameters.
fn assert_error_redirect(
    app: &TestApp,
    resp: &reqwest::Response,
    error: &str,
    state: Option<&str>,
    what: &str,
) -> HashMap<String, String> {
    let status = resp.status().as_u16();
    assert!(
        status == 302 || status == 303,
        "{what}: expected a redirect, got {status}"
    );
    let loc = location(resp);
    let url = url::Url::parse(&loc).expect("absolute redirect");
    assert_eq!(
        format!("{}{}", url.origin().ascii_serialization(), url.path()),
        REDIRECT,
        "{what}: redirect target"
    );
    assert!(url.fragment().is_none(), "{what}: no fragment in {loc}");
    let q = query_of(&loc);
    assert_eq!(
        q.get("error").map(String::as_str),
        Some(error),
        "{what}: error in {loc}"
    );
    assert_eq!(
        q.get("state").map(String::as_str),
        state,
        "{what}: state in {loc}"
    );
    assert_eq!(q.get("iss"), Some(&app.issuer), "{what}: iss in {loc}");
    assert!(
        !q.contains_key("code"),
        "{what}: an error must carry no code: {loc}"
    );
    q
}

fn assert_security_headers(resp: &reqwest::Response, what: &str) {
    let xfo = header(resp, "x-frame-options").unwrap_or_default();
    assert!(
        xfo.eq_ignore_ascii_case("DENY"),
        "{what}: X-Frame-Options {xfo:?}"
    );
    let csp = header(resp, "content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{what}: CSP {csp:?}"
    );
    let nosniff = header(resp, "x-content-type-options").unwrap_or_default();
    assert!(
        nosniff.eq_ignore_ascii_case("nosniff"),
        "{what}: X-Content-Type-Options {nosniff:?}"
    );
    let referrer = header(resp, "referrer-policy").unwrap_or_default();
    assert!(
        referrer.eq_ignore_ascii_case("no-referrer"),
        "{what}: Referrer-Policy {referrer:?}"
    );
    let cache = header(resp, "cache-control").unwrap_or_default();
    assert!(
        cache.contains("no-store"),
        "{what}: Cache-Control {cache:?}"
    );
}

/// A second, independent browser: its own cookie jar, no redirects followed.
fn other_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("browser")
}

async fn get_with(browser: &reqwest::Client, url: &str) -> reqwest::Response {
    browser.get(url).send().await.expect("GET")
}

async fn post_with(
    browser: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    browser.post(url).form(form).send().await.expect("POST")
}

/// The hidden interaction and csrf fields of the page at `location`, fetched with `browser`.
async fn form_fields(app: &TestApp, browser: &reqwest::Client, location: &str) -> (String, String) {
    let resp = get_with(browser, &app.url(location)).await;
    let page = assert_page(resp, 200, location).await;
    (hidden(&page, "interaction"), hidden(&page, "csrf"))
}

/// `/authorize` for `client` in `browser`; returns the login (or consent) location.
async fn start(app: &TestApp, browser: &reqwest::Client, client: &TestClient) -> String {
    let pkce = pkce();
    let resp = get_with(
        browser,
        &app.url(&format!(
            "/authorize?{}",
            authz(&client.id, &pkce.challenge, &[])
        )),
    )
    .await;
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

/// A second server like `app` (same backend) with tweaked settings.
async fn spawn_like(
    app: &TestApp,
    tweak: impl FnOnce(&mut gatehouse::config::Settings),
) -> TestApp {
    match app.db {
        Db::Sqlite => spawn_with(Db::Sqlite, None, tweak).await,
        Db::Postgres => {
            let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL").expect("postgres URL");
            spawn_with(Db::Postgres, Some(base), tweak).await
        }
    }
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
    page.replace("&#60;", "&lt;")
        .replace("&#x3c;", "&lt;")
        .replace("&#x3C;", "&lt;")
        .replace("&#62;", "&gt;")
        .replace("&#x3e;", "&gt;")
        .replace("&#x3E;", "&gt;")
        .replace("&#34;", "&quot;")
        .replace("&#x22;", "&quot;")
        .replace("&#39;", "&apos;")
        .replace("&#x27;", "&apos;")
        .replace("&#38;", "&amp;")
        .replace("&#x26;", "&amp;")
}

fn assert_no_third_party_assets(page: &str, what: &str) {
    assert!(
        !page.to_ascii_lowercase().contains("<script"),
        "{what}: has a script tag"
    );
    for tag in ["link", "script", "img", "iframe"] {
        for t in tags(page, tag) {
            let t = t.to_ascii_lowercase();
            assert!(
                !t.contains("http:") && !t.contains("https:") && !t.contains("\"//"),
                "{what}: third-party asset in {t}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. redirect_uri exact match
// ---------------------------------------------------------------------------------------------

both_backends!(redirect_uri_exact_match, |app: TestApp| async move {
    let client = app.spa();
    let https_client = app.register(NewClient {
        name: "Https app".into(),
        redirect_uris: vec!["https://app.example/cb".into()],
        scopes: vec!["api:read".into()],
        audiences: vec![AUDIENCE.into()],
        ..Default::default()
    });
    let pkce = pkce();
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
        let resp = app
            .get_authorize(&authz(
                &client.id,
                &pkce.challenge,
                &[("redirect_uri", Some(bad))],
            ))
            .await;
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
            .get_authorize(&authz(
                &https_client.id,
                &pkce.challenge,
                &[("redirect_uri", Some(bad))],
            ))
            .await;
        assert_bad_request_page(resp, bad).await;
    }
    // The registered URIs, character for character, are accepted.
    let resp = app
        .get_authorize(&authz(&client.id, &pkce.challenge, &[]))
        .await;
    assert_eq!(
        resp.status().as_u16(),
        303,
        "the exact registered URI is accepted"
    );
    assert!(location(&resp).starts_with("/login?"));
    let resp = app
        .get_authorize(&authz(
            &https_client.id,
            &pkce.challenge,
            &[("redirect_uri", Some("https://app.example/cb"))],
        ))
        .await;
    assert_eq!(
        resp.status().as_u16(),
        303,
        "the exact registered https URI is accepted"
    );
    // A URI registered for another client is not registered for this one.
    let resp = app
        .get_authorize(&authz(
            &client.id,
            &pkce.challenge,
            &[("redirect_uri", Some("https://app.example/cb"))],
        ))
        .await;
    assert_bad_request_page(resp, "another client's redirect URI").await;
});

// ---------------------------------------------------------------------------------------------
// 2. bad client or redirect URI never redirects
// ---------------------------------------------------------------------------------------------

both_backends!(
    bad_client_or_redirect_never_redirects,
    |app: TestApp| async move {
        let client = app.spa();
        let pkce = pkce();
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "unknown client_id",
                authz("cl_does_not_exist", &pkce.challenge, &[]),
                "client_id",
            ),
            (
                "missing client_id",
                authz(&client.id, &pkce.challenge, &[("client_id", None)]),
                "client_id",
            ),
            (
                "empty client_id",
                authz(&client.id, &pkce.challenge, &[("client_id", Some(""))]),
                "client_id",
            ),
            (
                "missing redirect_uri",
                authz(&client.id, &pkce.challenge, &[("redirect_uri", None)]),
                "redirect_uri",
            ),
            (
                "unregistered redirect_uri",
                authz(
                    &client.id,
                    &pkce.challenge,
                    &[("redirect_uri", Some("https://evil.example/cb"))],
                ),
                "redirect_uri",
            ),
            (
                // Other errors are present too: the bad redirect URI still wins, no redirect.
                "unregistered redirect_uri with bad scope and no PKCE",
                authz(
                    &client.id,
                    &pkce.challenge,
                    &[
                        ("redirect_uri", Some("https://evil.example/cb")),
                        ("scope", Some("admin")),
                        ("code_challenge", None),
                        ("response_type", Some("token")),
                    ],
                ),
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
            assert!(
                !body.contains("evil.example"),
                "{what}: no link to the attacker's URI"
            );
        }
    }
);

// ---------------------------------------------------------------------------------------------
// 3. other authorize errors redirect with error, state and iss
// ---------------------------------------------------------------------------------------------

both_backends!(
    authorize_errors_redirect_with_state_and_iss,
    |app: TestApp| async move {
        let client = app.spa();
        let pkce = pkce();
        for scope in ["admin", "api:read admin", "api:read  api:write"] {
            let resp = app
                .get_authorize(&authz(
                    &client.id,
                    &pkce.challenge,
                    &[("scope", Some(scope))],
                ))
                .await;
            let q = assert_error_redirect(&app, &resp, "invalid_scope", Some("state-123"), scope);
            assert!(q.contains_key("error_description"));
        }
        // An unknown resource is an error for the client too.
        let resp = app
            .get_authorize(&authz(
                &client.id,
                &pkce.challenge,
                &[("resource", Some("https://other.example"))],
            ))
            .await;
        assert_error_redirect(
            &app,
            &resp,
            "invalid_target",
            Some("state-123"),
            "unknown resource",
        );
        // The state is returned verbatim, special characters included.
        let state = "a b&c=d/é";
        let resp = app
            .get_authorize(&authz(
                &client.id,
                &pkce.challenge,
                &[("scope", Some("admin")), ("state", Some(state))],
            ))
            .await;
        assert_error_redirect(
            &app,
            &resp,
            "invalid_scope",
            Some(state),
            "state round trip",
        );
        // A request within the allowed scopes is not an error.
        let resp = app
            .get_authorize(&authz(
                &client.id,
                &pkce.challenge,
                &[("scope", Some("api:read"))],
            ))
            .await;
        assert_eq!(resp.status().as_u16(), 303);
        assert!(location(&resp).starts_with("/login?"));
    }
);

// ---------------------------------------------------------------------------------------------
// 4-6. PKCE on the authorization request
// ---------------------------------------------------------------------------------------------

both_backends!(
    public_client_without_code_challenge_rejected,
    |app: TestApp| async move {
        let client = app.spa();
        let pkce = pkce();
        for (what, overrides) in [
            (
                "no challenge, no method",
                vec![("code_challenge", None), ("code_challenge_method", None)],
            ),
            ("method without challenge", vec![("code_challenge", None)]),
            ("empty challenge", vec![("code_challenge", Some(""))]),
        ] {
            let resp = app
                .get_authorize(&authz(&client.id, &pkce.challenge, &overrides))
                .await;
            let q = assert_error_redirect(&app, &resp, "invalid_request", Some("state-123"), what);
            assert!(
                q["error_description"].contains("code_challenge"),
                "{what}: {q:?}"
            );
        }
        // With a challenge the same request goes on to login.
        let resp = app
            .get_authorize(&authz(&client.id, &pkce.challenge, &[]))
            .await;
        assert_eq!(resp.status().as_u16(), 303);
        assert!(location(&resp).starts_with("/login?"));
    }
);

both_backends!(
    plain_or_unknown_challenge_method_rejected,
    |app: TestApp| async move {
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
                .get_authorize(&authz(
                    &client.id,
                    &pkce.challenge,
                    &[("code_challenge_method", method)],
                ))
                .await;
            let what = format!("method {method:?}");
            assert_error_redirect(&app, &resp, "invalid_request", Some("state-123"), &what);
        }
        // Plain with the verifier itself as the challenge (43 chars) is refused too.
        let resp = app
            .get_authorize(&authz(
                &client.id,
                &pkce.verifier,
                &[("code_challenge_method", Some("plain"))],
            ))
            .await;
        assert_error_redirect(
            &app,
            &resp,
            "invalid_request",
            Some("state-123"),
            "plain with verifier",
        );
        // The metadata advertises S256 only.
        let meta: serde_json::Value = app
            .api
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .expect("metadata")
            .json()
            .await
            .expect("metadata json");
        assert_eq!(
            meta["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        // S256 is accepted.
        let resp = app
            .get_authorize(&authz(&client.id, &pkce.challenge, &[]))
            .await;
        assert_eq!(resp.status().as_u16(), 303);
    }
);

both_backends!(
    malformed_code_challenge_rejected,
    |app: TestApp| async move {
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
            let q =
                assert_error_redirect(&app, &resp, "invalid_request", Some("state-123"), challenge);
            assert!(
                q["error_description"].contains("code_challenge"),
                "{challenge}: {q:?}"
            );
        }
        let resp = app.get_authorize(&authz(&client.id, &good, &[])).await;
        assert_eq!(
            resp.status().as_u16(),
            303,
            "a well-formed challenge is accepted"
        );
        assert!(location(&resp).starts_with("/login?"));
    }
);

// ---------------------------------------------------------------------------------------------
// 14. response_type / response_mode
// ---------------------------------------------------------------------------------------------

both_backends!(response_type_token_refused, |app: TestApp| async move {
    let client = app.spa();
    let pkce = pkce();
    for rt in [
        "token",
        "code token",
        "id_token",
        "code id_token",
        "token code",
        "CODE",
    ] {
        let resp = app
            .get_authorize(&authz(
                &client.id,
                &pkce.challenge,
                &[("response_type", Some(rt))],
            ))
            .await;
        assert_error_redirect(
            &app,
            &resp,
            "unsupported_response_type",
            Some("state-123"),
            rt,
        );
    }
    let resp = app
        .get_authorize(&authz(
            &client.id,
            &pkce.challenge,
            &[("response_type", None)],
        ))
        .await;
    assert_error_redirect(
        &app,
        &resp,
        "invalid_request",
        Some("state-123"),
        "no response_type",
    );
    for mode in ["fragment", "form_post", "query.jwt", "web_message"] {
        let resp = app
            .get_authorize(&authz(
                &client.id,
                &pkce.challenge,
                &[("response_mode", Some(mode))],
            ))
            .await;
        assert_error_redirect(&app, &resp, "invalid_request", Some("state-123"), mode);
    }
    let resp = app
        .get_authorize(&authz(
            &client.id,
            &pkce.challenge,
            &[("response_mode", Some("query"))],
        ))
        .await;
    assert_eq!(resp.status().as_u16(), 303, "response_mode=query is fine");
    assert!(location(&resp).starts_with("/login?"));
});

// ---------------------------------------------------------------------------------------------
// 36. iss on every authorization response
// ---------------------------------------------------------------------------------------------

both_backends!(
    iss_on_every_authorization_response,
    |app: TestApp| async move {
        let client = app.spa();
        app.user("alice", &[]);
        let pkce = pkce();
        // Success.
        let q = app.authorize_code(&client, "alice", &pkce, &[]).await;
        assert_eq!(q.get("iss"), Some(&app.issuer), "success redirect: {q:?}");
        assert_eq!(q.get("state").map(String::as_str), Some("state-123"));
        assert!(
            q.get("code").is_some_and(|c| c.len() >= 43),
            "code in {q:?}"
        );
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
            let resp = app
                .get_authorize(&authz(&client.id, &pkce.challenge, &overrides))
                .await;
            assert_error_redirect(&app, &resp, error, Some("state-123"), what);
        }
        // Without a state: iss still present, no state invented.
        let resp = app
            .get_authorize(&authz(
                &client.id,
                &pkce.challenge,
                &[("state", None), ("scope", Some("admin"))],
            ))
            .await;
        assert_error_redirect(&app, &resp, "invalid_scope", None, "no state");
        // The user says no.
        let resp = app
            .get_authorize(&authz(&client.id, &pkce.challenge, &[]))
            .await;
        assert_eq!(resp.status().as_u16(), 303);
        let consent = location(&resp);
        assert!(consent.starts_with("/consent?"), "logged in: {consent}");
        let resp = app.consent(&consent, "deny").await;
        assert_error_redirect(&app, &resp, "access_denied", Some("state-123"), "deny");
    }
);

// ---------------------------------------------------------------------------------------------
// 43. consent needs an explicit POST; deny gives access_denied; one answer per form
// ---------------------------------------------------------------------------------------------

both_backends!(
    consent_requires_explicit_post_and_deny_gives_access_denied,
    |app: TestApp| async move {
        let client = app.spa();
        app.user("alice", &[]);
        let consent = logged_in_consent(&app, &client, "alice").await;
        // GET shows the page, whatever the query says; it never redirects to the client.
        let resp = app.browse(&consent).await;
        let page = assert_page(resp, 200, "consent page").await;
        assert!(
            page.contains("Test SPA") && page.contains("decision"),
            "{page}"
        );
        assert!(page.contains("method=\"post\""), "{page}");
        let auto = format!("{consent}&decision=approve&csrf=x");
        let resp = app.browse(&auto).await;
        assert_page(resp, 200, "GET with decision=approve").await;
        // No decision or an unknown one: nothing is issued, the request stays open.
        let (interaction, csrf) = form_fields(&app, &app.browser, &consent).await;
        for decision in [None, Some("maybe"), Some("APPROVE")] {
            let mut form = vec![
                ("interaction", interaction.as_str()),
                ("csrf", csrf.as_str()),
            ];
            if let Some(d) = decision {
                form.push(("decision", d));
            }
            let resp = app.browser_post("/consent", &form).await;
            assert_bad_request_page(resp, &format!("decision {decision:?}")).await;
        }
        // Deny (the request was not approved by the GETs above).
        let deny = [
            ("interaction", interaction.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", "deny"),
        ];
        let resp = app.browser_post("/consent", &deny).await;
        assert_eq!(resp.status().as_u16(), 303);
        assert_error_redirect(&app, &resp, "access_denied", Some("state-123"), "deny");
        // The same form again, either way: one answer only.
        let resp = app.browser_post("/consent", &deny).await;
        assert_bad_request_page(resp, "deny twice").await;
        let approve = [
            ("interaction", interaction.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", "approve"),
        ];
        let resp = app.browser_post("/consent", &approve).await;
        assert_bad_request_page(resp, "approve after deny").await;
        // Approve then approve again.
        let resp = app
            .get_authorize(&authz(&client.id, &pkce().challenge, &[]))
            .await;
        let consent = location(&resp);
        let (interaction, csrf) = form_fields(&app, &app.browser, &consent).await;
        let approve = [
            ("interaction", interaction.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", "approve"),
        ];
        let resp = app.browser_post("/consent", &approve).await;
        assert_eq!(resp.status().as_u16(), 303);
        assert!(query_of(&location(&resp)).contains_key("code"));
        let resp = app.browser_post("/consent", &approve).await;
        assert_bad_request_page(resp, "approve twice").await;
        // Two submissions at once: exactly one answer.
        let resp = app
            .get_authorize(&authz(&client.id, &pkce().challenge, &[]))
            .await;
        let consent = location(&resp);
        let (interaction, csrf) = form_fields(&app, &app.browser, &consent).await;
        let approve = [
            ("interaction", interaction.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", "approve"),
        ];
        let (a, b) = tokio::join!(
            app.browser_post("/consent", &approve),
            app.browser_post("/consent", &approve)
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [303, 400], "parallel consent submissions");
    }
);

// ---------------------------------------------------------------------------------------------
// 42. CSRF token on login and consent; Origin check
// ---------------------------------------------------------------------------------------------

both_backends!(
    csrf_token_required_on_login_and_consent,
    |app: TestApp| async move {
        let client = app.spa();
        app.user("alice", &[]);
        let login = start(&app, &app.browser, &client).await;
        let (interaction, csrf) = form_fields(&app, &app.browser, &login).await;
        // A second browser with its own session and its own valid csrf.
        let other = other_browser();
        let other_login = start(&app, &other, &client).await;
        let (other_interaction, other_csrf) = form_fields(&app, &other, &other_login).await;
        assert_ne!(csrf, other_csrf);

        let creds = |csrf: Option<&'static str>| -> Vec<(&'static str, String)> {
            let mut f = vec![
                ("interaction", interaction.clone()),
                ("username", "alice".to_owned()),
                ("password", PASSWORD.to_owned()),
            ];
            if let Some(c) = csrf {
                f.push(("csrf", c.to_owned()));
            }
            f
        };
        let bad_forms: Vec<(&str, Vec<(&str, String)>)> = vec![
            ("no csrf", creds(None)),
            ("empty csrf", creds(Some(""))),
            (
                "wrong csrf",
                creds(Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
            ),
            ("another browser's csrf", {
                let mut f = creds(None);
                f.push(("csrf", other_csrf.clone()));
                f
            }),
            ("csrf with a suffix", {
                let mut f = creds(None);
                f.push(("csrf", format!("{csrf}x")));
                f
            }),
        ];
        for (what, form) in &bad_forms {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let resp = app.browser_post("/login", &form).await;
            assert!(set_cookie(&resp).is_none(), "{what}: no new session");
            assert_bad_request_page(resp, what).await;
        }
        // The other browser cannot use this browser's interaction, even with its csrf.
        let stolen = [
            ("interaction", interaction.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ];
        let resp = post_with(&other, &app.url("/login"), &stolen).await;
        assert!(set_cookie(&resp).is_none());
        assert_bad_request_page(resp, "stolen interaction and csrf").await;
        // A cross-site post is refused outright, even with the right csrf: by Origin, or by
        // Sec-Fetch-Site when the browser sends it.
        let cross_site: [(&str, Option<&str>); 5] = [
            ("https://evil.example", None),
            ("http://127.0.0.1:5173", None),
            ("null", Some("cross-site")),
            ("http://127.0.0.1:5173", Some("same-site")),
            (app.address.as_str(), Some("cross-site")),
        ];
        for (origin, fetch_site) in cross_site {
            let mut req = app.browser.post(app.url("/login")).header("Origin", origin);
            if let Some(site) = fetch_site {
                req = req.header("Sec-Fetch-Site", site);
            }
            let resp = req.form(&stolen).send().await.expect("POST");
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
        assert_eq!(
            resp.status().as_u16(),
            303,
            "not logged in: consent sends back to login"
        );
        assert!(location(&resp).starts_with("/login?"));
        // The genuine form works: what Chromium sends for our own page under
        // Referrer-Policy: no-referrer is `Origin: null` with `Sec-Fetch-Site: same-origin`.
        let resp = app
            .browser
            .post(app.url("/login"))
            .header("Origin", "null")
            .header("Sec-Fetch-Site", "same-origin")
            .form(&stolen)
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status().as_u16(), 303, "same-origin login");
        let consent = location(&resp);
        assert!(consent.starts_with("/consent?"));

        // Consent: the same checks.
        let (interaction, csrf) = form_fields(&app, &app.browser, &consent).await;
        for (what, token) in [
            ("no csrf", None),
            (
                "wrong csrf",
                Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ),
            ("another browser's csrf", Some(other_csrf.as_str())),
        ] {
            let mut form = vec![
                ("interaction", interaction.as_str()),
                ("decision", "approve"),
            ];
            if let Some(t) = token {
                form.push(("csrf", t));
            }
            let resp = app.browser_post("/consent", &form).await;
            assert_bad_request_page(resp, &format!("consent: {what}")).await;
        }
        let good = [
            ("interaction", interaction.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", "approve"),
        ];
        let resp = post_with(&other, &app.url("/consent"), &good).await;
        assert_bad_request_page(resp, "consent from another browser").await;
        let resp = app
            .browser
            .post(app.url("/consent"))
            .header("Origin", "https://evil.example")
            .form(&good)
            .send()
            .await
            .expect("POST");
        assert_page(resp, 403, "consent cross-site origin").await;
        // The forged attempts consumed nothing: the real form still gets its one code.
        let resp = app.browser_post("/consent", &good).await;
        assert_eq!(resp.status().as_u16(), 303);
        assert!(query_of(&location(&resp)).contains_key("code"));
        // The other browser's own flow is untouched and still not logged in.
        let other_form = [
            ("interaction", other_interaction.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ];
        let resp = post_with(&other, &app.url("/login"), &other_form).await;
        assert_bad_request_page(resp, "other browser with this browser's csrf").await;
    }
);

fn encode_value(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// 44. 303 after credential POSTs
// ---------------------------------------------------------------------------------------------

both_backends!(login_post_answers_303, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
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
    let resp = app
        .get_authorize(&authz(&client.id, &pkce().challenge, &[]))
        .await;
    let resp = app.consent(&location(&resp), "deny").await;
    assert_eq!(resp.status().as_u16(), 303, "consent deny answers 303");
    // A failed login is no redirect at all.
    let other = other_browser();
    let login = start(&app, &other, &client).await;
    assert!(login.starts_with("/login?"));
    let (interaction, csrf) = form_fields(&app, &other, &login).await;
    let resp = post_with(
        &other,
        &app.url("/login"),
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("username", "alice"),
            ("password", "nope"),
        ],
    )
    .await;
    assert_page(resp, 200, "failed login").await;
});

// ---------------------------------------------------------------------------------------------
// 46. session cookie
// ---------------------------------------------------------------------------------------------

both_backends!(session_cookie_flags, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
    let resp = app
        .get_authorize(&authz(&client.id, &pkce().challenge, &[]))
        .await;
    assert_eq!(resp.status().as_u16(), 303);
    let cookie = set_cookie(&resp).expect("a session cookie after /authorize");
    let login = location(&resp);
    let (name, before) = cookie_pair(&cookie);
    let attrs = cookie_attributes(&cookie);
    assert_eq!(name, "gatehouse_session", "{cookie}");
    assert!(attrs.contains(&"httponly".to_owned()), "{cookie}");
    assert!(attrs.contains(&"samesite=lax".to_owned()), "{cookie}");
    assert!(attrs.contains(&"path=/".to_owned()), "{cookie}");
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain")),
        "host-only cookie: {cookie}"
    );
    assert!(before.len() >= 43, "session id of 256 bits: {cookie}");
    // Plain http (loopback development): no Secure, or the browser could not send it back.
    assert!(!attrs.contains(&"secure".to_owned()), "{cookie}");

    // Login issues a new session id; the old one is dead.
    let resp = app.login(&login, "alice", PASSWORD).await;
    assert_eq!(resp.status().as_u16(), 303);
    let cookie = set_cookie(&resp).expect("a new session cookie after login");
    let (name, after) = cookie_pair(&cookie);
    assert_eq!(name, "gatehouse_session");
    assert_ne!(before, after, "login must change the session id");
    let attrs = cookie_attributes(&cookie);
    assert!(attrs.contains(&"httponly".to_owned()) && attrs.contains(&"samesite=lax".to_owned()));
    assert!(attrs.contains(&"path=/".to_owned()));
    let consent = location(&resp);
    let fixated = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let resp = fixated
        .get(app.url(&consent))
        .header("Cookie", format!("gatehouse_session={before}"))
        .send()
        .await
        .expect("GET");
    assert_bad_request_page(resp, "pre-login session id after login").await;
    let resp = fixated
        .get(app.url(&consent))
        .header("Cookie", format!("gatehouse_session={after}"))
        .send()
        .await
        .expect("GET");
    assert_page(resp, 200, "new session id").await;

    // An https issuer: __Host- prefix, Secure, HSTS.
    let secure = spawn_like(&app, |s| s.server.issuer = "https://auth.example".into()).await;
    let client = secure.spa();
    let resp = secure
        .get_authorize(&authz(&client.id, &pkce().challenge, &[]))
        .await;
    assert_eq!(resp.status().as_u16(), 303);
    let cookie = set_cookie(&resp).expect("session cookie");
    let (name, _) = cookie_pair(&cookie);
    let attrs = cookie_attributes(&cookie);
    assert_eq!(name, "__Host-gatehouse_session", "{cookie}");
    assert!(attrs.contains(&"secure".to_owned()), "{cookie}");
    assert!(attrs.contains(&"httponly".to_owned()), "{cookie}");
    assert!(attrs.contains(&"samesite=lax".to_owned()), "{cookie}");
    assert!(attrs.contains(&"path=/".to_owned()), "{cookie}");
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{cookie}");
    let hsts = header(&resp, "strict-transport-security").expect("HSTS on an https issuer");
    assert!(hsts.contains("max-age="), "{hsts}");
    let resp = secure.browse("/no-such-page").await;
    assert!(
        header(&resp, "strict-transport-security").is_some(),
        "HSTS on every response"
    );
});

// ---------------------------------------------------------------------------------------------
// 41. framing
// ---------------------------------------------------------------------------------------------

both_backends!(pages_forbid_framing, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
    let resp = app
        .get_authorize(&authz(&client.id, &pkce().challenge, &[]))
        .await;
    assert_security_headers(&resp, "authorize redirect");
    let login = location(&resp);
    let resp = app.browse(&login).await;
    assert_security_headers(&resp, "login page");
    assert_page(resp, 200, "login page").await;
    let resp = app.login(&login, "alice", PASSWORD).await;
    assert_security_headers(&resp, "login POST");
    let consent = location(&resp);
    let resp = app.browse(&consent).await;
    assert_security_headers(&resp, "consent page");
    assert_page(resp, 200, "consent page").await;
    let resp = app.get_authorize("client_id=nope").await;
    assert_security_headers(&resp, "400 page");
    assert_bad_request_page(resp, "400 page").await;
    let resp = app.browse("/no-such-page").await;
    assert_security_headers(&resp, "404 page");
    assert_page(resp, 404, "404 page").await;
    let resp = app
        .browser
        .post(app.url("/login"))
        .header("Origin", "https://evil.example")
        .form(&[("interaction", "x")])
        .send()
        .await
        .expect("POST");
    assert_security_headers(&resp, "403 page");
    assert_page(resp, 403, "403 page").await;
});

// ---------------------------------------------------------------------------------------------
// 47. escaping and no inline script
// ---------------------------------------------------------------------------------------------

both_backends!(
    pages_escape_client_name_and_no_inline_script,
    |app: TestApp| async move {
        let client = app.register(NewClient {
            name: "<script>alert(1)</script>".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: vec!["api:read".into(), "<img>".into()],
            audiences: vec![AUDIENCE.into()],
            allowed_origins: vec![ORIGIN.into()],
            ..Default::default()
        });
        app.user("alice", &[]);
        let resp = app
            .get_authorize(&authz(&client.id, &pkce().challenge, &[]))
            .await;
        let login = location(&resp);
        let resp = app.browse(&login).await;
        let csp = header(&resp, "content-security-policy").expect("CSP");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        let page = assert_page(resp, 200, "login").await;
        assert!(
            named_entities(&page).contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "client name escaped: {page}"
        );
        assert!(
            !page.to_ascii_lowercase().contains("<script"),
            "no script tag: {page}"
        );
        // The username echoed back after a failed login is escaped, attribute included.
        let (interaction, csrf) = form_fields(&app, &app.browser, &login).await;
        let evil_user = "\"><script>alert(2)</script>";
        let resp = app
            .browser_post(
                "/login",
                &[
                    ("interaction", &interaction),
                    ("csrf", &csrf),
                    ("username", evil_user),
                    ("password", "x"),
                ],
            )
            .await;
        let page = assert_page(resp, 200, "failed login").await;
        assert!(
            named_entities(&page).contains("&quot;&gt;&lt;script&gt;alert(2)"),
            "{page}"
        );
        assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
        assert!(!page.contains("\"><"), "attribute break-out: {page}");
        // Consent page: client name and scopes escaped.
        let resp = app.login(&login, "alice", PASSWORD).await;
        let consent = location(&resp);
        let resp = app.browse(&consent).await;
        let csp = header(&resp, "content-security-policy").expect("CSP");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let page = assert_page(resp, 200, "consent").await;
        assert!(
            named_entities(&page).contains("&lt;script&gt;alert(1)"),
            "{page}"
        );
        assert!(
            named_entities(&page).contains("&lt;img&gt;"),
            "scope escaped: {page}"
        );
        assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
        assert!(!page.to_ascii_lowercase().contains("<img"), "{page}");
        // Error pages have no script either.
        let resp = app
            .get_authorize("client_id=%3Cscript%3Ealert(3)%3C/script%3E")
            .await;
        let page = assert_bad_request_page(resp, "error page").await;
        assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
        let resp = app.browse("/%3Cscript%3E").await;
        let page = assert_page(resp, 404, "404").await;
        assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
    }
);

// ---------------------------------------------------------------------------------------------
// 40. no tokens in URLs, no third-party assets
// ---------------------------------------------------------------------------------------------

both_backends!(no_tokens_in_urls, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
    let resp = app
        .get_authorize(&authz(&client.id, &pkce().challenge, &[]))
        .await;
    let login = location(&resp);
    let keys: BTreeSet<String> = relative_query(&app, &login).into_keys().collect();
    assert_eq!(
        keys,
        BTreeSet::from(["interaction".to_owned()]),
        "login URL: {login}"
    );
    assert!(login.starts_with("/login?"));
    let resp = app.browse(&login).await;
    assert_eq!(
        header(&resp, "referrer-policy").as_deref(),
        Some("no-referrer")
    );
    let page = assert_page(resp, 200, "login").await;
    assert!(
        page.contains("action=\"/login\""),
        "form posts to /login with no query: {page}"
    );
    assert!(page.contains("type=\"password\""));
    assert_no_third_party_assets(&page, "login");
    let resp = app.login(&login, "alice", PASSWORD).await;
    let consent = location(&resp);
    assert!(consent.starts_with("/consent?"));
    let consent_q = relative_query(&app, &consent);
    let keys: BTreeSet<&String> = consent_q.keys().collect();
    assert_eq!(keys.len(), 1, "consent URL: {consent}");
    assert!(
        consent_q.contains_key("interaction"),
        "consent URL: {consent}"
    );
    let resp = app.browse(&consent).await;
    assert_eq!(
        header(&resp, "referrer-policy").as_deref(),
        Some("no-referrer")
    );
    let page = assert_page(resp, 200, "consent").await;
    assert!(page.contains("action=\"/consent\""), "{page}");
    assert_no_third_party_assets(&page, "consent");
    // The code appears only in the final redirect, never in our own URLs.
    let resp = app.consent(&consent, "approve").await;
    let final_location = location(&resp);
    let q = query_of(&final_location);
    let keys: BTreeSet<&str> = q.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["code", "state", "iss"]),
        "{final_location}"
    );
    assert!(!login.contains(&q["code"]) && !consent.contains(&q["code"]));
    assert_ne!(consent_q["interaction"], q["code"]);
    // Error pages: same.
    let resp = app.get_authorize("client_id=nope").await;
    assert_eq!(
        header(&resp, "referrer-policy").as_deref(),
        Some("no-referrer")
    );
    let page = assert_bad_request_page(resp, "400").await;
    assert_no_third_party_assets(&page, "400");
    // The stylesheet is ours.
    assert!(page.contains("href=\"/static/gatehouse.css\""), "{page}");
    let resp = app
        .api
        .get(app.url("/static/gatehouse.css"))
        .send()
        .await
        .expect("css");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = header(&resp, "content-type").unwrap_or_default();
    assert!(ct.starts_with("text/css"), "{ct}");
    assert!(
        !resp.text().await.expect("css").contains("@import"),
        "no imported third-party CSS"
    );
});

// ---------------------------------------------------------------------------------------------
// 48. login never redirects off site
// ---------------------------------------------------------------------------------------------

both_backends!(login_never_redirects_off_site, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
    let pkce = pkce();
    let resp = app
        .get_authorize(&authz(
            &client.id,
            &pkce.challenge,
            &[
                ("return_to", Some("https://evil.example")),
                ("next", Some("//evil.example/x")),
            ],
        ))
        .await;
    assert_eq!(resp.status().as_u16(), 303);
    let login = location(&resp);
    assert!(
        login.starts_with("/login?") && !login.contains("evil"),
        "{login}"
    );
    let with_next = format!("{login}&return_to=https%3A%2F%2Fevil.example&next=%2F%2Fevil.example");
    let (interaction, csrf) = form_fields(&app, &app.browser, &with_next).await;
    let resp = app
        .browser_post(
            "/login",
            &[
                ("interaction", &interaction),
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", PASSWORD),
                ("return_to", "https://evil.example"),
                ("next", "//evil.example/x"),
                ("redirect_uri", "https://evil.example/cb"),
            ],
        )
        .await;
    assert_eq!(resp.status().as_u16(), 303);
    let consent = location(&resp);
    assert!(
        consent.starts_with("/consent?"),
        "login goes to consent only: {consent}"
    );
    assert!(!consent.contains("evil"), "{consent}");
    let resp = app.consent(&consent, "approve").await;
    let done = location(&resp);
    assert!(done.starts_with(&format!("{REDIRECT}?")), "{done}");
    assert!(!done.contains("evil"), "{done}");
});

// ---------------------------------------------------------------------------------------------
// 50. no user enumeration
// ---------------------------------------------------------------------------------------------

both_backends!(no_user_enumeration_on_login, |app: TestApp| async move {
    let client = app.spa();
    app.user("alice", &[]);
    async fn attempt(app: &TestApp, client: &TestClient, username: &str) -> (u16, bool, String) {
        let login = start(app, &app.browser, client).await;
        let (interaction, csrf) = form_fields(app, &app.browser, &login).await;
        let resp = app
            .browser_post(
                "/login",
                &[
                    ("interaction", &interaction),
                    ("csrf", &csrf),
                    ("username", username),
                    ("password", "wrong password"),
                ],
            )
            .await;
        let status = resp.status().as_u16();
        let cookie = set_cookie(&resp).is_some();
        let page = resp.text().await.expect("page");
        let normalised = page
            .replace(&interaction, "INTERACTION")
            .replace(&csrf, "CSRF")
            .replace(&format!("value=\"{username}\""), "value=\"USER\"");
        (status, cookie, normalised)
    }
    let (unknown_status, unknown_cookie, unknown_page) = attempt(&app, &client, "mallory").await;
    let (known_status, known_cookie, known_page) = attempt(&app, &client, "alice").await;
    assert_eq!(unknown_status, 200);
    assert_eq!(known_status, 200);
    assert!(
        !unknown_cookie && !known_cookie,
        "no session change on failure"
    );
    assert!(
        unknown_page.contains("Invalid username or password"),
        "{unknown_page}"
    );
    assert!(
        known_page.contains("Invalid username or password"),
        "{known_page}"
    );
    assert_eq!(
        unknown_page, known_page,
        "pages must not tell the two cases apart"
    );
});

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

both_backends!(
    authorize_rejects_duplicate_and_oversized_params,
    |app: TestApp| async move {
        let client = app.spa();
        let pkce = pkce();
        let base = authz(&client.id, &pkce.challenge, &[]);
        let other = app.spa();
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
                authz(
                    &client.id,
                    &pkce.challenge,
                    &[("state", Some(&"s".repeat(4097)))],
                ),
            ),
            (
                "scope too long",
                authz(
                    &client.id,
                    &pkce.challenge,
                    &[("scope", Some(&"a".repeat(5000)))],
                ),
            ),
            (
                "redirect_uri too long",
                authz(
                    &client.id,
                    &pkce.challenge,
                    &[(
                        "redirect_uri",
                        Some(&format!("{REDIRECT}?{}", "a".repeat(4100))),
                    )],
                ),
            ),
            (
                "parameter name too long",
                format!("{base}&{}=1", "k".repeat(100)),
            ),
            (
                "too many parameters",
                format!(
                    "{base}&{}",
                    (0..40)
                        .map(|i| format!("p{i}=1"))
                        .collect::<Vec<_>>()
                        .join("&")
                ),
            ),
        ];
        for (what, query) in cases {
            let resp = app.get_authorize(&query).await;
            assert_bad_request_page(resp, what).await;
        }
        // At the limit is fine.
        let resp = app
            .get_authorize(&authz(
                &client.id,
                &pkce.challenge,
                &[("state", Some(&"s".repeat(4096)))],
            ))
            .await;
        assert_eq!(
            resp.status().as_u16(),
            303,
            "a 4096-character state is accepted"
        );
        assert!(location(&resp).starts_with("/login?"));
    }
);

both_backends!(
    login_with_expired_or_unknown_interaction_shows_readable_page,
    |app: TestApp| async move {
        let client = app.spa();
        app.user("alice", &[]);
        let bogus = "not-a-real-interaction-0123456789abcdefghijklmnop";
        async fn readable(resp: reqwest::Response, what: &str) {
            let body = assert_bad_request_page(resp, what).await;
            assert!(
                body.contains("expired") || body.contains("start again"),
                "{what}: {body}"
            );
        }
        // A browser with no session at all.
        let fresh = other_browser();
        readable(
            get_with(&fresh, &app.url(&format!("/login?interaction={bogus}"))).await,
            "GET no session",
        )
        .await;
        readable(
            get_with(&fresh, &app.url("/login")).await,
            "GET no interaction",
        )
        .await;
        readable(
            post_with(
                &fresh,
                &app.url("/login"),
                &[
                    ("interaction", bogus),
                    ("csrf", "x"),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ],
            )
            .await,
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
        readable(
            app.browse(&format!("/login?interaction={bogus}")).await,
            "GET bogus",
        )
        .await;
        let resp = app
            .browser_post(
                "/login",
                &[
                    ("interaction", bogus),
                    ("csrf", &csrf),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert!(set_cookie(&resp).is_none());
        readable(resp, "POST bogus").await;
        readable(
            app.browse(&format!("/consent?interaction={bogus}")).await,
            "consent GET bogus",
        )
        .await;
        readable(
            app.browser_post(
                "/consent",
                &[
                    ("interaction", bogus),
                    ("csrf", &csrf),
                    ("decision", "approve"),
                ],
            )
            .await,
            "consent POST bogus",
        )
        .await;
        let body = assert_bad_request_page(
            app.browse("/login?interaction=a&interaction=b").await,
            "duplicate",
        )
        .await;
        assert!(body.contains("interaction"), "{body}");

        // A real interaction that expired.
        let short = spawn_like(&app, |s| s.session.interaction_ttl_secs = 1).await;
        let client = short.spa();
        short.user("alice", &[]);
        let login = start(&short, &short.browser, &client).await;
        let (interaction, csrf) = form_fields(&short, &short.browser, &login).await;
        tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
        readable(short.browse(&login).await, "GET expired").await;
        let resp = short
            .browser_post(
                "/login",
                &[
                    ("interaction", &interaction),
                    ("csrf", &csrf),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert!(set_cookie(&resp).is_none());
        readable(resp, "POST expired").await;
    }
);

// ---------------------------------------------------------------------------------------------
// Login failures and existing sessions
// ---------------------------------------------------------------------------------------------

both_backends!(
    login_wrong_password_shows_error_and_no_session_user,
    |app: TestApp| async move {
        let client = app.spa();
        app.user("alice", &[]);
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
            assert!(
                !page.contains("wrong password") && !page.contains(PASSWORD),
                "password never echoed"
            );
        }
        // The session has no user: consent sends back to login, and no code can be had.
        let interaction = relative_query(&app, &login)["interaction"].clone();
        let consent = format!("/consent?interaction={}", encode_value(&interaction));
        let resp = app.browse(&consent).await;
        assert_eq!(resp.status().as_u16(), 303);
        assert!(location(&resp).starts_with("/login?"), "not logged in");
        let (_, csrf) = form_fields(&app, &app.browser, &login).await;
        let resp = app
            .browser_post(
                "/consent",
                &[
                    ("interaction", &interaction),
                    ("csrf", &csrf),
                    ("decision", "approve"),
                ],
            )
            .await;
        assert_bad_request_page(resp, "consent without login").await;
        let resp = app
            .get_authorize(&authz(&client.id, &pkce().challenge, &[]))
            .await;
        assert!(
            location(&resp).starts_with("/login?"),
            "still not logged in"
        );
        // The right password still works afterwards.
        let resp = app.login(&login, "alice", PASSWORD).await;
        assert_eq!(resp.status().as_u16(), 303);
        assert!(location(&resp).starts_with("/consent?"));
    }
);

both_backends!(
    already_logged_in_browser_skips_login,
    |app: TestApp| async move {
        let client = app.spa();
        app.user("alice", &[]);
        let q = app.authorize_code(&client, "alice", &pkce(), &[]).await;
        assert!(q.contains_key("code"));
        let resp = app
            .get_authorize(&authz(&client.id, &pkce().challenge, &[]))
            .await;
        assert_eq!(resp.status().as_u16(), 303);
        let consent = location(&resp);
        assert!(
            consent.starts_with("/consent?interaction="),
            "logged-in browser goes to consent: {consent}"
        );
        assert!(set_cookie(&resp).is_none(), "the existing session is kept");
        let resp = app.browse(&consent).await;
        let page = assert_page(resp, 200, "consent").await;
        assert!(page.contains("alice"), "{page}");
        let resp = app.consent(&consent, "approve").await;
        assert!(query_of(&location(&resp)).contains_key("code"));
        // Another browser is not logged in.
        let other = other_browser();
        let login = start(&app, &other, &client).await;
        assert!(login.starts_with("/login?"), "{login}");
    }
);
