//! The admin console (`/admin`): who may enter (the admin role and a second factor, read at every
//! request), the sign-in that returns to it, CSRF and same-origin forms, field errors, the
//! confirmation of destructive actions, secrets shown once, and the audit log naming the
//! administrator. Checklist rules 42, 48 and 55. Each runs on SQLite and on PostgreSQL.

use gatehouse::mfa::TotpSecret;

use crate::both_backends;
use crate::helpers::*;

/// A browser signed in to the console as a new administrator `root` (password + TOTP); the
/// administrator's id.
struct Console {
    browser: reqwest::Client,
    admin_id: String,
    secret: TotpSecret,
}

async fn text(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// Visits `/admin` in `browser` and signs in through the login page as `username`; returns the
/// answer of the password step.
async fn console_password_step(
    app: &TestApp,
    browser: &reqwest::Client,
    username: &str,
) -> reqwest::Response {
    let resp = get_with(browser, &app.url("/admin")).await;
    assert_eq!(resp.status().as_u16(), 303, "to the login page");
    let login = location(&resp);
    assert_eq!(login, "/login?return_to=%2Fadmin");
    let (status, page) = text(get_with(browser, &app.url(&login)).await).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("the Gatehouse admin console"), "{page}");
    let (return_to, csrf) = (hidden(&page, "return_to"), hidden(&page, "csrf"));
    post_with(
        browser,
        &app.url("/login"),
        &[
            ("return_to", return_to.as_str()),
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", PASSWORD),
        ],
    )
    .await
}

/// The code step at `otp_page` with the current code; returns its answer.
async fn console_code_step(
    app: &TestApp,
    browser: &reqwest::Client,
    otp_page: &str,
    secret: &TotpSecret,
    steps: i64,
) -> reqwest::Response {
    let (status, page) = text(get_with(browser, &app.url(otp_page)).await).await;
    assert_eq!(status, 200, "{page}");
    let (return_to, csrf) = (hidden(&page, "return_to"), hidden(&page, "csrf"));
    let code = code(app, secret, steps);
    post_with(
        browser,
        &app.url("/login/otp"),
        &[
            ("return_to", return_to.as_str()),
            ("csrf", csrf.as_str()),
            ("code", code.as_str()),
        ],
    )
    .await
}

/// A new administrator with TOTP, signed in to the console in a new browser.
async fn console(app: &TestApp) -> Console {
    let admin_id = app.user("root", &["admin"]);
    let (secret, _) = enrol(app, "root");
    let browser = new_browser();
    let resp = console_password_step(app, &browser, "root").await;
    assert_eq!(resp.status().as_u16(), 303);
    let otp = location(&resp);
    assert_eq!(otp, "/login/otp?return_to=%2Fadmin");
    let resp = console_code_step(app, &browser, &otp, &secret, 0).await;
    assert_eq!(resp.status().as_u16(), 303, "second factor accepted");
    assert_eq!(location(&resp), "/admin", "back to the console");
    let (status, page) = text(get_with(&browser, &app.url("/admin")).await).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Admin console"));
    Console {
        browser,
        admin_id,
        secret,
    }
}

impl Console {
    async fn get(&self, app: &TestApp, path: &str) -> (u16, String) {
        text(get_with(&self.browser, &app.url(path)).await).await
    }

    /// The CSRF token of the console's forms (on every page with a form).
    async fn csrf(&self, app: &TestApp) -> String {
        let (status, page) = self.get(app, "/admin/keys").await;
        assert_eq!(status, 200, "{page}");
        hidden(&page, "csrf")
    }

    /// POSTs a console form with the session's CSRF token.
    async fn post(&self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let csrf = self.csrf(app).await;
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        post_with(&self.browser, &app.url(path), &fields).await
    }
}

fn client_count(app: &TestApp) -> usize {
    gatehouse::registry::list_clients(&mut app.conn(), None, 500, 0)
        .expect("clients")
        .items
        .len()
}

fn key_count(app: &TestApp) -> usize {
    gatehouse::flows::admin::keys(&mut app.conn(), app.now())
        .expect("keys")
        .len()
}

const GOOD_CLIENT: [(&str, &str); 4] = [
    ("client_name", "Console app"),
    ("redirect_uris", "https://app.example/cb"),
    ("audiences", "https://api.example"),
    ("scope", "read write"),
];

