//! The opt-in refresh retry window (issue 4, point 8): a just-rotated token presented again by
//! the same client within the window yields the same successor; reuse detection stays on.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

/// A 10-second retry window.
fn window(settings: &mut Settings) {
    settings.tokens.refresh_retry_window_secs = 10;
}

fn rt(v: &Value) -> String {
    s(v, "refresh_token")
}

both_backends!(retry_within_window_returns_same_successor, window);
async fn retry_within_window_returns_same_successor(app: TestApp) {
    let (spa, t0) = app.signed_in("erin", &[]).await;
    let t1 = ok_json(app.refresh(&spa, &rt(&t0)).await).await;
    // The response was "lost": the client presents the old token again.
    let again = ok_json(app.refresh(&spa, &rt(&t0)).await).await;
    assert_eq!(rt(&again), rt(&t1), "same successor");
    assert_ne!(
        claims_of(&t1)["jti"],
        claims_of(&again)["jti"],
        "a fresh access token"
    );
    // The successor works; once it is rotated, the old token is a detected reuse again.
    let t2 = ok_json(app.refresh(&spa, &rt(&t1)).await).await;
    assert_oauth_error(app.refresh(&spa, &rt(&t0)).await, 400, "invalid_grant").await;
    assert_oauth_error(app.refresh(&spa, &rt(&t2)).await, 400, "invalid_grant").await;
}

both_backends!(concurrent_refreshes_share_one_successor, window);
async fn concurrent_refreshes_share_one_successor(app: TestApp) {
    let (spa, t0) = app.signed_in("frank", &[]).await;
    let mut successors = Vec::new();
    for (status, body) in app.token().refresh(&rt(&t0)).client(&spa).race(6).await {
        assert_eq!(status, 200, "{body}");
        successors.push(rt(&body));
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "every tab got the same successor");
    ok_json(app.refresh(&spa, &successors[0]).await).await;
}

both_backends!(
    retry_window_does_not_cover_other_clients_or_late_retries,
    window
);
async fn retry_window_does_not_cover_other_clients_or_late_retries(app: TestApp) {
    let spa = app.spa();
    let other = app.spa();
    app.user("gina", &[]);
    // Another client presenting a just-rotated token: reuse, family revoked.
    let t0 = app.tokens_for(&spa, "gina").await;
    let t1 = ok_json(app.refresh(&spa, &rt(&t0)).await).await;
    assert_oauth_error(app.refresh(&other, &rt(&t0)).await, 400, "invalid_grant").await;
    assert_oauth_error(app.refresh(&spa, &rt(&t1)).await, 400, "invalid_grant").await;

    // The same client after the window: reuse, family revoked.
    let t0 = app.tokens_for(&spa, "gina").await;
    let t1 = ok_json(app.refresh(&spa, &rt(&t0)).await).await;
    app.age_rotations(60);
    assert_oauth_error(app.refresh(&spa, &rt(&t0)).await, 400, "invalid_grant").await;
    assert_oauth_error(app.refresh(&spa, &rt(&t1)).await, 400, "invalid_grant").await;
}
