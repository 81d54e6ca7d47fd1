//! The password and client-credentials grants, audiences (RFC 8707), scope limits and roles
//! (issue 4, points 1-4; SECURITY-CHECKLIST rules 24, 25, 27, 28, 31, 34, 50).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use gatehouse::registry::{self, NewClient};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

/// A second resource server a client may be registered for.
const SECOND: &str = "https://reports.example.com";

// ---------------------------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------------------------

/// Status, headers and JSON body of a response.
async fn read(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, headers, body)
}

/// Asserts a 200 token response and returns its JSON.
async fn ok_json(resp: reqwest::Response) -> Value {
    let (status, _, body) = read(resp).await;
    assert_eq!(status, 200, "expected success, got {body}");
    body
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v}"))
        .to_owned()
}

fn basic_of(client: &TestClient) -> String {
    basic(
        &client.id,
        client.secret.as_deref().expect("confidential client"),
    )
}

/// The claims of a token response's access token.
fn claims_of(body: &Value) -> Value {
    jwt_parts(&s(body, "access_token")).1
}

/// A space-separated scope as a set.
fn scope_set(scope: &str) -> BTreeSet<String> {
    scope.split(' ').map(str::to_owned).collect()
}

/// The `roles` claim as a set; `None` when the claim is absent.
fn roles_of(claims: &Value) -> Option<BTreeSet<String>> {
    claims.get("roles").map(|r| {
        r.as_array()
            .unwrap_or_else(|| panic!("roles is not an array: {claims}"))
            .iter()
            .map(|v| v.as_str().expect("role string").to_owned())
            .collect()
    })
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn parse_grant_types(items: &[&str]) -> Vec<gatehouse::oauth::model::GrantType> {
    items
        .iter()
        .map(|s| s.parse().expect("grant type"))
        .collect()
}

/// A confidential first-party client with the given grant types, two audiences.
fn confidential_with(app: &TestApp, grant_types: &[&str]) -> TestClient {
    app.register(NewClient {
        name: "First-party app".into(),
        confidential: true,
        grant_types: parse_grant_types(grant_types),
        scopes: strings(&["api:read", "api:write"]),
        audiences: strings(&[AUDIENCE, SECOND]),
        ..Default::default()
    })
}

/// A first-party client for the password grant with rotating refresh tokens.
fn password_client(app: &TestApp) -> TestClient {
    confidential_with(app, &["password", "refresh_token"])
}

/// A machine client for client_credentials.
fn machine_client(app: &TestApp) -> TestClient {
    confidential_with(app, &["client_credentials"])
}

/// A password-grant request authenticated with HTTP Basic.
async fn password_grant(
    app: &TestApp,
    client: &TestClient,
    username: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ];
    form.extend_from_slice(extra);
    app.post_form("/token", &form, Some(&basic_of(client)))
        .await
}

/// A client_credentials request authenticated with HTTP Basic.
async fn cc_grant(app: &TestApp, client: &TestClient, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    app.post_form("/token", &form, Some(&basic_of(client)))
        .await
}

/// Refreshes as a confidential client with HTTP Basic.
async fn refresh_basic(
    app: &TestApp,
    client: &TestClient,
    rt: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    form.extend_from_slice(extra);
    app.post_form("/token", &form, Some(&basic_of(client)))
        .await
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ascii header"))
}

// ---------------------------------------------------------------------------------------------
// 1. Password grant (rules 27, 28, 50)
// ---------------------------------------------------------------------------------------------

