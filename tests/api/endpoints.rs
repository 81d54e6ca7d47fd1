//! Metadata (RFC 8414), JWKS (RFC 7517/7638), revocation (RFC 7009), introspection (RFC 7662),
//! health and readiness, and the security headers every response carries.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

// ---------------------------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------------------------

async fn metadata(app: &TestApp) -> Value {
    ok_json(app.get("/.well-known/oauth-authorization-server").await).await
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

/// `/authorize` for `client` with `overrides` refuses with `error`, back at the client.
async fn assert_authorize_error(
    app: &TestApp,
    client: &TestClient,
    overrides: &[(&str, &str)],
    error: &str,
) {
    let what = format!("{overrides:?}");
    let overrides: Vec<_> = overrides.iter().map(|(k, v)| (*k, Some(*v))).collect();
    let resp = app.authorize(client, &overrides).await;
    assert_error_redirect(app, &resp, error, Some(STATE), &what);
}

// ---------------------------------------------------------------------------------------------
// 35. Metadata
// ---------------------------------------------------------------------------------------------

both_backends!(metadata_matches_configuration);
async fn metadata_matches_configuration(app: TestApp) {
    let path = "/.well-known/oauth-authorization-server";
    let resp = app.get(path).await;
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
        let under = value.starts_with(&format!("{}/", app.issuer));
        assert!(under, "{key} {value:?} is not under the issuer");
        assert_eq!(url.path(), path, "{key}");
        assert!(
            url.query().is_none() && url.fragment().is_none(),
            "{key} {value:?}"
        );
    }
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    let iss_parameter = &m["authorization_response_iss_parameter_supported"];
    assert_eq!(iss_parameter, &json!(true));

    // The advertised endpoints are real: the JWKS answers with keys, the POST endpoints with
    // OAuth JSON errors (not 404).
    let jwks = ok_json(get_with(&app.api, &s(&m, "jwks_uri")).await).await;
    assert!(!jwks["keys"].as_array().expect("keys").is_empty());
    for key in [
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let (status, _, body) =
            read(post_with(&app.api, &s(&m, key), &[("token", "x")]).await).await;
        assert!(status == 400 || status == 401, "{key}: status {status}");
        assert!(body["error"].is_string(), "{key}: {body}");
    }

    // Conditional GET: the same ETag gives 304 without a body, another one the document.
    let conditional = |tag: &str| {
        app.api
            .get(app.url(path))
            .header("If-None-Match", tag)
            .send()
    };
    let resp = conditional(&etag).await.expect("GET");
    assert_eq!(resp.status().as_u16(), 304);
    assert_eq!(header(&resp, "etag").as_deref(), Some(etag.as_str()));
    assert!(resp.bytes().await.expect("body").is_empty());
    let resp = conditional("\"something-else\"").await.expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
}

