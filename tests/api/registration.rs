//! Dynamic client registration (RFC 7591) and its management (RFC 7592), checklist 61.

use gatehouse::config::RegistrationMode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{
    assert_oauth_error, basic, claims_of, header, ok_json, read, s, sha256_hex, strings, Settings,
    TestApp, TestClient, AUDIENCE, REDIRECT, SECOND_AUDIENCE,
};

/// Registration with an initial access token, for the scopes api:read and api:write and the
/// audience AUDIENCE.
fn token_mode(s: &mut Settings) {
    s.registration.mode = RegistrationMode::Token;
    s.registration.allowed_scopes = strings(&["api:read", "api:write"]);
    s.registration.allowed_audiences = vec![AUDIENCE.to_owned()];
}

fn open_mode(s: &mut Settings) {
    token_mode(s);
    s.registration.mode = RegistrationMode::Open;
}

/// The smallest registration of a public browser client.
fn spa_metadata() -> Value {
    json!({"client_name": "Agent", "redirect_uris": [REDIRECT]})
}

/// An initial access token as `gatehouse registration-token create` makes it.
fn initial_token(app: &TestApp, ttl_secs: i64, max_uses: i64) -> String {
    let by = gatehouse::registry::By::operator(app.now());
    let (_, token) = gatehouse::flows::registration::create_initial_token(
        &mut app.conn(),
        ttl_secs,
        max_uses,
        &by,
    )
    .expect("initial token");
    token.expose().to_owned()
}

async fn post_register(app: &TestApp, body: &Value, token: Option<&str>) -> reqwest::Response {
    let mut req = app.api.post(app.url("/register")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("POST /register")
}

/// Registers with a fresh single-use token; answers the client information.
async fn registered(app: &TestApp, body: &Value) -> Value {
    let token = initial_token(app, 3_600, 1);
    let (status, _, info) = read(post_register(app, body, Some(&token)).await).await;
    assert_eq!(status, 201, "registration: {info}");
    info
}

async fn manage(
    app: &TestApp,
    method: reqwest::Method,
    client_id: &str,
    token: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app
        .api
        .request(method, app.url(&format!("/register/{client_id}")))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.expect("registration management request")
}

/// Asserts 401 invalid_token with a Bearer challenge; returns the body.
async fn assert_invalid_token(resp: reqwest::Response, what: &str) -> Value {
    let challenge = header(&resp, "www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{what}: {challenge:?}");
    assert_oauth_error(resp, 401, "invalid_token").await
}

both_backends!(registration_is_off_by_default);
async fn registration_is_off_by_default(app: TestApp) {
    assert_eq!(app.settings.registration.mode, RegistrationMode::Off);
    let resp = post_register(&app, &spa_metadata(), None).await;
    assert_eq!(resp.status().as_u16(), 404);
    let resp = app.get("/register/cl_x").await;
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(app.rows("clients"), 0);
}

both_backends!(metadata_advertises_registration_only_when_enabled);
async fn metadata_advertises_registration_only_when_enabled(app: TestApp) {
    let off = ok_json(app.get("/.well-known/oauth-authorization-server").await).await;
    assert!(off.get("registration_endpoint").is_none(), "{off}");
    let on = app.sibling(token_mode).await;
    let doc = ok_json(on.get("/.well-known/oauth-authorization-server").await).await;
    assert_eq!(
        doc["registration_endpoint"],
        format!("{}/register", on.issuer)
    );
}

both_backends!(initial_token_is_required_in_token_mode, token_mode);
async fn initial_token_is_required_in_token_mode(app: TestApp) {
    assert_invalid_token(post_register(&app, &spa_metadata(), None).await, "none").await;
    assert_invalid_token(
        post_register(&app, &spa_metadata(), Some("not-a-token")).await,
        "unknown",
    )
    .await;
    let resp = app
        .api
        .post(app.url("/register"))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .json(&spa_metadata())
        .send()
        .await
        .unwrap();
    assert_invalid_token(resp, "basic").await;
    assert_eq!(app.rows("clients"), 0);
}

both_backends!(initial_token_used_up_is_refused, token_mode);
async fn initial_token_used_up_is_refused(app: TestApp) {
    let token = initial_token(&app, 3_600, 2);
    for _ in 0..2 {
        let resp = post_register(&app, &spa_metadata(), Some(&token)).await;
        assert_eq!(resp.status().as_u16(), 201);
    }
    let resp = post_register(&app, &spa_metadata(), Some(&token)).await;
    assert_invalid_token(resp, "used up").await;
    assert_eq!(app.rows("clients"), 2);
    assert_eq!(app.rows_where("registration_tokens", "uses = 2"), 1);
}

both_backends!(expired_initial_token_is_refused, token_mode);
async fn expired_initial_token_is_refused(app: TestApp) {
    let token = initial_token(&app, 60, 5);
    app.advance_clock(61);
    let resp = post_register(&app, &spa_metadata(), Some(&token)).await;
    assert_invalid_token(resp, "expired").await;
    assert_eq!(app.rows("clients"), 0);
    // The background prune drops it.
    assert_eq!(app.prune().registration_tokens, 1);
    assert_eq!(app.rows("registration_tokens"), 0);
}

both_backends!(max_uses_token_is_consumed_once_under_races, token_mode);
async fn max_uses_token_is_consumed_once_under_races(app: TestApp) {
    let token = initial_token(&app, 3_600, 1);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = app
            .api
            .post(app.url("/register"))
            .bearer_auth(&token)
            .json(&spa_metadata());
        set.spawn(async move { request.send().await.expect("POST").status().as_u16() });
    }
    let statuses: Vec<u16> = set.join_all().await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 201 || s == 401),
        "{statuses:?}"
    );
    assert_eq!(app.rows("clients"), 1);
    assert_eq!(app.rows("client_registrations"), 1);
    assert_eq!(app.rows_where("registration_tokens", "uses = 1"), 1);
}

