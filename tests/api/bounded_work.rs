//! Bounded password hashing (SECURITY-CHECKLIST rule 57): with one hash slot and a short queue, a
//! burst of password grants and sign-ins gets 503 with `Retry-After` beyond the queue, never a
//! 500 and never an unbounded wait, and the server answers normally once the burst is over.
//! (That a dropped request keeps its hash's slot is proven by the unit test
//! `passwords::tests::bounded_work_hash_permit_outlives_dropped_request`.)

use gatehouse::config::Settings;
use gatehouse::registry::NewClient;
use reqwest::header::HeaderMap;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

/// More requests at once than the one slot and two queue places hold.
const BURST: usize = 16;

/// One hash at a time, two waiting; hashes slow enough (tens of milliseconds) that a burst of
/// requests is in flight together.
fn one_slot_short_queue(s: &mut Settings) {
    s.passwords.max_concurrent_hashes = 1;
    s.passwords.max_queued_hashes = 2;
    s.passwords.memory_kib = 32 * 1024;
    s.passwords.iterations = 3;
    // Sixteen attempts at once on one account are what these tests send: the lockout (which
    // counts an attempt from its start) has its own tests.
    s.lockout.max_failures = 100;
}

/// Status, headers and body text of a response.
async fn read_text(resp: reqwest::Response) -> (u16, HeaderMap, String) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Asserts the busy answer's headers: `Retry-After` in whole seconds, never cached.
fn assert_retry_after(headers: &HeaderMap, what: &str) {
    let retry =
        header(headers, "retry-after").unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
    let secs: u64 = retry
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After {retry:?} is not seconds"));
    assert!((1..=60).contains(&secs), "{what}: Retry-After {secs}");
}

/// A confidential first-party client registered for the password grant.
fn password_client(app: &TestApp) -> TestClient {
    app.register(NewClient {
        name: "First-party app".into(),
        confidential: true,
        grant_types: vec![gatehouse::oauth::model::GrantType::Password],
        scopes: vec!["api:read".into()],
        audiences: vec![AUDIENCE.into()],
        ..Default::default()
    })
}

/// A password-grant request for alice with her real password.
fn password_grant(app: &TestApp, client: &TestClient) -> reqwest::RequestBuilder {
    app.api
        .post(app.url("/token"))
        .header(
            "Authorization",
            basic(&client.id, client.secret.as_deref().expect("confidential")),
        )
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
}

/// Sends every request at once and returns the answers.
async fn burst(requests: Vec<reqwest::RequestBuilder>) -> Vec<(u16, HeaderMap, String)> {
    let mut set = tokio::task::JoinSet::new();
    for req in requests {
        set.spawn(async move { read_text(req.send().await.expect("send")).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = set.join_next().await {
        answers.push(answer.expect("request task"));
    }
    answers
}

both_backends!(
    bounded_work_full_queue_answers_503,
    one_slot_short_queue,
    |app: TestApp| async move {
        let client = password_client(&app);
        app.user("alice", &[]);
        let answers = burst((0..BURST).map(|_| password_grant(&app, &client)).collect()).await;

        let mut busy = 0;
        for (status, headers, text) in &answers {
            match status {
                200 => {}
                503 => {
                    busy += 1;
                    assert_retry_after(headers, "token endpoint");
                    assert_eq!(header(headers, "cache-control"), Some("no-store"));
                    let body: Value = serde_json::from_str(text)
                        .unwrap_or_else(|_| panic!("503 body is not JSON: {text:?}"));
                    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
                    assert!(body["error_description"].is_string(), "{body}");
                }
                other => panic!("a busy server answers 200 or 503, got {other}: {text}"),
            }
        }
        assert!(
            busy > 0,
            "{BURST} simultaneous password grants fit in 1 slot + 2 queue places"
        );
        assert!(busy < BURST, "at least the first grant is served");

        // Once the burst is over, the server answers normally.
        let (status, _, text) =
            read_text(password_grant(&app, &client).send().await.expect("send")).await;
        assert_eq!(status, 200, "after the burst: {text}");
    }
);

both_backends!(
    bounded_work_full_queue_shows_try_again_page,
    one_slot_short_queue,
    |app: TestApp| async move {
        let spa = app.spa();
        app.user("alice", &[]);
        let pkce = pkce();
        let resp = app
            .get_authorize(&authz(&spa.id, &pkce.challenge, &[]))
            .await;
        assert_eq!(resp.status().as_u16(), 303);
        let login = location(&resp);
        let page = app.browse(&login).await.text().await.expect("login page");
        let interaction = hidden(&page, "interaction");
        let csrf = hidden(&page, "csrf");
        let form = |password: &str| {
            app.browser.post(app.url("/login")).form(&[
                ("interaction", interaction.as_str()),
                ("csrf", csrf.as_str()),
                ("username", "alice"),
                ("password", password),
            ])
        };

        // Wrong passwords keep the session as it is, so every attempt is a full check.
        let answers = burst((0..BURST).map(|_| form("not the password")).collect()).await;
        let mut busy = 0;
        for (status, headers, text) in &answers {
            match status {
                200 => assert!(text.contains("Invalid username or password."), "{text}"),
                503 => {
                    busy += 1;
                    assert_retry_after(headers, "login page");
                    assert!(
                        header(headers, "content-type").is_some_and(|c| c.starts_with("text/html")),
                        "the busy answer is a page"
                    );
                    assert!(text.contains("try again"), "a readable page: {text}");
                    // The form is still there, with the same request and CSRF token.
                    assert_eq!(hidden(text, "interaction"), interaction);
                    assert_eq!(hidden(text, "csrf"), csrf);
                }
                other => panic!("a busy server answers 200 or 503, got {other}: {text}"),
            }
        }
        assert!(
            busy > 0,
            "{BURST} simultaneous sign-ins fit in 1 slot + 2 queue places"
        );
        assert!(busy < BURST, "at least the first sign-in is checked");

        // Once the burst is over, the right password signs in.
        let resp = form(PASSWORD).send().await.expect("send");
        assert_eq!(resp.status().as_u16(), 303);
        assert!(location(&resp).starts_with("/consent"));
    }
);
