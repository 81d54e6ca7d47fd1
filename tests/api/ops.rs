//! Operations: the metrics listener, method and path errors in JSON, request ids, and no version
//! in responses.

use std::net::TcpListener;

use reqwest::Method;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

/// Starts the metrics listener of `app` on a port of its own; returns its `/metrics` URL.
fn metrics_listener(app: &TestApp) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let server = gatehouse::server::build_metrics(app.state.clone(), listener).expect("server");
    tokio::spawn(server);
    format!("http://{addr}/metrics")
}

async fn scrape(url: &str) -> String {
    let resp = reqwest::get(url).await.expect("scrape");
    assert_eq!(resp.status().as_u16(), 200);
    let kind = header(&resp, "content-type").unwrap_or_default();
    assert!(kind.starts_with("text/plain"), "{kind}");
    resp.text().await.expect("body")
}

/// The value of the sample `series` (name with its labels, as rendered), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

both_backends!(
    metrics_count_tokens_failed_sign_ins_and_lockouts,
    |s: &mut Settings| s.lockout.max_failures = 2
);
async fn metrics_count_tokens_failed_sign_ins_and_lockouts(app: TestApp) {
    let url = metrics_listener(&app);
    let before = scrape(&url).await;
    let issued = "gatehouse_tokens_issued_total{grant_type=\"client_credentials\"}";
    let failed = "gatehouse_sign_in_failures_total{factor=\"password\"}";
    let locked = "gatehouse_lockouts_total{factor=\"password\"}";
    assert_eq!(sample(&before, issued), 0.0);

    let machine = app.machine_client();
    app.token().client_credentials().basic(&machine).ok().await;
    let first_party = app.password_client();
    app.user("alice", &[]);
    for _ in 0..2 {
        app.token()
            .password("alice", "not the password")
            .basic(&first_party)
            .fails(400, "invalid_grant")
            .await;
    }
    // A refresh token presented twice: the second is a detected reuse. (alice is locked now.)
    app.user("bob", &[]);
    let conf = app.confidential();
    let t = app.confidential_tokens(&conf, "bob").await;
    let refresh = || app.token().refresh(&s(&t, "refresh_token")).basic(&conf);
    refresh().ok().await;
    refresh().fails(400, "invalid_grant").await;
    app.get("/register/some-client").await;

    let after = scrape(&url).await;
    assert_eq!(sample(&after, issued), 1.0, "{after}");
    let code = "gatehouse_tokens_issued_total{grant_type=\"authorization_code\"}";
    assert_eq!(sample(&after, code), 1.0, "{after}");
    assert_eq!(sample(&after, failed), 2.0, "{after}");
    assert_eq!(sample(&after, locked), 1.0, "{after}");
    let reuse = "gatehouse_refresh_token_reuse_detected_total";
    assert_eq!(sample(&after, reuse), 1.0, "{after}");
    let token_ok = "gatehouse_http_requests_total{method=\"POST\",route=\"/token\",status=\"200\"}";
    assert!(sample(&after, token_ok) >= 3.0, "{after}");
    // Routes are patterns, never raw paths.
    assert!(after.contains("route=\"/register/{client_id}\""), "{after}");
    assert!(!after.contains("some-client"), "a raw path in the metrics");
    assert_eq!(sample(&after, "gatehouse_db_pool_max_connections"), 6.0);
    assert!(sample(&after, "gatehouse_db_pool_wait_seconds_count") > 0.0);
    assert!(sample(&after, "gatehouse_password_hash_wait_seconds_count") >= 2.0);
    assert!(after.contains("gatehouse_password_hash_queue_depth 0"));
    let kid = s(&app.jwks().await["keys"][0], "kid");
    let age = format!("gatehouse_signing_key_age_seconds{{kid=\"{kid}\",state=\"signing\"}}");
    assert!(after.contains(&age), "{after}");
    assert!(after.contains("gatehouse_signing_key_next_rotation_timestamp_seconds 0"));
    let build = format!(
        "gatehouse_build_info{{commit=\"{}\",version=\"{}\"}} 1",
        gatehouse::version::COMMIT,
        env!("CARGO_PKG_VERSION")
    );
    assert!(after.contains(&build), "{after}");
}

