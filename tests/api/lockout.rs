//! Lockout that spares the real user (checklist 49, 59): failures are counted in the database per
//! user, device and factor; a browser holding the user's signed device cookie keeps its own count,
//! everything else (other browsers, forged or foreign cookies, the password grant) shares the
//! unknown-devices count; a locked attempt looks and costs exactly like a wrong password.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::Arc;

use actix_web::web;
use gatehouse::state::AppState;
use reqwest::cookie::Jar;

use crate::both_backends;
use crate::helpers::*;

const WRONG: &str = "not the password";
const INVALID: &str = "Invalid username or password.";

// ---------------------------------------------------------------------------------------------
// A browser at one instance
// ---------------------------------------------------------------------------------------------

/// A browser (its own cookie jar) at one Gatehouse instance.
struct Browser {
    client: reqwest::Client,
    base: String,
}

/// What one sign-in attempt answered.
#[derive(Debug)]
struct Tried {
    status: u16,
    /// The Location of a 303.
    location: Option<String>,
    /// The device cookie's Set-Cookie header, if one was set.
    device_cookie: Option<String>,
    /// The page, with this form's interaction and CSRF values blanked out.
    page: String,
}

impl Tried {
    fn signed_in(&self) -> bool {
        self.status == 303
            && self
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("/consent"))
    }

    /// The device cookie's value.
    fn device_value(&self) -> String {
        let header = self.device_cookie.as_deref().expect("a device cookie");
        cookie_pair(header).1
    }
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser::with_jar(base, Arc::new(Jar::default()))
    }

    /// A browser whose only cookie is this device cookie: the user's own browser another day.
    fn with_device(base: &str, value: &str) -> Browser {
        let jar = Arc::new(Jar::default());
        let url = url::Url::parse(base).expect("base URL");
        jar.add_cookie_str(&format!("gatehouse_device={value}; Path=/"), &url);
        Browser::with_jar(base, jar)
    }

    fn with_jar(base: &str, jar: Arc<Jar>) -> Browser {
        let client = reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("browser");
        Browser {
            client,
            base: base.to_owned(),
        }
    }

    /// Opens a login page of `client` (through /authorize): its interaction and CSRF fields.
    async fn open_login(&self, client: &TestClient) -> (String, String) {
        let query = authz(&client.id, &pkce().challenge, &[]);
        let resp = get_with(&self.client, &format!("{}/authorize?{query}", self.base)).await;
        assert_to_login(&resp, "a browser with no session");
        let page = get_with(&self.client, &format!("{}{}", self.base, location(&resp)))
            .await
            .text()
            .await
            .expect("login page");
        (hidden(&page, "interaction"), hidden(&page, "csrf"))
    }

    /// Posts the login form opened with [`Browser::open_login`].
    async fn post_login(
        &self,
        (interaction, csrf): &(String, String),
        username: &str,
        password: &str,
    ) -> Tried {
        let form = login_form(interaction, csrf, username, password);
        let resp = post_with(&self.client, &format!("{}/login", self.base), &form).await;
        let status = resp.status().as_u16();
        let location = header(&resp, "location");
        let device_cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.contains("gatehouse_device="))
            .map(str::to_owned);
        let page = resp
            .text()
            .await
            .expect("body")
            .replace(interaction.as_str(), "INTERACTION")
            .replace(csrf.as_str(), "CSRF");
        Tried {
            status,
            location,
            device_cookie,
            page,
        }
    }

    /// Opens a login page and signs in with it.
    async fn sign_in(&self, client: &TestClient, username: &str, password: &str) -> Tried {
        let form = self.open_login(client).await;
        self.post_login(&form, username, password).await
    }

    /// `n` wrong passwords for `username`, each answered as a wrong password.
    async fn fail(&self, client: &TestClient, username: &str, n: usize) -> Tried {
        let form = self.open_login(client).await;
        let mut last = None;
        for _ in 0..n {
            let tried = self.post_login(&form, username, WRONG).await;
            assert_refused(&tried, "a wrong password");
            last = Some(tried);
        }
        last.expect("at least one attempt")
    }
}

/// Asserts the answer to a wrong password: the login page again, 200, the generic message.
fn assert_refused(tried: &Tried, what: &str) {
    assert_eq!(tried.status, 200, "{what}: {}", tried.page);
    assert!(tried.page.contains(INVALID), "{what}: {}", tried.page);
    assert!(tried.device_cookie.is_none(), "{what}: no device cookie");
}

