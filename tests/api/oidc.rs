//! OpenID Connect on the authorization code flow: discovery, ID tokens, nonce, prompt and
//! max_age, remembered consent (checklist 62, 63).

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

const NONCE: &str = "n-0S6_WzA2Mj";

/// A public SPA registered for OpenID Connect (and the API scope).
fn oidc_spa(app: &TestApp) -> TestClient {
    app.register(gatehouse::registry::NewClient {
        scopes: strings(&["openid", "profile", "email", "api:read"]),
        ..spa_registration()
    })
}

/// Alice with a profile.
fn alice_with_profile(app: &TestApp) -> String {
    let id = app.user("alice", &[]);
    app.set_profile("alice", "Alice Liddell", "alice@example.com", true);
    id
}

/// Signs in (or not, when the browser is signed in) and exchanges the code: the token response.
async fn oidc_tokens(
    app: &TestApp,
    client: &TestClient,
    extra: &[(&str, &str)],
) -> (Value, HashMap<String, String>) {
    let pkce = pkce();
    let q = app.authorize_code(client, "alice", &pkce, extra).await;
    let code = q
        .get("code")
        .unwrap_or_else(|| panic!("no code: {q:?}"))
        .clone();
    let body = app
        .token()
        .code(&code, &pkce.verifier)
        .client(client)
        .ok()
        .await;
    (body, q)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Verifies an ID token's signature with the published JWKS; returns header and claims.
async fn verified(app: &TestApp, id_token: &str) -> (Value, Value) {
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(app.jwks().await).expect("jwks");
    let header = jsonwebtoken::decode_header(id_token).expect("header");
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks.find(&kid).expect("the ID token's key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_aud = false;
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(id_token, &key, &validation).expect("signature verifies");
    jwt_parts(id_token)
}

/// `at_hash` of an access token signed with ES256 (the default key): the left half of SHA-256.
fn at_hash(access_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    b64(&digest.as_ref()[..16])
}

fn redirect_error(resp: &reqwest::Response) -> Option<String> {
    let loc = location(resp);
    loc.starts_with(REDIRECT)
        .then(|| query_of(&loc).get("error").cloned())
        .flatten()
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

both_backends!(discovery_is_the_metadata_document_with_openid_members);
async fn discovery_is_the_metadata_document_with_openid_members(app: TestApp) {
    let oidc = ok_json(app.get("/.well-known/openid-configuration").await).await;
    let oauth = ok_json(app.get("/.well-known/oauth-authorization-server").await).await;
    assert_eq!(oidc, oauth, "one source for both documents");
    assert_eq!(oidc["issuer"], app.issuer.as_str());
    assert_eq!(
        oidc["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        oidc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    for scope in ["openid", "profile", "email"] {
        assert!(
            oidc["scopes_supported"]
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s == scope)),
            "{scope}"
        );
    }
    assert_eq!(
        oidc["userinfo_endpoint"],
        format!("{}/userinfo", app.issuer).as_str()
    );
    assert_eq!(
        oidc["end_session_endpoint"],
        format!("{}/end_session", app.issuer).as_str()
    );
    assert_eq!(
        oidc["prompt_values_supported"],
        serde_json::json!(["none", "login", "consent"])
    );
    assert_eq!(oidc["claims_parameter_supported"], false);
    assert_eq!(oidc["request_parameter_supported"], false);
    assert_eq!(oidc["request_uri_parameter_supported"], false);
    let claims = oidc["claims_supported"].as_array().expect("claims");
    for claim in ["sub", "nonce", "auth_time", "at_hash", "name", "email"] {
        assert!(claims.iter().any(|c| c == claim), "{claim}");
    }
    // The advertised signing algorithm is the one ID tokens (and the JWKS) use.
    let algs = oidc["id_token_signing_alg_values_supported"].clone();
    let jwks = app.jwks().await;
    assert!(jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .all(|k| algs.as_array().expect("algs").contains(&k["alg"])));
    // The CORS preflight of the discovery document, as for the metadata.
    let resp = app
        .api
        .request(
            reqwest::Method::OPTIONS,
            app.url("/.well-known/openid-configuration"),
        )
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .expect("preflight");
    assert_eq!(resp.status().as_u16(), 204);
}

both_backends!(discovery_advertises_only_what_is_enforced);
async fn discovery_advertises_only_what_is_enforced(app: TestApp) {
    let client = oidc_spa(&app);
    alice_with_profile(&app);
    // response_types_supported is code only: the implicit and hybrid flows are refused.
    for response_type in ["id_token", "code id_token", "token id_token"] {
        let resp = app
            .authorize(&client, &[("response_type", Some(response_type))])
            .await;
        assert_eq!(
            redirect_error(&resp).as_deref(),
            Some("unsupported_response_type"),
            "{response_type}"
        );
    }
    // The claims and request parameters are not supported, and say so.
    for (param, error) in [
        ("claims", "invalid_request"),
        ("request", "request_not_supported"),
        ("request_uri", "request_uri_not_supported"),
        ("registration", "registration_not_supported"),
    ] {
        let resp = app
            .authorize(&client, &[("scope", Some("openid")), (param, Some("{}"))])
            .await;
        assert_eq!(redirect_error(&resp).as_deref(), Some(error), "{param}");
    }
    // Every advertised prompt value is accepted.
    for prompt in ["login", "consent"] {
        let resp = app
            .authorize(
                &client,
                &[("scope", Some("openid")), ("prompt", Some(prompt))],
            )
            .await;
        assert_continues(&resp, prompt);
    }
    let resp = app
        .authorize(
            &client,
            &[("scope", Some("openid")), ("prompt", Some("none"))],
        )
        .await;
    assert_eq!(redirect_error(&resp).as_deref(), Some("login_required"));
}

// ---------------------------------------------------------------------------------------------
// 62. The ID token
// ---------------------------------------------------------------------------------------------

both_backends!(rule62_id_token_claims_nonce_at_hash_and_auth_time);
async fn rule62_id_token_claims_nonce_at_hash_and_auth_time(app: TestApp) {
    let client = oidc_spa(&app);
    let user_id = alice_with_profile(&app);
    let signed_in_at = app.now();
    let (body, _) = oidc_tokens(
        &app,
        &client,
        &[("scope", "openid profile email api:read"), ("nonce", NONCE)],
    )
    .await;
    let id_token = s(&body, "id_token");
    let (header, claims) = verified(&app, &id_token).await;
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["alg"], "ES256", "asymmetric, the current key");
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["sub"], claims_of(&body)["sub"], "the same subject");
    assert_eq!(claims["aud"], client.id.as_str(), "aud is the client");
    assert_eq!(claims["azp"], client.id.as_str());
    assert_eq!(claims["nonce"], NONCE, "the nonce, exactly");
    assert_eq!(
        claims["at_hash"],
        at_hash(&s(&body, "access_token")).as_str()
    );
    assert!(claims["auth_time"].as_i64().expect("auth_time") >= signed_in_at);
    let iat = claims["iat"].as_i64().expect("iat");
    assert_eq!(claims["exp"].as_i64(), Some(iat + 300));
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["acr"], "urn:gatehouse:acr:pwd");
    assert!(claims["sid"].as_str().is_some_and(|s| s.len() >= 16));
    assert_eq!(claims["name"], "Alice Liddell");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    // Never an access token: introspection and the resource-server check refuse it.
    let rs = app.confidential();
    assert!(!app.is_active(&rs, &id_token).await);
}

