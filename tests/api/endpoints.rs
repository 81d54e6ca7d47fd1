//! Metadata (RFC 8414), JWKS (RFC 7517/7638), revocation (RFC 7009), introspection (RFC 7662),
//! health and readiness, and the security headers every response carries.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

// ---------------------------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------------------------

/// GET a path with the cookie-less client.
async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.api.get(app.url(path)).send().await.expect("GET")
}

async fn metadata(app: &TestApp) -> Value {
    let resp = get(app, "/.well-known/oauth-authorization-server").await;
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("metadata json")
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_owned())
}

/// Asserts `Cache-Control: public, max-age=N` with N > 0.
fn assert_public_cache(resp: &reqwest::Response) {
    let cc = header(resp, "cache-control").expect("Cache-Control header");
    let directives: Vec<&str> = cc.split(',').map(str::trim).collect();
    assert!(
        directives.contains(&"public"),
        "Cache-Control {cc:?} is not public"
    );
    let max_age = directives
        .iter()
        .find_map(|d| d.strip_prefix("max-age="))
        .unwrap_or_else(|| panic!("Cache-Control {cc:?} has no max-age"));
    let secs: u64 = max_age.parse().expect("max-age is a number");
    assert!(secs > 0, "max-age must be positive in {cc:?}");
    assert!(
        !cc.contains("no-store"),
        "cacheable document marked no-store: {cc:?}"
    );
}

fn as_strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a JSON array, got {v}"))
        .iter()
        .map(|s| s.as_str().expect("array of strings").to_owned())
        .collect()
}

/// The standard authorize parameters for a client, with some replaced or added.
fn authorize_params(client: &TestClient, challenge: &str, overrides: &[(&str, &str)]) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("client_id".into(), client.id.clone()),
        ("redirect_uri".into(), REDIRECT.into()),
        ("response_type".into(), "code".into()),
        ("state".into(), "state-123".into()),
        ("code_challenge".into(), challenge.into()),
        ("code_challenge_method".into(), "S256".into()),
    ];
    for (k, v) in overrides {
        match params.iter_mut().find(|(name, _)| name == k) {
            Some(p) => p.1 = (*v).to_owned(),
            None => params.push(((*k).to_owned(), (*v).to_owned())),
        }
    }
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params {
        q.append_pair(k, v);
    }
    q.finish()
}

/// Asserts `/authorize` accepted the request: it continues to the login (or consent) page.
async fn assert_authorize_accepted(app: &TestApp, query: &str, what: &str) {
    let resp = app.get_authorize(query).await;
    assert!(
        resp.status().is_redirection(),
        "{what}: status {}",
        resp.status()
    );
    let loc = location(&resp);
    assert!(
        loc.starts_with("/login") || loc.starts_with("/consent"),
        "{what}: expected to continue to login/consent, got {loc}"
    );
}

/// Asserts `/authorize` refused the request with an error redirect to the client.
async fn assert_authorize_error(app: &TestApp, query: &str, error: &str, what: &str) {
    let resp = app.get_authorize(query).await;
    assert!(
        resp.status().is_redirection(),
        "{what}: status {}",
        resp.status()
    );
    let loc = location(&resp);
    assert!(
        loc.starts_with(REDIRECT),
        "{what}: error must go to the client, got {loc}"
    );
    let q = query_of(&loc);
    assert_eq!(
        q.get("error").map(String::as_str),
        Some(error),
        "{what}: {loc}"
    );
    assert_eq!(
        q.get("state").map(String::as_str),
        Some("state-123"),
        "{what}: {loc}"
    );
    assert_eq!(q.get("iss"), Some(&app.issuer), "{what}: {loc}");
    assert!(!q.contains_key("code"), "{what}: a code was issued: {loc}");
}

/// Code flow for a confidential client authenticating with client_secret_basic.
async fn confidential_tokens(app: &TestApp, client: &TestClient, username: &str) -> Value {
    let pkce = pkce();
    let q = app.authorize_code(client, username, &pkce, &[]).await;
    let auth = basic(&client.id, client.secret.as_deref().expect("confidential"));
    let resp = app
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &q["code"]),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &pkce.verifier),
            ],
            Some(&auth),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200, "confidential code exchange");
    resp.json().await.expect("token json")
}

/// Refresh for a confidential client (client_secret_basic).
async fn confidential_refresh(app: &TestApp, client: &TestClient, rt: &str) -> reqwest::Response {
    let auth = basic(&client.id, client.secret.as_deref().expect("confidential"));
    app.post_form(
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        Some(&auth),
    )
    .await
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v}"))
        .to_owned()
}

