//! The audit log (issue 8, point 7): security events written by the services, with the client
//! address only anonymised, purged after `audit.retention_days`.

use gatehouse::store::audit::AuditRow;

use crate::both_backends;
use crate::helpers::*;

/// The one event named `event`, or a failure listing what there is.
fn only<'a>(events: &'a [AuditRow], event: &str, outcome: &str) -> &'a AuditRow {
    let found: Vec<&AuditRow> = events
        .iter()
        .filter(|e| e.event == event && e.outcome == outcome)
        .collect();
    assert_eq!(found.len(), 1, "{event} {outcome}: {events:#?}");
    found[0]
}

/// The test client connects from 127.0.0.1: its events carry the /24 and a keyed hash only.
fn assert_anonymised(e: &AuditRow) {
    assert_eq!(e.network.as_deref(), Some("127.0.0.0/24"), "{e:?}");
    let hash = e.address_hash.as_deref().expect("address hash");
    assert_eq!(hash.len(), 43, "{e:?}");
    assert!(!hash.contains("127.0.0.1"), "{e:?}");
}

both_backends!(audit_events_written_for_sign_in_and_tokens);
async fn audit_events_written_for_sign_in_and_tokens(app: TestApp) {
    let alice = app.user("alice", &[]);
    let spa = app.spa();

    // A wrong password, then the right one.
    let pkce = pkce();
    let resp = app
        .get_authorize(&authz(&spa.id, &pkce.challenge, &[]))
        .await;
    let login = location(&resp);
    let wrong = app.login(&login, "alice", "not her password").await;
    assert_eq!(wrong.status().as_u16(), 200);
    let code = app.sign_in_and_approve(&login, "alice").await;
    let tokens = app
        .token()
        .code(&code, &pkce.verifier)
        .client(&spa)
        .ok()
        .await;

    let events = app.audit_events();
    let failed = only(&events, "sign_in", "failure");
    assert_eq!(failed.user_id.as_deref(), Some(alice.as_str()));
    assert_eq!(failed.client_id.as_deref(), Some(spa.id.as_str()));
    assert_anonymised(failed);
    let signed_in = only(&events, "sign_in", "success");
    assert_eq!(signed_in.user_id.as_deref(), Some(alice.as_str()));
    assert_eq!(signed_in.actor, alice);
    assert_anonymised(signed_in);
    // A code exchange keeps to its three statements: its issue goes to the audit log line only.
    assert!(
        events.iter().all(|e| e.event != "token_issued"),
        "{events:?}"
    );
    // The registry's changes are the operator's.
    let created = only(&events, "client_created", "success");
    assert_eq!(
        (created.actor.as_str(), created.client_id.as_deref()),
        ("cli", Some(spa.id.as_str()))
    );
    assert_eq!(
        only(&events, "user_created", "success").user_id.as_deref(),
        Some(alice.as_str())
    );

    // The code again: a replay, written with the grant it revoked.
    app.token()
        .code(&code, &pkce.verifier)
        .client(&spa)
        .fails(400, "invalid_grant")
        .await;
    let replay = app.audit_events_named("code_replay_detected");
    assert_eq!(replay.len(), 1, "{replay:?}");
    assert!(replay[0]
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("revoked")));

    // No event carries the code, a token, or the password.
    let rt = s(&tokens, "refresh_token");
    for e in app.audit_events() {
        let text = format!("{e:?}");
        for secret in [
            code.as_str(),
            rt.as_str(),
            &s(&tokens, "access_token"),
            PASSWORD,
        ] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    // The password grant: a failure is a failed sign-in, a success an issued token.
    let first_party = app.password_client();
    app.token()
        .password("alice", "not her password")
        .basic(&first_party)
        .fails(400, "invalid_grant")
        .await;
    app.token()
        .password("alice", PASSWORD)
        .basic(&first_party)
        .ok()
        .await;
    let sign_ins = app.audit_events_named("sign_in");
    let grant_failure = sign_ins
        .iter()
        .find(|e| e.detail.as_deref() == Some("password grant"))
        .expect("password grant failure");
    assert_eq!(grant_failure.outcome, "failure");
    assert_eq!(grant_failure.user_id.as_deref(), Some(alice.as_str()));
    assert!(app.audit_events_named("token_issued").iter().any(|e| e
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("grant_type=password"))));

    // client_credentials writes nothing per request (its event goes to the JSON log only).
    let machine = app.machine_client();
    let before = app.audit_events().len();
    app.token().client_credentials().basic(&machine).ok().await;
    app.token().client_credentials().basic(&machine).ok().await;
    assert_eq!(app.audit_events().len(), before);

    // Signing out is written too.
    let page = app.browse("/logout").await.text().await.unwrap();
    let resp = app
        .browser_post("/logout", &[("csrf", &hidden(&page, "csrf"))])
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let out = app.audit_events_named("sign_out");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].user_id.as_deref(), Some(alice.as_str()));
    assert_anonymised(&out[0]);
}

