//! Signing-key rotation (issue 4 point 5, DESIGN.md "Keys"): a new key is published before it
//! signs, the key it replaces stays published until its tokens have expired, running instances
//! reload their keys, RS256 and EdDSA work, and two instances on one PostgreSQL database agree.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use actix_web::web;
use gatehouse::keys::rotation::{self, Rotation};
use gatehouse::keys::schedule::{Decision, KeyState, Policy, Trigger};
use gatehouse::keys::KeyInfo;
use gatehouse::state::AppState;
use gatehouse::store::keys::SigningKeyRow;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

// ---------------------------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------------------------

/// An access token from the server at `address` (client_credentials, HTTP Basic).
async fn token_from(address: &str, client: &TestClient) -> String {
    let req = reqwest::Client::new().post(format!("{address}/token"));
    let req = req.header("Authorization", client.basic());
    let resp = req
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    s(&ok_json(resp.expect("POST /token")).await, "access_token")
}

/// The JWKS of the server at `address`.
async fn jwks_from(address: &str) -> Vec<Value> {
    let resp = reqwest::get(format!("{address}/.well-known/jwks.json")).await;
    let jwks = ok_json(resp.expect("GET jwks")).await;
    jwks["keys"].as_array().expect("keys array").clone()
}

fn kids(keys: &[Value]) -> BTreeSet<String> {
    keys.iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// The `kid` and `alg` in a JWT's header.
fn header_of(jwt: &str) -> (String, String) {
    let (h, _) = jwt_parts(jwt);
    (s(&h, "kid"), s(&h, "alg"))
}

/// What a resource server does: finds the token's key in the JWKS and verifies the signature
/// with the key's own algorithm.
fn verify_with(keys: &[Value], jwt: &str, issuer: &str) {
    let (kid, alg) = header_of(jwt);
    let key = keys
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    assert_eq!(key["alg"], alg.as_str(), "JWKS alg of {kid}");
    for private in PRIVATE_MEMBERS {
        assert!(key.get(private).is_none(), "JWKS leaks {private:?}: {key}");
    }
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).expect("JWK");
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
    let alg: jsonwebtoken::Algorithm = alg.parse().expect("known alg");
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUDIENCE]);
    jsonwebtoken::decode::<Value>(jwt, &decoding, &validation)
        .unwrap_or_else(|e| panic!("the JWKS key {kid} does not verify the token: {e}"));
}

/// `gatehouse keys rotate`, as the command does it, on the app's database.
fn rotate(app: &TestApp, algorithm: &str) -> Rotation {
    let mut conn = app.conn();
    rotation::rotate(
        &mut conn,
        &app.state.master,
        algorithm,
        &Policy::of(&app.settings),
        Trigger::Manual,
        gatehouse::audit::Actor::Operator,
        app.now(),
    )
    .expect("rotate")
}

fn rotated(rotation: Rotation) -> SigningKeyRow {
    match rotation {
        Rotation::Rotated(row) => row,
        Rotation::Skipped(why) => panic!("expected a rotation, got {why:?}"),
    }
}

/// Lets `secs` seconds pass for the signing keys.
fn advance(app: &TestApp, secs: i64) {
    app.age_signing_keys(secs);
}

/// What the background task does every `keys.reload_secs`, now.
fn reload(app: &TestApp) {
    gatehouse::flows::keys::reload(&app.state, app.now()).expect("reload keys");
}

/// `gatehouse keys list`, as states by kid.
fn states(app: &TestApp) -> Vec<(String, &'static str)> {
    KeyInfo::list(&app.signing_keys(), app.now())
        .into_iter()
        .map(|k| (k.kid, k.state))
        .collect()
}

/// A second Gatehouse on the same database and master key as `app` (same issuer: two instances
/// behind one load balancer), on its own port.
struct Instance {
    address: String,
    _state: web::Data<AppState>,
}