both_backends!(metrics_are_not_served_on_the_public_listener);
async fn metrics_are_not_served_on_the_public_listener(app: TestApp) {
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status().as_u16(), 404);
    let body = resp.text().await.expect("body");
    assert!(!body.contains("gatehouse_"), "{body}");
    // The metrics listener serves nothing but /metrics.
    let url = metrics_listener(&app);
    let other = reqwest::get(url.replace("/metrics", "/token"))
        .await
        .expect("GET");
    assert_eq!(other.status().as_u16(), 404);
}

both_backends!(wrong_method_gets_405_with_allow_in_json);
async fn wrong_method_gets_405_with_allow_in_json(app: TestApp) {
    let cases = [
        (Method::GET, "/token", "POST, OPTIONS"),
        (Method::PUT, "/token", "POST, OPTIONS"),
        (Method::GET, "/revoke", "POST, OPTIONS"),
        (Method::GET, "/introspect", "POST"),
        (Method::GET, "/register", "POST"),
        (Method::POST, "/.well-known/jwks.json", "GET, OPTIONS"),
        (
            Method::POST,
            "/.well-known/oauth-authorization-server",
            "GET, OPTIONS",
        ),
        (Method::POST, "/authorize", "GET"),
        (Method::POST, "/healthz", "GET"),
        (Method::DELETE, "/login", "GET, POST"),
    ];
    for (method, path, allow) in cases {
        let resp = app
            .api
            .request(method.clone(), app.url(path))
            .send()
            .await
            .expect("send");
        assert_eq!(
            header(&resp, "allow").as_deref(),
            Some(allow),
            "{method} {path}"
        );
        let body = assert_oauth_error(resp, 405, "invalid_request").await;
        assert!(
            s(&body, "error_description").contains(method.as_str()),
            "{method} {path}: {body}"
        );
    }
}

both_backends!(unknown_paths_under_json_endpoints_answer_json_404);
async fn unknown_paths_under_json_endpoints_answer_json_404(app: TestApp) {
    for path in ["/token/", "/token/x", "/revoke/a/b", "/introspect/x"] {
        let resp = app.get(path).await;
        let (status, headers, body) = read(resp).await;
        assert_eq!(status, 404, "{path}");
        let kind = header(&headers, "content-type").unwrap_or_default();
        assert!(kind.starts_with("application/json"), "{path}: {kind}");
        assert_eq!(body["error"], Value::from("not_found"), "{path}");
    }
    // Other unknown paths keep the HTML page.
    let resp = app.get("/no/such/page").await;
    assert_eq!(resp.status().as_u16(), 404);
    let kind = header(&resp, "content-type").unwrap_or_default();
    assert!(kind.starts_with("text/html"), "{kind}");
}

both_backends!(preflights_still_answer_beside_405);
async fn preflights_still_answer_beside_405(app: TestApp) {
    for path in ["/token", "/revoke", "/.well-known/jwks.json"] {
        let resp = app
            .api
            .request(Method::OPTIONS, app.url(path))
            .header("Origin", "https://unknown.example")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 204, "{path}");
    }
}

both_backends!(every_response_carries_a_request_id);
async fn every_response_carries_a_request_id(app: TestApp) {
    let id = |resp: &reqwest::Response| header(resp, "x-request-id").expect("X-Request-Id");
    let a = id(&app.get("/healthz").await);
    let b = id(&app.get("/no/such/page").await);
    assert_ne!(a, b, "each request gets its own id");
    assert!(
        a.len() >= 16 && a.chars().all(|c| c.is_ascii_hexdigit()),
        "{a}"
    );
    // A plain incoming id is kept; anything else is replaced.
    let with = |value: &'static str| {
        app.api
            .get(app.url("/healthz"))
            .header("X-Request-Id", value)
            .send()
    };
    assert_eq!(
        id(&with("trace-42.a_b").await.expect("send")),
        "trace-42.a_b"
    );
    let odd = id(&with("x\"; evil").await.expect("send"));
    assert_ne!(odd, "x\"; evil");
}

both_backends!(responses_do_not_advertise_the_version);
async fn responses_do_not_advertise_the_version(app: TestApp) {
    let version = env!("CARGO_PKG_VERSION");
    let commit = gatehouse::version::COMMIT;
    for path in [
        "/",
        "/healthz",
        "/.well-known/oauth-authorization-server",
        "/token",
    ] {
        let resp = app.get(path).await;
        assert!(header(&resp, "server").is_none(), "{path}: Server header");
        for (name, value) in resp.headers() {
            let value = value.to_str().unwrap_or_default();
            assert!(
                !value.contains(version) && !value.contains(commit),
                "{path}: {name} shows the version"
            );
        }
    }
}