both_backends!(
    password_grant_issues_tokens_for_registered_first_party_clients,
    |app: TestApp| async move {
        let client = password_client(&app);
        let alice = app.user("alice", &["admin"]);

        let (status, headers, body) =
            read(password_grant(&app, &client, "alice", PASSWORD, &[]).await).await;
        assert_eq!(status, 200, "password grant should succeed: {body}");
        assert_eq!(body["token_type"], "Bearer", "{body}");
        assert!(body["expires_in"].as_i64().is_some_and(|e| e > 0), "{body}");
        assert_eq!(
            scope_set(&s(&body, "scope")),
            set(&["api:read", "api:write"]),
            "no scope asked: everything the client may have"
        );
        let cc = header(&headers, "cache-control").unwrap_or_default();
        assert!(cc.contains("no-store"), "Cache-Control {cc:?}");

        let (jwt_header, claims) = jwt_parts(&s(&body, "access_token"));
        assert_eq!(jwt_header["typ"], "at+jwt", "{jwt_header}");
        assert!(
            ["ES256", "RS256", "EdDSA"].contains(&jwt_header["alg"].as_str().unwrap_or("")),
            "asymmetric alg expected: {jwt_header}"
        );
        assert!(jwt_header["kid"].is_string(), "{jwt_header}");
        assert_eq!(claims["sub"], alice.as_str(), "{claims}");
        assert_eq!(claims["client_id"], client.id.as_str(), "{claims}");
        assert_eq!(
            claims["aud"], AUDIENCE,
            "first audience by default: {claims}"
        );
        assert_eq!(claims["iss"], app.issuer.as_str(), "{claims}");
        assert_eq!(roles_of(&claims), Some(set(&["admin"])), "{claims}");
        assert!(
            claims["jti"].is_string() && claims["exp"].is_i64(),
            "{claims}"
        );
        let info = app.introspect(&client, &s(&body, "access_token")).await;
        assert_eq!(info["active"], true, "{info}");

        // The refresh token rotates: a new one each time, the old one dead.
        let rt1 = s(&body, "refresh_token");
        let next = ok_json(refresh_basic(&app, &client, &rt1, &[]).await).await;
        let rt2 = s(&next, "refresh_token");
        assert_ne!(rt1, rt2, "refresh must rotate");
        let next_claims = claims_of(&next);
        assert_eq!(next_claims["sub"], alice.as_str(), "{next_claims}");
        assert_eq!(
            roles_of(&next_claims),
            Some(set(&["admin"])),
            "{next_claims}"
        );
        assert_oauth_error(
            refresh_basic(&app, &client, &rt1, &[]).await,
            400,
            "invalid_grant",
        )
        .await;
        // Presenting the rotated token again was a reuse: the family is gone.
        assert_oauth_error(
            refresh_basic(&app, &client, &rt2, &[]).await,
            400,
            "invalid_grant",
        )
        .await;

        // A client registered with the password grant only gets no refresh token.
        let no_refresh = confidential_with(&app, &["password"]);
        let body = ok_json(password_grant(&app, &no_refresh, "alice", PASSWORD, &[]).await).await;
        assert!(body.get("refresh_token").is_none(), "{body}");

        // Clients not registered for the password grant are refused, even with a right password.
        for other in [app.confidential(), machine_client(&app)] {
            assert_oauth_error(
                password_grant(&app, &other, "alice", PASSWORD, &[]).await,
                400,
                "unauthorized_client",
            )
            .await;
        }

        // A public client cannot even be registered with it.
        for grant in ["password", "client_credentials"] {
            let req = NewClient {
                name: "Public app".into(),
                confidential: false,
                redirect_uris: vec![REDIRECT.into()],
                grant_types: parse_grant_types(&["authorization_code", "refresh_token", grant]),
                scopes: strings(&["api:read"]),
                audiences: strings(&[AUDIENCE]),
                ..Default::default()
            };
            let err = registry::create_client(&mut app.conn(), &req, gatehouse::state::now())
                .expect_err("a public client must not get the {grant} grant");
            let msg = err.to_string();
            assert!(
                msg.contains(grant) && msg.contains("confidential"),
                "the refusal should name the grant and say why: {msg:?}"
            );
        }
    }
);

