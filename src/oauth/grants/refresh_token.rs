//! The refresh token grant (RFC 6749 §6; RFC 9700 §4.14.2): rotation with reuse detection, the
//! opt-in retry window, and the lost rotation race. Every rule about a refresh token's life lives
//! here: [`liveness`] (introspection asks it too), reuse, narrowing scope, expiry.
//!
//! A successor is derived from the token it replaces (by the service, under a master-key subkey),
//! never stored in the clear. With the retry window on, a client whose response was lost (or two
//! tabs refreshing at once) may present the just-rotated token again within a few seconds and get
//! the *same* successor back: still one live token per family, so whoever rotates next turns the
//! other copy into a detected reuse. Outside the window, or from another client, it is reuse.

use super::{
    check_resource, new_refresh, user_may_receive_tokens, Event, Issue, Lifetimes, Plan, Write,
};
use crate::oauth::errors::OAuthError;
use crate::oauth::model::{Client, StoredRefresh};
use crate::oauth::oidc;
use crate::oauth::scope;
use crate::oauth::token_request::RefreshRequest;
use crate::secret::PlainToken;

/// Where a stored refresh token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It may be rotated (by its own client).
    Live,
    /// It was rotated: presenting it again is reuse, unless the retry window says otherwise.
    Rotated,
    /// Its family was revoked, it or its family expired, or its user may no longer have tokens.
    Dead,
}

/// The one definition of a live refresh token, for the grant and for introspection. A revoked
/// family is dead before anything else; a rotated token is reported as such even once expired,
/// since presenting it again is still evidence of a copy.
pub fn liveness(token: &StoredRefresh, now: i64) -> Liveness {
    if token.grant.is_revoked() {
        Liveness::Dead
    } else if token.rotated_at.is_some() {
        Liveness::Rotated
    } else if expired(token, now)
        || (token.user_id.is_some()
            && !user_may_receive_tokens(token.user.as_ref().map(|u| u.active)))
    {
        Liveness::Dead
    } else {
        Liveness::Live
    }
}

/// Past its idle timeout or its family's absolute end.
fn expired(token: &StoredRefresh, now: i64) -> bool {
    token.expires_at <= now || token.grant.expires_at <= now
}

/// The answer for a token that is unknown, another client's, revoked, or its user's no longer:
/// the holder learns nothing more than that it is not valid (rule 60).
fn not_valid() -> OAuthError {
    OAuthError::invalid_grant("the refresh token is not valid")
}

fn already_used() -> OAuthError {
    OAuthError::invalid_grant("the refresh token was already used")
}

/// Whether the service must read the presented token's successor before deciding: only for a
/// rotated token within the retry window.
pub fn successor_needed(token: &StoredRefresh, lifetimes: &Lifetimes, now: i64) -> bool {
    token
        .rotated_at
        .is_some_and(|at| lifetimes.retry_window > 0 && now < at + lifetimes.retry_window)
}