both_backends!(admin_console_needs_admin_role);
async fn admin_console_needs_admin_role(app: TestApp) {
    // A user without the admin role signs in through the console's sign-in: 403 at the door.
    app.user("alice", &[]);
    let browser = new_browser();
    let resp = console_password_step(&app, &browser, "alice").await;
    assert_eq!(location(&resp), "/admin", "no second factor needed");
    let (status, page) = text(get_with(&browser, &app.url("/admin")).await).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Administrators only"), "{page}");
    let (status, _) = text(get_with(&browser, &app.url("/admin/clients")).await).await;
    assert_eq!(status, 403);
    let resp = post_with(&browser, &app.url("/admin/keys/rotate"), &[("csrf", "x")]).await;
    assert_eq!(resp.status().as_u16(), 403);

    // Roles are read at every request: an administrator demoted or disabled is out at once.
    let console = console(&app).await;
    app.set_roles("root", &["ops"]).expect("roles");
    assert_eq!(console.get(&app, "/admin").await.0, 403, "demoted");
    app.set_roles("root", &["admin"]).expect("roles");
    assert_eq!(console.get(&app, "/admin").await.0, 200, "admin again");
    app.disable_user("root").expect("disable");
    let resp = get_with(&console.browser, &app.url("/admin")).await;
    assert_eq!(resp.status().as_u16(), 303, "disabled: signed out");
    assert!(location(&resp).starts_with("/login?return_to="));
}

both_backends!(admin_console_needs_second_factor);
async fn admin_console_needs_second_factor(app: TestApp) {
    // An administrator signed in to an application with the password alone (no TOTP yet).
    let spa = app.spa();
    app.user("root", &["admin"]);
    app.tokens_for(&spa, "root").await;
    let keys_before = key_count(&app);

    // The console asks for a new sign-in, and a form is refused with nothing changed.
    let resp = app.browse("/admin/clients").await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp), "/login?return_to=%2Fadmin%2Fclients");
    let resp = app
        .browser_post("/admin/keys/rotate", &[("csrf", "anything")])
        .await;
    let (status, page) = text(resp).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("second factor"), "{page}");
    assert_eq!(key_count(&app), keys_before, "no key added");

    // Signing in to the console without a factor set up goes to enrolment first, which then
    // returns to the console.
    let browser = new_browser();
    let resp = console_password_step(&app, &browser, "root").await;
    assert_eq!(resp.status().as_u16(), 303);
    let enrol_page = location(&resp);
    assert_eq!(enrol_page, "/account/mfa?return_to=%2Fadmin");
    let (status, page) = text(get_with(&browser, &app.url(&enrol_page)).await).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("name=\"return_to\" value=\"/admin\""),
        "{page}"
    );
    assert_eq!(
        get_with(&browser, &app.url("/admin"))
            .await
            .status()
            .as_u16(),
        303,
        "half signed in: not in yet"
    );

    // With TOTP, the password alone is not enough: the code step comes next.
    let browser = new_browser();
    app.user("second", &["admin"]);
    let (secret, _) = enrol(&app, "second");
    let resp = console_password_step(&app, &browser, "second").await;
    let otp = location(&resp);
    assert!(otp.starts_with("/login/otp?"), "{otp}");
    assert_eq!(
        get_with(&browser, &app.url("/admin"))
            .await
            .status()
            .as_u16(),
        303
    );
    let resp = console_code_step(&app, &browser, &otp, &secret, 0).await;
    assert_eq!(location(&resp), "/admin");
    assert_eq!(
        get_with(&browser, &app.url("/admin"))
            .await
            .status()
            .as_u16(),
        200
    );
}

