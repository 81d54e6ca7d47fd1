//! The admin API under `/admin/api/v1/`: who may call it (checklist 64), clients, users, keys and
//! the audit log through it, validation errors that name their fields, and bad input that changes
//! nothing. Each runs on SQLite and on PostgreSQL.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const API: &str = "/admin/api/v1";
const SCOPE: &str = "gatehouse:admin";

fn admin_audience(app: &TestApp) -> String {
    format!("{}/admin/api", app.issuer)
}

/// A confidential first-party client an admin registered for the admin API: the password grant
/// (an administrator's own token) and client_credentials (automation).
fn admin_tool(app: &TestApp) -> TestClient {
    app.register(NewClient {
        name: "Admin tool".into(),
        confidential: true,
        grant_types: parse_grant_types(&["password", "client_credentials"]),
        scopes: strings(&[SCOPE, "api:read"]),
        audiences: vec![admin_audience(app), AUDIENCE.into()],
        ..Default::default()
    })
}

/// An access token for the admin API of `username` (password grant, with a TOTP code when
/// `secret` is given).
async fn user_token(
    app: &TestApp,
    tool: &TestClient,
    username: &str,
    secret: Option<&gatehouse::mfa::TotpSecret>,
) -> String {
    let mut req = app
        .token()
        .password(username, PASSWORD)
        .scope(SCOPE)
        .resource(&admin_audience(app))
        .basic(tool);
    if let Some(secret) = secret {
        req = req.param("otp", &code(app, secret, 0));
    }
    s(&req.ok().await, "access_token")
}

/// The cast of most tests: the admin tool, and root (role admin, TOTP) with a token.
async fn root(app: &TestApp) -> (TestClient, String) {
    let tool = admin_tool(app);
    app.user("root", &["admin"]);
    let (secret, _) = enrol(app, "root");
    let token = user_token(app, &tool, "root", Some(&secret)).await;
    (tool, token)
}

/// A client_credentials token of `client` for the admin API.
async fn machine_token(app: &TestApp, client: &TestClient) -> String {
    s(
        &app.token()
            .client_credentials()
            .scope(SCOPE)
            .resource(&admin_audience(app))
            .basic(client)
            .ok()
            .await,
        "access_token",
    )
}

