//! TOTP second factor: enrolment (page and CLI service), the sign-in's code step, recovery codes,
//! the password grant with `otp`, clients that require a second factor, and `amr` in tokens.
//! Checklist rules 28, 52, 53 and 54. Each runs on SQLite and on PostgreSQL.

use std::net::TcpListener;

use crate::both_backends;
use gatehouse::flows::mfa as service;

use crate::helpers::*;

/// In a new browser: /authorize → password. Returns the browser and where the password step
/// answered to go.
async fn password_step(
    app: &TestApp,
    client: &TestClient,
    username: &str,
) -> (reqwest::Client, String) {
    password_step_with(app, client, username, &pkce()).await
}

/// [`password_step`] with the caller's PKCE pair, to redeem the code afterwards.
async fn password_step_with(
    app: &TestApp,
    client: &TestClient,
    username: &str,
    pkce: &Pkce,
) -> (reqwest::Client, String) {
    let browser = new_browser();
    let query = authz(&client.id, &pkce.challenge, &[]);
    let resp = get_with(&browser, &app.url(&format!("/authorize?{query}"))).await;
    assert_eq!(resp.status().as_u16(), 303);
    let login = location(&resp);
    assert!(login.starts_with("/login?"), "{login}");
    let (interaction, csrf) = app.form_fields(&browser, &login).await;
    let resp = post_with(
        &browser,
        &app.url("/login"),
        &login_form(&interaction, &csrf, username, PASSWORD),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303, "password accepted");
    (browser, location(&resp))
}

/// Submits the code page at `otp_page` with these fields; returns the answer.
async fn submit_code(
    app: &TestApp,
    browser: &reqwest::Client,
    otp_page: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (interaction, csrf) = app.form_fields(browser, otp_page).await;
    let mut form = vec![
        ("interaction", interaction.as_str()),
        ("csrf", csrf.as_str()),
    ];
    form.extend_from_slice(fields);
    post_with(browser, &app.url("/login/otp"), &form).await
}

async fn browse_with(app: &TestApp, browser: &reqwest::Client, path: &str) -> reqwest::Response {
    get_with(browser, &app.url(path)).await
}

async fn post_in(
    app: &TestApp,
    browser: &reqwest::Client,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    post_with(browser, &app.url(path), form).await
}

async fn page_text(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// A second server on the same database and master key: another instance behind the balancer.
async fn twin(app: &TestApp) -> (String, reqwest::Client) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let mut settings = app.settings.clone();
    settings.server.issuer = app.issuer.clone();
    start_server(settings, app.state.master.clone(), listener).await;
    (address, new_browser())
}

