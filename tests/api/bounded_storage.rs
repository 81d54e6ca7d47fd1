//! Bounded storage (SECURITY-CHECKLIST rule 58): what anonymous `/authorize` requests store is
//! capped per session (its size is bounded by the parameter limit, tested in `authorize`), and the background task's prune removes expired
//! sessions, pending requests, codes and ended grants in batches, keeping what reuse detection
//! of a live refresh-token family needs.

use gatehouse::config::Settings;
use gatehouse::flows::prune::Pruned;

use crate::both_backends;
use crate::helpers::*;

/// More expired rows per table than two prune batches hold.
const BACKLOG: usize = 1_200;

fn no_authorize_limit(s: &mut Settings) {
    s.rate_limits.authorize_per_minute = 0;
}

both_backends!(rule58_pending_authorizations_capped_per_session);
async fn rule58_pending_authorizations_capped_per_session(app: TestApp) {
    let spa = app.spa_and_alice();
    let cap = app.settings.session.max_pending_per_session;
    let first = app.authorize(&spa, &[]).await;
    assert_to_login(&first, "first request");
    let first = location(&first);
    // Tabs opened a second apart: the cap keeps the newest, to the second.
    for i in 1..cap {
        app.advance_clock(1);
        assert_to_login(&app.authorize(&spa, &[]).await, &format!("request {i}"));
    }
    assert_eq!(app.pending_interactions(), i64::from(cap));

    // One more with the same cookie: still `cap` pending, the oldest gave way.
    app.advance_clock(1);
    let pkce = pkce();
    let newest = app
        .get_authorize(&authz(&spa.id, &pkce.challenge, &[]))
        .await;
    assert_to_login(&newest, "request beyond the cap");
    assert_eq!(app.pending_interactions(), i64::from(cap));
    assert_eq!(app.rows("sessions"), 1, "one cookie, one session");
    assert_ne!(
        app.browse(&first).await.status().as_u16(),
        200,
        "the oldest is gone"
    );

    // The newest completes login, consent and the code exchange.
    let code = app.sign_in_and_approve(&location(&newest), "alice").await;
    let tokens = app
        .token()
        .code(&code, &pkce.verifier)
        .client(&spa)
        .ok()
        .await;
    assert!(tokens["access_token"].is_string());
}

both_backends!(rule58_prune_removes_expired_rows_in_batches);
async fn rule58_prune_removes_expired_rows_in_batches(app: TestApp) {
    let spa = app.spa();
    let alice = app.user("alice", &[]);
    let interaction_ttl = app.settings.session.interaction_ttl_secs;
    // The backlog: abandoned sign-ins, and grants that reach their absolute end with them.
    app.seed_pending(&spa, BACKLOG);
    app.seed_grants(&spa, &alice, BACKLOG, interaction_ttl);
    // A grant revoked now, far from its absolute end: kept while its tokens could be live.
    let revoked = app.seed_grants(&spa, &alice, 1, 100 * interaction_ttl);
    app.revoke_grant(&revoked[0]);
    // Real ones: a redeemed code (its grant and refresh token live on) and an unredeemed one.
    let tokens = app.tokens_for(&spa, "alice").await;
    app.code_as(&spa, "alice", &pkce(), &[]).await;
    assert_eq!(app.rows("auth_codes"), 2);

    app.advance_clock(interaction_ttl + 1);
    // Live after the clock moved: a pending request of the signed-in browser (asking for
    // consent again, so that it waits on the page).
    let live = app.authorize(&spa, &[("prompt", Some("consent"))]).await;
    assert_continues(&live, "a new request");

    let pruned = app.prune();
    assert_eq!(
        pruned,
        Pruned {
            interactions: BACKLOG,
            sessions: BACKLOG,
            codes: 1,
            refresh_tokens: BACKLOG,
            grants: BACKLOG,
            registration_tokens: 0,
        },
        "one round clears a backlog of several batches"
    );
    assert_eq!(app.rows("sessions"), 1, "the signed-in session stays");
    assert_eq!(app.rows("interactions"), 1, "the live request stays");
    assert_eq!(
        app.rows("auth_codes"),
        1,
        "the redeemed code stays with its live grant"
    );
    assert_eq!(
        app.rows("grants"),
        3,
        "two live grants and the recently revoked one"
    );
    assert_eq!(app.rows("refresh_tokens"), 2);
    // What stayed still works.
    assert_eq!(app.browse(&location(&live)).await.status().as_u16(), 200);
    let refreshed = ok_json(app.refresh(&spa, &s(&tokens, "refresh_token")).await).await;
    assert_eq!(app.prune(), Pruned::default(), "nothing more to prune");

    // Once every token of it has expired, the revoked grant goes; at their absolute end the
    // live grants go too, with their refresh tokens.
    let tokens_settings = &app.settings.tokens;
    app.advance_clock(
        tokens_settings
            .access_token_ttl_secs
            .max(tokens_settings.refresh_token_ttl_secs),
    );
    let pruned = app.prune();
    assert_eq!(pruned.grants, 3, "{pruned:?}");
    assert_eq!(app.rows("grants"), 0);
    assert_eq!(app.rows("refresh_tokens"), 0);
    assert_eq!(
        app.rows("auth_codes"),
        0,
        "the redeemed code went with its grant"
    );
    assert_oauth_error(
        app.refresh(&spa, &s(&refreshed, "refresh_token")).await,
        400,
        "invalid_grant",
    )
    .await;
}