both_backends!(
    open_mode_allows_only_loopback_or_native_redirects,
    open_mode
);
async fn open_mode_allows_only_loopback_or_native_redirects(app: TestApp) {
    for ok in [
        "http://127.0.0.1:33418/callback",
        "http://[::1]:8080/cb",
        "http://localhost:6274/oauth/callback",
        "com.example.agent:/oauth2redirect",
    ] {
        let body = json!({"client_name": "Native", "redirect_uris": [ok]});
        let (status, _, info) = read(post_register(&app, &body, None).await).await;
        assert_eq!(status, 201, "{ok}: {info}");
        assert_eq!(info["token_endpoint_auth_method"], "none");
        assert!(info.get("client_secret").is_none());
    }
    for bad in [
        "https://app.example/cb",
        "http://app.example/cb",
        "http://127.0.0.1/cb#frag",
        "myapp:/cb",
        "javascript:alert(1)",
    ] {
        let body = json!({"client_name": "Web", "redirect_uris": [bad]});
        let err = assert_oauth_error(
            post_register(&app, &body, None).await,
            400,
            "invalid_redirect_uri",
        )
        .await;
        assert!(
            s(&err, "error_description").contains("redirect_uris"),
            "{bad}: {err}"
        );
    }
    // A native app's private-use redirect URI is accepted at /authorize, matched exactly.
    let native = json!({"client_name": "App", "redirect_uris": ["com.example.agent:/cb"]});
    let info = ok_json_status(post_register(&app, &native, None).await, 201).await;
    let query = crate::helpers::authz(
        &s(&info, "client_id"),
        &crate::helpers::pkce().challenge,
        &[("redirect_uri", Some("com.example.agent:/cb"))],
    );
    crate::helpers::assert_to_login(&app.get_authorize(&query).await, "native redirect");
    // No confidential client without a token, even if the policy allowed one.
    let body = json!({
        "client_name": "Backend",
        "redirect_uris": ["http://127.0.0.1:9000/cb"],
        "token_endpoint_auth_method": "client_secret_basic"
    });
    let err = assert_oauth_error(
        post_register(&app, &body, None).await,
        400,
        "invalid_client_metadata",
    )
    .await;
    assert!(s(&err, "error_description").contains("token_endpoint_auth_method"));
    // With a token, https redirect URIs register in open mode as in token mode.
    let token = initial_token(&app, 3_600, 1);
    let body = json!({"client_name": "Web", "redirect_uris": ["https://app.example/cb"]});
    let resp = post_register(&app, &body, Some(&token)).await;
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(app.rows("clients"), 6);
}

async fn ok_json_status(resp: reqwest::Response, expected: u16) -> Value {
    let (status, _, body) = read(resp).await;
    assert_eq!(status, expected, "{body}");
    body
}

