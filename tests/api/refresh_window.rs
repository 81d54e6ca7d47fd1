//! The opt-in refresh retry window (issue 4, point 8): a just-rotated token presented again by
//! the same client within the window yields the same successor; reuse detection stays on.

use diesel::prelude::*;
use gatehouse::store::schema::refresh_tokens;
use serde_json::Value;

use crate::helpers::*;

/// Runs a test body with a 10-second retry window, on SQLite and (when configured) PostgreSQL.
macro_rules! with_window {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = spawn_with(Db::Sqlite, None, |s| {
                    s.tokens.refresh_retry_window_secs = 10
                })
                .await;
                ($body)(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Ok(base) = std::env::var("GATEHOUSE_TEST_POSTGRES_URL") else {
                    eprintln!("GATEHOUSE_TEST_POSTGRES_URL not set: PostgreSQL variant skipped");
                    return;
                };
                let app = spawn_with(Db::Postgres, Some(base), |s| {
                    s.tokens.refresh_retry_window_secs = 10
                })
                .await;
                ($body)(app).await;
            }
        }
    };
}

async fn ok(resp: reqwest::Response) -> Value {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn rt(v: &Value) -> String {
    v["refresh_token"].as_str().unwrap().to_owned()
}

with_window!(
    retry_within_window_returns_same_successor,
    |app: TestApp| async move {
        let spa = app.spa();
        app.user("erin", &[]);
        let t0 = app.tokens_for(&spa, "erin").await;
        let t1 = ok(app.refresh(&spa, &rt(&t0)).await).await;
        // The response was "lost": the client presents the old token again.
        let again = ok(app.refresh(&spa, &rt(&t0)).await).await;
        assert_eq!(rt(&again), rt(&t1), "same successor");
        let (_, c1) = jwt_parts(t1["access_token"].as_str().unwrap());
        let (_, c2) = jwt_parts(again["access_token"].as_str().unwrap());
        assert_ne!(c1["jti"], c2["jti"], "a fresh access token");
        // The successor works; once it is rotated, the old token is a detected reuse again.
        let t2 = ok(app.refresh(&spa, &rt(&t1)).await).await;
        assert_oauth_error(app.refresh(&spa, &rt(&t0)).await, 400, "invalid_grant").await;
        assert_oauth_error(app.refresh(&spa, &rt(&t2)).await, 400, "invalid_grant").await;
    }
);

with_window!(
    concurrent_refreshes_share_one_successor,
    |app: TestApp| async move {
        let spa = app.spa();
        app.user("frank", &[]);
        let t0 = app.tokens_for(&spa, "frank").await;
        let presented = rt(&t0);
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (url, id, token) = (app.url("/token"), spa.id.clone(), presented.clone());
            let api = app.api.clone();
            tasks.push(tokio::spawn(async move {
                let resp = api
                    .post(url)
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &token),
                        ("client_id", &id),
                    ])
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            }));
        }
        let mut successors = Vec::new();
        for t in tasks {
            let (status, body) = t.await.unwrap();
            assert_eq!(status, 200, "{body}");
            successors.push(rt(&body));
        }
        successors.dedup();
        assert_eq!(successors.len(), 1, "every tab got the same successor");
        ok(app.refresh(&spa, &successors[0]).await).await;
    }
);

with_window!(
    retry_window_does_not_cover_other_clients_or_late_retries,
    |app: TestApp| async move {
        let spa = app.spa();
        let other = app.spa();
        app.user("gina", &[]);
        // Another client presenting a just-rotated token: reuse, family revoked.
        let t0 = app.tokens_for(&spa, "gina").await;
        let t1 = ok(app.refresh(&spa, &rt(&t0)).await).await;
        assert_oauth_error(app.refresh(&other, &rt(&t0)).await, 400, "invalid_grant").await;
        assert_oauth_error(app.refresh(&spa, &rt(&t1)).await, 400, "invalid_grant").await;

        // The same client after the window: reuse, family revoked.
        let t0 = app.tokens_for(&spa, "gina").await;
        let t1 = ok(app.refresh(&spa, &rt(&t0)).await).await;
        diesel::update(refresh_tokens::table.filter(refresh_tokens::rotated_at.is_not_null()))
            .set(refresh_tokens::rotated_at.eq(gatehouse::state::now() - 60))
            .execute(&mut app.conn())
            .unwrap();
        assert_oauth_error(app.refresh(&spa, &rt(&t0)).await, 400, "invalid_grant").await;
        assert_oauth_error(app.refresh(&spa, &rt(&t1)).await, 400, "invalid_grant").await;
    }
);