both_backends!(audit_refresh_reuse_revokes_family_and_is_written);
async fn audit_refresh_reuse_revokes_family_and_is_written(app: TestApp) {
    let spa = app.spa_and_alice();
    let pkce = pkce();
    let code = app.code_as(&spa, "alice", &pkce, &[]).await;
    let first = app
        .token()
        .code(&code, &pkce.verifier)
        .client(&spa)
        .ok()
        .await;
    let rt = s(&first, "refresh_token");
    let second = app.token().refresh(&rt).client(&spa).ok().await;
    // A refresh keeps to its three statements: its event goes to the audit log line only.
    let refreshed = app.audit_events_named("token_refreshed");
    assert!(refreshed.is_empty(), "{refreshed:?}");

    // The rotated token again: reuse. The family is revoked and the event written with it.
    app.token()
        .refresh(&rt)
        .client(&spa)
        .fails(400, "invalid_grant")
        .await;
    app.token()
        .refresh(&s(&second, "refresh_token"))
        .client(&spa)
        .fails(400, "invalid_grant")
        .await;
    let reuse = app.audit_events_named("refresh_reuse_detected");
    assert!(!reuse.is_empty(), "no reuse event");
    assert_eq!(reuse[0].outcome, "failure");
    assert_eq!(reuse[0].client_id.as_deref(), Some(spa.id.as_str()));
    assert!(
        reuse[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("revoked")),
        "{reuse:?}"
    );
    assert!(!reuse[0].detail.as_deref().unwrap_or("").contains(&rt));
    assert_anonymised(&reuse[0]);
}

both_backends!(audit_revocation_is_written);
async fn audit_revocation_is_written(app: TestApp) {
    let spa = app.spa_and_alice();
    let alice = app.audit_events_named("user_created")[0].user_id.clone();
    let tokens = app.tokens_for(&spa, "alice").await;
    let resp = app
        .revocation(&s(&tokens, "refresh_token"))
        .client(&spa)
        .send()
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let revoked = app.audit_events_named("token_revoked");
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0].user_id, alice);
    assert_eq!(revoked[0].client_id.as_deref(), Some(spa.id.as_str()));
    assert_anonymised(&revoked[0]);

    // An unknown token changes nothing and writes nothing.
    let resp = app.revocation("not-a-token").client(&spa).send().await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(app.audit_events_named("token_revoked").len(), 1);

    // Deleting the client is written, and its earlier events stay.
    app.delete_client(&spa);
    assert_eq!(app.audit_events_named("client_deleted").len(), 1);
    assert_eq!(app.audit_events_named("token_revoked").len(), 1);
}