/// POST /revoke as a public client.
async fn revoke_public(app: &TestApp, client: &TestClient, token: &str) -> reqwest::Response {
    app.post_form(
        "/revoke",
        &[("token", token), ("client_id", &client.id)],
        None,
    )
    .await
}

/// POST /introspect with raw credentials; returns status and the JSON body.
async fn introspect_raw(
    app: &TestApp,
    form: &[(&str, &str)],
    authorization: Option<&str>,
) -> (u16, Value) {
    let resp = app.post_form("/introspect", form, authorization).await;
    let status = resp.status().as_u16();
    let body = resp.json().await.expect("introspection body is JSON");
    (status, body)
}

fn inactive() -> Value {
    json!({"active": false})
}

const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

// ---------------------------------------------------------------------------------------------
// 35. Metadata
// ---------------------------------------------------------------------------------------------

both_backends!(metadata_matches_configuration, |app: TestApp| async move {
    let resp = get(&app, "/.well-known/oauth-authorization-server").await;
    assert_eq!(resp.status().as_u16(), 200);
    let ct = header(&resp, "content-type").expect("Content-Type");
    assert!(ct.starts_with("application/json"), "Content-Type {ct:?}");
    assert_public_cache(&resp);
    let etag = header(&resp, "etag").expect("ETag");
    let m: Value = resp.json().await.expect("metadata json");

    assert_eq!(
        m["issuer"],
        json!(app.issuer),
        "issuer must equal the configured issuer exactly"
    );
    for (key, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ] {
        let value = s(&m, key);
        let url =
            url::Url::parse(&value).unwrap_or_else(|_| panic!("{key} {value:?} is not absolute"));
        assert!(
            value.starts_with(&format!("{}/", app.issuer)),
            "{key} {value:?} is not under the issuer"
        );
        assert_eq!(url.path(), path, "{key}");
        assert!(
            url.query().is_none() && url.fragment().is_none(),
            "{key} {value:?}"
        );
    }
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        m["authorization_response_iss_parameter_supported"],
        json!(true)
    );

    // The advertised endpoints are real: the JWKS answers with keys, the POST endpoints with
    // OAuth JSON errors (not 404).
    let jwks: Value = app
        .api
        .get(s(&m, "jwks_uri"))
        .send()
        .await
        .expect("GET jwks_uri")
        .json()
        .await
        .expect("jwks json");
    assert!(!jwks["keys"].as_array().expect("keys").is_empty());
    for key in [
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let resp = app
            .api
            .post(s(&m, key))
            .form(&[("token", "x")])
            .send()
            .await
            .expect("POST");
        let status = resp.status().as_u16();
        assert!(status == 400 || status == 401, "{key}: status {status}");
        let body: Value = resp.json().await.expect("OAuth error JSON");
        assert!(body["error"].is_string(), "{key}: {body}");
    }

    // Conditional GET: the same ETag gives 304 without a body, another one the document.
    let resp = app
        .api
        .get(app.url("/.well-known/oauth-authorization-server"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 304);
    assert_eq!(header(&resp, "etag").as_deref(), Some(etag.as_str()));
    assert!(resp.bytes().await.expect("body").is_empty());
    let resp = app
        .api
        .get(app.url("/.well-known/oauth-authorization-server"))
        .header("If-None-Match", "\"something-else\"")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
});