/// Browser sign-in failures in the audit log whose detail is `detail`: `browser` for a password
/// really checked, `browser; locked` for an attempt refused by a lock.
fn sign_in_failures(app: &TestApp, detail: &str) -> usize {
    app.audit_events_named("sign_in")
        .iter()
        .filter(|e| e.outcome == "failure" && e.detail.as_deref() == Some(detail))
        .count()
}

/// The details of the `locked_out` events, oldest first.
fn lockouts(app: &TestApp) -> Vec<String> {
    app.audit_events_named("locked_out")
        .into_iter()
        .map(|e| e.detail.unwrap_or_default())
        .collect()
}

/// A second Gatehouse on the same database and master key as `app` (two instances behind one
/// load balancer), on its own port.
async fn second_instance(app: &TestApp) -> (String, web::Data<AppState>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let state = start_server(app.settings.clone(), app.state.master.clone(), listener).await;
    (address, state)
}

// ---------------------------------------------------------------------------------------------
// 49. lockout per account
// ---------------------------------------------------------------------------------------------

both_backends!(rule49_lockout_after_exactly_max_failures);
async fn rule49_lockout_after_exactly_max_failures(app: TestApp) {
    let spa = app.spa_and_alice();
    let max = app.settings.lockout.max_failures as usize;
    assert_eq!(max, 5, "the default");
    let browser = Browser::new(&app.address);
    let form = browser.open_login(&spa).await;
    let mut wrong = Vec::new();
    for _ in 0..max {
        wrong.push(browser.post_login(&form, "alice", WRONG).await);
    }
    for w in &wrong {
        assert_refused(w, "a wrong password");
    }

    // The right password is now refused, with exactly the page of a wrong one.
    let right = browser.post_login(&form, "alice", PASSWORD).await;
    assert_refused(&right, "the right password while locked");
    assert_eq!(
        right.page, wrong[0].page,
        "a lock looks like a wrong password"
    );
    let again = browser.post_login(&form, "alice", WRONG).await;
    assert_eq!(again.page, wrong[0].page);

    // Exactly max passwords were checked; the rest were refused without a check.
    assert_eq!(sign_in_failures(&app, "browser"), max);
    assert_eq!(sign_in_failures(&app, "browser; locked"), 2);
    let locks = lockouts(&app);
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert!(
        locks[0].starts_with("password; unknown device"),
        "{locks:?}"
    );

    // Another user is not affected.
    app.user("bob", &[]);
    assert!(browser.sign_in(&spa, "bob", PASSWORD).await.signed_in());
}

both_backends!(
    rule49_parallel_guesses_across_instances_get_at_most_max_checks,
    |s: &mut Settings| {
        s.rate_limits.login_per_minute = 0;
        s.rate_limits.authorize_per_minute = 0;
    }
);
async fn rule49_parallel_guesses_across_instances_get_at_most_max_checks(app: TestApp) {
    let spa = app.spa_and_alice();
    let (other, _other_state) = second_instance(&app).await;
    // 50 browsers, half at each instance, each with its login form open.
    let mut ready = Vec::new();
    for i in 0..50 {
        let base = if i % 2 == 0 { &app.address } else { &other };
        let browser = Browser::new(base);
        let form = browser.open_login(&spa).await;
        ready.push((browser, form));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(ready.len()));
    let guesses: Vec<_> = ready
        .into_iter()
        .map(|(browser, form)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                browser.post_login(&form, "alice", WRONG).await
            })
        })
        .collect();
    for guess in guesses {
        assert_refused(&guess.await.expect("guess"), "a parallel guess");
    }
    let max = app.settings.lockout.max_failures as usize;
    assert_eq!(
        sign_in_failures(&app, "browser"),
        max,
        "passwords really checked"
    );
    assert_eq!(sign_in_failures(&app, "browser; locked"), 50 - max);
    assert_eq!(lockouts(&app).len(), 1);

    // And the right password is refused on both instances.
    for base in [&app.address, &other] {
        let right = Browser::new(base).sign_in(&spa, "alice", PASSWORD).await;
        assert_refused(&right, "the right password while locked");
    }
}

both_backends!(rule49_lock_expires);
async fn rule49_lock_expires(app: TestApp) {
    let spa = app.spa_and_alice();
    let browser = Browser::new(&app.address);
    browser.fail(&spa, "alice", 5).await;
    let locked = browser.sign_in(&spa, "alice", PASSWORD).await;
    assert_refused(&locked, "locked");

    // A minute short of the end, not one second: the clock counts whole seconds of real time
    // too, and seconds may pass between the locking failure and this attempt on a busy machine.
    app.advance_clock(app.settings.lockout.duration_secs - 60);
    let still = browser.sign_in(&spa, "alice", PASSWORD).await;
    assert_refused(&still, "a minute before the lock ends");
    app.advance_clock(60);
    assert!(browser.sign_in(&spa, "alice", PASSWORD).await.signed_in());
}