both_backends!(
    open_registrations_are_capped_per_address,
    |s: &mut Settings| {
        open_mode(s);
        s.registration.open_max_per_address = 2;
    }
);
async fn open_registrations_are_capped_per_address(app: TestApp) {
    for _ in 0..2 {
        let resp = post_register(&app, &spa_metadata(), None).await;
        assert_eq!(resp.status().as_u16(), 201);
    }
    let resp = post_register(&app, &spa_metadata(), None).await;
    assert_eq!(resp.status().as_u16(), 429);
    assert!(header(&resp, "retry-after").is_some());
    assert_eq!(app.rows("clients"), 2);
}

both_backends!(
    registered_clients_capped_to_policy_scopes_and_audiences,
    |s: &mut Settings| {
        token_mode(s);
        s.registration.allowed_audiences = vec![AUDIENCE.to_owned(), SECOND_AUDIENCE.to_owned()];
    }
);
async fn registered_clients_capped_to_policy_scopes_and_audiences(app: TestApp) {
    // Naming none: the policy's scopes and audiences.
    let info = registered(&app, &spa_metadata()).await;
    assert_eq!(info["scope"], "api:read api:write");
    assert_eq!(info["audiences"], json!([AUDIENCE, SECOND_AUDIENCE]));
    // Naming some within the policy: those.
    let mut narrow = spa_metadata();
    narrow["scope"] = json!("api:read");
    narrow["audiences"] = json!([SECOND_AUDIENCE]);
    let info = registered(&app, &narrow).await;
    assert_eq!(info["scope"], "api:read");
    assert_eq!(info["audiences"], json!([SECOND_AUDIENCE]));
    // More than the policy: refused, naming the field.
    for (field, value) in [
        ("scope", json!("api:read api:delete")),
        ("audiences", json!(["https://elsewhere.example"])),
    ] {
        let mut body = spa_metadata();
        body[field] = value;
        let token = initial_token(&app, 3_600, 1);
        let err = assert_oauth_error(
            post_register(&app, &body, Some(&token)).await,
            400,
            "invalid_client_metadata",
        )
        .await;
        assert!(
            s(&err, "error_description").starts_with(&format!("{field}:")),
            "{err}"
        );
    }
    assert_eq!(app.rows("clients"), 2);
}

both_backends!(
    registered_client_cannot_get_admin_scope_or_admin_audience,
    |s: &mut Settings| {
        token_mode(s);
        // Even a policy that (bypassing the settings' own check) lists them gives them to no one.
        s.registration
            .allowed_scopes
            .push("gatehouse:admin".to_owned());
        let admin_api = format!("{}/admin/api", s.server.issuer);
        s.registration.allowed_audiences.push(admin_api);
    }
);
async fn registered_client_cannot_get_admin_scope_or_admin_audience(app: TestApp) {
    let admin_api = format!("{}/admin/api", app.issuer);
    let info = registered(&app, &spa_metadata()).await;
    assert_eq!(info["scope"], "api:read api:write");
    assert_eq!(info["audiences"], json!([AUDIENCE]));
    for (field, value) in [
        ("scope", json!("api:read gatehouse:admin")),
        ("audiences", json!([admin_api])),
    ] {
        let mut body = spa_metadata();
        body[field] = value;
        let token = initial_token(&app, 3_600, 1);
        let err = assert_oauth_error(
            post_register(&app, &body, Some(&token)).await,
            400,
            "invalid_client_metadata",
        )
        .await;
        assert!(s(&err, "error_description").contains(field), "{err}");
    }
    // Nor through an update of the registration.
    let mut body = spa_metadata();
    body["scope"] = json!("gatehouse:admin");
    let resp = manage(
        &app,
        reqwest::Method::PUT,
        &s(&info, "client_id"),
        &s(&info, "registration_access_token"),
        Some(&body),
    )
    .await;
    assert_oauth_error(resp, 400, "invalid_client_metadata").await;
    // And the server refuses settings that would list them.
    for (key, value) in [
        (
            "GATEHOUSE_REGISTRATION__ALLOWED_SCOPES",
            "gatehouse:admin".to_owned(),
        ),
        (
            "GATEHOUSE_REGISTRATION__ALLOWED_AUDIENCES",
            "http://127.0.0.1:8080/admin/api".to_owned(),
        ),
    ] {
        let env = vec![(key.to_owned(), value)];
        assert!(Settings::load_from(None, env).is_err(), "{key}");
    }
}