both_backends!(
    metadata_advertises_only_what_is_enforced,
    |app: TestApp| async move {
        let m = metadata(&app).await;
        let spa = app.spa();
        let conf = app.confidential();
        app.user("alice", &[]);

        // --- response_types_supported
        let response_types = as_strings(&m["response_types_supported"]);
        for rt in &response_types {
            match rt.as_str() {
                "code" => {
                    let p = pkce();
                    assert_authorize_accepted(
                        &app,
                        &authorize_params(&spa, &p.challenge, &[]),
                        "response_type=code",
                    )
                    .await;
                }
                other => panic!("response type {other:?} is advertised: exercise it here"),
            }
        }
        for rt in ["token", "id_token", "code token", "code id_token", "none"] {
            if response_types.iter().any(|a| a == rt) {
                continue;
            }
            let p = pkce();
            let q = authorize_params(&spa, &p.challenge, &[("response_type", rt)]);
            assert_authorize_error(
                &app,
                &q,
                "unsupported_response_type",
                &format!("response_type={rt}"),
            )
            .await;
        }

        // --- code_challenge_methods_supported: S256 end to end, plain refused.
        let methods = as_strings(&m["code_challenge_methods_supported"]);
        assert_eq!(methods, vec!["S256".to_owned()]);
        let spa_tokens = app.tokens_for(&spa, "alice").await; // S256, response_type=code, auth method none
        let p = pkce();
        let q = authorize_params(&spa, &p.verifier, &[("code_challenge_method", "plain")]);
        assert_authorize_error(&app, &q, "invalid_request", "code_challenge_method=plain").await;

        // --- response_modes_supported
        let modes = as_strings(&m["response_modes_supported"]);
        for mode in &modes {
            match mode.as_str() {
                "query" => {
                    let p = pkce();
                    let q = authorize_params(&spa, &p.challenge, &[("response_mode", "query")]);
                    assert_authorize_accepted(&app, &q, "response_mode=query").await;
                }
                other => panic!("response mode {other:?} is advertised: exercise it here"),
            }
        }
        for mode in ["fragment", "form_post", "web_message"] {
            if modes.iter().any(|a| a == mode) {
                continue;
            }
            let p = pkce();
            let q = authorize_params(&spa, &p.challenge, &[("response_mode", mode)]);
            assert_authorize_error(
                &app,
                &q,
                "invalid_request",
                &format!("response_mode={mode}"),
            )
            .await;
        }

        // --- token_endpoint_auth_methods_supported
        let auth_methods = as_strings(&m["token_endpoint_auth_methods_supported"]);
        let mut conf_rt: Option<String> = None;
        for method in &auth_methods {
            match method.as_str() {
                "client_secret_basic" => {
                    let t = confidential_tokens(&app, &conf, "alice").await;
                    conf_rt = Some(s(&t, "refresh_token"));
                }
                "client_secret_post" => {
                    let t = confidential_tokens(&app, &conf, "alice").await;
                    let resp = app
                        .post_form(
                            "/token",
                            &[
                                ("grant_type", "refresh_token"),
                                ("refresh_token", &s(&t, "refresh_token")),
                                ("client_id", &conf.id),
                                ("client_secret", conf.secret.as_deref().unwrap()),
                            ],
                            None,
                        )
                        .await;
                    assert_eq!(resp.status().as_u16(), 200, "client_secret_post");
                }
                "none" => {
                    // The public client's code exchange above; its refresh token refreshes.
                    let resp = app.refresh(&spa, &s(&spa_tokens, "refresh_token")).await;
                    assert_eq!(
                        resp.status().as_u16(),
                        200,
                        "auth method none (public client)"
                    );
                }
                other => {
                    panic!("token endpoint auth method {other:?} is advertised: exercise it here")
                }
            }
        }
        let conf_rt = conf_rt.expect("client_secret_basic must be advertised");
        if !auth_methods.iter().any(|a| a == "private_key_jwt") {
            let resp = app
                .post_form(
                    "/token",
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &conf_rt),
                        ("client_id", &conf.id),
                        (
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        ),
                        ("client_assertion", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
                    ],
                    None,
                )
                .await;
            assert_oauth_error(resp, 401, "invalid_client").await;
        }
        // A confidential client cannot fall back to "none".
        let resp = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &conf_rt),
                    ("client_id", &conf.id),
                ],
                None,
            )
            .await;
        assert_oauth_error(resp, 401, "invalid_client").await;

        // --- grant_types_supported: every advertised one works, others are unsupported.
        let grants = as_strings(&m["grant_types_supported"]);
        for g in &grants {
            match g.as_str() {
                // Exercised above: the code exchanges (public and confidential).
                "authorization_code" => assert!(spa_tokens["access_token"].is_string()),
                "refresh_token" => {
                    let resp = confidential_refresh(&app, &conf, &conf_rt).await;
                    assert_eq!(resp.status().as_u16(), 200, "refresh_token grant");
                }
                "password" | "client_credentials" => {
                    let first_party = app.register(gatehouse::registry::NewClient {
                        name: "First-party app".into(),
                        confidential: true,
                        grant_types: vec![
                            g.parse().expect("grant type"),
                            gatehouse::oauth::model::GrantType::RefreshToken,
                        ],
                        scopes: vec!["api:read".into()],
                        audiences: vec![AUDIENCE.into()],
                        ..Default::default()
                    });
                    let auth = basic(&first_party.id, first_party.secret.as_deref().unwrap());
                    let mut form = vec![("grant_type", g.as_str()), ("scope", "api:read")];
                    if g == "password" {
                        form.extend([("username", "alice"), ("password", PASSWORD)]);
                    }
                    let resp = app.post_form("/token", &form, Some(&auth)).await;
                    assert_eq!(resp.status().as_u16(), 200, "{g} grant");
                }
                other => panic!("grant type {other:?} is advertised: exercise it here"),
            }
        }
        let auth = basic(&conf.id, conf.secret.as_deref().unwrap());
        for (g, extra) in [
            ("implicit", vec![]),
            (
                "urn:ietf:params:oauth:grant-type:device_code",
                vec![("device_code", "x")],
            ),
            (
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                vec![("assertion", "x")],
            ),
        ] {
            assert!(
                !grants.iter().any(|a| a == g),
                "grant type {g} is advertised but this test expects it refused"
            );
            let mut form = vec![("grant_type", g)];
            form.extend(extra);
            let resp = app.post_form("/token", &form, Some(&auth)).await;
            assert_oauth_error(resp, 400, "unsupported_grant_type").await;
        }

        // --- introspection_endpoint_auth_methods_supported
        let at = s(&spa_tokens, "access_token");
        let introspection_methods = as_strings(&m["introspection_endpoint_auth_methods_supported"]);
        for method in &introspection_methods {
            let (status, body) = match method.as_str() {
                "client_secret_basic" => introspect_raw(&app, &[("token", &at)], Some(&auth)).await,
                "client_secret_post" => {
                    introspect_raw(
                        &app,
                        &[
                            ("token", &at),
                            ("client_id", &conf.id),
                            ("client_secret", conf.secret.as_deref().unwrap()),
                        ],
                        None,
                    )
                    .await
                }
                other => {
                    panic!("introspection auth method {other:?} is advertised: exercise it here")
                }
            };
            assert_eq!(status, 200, "introspection with {method}: {body}");
            assert_eq!(
                body["active"],
                json!(true),
                "introspection with {method}: {body}"
            );
        }
        assert!(!introspection_methods.iter().any(|a| a == "none"));
        let resp = app
            .post_form(
                "/introspect",
                &[("token", &at), ("client_id", &spa.id)],
                None,
            )
            .await;
        assert_oauth_error(resp, 401, "invalid_client").await;

        // --- revocation_endpoint_auth_methods_supported (unknown tokens: 200 for an authenticated client)
        for method in as_strings(&m["revocation_endpoint_auth_methods_supported"]) {
            let resp = match method.as_str() {
                "client_secret_basic" => {
                    app.post_form("/revoke", &[("token", "unknown")], Some(&auth))
                        .await
                }
                "client_secret_post" => {
                    app.post_form(
                        "/revoke",
                        &[
                            ("token", "unknown"),
                            ("client_id", &conf.id),
                            ("client_secret", conf.secret.as_deref().unwrap()),
                        ],
                        None,
                    )
                    .await
                }
                "none" => revoke_public(&app, &spa, "unknown").await,
                other => panic!("revocation auth method {other:?} is advertised: exercise it here"),
            };
            assert_eq!(resp.status().as_u16(), 200, "revocation with {method}");
        }
    }
);