both_backends!(metadata_advertises_only_what_is_enforced);
async fn metadata_advertises_only_what_is_enforced(app: TestApp) {
    let m = metadata(&app).await;
    let spa = app.spa();
    let conf = app.confidential();
    app.user("alice", &[]);
    let advertised = |key: &str| as_strings(&m[key]);

    // --- response_types_supported
    let response_types = advertised("response_types_supported");
    for rt in &response_types {
        match rt.as_str() {
            "code" => assert_continues(&app.authorize(&spa, &[]).await, "response_type=code"),
            other => panic!("response type {other:?} is advertised: exercise it here"),
        }
    }
    for rt in ["token", "id_token", "code token", "code id_token", "none"] {
        if !response_types.iter().any(|a| a == rt) {
            let overrides = [("response_type", rt)];
            assert_authorize_error(&app, &spa, &overrides, "unsupported_response_type").await;
        }
    }

    // --- code_challenge_methods_supported: S256 end to end, plain refused.
    let methods = advertised("code_challenge_methods_supported");
    assert_eq!(methods, vec!["S256".to_owned()]);
    let spa_tokens = app.tokens_for(&spa, "alice").await; // S256, response_type=code, auth method none
    let p = pkce();
    let plain = [("code_challenge_method", Some("plain"))];
    let resp = app
        .get_authorize(&authz(&spa.id, &p.verifier, &plain))
        .await;
    assert_error_redirect(&app, &resp, "invalid_request", Some(STATE), "plain");

    // --- response_modes_supported
    let modes = advertised("response_modes_supported");
    for mode in &modes {
        match mode.as_str() {
            "query" => {
                let resp = app
                    .authorize(&spa, &[("response_mode", Some("query"))])
                    .await;
                assert_continues(&resp, "response_mode=query");
            }
            other => panic!("response mode {other:?} is advertised: exercise it here"),
        }
    }
    for mode in ["fragment", "form_post", "web_message"] {
        if !modes.iter().any(|a| a == mode) {
            let overrides = [("response_mode", mode)];
            assert_authorize_error(&app, &spa, &overrides, "invalid_request").await;
        }
    }

    // --- token_endpoint_auth_methods_supported
    let auth_methods = advertised("token_endpoint_auth_methods_supported");
    let mut conf_rt: Option<String> = None;
    for method in &auth_methods {
        match method.as_str() {
            "client_secret_basic" => {
                let t = app.confidential_tokens(&conf, "alice").await;
                conf_rt = Some(s(&t, "refresh_token"));
            }
            "client_secret_post" => {
                let t = app.confidential_tokens(&conf, "alice").await;
                let resp = app
                    .token()
                    .refresh(&s(&t, "refresh_token"))
                    .secret_post(&conf);
                assert_eq!(
                    resp.send().await.status().as_u16(),
                    200,
                    "client_secret_post"
                );
            }
            "none" => {
                // The public client's code exchange above; its refresh token refreshes.
                let resp = app.refresh(&spa, &s(&spa_tokens, "refresh_token")).await;
                let status = resp.status().as_u16();
                assert_eq!(status, 200, "auth method none (public client)");
            }
            other => {
                panic!("token endpoint auth method {other:?} is advertised: exercise it here")
            }
        }
    }
    let conf_rt = conf_rt.expect("client_secret_basic must be advertised");
    let conf_refresh = || app.token().refresh(&conf_rt);
    if !auth_methods.iter().any(|a| a == "private_key_jwt") {
        let assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
        let req = conf_refresh()
            .client(&conf)
            .param("client_assertion_type", assertion_type);
        let req = req.param("client_assertion", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
        req.fails(401, "invalid_client").await;
    }
    // A confidential client cannot fall back to "none".
    conf_refresh()
        .client(&conf)
        .fails(401, "invalid_client")
        .await;

    // --- grant_types_supported: every advertised one works, others are unsupported.
    let grants = advertised("grant_types_supported");
    for g in &grants {
        match g.as_str() {
            // Exercised above: the code exchanges (public and confidential).
            "authorization_code" => assert!(spa_tokens["access_token"].is_string()),
            "refresh_token" => {
                let status = conf_refresh().basic(&conf).send().await.status();
                assert_eq!(status.as_u16(), 200, "refresh_token grant");
            }
            "password" | "client_credentials" => {
                let first_party = app.confidential_with(&[g, "refresh_token"]);
                let mut req = app.token().grant_type(g).scope("api:read");
                if g == "password" {
                    req = req.param("username", "alice").param("password", PASSWORD);
                }
                let status = req.basic(&first_party).send().await.status();
                assert_eq!(status.as_u16(), 200, "{g} grant");
            }
            other => panic!("grant type {other:?} is advertised: exercise it here"),
        }
    }
    for (g, extra) in [
        ("implicit", None),
        (
            "urn:ietf:params:oauth:grant-type:device_code",
            Some(("device_code", "x")),
        ),
        (
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            Some(("assertion", "x")),
        ),
    ] {
        let advertised = grants.iter().any(|a| a == g);
        assert!(
            !advertised,
            "grant type {g} is advertised but this test expects it refused"
        );
        let mut req = app.token().grant_type(g).basic(&conf);
        if let Some((k, v)) = extra {
            req = req.param(k, v);
        }
        req.fails(400, "unsupported_grant_type").await;
    }

    // --- introspection_endpoint_auth_methods_supported
    let at = s(&spa_tokens, "access_token");
    let introspection_methods = advertised("introspection_endpoint_auth_methods_supported");
    for method in &introspection_methods {
        let req = match method.as_str() {
            "client_secret_basic" => app.introspection(&at).basic(&conf),
            "client_secret_post" => app.introspection(&at).secret_post(&conf),
            other => {
                panic!("introspection auth method {other:?} is advertised: exercise it here")
            }
        };
        let (status, _, body) = req.read().await;
        assert_eq!(status, 200, "introspection with {method}: {body}");
        assert_eq!(
            body["active"],
            json!(true),
            "introspection with {method}: {body}"
        );
    }
    assert!(!introspection_methods.iter().any(|a| a == "none"));
    let public = app.introspection(&at).client(&spa);
    public.fails(401, "invalid_client").await;

    // --- revocation_endpoint_auth_methods_supported (unknown tokens: 200 for an authenticated client)
    for method in advertised("revocation_endpoint_auth_methods_supported") {
        let req = match method.as_str() {
            "client_secret_basic" => app.revocation("unknown").basic(&conf),
            "client_secret_post" => app.revocation("unknown").secret_post(&conf),
            "none" => app.revocation("unknown").client(&spa),
            other => panic!("revocation auth method {other:?} is advertised: exercise it here"),
        };
        let status = req.send().await.status().as_u16();
        assert_eq!(status, 200, "revocation with {method}");
    }
}

// ---------------------------------------------------------------------------------------------
// 33. JWKS and keys at rest
// ---------------------------------------------------------------------------------------------

both_backends!(jwks_exposes_public_members_only);
async fn jwks_exposes_public_members_only(app: TestApp) {
    let resp = app.get("/.well-known/jwks.json").await;
    assert_eq!(resp.status().as_u16(), 200);
    let ct = header(&resp, "content-type").expect("Content-Type");
    let json = ct.starts_with("application/json") || ct.starts_with("application/jwk-set+json");
    assert!(json, "{ct}");
    assert_public_cache(&resp);
    let etag = header(&resp, "etag").expect("ETag");
    // CORS only for origins a client registered (tests/api/cors.rs); none without an Origin.
    let cors = header(&resp, "access-control-allow-origin");
    assert_eq!(cors, None);
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
        let [crv, kty, x, y] = ["crv", "kty", "x", "y"].map(|m| s(key, m));
        let canonical = format!(r#"{{"crv":"{crv}","kty":"{kty}","x":"{x}","y":"{y}"}}"#);
        let thumbprint = URL_SAFE_NO_PAD.encode(sha256(canonical.as_bytes()));
        assert_eq!(kid, thumbprint, "kid is not the RFC 7638 thumbprint");
    }

    // Conditional GET.
    let conditional = app.api.get(app.url("/.well-known/jwks.json"));
    let resp = conditional
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 304);

    // An access token names a published kid, and the published key verifies it.
    let (_, tokens) = app.signed_in("alice", &[]).await;
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
    let verify = |jwt: &str| jsonwebtoken::decode::<Value>(jwt, &decoding, &validation);
    verify(&at).expect("JWKS key verifies the access token");
    // A tampered token does not verify.
    let mut parts: Vec<String> = at.split('.').map(str::to_owned).collect();
    let mut claims = jwt_parts(&at).1;
    claims["sub"] = json!("someone-else");
    parts[1] = b64_json(&claims);
    assert!(verify(&parts.join(".")).is_err());
}