both_backends!(rule53_enrolment_on_the_account_page_activates_only_after_a_valid_code);
async fn rule53_enrolment_on_the_account_page_activates_only_after_a_valid_code(app: TestApp) {
    let spa = app.spa_and_alice();
    let (browser, consent) = password_step(&app, &spa, "alice").await;
    assert!(
        consent.starts_with("/consent?"),
        "no second factor yet: {consent}"
    );
    let (_, consent_page) = page_text(browse_with(&app, &browser, &consent).await).await;
    assert!(
        consent_page.contains("/account/mfa?interaction="),
        "link after login"
    );
    let interaction = query_of(&app.url(&consent))["interaction"].clone();
    let account = format!("/account/mfa?interaction={interaction}");

    let resp = browse_with(&app, &browser, &account).await;
    assert_eq!(
        header(resp.headers(), "cache-control").as_deref(),
        Some("no-store")
    );
    let (status, page) = page_text(resp).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("src=\"data:image/svg+xml;base64,"),
        "inline QR code"
    );
    let secret_text = shown_secret(&page);
    assert_eq!(secret_text.len(), 32, "160-bit secret in base32");
    let secret = secret_of(&secret_text);
    // Reloading shows the same pending secret.
    let (_, again) = page_text(browse_with(&app, &browser, &account).await).await;
    assert!(again.contains(&secret_text));

    let csrf = hidden(&page, "csrf");
    let enable = |code: String| {
        let form = [
            ("csrf", csrf.clone()),
            ("interaction", interaction.clone()),
            ("action", "enable".to_owned()),
            ("code", code),
        ];
        let browser = browser.clone();
        let url = app.url("/account/mfa");
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_with(&browser, &url, &form).await
        }
    };
    let (status, page) = page_text(enable(code(&app, &secret, 3)).await).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("not valid"),
        "a wrong code does not activate: {page}"
    );
    let (_, page) = page_text(enable("12ab56".into()).await).await;
    assert!(page.contains("6-digit"), "malformed: {page}");
    // Not active yet: signing in again needs no code.
    let (_, next) = password_step(&app, &spa, "alice").await;
    assert!(next.starts_with("/consent"), "still password only: {next}");

    let resp = enable(code(&app, &secret, 0)).await;
    assert_eq!(
        header(resp.headers(), "cache-control").as_deref(),
        Some("no-store")
    );
    let (status, page) = page_text(resp).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page.matches("<li><code>").count(),
        10,
        "ten recovery codes: {page}"
    );
    assert!(
        page.contains("/consent?interaction="),
        "continue to consent"
    );
    assert_eq!(app.audit_events_named("mfa_enrolled").len(), 1);

    // Enrolling twice: the page shows the active factor, no new secret.
    let (_, page) = page_text(browse_with(&app, &browser, &account).await).await;
    assert!(page.contains("is <strong>on</strong>"), "{page}");
    assert!(!page.contains("data:image/svg+xml"));
    let (_, page) = page_text(enable(code(&app, &secret, 1)).await).await;
    assert!(page.contains("already on"), "{page}");

    // From now on the password alone does not sign in.
    let (_, next) = password_step(&app, &spa, "alice").await;
    assert!(next.starts_with("/login/otp?"), "{next}");
}