// ---------------------------------------------------------------------------------------------
// 33. JWKS and keys at rest
// ---------------------------------------------------------------------------------------------

both_backends!(
    jwks_exposes_public_members_only,
    |app: TestApp| async move {
        let resp = get(&app, "/.well-known/jwks.json").await;
        assert_eq!(resp.status().as_u16(), 200);
        let ct = header(&resp, "content-type").expect("Content-Type");
        assert!(
            ct.starts_with("application/json") || ct.starts_with("application/jwk-set+json"),
            "{ct}"
        );
        assert_public_cache(&resp);
        let etag = header(&resp, "etag").expect("ETag");
        assert_eq!(
            header(&resp, "access-control-allow-origin").as_deref(),
            Some("*")
        );
        let jwks: Value = resp.json().await.expect("jwks json");
        let keys = jwks["keys"].as_array().expect("keys array");
        assert!(!keys.is_empty(), "JWKS has no keys");

        let mut kids = std::collections::HashSet::new();
        for key in keys {
            for private in PRIVATE_MEMBERS {
                assert!(key.get(private).is_none(), "JWKS leaks {private:?}: {key}");
            }
            let kid = s(key, "kid");
            assert!(kids.insert(kid.clone()), "duplicate kid {kid}");
            assert_eq!(key["kty"], "EC", "{key}");
            assert_eq!(key["crv"], "P-256", "{key}");
            assert_eq!(key["alg"], "ES256", "{key}");
            assert_eq!(key["use"], "sig", "{key}");
            // RFC 7638 §3.2: required members in lexicographic order, no whitespace.
            let canonical = format!(
                r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
                s(key, "crv"),
                s(key, "kty"),
                s(key, "x"),
                s(key, "y")
            );
            let digest =
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
            assert_eq!(
                kid,
                URL_SAFE_NO_PAD.encode(digest.as_ref()),
                "kid is not the RFC 7638 thumbprint"
            );
        }

        // Conditional GET.
        let resp = app
            .api
            .get(app.url("/.well-known/jwks.json"))
            .header("If-None-Match", &etag)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status().as_u16(), 304);

        // An access token names a published kid, and the published key verifies it.
        let spa = app.spa();
        app.user("alice", &[]);
        let tokens = app.tokens_for(&spa, "alice").await;
        let at = s(&tokens, "access_token");
        let (h, _) = jwt_parts(&at);
        let kid = s(&h, "kid");
        assert_eq!(h["alg"], "ES256");
        let key = keys
            .iter()
            .find(|k| k["kid"] == json!(kid))
            .unwrap_or_else(|| panic!("token kid {kid} is not in the JWKS"));
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).expect("JWK");
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&[&app.issuer]);
        validation.set_audience(&[AUDIENCE]);
        jsonwebtoken::decode::<Value>(&at, &decoding, &validation)
            .expect("JWKS key verifies the access token");
        // A tampered token does not verify.
        let mut parts: Vec<String> = at.split('.').map(str::to_owned).collect();
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["sub"] = json!("someone-else");
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        assert!(jsonwebtoken::decode::<Value>(&parts.join("."), &decoding, &validation).is_err());
    }
);

