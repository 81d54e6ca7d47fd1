//! The password and client-credentials grants, audiences (RFC 8707), scope limits and roles
//! (issue 4, points 1-4; SECURITY-CHECKLIST rules 24, 25, 27, 28, 31, 34, 50).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

const SECOND: &str = SECOND_AUDIENCE;

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

/// A password-grant request as alice, authenticated with HTTP Basic.
fn alice<'a>(app: &'a TestApp, client: &TestClient) -> OAuthRequest<'a> {
    app.token().password("alice", PASSWORD).basic(client)
}

/// A client_credentials request authenticated with HTTP Basic.
fn machine<'a>(app: &'a TestApp, client: &TestClient) -> OAuthRequest<'a> {
    app.token().client_credentials().basic(client)
}

/// A refresh of a token response's refresh token, authenticated with HTTP Basic.
fn refresh<'a>(app: &'a TestApp, client: &TestClient, tokens: &Value) -> OAuthRequest<'a> {
    app.token()
        .refresh(&s(tokens, "refresh_token"))
        .basic(client)
}

fn assert_cache_control_no_store(headers: &reqwest::header::HeaderMap) {
    let cc = header(headers, "cache-control").unwrap_or_default();
    assert!(cc.contains("no-store"), "Cache-Control {cc:?}");
}

// ---------------------------------------------------------------------------------------------
// 1. Password grant (rules 27, 28, 50)
// ---------------------------------------------------------------------------------------------