both_backends!(profile_and_email_claims_only_with_their_scopes);
async fn profile_and_email_claims_only_with_their_scopes(app: TestApp) {
    let client = oidc_spa(&app);
    alice_with_profile(&app);
    let (body, _) = oidc_tokens(&app, &client, &[("scope", "openid")]).await;
    let (_, claims) = verified(&app, &s(&body, "id_token")).await;
    for claim in [
        "name",
        "preferred_username",
        "email",
        "email_verified",
        "nonce",
    ] {
        assert!(claims.get(claim).is_none(), "{claim} in {claims}");
    }
    let (body, _) = oidc_tokens(&app, &client, &[("scope", "openid email")]).await;
    let (_, claims) = verified(&app, &s(&body, "id_token")).await;
    assert_eq!(claims["email"], "alice@example.com");
    assert!(claims.get("name").is_none());
    // Without openid, no ID token at all.
    let (body, _) = oidc_tokens(&app, &client, &[("scope", "api:read")]).await;
    assert!(body.get("id_token").is_none(), "{body}");
}

both_backends!(refresh_issues_a_new_id_token_without_the_nonce);
async fn refresh_issues_a_new_id_token_without_the_nonce(app: TestApp) {
    let client = oidc_spa(&app);
    alice_with_profile(&app);
    let (body, _) = oidc_tokens(
        &app,
        &client,
        &[("scope", "openid profile"), ("nonce", NONCE)],
    )
    .await;
    let (_, first) = verified(&app, &s(&body, "id_token")).await;
    app.advance_clock(60);
    let refreshed = ok_json(app.refresh(&client, &s(&body, "refresh_token")).await).await;
    let (_, second) = verified(&app, &s(&refreshed, "id_token")).await;
    for same in ["iss", "sub", "aud", "auth_time", "sid", "amr", "name"] {
        assert_eq!(first[same], second[same], "{same}");
    }
    assert!(second.get("nonce").is_none(), "no nonce after a refresh");
    let (first_iat, second_iat) = (
        first["iat"].as_i64().expect("iat"),
        second["iat"].as_i64().expect("iat"),
    );
    assert!(
        (first_iat + 60..first_iat + 70).contains(&second_iat),
        "a new iat"
    );
    assert_eq!(
        second["at_hash"],
        at_hash(&s(&refreshed, "access_token")).as_str()
    );
    // A refresh narrowed to a scope without openid gets no ID token.
    let narrowed = ok_json(
        app.token()
            .refresh(&s(&refreshed, "refresh_token"))
            .param("scope", "profile")
            .client(&client)
            .send()
            .await,
    )
    .await;
    assert!(narrowed.get("id_token").is_none(), "{narrowed}");
}