both_backends!(
    registration_access_token_stored_hashed,
    |s: &mut Settings| {
        token_mode(s);
        s.registration.allow_confidential = true;
    }
);
async fn registration_access_token_stored_hashed(app: TestApp) {
    let token = initial_token(&app, 3_600, 1);
    let body = json!({
        "client_name": "Backend",
        "redirect_uris": ["https://backend.example/cb"],
        "token_endpoint_auth_method": "client_secret_post",
    });
    let (status, _, info) = read(post_register(&app, &body, Some(&token)).await).await;
    assert_eq!(status, 201, "{info}");
    let rat = s(&info, "registration_access_token");
    let secret = s(&info, "client_secret");
    let stored = app.every_stored_text();
    for (what, value) in [
        ("initial access token", &token),
        ("registration access token", &rat),
        ("client secret", &secret),
    ] {
        assert!(
            !stored.iter().any(|(_, row)| row.contains(value.as_str())),
            "{what} stored in the clear"
        );
    }
    for hashed in [&token, &rat] {
        assert!(
            stored
                .iter()
                .any(|(_, row)| row.contains(&sha256_hex(hashed))),
            "its SHA-256 is what is stored"
        );
    }
}

both_backends!(
    rfc7592_read_update_delete_with_registration_token,
    token_mode
);
async fn rfc7592_read_update_delete_with_registration_token(app: TestApp) {
    let info = registered(&app, &spa_metadata()).await;
    let id = s(&info, "client_id");
    let rat = s(&info, "registration_access_token");
    assert_eq!(
        info["registration_client_uri"],
        format!("{}/register/{id}", app.issuer)
    );
    assert!(info["client_id_issued_at"].as_i64().unwrap() > 0);
    assert_eq!(
        info["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(info["response_types"], json!(["code"]));

    let (status, headers, read_back) =
        read(manage(&app, reqwest::Method::GET, &id, &rat, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(read_back, info);

    let update = json!({
        "client_id": id,
        "client_name": "Agent v2",
        "redirect_uris": ["http://127.0.0.1:7000/cb"],
        "scope": "api:read",
    });
    let updated = ok_json(manage(&app, reqwest::Method::PUT, &id, &rat, Some(&update)).await).await;
    assert_eq!(updated["client_name"], "Agent v2");
    assert_eq!(
        updated["redirect_uris"],
        json!(["http://127.0.0.1:7000/cb"])
    );
    assert_eq!(updated["scope"], "api:read");
    let again = ok_json(manage(&app, reqwest::Method::GET, &id, &rat, None).await).await;
    assert_eq!(again, updated);
    // A bad update changes nothing.
    let bad = json!({"client_name": "x", "redirect_uris": ["http://evil.example/cb"]});
    let resp = manage(&app, reqwest::Method::PUT, &id, &rat, Some(&bad)).await;
    assert_oauth_error(resp, 400, "invalid_redirect_uri").await;

    let resp = manage(&app, reqwest::Method::DELETE, &id, &rat, None).await;
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(app.rows("clients"), 0);
    assert_eq!(app.rows("client_registrations"), 0);
    assert_invalid_token(
        manage(&app, reqwest::Method::GET, &id, &rat, None).await,
        "deleted",
    )
    .await;

    // Every change is in the audit log, by the client itself.
    for event in [
        "client_registered",
        "client_created",
        "client_updated",
        "client_deleted",
    ] {
        let rows = app.audit_events_named(event);
        assert_eq!(rows.len(), 1, "{event}");
        assert_eq!(rows[0].actor, id, "{event}");
        assert_eq!(rows[0].client_id.as_deref(), Some(id.as_str()), "{event}");
    }
    let created = app.audit_events_named("registration_token_created");
    assert_eq!(created.len(), 1);
    let registered_row = &app.audit_events_named("client_registered")[0];
    let detail = registered_row.detail.clone().unwrap_or_default();
    assert!(detail.contains("initial access token iat_"), "{detail}");
}

both_backends!(registration_cannot_set_skip_consent, token_mode);
async fn registration_cannot_set_skip_consent(app: TestApp) {
    let token = initial_token(&app, 3_600, 1);
    let mut body = spa_metadata();
    body["skip_consent"] = json!(true);
    let err = assert_oauth_error(
        post_register(&app, &body, Some(&token)).await,
        400,
        "invalid_client_metadata",
    )
    .await;
    assert!(
        s(&err, "error_description").contains("skip_consent"),
        "{err}"
    );
    assert_eq!(
        app.rows("clients"),
        0,
        "nothing registered, the token unused"
    );

    // Nor through an RFC 7592 update; what an administrator set stays.
    let info = registered(&app, &spa_metadata()).await;
    assert!(info.get("skip_consent").is_none(), "{info}");
    let id = s(&info, "client_id");
    let rat = s(&info, "registration_access_token");
    let resp = manage(&app, reqwest::Method::PUT, &id, &rat, Some(&body)).await;
    assert_oauth_error(resp, 400, "invalid_client_metadata").await;
    let stored = gatehouse::registry::find_client(&mut app.conn(), &id).expect("client");
    assert!(!stored.skip_consent);
    let by = gatehouse::registry::By::operator(app.now());
    let changes = gatehouse::registry::ClientChanges {
        skip_consent: Some(true),
        ..Default::default()
    };
    gatehouse::registry::update_client(&mut app.conn(), &id, changes, &by).expect("admin change");
    let update = json!({"client_name": "Agent v2", "redirect_uris": [REDIRECT]});
    ok_json(manage(&app, reqwest::Method::PUT, &id, &rat, Some(&update)).await).await;
    let stored = gatehouse::registry::find_client(&mut app.conn(), &id).expect("client");
    assert!(stored.skip_consent, "the administrator's choice stays");
}

both_backends!(
    registration_post_logout_redirect_uris_follow_the_redirect_policy,
    open_mode
);
async fn registration_post_logout_redirect_uris_follow_the_redirect_policy(app: TestApp) {
    // Open mode: loopback or private-use URIs only, as for redirect_uris.
    let body = json!({
        "client_name": "Native",
        "redirect_uris": ["http://127.0.0.1:33418/callback"],
        "post_logout_redirect_uris": ["http://127.0.0.1:33418/signed-out", "com.example.agent:/bye"],
    });
    let info = ok_json_status(post_register(&app, &body, None).await, 201).await;
    assert_eq!(
        info["post_logout_redirect_uris"],
        json!([
            "http://127.0.0.1:33418/signed-out",
            "com.example.agent:/bye"
        ])
    );
    let body = json!({
        "client_name": "Web",
        "redirect_uris": ["http://127.0.0.1:33418/callback"],
        "post_logout_redirect_uris": ["https://app.example/bye"],
    });
    let err = assert_oauth_error(
        post_register(&app, &body, None).await,
        400,
        "invalid_client_metadata",
    )
    .await;
    assert!(
        s(&err, "error_description").contains("post_logout_redirect_uris"),
        "{err}"
    );
    // With a token, https is accepted, and the redirect URI rules still hold.
    let info = registered(
        &app,
        &json!({
            "client_name": "Web",
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": ["https://app.example/bye"],
        }),
    )
    .await;
    assert_eq!(
        info["post_logout_redirect_uris"],
        json!(["https://app.example/bye"])
    );
    let read_back = ok_json(
        manage(
            &app,
            reqwest::Method::GET,
            &s(&info, "client_id"),
            &s(&info, "registration_access_token"),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(read_back, info);
    let token = initial_token(&app, 3_600, 1);
    let body = json!({
        "client_name": "Web",
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": ["https://app.example/bye#top"],
    });
    let err = assert_oauth_error(
        post_register(&app, &body, Some(&token)).await,
        400,
        "invalid_client_metadata",
    )
    .await;
    assert!(
        s(&err, "error_description").contains("post_logout_redirect_uris"),
        "{err}"
    );
}

both_backends!(rfc7592_wrong_token_is_invalid_token, token_mode);
async fn rfc7592_wrong_token_is_invalid_token(app: TestApp) {
    let a = registered(&app, &spa_metadata()).await;
    let b = registered(&app, &spa_metadata()).await;
    let a_id = s(&a, "client_id");
    let b_rat = s(&b, "registration_access_token");
    let mut bodies = Vec::new();
    for (what, id, token) in [
        ("another client's token", a_id.as_str(), b_rat.as_str()),
        ("an unknown token", a_id.as_str(), "garbage"),
        ("an unknown client", "cl_nobody", b_rat.as_str()),
    ] {
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            let resp = manage(&app, method.clone(), id, token, None).await;
            bodies.push(assert_invalid_token(resp, what).await);
        }
        let resp = manage(&app, reqwest::Method::PUT, id, token, Some(&spa_metadata())).await;
        bodies.push(assert_invalid_token(resp, what).await);
    }
    // The same answer whether or not the client exists.
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(app.rows("clients"), 2);
}

both_backends!(
    malformed_or_oversized_registration_is_invalid_client_metadata,
    token_mode
);
async fn malformed_or_oversized_registration_is_invalid_client_metadata(app: TestApp) {
    let token = initial_token(&app, 3_600, 100);
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.api
            .post(app.url("/register"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for (what, body, ct) in [
        (
            "not JSON",
            b"{\"client_name\":".to_vec(),
            "application/json",
        ),
        ("not an object", b"[]".to_vec(), "application/json"),
        (
            "a form",
            b"client_name=x".to_vec(),
            "application/x-www-form-urlencoded",
        ),
        (
            "too large",
            serde_json::to_vec(&json!({"client_name": "x".repeat(64 * 1024)})).unwrap(),
            "application/json",
        ),
        (
            "wrong type",
            br#"{"client_name":"x","redirect_uris":["http://127.0.0.1/cb"],"scope":3}"#.to_vec(),
            "application/json",
        ),
    ] {
        let resp = send(body, ct).await.unwrap();
        let err = assert_oauth_error(resp, 400, "invalid_client_metadata").await;
        assert!(err["error_description"].is_string(), "{what}: {err}");
    }
    for bad in [
        "http://app.example/cb",
        "https://app.example/cb#fragment",
        "https://*.example/cb",
        "/relative",
    ] {
        let body = json!({"client_name": "x", "redirect_uris": [bad]});
        let resp = post_register(&app, &body, Some(&token)).await;
        let err = assert_oauth_error(resp, 400, "invalid_redirect_uri").await;
        assert!(
            s(&err, "error_description").contains("redirect_uris"),
            "{bad}: {err}"
        );
    }
    // Refused requests use up nothing.
    assert_eq!(app.rows_where("registration_tokens", "uses = 0"), 1);
    assert_eq!(app.rows("clients"), 0);
}

both_backends!(registered_public_client_completes_pkce_flow, token_mode);
async fn registered_public_client_completes_pkce_flow(app: TestApp) {
    let info = registered(&app, &spa_metadata()).await;
    let client = TestClient {
        id: s(&info, "client_id"),
        secret: None,
    };
    app.user("alice", &[]);
    let tokens = app.tokens_for(&client, "alice").await;
    let claims = claims_of(&tokens);
    assert_eq!(claims["client_id"], client.id);
    assert_eq!(claims["aud"], AUDIENCE);
    assert!(tokens["refresh_token"].is_string());
}

both_backends!(
    confidential_registration_when_policy_allows,
    |s: &mut Settings| {
        token_mode(s);
        s.registration.allow_confidential = true;
    }
);
async fn confidential_registration_when_policy_allows(app: TestApp) {
    let body = json!({
        "client_name": "Worker",
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["client_credentials"],
        "scope": "api:read",
    });
    let info = registered(&app, &body).await;
    assert_eq!(info["client_secret_expires_at"], 0);
    assert_eq!(info["response_types"], json!([]));
    let id = s(&info, "client_id");
    let secret = s(&info, "client_secret");
    let tokens = app
        .token()
        .client_credentials()
        .authorization(&basic(&id, &secret))
        .ok()
        .await;
    assert_eq!(claims_of(&tokens)["sub"], id);
    // The secret is not shown again.
    let read_back = ok_json(
        manage(
            &app,
            reqwest::Method::GET,
            &id,
            &s(&info, "registration_access_token"),
            None,
        )
        .await,
    )
    .await;
    assert!(read_back.get("client_secret").is_none());
    // And it cannot turn public.
    let resp = manage(
        &app,
        reqwest::Method::PUT,
        &id,
        &s(&info, "registration_access_token"),
        Some(&json!({"client_name": "Worker", "grant_types": ["client_credentials"]})),
    )
    .await;
    assert_oauth_error(resp, 400, "invalid_client_metadata").await;
}
