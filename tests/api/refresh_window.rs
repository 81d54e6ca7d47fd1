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

// A refresh token made before tokens carried their time (43 characters, stored under its bare
// SHA-256) still rotates, and a retry of a rotation made in that form finds its successor.
both_backends!(tokens_of_the_earlier_form_still_rotate_and_retry, window);
async fn tokens_of_the_earlier_form_still_rotate_and_retry(app: TestApp) {
    use gatehouse::secret::{hmac_b64, PlainToken};

    let (spa, t0) = app.signed_in("hana", &[]).await;
    let earlier = PlainToken::generate().expose().to_owned();
    assert_eq!(earlier.len(), 43);
    app.rekey_refresh_token(&rt(&t0), &earlier);
    let t1 = ok_json(app.refresh(&spa, &earlier).await).await;
    let successor = rt(&t1);
    assert_eq!(
        successor.len(),
        55,
        "the successor has the new form: {successor}"
    );

    // As if that rotation had been made in the earlier form: its successor is the derived part
    // alone. A retry within the window gets it back instead of counting as reuse.
    let derived = hmac_b64(
        &app.state.refresh_successor_key,
        &["refresh successor", &earlier],
    );
    assert!(successor.ends_with(&derived));
    app.rekey_refresh_token(&successor, &derived);
    let again = ok_json(app.refresh(&spa, &earlier).await).await;
    assert_eq!(rt(&again), derived, "the stored successor, in its form");
    let t2 = ok_json(app.refresh(&spa, &derived).await).await;
    assert_oauth_error(app.refresh(&spa, &earlier).await, 400, "invalid_grant").await;
    assert_oauth_error(app.refresh(&spa, &rt(&t2)).await, 400, "invalid_grant").await;
}