both_backends!(rule48_console_sign_in_returns_only_to_console_paths);
async fn rule48_console_sign_in_returns_only_to_console_paths(app: TestApp) {
    // The page asked for is where the sign-in returns.
    let resp = app.browse("/admin/audit?event=unlocked").await;
    assert_eq!(
        location(&resp),
        "/login?return_to=%2Fadmin%2Faudit%3Fevent%3Dunlocked"
    );
    // A return_to that is not a console path is no sign-in at all.
    for bad in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example",
        "%2Fadmin%2F..%2Flogin",
        "%2Flogin",
    ] {
        let (status, page) = text(app.browse(&format!("/login?return_to={bad}")).await).await;
        assert_eq!(status, 400, "{bad}: {page}");
    }
    app.user("root", &["admin"]);
    let (_, page) = text(app.browse("/login?return_to=%2Fadmin").await).await;
    let csrf = hidden(&page, "csrf");
    let resp = app
        .browser_post(
            "/login",
            &[
                ("return_to", "https://evil.example/"),
                ("csrf", &csrf),
                ("username", "root"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status().as_u16(), 400, "no redirect elsewhere");
}

both_backends!(admin_console_refuses_missing_csrf);
async fn admin_console_refuses_missing_csrf(app: TestApp) {
    let console = console(&app).await;
    let before = client_count(&app);
    let form: Vec<(&str, &str)> = GOOD_CLIENT.to_vec();
    let resp = post_with(&console.browser, &app.url("/admin/clients/new"), &form).await;
    let (status, page) = text(resp).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Nothing was changed"), "{page}");
    let mut wrong = form.clone();
    wrong.push(("csrf", "AAAA"));
    let resp = post_with(&console.browser, &app.url("/admin/clients/new"), &wrong).await;
    assert_eq!(resp.status().as_u16(), 400);
    // Another session's token is wrong in this one.
    let other = new_browser();
    let stolen = {
        let resp = console_password_step(&app, &other, "root").await;
        let otp = location(&resp);
        let resp = console_code_step(&app, &other, &otp, &console.secret, 1).await;
        assert_eq!(location(&resp), "/admin");
        let (_, page) = text(get_with(&other, &app.url("/admin/keys")).await).await;
        hidden(&page, "csrf")
    };
    assert_ne!(stolen, console.csrf(&app).await, "bound to the session");
    let mut foreign = form.clone();
    foreign.push(("csrf", &stolen));
    let resp = post_with(&console.browser, &app.url("/admin/clients/new"), &foreign).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(client_count(&app), before, "nothing registered");
}

both_backends!(admin_console_refuses_cross_site_post);
async fn admin_console_refuses_cross_site_post(app: TestApp) {
    let console = console(&app).await;
    let before = client_count(&app);
    let csrf = console.csrf(&app).await;
    let mut form: Vec<(&str, &str)> = GOOD_CLIENT.to_vec();
    form.push(("csrf", &csrf));
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "https://evil.example"),
    ] {
        let resp = console
            .browser
            .post(app.url("/admin/clients/new"))
            .header(name, value)
            .form(&form)
            .send()
            .await
            .expect("POST");
        let (status, page) = text(resp).await;
        assert_eq!(status, 403, "{name}: {value}: {page}");
        assert!(page.contains("another site"), "{page}");
    }
    assert_eq!(client_count(&app), before, "nothing registered");
    // The same form from our own page goes through.
    let resp = console
        .browser
        .post(app.url("/admin/clients/new"))
        .header("sec-fetch-site", "same-origin")
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(client_count(&app), before + 1);
}