both_backends!(nonce_is_bounded_and_used_once_per_session);
async fn nonce_is_bounded_and_used_once_per_session(app: TestApp) {
    let client = oidc_spa(&app);
    alice_with_profile(&app);
    oidc_tokens(&app, &client, &[("scope", "openid"), ("nonce", NONCE)]).await;
    // The same nonce again in this browser session: refused at the redirect URI.
    let resp = app
        .authorize(
            &client,
            &[("scope", Some("openid")), ("nonce", Some(NONCE))],
        )
        .await;
    assert_eq!(redirect_error(&resp).as_deref(), Some("invalid_request"));
    // A fresh nonce is fine; so is the old one in another browser.
    let resp = app
        .authorize(
            &client,
            &[("scope", Some("openid")), ("nonce", Some("fresh-1"))],
        )
        .await;
    assert!(query_of(&location(&resp)).contains_key("code"));
    let other = new_browser();
    let resp = get_with(
        &other,
        &app.url(&format!(
            "/authorize?{}",
            authz(
                &client.id,
                &pkce().challenge,
                &[("scope", Some("openid")), ("nonce", Some(NONCE))]
            )
        )),
    )
    .await;
    assert_continues(&resp, "another browser");
    // Too long.
    let long = "n".repeat(256);
    let resp = app
        .authorize(
            &client,
            &[("scope", Some("openid")), ("nonce", Some(&long))],
        )
        .await;
    assert_eq!(redirect_error(&resp).as_deref(), Some("invalid_request"));
}

// ---------------------------------------------------------------------------------------------
// 63. prompt, max_age, login_hint
// ---------------------------------------------------------------------------------------------

both_backends!(rule63_prompt_none_never_shows_a_page);
async fn rule63_prompt_none_never_shows_a_page(app: TestApp) {
    let client = oidc_spa(&app);
    alice_with_profile(&app);
    let none = |extra: &'static str| [("scope", Some(extra)), ("prompt", Some("none"))];
    // Nobody signed in: login_required at the redirect URI, no session started.
    let resp = app.authorize(&client, &none("openid")).await;
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(redirect_error(&resp).as_deref(), Some("login_required"));
    assert!(
        header(&resp, "set-cookie").is_none(),
        "no session for prompt=none"
    );
    assert_eq!(query_of(&location(&resp))["state"], STATE);
    // Signed in for `openid` only: `openid profile` needs consent.
    oidc_tokens(&app, &client, &[("scope", "openid")]).await;
    let resp = app.authorize(&client, &none("openid profile")).await;
    assert_eq!(redirect_error(&resp).as_deref(), Some("consent_required"));
    // What was allowed comes at once.
    let resp = app.authorize(&client, &none("openid")).await;
    assert_eq!(resp.status().as_u16(), 302);
    assert!(query_of(&location(&resp)).contains_key("code"));
    // An unregistered redirect URI is never redirected to, prompt=none or not.
    let resp = app
        .authorize(
            &client,
            &[
                ("prompt", Some("none")),
                ("redirect_uri", Some("https://evil.example/cb")),
            ],
        )
        .await;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(header(&resp, "location").is_none());
    // prompt=none with another value, and unknown values: invalid_request.
    for prompt in ["none login", "consent none", "select_account", "bogus"] {
        let resp = app.authorize(&client, &[("prompt", Some(prompt))]).await;
        assert_eq!(
            redirect_error(&resp).as_deref(),
            Some("invalid_request"),
            "{prompt}"
        );
    }
}