both_backends!(signing_keys_stored_encrypted, |app: TestApp| async move {
    let mut conn = app.conn();
    let rows = gatehouse::store::keys::SigningKeyRow::all(&mut conn).expect("signing keys");
    assert!(!rows.is_empty(), "the server created no signing key");
    for row in rows {
        let parts: Vec<&str> = row.private_jwe.split('.').collect();
        assert_eq!(parts.len(), 5, "private_jwe is not a compact JWE");
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64 header"))
                .expect("JWE header json");
        assert!(
            header["enc"].as_str().is_some_and(|e| e.contains("GCM")),
            "{header}"
        );
        assert!(!row.private_jwe.contains("PRIVATE KEY"));
        assert!(!row.private_jwe.contains("\"d\""));
        assert!(
            serde_json::from_str::<Value>(&row.private_jwe).is_err(),
            "private_jwe is plain JSON"
        );

        let public: Value = serde_json::from_str(&row.public_jwk).expect("public_jwk json");
        for private in PRIVATE_MEMBERS {
            assert!(public.get(private).is_none(), "public_jwk has {private:?}");
        }
        assert_eq!(public["kid"], json!(row.kid));

        // The PKCS#8 of an EC key embeds the public point: a plaintext (or merely encoded)
        // private key would show x in the stored value.
        let x = URL_SAFE_NO_PAD.decode(s(&public, "x")).expect("x");
        let ciphertext = URL_SAFE_NO_PAD.decode(parts[3]).expect("b64 ciphertext");
        assert!(
            ciphertext.len() >= 64,
            "ciphertext too short for a private key"
        );
        assert!(
            !ciphertext.windows(x.len()).any(|w| w == x.as_slice()),
            "private key stored in clear"
        );
        assert!(!row.private_jwe.contains(&s(&public, "x")));
        // Another master key cannot open it.
        assert!(gatehouse::keys::MasterKey::generate()
            .open(&row.private_jwe)
            .is_err());
    }
});

// ---------------------------------------------------------------------------------------------
// 37. Revocation
// ---------------------------------------------------------------------------------------------