both_backends!(signing_keys_stored_encrypted);
async fn signing_keys_stored_encrypted(app: TestApp) {
    let rows = app.signing_keys();
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
        let plain_json = serde_json::from_str::<Value>(&row.private_jwe).is_ok();
        assert!(!plain_json, "private_jwe is plain JSON");

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
        let in_clear = ciphertext.windows(x.len()).any(|w| w == x.as_slice());
        assert!(!in_clear, "private key stored in clear");
        assert!(!row.private_jwe.contains(&s(&public, "x")));
        // Another master key cannot open it.
        let other = gatehouse::keys::MasterKey::generate();
        assert!(other.open(&row.private_jwe).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// 37. Revocation
// ---------------------------------------------------------------------------------------------

both_backends!(revocation_rfc7009);
async fn revocation_rfc7009(app: TestApp) {
    let spa = app.spa();
    let other = app.spa();
    let conf = app.confidential(); // registered for AUDIENCE: may introspect the SPA's access tokens
    app.user("alice", &[]);
    let revoke = |client: &TestClient, token: &str| app.revocation(token).client(client).send();

    // Unknown token: 200, for a public and a confidential client.
    assert_eq!(revoke(&spa, "no-such-token").await.status().as_u16(), 200);
    let by_confidential = app.revocation("no-such-token").basic(&conf);
    assert_eq!(by_confidential.send().await.status().as_u16(), 200);

    // Missing token parameter.
    let no_token = app.revocation("").without("token").client(&spa);
    no_token.fails(400, "invalid_request").await;

    // Another client's tokens are not revoked (but the answer is still 200).
    let t1 = app.tokens_for(&spa, "alice").await;
    let (rt1, at1) = (s(&t1, "refresh_token"), s(&t1, "access_token"));
    for token in [&rt1, &at1] {
        assert_eq!(revoke(&other, token).await.status().as_u16(), 200);
    }
    assert!(
        app.is_active(&conf, &at1).await,
        "other client revoked the AT"
    );
    let resp = app.refresh(&spa, &rt1).await;
    assert_eq!(resp.status().as_u16(), 200, "other client revoked the RT");
    let t2: Value = resp.json().await.unwrap();
    let (rt2, at2) = (s(&t2, "refresh_token"), s(&t2, "access_token"));
    assert!(app.is_active(&conf, &at2).await);

    // Revoking the current refresh token: it no longer refreshes and the grant's access tokens die.
    assert_eq!(revoke(&spa, &rt2).await.status().as_u16(), 200);
    assert_oauth_error(app.refresh(&spa, &rt2).await, 400, "invalid_grant").await;
    assert_eq!(
        app.introspect(&conf, &at2).await,
        inactive(),
        "AT of the revoked RT"
    );
    let earlier = app.introspect(&conf, &at1).await;
    assert_eq!(earlier, inactive(), "earlier AT of the same grant");

    // Revoking a refresh token kills its successors too.
    let t3 = app.tokens_for(&spa, "alice").await;
    let rt3 = s(&t3, "refresh_token");
    let t4 = ok_json(app.refresh(&spa, &rt3).await).await;
    let (rt4, at4) = (s(&t4, "refresh_token"), s(&t4, "access_token"));
    assert_eq!(revoke(&spa, &rt3).await.status().as_u16(), 200);
    assert_oauth_error(app.refresh(&spa, &rt4).await, 400, "invalid_grant").await;
    assert_eq!(app.introspect(&conf, &at4).await, inactive());

    // Revoking an access token deactivates it for introspection.
    let t5 = app.tokens_for(&spa, "alice").await;
    let at5 = s(&t5, "access_token");
    assert!(app.is_active(&conf, &at5).await);
    assert_eq!(revoke(&spa, &at5).await.status().as_u16(), 200);
    assert_eq!(app.introspect(&conf, &at5).await, inactive());

    // A confidential client with a wrong secret: 401 invalid_client, nothing revoked.
    let ct = app.confidential_tokens(&conf, "alice").await;
    let crt = s(&ct, "refresh_token");
    let resp = app
        .revocation(&crt)
        .basic_as(&conf.id, "wrong-secret")
        .send()
        .await;
    let challenge = header(&resp, "www-authenticate");
    assert!(challenge.is_some(), "401 without WWW-Authenticate");
    assert_oauth_error(resp, 401, "invalid_client").await;
    let wrong_post = app
        .revocation(&crt)
        .client(&conf)
        .param("client_secret", "wrong-secret");
    wrong_post.fails(401, "invalid_client").await;
    // Without its secret at all.
    app.revocation(&crt)
        .client(&conf)
        .fails(401, "invalid_client")
        .await;
    let status = app.token().refresh(&crt).basic(&conf).send().await.status();
    assert_eq!(
        status.as_u16(),
        200,
        "a refused revocation revoked the token"
    );
}

// ---------------------------------------------------------------------------------------------
// 38, 39. Introspection
// ---------------------------------------------------------------------------------------------

both_backends!(introspection_requires_authenticated_confidential_client);
async fn introspection_requires_authenticated_confidential_client(app: TestApp) {
    let conf = app.confidential();
    let (spa, tokens) = app.signed_in("alice", &[]).await;
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
            let (status, headers, body) =
                read(app.post_form("/introspect", &form, auth).await).await;
            let challenge = header(&headers, "www-authenticate");
            assert!(challenge.is_some(), "{what}: no WWW-Authenticate");
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
    let stranger = app.register(NewClient {
        name: "Stranger".into(),
        confidential: true,
        audiences: strings(&["https://other.example.com"]),
        allowed_origins: Vec::new(),
        ..spa_registration()
    });
    assert_eq!(app.introspect(&stranger, &at).await, inactive());
    assert_eq!(app.introspect(&stranger, &rt).await, inactive());
}

both_backends!(introspection_inactive_is_exactly_active_false);
async fn introspection_inactive_is_exactly_active_false(app: TestApp) {
    let conf = app.confidential();
    app.user("alice", &[]);

    // Unknown tokens, garbage, and a forged JWT.
    for token in ["no-such-token", "", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        let (status, _, body) = app.introspection(token).basic(&conf).read().await;
        if token.is_empty() && status == 400 {
            continue; // an empty token parameter may be refused as invalid_request
        }
        assert_eq!(status, 200, "token {token:?}: {body}");
        assert_eq!(body, inactive(), "token {token:?}");
    }

    // Rotated refresh token.
    let t1 = app.confidential_tokens(&conf, "alice").await;
    let rt1 = s(&t1, "refresh_token");
    assert!(app.is_active(&conf, &rt1).await, "control: fresh RT");
    let t2 = app.token().refresh(&rt1).basic(&conf).ok().await;
    let (rt2, at2) = (s(&t2, "refresh_token"), s(&t2, "access_token"));
    assert_eq!(app.introspect(&conf, &rt1).await, inactive(), "rotated RT");
    assert!(app.is_active(&conf, &rt2).await, "control: successor RT");

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
    let revocation = app.revocation(&rt2).basic(&conf).send().await;
    assert_eq!(revocation.status().as_u16(), 200);
    assert_eq!(app.introspect(&conf, &rt2).await, inactive(), "revoked RT");
    let of_revoked = app.introspect(&conf, &at2).await;
    assert_eq!(of_revoked, inactive(), "AT of a revoked grant");

    // Expired refresh token (expiry moved into the past in the database).
    let t3 = app.confidential_tokens(&conf, "alice").await;
    let rt3 = s(&t3, "refresh_token");
    assert!(app.is_active(&conf, &rt3).await, "control: fresh RT");
    let n = app.expire_refresh_token(&rt3, 60);
    assert_eq!(n, 1, "refresh tokens are stored by their SHA-256");
    assert_eq!(app.introspect(&conf, &rt3).await, inactive(), "expired RT");
    let refresh = app.token().refresh(&rt3).basic(&conf);
    refresh.fails(400, "invalid_grant").await;
}

both_backends!(introspection_reports_active_tokens);
async fn introspection_reports_active_tokens(app: TestApp) {
    let conf = app.confidential();
    let alice = app.user("alice", &[]);
    let before = app.now();
    let tokens = app.confidential_tokens(&conf, "alice").await;
    let at = s(&tokens, "access_token");
    let rt = s(&tokens, "refresh_token");
    // What both kinds of token report alike; returns (iat, exp).
    let common = |resp: (u16, reqwest::header::HeaderMap, Value)| {
        let (status, headers, body) = resp;
        assert_eq!(status, 200);
        let cc = header(&headers, "cache-control").expect("Cache-Control");
        assert!(cc.contains("no-store"), "Cache-Control {cc:?}");
        assert_eq!(body["active"], json!(true), "{body}");
        assert_eq!(body["scope"], tokens["scope"], "{body}");
        assert_eq!(body["client_id"], json!(conf.id), "{body}");
        assert_eq!(body["sub"], json!(alice), "{body}");
        assert_eq!(body["aud"], json!(AUDIENCE), "{body}");
        assert_eq!(body["iss"], json!(app.issuer), "{body}");
        let iat = body["iat"].as_i64().expect("iat");
        let exp = body["exp"].as_i64().expect("exp");
        let now = iat >= before - 5 && iat <= app.now() + 5;
        assert!(now, "{body}");
        (headers, body, iat, exp)
    };

    let (headers, body, iat, exp) = common(app.introspection(&at).basic(&conf).read().await);
    let ct = header(&headers, "content-type").expect("Content-Type");
    assert!(ct.starts_with("application/json"), "{ct}");
    let (_, claims) = jwt_parts(&at);
    assert_eq!(body["exp"], claims["exp"], "{body}");
    assert_eq!(body["iat"], claims["iat"], "{body}");
    let ttl = app.settings.tokens.access_token_ttl_secs;
    assert_eq!(exp - iat, ttl, "{body}");
    let token_type = body["token_type"].as_str();
    assert!(
        token_type.is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{body}"
    );

    let (_, body, _, exp) = common(app.introspection(&rt).basic(&conf).read().await);
    assert!(exp > app.now(), "{body}");
    let token_type = body["token_type"].as_str();
    assert!(token_type.is_some_and(|t| !t.is_empty()), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Health and headers
// ---------------------------------------------------------------------------------------------

both_backends!(health_and_readiness);
async fn health_and_readiness(app: TestApp) {
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
    let body = ok_json(app.get("/readyz").await).await;
    assert_eq!(body["database"], json!(true), "{body}");
    assert_eq!(body["signing_key"], json!(true), "{body}");
    // Liveness is GET only; nothing else hides behind it.
    let status = post_with(&app.api, &app.url("/healthz"), &[])
        .await
        .status();
    assert!(status.is_client_error(), "POST /healthz: {status}");
}

both_backends!(security_headers_on_every_response);
async fn security_headers_on_every_response(app: TestApp) {
    let bogus_grant = app.token().grant_type("bogus").param("client_id", "x");
    let responses = vec![
        (
            "metadata",
            app.get("/.well-known/oauth-authorization-server").await,
        ),
        ("jwks", app.get("/.well-known/jwks.json").await),
        ("404", app.get("/no/such/page").await),
        ("healthz", app.get("/healthz").await),
        (
            "authorize error page",
            app.get("/authorize?client_id=unknown").await,
        ),
        ("token error", bogus_grant.send().await),
        ("introspect 401", app.introspection("x").send().await),
    ];
    for (what, resp) in &responses {
        if *what == "404" {
            assert_eq!(resp.status().as_u16(), 404);
        }
        if *what == "token error" {
            assert_eq!(resp.status().as_u16(), 400);
        }
        let nosniff = header(resp, "x-content-type-options");
        assert_eq!(nosniff.as_deref(), Some("nosniff"), "{what}");
        let referrer = header(resp, "referrer-policy");
        assert_eq!(referrer.as_deref(), Some("no-referrer"), "{what}");
        let frame = header(resp, "x-frame-options");
        assert_eq!(frame.as_deref(), Some("DENY"), "{what}");
        let csp =
            header(resp, "content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
        assert!(
            csp.contains("frame-ancestors 'none'"),
            "{what}: CSP {csp:?}"
        );
    }
}