both_backends!(admin_console_creates_client_and_shows_secret_once);
async fn admin_console_creates_client_and_shows_secret_once(app: TestApp) {
    let console = console(&app).await;
    let resp = console
        .post(
            &app,
            "/admin/clients/new",
            &[
                ("client_name", "Nightly job"),
                ("confidential", "on"),
                ("grant_type_client_credentials", "on"),
                ("audiences", "https://api.example"),
                ("scope", "reports:read"),
            ],
        )
        .await;
    assert_eq!(
        header(&resp, "cache-control").as_deref(),
        Some("no-store"),
        "a secret is never cached"
    );
    let (status, page) = text(resp).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("shown <strong>only now</strong>"), "{page}");
    assert!(page.contains("data-copy=\"client-secret\""), "copy button");
    let secret = between(
        &page,
        "<code class=\"secret\" id=\"client-secret\">",
        "</code>",
    );
    let client_id = between(&page, "client id <code>", "</code>");
    assert!(client_id.starts_with("cl_"), "{client_id}");

    // The secret works, and is never shown again.
    let tokens = app
        .token()
        .client_credentials()
        .basic_as(&client_id, &secret)
        .ok()
        .await;
    assert!(tokens["access_token"].is_string());
    let (status, page) = console
        .get(&app, &format!("/admin/clients/{client_id}"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Nightly job"));
    assert!(
        !page.contains(&secret),
        "the secret is not on the client's page"
    );
    let (_, list) = console.get(&app, "/admin/clients?q=nightly").await;
    assert!(list.contains(&client_id), "{list}");
    assert!(!list.contains(&secret));

    // Audited as the administrator.
    let created = app.audit_events_named("client_created");
    let row = created
        .iter()
        .find(|e| e.client_id.as_deref() == Some(client_id.as_str()))
        .expect("audited");
    assert_eq!(row.actor, console.admin_id);
}

fn between(page: &str, start: &str, end: &str) -> String {
    let from = page
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {page}"))
        + start.len();
    let to = page[from..].find(end).expect("end") + from;
    page[from..to].to_owned()
}

both_backends!(admin_console_shows_field_errors_and_keeps_input);
async fn admin_console_shows_field_errors_and_keeps_input(app: TestApp) {
    let console = console(&app).await;
    let before = client_count(&app);
    let uris = "http://app.example/cb\nhttps://app.example/cb#top\nhttps://*.example/cb";
    let resp = console
        .post(
            &app,
            "/admin/clients/new",
            &[
                ("client_name", "Kept <name>"),
                ("redirect_uris", uris),
                ("audiences", "https://api.example"),
                ("scope", "read"),
                ("allowed_origins", "https://app.example/path"),
            ],
        )
        .await;
    let (status, page) = text(resp).await;
    assert_eq!(status, 400, "{page}");
    // Each fault beside its field.
    let redirect_errors = page.matches("id=\"redirect_uris-error\"").count();
    assert_eq!(redirect_errors, 3, "one per bad URI: {page}");
    assert!(page.contains("must use https"), "{page}");
    assert!(page.contains("must not have a fragment"), "{page}");
    assert!(page.contains("must not contain a wildcard"), "{page}");
    assert!(page.contains("id=\"allowed_origins-error\""), "{page}");
    assert!(!page.contains("id=\"audiences-error\""), "{page}");
    // The input kept (escaped).
    assert!(
        page.contains("value=\"Kept &#60;name&#62;\"")
            || page.contains("value=\"Kept &lt;name&gt;\""),
        "{page}"
    );
    assert!(page.contains("https://app.example/cb#top"), "{page}");
    assert!(page.contains("https://app.example/path"), "{page}");
    assert_eq!(client_count(&app), before, "nothing registered");

    // Editing a client: the same rules, the same page, the client unchanged.
    let client = app.spa();
    let resp = console
        .post(
            &app,
            &format!("/admin/clients/{}", client.id),
            &[
                ("client_name", "Test SPA"),
                ("redirect_uris", "https://app.example/cb#frag"),
                ("audiences", AUDIENCE),
            ],
        )
        .await;
    let (status, page) = text(resp).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("id=\"redirect_uris-error\""), "{page}");
    assert!(page.contains("https://app.example/cb#frag"), "{page}");
    let stored = gatehouse::registry::find_client(&mut app.conn(), &client.id).expect("client");
    assert_eq!(stored.redirect_uris, vec![REDIRECT.to_owned()]);
}

both_backends!(admin_console_edits_client);
async fn admin_console_edits_client(app: TestApp) {
    let console = console(&app).await;
    let client = app.spa();
    let resp = console
        .post(
            &app,
            &format!("/admin/clients/{}", client.id),
            &[
                ("client_name", "Renamed SPA"),
                ("redirect_uris", REDIRECT),
                ("grant_type_authorization_code", "on"),
                ("grant_type_refresh_token", "on"),
                ("scope", "api:read api:write"),
                ("audiences", AUDIENCE),
                ("allowed_origins", ORIGIN),
            ],
        )
        .await;
    assert_eq!(resp.status().as_u16(), 303);
    let stored = gatehouse::registry::find_client(&mut app.conn(), &client.id).expect("client");
    assert_eq!(stored.name, "Renamed SPA");
    let updated = app.audit_events_named("client_updated");
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].actor, console.admin_id);
    assert_eq!(
        updated[0].detail.as_deref(),
        Some("changed client_name"),
        "only what changed"
    );
}