fn shown_secret(page: &str) -> String {
    page.split("<code class=\"secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("secret shown as text")
        .to_owned()
}

both_backends!(rule54_half_signed_in_session_reaches_neither_consent_nor_token);
async fn rule54_half_signed_in_session_reaches_neither_consent_nor_token(app: TestApp) {
    let spa = app.spa_and_alice();
    let (secret, _) = enrol(&app, "alice");
    let (browser, otp_page) = password_step(&app, &spa, "alice").await;
    assert!(otp_page.starts_with("/login/otp?"), "{otp_page}");
    let interaction = query_of(&app.url(&otp_page))["interaction"].clone();
    let consent = format!("/consent?interaction={interaction}");

    // Consent is out of reach: the page sends back to the password, the form is refused.
    let resp = browse_with(&app, &browser, &consent).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert!(location(&resp).starts_with("/login?"));
    let (_, csrf) = app.form_fields(&browser, &otp_page).await;
    let resp = post_in(
        &app,
        &browser,
        "/consent",
        &[
            ("interaction", interaction.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", "approve"),
        ],
    )
    .await;
    let (status, page) = page_text(resp).await;
    assert_eq!(status, 400, "{page}");
    assert_eq!(app.rows("auth_codes"), 0, "no code issued");
    assert_eq!(app.rows("grants"), 0);

    // The half-signed-in state runs out after mfa.pending_ttl_secs.
    app.advance_clock(app.settings.mfa.pending_ttl_secs + 1);
    let resp = browse_with(&app, &browser, &otp_page).await;
    let status = resp.status().as_u16();
    assert!(
        status == 303 || status == 400,
        "expired code page: {status}"
    );
    let resp = post_in(
        &app,
        &browser,
        "/login/otp",
        &[
            ("interaction", interaction.as_str()),
            ("csrf", csrf.as_str()),
            ("code", &code(&app, &secret, 0)),
        ],
    )
    .await;
    let (status, page) = page_text(resp).await;
    assert_eq!(status, 400, "{page}");
    assert_eq!(app.rows("auth_codes"), 0);
}

both_backends!(rule52_a_code_is_accepted_once_on_every_instance);
async fn rule52_a_code_is_accepted_once_on_every_instance(app: TestApp) {
    let spa = app.spa_and_alice();
    let (secret, _) = enrol(&app, "alice");
    let (browser, otp_page) = password_step(&app, &spa, "alice").await;
    let good = code(&app, &secret, 0);
    let resp = submit_code(&app, &browser, &otp_page, &[("code", &good)]).await;
    assert_eq!(resp.status().as_u16(), 303);
    let consent = location(&resp);
    assert!(consent.starts_with("/consent?"), "{consent}");
    assert_eq!(app.audit_events_named("mfa_used").len(), 1);

    // The same code again, in another browser on another instance: refused.
    let (twin_address, browser) = twin(&app).await;
    let on_twin = |path: &str| format!("{twin_address}{path}");
    let pkce2 = pkce();
    let resp = get_with(
        &browser,
        &on_twin(&format!(
            "/authorize?{}",
            authz(&spa.id, &pkce2.challenge, &[])
        )),
    )
    .await;
    let page = get_with(&browser, &on_twin(&location(&resp)))
        .await
        .text()
        .await
        .expect("page");
    let form = login_form(
        &hidden(&page, "interaction"),
        &hidden(&page, "csrf"),
        "alice",
        PASSWORD,
    )
    .map(|(k, v)| (k, v.to_owned()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = post_with(&browser, &on_twin("/login"), &form).await;
    let otp2 = location(&resp);
    assert!(otp2.starts_with("/login/otp?"), "{otp2}");
    let page = get_with(&browser, &on_twin(&otp2))
        .await
        .text()
        .await
        .expect("page");
    let form = [
        ("interaction", hidden(&page, "interaction")),
        ("csrf", hidden(&page, "csrf")),
        ("code", good.clone()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = post_with(&browser, &on_twin("/login/otp"), &form).await;
    let (status, page) = page_text(resp).await;
    assert_eq!(status, 200);
    assert!(page.contains("not valid"), "replayed code refused: {page}");
    let failed = app.audit_events_named("mfa_failed");
    assert!(
        failed
            .iter()
            .any(|e| e.detail.as_deref().is_some_and(|d| d.contains("replayed"))),
        "{failed:?}"
    );
}

both_backends!(rule53_codes_one_step_either_side_are_accepted_and_no_further);
async fn rule53_codes_one_step_either_side_are_accepted_and_no_further(app: TestApp) {
    let spa = app.spa_and_alice();
    let (secret, _) = enrol(&app, "alice");
    for (steps, accepted) in [(-2, false), (2, false), (-1, true), (1, true)] {
        app.advance_clock(120);
        let (browser, otp_page) = password_step(&app, &spa, "alice").await;
        to_start_of_step(&app);
        let typed = code(&app, &secret, steps);
        let resp = submit_code(&app, &browser, &otp_page, &[("code", &typed)]).await;
        if accepted {
            assert_eq!(
                resp.status().as_u16(),
                303,
                "{steps} step(s) off is accepted"
            );
        } else {
            let (status, page) = page_text(resp).await;
            assert_eq!(status, 200, "{steps}");
            assert!(page.contains("not valid"), "{steps} steps off is refused");
        }
    }
}

both_backends!(recovery_codes_work_once_instead_of_a_code);
async fn recovery_codes_work_once_instead_of_a_code(app: TestApp) {
    let spa = app.spa_and_alice();
    let (_, codes) = enrol(&app, "alice");
    assert_eq!(codes.len(), 10);
    let (browser, otp_page) = password_step(&app, &spa, "alice").await;
    let typed = codes[0].to_uppercase().replace('-', " ");
    let resp = submit_code(&app, &browser, &otp_page, &[("recovery_code", &typed)]).await;
    assert_eq!(resp.status().as_u16(), 303, "a recovery code signs in");
    assert!(location(&resp).starts_with("/consent?"));

    let (browser, otp_page) = password_step(&app, &spa, "alice").await;
    let (status, page) =
        page_text(submit_code(&app, &browser, &otp_page, &[("recovery_code", &codes[0])]).await)
            .await;
    assert_eq!(status, 200);
    assert!(page.contains("not valid"), "used twice: {page}");
    let resp = submit_code(&app, &browser, &otp_page, &[("recovery_code", &codes[1])]).await;
    assert_eq!(resp.status().as_u16(), 303, "another code works");
}

both_backends!(access_tokens_carry_amr_of_the_sign_in);
async fn access_tokens_carry_amr_of_the_sign_in(app: TestApp) {
    let spa = app.spa();
    app.user("bob", &[]);
    let tokens = app.tokens_for(&spa, "bob").await;
    assert_eq!(claims_of(&tokens)["amr"], serde_json::json!(["pwd"]));

    app.user("alice", &[]);
    let (secret, _) = enrol(&app, "alice");
    let pkce = pkce();
    let (browser, after_password) = password_step_with(&app, &spa, "alice", &pkce).await;
    let resp = submit_code(
        &app,
        &browser,
        &after_password,
        &[("code", &code(&app, &secret, 0))],
    )
    .await;
    let consent = location(&resp);
    let tokens = approve_and_redeem(&app, &browser, &consent, &spa, &pkce).await;
    assert_eq!(
        claims_of(&tokens)["amr"],
        serde_json::json!(["pwd", "otp", "mfa"])
    );
    let refreshed = app
        .token()
        .refresh(&s(&tokens, "refresh_token"))
        .client(&spa)
        .ok()
        .await;
    assert_eq!(
        claims_of(&refreshed)["amr"],
        serde_json::json!(["pwd", "otp", "mfa"]),
        "kept on refresh"
    );
}

/// Approves on the consent page at `consent` in `browser` and redeems the code for `client`.
async fn approve_and_redeem(
    app: &TestApp,
    browser: &reqwest::Client,
    consent: &str,
    client: &TestClient,
    pkce: &Pkce,
) -> serde_json::Value {
    let (i, c) = app.form_fields(browser, consent).await;
    let resp = post_with(
        browser,
        &app.url("/consent"),
        &[
            ("interaction", i.as_str()),
            ("csrf", c.as_str()),
            ("decision", "approve"),
        ],
    )
    .await;
    let code = query_of(&location(&resp))["code"].clone();
    app.token()
        .code(&code, &pkce.verifier)
        .client(client)
        .ok()
        .await
}

/// Posts one of the account page's actions with a code.
async fn account_action(
    app: &TestApp,
    browser: &reqwest::Client,
    csrf: &str,
    action: &str,
    code: &str,
) -> reqwest::Response {
    post_in(
        app,
        browser,
        "/account/mfa",
        &[("csrf", csrf), ("action", action), ("code", code)],
    )
    .await
}

fn mfa_spa() -> NewClient {
    NewClient {
        require_mfa: true,
        ..spa_registration()
    }
}

both_backends!(a_client_that_requires_mfa_takes_the_user_through_enrolment_before_consent);
async fn a_client_that_requires_mfa_takes_the_user_through_enrolment_before_consent(app: TestApp) {
    let spa = app.register(mfa_spa());
    app.user("carol", &[]);
    let pkce = pkce();
    let (browser, enrol_page) = password_step_with(&app, &spa, "carol", &pkce).await;
    assert!(
        enrol_page.starts_with("/account/mfa?interaction="),
        "{enrol_page}"
    );
    let interaction = query_of(&app.url(&enrol_page))["interaction"].clone();
    let consent = format!("/consent?interaction={interaction}");
    // Half signed in: no consent yet.
    let resp = browse_with(&app, &browser, &consent).await;
    assert!(location(&resp).starts_with("/login?"));

    let (status, page) = page_text(browse_with(&app, &browser, &enrol_page).await).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("requires a second factor"));
    let secret = secret_of(&shown_secret(&page));
    let csrf = hidden(&page, "csrf");
    let resp = post_in(
        &app,
        &browser,
        "/account/mfa",
        &[
            ("csrf", csrf.as_str()),
            ("interaction", interaction.as_str()),
            ("action", "enable"),
            ("code", code(&app, &secret, 0).as_str()),
        ],
    )
    .await;
    assert!(
        set_cookie(&resp).is_some(),
        "the sign-in finishes with a new session"
    );
    assert!(
        device_cookie_of(&resp).is_some(),
        "and the browser becomes a known device"
    );
    let (status, page) = page_text(resp).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.matches("<li><code>").count(), 10);
    let tokens = approve_and_redeem(&app, &browser, &consent, &spa, &pkce).await;
    assert_eq!(
        claims_of(&tokens)["amr"],
        serde_json::json!(["pwd", "otp", "mfa"])
    );
}

both_backends!(
    mfa_required_for_all_clients_by_setting,
    |s: &mut Settings| {
        s.mfa.required_for_all_clients = true;
    }
);
async fn mfa_required_for_all_clients_by_setting(app: TestApp) {
    let spa = app.spa_and_alice();
    let (_, next) = password_step(&app, &spa, "alice").await;
    assert!(next.starts_with("/account/mfa?interaction="), "{next}");
}

both_backends!(a_password_only_session_signs_in_again_for_a_client_that_requires_mfa);
async fn a_password_only_session_signs_in_again_for_a_client_that_requires_mfa(app: TestApp) {
    let plain = app.spa();
    let strict = app.register(mfa_spa());
    app.user("dave", &[]);
    // Signed in with the password alone for the first client, in the shared test browser.
    let _ = app.tokens_for(&plain, "dave").await;
    let pkce = pkce();
    let resp = app
        .get_authorize(&authz(&strict.id, &pkce.challenge, &[]))
        .await;
    let mut next = location(&resp);
    if next.starts_with("/consent") {
        next = location(&app.browse(&next).await);
    }
    assert!(
        next.starts_with("/login?"),
        "step up through the password page: {next}"
    );
    let resp = app.login(&next, "dave", PASSWORD).await;
    assert!(
        location(&resp).starts_with("/account/mfa?"),
        "then enrolment"
    );
}

// More wrong codes than the lockout allows by default: the lockout has its own test.
both_backends!(
    rule28_password_grant_needs_the_second_factor,
    |s: &mut Settings| s.lockout.max_failures = 20
);
async fn rule28_password_grant_needs_the_second_factor(app: TestApp) {
    let client = app.password_client();
    app.user("alice", &[]);
    let (secret, codes) = enrol(&app, "alice");

    let body = app
        .token()
        .password("alice", PASSWORD)
        .basic(&client)
        .fails(400, "invalid_grant")
        .await;
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(s(&body, "error_description").contains("second factor"));
    // A wrong password says nothing about a second factor.
    let body = app
        .token()
        .password("alice", "wrong password!")
        .basic(&client)
        .fails(400, "invalid_grant")
        .await;
    assert!(body.get("mfa_required").is_none());

    for bad in ["000000", "12345", "abcdef", " 1 2 3", "1234567"] {
        let body = app
            .token()
            .password("alice", PASSWORD)
            .param("otp", bad)
            .basic(&client)
            .fails(400, "invalid_grant")
            .await;
        assert!(body.get("mfa_required").is_none(), "{bad}: {body}");
    }
    let good = code(&app, &secret, 0);
    let tokens = app
        .token()
        .password("alice", PASSWORD)
        .param("otp", &good)
        .basic(&client)
        .ok()
        .await;
    assert_eq!(
        claims_of(&tokens)["amr"],
        serde_json::json!(["pwd", "otp", "mfa"])
    );
    app.token()
        .password("alice", PASSWORD)
        .param("otp", &good)
        .basic(&client)
        .fails(400, "invalid_grant")
        .await;

    let tokens = app
        .token()
        .password("alice", PASSWORD)
        .param("recovery_code", &codes[2])
        .basic(&client)
        .ok()
        .await;
    assert_eq!(claims_of(&tokens)["amr"], serde_json::json!(["pwd", "mfa"]));
    app.token()
        .password("alice", PASSWORD)
        .param("recovery_code", &codes[2])
        .basic(&client)
        .fails(400, "invalid_grant")
        .await;
    assert!(!app.audit_events_named("mfa_failed").is_empty());
    assert!(!app.audit_events_named("mfa_used").is_empty());
}

both_backends!(rule28_password_grant_refuses_a_user_without_totp_for_a_client_that_requires_it);
async fn rule28_password_grant_refuses_a_user_without_totp_for_a_client_that_requires_it(
    app: TestApp,
) {
    let client = app.register(NewClient {
        require_mfa: true,
        ..first_party_registration(&["password", "refresh_token"])
    });
    app.user("erin", &[]);
    let body = app
        .token()
        .password("erin", PASSWORD)
        .basic(&client)
        .fails(400, "invalid_grant")
        .await;
    assert_eq!(body["mfa_required"], true, "{body}");
}

both_backends!(rule52_parallel_password_grants_with_one_code_give_one_token);
async fn rule52_parallel_password_grants_with_one_code_give_one_token(app: TestApp) {
    let client = app.password_client();
    app.user("alice", &[]);
    let (secret, _) = enrol(&app, "alice");
    let good = code(&app, &secret, 0);
    let results = app
        .token()
        .password("alice", PASSWORD)
        .param("otp", &good)
        .basic(&client)
        .race(8)
        .await;
    let ok = results.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(results
        .iter()
        .all(|(status, body)| *status == 200 || body["error"] == "invalid_grant"));
}

both_backends!(a_user_turns_totp_off_with_a_current_code_and_regenerates_recovery_codes);
async fn a_user_turns_totp_off_with_a_current_code_and_regenerates_recovery_codes(app: TestApp) {
    let spa = app.spa_and_alice();
    let (secret, old_codes) = enrol(&app, "alice");
    let (browser, otp_page) = password_step(&app, &spa, "alice").await;
    let resp = submit_code(
        &app,
        &browser,
        &otp_page,
        &[("code", &code(&app, &secret, 0))],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303);
    let (_, page) = page_text(browse_with(&app, &browser, "/account/mfa").await).await;
    let csrf = hidden(&page, "csrf");
    app.advance_clock(30);
    let resp = account_action(&app, &browser, &csrf, "regenerate", &code(&app, &secret, 0)).await;
    let (status, page) = page_text(resp).await;
    assert_eq!(status, 200);
    assert_eq!(page.matches("<li><code>").count(), 10);
    assert!(!page.contains(&old_codes[0]));
    assert_eq!(
        app.audit_events_named("recovery_codes_regenerated").len(),
        1
    );
    // The old codes are void.
    let client = app.password_client();
    app.token()
        .password("alice", PASSWORD)
        .param("recovery_code", &old_codes[0])
        .basic(&client)
        .fails(400, "invalid_grant")
        .await;

    // Turning off needs a current code; a wrong one changes nothing.
    let failed_before = app.audit_events_named("mfa_failed").len();
    let resp = account_action(&app, &browser, &csrf, "disable", "000000").await;
    let (_, page) = page_text(resp).await;
    assert!(page.contains("not valid"), "{page}");
    assert_eq!(
        app.audit_events_named("mfa_failed").len(),
        failed_before + 1,
        "refusal on record"
    );
    app.advance_clock(30);
    let resp = account_action(&app, &browser, &csrf, "disable", &code(&app, &secret, 0)).await;
    let (status, page) = page_text(resp).await;
    assert_eq!(status, 200);
    assert!(page.contains("is off"), "{page}");
    assert_eq!(app.audit_events_named("mfa_disabled").len(), 1);
    app.token()
        .password("alice", PASSWORD)
        .basic(&client)
        .ok()
        .await;
}

// More wrong codes than the lockout allows by default: the lockout has its own test.
both_backends!(
    bad_input_on_the_code_step_gets_clear_answers,
    |s: &mut Settings| s.lockout.max_failures = 20
);
async fn bad_input_on_the_code_step_gets_clear_answers(app: TestApp) {
    let spa = app.spa_and_alice();
    // A code POST without any sign-in: a clear 400, never a 500.
    let resp = app
        .browser_post(
            "/login/otp",
            &[("interaction", "nope"), ("csrf", "x"), ("code", "123456")],
        )
        .await;
    assert_eq!(resp.status().as_u16(), 400);
    let (secret, _) = enrol(&app, "alice");
    let (browser, otp_page) = password_step(&app, &spa, "alice").await;
    for bad in ["", "12345", "12a456", "1234567", "\t123456", "１２３４５６"] {
        let (status, page) =
            page_text(submit_code(&app, &browser, &otp_page, &[("code", bad)]).await).await;
        assert_eq!(status, 200, "{bad:?}");
        assert!(page.contains("6-digit"), "{bad:?}: {page}");
    }
    // A forged CSRF token.
    let (interaction, _) = app.form_fields(&browser, &otp_page).await;
    let resp = post_in(
        &app,
        &browser,
        "/login/otp",
        &[
            ("interaction", interaction.as_str()),
            ("csrf", "forged"),
            ("code", &code(&app, &secret, 0)),
        ],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 400);
    // The account page without a session.
    let resp = app
        .api
        .get(app.url("/account/mfa"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 401);
    // Still works after all that.
    let resp = submit_code(
        &app,
        &browser,
        &otp_page,
        &[("code", &code(&app, &secret, 0))],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303);
}

both_backends!(rule53_totp_secret_and_recovery_codes_are_never_stored_in_clear);
async fn rule53_totp_secret_and_recovery_codes_are_never_stored_in_clear(app: TestApp) {
    app.user("alice", &[]);
    let user = user_id(&app, "alice");
    let enrolled = service::enrol_now(
        &mut app.conn(),
        &app.state.master,
        "Gatehouse",
        &user,
        "alice",
        app.now(),
    )
    .expect("enrol")
    .expect("new");
    let secret = enrolled.enrolment.secret.clone();
    let codes: Vec<String> = enrolled
        .recovery_codes
        .iter()
        .map(|c| c.display())
        .collect();
    let compact: Vec<String> = codes.iter().map(|c| c.replace('-', "")).collect();
    for (place, text) in app.every_stored_text() {
        assert!(!text.contains(&secret), "TOTP secret in clear in {place}");
        for c in codes.iter().chain(&compact) {
            assert!(
                !text.contains(c.as_str()),
                "recovery code in clear in {place}"
            );
        }
    }
    assert!(enrolled
        .enrolment
        .otpauth_url
        .starts_with("otpauth://totp/Gatehouse:alice?"));
    // Enrolling twice is refused; the reset removes it.
    assert!(service::enrol_now(
        &mut app.conn(),
        &app.state.master,
        "Gatehouse",
        &user,
        "alice",
        app.now()
    )
    .expect("enrol")
    .is_none());
    assert!(service::reset(
        &mut app.conn(),
        &user,
        gatehouse::audit::Actor::Operator,
        app.now()
    )
    .expect("reset"));
    assert_eq!(app.audit_events_named("mfa_reset").len(), 1);
    assert!(!service::reset(
        &mut app.conn(),
        &user,
        gatehouse::audit::Actor::Operator,
        app.now()
    )
    .expect("reset"));
}

/// The device cookie a response sets, if any.
fn device_cookie_of(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gatehouse_device="))
        .map(|v| cookie_pair(v).1)
}

/// A browser holding only this device cookie: the user's own browser another day.
fn browser_with_device(app: &TestApp, value: &str) -> reqwest::Client {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let url = url::Url::parse(&app.address).expect("address");
    jar.add_cookie_str(&format!("gatehouse_device={value}; Path=/"), &url);
    reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("browser")
}

/// /authorize → password in `browser`; returns the code page's location.
async fn to_code_page(app: &TestApp, browser: &reqwest::Client, client: &TestClient) -> String {
    let pkce = pkce();
    let resp = get_with(
        browser,
        &app.url(&format!(
            "/authorize?{}",
            authz(&client.id, &pkce.challenge, &[])
        )),
    )
    .await;
    let (i, c) = app.form_fields(browser, &location(&resp)).await;
    let resp = post_with(
        browser,
        &app.url("/login"),
        &login_form(&i, &c, "alice", PASSWORD),
    )
    .await;
    assert!(
        device_cookie_of(&resp).is_none(),
        "no device cookie before the second factor"
    );
    let next = location(&resp);
    assert!(next.starts_with("/login/otp?"), "{next}");
    next
}

both_backends!(rule59_second_factor_failures_lock_unknown_devices_and_spare_a_known_one);
async fn rule59_second_factor_failures_lock_unknown_devices_and_spare_a_known_one(app: TestApp) {
    let spa = app.spa_and_alice();
    let (secret, codes) = enrol(&app, "alice");
    // Alice signs in fully once: her browser becomes a known device.
    let own = new_browser();
    let page = to_code_page(&app, &own, &spa).await;
    let resp = submit_code(&app, &own, &page, &[("code", &code(&app, &secret, 0))]).await;
    assert_eq!(resp.status().as_u16(), 303);
    let device = device_cookie_of(&resp).expect("device cookie after the full sign-in");

    // Someone with her password guesses codes from another browser: after max_failures wrong
    // codes even the right one (or a recovery code) is refused there, like a wrong code.
    let max = app.settings.lockout.max_failures;
    let thief = new_browser();
    let page = to_code_page(&app, &thief, &spa).await;
    for _ in 0..max {
        let (status, body) =
            page_text(submit_code(&app, &thief, &page, &[("code", "000000")]).await).await;
        assert_eq!(status, 200);
        assert!(body.contains("not valid"));
    }
    app.advance_clock(30);
    let (status, body) =
        page_text(submit_code(&app, &thief, &page, &[("code", &code(&app, &secret, 0))]).await)
            .await;
    assert_eq!(status, 200, "locked: {body}");
    assert!(body.contains("not valid"), "same answer as a wrong code");
    let (_, body) =
        page_text(submit_code(&app, &thief, &page, &[("recovery_code", &codes[0])]).await).await;
    assert!(body.contains("not valid"));
    let locked = app.audit_events_named("locked_out");
    assert_eq!(locked.len(), 1, "{locked:?}");
    // The password count is separate: the thief's password still passes (the lock is on codes).
    let _ = to_code_page(&app, &new_browser(), &spa).await;

    // Alice's own device keeps its own count and signs in.
    let known = browser_with_device(&app, &device);
    let page = to_code_page(&app, &known, &spa).await;
    app.advance_clock(30);
    let resp = submit_code(&app, &known, &page, &[("code", &code(&app, &secret, 0))]).await;
    assert_eq!(
        resp.status().as_u16(),
        303,
        "the known device still signs in"
    );
    assert!(location(&resp).starts_with("/consent?"));
}