both_backends!(rule63_prompt_none_needing_a_second_factor_is_interaction_required);
async fn rule63_prompt_none_needing_a_second_factor_is_interaction_required(app: TestApp) {
    let client = oidc_spa(&app);
    alice_with_profile(&app);
    oidc_tokens(&app, &client, &[("scope", "openid")]).await;
    let strict = app.register(gatehouse::registry::NewClient {
        scopes: strings(&["openid"]),
        require_mfa: true,
        ..spa_registration()
    });
    let resp = app
        .authorize(
            &strict,
            &[("scope", Some("openid")), ("prompt", Some("none"))],
        )
        .await;
    assert_eq!(
        redirect_error(&resp).as_deref(),
        Some("interaction_required")
    );
}

both_backends!(prompt_login_and_max_age_sign_in_again_and_auth_time_follows);
async fn prompt_login_and_max_age_sign_in_again_and_auth_time_follows(app: TestApp) {
    let client = oidc_spa(&app);
    alice_with_profile(&app);
    let (body, _) = oidc_tokens(&app, &client, &[("scope", "openid")]).await;
    let (_, first) = verified(&app, &s(&body, "id_token")).await;
    app.advance_clock(120);
    // max_age within the sign-in's age: no new sign-in.
    let (body, _) = oidc_tokens(&app, &client, &[("scope", "openid"), ("max_age", "600")]).await;
    let (_, same) = verified(&app, &s(&body, "id_token")).await;
    assert_eq!(same["auth_time"], first["auth_time"]);
    // max_age shorter than the sign-in's age: the login page, and auth_time moves.
    let resp = app
        .authorize(
            &client,
            &[("scope", Some("openid")), ("max_age", Some("60"))],
        )
        .await;
    assert!(
        location(&resp).starts_with("/login?"),
        "{}",
        location(&resp)
    );
    let (body, _) = oidc_tokens(&app, &client, &[("scope", "openid"), ("max_age", "60")]).await;
    let (_, later) = verified(&app, &s(&body, "id_token")).await;
    let (first_at, later_at) = (
        first["auth_time"].as_i64().expect("auth_time"),
        later["auth_time"].as_i64().expect("auth_time"),
    );
    // The test clock moved 120 s; the wall clock a moment more.
    assert!(
        (first_at + 120..first_at + 130).contains(&later_at),
        "{later_at}"
    );
    // prompt=login: the login page although signed in a moment ago.
    app.advance_clock(5);
    let resp = app
        .authorize(
            &client,
            &[("scope", Some("openid")), ("prompt", Some("login"))],
        )
        .await;
    assert!(location(&resp).starts_with("/login?"));
    let (body, _) = oidc_tokens(&app, &client, &[("scope", "openid"), ("prompt", "login")]).await;
    let (_, again) = verified(&app, &s(&body, "id_token")).await;
    let again_at = again["auth_time"].as_i64().expect("auth_time");
    assert!(
        (later_at + 5..later_at + 15).contains(&again_at),
        "{again_at}"
    );
    // max_age that is not a number.
    for bad in ["soon", "-5", "1e3"] {
        let resp = app.authorize(&client, &[("max_age", Some(bad))]).await;
        assert_eq!(
            redirect_error(&resp).as_deref(),
            Some("invalid_request"),
            "{bad}"
        );
    }
}

both_backends!(login_hint_fills_in_the_login_name);
async fn login_hint_fills_in_the_login_name(app: TestApp) {
    let client = oidc_spa(&app);
    alice_with_profile(&app);
    let resp = app
        .authorize(&client, &[("login_hint", Some("alice@example.com"))])
        .await;
    let page = app
        .browse(&location(&resp))
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("value=\"alice@example.com\""),
        "login_hint filled in: {page}"
    );
}

// ---------------------------------------------------------------------------------------------
// Remembered consent
// ---------------------------------------------------------------------------------------------