both_backends!(
    password_grant_same_answer_for_unknown_user_and_wrong_password,
    |app: TestApp| async move {
        let client = password_client(&app);
        app.user("alice", &[]);
        app.user("bob", &["ops"]);
        registry::disable_user(&mut app.conn(), "bob", gatehouse::state::now())
            .expect("disable bob");

        let wrong =
            read(password_grant(&app, &client, "alice", "not the password", &[]).await).await;
        let unknown = read(password_grant(&app, &client, "mallory", PASSWORD, &[]).await).await;
        let disabled = read(password_grant(&app, &client, "bob", PASSWORD, &[]).await).await;
        assert_eq!(wrong.0, 400, "{}", wrong.2);
        assert_eq!(wrong.2["error"], "invalid_grant", "{}", wrong.2);
        for (what, other) in [("unknown user", &unknown), ("disabled user", &disabled)] {
            assert_eq!(
                other.0, wrong.0,
                "{what}: status differs from a wrong password"
            );
            assert_eq!(
                other.2, wrong.2,
                "{what}: body differs from a wrong password"
            );
            assert_eq!(
                header(&other.1, "www-authenticate"),
                header(&wrong.1, "www-authenticate"),
                "{what}"
            );
        }

        // Missing parameters are a malformed request.
        for form in [
            vec![("grant_type", "password"), ("password", PASSWORD)],
            vec![("grant_type", "password"), ("username", "alice")],
        ] {
            assert_oauth_error(
                app.post_form("/token", &form, Some(&basic_of(&client)))
                    .await,
                400,
                "invalid_request",
            )
            .await;
        }

        // Same cost (rule 50): with a real argon2 cost, an unknown user is not answered faster
        // (or slower) than a wrong password. Fastest of several tries, interleaved.
        let pg_base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL").ok();
        let slow = spawn_with(app.db, pg_base, |s| {
            s.passwords.memory_kib = 16 * 1024;
            s.passwords.iterations = 2;
        })
        .await;
        let client = password_client(&slow);
        slow.user("alice", &[]);
        let mut known = Duration::MAX;
        let mut missing = Duration::MAX;
        for _ in 0..7 {
            for (user, best) in [("alice", &mut known), ("mallory", &mut missing)] {
                let started = Instant::now();
                let resp = password_grant(&slow, &client, user, "not the password", &[]).await;
                assert_oauth_error(resp, 400, "invalid_grant").await;
                *best = (*best).min(started.elapsed());
            }
        }
        // A skipped dummy hash would make the unknown user ~100x faster; a wide bound keeps the
        // check decisive on a loaded, shared machine without making it flaky.
        let ratio = missing.as_secs_f64() / known.as_secs_f64();
        assert!(
            (0.2..5.0).contains(&ratio),
            "unknown user took {missing:?}, wrong password {known:?}: the cost differs"
        );
    }
);

// ---------------------------------------------------------------------------------------------
// 2. Client credentials (rules 24, 25, 27, 34)
// ---------------------------------------------------------------------------------------------

both_backends!(
    client_credentials_token_has_client_subject_and_no_refresh,
    |app: TestApp| async move {
        // Registered with refresh_token too: client_credentials still never returns one.
        let client = app.register(NewClient {
            name: "Machine".into(),
            confidential: true,
            grant_types: parse_grant_types(&["client_credentials", "refresh_token"]),
            scopes: strings(&["api:read", "api:write"]),
            audiences: strings(&[AUDIENCE]),
            ..Default::default()
        });
        let (status, headers, body) = read(cc_grant(&app, &client, &[]).await).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.get("refresh_token").is_none(),
            "no refresh token: {body}"
        );
        assert_eq!(body["token_type"], "Bearer", "{body}");
        let cc = header(&headers, "cache-control").unwrap_or_default();
        assert!(cc.contains("no-store"), "Cache-Control {cc:?}");

        let (jwt_header, claims) = jwt_parts(&s(&body, "access_token"));
        assert_eq!(jwt_header["typ"], "at+jwt", "{jwt_header}");
        assert_eq!(claims["sub"], client.id.as_str(), "{claims}");
        assert!(s(&claims, "sub").starts_with("cl_"), "{claims}");
        assert_eq!(claims["client_id"], client.id.as_str(), "{claims}");
        assert_eq!(claims["aud"], AUDIENCE, "{claims}");
        assert_eq!(claims["iss"], app.issuer.as_str(), "{claims}");
        assert!(
            claims.get("roles").is_none(),
            "a client has no roles: {claims}"
        );
        let granted = scope_set(&s(&claims, "scope"));
        assert!(
            granted.is_subset(&set(&["api:read", "api:write"])),
            "scope beyond the allowed: {claims}"
        );
        assert_eq!(scope_set(&s(&body, "scope")), granted, "{body}");
        let info = app.introspect(&client, &s(&body, "access_token")).await;
        assert_eq!(info["active"], true, "{info}");
        assert_eq!(info["sub"], client.id.as_str(), "{info}");

        // Not registered for it: refused, whether confidential or public.
        assert_oauth_error(
            cc_grant(&app, &app.confidential(), &[]).await,
            400,
            "unauthorized_client",
        )
        .await;
        let spa = app.spa();
        assert_oauth_error(
            app.post_form(
                "/token",
                &[("grant_type", "client_credentials"), ("client_id", &spa.id)],
                None,
            )
            .await,
            400,
            "unauthorized_client",
        )
        .await;
    }
);