both_backends!(rule58_prune_keeps_what_reuse_detection_needs);
async fn rule58_prune_keeps_what_reuse_detection_needs(app: TestApp) {
    let introspector = app.confidential();
    let (spa, t0) = app.signed_in("alice", &[]).await;
    let rt0 = s(&t0, "refresh_token");
    let t1 = ok_json(app.refresh(&spa, &rt0).await).await;
    let rt1 = s(&t1, "refresh_token");

    // Past the code's, the pending requests' and the retry window's lifetimes, the prune runs.
    app.advance_clock(app.settings.session.interaction_ttl_secs + 1);
    let pruned = app.prune();
    assert_eq!(
        pruned.codes, 0,
        "a redeemed code stays with its live grant, so a late replay still revokes it: {pruned:?}"
    );
    assert_eq!(
        pruned.refresh_tokens, 0,
        "a live family keeps its rotated tokens"
    );
    assert_eq!(app.rotated_refresh_tokens(), 1);

    // Reuse of the rotated token is still detected: the whole family is revoked.
    assert_oauth_error(app.refresh(&spa, &rt0).await, 400, "invalid_grant").await;
    assert_oauth_error(app.refresh(&spa, &rt1).await, 400, "invalid_grant").await;
    assert_eq!(
        app.introspect(&introspector, &s(&t1, "access_token")).await,
        inactive()
    );
}

both_backends!(rule58_cookieless_flood_pruned_back, no_authorize_limit);
async fn rule58_cookieless_flood_pruned_back(app: TestApp) {
    let spa = app.spa();
    let before = (app.rows("sessions"), app.rows("interactions"));
    let query = authz(&spa.id, &pkce().challenge, &[]);
    for i in 0..300 {
        let resp = app.get(&format!("/authorize?{query}")).await;
        assert_to_login(&resp, &format!("cookieless request {i}"));
    }
    assert_eq!(app.rows("sessions"), before.0 + 300);
    assert_eq!(app.rows("interactions"), before.1 + 300);

    app.advance_clock(app.settings.session.interaction_ttl_secs);
    let pruned = app.prune();
    assert_eq!((pruned.sessions, pruned.interactions), (300, 300));
    assert_eq!((app.rows("sessions"), app.rows("interactions")), before);
}

/// The cap of sessions per address at three, limits and the trusted proxy set so that a test
/// speaks for several addresses with `X-Forwarded-For`.
const PER_ADDRESS: u32 = 3;