both_backends!(revocation_rfc7009, |app: TestApp| async move {
    let spa = app.spa();
    let other = app.spa();
    let conf = app.confidential(); // registered for AUDIENCE: may introspect the SPA's access tokens
    app.user("alice", &[]);

    // Unknown token: 200, for a public and a confidential client.
    let resp = revoke_public(&app, &spa, "no-such-token").await;
    assert_eq!(resp.status().as_u16(), 200);
    let conf_auth = basic(&conf.id, conf.secret.as_deref().unwrap());
    let resp = app
        .post_form("/revoke", &[("token", "no-such-token")], Some(&conf_auth))
        .await;
    assert_eq!(resp.status().as_u16(), 200);

    // Missing token parameter.
    let resp = app
        .post_form("/revoke", &[("client_id", &spa.id)], None)
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;

    // Another client's tokens are not revoked (but the answer is still 200).
    let t1 = app.tokens_for(&spa, "alice").await;
    let (rt1, at1) = (s(&t1, "refresh_token"), s(&t1, "access_token"));
    for token in [&rt1, &at1] {
        let resp = revoke_public(&app, &other, token).await;
        assert_eq!(resp.status().as_u16(), 200);
    }
    assert_eq!(
        app.introspect(&conf, &at1).await["active"],
        json!(true),
        "other client revoked the AT"
    );
    let resp = app.refresh(&spa, &rt1).await;
    assert_eq!(resp.status().as_u16(), 200, "other client revoked the RT");
    let t2: Value = resp.json().await.unwrap();
    let (rt2, at2) = (s(&t2, "refresh_token"), s(&t2, "access_token"));
    assert_eq!(app.introspect(&conf, &at2).await["active"], json!(true));

    // Revoking the current refresh token: it no longer refreshes and the grant's access tokens die.
    let resp = revoke_public(&app, &spa, &rt2).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_oauth_error(app.refresh(&spa, &rt2).await, 400, "invalid_grant").await;
    assert_eq!(
        app.introspect(&conf, &at2).await,
        inactive(),
        "AT of the revoked RT"
    );
    assert_eq!(
        app.introspect(&conf, &at1).await,
        inactive(),
        "earlier AT of the same grant"
    );

    // Revoking a refresh token kills its successors too.
    let t3 = app.tokens_for(&spa, "alice").await;
    let rt3 = s(&t3, "refresh_token");
    let resp = app.refresh(&spa, &rt3).await;
    assert_eq!(resp.status().as_u16(), 200);
    let t4: Value = resp.json().await.unwrap();
    let (rt4, at4) = (s(&t4, "refresh_token"), s(&t4, "access_token"));
    let resp = revoke_public(&app, &spa, &rt3).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_oauth_error(app.refresh(&spa, &rt4).await, 400, "invalid_grant").await;
    assert_eq!(app.introspect(&conf, &at4).await, inactive());

    // Revoking an access token deactivates it for introspection.
    let t5 = app.tokens_for(&spa, "alice").await;
    let at5 = s(&t5, "access_token");
    assert_eq!(app.introspect(&conf, &at5).await["active"], json!(true));
    let resp = revoke_public(&app, &spa, &at5).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(app.introspect(&conf, &at5).await, inactive());

    // A confidential client with a wrong secret: 401 invalid_client, nothing revoked.
    let ct = confidential_tokens(&app, &conf, "alice").await;
    let crt = s(&ct, "refresh_token");
    let resp = app
        .post_form(
            "/revoke",
            &[("token", &crt)],
            Some(&basic(&conf.id, "wrong-secret")),
        )
        .await;
    assert!(
        header(&resp, "www-authenticate").is_some(),
        "401 without WWW-Authenticate"
    );
    assert_oauth_error(resp, 401, "invalid_client").await;
    let resp = app
        .post_form(
            "/revoke",
            &[
                ("token", &crt),
                ("client_id", &conf.id),
                ("client_secret", "wrong-secret"),
            ],
            None,
        )
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await;
    // Without its secret at all.
    let resp = app
        .post_form("/revoke", &[("token", &crt), ("client_id", &conf.id)], None)
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await;
    let resp = confidential_refresh(&app, &conf, &crt).await;
    assert_eq!(
        resp.status().as_u16(),
        200,
        "a refused revocation revoked the token"
    );
});

// ---------------------------------------------------------------------------------------------
// 38, 39. Introspection
// ---------------------------------------------------------------------------------------------

both_backends!(
    introspection_requires_authenticated_confidential_client,
    |app: TestApp| async move {
        let spa = app.spa();
        let conf = app.confidential();
        app.user("alice", &[]);
        let tokens = app.tokens_for(&spa, "alice").await;
        let at = s(&tokens, "access_token");
        let rt = s(&tokens, "refresh_token");
        // Control: the authenticated confidential client sees it active.
        assert_eq!(app.introspect(&conf, &at).await["active"], json!(true));

        let wrong = basic(&conf.id, "wrong-secret");
        let unknown = basic("cl_does_not_exist", "whatever");
        let spa_id = spa.id.clone();
        let conf_id = conf.id.clone();
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            ("no credentials", vec![], None),
            ("public client", vec![("client_id", &spa_id)], None),
            ("wrong secret (basic)", vec![], Some(&wrong)),
            (
                "wrong secret (post)",
                vec![("client_id", &conf_id), ("client_secret", "wrong-secret")],
                None,
            ),
            (
                "confidential without secret",
                vec![("client_id", &conf_id)],
                None,
            ),
            ("unknown client", vec![], Some(&unknown)),
            ("bearer token as credentials", vec![], Some("Bearer dummy")),
        ];
        for (what, creds, auth) in cases {
            let mut answers = Vec::new();
            for token in [at.as_str(), rt.as_str(), "no-such-token"] {
                let mut form = vec![("token", token)];
                form.extend(creds.iter().copied());
                let resp = app.post_form("/introspect", &form, auth).await;
                let status = resp.status().as_u16();
                assert!(
                    header(&resp, "www-authenticate").is_some(),
                    "{what}: no WWW-Authenticate"
                );
                let body: Value = resp.json().await.expect("JSON error");
                assert_eq!(status, 401, "{what}: {body}");
                assert_eq!(body["error"], "invalid_client", "{what}: {body}");
                assert!(
                    body.get("active").is_none(),
                    "{what}: leaks activity: {body}"
                );
                answers.push((status, body));
            }
            // Active, active refresh and unknown tokens get the same answer.
            assert!(
                answers.windows(2).all(|w| w[0] == w[1]),
                "{what}: answers differ: {answers:?}"
            );
        }

        // An authenticated confidential client that is neither the token's client nor its audience
        // learns nothing either.
        let stranger = app.register(gatehouse::registry::NewClient {
            name: "Stranger".into(),
            confidential: true,
            redirect_uris: vec![REDIRECT.into()],
            scopes: vec!["api:read".into()],
            audiences: vec!["https://other.example.com".into()],
            ..Default::default()
        });
        assert_eq!(app.introspect(&stranger, &at).await, inactive());
        assert_eq!(app.introspect(&stranger, &rt).await, inactive());
    }
);