async fn second_instance(app: &TestApp, tweak: impl FnOnce(&mut Settings)) -> Instance {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut settings = app.settings.clone();
    tweak(&mut settings);
    let state = start_server(settings, app.state.master.clone(), listener).await;
    Instance {
        address,
        _state: state,
    }
}

// ---------------------------------------------------------------------------------------------
// Publish before use
// ---------------------------------------------------------------------------------------------

both_backends!(rotation_publishes_before_use);
async fn rotation_publishes_before_use(app: TestApp) {
    let client = app.machine_client();
    let before = token_from(&app.address, &client).await;
    let (old, _) = header_of(&before);
    assert_eq!(kids(&jwks_from(&app.address).await), set(&[&old]));

    let t = app.now();
    let new = rotated(rotate(&app, "ES256"));
    let delay = app.settings.keys.publish_delay_secs;
    assert!((t + delay..=app.now() + delay).contains(&new.activate_at));
    let rows = app.signing_keys();
    let retiring = rows.iter().find(|r| r.kid == old).unwrap();
    assert_eq!(
        retiring.retire_at,
        Some(new.activate_at),
        "old key stops when new starts"
    );
    assert_eq!(
        retiring.expires_at,
        Some(new.activate_at + app.settings.tokens.access_token_ttl_secs + 60),
        "old key stays published until its last token has expired"
    );
    assert_eq!(
        states(&app),
        [(old.clone(), "signing"), (new.kid.clone(), "published")]
    );

    // Published at once, but not used.
    reload(&app);
    let keys = jwks_from(&app.address).await;
    assert_eq!(kids(&keys), set(&[&old, &new.kid]));
    let during = token_from(&app.address, &client).await;
    assert_eq!(
        header_of(&during).0,
        old,
        "the new key signed before its activate_at"
    );
    verify_with(&keys, &during, &app.issuer);

    // The publish delay passes: the new key signs, the old one is still published.
    advance(&app, delay);
    reload(&app);
    let after = token_from(&app.address, &client).await;
    assert_eq!(header_of(&after).0, new.kid);
    let keys = jwks_from(&app.address).await;
    assert_eq!(kids(&keys), set(&[&old, &new.kid]));
    verify_with(&keys, &after, &app.issuer);
    verify_with(&keys, &before, &app.issuer);
    let conf = app.confidential();
    for token in [&before, &during, &after] {
        assert_eq!(app.introspect(&conf, token).await["active"], true);
    }
    assert_eq!(
        states(&app),
        [(old.clone(), "retired"), (new.kid.clone(), "signing")]
    );
}

both_backends!(retired_key_leaves_jwks_after_expiry);
async fn retired_key_leaves_jwks_after_expiry(app: TestApp) {
    let client = app.machine_client();
    let conf = app.confidential();
    let old_token = token_from(&app.address, &client).await;
    let (old, _) = header_of(&old_token);
    let new = rotated(rotate(&app, "ES256"));
    advance(&app, app.settings.keys.publish_delay_secs);
    reload(&app);
    let new_token = token_from(&app.address, &client).await;
    assert_eq!(header_of(&new_token).0, new.kid);
    assert_eq!(app.introspect(&conf, &old_token).await["active"], true);

    // Shortly before its expiry the retired key is still published …
    let rows = app.signing_keys();
    let expires_at = rows
        .iter()
        .find(|r| r.kid == old)
        .unwrap()
        .expires_at
        .unwrap();
    advance(&app, expires_at - app.now() - 30);
    reload(&app);
    assert_eq!(kids(&jwks_from(&app.address).await), set(&[&old, &new.kid]));
    assert_eq!(app.introspect(&conf, &old_token).await["active"], true);
    // … and then it leaves the JWKS; what it signed is no longer a token of ours.
    advance(&app, 30);
    reload(&app);
    let keys = jwks_from(&app.address).await;
    assert_eq!(kids(&keys), set(&[&new.kid]));
    assert_eq!(app.introspect(&conf, &old_token).await["active"], false);
    assert_eq!(app.introspect(&conf, &new_token).await["active"], true);
    verify_with(&keys, &new_token, &app.issuer);
    assert_eq!(
        states(&app),
        [(old.clone(), "expired"), (new.kid.clone(), "signing")]
    );
}

