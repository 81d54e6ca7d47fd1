//! The resource owner password grant (RFC 6749 §4.3), for first-party confidential clients
//! registered with it (RFC 9700 §2.4 discourages it elsewhere). An unknown user, a disabled one
//! and a wrong password give the same `invalid_grant` (checklist 50); the service spends the same
//! argon2 work on each before asking [`decide`].

use super::{new_refresh, user_may_receive_tokens, Issue, Lifetimes, Plan, Write};
use crate::oauth::authorize::select_audience;
use crate::oauth::errors::OAuthError;
use crate::oauth::model::{Account, Client, GrantId, GrantType, NewGrant};
use crate::oauth::scope;
use crate::oauth::token_request::PasswordRequest;
use crate::secret::PlainToken;

/// The scope and audience a request may have: checked before any password is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scope: String,
    pub audience: String,
}

/// Checks what the request asks for against the client's allow-lists.
pub fn check_request(client: &Client, request: &PasswordRequest) -> Result<Target, OAuthError> {
    Ok(Target {
        scope: scope::to_string(&scope::negotiate(request.scope.as_deref(), &client.scopes)?),
        audience: select_audience(request.resource.as_deref(), client)?,
    })
}

/// Fresh values for the grant the password grant starts (the core draws no randomness).
#[derive(Debug)]
pub struct Fresh {
    pub grant_id: GrantId,
    pub refresh: PlainToken,
}

/// Decides the grant once the password was checked. `user` is the account the username names,
/// if any.
pub fn decide(
    target: Target,
    user: Option<&Account>,
    password_ok: bool,
    client: &Client,
    lifetimes: &Lifetimes,
    fresh: Fresh,
    now: i64,
) -> Plan {
    let user = user.filter(|u| password_ok && user_may_receive_tokens(Some(u.active)));
    let Some(user) = user else {
        return Plan::refuse(OAuthError::invalid_grant("invalid username or password"));
    };
    let grant = NewGrant {
        id: fresh.grant_id,
        client_id: client.id.clone(),
        user_id: Some(user.id.clone()),
        session_hash: None,
        created_at: now,
        expires_at: now + lifetimes.refresh_family,
    };
    let mut writes = vec![Write::InsertGrant(grant.clone())];
    let refresh = client.allows_grant(GrantType::RefreshToken).then(|| {
        writes.push(Write::InsertRefresh(new_refresh(
            &fresh.refresh,
            &grant.id,
            &client.id,
            Some(&user.id),
            &target.scope,
            &target.audience,
            grant.expires_at,
            lifetimes,
            now,
        )));
        fresh.refresh
    });
    let issue = Issue {
        subject: user.id.to_string(),
        client_id: client.id.clone(),
        audience: target.audience,
        scope: target.scope,
        roles: user.roles.clone(),
        grant_id: Some(grant.id),
        refresh,
    };
    Plan::issue(writes, issue)
}

#[cfg(test)]
mod tests {
    use super::super::Outcome;
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const LIFETIMES: Lifetimes = Lifetimes {
        refresh_family: 1000,
        refresh_idle: 100,
        retry_window: 0,
    };

    fn client() -> Client {
        Client {
            id: "cl_first".into(),
            name: "first party".into(),
            secret_hash: Some("h".into()),
            redirect_uris: vec![],
            grant_types: vec![GrantType::Password, GrantType::RefreshToken],
            scopes: vec!["api:read".into()],
            audiences: vec!["https://api.example".into()],
            allowed_origins: vec![],
            created_at: 0,
        }
    }

    fn alice(active: bool) -> Account {
        Account {
            id: "usr_alice".into(),
            roles: vec!["admin".into()],
            active,
        }
    }

    fn request(scope: Option<&str>) -> PasswordRequest {
        PasswordRequest {
            username: "alice".into(),
            password: "pw".into(),
            scope: scope.map(str::to_owned),
            resource: None,
        }
    }

    fn run(user: Option<&Account>, ok: bool) -> Plan {
        let target = check_request(&client(), &request(None)).unwrap();
        decide(
            target,
            user,
            ok,
            &client(),
            &LIFETIMES,
            Fresh {
                grant_id: "gr_new".into(),
                refresh: PlainToken::from_presented("rt"),
            },
            NOW,
        )
    }

    #[test]
    fn right_password_starts_a_grant_with_a_refresh_token() {
        let plan = run(Some(&alice(true)), true);
        let Outcome::Issue(issue) = &plan.outcome else {
            panic!("issued");
        };
        assert_eq!(issue.subject, "usr_alice");
        assert_eq!(issue.scope, "api:read");
        assert_eq!(issue.audience, "https://api.example");
        let Write::InsertGrant(grant) = &plan.writes[0] else {
            panic!("grant first");
        };
        assert_eq!(grant.expires_at, NOW + 1000);
        assert!(matches!(&plan.writes[1], Write::InsertRefresh(r) if r.grant_id == grant.id));
    }

    #[test]
    fn password_grant_same_answer_for_unknown_user_wrong_password_and_disabled_user() {
        let unknown = run(None, false);
        assert_eq!(run(Some(&alice(true)), false), unknown);
        assert_eq!(run(Some(&alice(false)), true), unknown);
        assert!(unknown.writes.is_empty());
    }

    #[test]
    fn scope_and_resource_are_checked_before_any_hashing() {
        assert_eq!(
            check_request(&client(), &request(Some("admin")))
                .unwrap_err()
                .code
                .as_str(),
            "invalid_scope"
        );
        let r = PasswordRequest {
            resource: Some("https://other.example".into()),
            ..request(None)
        };
        assert_eq!(
            check_request(&client(), &r).unwrap_err().code.as_str(),
            "invalid_target"
        );
    }
}