both_backends!(
    introspection_inactive_is_exactly_active_false,
    |app: TestApp| async move {
        let conf = app.confidential();
        app.user("alice", &[]);

        // Unknown tokens, garbage, and a forged JWT.
        for token in ["no-such-token", "", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
            let auth = basic(&conf.id, conf.secret.as_deref().unwrap());
            let (status, body) = introspect_raw(&app, &[("token", token)], Some(&auth)).await;
            if token.is_empty() && status == 400 {
                continue; // an empty token parameter may be refused as invalid_request
            }
            assert_eq!(status, 200, "token {token:?}: {body}");
            assert_eq!(body, inactive(), "token {token:?}");
        }

        // Rotated refresh token.
        let t1 = confidential_tokens(&app, &conf, "alice").await;
        let rt1 = s(&t1, "refresh_token");
        assert_eq!(
            app.introspect(&conf, &rt1).await["active"],
            json!(true),
            "control: fresh RT"
        );
        let resp = confidential_refresh(&app, &conf, &rt1).await;
        assert_eq!(resp.status().as_u16(), 200);
        let t2: Value = resp.json().await.unwrap();
        let (rt2, at2) = (s(&t2, "refresh_token"), s(&t2, "access_token"));
        assert_eq!(app.introspect(&conf, &rt1).await, inactive(), "rotated RT");
        assert_eq!(
            app.introspect(&conf, &rt2).await["active"],
            json!(true),
            "control: successor RT"
        );

        // An access token signed by us with its signature broken.
        let mut broken = at2.clone();
        let last = broken.pop().unwrap();
        broken.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            app.introspect(&conf, &broken).await,
            inactive(),
            "tampered AT"
        );

        // Revoked refresh token and its access token.
        let auth = basic(&conf.id, conf.secret.as_deref().unwrap());
        let resp = app
            .post_form("/revoke", &[("token", &rt2)], Some(&auth))
            .await;
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(app.introspect(&conf, &rt2).await, inactive(), "revoked RT");
        assert_eq!(
            app.introspect(&conf, &at2).await,
            inactive(),
            "AT of a revoked grant"
        );

        // Expired refresh token (expiry moved into the past in the database).
        let t3 = confidential_tokens(&app, &conf, "alice").await;
        let rt3 = s(&t3, "refresh_token");
        assert_eq!(
            app.introspect(&conf, &rt3).await["active"],
            json!(true),
            "control: fresh RT"
        );
        {
            use gatehouse::store::schema::refresh_tokens::dsl;
            let mut conn = app.conn();
            let hash = gatehouse::secret::TokenHash::of(&rt3).0;
            let n = diesel::update(dsl::refresh_tokens.filter(dsl::token_hash.eq(&hash)))
                .set(dsl::expires_at.eq(gatehouse::state::now() - 60))
                .execute(&mut conn)
                .expect("expire the refresh token");
            assert_eq!(n, 1, "refresh tokens are stored by their SHA-256");
        }
        assert_eq!(app.introspect(&conf, &rt3).await, inactive(), "expired RT");
        assert_oauth_error(
            confidential_refresh(&app, &conf, &rt3).await,
            400,
            "invalid_grant",
        )
        .await;
    }
);

