//! The resource-server side (issue 4, point 6): `gatehouse::verify` against a running
//! Gatehouse, and `examples/resource_server.rs` as a separate process.

use std::process::{Command, Stdio};
use std::time::Duration;

use gatehouse::verify::{Config, Verifier, VerifyError};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

both_backends!(verify_fetches_jwks_and_accepts_gatehouse_tokens);
async fn verify_fetches_jwks_and_accepts_gatehouse_tokens(app: TestApp) {
    let (_, tokens) = app.signed_in("ivy", &["admin"]).await;
    let token = tokens["access_token"].as_str().unwrap();
    let verifier = Verifier::new(Config::new(&app.issuer, AUDIENCE)).unwrap();
    let claims = verifier.verify(token).await.unwrap();
    assert!(claims.sub.starts_with("usr_"));
    assert!(claims.has_scope("api:read") && claims.has_role("admin"));
    // Another audience's verifier refuses it.
    let other = Verifier::new(Config::new(&app.issuer, "https://other-api.example")).unwrap();
    assert_eq!(other.verify(token).await, Err(VerifyError::WrongAudience));
}

/// The example binary, built by `cargo test` next to the test binary.
fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples").join("resource_server");
    assert!(
        path.exists(),
        "{} is missing: cargo test builds examples",
        path.display()
    );
    path
}

/// The example resource server for `app`, once it answers.
async fn example_resource_server(app: &TestApp) -> (KillOnDrop, String) {
    let port = free_port();
    let child = Command::new(example_binary())
        .env("RS_BIND", format!("127.0.0.1:{port}"))
        .env("RS_ISSUER", &app.issuer)
        .env("RS_AUDIENCE", AUDIENCE)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let public = format!("{base}/public");
    eventually(
        Duration::from_secs(10),
        "the example resource server starts",
        || async {
            let up = reqwest::get(&public)
                .await
                .is_ok_and(|r| r.status().is_success());
            up.then_some(())
        },
    )
    .await;
    (KillOnDrop(child), base)
}

both_backends!(example_resource_server_enforces_scope_and_role);
async fn example_resource_server_enforces_scope_and_role(app: TestApp) {
    let (_rs, base) = example_resource_server(&app).await;
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let req = http.get(format!("{base}{path}"));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
        .send()
    };
    let challenge = |resp: &reqwest::Response| header(resp, "www-authenticate").unwrap();

    // No token: 401 with a bare Bearer challenge naming the RFC 9728 metadata.
    let resp = get("/read", None).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(challenge(&resp).starts_with("Bearer realm="));
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource");
    assert!(
        challenge(&resp).contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{}",
        challenge(&resp)
    );
    let metadata: Value = http
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], AUDIENCE);
    assert_eq!(
        metadata["authorization_servers"],
        serde_json::json!([app.issuer])
    );
    assert_eq!(
        metadata["bearer_methods_supported"],
        serde_json::json!(["header"])
    );

    let spa = app.spa();
    app.user("admin-user", &["admin"]);
    app.user("plain-user", &[]);
    // The admin signs in through a first-party app (password grant), so that the browser
    // session below stays plain-user's.
    let first_party = app.register(NewClient {
        scopes: strings(&["api:read"]),
        audiences: strings(&[AUDIENCE]),
        ..first_party_registration(&["password"])
    });
    let admin_grant = app
        .token()
        .password("admin-user", PASSWORD)
        .basic(&first_party);
    let admin: Value = admin_grant.send().await.json().await.unwrap();
    let admin_token = admin["access_token"].as_str().unwrap();
    let resp = get("/read", Some(admin_token)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["sub"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(body["scope"], "api:read");
    assert_eq!(body["roles"], serde_json::json!(["admin"]));
    let admin_page = get("/admin", Some(admin_token)).await.unwrap();
    assert_eq!(admin_page.status().as_u16(), 200);

    // A user without the role: 403 insufficient_scope.
    let plain = app.tokens_for(&spa, "plain-user").await;
    let resp = get("/admin", Some(&s(&plain, "access_token")))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(challenge(&resp).contains("insufficient_scope"));

    // A token without api:read: 403 naming the scope.
    let pk = pkce();
    let code = app
        .code_as(&spa, "plain-user", &pk, &[("scope", "api:write")])
        .await;
    let narrow: Value = app
        .exchange(&spa, &code, &pk.verifier)
        .await
        .json()
        .await
        .unwrap();
    let resp = get("/read", Some(&s(&narrow, "access_token")))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(challenge(&resp).contains("scope=\"api:read\""));
    assert!(challenge(&resp).contains("resource_metadata="));

    // A forged or garbled token: 401 invalid_token; a token in the URL is refused.
    let resp = get("/read", Some("not.a.token")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(challenge(&resp).contains("invalid_token"));
    let in_url = format!("/read?access_token={admin_token}");
    assert_eq!(get(&in_url, None).await.unwrap().status().as_u16(), 400);
}