both_backends!(consent_is_remembered_asked_again_for_new_scopes_and_withdrawn);
async fn consent_is_remembered_asked_again_for_new_scopes_and_withdrawn(app: TestApp) {
    let client = oidc_spa(&app);
    alice_with_profile(&app);
    let (body, _) = oidc_tokens(&app, &client, &[("scope", "openid profile")]).await;
    // The same scopes, or fewer: the code at once.
    for scope in ["openid profile", "openid"] {
        let resp = app.authorize(&client, &[("scope", Some(scope))]).await;
        assert_eq!(resp.status().as_u16(), 302, "{scope}");
        assert!(query_of(&location(&resp)).contains_key("code"));
    }
    // A new scope: the consent page, for the new set.
    let resp = app
        .authorize(&client, &[("scope", Some("openid profile email"))])
        .await;
    let consent = location(&resp);
    assert!(consent.starts_with("/consent?"), "{consent}");
    // prompt=consent asks even for what was allowed.
    let resp = app
        .authorize(
            &client,
            &[("scope", Some("openid")), ("prompt", Some("consent"))],
        )
        .await;
    assert!(location(&resp).starts_with("/consent?"));

    // The account page lists it; withdrawing ends the client's grants and asks again.
    let page = app.browse("/account/consents").await;
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(header(&page, "cache-control").as_deref(), Some("no-store"));
    let page = page.text().await.expect("page");
    assert!(page.contains("Test SPA"), "{page}");
    assert!(page.contains("See your name and username"), "{page}");
    let csrf = hidden(&page, "csrf");
    let forged = app
        .browser_post(
            "/account/consents",
            &[("csrf", "forged"), ("client_id", client.id.as_str())],
        )
        .await;
    assert_eq!(forged.status().as_u16(), 400);
    let withdrawn = app
        .browser_post(
            "/account/consents",
            &[("csrf", csrf.as_str()), ("client_id", client.id.as_str())],
        )
        .await;
    assert_eq!(withdrawn.status().as_u16(), 200);
    let text = withdrawn.text().await.expect("page");
    assert!(text.contains("Consent withdrawn"), "{text}");
    assert_oauth_error(
        app.refresh(&client, &s(&body, "refresh_token")).await,
        400,
        "invalid_grant",
    )
    .await;
    let resp = app.authorize(&client, &[("scope", Some("openid"))]).await;
    assert!(location(&resp).starts_with("/consent?"), "asked again");
    assert_eq!(app.audit_events_named("consent_withdrawn").len(), 1);
    assert_eq!(app.audit_events_named("consent_granted").len(), 1);
    // Another browser, not signed in, gets no list.
    let resp = get_with(&new_browser(), &app.url("/account/consents")).await;
    assert_eq!(resp.status().as_u16(), 401);
}

both_backends!(first_party_client_skips_consent);
async fn first_party_client_skips_consent(app: TestApp) {
    let client = oidc_spa(&app);
    alice_with_profile(&app);
    let mut stored = gatehouse::oauth::model::Client::find(&mut app.conn(), &client.id)
        .expect("read")
        .expect("client");
    stored.skip_consent = true;
    stored.update(&mut app.conn()).expect("update");
    let resp = app.authorize(&client, &[("scope", Some("openid"))]).await;
    let login = location(&resp);
    let resp = app.login(&login, "alice", PASSWORD).await;
    let consent = location(&resp);
    // The consent step answers with the code at once.
    let resp = app.browse(&consent).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert!(query_of(&location(&resp)).contains_key("code"));
}

both_backends!(
    consent_page_shows_configured_scope_descriptions,
    |s: &mut Settings| {
        s.consent
            .scope_descriptions
            .insert("api:read".into(), "Read your projects".into());
    }
);
async fn consent_page_shows_configured_scope_descriptions(app: TestApp) {
    let client = oidc_spa(&app);
    alice_with_profile(&app);
    let resp = app
        .authorize(&client, &[("scope", Some("openid email api:read"))])
        .await;
    let resp = app.login(&location(&resp), "alice", PASSWORD).await;
    let page = app
        .browse(&location(&resp))
        .await
        .text()
        .await
        .expect("page");
    for description in [
        "Read your projects",
        "See your e-mail address",
        "Sign you in with your account",
    ] {
        assert!(page.contains(description), "{description}: {page}");
    }
}