both_backends!(
    introspection_reports_active_tokens,
    |app: TestApp| async move {
        let conf = app.confidential();
        let alice = app.user("alice", &[]);
        let before = gatehouse::state::now();
        let tokens = confidential_tokens(&app, &conf, "alice").await;
        let at = s(&tokens, "access_token");
        let rt = s(&tokens, "refresh_token");
        let auth = basic(&conf.id, conf.secret.as_deref().unwrap());

        let resp = app
            .post_form("/introspect", &[("token", &at)], Some(&auth))
            .await;
        assert_eq!(resp.status().as_u16(), 200);
        let cc = header(&resp, "cache-control").expect("Cache-Control");
        assert!(cc.contains("no-store"), "Cache-Control {cc:?}");
        let ct = header(&resp, "content-type").expect("Content-Type");
        assert!(ct.starts_with("application/json"), "{ct}");
        let body: Value = resp.json().await.unwrap();
        let (_, claims) = jwt_parts(&at);
        assert_eq!(body["active"], json!(true), "{body}");
        assert_eq!(body["scope"], tokens["scope"], "{body}");
        assert_eq!(body["client_id"], json!(conf.id), "{body}");
        assert_eq!(body["sub"], json!(alice), "{body}");
        assert_eq!(body["aud"], json!(AUDIENCE), "{body}");
        assert_eq!(body["iss"], json!(app.issuer), "{body}");
        assert_eq!(body["exp"], claims["exp"], "{body}");
        assert_eq!(body["iat"], claims["iat"], "{body}");
        let iat = body["iat"].as_i64().expect("iat");
        let exp = body["exp"].as_i64().expect("exp");
        assert!(
            iat >= before - 5 && iat <= gatehouse::state::now() + 5,
            "{body}"
        );
        assert_eq!(
            exp - iat,
            app.settings.tokens.access_token_ttl_secs,
            "{body}"
        );
        assert!(
            body["token_type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
            "{body}"
        );

        let resp = app
            .post_form("/introspect", &[("token", &rt)], Some(&auth))
            .await;
        assert_eq!(resp.status().as_u16(), 200);
        let cc = header(&resp, "cache-control").expect("Cache-Control");
        assert!(cc.contains("no-store"), "Cache-Control {cc:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["active"], json!(true), "{body}");
        assert_eq!(body["scope"], tokens["scope"], "{body}");
        assert_eq!(body["client_id"], json!(conf.id), "{body}");
        assert_eq!(body["sub"], json!(alice), "{body}");
        assert_eq!(body["aud"], json!(AUDIENCE), "{body}");
        assert_eq!(body["iss"], json!(app.issuer), "{body}");
        let iat = body["iat"].as_i64().expect("iat");
        let exp = body["exp"].as_i64().expect("exp");
        assert!(
            iat >= before - 5 && iat <= gatehouse::state::now() + 5,
            "{body}"
        );
        assert!(exp > gatehouse::state::now(), "{body}");
        assert!(
            body["token_type"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
    }
);

// ---------------------------------------------------------------------------------------------
// Health and headers
// ---------------------------------------------------------------------------------------------

both_backends!(health_and_readiness, |app: TestApp| async move {
    let resp = get(&app, "/healthz").await;
    assert_eq!(resp.status().as_u16(), 200);
    let resp = get(&app, "/readyz").await;
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.expect("readyz json");
    assert_eq!(body["database"], json!(true), "{body}");
    assert_eq!(body["signing_key"], json!(true), "{body}");
    // Liveness is GET only; nothing else hides behind it.
    let resp = app
        .api
        .post(app.url("/healthz"))
        .send()
        .await
        .expect("POST");
    assert!(
        resp.status().is_client_error(),
        "POST /healthz: {}",
        resp.status()
    );
});

both_backends!(
    security_headers_on_every_response,
    |app: TestApp| async move {
        let mut responses = vec![
            (
                "metadata",
                get(&app, "/.well-known/oauth-authorization-server").await,
            ),
            ("jwks", get(&app, "/.well-known/jwks.json").await),
            ("404", get(&app, "/no/such/page").await),
            ("healthz", get(&app, "/healthz").await),
            (
                "authorize error page",
                get(&app, "/authorize?client_id=unknown").await,
            ),
        ];
        responses.push((
            "token error",
            app.post_form(
                "/token",
                &[("grant_type", "bogus"), ("client_id", "x")],
                None,
            )
            .await,
        ));
        responses.push((
            "introspect 401",
            app.post_form("/introspect", &[("token", "x")], None).await,
        ));
        for (what, resp) in &responses {
            if *what == "404" {
                assert_eq!(resp.status().as_u16(), 404);
            }
            if *what == "token error" {
                assert_eq!(resp.status().as_u16(), 400);
            }
            assert_eq!(
                header(resp, "x-content-type-options").as_deref(),
                Some("nosniff"),
                "{what}"
            );
            assert_eq!(
                header(resp, "referrer-policy").as_deref(),
                Some("no-referrer"),
                "{what}"
            );
            assert_eq!(
                header(resp, "x-frame-options").as_deref(),
                Some("DENY"),
                "{what}"
            );
            let csp =
                header(resp, "content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
            assert!(
                csp.contains("frame-ancestors 'none'"),
                "{what}: CSP {csp:?}"
            );
        }
    }
);
