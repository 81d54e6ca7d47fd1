//! The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6): is this stored code redeemable
//! by this client with this request, and what does redeeming it write?
//!
//! The code is single use (checklist 9): the plan consumes it with a compare-and-swap, and a code
//! presented again, or consumed by a concurrent request first, revokes every token issued from
//! it (checklist 10, RFC 9700 §4.2.4).

use super::{
    check_resource, new_refresh, user_may_receive_tokens, Event, Issue, Lifetimes, Plan, Write,
};
use crate::oauth::errors::OAuthError;
use crate::oauth::model::{Client, GrantType, StoredCode};
use crate::oauth::oidc;
use crate::oauth::pkce;
use crate::oauth::token_request::CodeRequest;
use crate::secret::PlainToken;

/// The one answer for a code that is unknown, another client's, of a revoked grant, or of a
/// disabled user (rule 60).
fn not_valid() -> OAuthError {
    OAuthError::invalid_grant("the code is not valid")
}

/// Decides a code exchange. `found` is the code the request's `code` hashes to, if any;
/// `refresh` is the refresh token to issue when the client may refresh.
pub fn decide(
    found: Option<&StoredCode>,
    client: &Client,
    request: &CodeRequest,
    lifetimes: &Lifetimes,
    refresh: PlainToken,
    now: i64,
) -> Plan {
    let Some(code) = found else {
        return Plan::refuse(not_valid());
    };
    if code.client_id != client.id {
        return Plan::refuse(not_valid());
    }
    if code.consumed_at.is_some() {
        return lost_race(code);
    }
    if code.grant.is_revoked() {
        return Plan::refuse(not_valid());
    }
    if code.expires_at <= now {
        return Plan::refuse(OAuthError::invalid_grant("the code has expired"));
    }
    if request.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
        return Plan::refuse(OAuthError::invalid_grant(
            "redirect_uri must repeat the authorization request's value exactly",
        ));
    }
    if let Err(e) = pkce::verify(request.code_verifier.as_deref(), &code.code_challenge) {
        return Plan::refuse(e);
    }
    if let Err(e) = check_resource(request.resource.as_deref(), &code.audience) {
        return Plan::refuse(e);
    }
    if !user_may_receive_tokens(Some(code.user.active)) {
        return Plan::refuse(not_valid());
    }
    let mut writes = vec![Write::ConsumeCode {
        code_hash: code.code_hash.clone(),
    }];
    let refresh = client.allows_grant(GrantType::RefreshToken).then(|| {
        writes.push(Write::InsertRefresh(new_refresh(
            &refresh,
            &code.grant_id,
            &client.id,
            Some(&code.user.id),
            &code.scope,
            &code.audience,
            code.grant.expires_at,
            lifetimes,
            now,
        )));
        refresh
    });
    Plan::issue(
        writes,
        Issue {
            subject: code.user.id.to_string(),
            client_id: client.id.clone(),
            audience: code.audience.clone(),
            scope: code.scope.clone(),
            roles: code.user.roles.clone(),
            grant_id: Some(code.grant_id.clone()),
            refresh,
            amr: code.grant.amr.clone(),
            id_token: oidc::id_token_facts(&code.scope, &code.user, &code.grant, true),
        },
    )
}

/// The code was used before, or a concurrent request consumed it first: revoke what it issued
/// and refuse (RFC 6749 §4.1.2).
pub fn lost_race(code: &StoredCode) -> Plan {
    Plan::revoke_and_refuse(
        &code.grant_id,
        OAuthError::invalid_grant("the code was already used; tokens issued from it are revoked"),
        Event::CodeReplayed,
    )
}

#[cfg(test)]
mod tests {
    use super::super::{Finish, Outcome};
    use super::*;
    use crate::oauth::model::{Account, GrantState};

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const NOW: i64 = 1_800_000_000;
    const URI: &str = "https://app.example/cb";
    const LIFETIMES: Lifetimes = Lifetimes {
        refresh_family: 1000,
        refresh_idle: 100,
        retry_window: 0,
    };