/// Decides a refresh. `found` is the token the request's `refresh_token` hashes to;
/// `successor` is the token derived from it, and `stored_successor` what the store holds under
/// that successor's hash (read only when [`successor_needed`] said so).
pub fn decide(
    found: Option<&StoredRefresh>,
    stored_successor: Option<&StoredRefresh>,
    client: &Client,
    request: &RefreshRequest,
    lifetimes: &Lifetimes,
    successor: PlainToken,
    now: i64,
) -> Plan {
    let Some(token) = found else {
        return Plan::refuse(not_valid());
    };
    let state = liveness(token, now);
    // Within the retry window, the same client may get the successor again while that successor
    // is still its family's live, unrotated token.
    let resend = state == Liveness::Rotated
        && token.client_id == client.id
        && !expired(token, now)
        && successor_needed(token, lifetimes, now)
        && stored_successor
            .is_some_and(|s| s.client_id == client.id && liveness(s, now) == Liveness::Live);
    if state == Liveness::Rotated && !resend {
        return reuse(token);
    }
    if token.client_id != client.id || state == Liveness::Dead {
        return Plan::refuse(not_valid());
    }
    // RFC 6749 §6: a narrower scope applies to this access token only; the successor keeps the
    // scope of the token it replaces.
    let scope = match narrowed_scope(&token.scope, request.scope.as_deref()) {
        Ok(s) => s,
        Err(e) => return Plan::refuse(e),
    };
    if let Err(e) = check_resource(request.resource.as_deref(), &token.audience) {
        return Plan::refuse(e);
    }
    let id_token = token
        .user
        .as_ref()
        .and_then(|user| oidc::id_token_facts(&scope, user, &token.grant, false));
    let issue = Issue {
        subject: token
            .user_id
            .as_ref()
            .map_or_else(|| client.id.to_string(), ToString::to_string),
        client_id: client.id.clone(),
        audience: token.audience.clone(),
        scope,
        roles: token
            .user
            .as_ref()
            .map(|u| u.roles.clone())
            .unwrap_or_default(),
        grant_id: Some(token.grant_id.clone()),
        refresh: Some(successor.clone()),
        amr: token.grant.amr.clone(),
        id_token,
    };
    if resend {
        return Plan::issue(Vec::new(), issue).with_event(Event::RefreshResent);
    }
    let writes = vec![
        Write::RotateRefresh {
            token_hash: token.token_hash.clone(),
        },
        Write::InsertRefresh(new_refresh(
            &successor,
            &token.grant_id,
            &client.id,
            token.user_id.as_ref(),
            &token.scope,
            &token.audience,
            token.grant.expires_at,
            lifetimes,
            now,
        )),
    ];
    Plan::issue(writes, issue)
}

/// The scope of this refresh's access token: the token's own, or a narrower one asked for.
fn narrowed_scope(granted: &str, requested: Option<&str>) -> Result<String, OAuthError> {
    let Some(text) = requested else {
        return Ok(granted.to_owned());
    };
    let requested = scope::parse(text)?;
    if !requested.allow_access(&scope::parse_stored(granted)?) {
        return Err(OAuthError::invalid_scope(
            "a refresh may narrow the scope, never widen it",
        ));
    }
    Ok(scope::to_string(&requested))
}

/// Someone holds a copy of a rotated token: the whole family goes (RFC 9700 §4.14.2).
fn reuse(token: &StoredRefresh) -> Plan {
    Plan::revoke_and_refuse(&token.grant_id, already_used(), Event::RefreshReused)
}

/// What to do when the rotation's compare-and-swap found the token rotated by a concurrent
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostRace {
    /// Read the token again and decide again (once): the retry window may let this request
    /// share the winner's successor.
    ReadAgain,
    /// Apply this plan instead (boxed: a plan is large and this is the rare path).
    Plan(Box<Plan>),
}