both_backends!(rule49_success_resets_the_count);
async fn rule49_success_resets_the_count(app: TestApp) {
    let spa = app.spa_and_alice();
    let client = app.password_client();
    let first = Browser::new(&app.address);
    first.fail(&spa, "alice", 4).await;
    assert!(first.sign_in(&spa, "alice", PASSWORD).await.signed_in());

    // Four more failures (eight in all) from another unknown browser, and the right password
    // still signs in: the success started the count again.
    let second = Browser::new(&app.address);
    second.fail(&spa, "alice", 4).await;
    assert!(second.sign_in(&spa, "alice", PASSWORD).await.signed_in());

    // The password grant's success resets the same count.
    for _ in 0..4 {
        let req = app.token().password("alice", WRONG).basic(&client);
        req.fails(400, "invalid_grant").await;
    }
    app.token()
        .password("alice", PASSWORD)
        .basic(&client)
        .ok()
        .await;
    Browser::new(&app.address).fail(&spa, "alice", 4).await;
    let third = Browser::new(&app.address);
    assert!(third.sign_in(&spa, "alice", PASSWORD).await.signed_in());
    assert!(lockouts(&app).is_empty());
}

both_backends!(rule49_password_grant_counts_as_unknown_device_and_is_locked);
async fn rule49_password_grant_counts_as_unknown_device_and_is_locked(app: TestApp) {
    let spa = app.spa_and_alice();
    let client = app.password_client();
    // Alice's own browser, signed in before the attack.
    let own = Browser::new(&app.address)
        .sign_in(&spa, "alice", PASSWORD)
        .await;
    assert!(own.signed_in());

    let grant = |password: &'static str| app.token().password("alice", password).basic(&client);
    let (status, _, wrong) = grant(WRONG).read().await;
    assert_eq!(
        (status, wrong["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for _ in 1..5 {
        grant(WRONG).fails(400, "invalid_grant").await;
    }
    // Locked: the right password gets exactly the wrong password's answer.
    let (status, _, locked) = grant(PASSWORD).read().await;
    assert_eq!(status, 400);
    assert_eq!(locked, wrong, "a lock answers like a wrong password");
    assert_eq!(sign_in_failures(&app, "password grant"), 5);
    assert_eq!(sign_in_failures(&app, "password grant; locked"), 1);
    assert_eq!(lockouts(&app).len(), 1);

    // The password grant shares the unknown devices' count: an unknown browser is locked too,
    // and alice's own browser is not.
    let unknown = Browser::new(&app.address)
        .sign_in(&spa, "alice", PASSWORD)
        .await;
    assert_refused(&unknown, "an unknown browser");
    let known = Browser::with_device(&app.address, &own.device_value());
    assert!(known.sign_in(&spa, "alice", PASSWORD).await.signed_in());
    // Which does not unlock the unknown devices.
    grant(PASSWORD).fails(400, "invalid_grant").await;
}

both_backends!(
    rule49_locked_answer_costs_what_a_wrong_password_costs,
    |s: &mut Settings| {
        production_argon2(s);
        // Enough room for bob's timed failures; alice is locked first. The per-address limit
        // would stop this many attempts from one address.
        s.lockout.max_failures = 30;
        s.rate_limits.login_per_minute = 0;
    }
);
async fn rule49_locked_answer_costs_what_a_wrong_password_costs(app: TestApp) {
    let spa = app.spa_and_alice();
    app.user("bob", &[]);
    let browser = Browser::new(&app.address);
    browser.fail(&spa, "alice", 30).await;
    let form = browser.open_login(&spa).await;
    assert_refused(
        &browser.post_login(&form, "alice", PASSWORD).await,
        "locked",
    );
    let (browser, form) = (&browser, &form);
    let what = "login: locked alice (true), wrong password for bob (false)";
    assert_same_cost(what, |locked| async move {
        let user = if locked { "alice" } else { "bob" };
        assert_refused(&browser.post_login(form, user, WRONG).await, what);
    })
    .await;
    assert!(lockouts(&app).len() == 1, "bob stays unlocked");
}

// ---------------------------------------------------------------------------------------------
// 59. device cookies
// ---------------------------------------------------------------------------------------------

both_backends!(rule59_known_device_still_signs_in_while_unknown_devices_are_locked);
async fn rule59_known_device_still_signs_in_while_unknown_devices_are_locked(app: TestApp) {
    let spa = app.spa_and_alice();
    // Alice's two browsers, each signed in once (a device cookie each).
    let mut devices = Vec::new();
    for _ in 0..2 {
        let own = Browser::new(&app.address)
            .sign_in(&spa, "alice", PASSWORD)
            .await;
        assert!(own.signed_in());
        devices.push(own.device_value());
    }
    assert_ne!(devices[0], devices[1]);

    // Someone else guesses from elsewhere until the unknown devices are locked.
    let attacker = Browser::new(&app.address);
    attacker.fail(&spa, "alice", 5).await;
    let refused = attacker.sign_in(&spa, "alice", PASSWORD).await;
    assert_refused(&refused, "the attacker with the right password");

    // Alice's browser still signs in, and gets its device cookie again (same device).
    let known = Browser::with_device(&app.address, &devices[0]);
    let again = known.sign_in(&spa, "alice", PASSWORD).await;
    assert!(again.signed_in(), "{again:?}");
    let renewed = again.device_value();
    let device_id = |v: &str| v.split('.').nth(2).map(str::to_owned);
    assert_eq!(
        device_id(&renewed),
        device_id(&devices[0]),
        "the same device"
    );
    // The unknown devices stay locked.
    assert_refused(
        &attacker.sign_in(&spa, "alice", PASSWORD).await,
        "still locked for unknown devices",
    );

    // A known device's own failures count separately and lock only it.
    let known = Browser::with_device(&app.address, &renewed);
    known.fail(&spa, "alice", 5).await;
    assert_refused(
        &known.sign_in(&spa, "alice", PASSWORD).await,
        "the known device, now locked",
    );
    let other = Browser::with_device(&app.address, &devices[1]);
    assert!(other.sign_in(&spa, "alice", PASSWORD).await.signed_in());
    let mut locks = lockouts(&app);
    locks.sort();
    assert_eq!(locks.len(), 2, "{locks:?}");
    assert!(locks[0].starts_with("password; known device"), "{locks:?}");
    assert!(
        locks[1].starts_with("password; unknown device"),
        "{locks:?}"
    );
}

both_backends!(rule59_forged_or_other_users_device_cookie_counts_as_unknown);
async fn rule59_forged_or_other_users_device_cookie_counts_as_unknown(app: TestApp) {
    let alice_id = app.user("alice", &[]);
    app.user("bob", &[]);
    let spa = app.spa();
    let bobs = Browser::new(&app.address)
        .sign_in(&spa, "bob", PASSWORD)
        .await;
    let alices = Browser::new(&app.address)
        .sign_in(&spa, "alice", PASSWORD)
        .await;
    let (bob_cookie, alice_cookie) = (bobs.device_value(), alices.device_value());
    assert!(alice_cookie.contains(&alice_id), "{alice_cookie}");

    // A year later alice's cookie has expired; then her unknown devices are locked.
    app.advance_clock(app.settings.lockout.device_cookie_ttl_secs);
    Browser::new(&app.address).fail(&spa, "alice", 5).await;

    let now = app.now();
    let mac = alice_cookie.rsplit('.').next().unwrap().to_owned();
    let forged = [
        ("bob's device cookie", bob_cookie.clone()),
        ("alice's expired cookie", alice_cookie.clone()),
        (
            "a made-up device",
            format!("v1.{alice_id}.dev_made_up.{now}.{mac}"),
        ),
        (
            "alice's cookie with a new date",
            alice_cookie.replace(
                &format!(".{}.", alices_issued(&alice_cookie)),
                &format!(".{now}."),
            ),
        ),
        ("garbage", "not a device cookie".replace(' ', "_")),
    ];
    for (what, cookie) in forged {
        let browser = Browser::with_device(&app.address, &cookie);
        let tried = browser.sign_in(&spa, "alice", PASSWORD).await;
        assert_refused(&tried, what);
    }
    // Bob's cookie still works for bob.
    let bob = Browser::with_device(&app.address, &bob_cookie);
    assert!(bob.sign_in(&spa, "bob", PASSWORD).await.signed_in());
}

/// The issue time inside a device cookie.
fn alices_issued(cookie: &str) -> String {
    cookie.split('.').nth(3).expect("issued at").to_owned()
}

both_backends!(rule59_device_cookie_flags);
async fn rule59_device_cookie_flags(app: TestApp) {
    let spa = app.spa_and_alice();
    let signed_in = Browser::new(&app.address)
        .sign_in(&spa, "alice", PASSWORD)
        .await;
    let header = signed_in.device_cookie.clone().expect("a device cookie");
    let attrs = header.to_ascii_lowercase().replace(' ', "");
    assert!(header.starts_with("gatehouse_device="), "{header}");
    let ttl = app.settings.lockout.device_cookie_ttl_secs;
    for flag in [
        "httponly".to_owned(),
        "samesite=lax".to_owned(),
        "path=/".to_owned(),
        format!("max-age={ttl}"),
    ] {
        assert!(attrs.contains(&flag), "{flag} in {header}");
    }
    assert!(!attrs.contains("secure"), "plain http: {header}");
    assert!(!attrs.contains("domain"), "host-only: {header}");
    // The value names the user and never the password.
    assert!(
        !header.contains(PASSWORD) && !header.contains("alice"),
        "{header}"
    );

    // Over https: __Host- prefix and Secure. (The test client speaks http, so it sends the
    // Secure session cookie by hand.)
    let secure = app
        .sibling(|s| s.server.issuer = "https://auth.example".into())
        .await;
    let spa = secure.spa_and_alice();
    let query = authz(&spa.id, &pkce().challenge, &[]);
    let resp = secure.get(&format!("/authorize?{query}")).await;
    let session = cookie_pair(&set_cookie(&resp).expect("a session")).1;
    let cookie = format!("__Host-gatehouse_session={session}");
    let page = secure
        .api
        .get(secure.url(&location(&resp)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
    let resp = secure
        .api
        .post(secure.url("/login"))
        .header("cookie", &cookie)
        .form(&login_form(&interaction, &csrf, "alice", PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let device = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-gatehouse_device="))
        .expect("__Host-gatehouse_device")
        .to_ascii_lowercase();
    assert!(device.contains("; secure"), "{device}");
}

both_backends!(rule49_unknown_usernames_get_no_counter);
async fn rule49_unknown_usernames_get_no_counter(app: TestApp) {
    let spa = app.spa_and_alice();
    let browser = Browser::new(&app.address);
    browser.fail(&spa, "mallory-the-made-up-name", 7).await;
    assert_eq!(app.rows("sign_in_failures"), 0);
    let stored = app.every_stored_text();
    let named = stored
        .iter()
        .find(|(_, row)| row.contains("mallory-the-made-up-name"));
    assert!(named.is_none(), "a typed name was stored: {named:?}");
    browser.fail(&spa, "alice", 1).await;
    assert_eq!(app.rows("sign_in_failures"), 1);
}

// ---------------------------------------------------------------------------------------------
// gatehouse user unlock
// ---------------------------------------------------------------------------------------------

/// `gatehouse ARGS` against `app`'s database, with a clean environment.
fn gatehouse(app: &TestApp, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEHOUSE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir.path())
        .env("GATEHOUSE_DATABASE_URL", &app.database_url)
        .env("GATEHOUSE_KEYS_DIR", dir.path().join("keys"))
        .args(args)
        .output()
        .expect("run gatehouse")
}

both_backends!(user_unlock_clears_the_lock);
async fn user_unlock_clears_the_lock(app: TestApp) {
    let alice_id = app.user("alice", &[]);
    let spa = app.spa();
    let browser = Browser::new(&app.address);
    browser.fail(&spa, "alice", 5).await;
    assert_refused(&browser.sign_in(&spa, "alice", PASSWORD).await, "locked");

    let out = gatehouse(&app, &["user", "unlock", "--username", "alice"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.starts_with("database: "),
        "names the database: {stdout}"
    );
    assert!(
        stdout
            .lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("unlocked alice: 1 failure counter"),
        "{stdout}"
    );
    assert!(browser.sign_in(&spa, "alice", PASSWORD).await.signed_in());
    let unlocked = app.audit_events_named("unlocked");
    assert_eq!(unlocked.len(), 1);
    assert_eq!(unlocked[0].actor, "cli");
    assert_eq!(unlocked[0].user_id.as_deref(), Some(alice_id.as_str()));

    // --json; nothing left to clear.
    let out = gatehouse(&app, &["user", "unlock", "--username", "alice", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["user_id"], alice_id.as_str());
    assert_eq!(json["username"], "alice");
    assert_eq!(json["cleared"], 0);

    // An unknown user: a readable error and a non-zero exit.
    let out = gatehouse(&app, &["user", "unlock", "--username", "nobody"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim(), "gatehouse: no user named \"nobody\"");
}