both_backends!(admin_console_sets_skip_consent_and_post_logout_redirect_uris);
async fn admin_console_sets_skip_consent_and_post_logout_redirect_uris(app: TestApp) {
    let console = console(&app).await;
    let client = app.spa();
    let path = format!("/admin/clients/{}", client.id);
    let form = |skip: bool, uris: &'static str| {
        let mut f = vec![
            ("client_name", "Test SPA"),
            ("redirect_uris", REDIRECT),
            ("grant_type_authorization_code", "on"),
            ("grant_type_refresh_token", "on"),
            ("scope", "api:read api:write"),
            ("audiences", AUDIENCE),
            ("allowed_origins", ORIGIN),
            ("post_logout_redirect_uris", uris),
        ];
        if skip {
            f.push(("skip_consent", "on"));
        }
        f
    };
    let resp = console
        .post(
            &app,
            &path,
            &form(true, "https://app.example/bye\nhttp://127.0.0.1:5173/bye"),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 303);
    let stored = gatehouse::registry::find_client(&mut app.conn(), &client.id).expect("client");
    assert!(stored.skip_consent);
    assert_eq!(
        stored.post_logout_redirect_uris,
        strings(&["https://app.example/bye", "http://127.0.0.1:5173/bye"])
    );
    let (status, page) = console.get(&app, &path).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("name=\"skip_consent\" value=\"on\" checked"),
        "{page}"
    );
    assert!(page.contains("http://127.0.0.1:5173/bye"), "{page}");

    // A bad URI: its fault beside the field, the input kept, nothing changed.
    let resp = console
        .post(&app, &path, &form(false, "http://app.example/bye"))
        .await;
    let (status, page) = text(resp).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("id=\"post_logout_redirect_uris-error\""),
        "{page}"
    );
    assert!(page.contains("http://app.example/bye"), "{page}");
    let stored = gatehouse::registry::find_client(&mut app.conn(), &client.id).expect("client");
    assert!(stored.skip_consent, "unchanged");

    // Unchecked: consent is asked again.
    let resp = console.post(&app, &path, &form(false, "")).await;
    assert_eq!(resp.status().as_u16(), 303);
    let stored = gatehouse::registry::find_client(&mut app.conn(), &client.id).expect("client");
    assert!(!stored.skip_consent);
    assert!(stored.post_logout_redirect_uris.is_empty());
    let updated = app.audit_events_named("client_updated");
    assert_eq!(
        updated.last().and_then(|e| e.detail.as_deref()),
        Some("changed skip_consent, post_logout_redirect_uris")
    );
}

both_backends!(admin_console_delete_asks_for_confirmation);
async fn admin_console_delete_asks_for_confirmation(app: TestApp) {
    let console = console(&app).await;
    let client = app.confidential();
    app.user("alice", &[]);
    let tokens = app.confidential_tokens(&client, "alice").await;
    let caller = app.machine_client();
    let access = s(&tokens, "access_token");
    assert!(app.is_active(&caller, &access).await);

    let path = format!("/admin/clients/{}/delete", client.id);
    let (status, page) = text(console.post(&app, &path, &[]).await).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Delete this client?"), "{page}");
    assert!(page.contains("name=\"confirm\" value=\"yes\""), "{page}");
    assert!(
        gatehouse::registry::find_client(&mut app.conn(), &client.id).is_ok(),
        "not deleted before confirming"
    );

    let resp = console.post(&app, &path, &[("confirm", "yes")]).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp), "/admin/clients?done=client-deleted");
    assert!(gatehouse::registry::find_client(&mut app.conn(), &client.id).is_err());
    assert!(
        !app.is_active(&caller, &access).await,
        "its tokens are revoked"
    );
    let deleted = app.audit_events_named("client_deleted");
    assert_eq!(deleted[0].actor, console.admin_id);
}