    fn client(id: &str) -> Client {
        Client {
            id: id.into(),
            name: "SPA".into(),
            secret_hash: None,
            redirect_uris: vec![URI.into()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: vec![],
            audiences: vec![],
            allowed_origins: vec![],
            created_at: 0,
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: Vec::new(),
        }
    }

    fn code() -> StoredCode {
        StoredCode {
            code_hash: "h".into(),
            grant_id: "gr_1".into(),
            client_id: "cl_a".into(),
            redirect_uri: URI.into(),
            scope: "api:read".into(),
            audience: "https://api.example".into(),
            code_challenge: CHALLENGE.into(),
            expires_at: NOW + 50,
            consumed_at: None,
            grant: GrantState {
                expires_at: NOW + 500,
                revoked_at: None,
                amr: vec!["pwd".into()],
                auth_time: None,
                nonce: None,
                session_hash: None,
            },
            user: Account {
                id: "usr_1".into(),
                roles: vec!["admin".into()],
                active: true,
                username: "alice".into(),
                profile: Default::default(),
            },
        }
    }

    fn request() -> CodeRequest {
        CodeRequest {
            code: "c".into(),
            redirect_uri: Some(URI.into()),
            code_verifier: Some(VERIFIER.into()),
            resource: None,
        }
    }

    fn run(c: &StoredCode, client_id: &str, r: &CodeRequest, now: i64) -> Plan {
        decide(
            Some(c),
            &client(client_id),
            r,
            &LIFETIMES,
            PlainToken::from_presented("rt"),
            now,
        )
    }

    fn refused(plan: &Plan) -> Option<(&'static str, Finish)> {
        match &plan.outcome {
            Outcome::Refuse { error, finish } => Some((error.code.as_str(), *finish)),
            Outcome::Issue(_) => None,
        }
    }

    #[test]
    fn valid_code_is_consumed_and_issues_a_refresh_token() {
        let plan = run(&code(), "cl_a", &request(), NOW);
        let Outcome::Issue(issue) = &plan.outcome else {
            panic!("issued: {plan:?}");
        };
        assert_eq!(issue.subject, "usr_1");
        assert_eq!(issue.roles, vec!["admin".to_owned()]);
        assert_eq!(issue.grant_id.as_ref().map(|g| g.as_str()), Some("gr_1"));
        assert_eq!(issue.refresh, Some(PlainToken::from_presented("rt")));
        assert_eq!(
            plan.writes[0],
            Write::ConsumeCode {
                code_hash: "h".into()
            }
        );
        let Write::InsertRefresh(rt) = &plan.writes[1] else {
            panic!("a refresh token is inserted");
        };
        assert_eq!(rt.expires_at, NOW + 100, "idle lifetime");
        assert_eq!(rt.token_hash, PlainToken::from_presented("rt").hash().0);
    }

    #[test]
    fn refresh_token_only_for_clients_allowed_to_refresh() {
        let mut c = client("cl_a");
        c.grant_types = vec![GrantType::AuthorizationCode];
        let plan = decide(
            Some(&code()),
            &c,
            &request(),
            &LIFETIMES,
            PlainToken::generate(),
            NOW,
        );
        assert_eq!(plan.writes.len(), 1);
        assert!(matches!(&plan.outcome, Outcome::Issue(i) if i.refresh.is_none()));
    }

    #[test]
    fn code_bound_to_client_and_redirect_uri() {
        assert_eq!(
            refused(&run(&code(), "cl_b", &request(), NOW)),
            Some(("invalid_grant", Finish::Rollback))
        );
        for uri in [Some("https://app.example/cb/"), None] {
            let r = CodeRequest {
                redirect_uri: uri.map(str::to_owned),
                ..request()
            };
            assert_eq!(
                refused(&run(&code(), "cl_a", &r, NOW)),
                Some(("invalid_grant", Finish::Rollback))
            );
        }
    }

    #[test]
    fn code_of_another_client_reads_as_unknown() {
        let unknown = decide(
            None,
            &client("cl_b"),
            &request(),
            &LIFETIMES,
            PlainToken::generate(),
            NOW,
        );
        assert_eq!(run(&code(), "cl_b", &request(), NOW), unknown);
    }

    #[test]
    fn expired_code_is_invalid_grant() {
        assert_eq!(
            refused(&run(&code(), "cl_a", &request(), NOW + 50)),
            Some(("invalid_grant", Finish::Rollback))
        );
    }

    #[test]
    fn used_code_is_a_replay_that_revokes_its_grant() {
        let used = StoredCode {
            consumed_at: Some(NOW - 1),
            ..code()
        };
        let plan = run(&used, "cl_a", &request(), NOW);
        assert_eq!(refused(&plan), Some(("invalid_grant", Finish::Commit)));
        assert_eq!(
            plan.writes,
            vec![Write::RevokeGrant {
                grant_id: "gr_1".into()
            }]
        );
        assert_eq!(plan.event, Some(Event::CodeReplayed));
        assert_eq!(lost_race(&code()), plan, "a lost race is a replay");
    }

    #[test]
    fn code_of_a_revoked_grant_is_invalid_grant() {
        let mut c = code();
        c.grant.revoked_at = Some(NOW - 1);
        assert_eq!(
            refused(&run(&c, "cl_a", &request(), NOW)),
            Some(("invalid_grant", Finish::Rollback))
        );
        assert_eq!(run(&c, "cl_a", &request(), NOW), Plan::refuse(not_valid()));
    }

    #[test]
    fn wrong_verifier_is_invalid_grant() {
        let r = CodeRequest {
            code_verifier: Some("a".repeat(43)),
            ..request()
        };
        assert_eq!(
            refused(&run(&code(), "cl_a", &r, NOW)),
            Some(("invalid_grant", Finish::Rollback))
        );
    }

    #[test]
    fn other_resource_is_invalid_target_and_writes_nothing() {
        let r = CodeRequest {
            resource: Some("https://other.example".into()),
            ..request()
        };
        let plan = run(&code(), "cl_a", &r, NOW);
        assert_eq!(refused(&plan), Some(("invalid_target", Finish::Rollback)));
        assert!(plan.writes.is_empty());
    }

    #[test]
    fn disabled_user_gets_the_answer_of_an_unknown_code() {
        let mut c = code();
        c.user.active = false;
        let plan = run(&c, "cl_a", &request(), NOW);
        assert_eq!(plan, Plan::refuse(not_valid()));
    }
}