/// `attempt` counts the decisions made for this request (1 for the first).
pub fn lost_race(token: &StoredRefresh, lifetimes: &Lifetimes, attempt: u32) -> LostRace {
    if lifetimes.retry_window <= 0 {
        LostRace::Plan(Box::new(reuse(token)))
    } else if attempt < 2 {
        LostRace::ReadAgain
    } else {
        LostRace::Plan(Box::new(Plan::refuse(already_used())))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Finish, Outcome};
    use super::*;
    use crate::oauth::model::{Account, GrantState, GrantType};

    const NOW: i64 = 1_800_000_000;
    const OFF: Lifetimes = Lifetimes {
        refresh_family: 1000,
        refresh_idle: 100,
        retry_window: 0,
    };
    const WINDOW: Lifetimes = Lifetimes {
        retry_window: 5,
        ..OFF
    };

    fn client(id: &str) -> Client {
        Client {
            id: id.into(),
            name: "SPA".into(),
            secret_hash: None,
            redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: vec!["api:read".into(), "api:write".into()],
            audiences: vec![],
            allowed_origins: vec![],
            created_at: 0,
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: Vec::new(),
        }
    }

    fn stored() -> StoredRefresh {
        StoredRefresh {
            token_hash: "h".into(),
            grant_id: "gr_1".into(),
            client_id: "cl_a".into(),
            user_id: Some("usr_1".into()),
            scope: "api:read api:write".into(),
            audience: "https://api.example".into(),
            created_at: NOW - 100,
            expires_at: NOW + 100,
            rotated_at: None,
            grant: GrantState {
                expires_at: NOW + 1000,
                revoked_at: None,
                amr: vec!["pwd".into()],
                auth_time: None,
                nonce: None,
                session_hash: None,
            },
            user: Some(Account {
                id: "usr_1".into(),
                roles: vec!["admin".into()],
                active: true,
                username: "alice".into(),
                profile: Default::default(),
            }),
        }
    }

    fn request(scope: Option<&str>) -> RefreshRequest {
        RefreshRequest {
            refresh_token: "rt".into(),
            scope: scope.map(str::to_owned),
            resource: None,
        }
    }

    fn successor() -> PlainToken {
        PlainToken::from_presented("successor")
    }

    fn run(s: &StoredRefresh, c: &Client, scope: Option<&str>, now: i64) -> Plan {
        decide(Some(s), None, c, &request(scope), &OFF, successor(), now)
    }

    fn issued(plan: &Plan) -> &Issue {
        match &plan.outcome {
            Outcome::Issue(i) => i,
            Outcome::Refuse { error, .. } => panic!("refused: {error}"),
        }
    }

    fn refused(plan: &Plan) -> (&'static str, Finish) {
        match &plan.outcome {
            Outcome::Refuse { error, finish } => (error.code.as_str(), *finish),
            Outcome::Issue(_) => panic!("issued: {plan:?}"),
        }
    }

    #[test]
    fn fresh_token_rotates_with_same_scope() {
        let plan = run(&stored(), &client("cl_a"), None, NOW);
        let issue = issued(&plan);
        assert_eq!(issue.scope, "api:read api:write");
        assert_eq!(issue.roles, vec!["admin".to_owned()]);
        assert_eq!(issue.refresh, Some(successor()));
        assert_eq!(
            plan.writes[0],
            Write::RotateRefresh {
                token_hash: "h".into()
            }
        );
        let Write::InsertRefresh(next) = &plan.writes[1] else {
            panic!("the successor is inserted");
        };
        assert_eq!(next.token_hash, successor().hash().0);
        assert_eq!(next.expires_at, NOW + 100);
        assert_eq!(plan.writes.len(), 2);
    }

    #[test]
    fn rotated_token_is_reuse_that_revokes_the_family() {
        let mut s = stored();
        s.rotated_at = Some(NOW - 1);
        let plan = run(&s, &client("cl_a"), None, NOW);
        assert_eq!(refused(&plan), ("invalid_grant", Finish::Commit));
        assert_eq!(
            plan.writes,
            vec![Write::RevokeGrant {
                grant_id: "gr_1".into()
            }]
        );
        assert_eq!(plan.event, Some(Event::RefreshReused));
        // From another client too: reuse is decided before the client check.
        let plan = run(&s, &client("cl_b"), None, NOW);
        assert_eq!(plan.event, Some(Event::RefreshReused));
    }

    #[test]
    fn rotated_token_with_unused_successor_is_resent_within_window() {
        let mut s = stored();
        s.rotated_at = Some(NOW - 1);
        assert!(successor_needed(&s, &WINDOW, NOW));
        assert!(!successor_needed(&s, &OFF, NOW), "window off");
        assert!(!successor_needed(&s, &WINDOW, NOW + 4), "window over");
        let next = StoredRefresh {
            token_hash: successor().hash().0,
            rotated_at: None,
            ..stored()
        };
        let c = client("cl_a");
        let plan = decide(
            Some(&s),
            Some(&next),
            &c,
            &request(None),
            &WINDOW,
            successor(),
            NOW,
        );
        assert!(plan.writes.is_empty(), "nothing new is written");
        assert_eq!(issued(&plan).refresh, Some(successor()));
        assert_eq!(plan.event, Some(Event::RefreshResent));

        // The successor was rotated in turn: reuse.
        let used = StoredRefresh {
            rotated_at: Some(NOW),
            ..next.clone()
        };
        let plan = decide(
            Some(&s),
            Some(&used),
            &c,
            &request(None),
            &WINDOW,
            successor(),
            NOW,
        );
        assert_eq!(plan.event, Some(Event::RefreshReused));
        // Another client presenting it is still reuse, whatever the window says.
        let plan = decide(
            Some(&s),
            Some(&next),
            &client("cl_b"),
            &request(None),
            &WINDOW,
            successor(),
            NOW,
        );
        assert_eq!(plan.event, Some(Event::RefreshReused));
    }

    #[test]
    fn lost_rotation_race_is_reuse_or_a_second_look() {
        let s = stored();
        assert_eq!(
            lost_race(&s, &OFF, 1),
            LostRace::Plan(Box::new(Plan::revoke_and_refuse(
                &s.grant_id,
                already_used(),
                Event::RefreshReused
            )))
        );
        assert_eq!(lost_race(&s, &WINDOW, 1), LostRace::ReadAgain);
        let LostRace::Plan(plan) = lost_race(&s, &WINDOW, 2) else {
            panic!("no third look");
        };
        assert_eq!(refused(&plan), ("invalid_grant", Finish::Rollback));
        assert!(plan.writes.is_empty());
    }

    #[test]
    fn refresh_scope_narrows_never_widens() {
        let plan = run(&stored(), &client("cl_a"), Some("api:read"), NOW);
        assert_eq!(issued(&plan).scope, "api:read");
        let Write::InsertRefresh(next) = &plan.writes[1] else {
            panic!("successor");
        };
        assert_eq!(
            next.scope, "api:read api:write",
            "the successor keeps the scope"
        );
        let mut s = stored();
        s.scope = "api:read".into();
        let plan = run(&s, &client("cl_a"), Some("api:read api:write"), NOW);
        assert_eq!(refused(&plan), ("invalid_scope", Finish::Rollback));
    }

    #[test]
    fn refresh_absolute_and_idle_expiry() {
        let mut idle = stored();
        idle.expires_at = NOW;
        assert_eq!(liveness(&idle, NOW), Liveness::Dead);
        idle.rotated_at = Some(NOW - 200);
        assert_eq!(
            liveness(&idle, NOW),
            Liveness::Rotated,
            "an old copy is still reuse"
        );
        idle.rotated_at = None;
        assert_eq!(
            refused(&run(&idle, &client("cl_a"), None, NOW)),
            ("invalid_grant", Finish::Rollback)
        );
        let mut absolute = stored();
        absolute.grant.expires_at = NOW;
        assert_eq!(liveness(&absolute, NOW), Liveness::Dead);
    }

    #[test]
    fn refresh_token_bound_to_client_and_reads_as_unknown() {
        let plan = run(&stored(), &client("cl_b"), None, NOW);
        let unknown = decide(
            None,
            None,
            &client("cl_b"),
            &request(None),
            &OFF,
            successor(),
            NOW,
        );
        assert_eq!(plan, unknown);
        assert_eq!(refused(&plan), ("invalid_grant", Finish::Rollback));
    }

    #[test]
    fn disabled_user_cannot_refresh_and_is_not_told_so() {
        let mut s = stored();
        s.user.as_mut().unwrap().active = false;
        assert_eq!(liveness(&s, NOW), Liveness::Dead);
        assert_eq!(
            run(&s, &client("cl_a"), None, NOW),
            Plan::refuse(not_valid())
        );
        s.user = None;
        assert_eq!(liveness(&s, NOW), Liveness::Dead, "deleted user");
    }

    #[test]
    fn revoked_family_is_invalid_grant() {
        let mut s = stored();
        s.grant.revoked_at = Some(NOW - 5);
        assert_eq!(
            run(&s, &client("cl_a"), None, NOW),
            Plan::refuse(not_valid())
        );
    }

    #[test]
    fn other_resource_is_invalid_target_and_rotates_nothing() {
        let r = RefreshRequest {
            resource: Some("https://other.example".into()),
            ..request(None)
        };
        let plan = decide(
            Some(&stored()),
            None,
            &client("cl_a"),
            &r,
            &OFF,
            successor(),
            NOW,
        );
        assert_eq!(refused(&plan), ("invalid_target", Finish::Rollback));
        assert!(plan.writes.is_empty());
    }
}