both_backends!(audit_never_stores_a_raw_address);
async fn audit_never_stores_a_raw_address(app: TestApp) {
    // A client whose registration holds no 127.0.0.1 of its own, so that any occurrence in the
    // database would be the client's address.
    const LOCAL: &str = "http://localhost:5173/callback";
    app.user("alice", &[]);
    let spa = app.register(NewClient {
        redirect_uris: vec![LOCAL.into()],
        allowed_origins: Vec::new(),
        ..spa_registration()
    });
    let pkce = pkce();
    let resp = app
        .get_authorize(&authz(
            &spa.id,
            &pkce.challenge,
            &[("redirect_uri", Some(LOCAL))],
        ))
        .await;
    let login = location(&resp);
    app.login(&login, "alice", "wrong password").await;
    let code = app.sign_in_and_approve(&login, "alice").await;
    let tokens = app
        .token()
        .code(&code, &pkce.verifier)
        .set("redirect_uri", LOCAL)
        .client(&spa)
        .ok()
        .await;
    let rt = s(&tokens, "refresh_token");
    app.token().refresh(&rt).client(&spa).ok().await;
    app.token()
        .refresh(&rt)
        .client(&spa)
        .fails(400, "invalid_grant")
        .await;
    app.revocation(&rt).client(&spa).send().await;
    let first_party = app.password_client();
    app.token()
        .password("alice", "wrong")
        .basic(&first_party)
        .fails(400, "invalid_grant")
        .await;

    let events = app.audit_events();
    let with_address = events.iter().filter(|e| e.network.is_some()).count();
    assert!(with_address >= 5, "{events:#?}");
    for e in &events {
        if e.network.is_some() {
            assert_anonymised(e);
        }
    }
    let rows = app.every_stored_text();
    // The scan reads every text column: the client's redirect URI and the events' networks.
    assert!(rows
        .iter()
        .any(|(t, r)| t == "clients" && r.contains("localhost:5173")));
    assert!(rows
        .iter()
        .any(|(t, r)| t == "audit_events" && r.contains("127.0.0.0/24")));
    for (table, row) in rows {
        assert!(!row.contains("127.0.0.1"), "{table}: {row}");
    }
}

both_backends!(audit_events_purged_after_retention);
async fn audit_events_purged_after_retention(app: TestApp) {
    assert_eq!(
        app.settings.audit.retention_days, 30,
        "the documented default"
    );
    app.user("alice", &[]);
    // A backlog larger than one purge statement's batch.
    app.seed_audit_events(1_100, app.now());
    app.advance_clock(31 * 86_400);
    app.user("bob", &[]);
    app.advance_clock(86_400);
    app.user("carol", &[]);

    let deleted = app.purge_audit();
    assert_eq!(deleted, 1_101, "the seeded events and alice's creation");
    let left = app.audit_events();
    let names: Vec<&str> = left.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["user_created", "user_created"], "{left:#?}");
    assert!(left.iter().all(|e| e.at >= app.now() - 30 * 86_400));

    // Nothing more is due: the next round deletes nothing.
    assert_eq!(app.purge_audit(), 0);
    // Bob's event goes once it is 30 days old, carol's a day later.
    app.advance_clock(29 * 86_400 + 1);
    assert_eq!(app.purge_audit(), 1);
    assert_eq!(app.audit_events().len(), 1);
}

both_backends!(
    audit_anonymises_the_forwarded_address_of_a_trusted_proxy,
    |s: &mut Settings| s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]
);
async fn audit_anonymises_the_forwarded_address_of_a_trusted_proxy(app: TestApp) {
    const CLIENT_ADDRESS: &str = "203.0.113.77";
    app.user("alice", &[]);
    let first_party = app.password_client();
    for password in ["wrong", PASSWORD] {
        app.api
            .post(app.url("/token"))
            .header("X-Forwarded-For", CLIENT_ADDRESS)
            .header("Authorization", first_party.basic())
            .form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", password),
            ])
            .send()
            .await
            .expect("POST");
    }
    let failed = only(&app.audit_events(), "sign_in", "failure").clone();
    let issued = only(&app.audit_events(), "token_issued", "success").clone();
    for e in [&failed, &issued] {
        assert_eq!(e.network.as_deref(), Some("203.0.113.0/24"), "{e:?}");
    }
    // The same address, the same keyed hash: events can be correlated without the address.
    assert_eq!(failed.address_hash, issued.address_hash);
    for (table, row) in app.every_stored_text() {
        assert!(!row.contains(CLIENT_ADDRESS), "{table}: {row}");
    }
}

#[test]
fn audit_retention_is_thirty_days_and_at_least_one() {
    let load = |days: &str| {
        Settings::load_from(
            None,
            vec![(
                "GATEHOUSE_AUDIT__RETENTION_DAYS".to_owned(),
                days.to_owned(),
            )],
        )
    };
    let defaults = Settings::load_from(None, Vec::new()).expect("defaults");
    assert_eq!(defaults.audit.retention_days, 30);
    assert_eq!(
        load("7").expect("7 days").audit.retention_secs(),
        7 * 86_400
    );
    for bad in ["0", "-1", "100000"] {
        let err = load(bad).expect_err(bad).to_string();
        assert!(err.contains("audit.retention_days"), "{bad}: {err}");
    }
}