both_backends!(second_rotation_while_pending_refused);
async fn second_rotation_while_pending_refused(app: TestApp) {
    let first = rotated(rotate(&app, "ES256"));
    match rotate(&app, "ES256") {
        Rotation::Skipped(Decision::AlreadyPending { kid, activate_at }) => {
            assert_eq!(kid, first.kid);
            assert_eq!(activate_at, first.activate_at);
        }
        other => panic!("a second rotation while one is pending: {other:?}"),
    }
    // The scheduled rotation refuses too, however due.
    let due = Policy {
        rotate_every_secs: 1,
        ..Policy::of(&app.settings)
    };
    let scheduled = rotation::rotate(
        &mut app.conn(),
        &app.state.master,
        "ES256",
        &due,
        Trigger::Scheduled,
        gatehouse::audit::Actor::System,
        app.now() + 5,
    )
    .unwrap();
    assert!(
        matches!(
            scheduled,
            Rotation::Skipped(Decision::AlreadyPending { .. })
        ),
        "{scheduled:?}"
    );

    // Once it signs, four rotations at once (four connections, as from four instances)
    // add exactly one pending key.
    advance(&app, app.settings.keys.publish_delay_secs);
    let barrier = std::sync::Barrier::new(4);
    let outcomes: Vec<Rotation> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let mut conn = app.conn();
                let barrier = &barrier;
                let app = &app;
                s.spawn(move || {
                    barrier.wait();
                    rotation::rotate(
                        &mut conn,
                        &app.state.master,
                        "ES256",
                        &Policy::of(&app.settings),
                        Trigger::Manual,
                        gatehouse::audit::Actor::Operator,
                        app.now(),
                    )
                    .expect("concurrent rotate")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let added = outcomes
        .iter()
        .filter(|o| matches!(o, Rotation::Rotated(_)))
        .count();
    assert_eq!(added, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(
        o,
        Rotation::Rotated(_) | Rotation::Skipped(Decision::AlreadyPending { .. })
    )));
    let listed = states(&app);
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(
        listed.iter().filter(|(_, s)| *s == "published").count(),
        1,
        "{listed:?}"
    );
    assert_eq!(listed[1], (first.kid.clone(), "signing"));
}

// ---------------------------------------------------------------------------------------------
// Algorithms
// ---------------------------------------------------------------------------------------------

both_backends!(rs256_and_eddsa_keys_sign_and_verify);
async fn rs256_and_eddsa_keys_sign_and_verify(app: TestApp) {
    for (alg, kty) in [("RS256", "RSA"), ("EdDSA", "OKP")] {
        let other = app.sibling(|s| s.keys.algorithm = alg.into()).await;
        let client = other.machine_client();
        let token = token_from(&other.address, &client).await;
        let (kid, header_alg) = header_of(&token);
        assert_eq!(header_alg, alg);
        let keys = jwks_from(&other.address).await;
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kty"], kty, "{}", keys[0]);
        assert_eq!(keys[0]["kid"], kid.as_str());
        assert_eq!(keys[0]["use"], "sig");
        verify_with(&keys, &token, &other.issuer);
        let conf = other.confidential();
        assert_eq!(other.introspect(&conf, &token).await["active"], true);
    }

    // The configuration changes from ES256 to RS256, then to EdDSA: each rotation publishes
    // a key of the new algorithm; the old keys stay published and their tokens stay valid.
    let client = app.machine_client();
    let conf = app.confidential();
    let es = token_from(&app.address, &client).await;
    let mut tokens = vec![es];
    for alg in ["RS256", "EdDSA"] {
        let new = rotated(rotate(&app, alg));
        assert_eq!(new.alg, alg);
        advance(&app, app.settings.keys.publish_delay_secs);
        reload(&app);
        let token = token_from(&app.address, &client).await;
        assert_eq!(header_of(&token), (new.kid.clone(), alg.to_owned()));
        tokens.push(token);
    }
    let keys = jwks_from(&app.address).await;
    let ktys: BTreeSet<&str> = keys.iter().map(|k| k["kty"].as_str().unwrap()).collect();
    assert_eq!(ktys, BTreeSet::from(["EC", "RSA", "OKP"]));
    for token in &tokens {
        verify_with(&keys, token, &app.issuer);
        assert_eq!(app.introspect(&conf, token).await["active"], true);
    }
    // An EdDSA token re-labelled with the RS256 key's kid is checked with RS256: refused.
    let (rs_kid, _) = header_of(&tokens[1]);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(rs_kid);
    let header = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&header).unwrap())
    };
    let forged = format!("{header}.{}", tokens[2].split_once('.').unwrap().1);
    assert_eq!(app.introspect(&conf, &forged).await["active"], false);
}

