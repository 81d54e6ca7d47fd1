//! The resource-server side (issue 4, point 6): `gatehouse::verify` against a running
//! Gatehouse, and `examples/resource_server.rs` as a separate process.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gatehouse::verify::{Config, Verifier, VerifyError};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    verify_fetches_jwks_and_accepts_gatehouse_tokens,
    |app: TestApp| async move {
        let spa = app.spa();
        app.user("ivy", &["admin"]);
        let tokens = app.tokens_for(&spa, "ivy").await;
        let token = tokens["access_token"].as_str().unwrap();
        let verifier = Verifier::new(Config::new(&app.issuer, AUDIENCE)).unwrap();
        let claims = verifier.verify(token).await.unwrap();
        assert!(claims.sub.starts_with("usr_"));
        assert!(claims.has_scope("api:read") && claims.has_role("admin"));
        // Another audience's verifier refuses it.
        let other = Verifier::new(Config::new(&app.issuer, "https://other-api.example")).unwrap();
        assert_eq!(other.verify(token).await, Err(VerifyError::WrongAudience));
    }
);

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

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

both_backends!(
    example_resource_server_enforces_scope_and_role,
    |app: TestApp| async move {
        let port = free_port();
        let _rs = Kill(
            Command::new(example_binary())
                .env("RS_BIND", format!("127.0.0.1:{port}"))
                .env("RS_ISSUER", &app.issuer)
                .env("RS_AUDIENCE", AUDIENCE)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut up = false;
        for _ in 0..100 {
            if http
                .get(format!("{base}/public"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "the example resource server did not start");
        let get = |path: &str, token: Option<&str>| {
            let mut req = http.get(format!("{base}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };

        // No token: 401 with a bare Bearer challenge.
        let resp = get("/read", None).await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm="));

        let spa = app.spa();
        app.user("admin-user", &["admin"]);
        app.user("plain-user", &[]);
        // The admin signs in through a first-party app (password grant), so that the browser
        // session below stays plain-user's.
        let first_party = app.register(gatehouse::registry::NewClient {
            name: "First-party".into(),
            confidential: true,
            grant_types: vec!["password".parse().expect("grant type")],
            scopes: vec!["api:read".into()],
            audiences: vec![AUDIENCE.into()],
            ..Default::default()
        });
        let auth = basic(&first_party.id, first_party.secret.as_deref().unwrap());
        let form = [
            ("grant_type", "password"),
            ("username", "admin-user"),
            ("password", PASSWORD),
        ];
        let admin: Value = app
            .post_form("/token", &form, Some(&auth))
            .await
            .json()
            .await
            .unwrap();
        let admin_token = admin["access_token"].as_str().unwrap();
        let resp = get("/read", Some(admin_token)).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body: Value = resp.json().await.unwrap();
        assert!(body["sub"].as_str().unwrap().starts_with("usr_"));
        assert_eq!(body["scope"], "api:read");
        assert_eq!(body["roles"], serde_json::json!(["admin"]));
        assert_eq!(
            get("/admin", Some(admin_token))
                .await
                .unwrap()
                .status()
                .as_u16(),
            200
        );

        // A user without the role: 403 insufficient_scope.
        let plain = app.tokens_for(&spa, "plain-user").await;
        let resp = get("/admin", Some(plain["access_token"].as_str().unwrap()))
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403);
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope"));

        // A token without api:read: 403 naming the scope.
        let pk = pkce();
        let q = app
            .authorize_code(&spa, "plain-user", &pk, &[("scope", "api:write")])
            .await;
        let narrow: Value = app
            .exchange(&spa, &q["code"], &pk.verifier)
            .await
            .json()
            .await
            .unwrap();
        let resp = get("/read", Some(narrow["access_token"].as_str().unwrap()))
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403);
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"api:read\""));

        // A forged or garbled token: 401 invalid_token; a token in the URL is refused.
        let resp = get("/read", Some("not.a.token")).await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token"));
        let resp = http
            .get(format!("{base}/read?access_token={admin_token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
    }
);