fn capped_per_address(s: &mut Settings) {
    s.session.max_anonymous_per_address = PER_ADDRESS;
    s.rate_limits.authorize_per_minute = 0;
    s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

/// GET /authorize as a browser from `address`, with `client`'s cookies (none for `app.api`).
async fn authorize_from(
    app: &TestApp,
    client: &reqwest::Client,
    query: &str,
    address: &str,
) -> reqwest::Response {
    client
        .get(app.url(&format!("/authorize?{query}")))
        .header("X-Forwarded-For", address)
        .send()
        .await
        .expect("GET /authorize")
}

both_backends!(
    rule58_anonymous_sessions_capped_per_address,
    capped_per_address
);
async fn rule58_anonymous_sessions_capped_per_address(app: TestApp) {
    const FIRST: &str = "203.0.113.7";
    let spa = app.spa_and_alice();
    let ttl = app.settings.session.interaction_ttl_secs;
    let query = authz(&spa.id, &pkce().challenge, &[]);
    let cookieless = |address: &'static str| authorize_from(&app, &app.api, &query, address);

    // A browser, then cookieless requests, from one address: each opens a session, up to the cap.
    let in_browser = authorize_from(&app, &app.browser, &query, FIRST).await;
    assert_to_login(&in_browser, "the browser's first request");
    for i in 1..PER_ADDRESS {
        assert_to_login(&cookieless(FIRST).await, &format!("cookieless request {i}"));
    }
    let held = (app.rows("sessions"), app.rows("interactions"));
    assert_eq!(held, (i64::from(PER_ADDRESS), i64::from(PER_ADDRESS)));

    // One more is refused with a page that says when to come back, and stores nothing.
    let refused = cookieless(FIRST).await;
    assert_eq!(refused.status().as_u16(), 429);
    let wait: i64 = header(refused.headers(), "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=ttl).contains(&wait), "Retry-After {wait}");
    let page = refused.text().await.expect("page");
    assert!(
        page.contains(&format!("Try again in {wait} seconds")),
        "{page}"
    );
    assert_eq!((app.rows("sessions"), app.rows("interactions")), held);

    // Other addresses have their own cap; an IPv6 /64 is one address.
    assert_to_login(&cookieless("203.0.113.8").await, "another address");
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::3"] {
        assert_to_login(&cookieless(host).await, host);
    }
    assert_eq!(cookieless("2001:db8:1:2::ff").await.status().as_u16(), 429);
    assert_to_login(&cookieless("2001:db8:1:3::1").await, "another /64");

    // The browser that holds a session goes on, and signing in frees its slot.
    let again = authorize_from(&app, &app.browser, &query, FIRST).await;
    assert_to_login(&again, "a browser with a session");
    app.sign_in_and_approve(&location(&again), "alice").await;
    assert_to_login(&cookieless(FIRST).await, "the slot freed by signing in");
    assert_eq!(cookieless(FIRST).await.status().as_u16(), 429);

    // The address is stored only as a keyed hash.
    let stored = app.rows_where("sessions", "address_hash LIKE '%203.0.113%'");
    assert_eq!(stored, 0, "no raw address in the sessions table");

    // Once its sessions have expired, the address starts again.
    app.advance_clock(ttl);
    assert_to_login(&cookieless(FIRST).await, "after the sessions expired");
}

both_backends!(
    rule58_prune_runs_in_the_background_every_interval,
    |s: &mut Settings| {
        s.prune.every_secs = 1;
        no_authorize_limit(s);
    }
);
async fn rule58_prune_runs_in_the_background_every_interval(app: TestApp) {
    let spa = app.spa();
    let query = authz(&spa.id, &pkce().challenge, &[]);
    for i in 0..5 {
        let resp = app.get(&format!("/authorize?{query}")).await;
        assert_to_login(&resp, &format!("cookieless request {i}"));
    }
    assert_eq!(app.rows("sessions"), 5);
    app.advance_clock(app.settings.session.interaction_ttl_secs);
    // Nobody calls the prune: the background task's next round (a second away) does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.rows("sessions") > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!((app.rows("sessions"), app.rows("interactions")), (0, 0));
}

/// Writes that leave several MiB in SQLite's write-ahead log: cookieless sign-ins.
async fn fill_the_log(app: &TestApp, requests: usize) {
    let spa = app.spa();
    let query = authz(&spa.id, &pkce().challenge, &[]);
    for i in 0..requests {
        let resp = app.get(&format!("/authorize?{query}")).await;
        assert_to_login(&resp, &format!("cookieless request {i}"));
    }
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule58_sqlite_wal_truncated_past_its_limit() {
    use gatehouse::flows::wal;
    use gatehouse::store::wal::Checkpoint;
    // The background task off: this test calls its check itself.
    let app = spawn_with(Db::Sqlite, |s| {
        s.database.sqlite_wal_limit_mb = 0;
        s.session.max_anonymous_per_address = 0;
        no_authorize_limit(s);
    })
    .await
    .unwrap();
    let path = wal::wal_path(&app.database_url);
    fill_the_log(&app, 300).await;
    let before = file_len(&path);
    assert!(before > MIB, "the log holds {before} bytes");
    let rows = app.rows("sessions");

    let state = app.state.clone();
    let check = move |limit| {
        let (state, path) = (state.clone(), path.clone());
        move || wal::check(&state, &path, limit).unwrap()
    };
    let done = tokio::task::spawn_blocking(check(MIB)).await.unwrap();
    assert_eq!(done, Some(Checkpoint::Truncated));
    assert_eq!(file_len(&wal::wal_path(&app.database_url)), 0);
    assert_eq!(app.rows("sessions"), rows, "every row is in the database");
    let done = tokio::task::spawn_blocking(check(MIB)).await.unwrap();
    assert_eq!(done, None, "within the limit: nothing to do");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule58_sqlite_wal_kept_under_its_limit_in_the_background() {
    let app = spawn_with(Db::Sqlite, |s| {
        s.database.sqlite_wal_limit_mb = 1;
        s.session.max_anonymous_per_address = 0;
        no_authorize_limit(s);
    })
    .await
    .unwrap();
    let path = gatehouse::flows::wal::wal_path(&app.database_url);
    // More than SQLite's own checkpoints leave in the file (it keeps its largest size, about
    // 4 MiB, unless it is truncated).
    fill_the_log(&app, 300).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while file_len(&path) > MIB && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        file_len(&path) <= MIB,
        "the log holds {} bytes",
        file_len(&path)
    );
}

#[test]
fn rule58_bounded_storage_settings() {
    let load = |pairs: &[(&str, &str)]| {
        Settings::load_from(
            None,
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
    };
    let defaults = load(&[]).expect("defaults");
    assert_eq!(defaults.session.max_pending_per_session, 10);
    assert_eq!(defaults.session.max_anonymous_per_address, 1000);
    assert_eq!(defaults.prune.every_secs, 300);
    assert_eq!(defaults.database.sqlite_wal_limit_mb, 64);
    for bad in ["0", "-5", "86401"] {
        let Err(err) = load(&[("GATEHOUSE_PRUNE__EVERY_SECS", bad)]) else {
            panic!("prune.every_secs = {bad} accepted");
        };
        assert!(format!("{err:#}").contains("prune.every_secs"), "{err:#}");
    }
    let set = load(&[
        ("GATEHOUSE_PRUNE__EVERY_SECS", "10"),
        ("GATEHOUSE_SESSION__MAX_ANONYMOUS_PER_ADDRESS", "0"),
        ("GATEHOUSE_DATABASE__SQLITE_WAL_LIMIT_MB", "0"),
    ])
    .expect("set from the environment");
    assert_eq!(set.prune.every_secs, 10);
    assert_eq!(set.session.max_anonymous_per_address, 0);
    assert_eq!(set.database.sqlite_wal_limit_mb, 0);
}