// ---------------------------------------------------------------------------------------------
// Reload and scheduled rotation
// ---------------------------------------------------------------------------------------------

both_backends!(scheduled_rotation_publishes_before_use);
async fn scheduled_rotation_publishes_before_use(app: TestApp) {
    let scheduled = app
        .sibling(|s| {
            s.keys.reload_secs = 1;
            s.keys.publish_delay_secs = 2;
            s.keys.rotate_every_secs = 3;
        })
        .await;
    let client = scheduled.machine_client();
    let first = header_of(&token_from(&scheduled.address, &client).await).0;
    // The background task rotates on its own and then signs with the new key.
    let token = eventually(
        Duration::from_secs(20),
        "a token from a rotated key",
        || async {
            let token = token_from(&scheduled.address, &client).await;
            (header_of(&token).0 != first).then_some(token)
        },
    )
    .await;
    // The key that signed it was published before it signed, for the whole delay.
    let (kid, _) = header_of(&token);
    let rows = scheduled.signing_keys();
    let key = rows.iter().find(|r| r.kid == kid).expect("stored key");
    assert_eq!(key.activate_at - key.created_at, 2);
    let (_, claims) = jwt_parts(&token);
    assert!(claims["iat"].as_i64().unwrap() >= key.activate_at);
    let first_row = rows.iter().find(|r| r.kid == first).unwrap();
    assert_eq!(first_row.retire_at, Some(rows[1].activate_at));
    verify_with(
        &jwks_from(&scheduled.address).await,
        &token,
        &scheduled.issuer,
    );
    // No state says a key both waits and signs.
    let signing: Vec<_> = KeyInfo::list(&rows, app.now())
        .into_iter()
        .filter(|k| k.state == KeyState::Signing.as_str())
        .collect();
    assert_eq!(signing.len(), 1, "{signing:?}");
    // Each scheduled rotation is in the audit log as Gatehouse's own.
    let rotations = scheduled.audit_events_named("key_rotated");
    assert!(
        rotations
            .iter()
            .any(|e| e.actor == "system" && e.detail.as_deref().is_some_and(|d| d.contains(&kid))),
        "{rotations:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Two instances, one PostgreSQL database
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_rotated_keys() {
    let Some(a) = spawn_app_pg().await else {
        eprintln!("GATEHOUSE_TEST_POSTGRES_URL not set: two_instances_share_rotated_keys skipped");
        return;
    };
    // B reloads every second through its background task; A is reloaded by hand.
    let b = second_instance(&a, |s| s.keys.reload_secs = 1).await;
    let client = a.machine_client();
    let conf = a.confidential();
    let first = token_from(&b.address, &client).await;
    let (old, _) = header_of(&first);
    assert_eq!(header_of(&token_from(&a.address, &client).await).0, old);

    // Rotated through A: B publishes the new key without a restart, and does not sign with it.
    let new = rotated(rotate(&a, "ES256"));
    eventually(
        Duration::from_secs(10),
        "B publishes the new key",
        || async {
            kids(&jwks_from(&b.address).await)
                .contains(&new.kid)
                .then_some(())
        },
    )
    .await;
    assert_eq!(header_of(&token_from(&b.address, &client).await).0, old);

    // The key becomes active: B signs with it, and both instances verify what the other signed.
    advance(&a, a.settings.keys.publish_delay_secs);
    let from_b = eventually(
        Duration::from_secs(10),
        "B signs with the new key",
        || async {
            let token = token_from(&b.address, &client).await;
            (header_of(&token).0 == new.kid).then_some(token)
        },
    )
    .await;
    reload(&a);
    let from_a = token_from(&a.address, &client).await;
    assert_eq!(header_of(&from_a).0, new.kid);
    for address in [&a.address, &b.address] {
        let keys = jwks_from(address).await;
        assert_eq!(kids(&keys), set(&[&old, &new.kid]));
        for token in [&first, &from_a, &from_b] {
            verify_with(&keys, token, &a.issuer);
        }
    }
    assert_eq!(a.introspect(&conf, &from_b).await["active"], true);
    assert_eq!(a.introspect(&conf, &first).await["active"], true);

    // A refresh token rotated on A is dead on B.
    let spa = a.spa();
    a.user("alice", &[]);
    let tokens = a.tokens_for(&spa, "alice").await;
    let rt0 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let resp = a.refresh(&spa, &rt0).await;
    assert_eq!(resp.status().as_u16(), 200);
    let rt1 = resp.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let on_b = |rt: String| {
        let address = b.address.clone();
        let client_id = spa.id.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{address}/token"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                    ("client_id", client_id.as_str()),
                ])
                .send()
                .await
                .expect("POST /token on B")
        }
    };
    assert_oauth_error(on_b(rt0).await, 400, "invalid_grant").await;
    // That was reuse: the whole family is revoked, on every instance.
    assert_oauth_error(on_b(rt1.clone()).await, 400, "invalid_grant").await;
    assert_oauth_error(a.refresh(&spa, &rt1).await, 400, "invalid_grant").await;
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