both_backends!(
    admin_console_rotates_secret_with_grace,
    |s: &mut Settings| s.clients.cache_secs = 0
);
async fn admin_console_rotates_secret_with_grace(app: TestApp) {
    let console = console(&app).await;
    let client = app.machine_client();
    let path = format!("/admin/clients/{}/secret", client.id);
    let (status, page) = text(console.post(&app, &path, &[("grace_secs", "3600")]).await).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Rotate the client secret?"),
        "asks first: {page}"
    );
    app.token().client_credentials().basic(&client).ok().await;

    let resp = console
        .post(&app, &path, &[("grace_secs", "3600"), ("confirm", "yes")])
        .await;
    let (status, page) = text(resp).await;
    assert_eq!(status, 200, "{page}");
    let secret = between(
        &page,
        "<code class=\"secret\" id=\"client-secret\">",
        "</code>",
    );
    assert_ne!(secret, client.secret());
    assert!(page.contains("keeps working until"), "{page}");
    let new = || {
        app.token()
            .client_credentials()
            .basic_as(&client.id, &secret)
    };
    new().ok().await;
    app.token().client_credentials().basic(&client).ok().await;
    app.advance_clock(3601);
    app.token()
        .client_credentials()
        .basic(&client)
        .fails(401, "invalid_client")
        .await;
    new().ok().await;
    let rotated = app.audit_events_named("client_secret_rotated");
    assert_eq!(rotated[0].actor, console.admin_id);
}

both_backends!(admin_console_user_actions_audited_as_the_admin);
async fn admin_console_user_actions_audited_as_the_admin(app: TestApp) {
    let console = console(&app).await;
    let (spa, tokens) = app.signed_in("bob", &[]).await;
    enrol(&app, "bob");
    let bob = gatehouse::registry::find_user(&mut app.conn(), "bob")
        .expect("bob")
        .id;
    let user_path = |action: &str| format!("/admin/users/{bob}/{action}");

    let (status, page) = console.get(&app, &format!("/admin/users/{bob}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("two-step verification on"), "{page}");

    let resp = console
        .post(&app, &user_path("roles"), &[("roles", "auditor ops")])
        .await;
    assert_eq!(resp.status().as_u16(), 303);
    let resp = console.post(&app, &user_path("unlock"), &[]).await;
    assert_eq!(location(&resp), format!("/admin/users/{bob}?done=unlocked"));
    // Destructive ones ask first.
    for action in ["disable", "reset-mfa"] {
        let (status, page) = text(console.post(&app, &user_path(action), &[]).await).await;
        assert_eq!(status, 200);
        assert!(page.contains("name=\"confirm\""), "{action}: {page}");
    }
    // Nothing happened before confirming: bob's refresh token still works (and rotates).
    let tokens = ok_json(app.refresh(&spa, &s(&tokens, "refresh_token")).await).await;
    for action in ["disable", "reset-mfa"] {
        let resp = console
            .post(&app, &user_path(action), &[("confirm", "yes")])
            .await;
        assert_eq!(resp.status().as_u16(), 303, "{action}");
    }
    // Disabling ended bob's refresh tokens.
    let refused = app.refresh(&spa, &s(&tokens, "refresh_token")).await;
    assert_eq!(refused.status().as_u16(), 400);
    let resp = console.post(&app, &user_path("enable"), &[]).await;
    assert_eq!(resp.status().as_u16(), 303);

    for event in [
        "roles_changed",
        "unlocked",
        "user_disabled",
        "mfa_reset",
        "user_enabled",
    ] {
        let rows = app.audit_events_named(event);
        let row = rows
            .iter()
            .find(|e| e.user_id.as_deref() == Some(bob.as_str()))
            .unwrap_or_else(|| panic!("{event} audited"));
        assert_eq!(row.actor, console.admin_id, "{event}");
    }
    let (_, page) = console.get(&app, &format!("/admin/users/{bob}")).await;
    assert!(page.contains("two-step verification off"), "{page}");
    assert!(page.contains("value=\"auditor ops\""), "{page}");

    // The console does not let administrators shut themselves out.
    let me = console.admin_id.clone();
    let (status, page) = text(
        console
            .post(
                &app,
                &format!("/admin/users/{me}/disable"),
                &[("confirm", "yes")],
            )
            .await,
    )
    .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("your own account"), "{page}");
    let resp = console
        .post(
            &app,
            &format!("/admin/users/{me}/roles"),
            &[("roles", "ops")],
        )
        .await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(console.get(&app, "/admin").await.0, 200, "still in");

    // Deleting, after confirming.
    let resp = console
        .post(&app, &user_path("delete"), &[("confirm", "yes")])
        .await;
    assert_eq!(location(&resp), "/admin/users?done=user-deleted");
    assert!(gatehouse::registry::find_user(&mut app.conn(), "bob").is_err());
}

both_backends!(admin_console_rotates_key_and_shows_schedule);
async fn admin_console_rotates_key_and_shows_schedule(app: TestApp) {
    let console = console(&app).await;
    let (_, page) = console.get(&app, "/admin/keys").await;
    assert!(page.contains("key-signing"), "{page}");
    assert!(!page.contains("key-published"), "{page}");
    let resp = console.post(&app, "/admin/keys/rotate", &[]).await;
    assert_eq!(location(&resp), "/admin/keys?done=key-rotated");
    let (_, page) = console.get(&app, "/admin/keys?done=key-rotated").await;
    assert!(page.contains("class=\"key-published\""), "{page}");
    assert!(page.contains("pending"), "{page}");
    assert!(page.contains("A new key is published"), "{page}");
    // A second rotation while one waits is refused, readably.
    let (status, page) = text(console.post(&app, "/admin/keys/rotate", &[]).await).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("already waiting to sign"), "{page}");
    let rotated = app.audit_events_named("key_rotated");
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0].actor, console.admin_id);
}