both_backends!(client_credentials_auth_methods, |app: TestApp| async move {
    let client = machine_client(&app);
    let secret = client.secret.clone().expect("secret");

    // client_secret_basic
    let body = ok_json(cc_grant(&app, &client, &[]).await).await;
    assert_eq!(claims_of(&body)["client_id"], client.id.as_str());
    // client_secret_post
    let body = ok_json(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(claims_of(&body)["client_id"], client.id.as_str());

    // Both at once: one method only.
    assert_oauth_error(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.id),
                ("client_secret", &secret),
            ],
            Some(&basic_of(&client)),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;

    // Bad secret, either method: 401 invalid_client with WWW-Authenticate.
    let bad_basic = read(
        app.post_form(
            "/token",
            &[("grant_type", "client_credentials")],
            Some(&basic(&client.id, "wrong-secret")),
        )
        .await,
    )
    .await;
    let bad_post = read(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.id),
                ("client_secret", "wrong-secret"),
            ],
            None,
        )
        .await,
    )
    .await;
    let no_secret = read(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.id),
            ],
            None,
        )
        .await,
    )
    .await;
    let unknown = read(
        app.post_form(
            "/token",
            &[("grant_type", "client_credentials")],
            Some(&basic("cl_doesnotexist", &secret)),
        )
        .await,
    )
    .await;
    for (what, (status, headers, body)) in [
        ("bad secret (basic)", &bad_basic),
        ("bad secret (post)", &bad_post),
        ("no secret", &no_secret),
        ("unknown client", &unknown),
    ] {
        assert_eq!(*status, 401, "{what}: {body}");
        assert_eq!(body["error"], "invalid_client", "{what}: {body}");
        let challenge = header(headers, "www-authenticate")
            .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
        assert!(
            challenge.to_ascii_lowercase().starts_with("basic"),
            "{what}: WWW-Authenticate {challenge:?}"
        );
        assert_eq!(body, &bad_basic.2, "{what}: body differs from a bad secret");
    }
});

// ---------------------------------------------------------------------------------------------
// 3. Scopes and audiences (rules 31; RFC 6749 §3.3, RFC 8707)
// ---------------------------------------------------------------------------------------------

both_backends!(
    requested_scope_limited_to_client_scopes,
    |app: TestApp| async move {
        let pw = password_client(&app);
        let machine = machine_client(&app);
        app.user("alice", &[]);

        for scope in [
            "admin",
            "api:read admin",
            "api:read  api:write",
            " api:read",
            "api:read ",
            "api:read\tapi:write",
            "api:read api:read",
        ] {
            let extra = [("scope", scope)];
            let body = assert_oauth_error(
                password_grant(&app, &pw, "alice", PASSWORD, &extra).await,
                400,
                "invalid_scope",
            )
            .await;
            assert!(body["error_description"].is_string(), "{scope:?}: {body}");
            assert_oauth_error(cc_grant(&app, &machine, &extra).await, 400, "invalid_scope").await;
        }

        // A subset is granted exactly, in the response and in the token.
        for (scope, expected) in [
            ("api:write", set(&["api:write"])),
            ("api:write api:read", set(&["api:read", "api:write"])),
        ] {
            let extra = [("scope", scope)];
            for body in [
                ok_json(password_grant(&app, &pw, "alice", PASSWORD, &extra).await).await,
                ok_json(cc_grant(&app, &machine, &extra).await).await,
            ] {
                assert_eq!(scope_set(&s(&body, "scope")), expected, "{scope:?}: {body}");
                let claims = claims_of(&body);
                assert_eq!(
                    scope_set(&s(&claims, "scope")),
                    expected,
                    "{scope:?}: {claims}"
                );
            }
        }
    }
);