#[test]
fn key_settings_are_validated() {
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
    assert_eq!(defaults.keys.algorithm, "ES256");
    assert_eq!(defaults.keys.publish_delay_secs, 600);
    assert_eq!(defaults.keys.reload_secs, 30);
    assert_eq!(defaults.keys.rotate_every_secs, 0);
    for alg in ["RS256", "EdDSA", "ES256"] {
        load(&[("GATEHOUSE_KEYS__ALGORITHM", alg)]).unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
    for (pairs, says) in [
        (
            vec![("GATEHOUSE_KEYS__ALGORITHM", "HS256")],
            "keys.algorithm",
        ),
        (
            vec![("GATEHOUSE_KEYS__ALGORITHM", "none")],
            "keys.algorithm",
        ),
        // Not longer than the JWKS cache (300) plus the reload interval (30).
        (
            vec![("GATEHOUSE_KEYS__PUBLISH_DELAY_SECS", "300")],
            "publish_delay_secs",
        ),
        (
            vec![
                ("GATEHOUSE_KEYS__PUBLISH_DELAY_SECS", "400"),
                ("GATEHOUSE_JWKS__MAX_AGE_SECS", "400"),
            ],
            "publish_delay_secs",
        ),
        (vec![("GATEHOUSE_KEYS__RELOAD_SECS", "0")], "reload_secs"),
        (
            vec![("GATEHOUSE_KEYS__ROTATE_EVERY_SECS", "600")],
            "rotate_every_secs",
        ),
        (
            vec![("GATEHOUSE_KEYS__ROTATE_EVERY_SECS", "-1")],
            "rotate_every_secs",
        ),
    ] {
        let Err(err) = load(&pairs) else {
            panic!("{pairs:?} accepted");
        };
        assert!(format!("{err:#}").contains(says), "{pairs:?}: {err:#}");
    }
    load(&[("GATEHOUSE_KEYS__ROTATE_EVERY_SECS", "86400")]).expect("daily rotation");
}