both_backends!(admin_console_reads_audit_log_with_filters);
async fn admin_console_reads_audit_log_with_filters(app: TestApp) {
    let console = console(&app).await;
    let bob = app.user("bob", &[]);
    console
        .post(&app, &format!("/admin/users/{bob}/unlock"), &[])
        .await;
    let (status, page) = console.get(&app, "/admin/audit?event=unlocked").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<td>unlocked</td>"), "{page}");
    assert!(!page.contains("<td>sign_in</td>"), "filtered: {page}");
    assert!(page.contains(&bob));
    let (_, page) = console.get(&app, "/admin/audit").await;
    assert!(page.contains("<td>sign_in</td>"), "{page}");
    let (status, page) = console.get(&app, "/admin/audit?event=nope").await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("unknown event"), "{page}");
}

both_backends!(admin_console_routes_have_no_cors_headers);
async fn admin_console_routes_have_no_cors_headers(app: TestApp) {
    // An origin a client registered gets CORS on the documents, never on the console.
    app.spa();
    let origin = ORIGIN;
    let resp = app
        .api
        .get(app.url("/.well-known/jwks.json"))
        .header("origin", origin)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(origin),
        "the origin is registered"
    );
    let console = console(&app).await;
    for path in [
        "/admin",
        "/admin/clients",
        "/admin/keys",
        "/admin/audit",
        "/static/admin.js",
    ] {
        let resp = console
            .browser
            .get(app.url(path))
            .header("origin", origin)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(header(&resp, "access-control-allow-origin"), None, "{path}");
        assert_eq!(header(&resp, "access-control-allow-credentials"), None);
        let preflight = app
            .api
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .expect("OPTIONS");
        assert!(!preflight.status().is_success(), "{path}");
        assert_eq!(header(&preflight, "access-control-allow-origin"), None);
    }
    // The admin API's paths are not the console's: the console's session cookie is no
    // credential there (it takes bearer tokens only), so a cross-site request riding the cookie
    // gets nothing.
    let resp = console
        .browser
        .get(app.url("/admin/api/v1/clients"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 401);
    assert!(header(&resp, "access-control-allow-origin").is_none());
}