both_backends!(
    resource_selects_one_of_several_audiences,
    |app: TestApp| async move {
        let machine = machine_client(&app);
        let pw = password_client(&app);
        app.user("alice", &[]);

        // client_credentials and password: no resource → first audience; resource → that one.
        for (resource, aud) in [
            (None, AUDIENCE),
            (Some(SECOND), SECOND),
            (Some(AUDIENCE), AUDIENCE),
        ] {
            let extra: Vec<(&str, &str)> = resource.map(|r| ("resource", r)).into_iter().collect();
            let body = ok_json(cc_grant(&app, &machine, &extra).await).await;
            assert_eq!(
                claims_of(&body)["aud"],
                aud,
                "client_credentials {resource:?}"
            );
            let body = ok_json(password_grant(&app, &pw, "alice", PASSWORD, &extra).await).await;
            assert_eq!(claims_of(&body)["aud"], aud, "password {resource:?}");
        }

        // Not registered, or malformed: invalid_target.
        for resource in [
            "https://other.example",
            "https://reports.example.com.evil.example",
            "reports.example.com",
            "/reports",
            "https://reports.example.com#frag",
            "https://reports.example.com#",
            "not a uri",
        ] {
            let extra = [("resource", resource)];
            let body = assert_oauth_error(
                cc_grant(&app, &machine, &extra).await,
                400,
                "invalid_target",
            )
            .await;
            assert!(
                body["error_description"].is_string(),
                "{resource:?}: {body}"
            );
            assert_oauth_error(
                password_grant(&app, &pw, "alice", PASSWORD, &extra).await,
                400,
                "invalid_target",
            )
            .await;
        }

        // The audience chosen by the password grant stays with its refresh token.
        let body =
            ok_json(password_grant(&app, &pw, "alice", PASSWORD, &[("resource", SECOND)]).await)
                .await;
        let next = ok_json(refresh_basic(&app, &pw, &s(&body, "refresh_token"), &[]).await).await;
        assert_eq!(
            claims_of(&next)["aud"],
            SECOND,
            "refresh keeps the audience"
        );
        assert_oauth_error(
            refresh_basic(
                &app,
                &pw,
                &s(&next, "refresh_token"),
                &[("resource", AUDIENCE)],
            )
            .await,
            400,
            "invalid_target",
        )
        .await;

        // The authorization code flow, for a public client with two audiences.
        let spa = app.register(NewClient {
            name: "Two-API SPA".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: strings(&["api:read", "api:write"]),
            audiences: strings(&[AUDIENCE, SECOND]),
            allowed_origins: vec![ORIGIN.into()],
            ..Default::default()
        });
        let p = pkce();
        let q = app
            .authorize_code(&spa, "alice", &p, &[("resource", SECOND)])
            .await;
        let body = ok_json(app.exchange(&spa, &q["code"], &p.verifier).await).await;
        assert_eq!(claims_of(&body)["aud"], SECOND, "code flow with resource");

        let p = pkce();
        let q = app.authorize_code(&spa, "alice", &p, &[]).await;
        let body = ok_json(app.exchange(&spa, &q["code"], &p.verifier).await).await;
        assert_eq!(
            claims_of(&body)["aud"],
            AUDIENCE,
            "code flow without resource"
        );

        // A resource on the token request must be the one authorized.
        let p = pkce();
        let q = app
            .authorize_code(&spa, "alice", &p, &[("resource", SECOND)])
            .await;
        let body = ok_json(
            app.post_form(
                "/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &q["code"]),
                    ("redirect_uri", REDIRECT),
                    ("client_id", &spa.id),
                    ("code_verifier", &p.verifier),
                    ("resource", SECOND),
                ],
                None,
            )
            .await,
        )
        .await;
        assert_eq!(claims_of(&body)["aud"], SECOND);
        let p = pkce();
        let q = app
            .authorize_code(&spa, "alice", &p, &[("resource", SECOND)])
            .await;
        assert_oauth_error(
            app.post_form(
                "/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &q["code"]),
                    ("redirect_uri", REDIRECT),
                    ("client_id", &spa.id),
                    ("code_verifier", &p.verifier),
                    ("resource", AUDIENCE),
                ],
                None,
            )
            .await,
            400,
            "invalid_target",
        )
        .await;

        // On /authorize, an unregistered or malformed resource redirects back with invalid_target.
        for resource in [
            "https://other.example",
            "https://reports.example.com#frag",
            "reports",
        ] {
            let p = pkce();
            let resp = app
                .get_authorize(&app.authorize_query(&spa, &p.challenge, &[("resource", resource)]))
                .await;
            let status = resp.status().as_u16();
            assert!(
                status == 302 || status == 303,
                "{resource:?}: expected a redirect, got {status}"
            );
            let loc = location(&resp);
            assert!(loc.starts_with(REDIRECT), "{resource:?}: {loc}");
            let q = query_of(&loc);
            assert_eq!(
                q.get("error").map(String::as_str),
                Some("invalid_target"),
                "{resource:?}: {loc}"
            );
            assert!(!q.contains_key("code"), "{loc}");
        }
    }
);