both_backends!(password_grant_issues_tokens_for_registered_first_party_clients);
async fn password_grant_issues_tokens_for_registered_first_party_clients(app: TestApp) {
    let client = app.password_client();
    let alice_id = app.user("alice", &["admin"]);

    let (status, headers, body) = alice(&app, &client).read().await;
    assert_eq!(status, 200, "password grant should succeed: {body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(body["expires_in"].as_i64().is_some_and(|e| e > 0), "{body}");
    assert_eq!(
        scope_set(&s(&body, "scope")),
        set(&["api:read", "api:write"]),
        "no scope asked: everything the client may have"
    );
    assert_cache_control_no_store(&headers);

    let (jwt_header, claims) = jwt_parts(&s(&body, "access_token"));
    assert_eq!(jwt_header["typ"], "at+jwt", "{jwt_header}");
    let alg = jwt_header["alg"].as_str().unwrap_or("");
    let asymmetric = ["ES256", "RS256", "EdDSA"].contains(&alg);
    assert!(asymmetric, "asymmetric alg expected: {jwt_header}");
    assert!(jwt_header["kid"].is_string(), "{jwt_header}");
    assert_eq!(claims["sub"], alice_id.as_str(), "{claims}");
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
    let next = refresh(&app, &client, &body).ok().await;
    assert_ne!(
        s(&body, "refresh_token"),
        s(&next, "refresh_token"),
        "refresh must rotate"
    );
    let next_claims = claims_of(&next);
    assert_eq!(next_claims["sub"], alice_id.as_str(), "{next_claims}");
    assert_eq!(
        roles_of(&next_claims),
        Some(set(&["admin"])),
        "{next_claims}"
    );
    refresh(&app, &client, &body)
        .fails(400, "invalid_grant")
        .await;
    // Presenting the rotated token again was a reuse: the family is gone.
    refresh(&app, &client, &next)
        .fails(400, "invalid_grant")
        .await;

    // A client registered with the password grant only gets no refresh token.
    let no_refresh = app.confidential_with(&["password"]);
    let body = alice(&app, &no_refresh).ok().await;
    assert!(body.get("refresh_token").is_none(), "{body}");

    // Clients not registered for the password grant are refused, even with a right password.
    for other in [app.confidential(), app.machine_client()] {
        alice(&app, &other).fails(400, "unauthorized_client").await;
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
        let err = app
            .try_register(&req)
            .expect_err("a public client must not get the {grant} grant");
        let msg = err.to_string();
        assert!(
            msg.contains(grant) && msg.contains("confidential"),
            "the refusal should name the grant and say why: {msg:?}"
        );
    }
}

// Argon2 at its production cost throughout, so that the timing below compares hashes.
both_backends!(
    password_grant_same_answer_for_unknown_user_and_wrong_password,
    production_argon2
);
async fn password_grant_same_answer_for_unknown_user_and_wrong_password(app: TestApp) {
    let client = app.password_client();
    app.user("alice", &[]);
    app.user("bob", &["ops"]);
    app.disable_user("bob").expect("disable bob");
    let attempt = |username: &str, password: &str| {
        app.token()
            .password(username, password)
            .basic(&client)
            .read()
    };

    let wrong = attempt("alice", "not the password").await;
    let unknown = attempt("mallory", PASSWORD).await;
    let disabled = attempt("bob", PASSWORD).await;
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
        let challenge = header(&other.1, "www-authenticate");
        assert_eq!(challenge, header(&wrong.1, "www-authenticate"), "{what}");
    }

    // Missing parameters are a malformed request.
    for missing in ["username", "password"] {
        let req = app.token().password("alice", PASSWORD).without(missing);
        req.basic(&client).fails(400, "invalid_request").await;
    }

    // Same cost (rule 50): an unknown user is not answered faster (or slower) than a wrong
    // password. Skipping the dummy hash would make it ~100x faster.
    let what = "password grant: wrong password (true), unknown user (false)";
    assert_same_cost(what, |known| async move {
        let user = if known { "alice" } else { "mallory" };
        let (status, _, body) = attempt(user, "not the password").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2. Client credentials (rules 24, 25, 27, 34)
// ---------------------------------------------------------------------------------------------

both_backends!(client_credentials_token_has_client_subject_and_no_refresh);
async fn client_credentials_token_has_client_subject_and_no_refresh(app: TestApp) {
    // Registered with refresh_token too: client_credentials still never returns one.
    let client = app.register(NewClient {
        audiences: strings(&[AUDIENCE]),
        ..first_party_registration(&["client_credentials", "refresh_token"])
    });
    let (status, headers, body) = machine(&app, &client).read().await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token: {body}"
    );
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert_cache_control_no_store(&headers);

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
    let allowed = granted.is_subset(&set(&["api:read", "api:write"]));
    assert!(allowed, "scope beyond the allowed: {claims}");
    assert_eq!(scope_set(&s(&body, "scope")), granted, "{body}");
    let info = app.introspect(&client, &s(&body, "access_token")).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["sub"], client.id.as_str(), "{info}");

    // Not registered for it: refused, whether confidential or public.
    let conf = app.confidential();
    machine(&app, &conf).fails(400, "unauthorized_client").await;
    let public = app.token().client_credentials().client(&app.spa());
    public.fails(400, "unauthorized_client").await;
}

both_backends!(client_cache_answers_only_a_proven_secret_within_its_bound);
/// The client_credentials fast path remembers a client that proved its secret for
/// `clients.cache_secs`: a wrong secret still reads the database (and fails), and a deleted
/// client is refused once that bound has passed.
async fn client_cache_answers_only_a_proven_secret_within_its_bound(app: TestApp) {
    let bound = app.settings.clients.cache_secs;
    assert!(bound > 0, "the cache is on by default");
    let client = app.confidential_with(&["client_credentials"]);
    machine(&app, &client).ok().await;
    // Remembered: and still a wrong secret is invalid_client, with the same answer as ever.
    let (status, headers, body) = app
        .token()
        .client_credentials()
        .basic_as(&client.id, "not-the-secret")
        .read()
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(headers.contains_key("www-authenticate"));

    app.delete_client(&client);
    app.advance_clock(bound);
    machine(&app, &client).fails(401, "invalid_client").await;
}

both_backends!(public_client_cache_holds_an_edited_client_no_longer_than_its_bound);
/// A public client (an SPA) is remembered by its id after a code exchange, so its refreshes do
/// not read it again; withdrawing its refresh grant (in the database, as another instance or the
/// command line would) refuses its refresh once `clients.cache_secs` has passed.
async fn public_client_cache_holds_an_edited_client_no_longer_than_its_bound(app: TestApp) {
    let bound = app.settings.clients.cache_secs;
    app.user("alice", &[]);
    let spa = app.spa();
    let first = app.tokens_for(&spa, "alice").await;
    app.set_grant_types(&spa, r#"["authorization_code"]"#);
    // Within the bound the remembered client is used: this instance has not read the edit.
    let second = ok_json(app.refresh(&spa, &s(&first, "refresh_token")).await).await;
    app.advance_clock(bound);
    let (status, _, body) = read(app.refresh(&spa, &s(&second, "refresh_token")).await).await;
    assert_eq!(
        status, 400,
        "an edited client's refresh after the bound: {body}"
    );
    assert_eq!(body["error"], "unauthorized_client", "{body}");
}

both_backends!(client_credentials_auth_methods);
async fn client_credentials_auth_methods(app: TestApp) {
    let client = app.machine_client();
    let secret = client.secret().to_owned();
    let cc = || app.token().client_credentials();

    // client_secret_basic
    let body = machine(&app, &client).ok().await;
    assert_eq!(claims_of(&body)["client_id"], client.id.as_str());
    // client_secret_post
    let body = cc().secret_post(&client).ok().await;
    assert_eq!(claims_of(&body)["client_id"], client.id.as_str());

    // Both at once: one method only.
    let both = cc().secret_post(&client).basic(&client);
    both.fails(400, "invalid_request").await;

    // Bad secret, either method: 401 invalid_client with WWW-Authenticate.
    let bad_basic = cc().basic_as(&client.id, "wrong-secret").read().await;
    let bad_post = cc().client(&client).param("client_secret", "wrong-secret");
    let bad_post = bad_post.read().await;
    let no_secret = cc().client(&client).read().await;
    let unknown = cc().basic_as("cl_doesnotexist", &secret).read().await;
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
}

// ---------------------------------------------------------------------------------------------
// 3. Scopes and audiences (rules 31; RFC 6749 §3.3, RFC 8707)
// ---------------------------------------------------------------------------------------------

both_backends!(requested_scope_limited_to_client_scopes);
async fn requested_scope_limited_to_client_scopes(app: TestApp) {
    let pw = app.password_client();
    let cc = app.machine_client();
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
        let body = alice(&app, &pw)
            .scope(scope)
            .fails(400, "invalid_scope")
            .await;
        assert!(body["error_description"].is_string(), "{scope:?}: {body}");
        machine(&app, &cc)
            .scope(scope)
            .fails(400, "invalid_scope")
            .await;
    }

    // A subset is granted exactly, in the response and in the token.
    for (scope, expected) in [
        ("api:write", set(&["api:write"])),
        ("api:write api:read", set(&["api:read", "api:write"])),
    ] {
        let by_password = alice(&app, &pw).scope(scope).ok().await;
        let by_machine = machine(&app, &cc).scope(scope).ok().await;
        for body in [by_password, by_machine] {
            assert_eq!(scope_set(&s(&body, "scope")), expected, "{scope:?}: {body}");
            let claims = claims_of(&body);
            let in_token = scope_set(&s(&claims, "scope"));
            assert_eq!(in_token, expected, "{scope:?}: {claims}");
        }
    }
}

both_backends!(resource_selects_one_of_several_audiences);
async fn resource_selects_one_of_several_audiences(app: TestApp) {
    let cc = app.machine_client();
    let pw = app.password_client();
    app.user("alice", &[]);

    // client_credentials and password: no resource → first audience; resource → that one.
    for (resource, aud) in [
        (None, AUDIENCE),
        (Some(SECOND), SECOND),
        (Some(AUDIENCE), AUDIENCE),
    ] {
        let body = machine(&app, &cc).maybe("resource", resource).ok().await;
        assert_eq!(
            claims_of(&body)["aud"],
            aud,
            "client_credentials {resource:?}"
        );
        let body = alice(&app, &pw).maybe("resource", resource).ok().await;
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
        let req = machine(&app, &cc).resource(resource);
        let body = req.fails(400, "invalid_target").await;
        assert!(
            body["error_description"].is_string(),
            "{resource:?}: {body}"
        );
        alice(&app, &pw)
            .resource(resource)
            .fails(400, "invalid_target")
            .await;
    }

    // The audience chosen by the password grant stays with its refresh token.
    let body = alice(&app, &pw).resource(SECOND).ok().await;
    let next = refresh(&app, &pw, &body).ok().await;
    assert_eq!(
        claims_of(&next)["aud"],
        SECOND,
        "refresh keeps the audience"
    );
    let moved = refresh(&app, &pw, &next).resource(AUDIENCE);
    moved.fails(400, "invalid_target").await;

    // The authorization code flow, for a public client with two audiences.
    let spa = app.register(NewClient {
        audiences: strings(&[AUDIENCE, SECOND]),
        ..spa_registration()
    });
    let p = pkce();
    let with_resource = [("resource", SECOND)];
    let code = app.code_as(&spa, "alice", &p, &with_resource).await;
    let exchange = |code: &str, p: &Pkce| app.token().code(code, &p.verifier).client(&spa);
    let body = exchange(&code, &p).ok().await;
    assert_eq!(claims_of(&body)["aud"], SECOND, "code flow with resource");

    let p = pkce();
    let code = app.code_as(&spa, "alice", &p, &[]).await;
    let body = exchange(&code, &p).ok().await;
    assert_eq!(
        claims_of(&body)["aud"],
        AUDIENCE,
        "code flow without resource"
    );

    // A resource on the token request must be the one authorized.
    let p = pkce();
    let code = app.code_as(&spa, "alice", &p, &with_resource).await;
    let body = exchange(&code, &p).resource(SECOND).ok().await;
    assert_eq!(claims_of(&body)["aud"], SECOND);
    let p = pkce();
    let code = app.code_as(&spa, "alice", &p, &with_resource).await;
    exchange(&code, &p)
        .resource(AUDIENCE)
        .fails(400, "invalid_target")
        .await;

    // On /authorize, an unregistered or malformed resource redirects back with invalid_target.
    for resource in [
        "https://other.example",
        "https://reports.example.com#frag",
        "reports",
    ] {
        let resp = app.authorize(&spa, &[("resource", Some(resource))]).await;
        let status = resp.status().as_u16();
        assert!(
            status == 302 || status == 303,
            "{resource:?}: expected a redirect, got {status}"
        );
        let loc = location(&resp);
        assert!(loc.starts_with(REDIRECT), "{resource:?}: {loc}");
        let q = query_of(&loc);
        let error = q.get("error").map(String::as_str);
        assert_eq!(error, Some("invalid_target"), "{resource:?}: {loc}");
        assert!(!q.contains_key("code"), "{loc}");
    }
}

both_backends!(refresh_may_narrow_scope_never_widen_for_password_grant);
async fn refresh_may_narrow_scope_never_widen_for_password_grant(app: TestApp) {
    let client = app.password_client();
    app.user("alice", &[]);
    let read_only = set(&["api:read"]);

    // Narrower: this access token only.
    let body = alice(&app, &client).ok().await;
    let narrow = refresh(&app, &client, &body).scope("api:read").ok().await;
    assert_eq!(scope_set(&s(&narrow, "scope")), read_only, "{narrow}");
    assert_eq!(scope_set(&s(&claims_of(&narrow), "scope")), read_only);
    // RFC 6749 §6: the successor refresh token keeps the original scope.
    let again = refresh(&app, &client, &narrow).ok().await;
    let full = scope_set(&s(&claims_of(&again), "scope"));
    assert_eq!(full, set(&["api:read", "api:write"]), "{again}");

    // Wider than granted: invalid_scope, and the token is not spent.
    let body = alice(&app, &client).scope("api:read").ok().await;
    for scope in [
        "api:read api:write",
        "api:write",
        "admin",
        "api:read  api:read",
    ] {
        let wider = refresh(&app, &client, &body).scope(scope);
        wider.fails(400, "invalid_scope").await;
    }
    let after = refresh(&app, &client, &body).ok().await;
    assert_eq!(scope_set(&s(&after, "scope")), read_only, "{after}");
    assert_eq!(scope_set(&s(&claims_of(&after), "scope")), read_only);
}

// ---------------------------------------------------------------------------------------------
// 4. Roles
// ---------------------------------------------------------------------------------------------

both_backends!(roles_claim_follows_user_roles);
async fn roles_claim_follows_user_roles(app: TestApp) {
    let pw = app.password_client();
    let spa = app.spa();
    app.user("alice", &["admin", "ops"]);
    app.user("bob", &[]);
    let both = Some(set(&["admin", "ops"]));

    // Password grant, its refresh, and the authorization code flow.
    let body = alice(&app, &pw).ok().await;
    assert_eq!(roles_of(&claims_of(&body)), both, "{body}");
    let next = refresh(&app, &pw, &body).ok().await;
    assert_eq!(roles_of(&claims_of(&next)), both, "after refresh");
    let body = app.tokens_for(&spa, "alice").await;
    assert_eq!(roles_of(&claims_of(&body)), both, "code flow");

    // No roles: no claim at all.
    let body = app.token().password("bob", PASSWORD).basic(&pw).ok().await;
    let claims = claims_of(&body);
    assert!(claims.get("roles").is_none(), "{claims}");
    let next = refresh(&app, &pw, &body).ok().await;
    assert!(claims_of(&next).get("roles").is_none(), "after refresh");
}