both_backends!(admin_console_works_without_javascript);
async fn admin_console_works_without_javascript(app: TestApp) {
    let console = console(&app).await;
    let client = app.confidential();
    let bob = app.user("bob", &[]);
    let pages = [
        "/admin".to_owned(),
        "/admin/clients".to_owned(),
        "/admin/clients/new".to_owned(),
        format!("/admin/clients/{}", client.id),
        "/admin/users".to_owned(),
        format!("/admin/users/{bob}"),
        "/admin/keys".to_owned(),
        "/admin/audit".to_owned(),
    ];
    for path in &pages {
        let resp = get_with(&console.browser, &app.url(path)).await;
        let csp = header(&resp, "content-security-policy").expect("CSP");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let (status, page) = text(resp).await;
        assert_eq!(status, 200, "{path}: {page}");
        // No inline script or handler: the only script is the same-origin file.
        for script in page.match_indices("<script").map(|(i, _)| &page[i..]) {
            assert!(
                script.starts_with("<script src=\"/static/admin.js\" defer></script>"),
                "{path}: {script}"
            );
        }
        assert!(!page.contains(" onclick="), "{path}");
        assert!(!page.contains("javascript:"), "{path}");
        // Every form is a plain GET or POST to a console path, POSTs with the CSRF token.
        for form in page.split("<form").skip(1) {
            let form = &form[..form.find("</form>").expect("closed form")];
            if form.contains("method=\"post\"") {
                assert!(form.contains("action=\"/admin"), "{path}: {form}");
                assert!(form.contains("name=\"csrf\""), "{path}: {form}");
            } else {
                assert!(form.contains("method=\"get\""), "{path}: {form}");
            }
        }
    }
    let resp = app.get("/static/admin.js").await;
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    // A destructive step confirmed by a plain form post, no script involved.
    let resp = console
        .post(&app, &format!("/admin/users/{bob}/disable"), &[])
        .await;
    let (_, page) = text(resp).await;
    let confirm_form = between(&page, "<form method=\"post\"", "</form>");
    assert!(confirm_form.contains(&format!("action=\"/admin/users/{bob}/disable\"")));
    let resp = console
        .post(
            &app,
            &format!("/admin/users/{bob}/disable"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(resp.status().as_u16(), 303);
}

both_backends!(admin_console_edits_a_users_profile_with_field_errors);
async fn admin_console_edits_a_users_profile_with_field_errors(app: TestApp) {
    let console = console(&app).await;
    let bob = app.user("bob", &[]);
    app.set_profile("bob", "Bob Builder", "bob@example.com", true);
    let profile_path = format!("/admin/users/{bob}/profile");

    // The list and the user's page show the profile.
    let (status, page) = console.get(&app, "/admin/users").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Bob Builder") && page.contains("bob@example.com"),
        "{page}"
    );
    let (_, page) = console.get(&app, &format!("/admin/users/{bob}")).await;
    assert!(page.contains("value=\"Bob Builder\""), "{page}");
    assert!(
        page.contains(&format!("action=\"{profile_path}\"")),
        "{page}"
    );

    // Faults beside their fields, the input kept, nothing changed.
    let resp = console
        .post(
            &app,
            &profile_path,
            &[
                ("name", "Bob <b>"),
                ("email", "bob@"),
                ("email_verified", "on"),
            ],
        )
        .await;
    let (status, page) = text(resp).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("id=\"email-error\""), "{page}");
    assert!(!page.contains("id=\"name-error\""), "{page}");
    assert!(
        page.contains("value=\"Bob &#60;b&#62;\"") || page.contains("value=\"Bob &lt;b&gt;\""),
        "kept and escaped: {page}"
    );
    assert!(page.contains("value=\"bob@\""), "{page}");
    let stored = gatehouse::registry::find_user(&mut app.conn(), "bob").expect("bob");
    assert_eq!(stored.profile.email.as_deref(), Some("bob@example.com"));

    // Saved: an empty field clears, the box unticked is unverified; audited as the admin.
    let resp = console
        .post(
            &app,
            &profile_path,
            &[("name", ""), ("email", "b@example.com")],
        )
        .await;
    assert_eq!(location(&resp), format!("/admin/users/{bob}?done=profile"));
    let stored = gatehouse::registry::find_user(&mut app.conn(), "bob").expect("bob");
    assert_eq!(stored.profile.name, None);
    assert_eq!(stored.profile.email.as_deref(), Some("b@example.com"));
    assert!(!stored.profile.email_verified);
    let rows = app.audit_events_named("profile_changed");
    assert!(
        rows.iter()
            .any(|r| r.actor == console.admin_id && r.user_id.as_deref() == Some(bob.as_str())),
        "audited as the admin: {rows:?}"
    );

    // Without the session's CSRF token, or from another site, nothing changes.
    let forged = post_with(
        &console.browser,
        &app.url(&profile_path),
        &[("csrf", "forged"), ("name", "Mallory")],
    )
    .await;
    assert_eq!(forged.status().as_u16(), 400);
    let csrf = console.csrf(&app).await;
    let cross_site = console
        .browser
        .post(app.url(&profile_path))
        .header("Origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("name", "Mallory")])
        .send()
        .await
        .expect("post");
    assert_eq!(cross_site.status().as_u16(), 403);
    let stored = gatehouse::registry::find_user(&mut app.conn(), "bob").expect("bob");
    assert_eq!(stored.profile.name, None, "nothing changed");
}
