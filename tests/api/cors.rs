//! CORS per client, preflights included: `/token`, `/revoke` and the metadata and JWKS documents
//! answer the origins clients registered, and only those; `/authorize` and the pages never.

use crate::both_backends;
use crate::helpers::*;

const UNKNOWN: &str = "https://evil.example";

/// An `OPTIONS` preflight from `origin` as a browser sends it before a non-simple request.
async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> reqwest::Response {
    app.api
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", "content-type,dpop")
        .send()
        .await
        .expect("preflight")
}

fn allow_origin(resp: &reqwest::Response) -> Option<String> {
    header(resp, "access-control-allow-origin")
}

both_backends!(cors_preflight_answers_registered_origins_on_token_revoke_and_documents);
async fn cors_preflight_answers_registered_origins_on_token_revoke_and_documents(app: TestApp) {
    app.spa();
    for (path, method) in [
        ("/token", "POST"),
        ("/revoke", "POST"),
        ("/.well-known/oauth-authorization-server", "GET"),
        ("/.well-known/jwks.json", "GET"),
    ] {
        let resp = preflight(&app, path, ORIGIN, method).await;
        assert_eq!(resp.status().as_u16(), 204, "{path}");
        assert_eq!(allow_origin(&resp).as_deref(), Some(ORIGIN), "{path}");
        let methods = header(&resp, "access-control-allow-methods").expect("methods");
        assert!(methods.contains(method), "{path}: {methods}");
        let headers = header(&resp, "access-control-allow-headers").expect("headers");
        for h in ["Content-Type", "Authorization", "DPoP"] {
            assert!(headers.contains(h), "{path}: {headers}");
        }
        assert_eq!(
            header(&resp, "access-control-max-age").as_deref(),
            Some("600")
        );
        assert!(header(&resp, "vary").is_some_and(|v| v.contains("Origin")));
        // The security headers are on it too.
        assert!(header(&resp, "x-content-type-options").is_some(), "{path}");

        let resp = preflight(&app, path, UNKNOWN, method).await;
        assert_eq!(resp.status().as_u16(), 204, "{path}");
        for h in [
            "access-control-allow-origin",
            "access-control-allow-methods",
            "access-control-allow-headers",
            "access-control-max-age",
        ] {
            assert!(header(&resp, h).is_none(), "{path}: unknown origin got {h}");
        }
    }
}

both_backends!(cors_token_exchange_from_a_registered_origin_is_readable);
async fn cors_token_exchange_from_a_registered_origin_is_readable(app: TestApp) {
    let spa = app.spa_and_alice();
    let resp = app
        .redeem(&spa, "alice")
        .await
        .client(&spa)
        .origin(ORIGIN)
        .send()
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(allow_origin(&resp).as_deref(), Some(ORIGIN));
    let resp = app
        .redeem(&spa, "alice")
        .await
        .client(&spa)
        .origin(UNKNOWN)
        .send()
        .await;
    assert_eq!(resp.status().as_u16(), 200, "the token is issued, but...");
    assert_eq!(
        allow_origin(&resp),
        None,
        "...a page on another origin cannot read it"
    );
}

both_backends!(cors_documents_answer_registered_origins_only);
async fn cors_documents_answer_registered_origins_only(app: TestApp) {
    app.spa();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/jwks.json",
    ] {
        let get = |origin: &'static str| app.api.get(app.url(path)).header("Origin", origin).send();
        let resp = get(ORIGIN).await.expect("get");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(allow_origin(&resp).as_deref(), Some(ORIGIN), "{path}");
        let resp = get(UNKNOWN).await.expect("get");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(allow_origin(&resp), None, "{path}");
    }
}

both_backends!(cors_never_on_authorize_or_pages);
async fn cors_never_on_authorize_or_pages(app: TestApp) {
    let spa = app.spa();
    let pkce = pkce();
    for path in [
        format!("/authorize?{}", authz(&spa.id, &pkce.challenge, &[])),
        "/login".to_owned(),
        "/consent".to_owned(),
        "/account/mfa".to_owned(),
        "/logout".to_owned(),
    ] {
        let resp = app
            .api
            .get(app.url(&path))
            .header("Origin", ORIGIN)
            .send()
            .await
            .expect("get");
        assert_eq!(allow_origin(&resp), None, "{path}");
        let resp = preflight(&app, &path, ORIGIN, "POST").await;
        assert_eq!(allow_origin(&resp), None, "preflight {path}");
        assert_ne!(resp.status().as_u16(), 204, "no preflight answer on {path}");
    }
}

both_backends!(
    cors_a_new_client_origin_is_seen_within_the_cache_bound,
    |s: &mut Settings| s.clients.cache_secs = 0
);
async fn cors_a_new_client_origin_is_seen_within_the_cache_bound(app: TestApp) {
    let other = "http://127.0.0.1:7777";
    let resp = preflight(&app, "/token", other, "POST").await;
    assert_eq!(allow_origin(&resp), None);
    app.register(NewClient {
        allowed_origins: vec![other.into()],
        ..spa_registration()
    });
    let resp = preflight(&app, "/token", other, "POST").await;
    assert_eq!(allow_origin(&resp).as_deref(), Some(other));
}