both_backends!(
    refresh_may_narrow_scope_never_widen_for_password_grant,
    |app: TestApp| async move {
        let client = password_client(&app);
        app.user("alice", &[]);

        // Narrower: this access token only.
        let body = ok_json(password_grant(&app, &client, "alice", PASSWORD, &[]).await).await;
        let narrow = ok_json(
            refresh_basic(
                &app,
                &client,
                &s(&body, "refresh_token"),
                &[("scope", "api:read")],
            )
            .await,
        )
        .await;
        assert_eq!(
            scope_set(&s(&narrow, "scope")),
            set(&["api:read"]),
            "{narrow}"
        );
        assert_eq!(
            scope_set(&s(&claims_of(&narrow), "scope")),
            set(&["api:read"])
        );
        // RFC 6749 §6: the successor refresh token keeps the original scope.
        let again =
            ok_json(refresh_basic(&app, &client, &s(&narrow, "refresh_token"), &[]).await).await;
        assert_eq!(
            scope_set(&s(&claims_of(&again), "scope")),
            set(&["api:read", "api:write"]),
            "{again}"
        );

        // Wider than granted: invalid_scope, and the token is not spent.
        let body = ok_json(
            password_grant(&app, &client, "alice", PASSWORD, &[("scope", "api:read")]).await,
        )
        .await;
        let rt = s(&body, "refresh_token");
        for scope in [
            "api:read api:write",
            "api:write",
            "admin",
            "api:read  api:read",
        ] {
            assert_oauth_error(
                refresh_basic(&app, &client, &rt, &[("scope", scope)]).await,
                400,
                "invalid_scope",
            )
            .await;
        }
        let after = ok_json(refresh_basic(&app, &client, &rt, &[]).await).await;
        assert_eq!(
            scope_set(&s(&after, "scope")),
            set(&["api:read"]),
            "{after}"
        );
        assert_eq!(
            scope_set(&s(&claims_of(&after), "scope")),
            set(&["api:read"])
        );
    }
);

// ---------------------------------------------------------------------------------------------
// 4. Roles
// ---------------------------------------------------------------------------------------------

both_backends!(roles_claim_follows_user_roles, |app: TestApp| async move {
    let pw = password_client(&app);
    let spa = app.spa();
    app.user("alice", &["admin", "ops"]);
    app.user("bob", &[]);
    let both = set(&["admin", "ops"]);

    // Password grant, its refresh, and the authorization code flow.
    let body = ok_json(password_grant(&app, &pw, "alice", PASSWORD, &[]).await).await;
    assert_eq!(roles_of(&claims_of(&body)), Some(both.clone()), "{body}");
    let next = ok_json(refresh_basic(&app, &pw, &s(&body, "refresh_token"), &[]).await).await;
    assert_eq!(
        roles_of(&claims_of(&next)),
        Some(both.clone()),
        "after refresh"
    );
    let body = app.tokens_for(&spa, "alice").await;
    assert_eq!(roles_of(&claims_of(&body)), Some(both.clone()), "code flow");

    // No roles: no claim at all.
    let body = ok_json(password_grant(&app, &pw, "bob", PASSWORD, &[]).await).await;
    let claims = claims_of(&body);
    assert!(claims.get("roles").is_none(), "{claims}");
    let next = ok_json(refresh_basic(&app, &pw, &s(&body, "refresh_token"), &[]).await).await;
    assert!(claims_of(&next).get("roles").is_none(), "after refresh");
});