/// Sends `method path` with `token` and an optional JSON body; returns status, headers and body.
async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = app.api.request(method, app.url(&format!("{API}{path}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("admin API request");
    if resp.status() == 204 {
        let headers = resp.headers().clone();
        assert_eq!(resp.text().await.unwrap(), "", "204 has no body");
        return (204, headers, Value::Null);
    }
    read(resp).await
}

fn spa_json() -> Value {
    json!({
        "client_name": "Reports SPA",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "scope": "api:read",
        "audiences": [AUDIENCE],
        "allowed_origins": [ORIGIN],
    })
}

both_backends!(admin_api_without_a_valid_token_is_401);
async fn admin_api_without_a_valid_token_is_401(app: TestApp) {
    for token in [None, Some("not-a-jwt"), Some("")] {
        let (status, headers, body) = call(&app, token, Method::GET, "/clients", None).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert_eq!(body["error"], "invalid_token");
        let challenge = header(&headers, "www-authenticate").expect("a Bearer challenge");
        assert!(challenge.starts_with("Bearer "), "{challenge}");
    }
    // Unknown paths under the API say nothing more to a caller without a token.
    let (status, _, _) = call(&app, None, Method::GET, "/nothing-here", None).await;
    assert_eq!(status, 401);
}

both_backends!(admin_api_refuses_a_user_without_the_admin_role);
async fn admin_api_refuses_a_user_without_the_admin_role(app: TestApp) {
    let tool = admin_tool(&app);
    app.user("mallory", &["staff"]);
    let (secret, _) = enrol(&app, "mallory");
    let token = user_token(&app, &tool, "mallory", Some(&secret)).await;
    let (status, _, body) = call(&app, Some(&token), Method::GET, "/users", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "access_denied");
    let (status, _, _) = call(
        &app,
        Some(&token),
        Method::POST,
        "/clients",
        Some(spa_json()),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        gatehouse::registry::list_clients(&mut app.conn(), None, 10, 0)
            .unwrap()
            .items
            .len(),
        1,
        "nothing created"
    );
}

both_backends!(admin_api_refuses_an_admin_who_skipped_the_second_factor);
async fn admin_api_refuses_an_admin_who_skipped_the_second_factor(app: TestApp) {
    let tool = admin_tool(&app);
    app.user("root", &["admin"]);
    // No TOTP: the password alone signs in, and the token says so (amr pwd).
    let token = user_token(&app, &tool, "root", None).await;
    let (status, _, body) = call(&app, Some(&token), Method::GET, "/users", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        s(&body, "error_description").contains("second factor"),
        "{body}"
    );
}

both_backends!(admin_api_refuses_a_token_for_another_audience);
async fn admin_api_refuses_a_token_for_another_audience(app: TestApp) {
    let tool = admin_tool(&app);
    app.user("root", &["admin"]);
    let (secret, _) = enrol(&app, "root");
    let body = app
        .token()
        .password("root", PASSWORD)
        .param("otp", &code(&app, &secret, 0))
        .scope("api:read")
        .resource(AUDIENCE)
        .basic(&tool)
        .ok()
        .await;
    let (status, headers, body) = call(
        &app,
        Some(&s(&body, "access_token")),
        Method::GET,
        "/users",
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(header(&headers, "www-authenticate")
        .unwrap()
        .contains("invalid_token"));
}

both_backends!(admin_api_needs_the_admin_scope);
async fn admin_api_needs_the_admin_scope(app: TestApp) {
    let tool = admin_tool(&app);
    app.user("root", &["admin"]);
    let (secret, _) = enrol(&app, "root");
    let body = app
        .token()
        .password("root", PASSWORD)
        .param("otp", &code(&app, &secret, 0))
        .scope("api:read")
        .resource(&admin_audience(&app))
        .basic(&tool)
        .ok()
        .await;
    let (status, headers, _) = call(
        &app,
        Some(&s(&body, "access_token")),
        Method::GET,
        "/users",
        None,
    )
    .await;
    assert_eq!(status, 403);
    let challenge = header(&headers, "www-authenticate").unwrap();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains(SCOPE),
        "{challenge}"
    );
}

both_backends!(admin_api_accepts_an_admin_granted_confidential_client);
async fn admin_api_accepts_an_admin_granted_confidential_client(app: TestApp) {
    let tool = admin_tool(&app);
    let token = machine_token(&app, &tool).await;
    let (status, _, body) = call(&app, Some(&token), Method::GET, "/clients", None).await;
    assert_eq!(status, 200, "{body}");

    // A machine client no admin granted the scope cannot even get such a token.
    let other = app.machine_client();
    app.token()
        .client_credentials()
        .scope(SCOPE)
        .basic(&other)
        .fails(400, "invalid_scope")
        .await;

    // Once an admin takes the scope away, the tool's token stops working at once.
    gatehouse::registry::update_client(
        &mut app.conn(),
        &tool.id,
        gatehouse::registry::ClientChanges {
            scopes: Some(strings(&["api:read"])),
            ..Default::default()
        },
        &gatehouse::registry::By::operator(app.now()),
    )
    .unwrap();
    let (status, _, _) = call(&app, Some(&token), Method::GET, "/clients", None).await;
    assert_eq!(status, 403);
}

both_backends!(admin_api_client_lifecycle);
async fn admin_api_client_lifecycle(app: TestApp) {
    let (_, token) = root(&app).await;
    let t = Some(token.as_str());

    // Create: 201, the RFC 7591 names, Location; a public client has no secret.
    let (status, headers, spa) = call(&app, t, Method::POST, "/clients", Some(spa_json())).await;
    assert_eq!(status, 201, "{spa}");
    let id = s(&spa, "client_id");
    assert!(id.starts_with("cl_"));
    assert_eq!(spa["token_endpoint_auth_method"], "none");
    assert_eq!(
        spa["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(spa["response_types"], json!(["code"]));
    assert_eq!(spa["scope"], "api:read");
    assert!(spa.get("client_secret").is_none());
    assert_eq!(
        header(&headers, "location").as_deref(),
        Some(format!("{API}/clients/{id}").as_str())
    );
    assert_eq!(
        header(&headers, "cache-control").as_deref(),
        Some("no-store")
    );

    // Public unless asked otherwise, as with the command line.
    let (status, _, plain) = call(
        &app,
        t,
        Method::POST,
        "/clients",
        Some(json!({"client_name": "Plain", "redirect_uris": [REDIRECT], "audiences": [AUDIENCE]})),
    )
    .await;
    assert_eq!(status, 201, "{plain}");
    assert_eq!(plain["token_endpoint_auth_method"], "none");
    let (status, _, _) = call(
        &app,
        t,
        Method::DELETE,
        &format!("/clients/{}", s(&plain, "client_id")),
        None,
    )
    .await;
    assert_eq!(status, 204);

    // A confidential client: its secret shown in this answer only.
    let (status, _, backend) = call(
        &app,
        t,
        Method::POST,
        "/clients",
        Some(json!({
            "client_name": "Nightly job",
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
            "scope": "api:read",
            "audiences": [AUDIENCE],
        })),
    )
    .await;
    assert_eq!(status, 201, "{backend}");
    assert_eq!(backend["token_endpoint_auth_method"], "client_secret_basic");
    let job = TestClient {
        id: s(&backend, "client_id"),
        secret: Some(s(&backend, "client_secret")),
    };
    app.token().client_credentials().basic(&job).ok().await;
    let (_, _, shown) = call(&app, t, Method::GET, &format!("/clients/{}", job.id), None).await;
    assert!(shown.get("client_secret").is_none(), "shown once: {shown}");
    assert_eq!(shown["client_name"], "Nightly job");

    // List, paged.
    let (_, _, page) = call(&app, t, Method::GET, "/clients?limit=2", None).await;
    assert_eq!(page["clients"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_offset"], 2);
    let (_, _, rest) = call(&app, t, Method::GET, "/clients?limit=2&offset=2", None).await;
    assert_eq!(rest["clients"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_offset"], Value::Null);
    let (_, _, found) = call(&app, t, Method::GET, "/clients?search=nightly", None).await;
    assert_eq!(found["clients"][0]["client_id"], job.id.as_str());

    // Update: only what is sent changes.
    let (status, _, updated) = call(
        &app,
        t,
        Method::PATCH,
        &format!("/clients/{id}"),
        Some(json!({
            "client_name": "Reports",
            "redirect_uris": ["https://reports.example.com/cb"],
            "allowed_origins": ["https://reports.example.com"],
            "require_mfa": true,
        })),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["client_name"], "Reports");
    assert_eq!(
        updated["redirect_uris"],
        json!(["https://reports.example.com/cb"])
    );
    assert_eq!(updated["require_mfa"], true);
    assert_eq!(updated["scope"], "api:read", "kept");
    let (status, _, body) = call(
        &app,
        t,
        Method::PATCH,
        &format!("/clients/{id}"),
        Some(json!({"token_endpoint_auth_method": "client_secret_basic"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["fields"][0]["field"], "token_endpoint_auth_method");

    // Delete: 204, its tokens stop, then 404.
    let (status, _, _) = call(
        &app,
        t,
        Method::DELETE,
        &format!("/clients/{}", job.id),
        None,
    )
    .await;
    assert_eq!(status, 204);
    app.token()
        .client_credentials()
        .basic(&job)
        .fails(401, "invalid_client")
        .await;
    let (status, _, body) = call(&app, t, Method::GET, &format!("/clients/{}", job.id), None).await;
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = call(
        &app,
        t,
        Method::DELETE,
        &format!("/clients/{}", job.id),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

both_backends!(admin_api_deleting_a_client_revokes_its_refresh_tokens);
async fn admin_api_deleting_a_client_revokes_its_refresh_tokens(app: TestApp) {
    let (_, token) = root(&app).await;
    let client = app.password_client();
    app.user("alice", &[]);
    let tokens = app
        .token()
        .password("alice", PASSWORD)
        .basic(&client)
        .ok()
        .await;
    let (status, _, _) = call(
        &app,
        Some(&token),
        Method::DELETE,
        &format!("/clients/{}", client.id),
        None,
    )
    .await;
    assert_eq!(status, 204);
    app.token()
        .refresh(&s(&tokens, "refresh_token"))
        .basic(&client)
        .fails(401, "invalid_client")
        .await;
    assert_eq!(
        app.rows_where("grants", &format!("client_id = '{}'", client.id)),
        0
    );
}

both_backends!(admin_api_rotates_a_secret_with_a_grace_period);
async fn admin_api_rotates_a_secret_with_a_grace_period(app: TestApp) {
    let (_, token) = root(&app).await;
    let t = Some(token.as_str());
    let job = app.machine_client();
    let path = format!("/clients/{}/rotate-secret", job.id);

    // The default grace period: both secrets work, the new one shown once.
    let before = app.now();
    let (status, _, rotated) = call(&app, t, Method::POST, &path, None).await;
    assert_eq!(status, 200, "{rotated}");
    let new = TestClient {
        id: job.id.clone(),
        secret: Some(s(&rotated, "client_secret")),
    };
    // The server read its clock during the call (a second may have begun meanwhile).
    let grace = app.settings.clients.secret_rotation_grace_secs;
    let until = rotated["previous_secret_expires_at"].as_i64().unwrap();
    assert!(
        (before + grace..=app.now() + grace).contains(&until),
        "{rotated}"
    );
    app.token().client_credentials().basic(&job).ok().await;
    app.token().client_credentials().basic(&new).ok().await;

    // A grace period of 0: the old secret stops now.
    let (status, _, again) =
        call(&app, t, Method::POST, &path, Some(json!({"grace_secs": 0}))).await;
    assert_eq!(status, 200, "{again}");
    assert!(again.get("previous_secret_expires_at").is_none());
    let newest = TestClient {
        id: job.id.clone(),
        secret: Some(s(&again, "client_secret")),
    };
    app.token()
        .client_credentials()
        .basic(&new)
        .fails(401, "invalid_client")
        .await;
    app.token().client_credentials().basic(&newest).ok().await;

    // Out of bounds, or a public client: refused, nothing changed.
    let (status, _, body) = call(
        &app,
        t,
        Method::POST,
        &path,
        Some(json!({"grace_secs": -1})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["fields"][0]["field"], "grace_secs");
    let spa = app.spa();
    let (status, _, _) = call(
        &app,
        t,
        Method::POST,
        &format!("/clients/{}/rotate-secret", spa.id),
        None,
    )
    .await;
    assert_eq!(status, 400);
    app.token().client_credentials().basic(&newest).ok().await;
}

both_backends!(admin_api_client_skip_consent_and_post_logout_redirect_uris);
async fn admin_api_client_skip_consent_and_post_logout_redirect_uris(app: TestApp) {
    let (_, token) = root(&app).await;
    let t = Some(token.as_str());
    let mut body = spa_json();
    body["skip_consent"] = json!(true);
    body["post_logout_redirect_uris"] = json!(["https://reports.example/bye"]);
    let (status, _, created) = call(&app, t, Method::POST, "/clients", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["skip_consent"], true);
    assert_eq!(
        created["post_logout_redirect_uris"],
        json!(["https://reports.example/bye"])
    );
    let path = format!("/clients/{}", s(&created, "client_id"));
    let (status, _, read_back) = call(&app, t, Method::GET, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(read_back["skip_consent"], true);
    assert_eq!(
        read_back["post_logout_redirect_uris"],
        created["post_logout_redirect_uris"]
    );

    // PATCH changes only what is sent.
    let (status, _, patched) = call(
        &app,
        t,
        Method::PATCH,
        &path,
        Some(json!({"skip_consent": false})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["skip_consent"], false);
    assert_eq!(
        patched["post_logout_redirect_uris"],
        json!(["https://reports.example/bye"])
    );
    let (status, _, patched) = call(
        &app,
        t,
        Method::PATCH,
        &path,
        Some(json!({"post_logout_redirect_uris": ["http://127.0.0.1:5173/bye"]})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["post_logout_redirect_uris"],
        json!(["http://127.0.0.1:5173/bye"])
    );

    // Checked like redirect URIs, each fault naming the field; nothing changes.
    let (status, _, refused) = call(
        &app,
        t,
        Method::PATCH,
        &path,
        Some(json!({"post_logout_redirect_uris": ["http://reports.example/bye", "https://reports.example/#x"]})),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"], "invalid_client_metadata");
    let fields: Vec<&str> = refused["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec!["post_logout_redirect_uris", "post_logout_redirect_uris"],
        "{refused}"
    );
    let (_, _, unchanged) = call(&app, t, Method::GET, &path, None).await;
    assert_eq!(
        unchanged["post_logout_redirect_uris"],
        json!(["http://127.0.0.1:5173/bye"])
    );
}

both_backends!(admin_api_validation_errors_name_each_field);
async fn admin_api_validation_errors_name_each_field(app: TestApp) {
    let (_, token) = root(&app).await;
    let before = app.rows("clients");
    let (status, _, body) = call(
        &app,
        Some(&token),
        Method::POST,
        "/clients",
        Some(json!({
            "client_name": "",
            "redirect_uris": [
                "http://app.example/cb",
                "https://app.example/cb#frag",
                "https://*.example/cb",
            ],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "allowed_origins": ["https://app.example/path"],
        })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_client_metadata");
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for field in [
        "client_name",
        "redirect_uris",
        "audiences",
        "allowed_origins",
    ] {
        assert!(fields.contains(&field), "{field} named: {body}");
    }
    assert_eq!(
        fields.iter().filter(|f| **f == "redirect_uris").count(),
        3,
        "each bad redirect URI: {body}"
    );
    let (status, _, body) = call(
        &app,
        Some(&token),
        Method::POST,
        "/clients",
        Some(json!({
            "client_name": "x",
            "grant_types": ["implicit"],
            "token_endpoint_auth_method": "private_key_jwt",
            "audiences": [AUDIENCE],
        })),
    )
    .await;
    assert_eq!(status, 400);
    let text = body.to_string();
    assert!(text.contains("grant_types") && text.contains("token_endpoint_auth_method"));
    assert_eq!(app.rows("clients"), before, "nothing created");
}

both_backends!(admin_api_malformed_or_oversized_json_changes_nothing);
async fn admin_api_malformed_or_oversized_json_changes_nothing(app: TestApp) {
    let (_, token) = root(&app).await;
    let before = app.rows("clients");
    let post = |body: Vec<u8>, content_type: &'static str| {
        app.api
            .post(app.url(&format!("{API}/clients")))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for (body, content_type) in [
        (b"{\"client_name\": ".to_vec(), "application/json"),
        (b"[1, 2]".to_vec(), "application/json"),
        (
            b"{\"client_name\": \"x\", \"colour\": \"red\"}".to_vec(),
            "application/json",
        ),
        (spa_json().to_string().into_bytes(), "text/plain"),
        (
            format!("{{\"client_name\": \"{}\"}}", "x".repeat(64 * 1024)).into_bytes(),
            "application/json",
        ),
    ] {
        let (status, _, answer) = read(post(body, content_type).await.unwrap()).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"], "invalid_request", "{answer}");
    }
    assert_eq!(app.rows("clients"), before);
}

both_backends!(admin_api_user_lifecycle);
async fn admin_api_user_lifecycle(app: TestApp) {
    let (_, token) = root(&app).await;
    let t = Some(token.as_str());

    let (status, _, body) = call(
        &app,
        t,
        Method::POST,
        "/users",
        Some(json!({"username": "bob", "password": "short", "roles": ["bad role"]})),
    )
    .await;
    assert_eq!(status, 400);
    let text = body["fields"].to_string();
    assert!(
        text.contains("password") && text.contains("roles"),
        "{body}"
    );

    let (status, _, bob) = call(
        &app,
        t,
        Method::POST,
        "/users",
        Some(json!({"username": "bob", "password": PASSWORD, "roles": ["staff"]})),
    )
    .await;
    assert_eq!(status, 201, "{bob}");
    assert!(bob.get("password_hash").is_none());
    let id = s(&bob, "user_id");
    let (status, _, _) = call(
        &app,
        t,
        Method::POST,
        "/users",
        Some(json!({"username": "bob", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 409);

    let (_, _, list) = call(&app, t, Method::GET, "/users?search=BO", None).await;
    assert_eq!(list["users"][0]["username"], "bob");
    let (_, _, shown) = call(&app, t, Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(shown["totp"], false);
    assert_eq!(shown["roles"], json!(["staff"]));

    let (status, _, roles) = call(
        &app,
        t,
        Method::PUT,
        &format!("/users/{id}/roles"),
        Some(json!({"roles": ["staff", "auditor"]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(roles["roles"], json!(["staff", "auditor"]));

    // Disable ends bob's refresh tokens; enable lets him sign in again.
    let client = app.password_client();
    let tokens = app
        .token()
        .password("bob", PASSWORD)
        .basic(&client)
        .ok()
        .await;
    let (status, _, disabled) =
        call(&app, t, Method::POST, &format!("/users/{id}/disable"), None).await;
    assert_eq!(status, 200);
    assert_eq!(disabled["disabled"], true);
    app.token()
        .refresh(&s(&tokens, "refresh_token"))
        .basic(&client)
        .fails(400, "invalid_grant")
        .await;
    let (status, _, _) = call(&app, t, Method::POST, &format!("/users/{id}/enable"), None).await;
    assert_eq!(status, 200);
    app.token()
        .password("bob", PASSWORD)
        .basic(&client)
        .ok()
        .await;

    // A new password; the old one stops working, as do bob's tokens.
    let (status, _, _) = call(
        &app,
        t,
        Method::PUT,
        &format!("/users/{id}/password"),
        Some(json!({"password": "a much longer new passphrase"})),
    )
    .await;
    assert_eq!(status, 200);
    app.token()
        .password("bob", PASSWORD)
        .basic(&client)
        .fails(400, "invalid_grant")
        .await;
    let tokens = app
        .token()
        .password("bob", "a much longer new passphrase")
        .basic(&client)
        .ok()
        .await;

    // Unlock and reset MFA answer what they did.
    let (status, _, unlocked) =
        call(&app, t, Method::POST, &format!("/users/{id}/unlock"), None).await;
    assert_eq!(status, 200, "{unlocked}");
    assert!(unlocked["cleared"].is_u64());
    enrol(&app, "bob");
    let (_, _, reset) = call(
        &app,
        t,
        Method::POST,
        &format!("/users/{id}/reset-mfa"),
        None,
    )
    .await;
    assert_eq!(reset["removed"], true);
    let (_, _, shown) = call(&app, t, Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(shown["totp"], false);
    let (status, _, _) = call(&app, t, Method::POST, &format!("/users/{id}/explode"), None).await;
    assert_eq!(status, 404);

    // Delete: his refresh tokens end with him.
    let (status, _, _) = call(&app, t, Method::DELETE, &format!("/users/{id}"), None).await;
    assert_eq!(status, 204);
    app.token()
        .refresh(&s(&tokens, "refresh_token"))
        .basic(&client)
        .fails(400, "invalid_grant")
        .await;
    let (status, _, _) = call(&app, t, Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(status, 404);
}

both_backends!(admin_api_disabling_the_admin_stops_their_token);
async fn admin_api_disabling_the_admin_stops_their_token(app: TestApp) {
    let (_, token) = root(&app).await;
    app.disable_user("root").unwrap();
    let (status, _, _) = call(&app, Some(&token), Method::GET, "/users", None).await;
    assert_eq!(status, 401);
}

both_backends!(admin_api_lists_and_rotates_keys);
async fn admin_api_lists_and_rotates_keys(app: TestApp) {
    let (_, token) = root(&app).await;
    let t = Some(token.as_str());
    let (status, _, keys) = call(&app, t, Method::GET, "/keys", None).await;
    assert_eq!(status, 200);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    let before = app.now();
    let (status, _, rotated) = call(&app, t, Method::POST, "/keys/rotate", None).await;
    assert_eq!(status, 201, "{rotated}");
    // The server read its clock during the call (a second may have begun meanwhile).
    let delay = app.settings.keys.publish_delay_secs;
    let activate_at = rotated["activate_at"].as_i64().unwrap();
    assert!(
        (before + delay..=app.now() + delay).contains(&activate_at),
        "{rotated}"
    );
    // A second rotation while one waits is a conflict that says why.
    let (status, _, body) = call(&app, t, Method::POST, "/keys/rotate", None).await;
    assert_eq!(status, 409);
    assert!(s(&body, "error_description").contains("already waiting"));
    let (_, _, keys) = call(&app, t, Method::GET, "/keys", None).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2);
}

both_backends!(admin_api_changes_are_audited_as_the_caller);
async fn admin_api_changes_are_audited_as_the_caller(app: TestApp) {
    let (tool, token) = root(&app).await;
    let root_id = user_id(&app, "root");
    let (_, _, spa) = call(
        &app,
        Some(&token),
        Method::POST,
        "/clients",
        Some(spa_json()),
    )
    .await;
    let machine = machine_token(&app, &tool).await;
    call(&app, Some(&machine), Method::POST, "/keys/rotate", None).await;

    let created = app.audit_events_named("client_created");
    let mine = created
        .iter()
        .find(|e| e.client_id.as_deref() == Some(s(&spa, "client_id").as_str()))
        .expect("audited");
    assert_eq!(mine.actor, root_id);
    let rotated = app.audit_events_named("key_rotated");
    assert_eq!(rotated.last().unwrap().actor, tool.id);
}

both_backends!(admin_api_reads_the_audit_log_paged_and_filtered);
async fn admin_api_reads_the_audit_log_paged_and_filtered(app: TestApp) {
    let (_, token) = root(&app).await;
    let t = Some(token.as_str());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, _, c) = call(&app, t, Method::POST, "/clients", Some(spa_json())).await;
        ids.push(s(&c, "client_id"));
    }
    // Newest first, two at a time, following the cursor.
    let (status, _, first) = call(
        &app,
        t,
        Method::GET,
        "/audit?event=client_created&limit=2",
        None,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let events = first["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    let cursor = s(&first, "next_cursor");
    let (_, _, second) = call(
        &app,
        t,
        Method::GET,
        &format!(
            "/audit?event=client_created&limit=2&cursor={}",
            encode_value(&cursor)
        ),
        None,
    )
    .await;
    let mut seen: Vec<String> = events
        .iter()
        .chain(second["events"].as_array().unwrap())
        .map(|e| s(e, "client_id"))
        .collect();
    // The admin tool's own registration is a client_created event too.
    assert_eq!(seen.len(), 4, "{second}");
    assert_eq!(second["next_cursor"], Value::Null);
    seen.sort();
    for id in &ids {
        assert!(seen.contains(id));
    }

    // By client, by user, by time.
    let (_, _, one) = call(
        &app,
        t,
        Method::GET,
        &format!("/audit?client_id={}", ids[1]),
        None,
    )
    .await;
    assert_eq!(one["events"].as_array().unwrap().len(), 1);
    let root_id = user_id(&app, "root");
    let (_, _, by_user) = call(
        &app,
        t,
        Method::GET,
        &format!("/audit?user_id={root_id}&event=mfa_enrolled"),
        None,
    )
    .await;
    assert_eq!(by_user["events"].as_array().unwrap().len(), 1);
    let (_, _, future) = call(
        &app,
        t,
        Method::GET,
        &format!("/audit?since={}", app.now() + 60),
        None,
    )
    .await;
    assert_eq!(future["events"], json!([]));
    let (_, _, past) = call(
        &app,
        t,
        Method::GET,
        &format!("/audit?until={}", app.now() - 3600),
        None,
    )
    .await;
    assert_eq!(past["events"], json!([]));

    // Bad filters name themselves.
    for (query, field) in [
        ("event=nonsense", "event"),
        ("limit=0", "limit"),
        ("cursor=garbage", "cursor"),
    ] {
        let (status, _, body) = call(&app, t, Method::GET, &format!("/audit?{query}"), None).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["fields"][0]["field"], field, "{body}");
    }
    let (status, _, _) = call(&app, t, Method::GET, "/audit?colour=red", None).await;
    assert_eq!(status, 400);
}

both_backends!(admin_api_routes_never_get_cors_headers);
async fn admin_api_routes_never_get_cors_headers(app: TestApp) {
    let (_, token) = root(&app).await;
    // ORIGIN is a registered client's origin: it gets CORS on /token, never here.
    app.spa();
    let resp = app
        .api
        .get(app.url(&format!("{API}/clients")))
        .bearer_auth(&token)
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "access-control-allow-origin").is_none());
    let preflight = app
        .api
        .request(Method::OPTIONS, app.url(&format!("{API}/clients")))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(header(&preflight, "access-control-allow-origin").is_none());
    assert_ne!(preflight.status(), 204);
}

both_backends!(admin_api_user_profile_fields);
async fn admin_api_user_profile_fields(app: TestApp) {
    let (_, token) = root(&app).await;
    let t = Some(token.as_str());

    // Created with a profile; user objects always carry the three fields.
    let (status, _, bob) = call(
        &app,
        t,
        Method::POST,
        "/users",
        Some(json!({
            "username": "bob",
            "password": PASSWORD,
            "name": "  Bob Builder ",
            "email": "bob@example.com",
            "email_verified": true,
        })),
    )
    .await;
    assert_eq!(status, 201, "{bob}");
    assert_eq!(bob["name"], "Bob Builder");
    assert_eq!(bob["email"], "bob@example.com");
    assert_eq!(bob["email_verified"], true);
    let id = s(&bob, "user_id");
    let path = format!("/users/{id}");
    let (_, _, root_list) = call(&app, t, Method::GET, "/users?search=root", None).await;
    let root_user = &root_list["users"][0];
    assert_eq!(root_user["name"], Value::Null, "{root_user}");
    assert_eq!(root_user["email"], Value::Null, "{root_user}");
    assert_eq!(root_user["email_verified"], false, "{root_user}");

    // PATCH: an absent field stays, null clears, a new address is unverified.
    let patch = |body: Value| call(&app, t, Method::PATCH, &path, Some(body));
    let (status, _, moved) = patch(json!({"email": "bob@new.example"})).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["email_verified"], false);
    assert_eq!(moved["name"], "Bob Builder");
    let (_, _, verified) = patch(json!({"email_verified": true})).await;
    assert_eq!(verified["email_verified"], true);
    let (_, _, cleared) = patch(json!({"name": null, "email": null})).await;
    assert_eq!(cleared["name"], Value::Null);
    assert_eq!(cleared["email"], Value::Null);
    assert_eq!(cleared["email_verified"], false);
    let (_, _, shown) = call(&app, t, Method::GET, &path, None).await;
    assert_eq!(shown["email"], Value::Null, "{shown}");

    // Refusals list each field at fault; nothing changes.
    patch(json!({"name": "Bob", "email": "bob@example.com"})).await;
    let (status, _, refused) = patch(json!({
        "name": "Bob\u{0007}",
        "email": "bob at example.com",
    }))
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"], "invalid_request");
    let fields: Vec<&str> = refused["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["field"].as_str())
        .collect();
    assert_eq!(fields, ["name", "email"], "{refused}");
    let (status, _, refused) = patch(json!({"email": null, "email_verified": true})).await;
    assert_eq!(status, 400);
    assert_eq!(refused["fields"][0]["field"], "email_verified", "{refused}");
    let (status, _, refused) = patch(json!({})).await;
    assert_eq!(status, 400);
    assert!(s(&refused, "error_description").contains("nothing to change"));
    let (status, _, _) = patch(json!({"nickname": "b"})).await;
    assert_eq!(status, 400, "unknown fields are refused");
    let (_, _, shown) = call(&app, t, Method::GET, &path, None).await;
    assert_eq!(shown["name"], "Bob");
    assert_eq!(shown["email"], "bob@example.com");
    let (status, _, _) = call(
        &app,
        t,
        Method::PATCH,
        "/users/usr_nobody",
        Some(json!({"name": "N"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, refused) = call(
        &app,
        t,
        Method::POST,
        "/users",
        Some(json!({"username": "carol", "password": PASSWORD, "email_verified": true})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(refused["fields"][0]["field"], "email_verified", "{refused}");

    // Each change is audited as the caller, naming the fields, never their values.
    let changes = app.audit_events_named("profile_changed");
    assert!(!changes.is_empty());
    let root_id = gatehouse::registry::find_user(&mut app.conn(), "root")
        .expect("root")
        .id;
    for row in &changes {
        assert_eq!(row.user_id.as_deref(), Some(id.as_str()));
        assert_eq!(row.actor, root_id);
        let detail = row.detail.clone().unwrap_or_default();
        assert!(!detail.contains("example"), "{detail}");
    }
}
