//! The resource owner password grant (RFC 6749 §4.3), for first-party confidential clients
//! registered with it (RFC 9700 §2.4 discourages it elsewhere). An unknown user, a disabled one
//! and a wrong password give the same `invalid_grant` (checklist 50); the service spends the same
//! argon2 work on each before asking [`decide`].
//!
//! A user with a TOTP factor (or one the client or policy requires a factor of) never gets a token
//! on the password alone (checklist 28): without a code the answer is `invalid_grant` with
//! `"mfa_required": true`; a code is used up by a compare-and-swap write in the grant's
//! transaction, so it works once on any instance.

use super::{new_refresh, user_may_receive_tokens, Issue, Lifetimes, Plan, Write};
use crate::mfa::{self, amr};
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

/// The second factor as the service found it (after opening the user's TOTP secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactor {
    /// No factor enrolled and none required: the password is enough.
    NotNeeded,
    /// The user has a factor and the request carries none.
    Missing,
    /// A factor is required (client, policy or role) and the user has none enrolled yet.
    NotEnrolled,
    /// A code that is malformed, outside the window or not a known recovery code.
    Wrong,
    /// A TOTP code matching `step`; `last_step` is the last one accepted.
    Totp { step: i64, last_step: Option<i64> },
    /// A recovery code, by hash: good if still unused.
    Recovery { code_hash: String },
}

/// Decides the grant once the password was checked. `user` is the account the username names,
/// if any.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    target: Target,
    user: Option<&Account>,
    password_ok: bool,
    second: SecondFactor,
    client: &Client,
    lifetimes: &Lifetimes,
    fresh: Fresh,
    now: i64,
) -> Plan {
    let user = user.filter(|u| password_ok && user_may_receive_tokens(Some(u.active)));
    let Some(user) = user else {
        return Plan::refuse(OAuthError::invalid_grant("invalid username or password"));
    };
    // The factor's compare-and-swap goes first: when it is lost nothing else is written.
    let (mut writes, amr) = match second {
        SecondFactor::NotNeeded => (Vec::new(), amr::password()),
        SecondFactor::Missing => {
            return Plan::refuse(OAuthError::mfa_required(
                "a second factor is required: send otp (or recovery_code) with the password",
            ))
        }
        SecondFactor::NotEnrolled => {
            return Plan::refuse(OAuthError::mfa_required(
                "a second factor is required and none is set up: enrol one by signing in through the browser",
            ))
        }
        SecondFactor::Wrong => return Plan::refuse(second_factor_not_valid()),
        SecondFactor::Totp { step, last_step } => {
            if !mfa::accepts(step, last_step) {
                return Plan::refuse(second_factor_not_valid());
            }
            (
                vec![Write::AcceptTotpStep {
                    user_id: user.id.clone(),
                    step,
                }],
                amr::password_and_otp(),
            )
        }
        SecondFactor::Recovery { code_hash } => (
            vec![Write::UseRecoveryCode {
                user_id: user.id.clone(),
                code_hash,
            }],
            amr::password_and_recovery_code(),
        ),
    };
    let grant = NewGrant {
        id: fresh.grant_id,
        client_id: client.id.clone(),
        user_id: Some(user.id.clone()),
        session_hash: None,
        created_at: now,
        expires_at: now + lifetimes.refresh_family,
        amr: amr.clone(),
        auth_time: Some(now),
        nonce: None,
    };
    writes.push(Write::InsertGrant(grant.clone()));
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
        amr,
        id_token: None,
    };
    Plan::issue(writes, issue)
}

/// A wrong, replayed or malformed second factor (or one lost to a concurrent use).
pub fn second_factor_not_valid() -> OAuthError {
    OAuthError::invalid_grant("the second factor is not valid")
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
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: Vec::new(),
        }
    }

    fn alice(active: bool) -> Account {
        Account {
            id: "usr_alice".into(),
            roles: vec!["admin".into()],
            active,
            username: "alice".into(),
            profile: Default::default(),
        }
    }

    fn request(scope: Option<&str>) -> PasswordRequest {
        PasswordRequest {
            username: "alice".into(),
            password: "pw".into(),
            scope: scope.map(str::to_owned),
            resource: None,
            otp: None,
            recovery_code: None,
        }
    }

    fn run(user: Option<&Account>, ok: bool) -> Plan {
        run_with(user, ok, SecondFactor::NotNeeded)
    }

    fn run_with(user: Option<&Account>, ok: bool, second: SecondFactor) -> Plan {
        let target = check_request(&client(), &request(None)).unwrap();
        decide(
            target,
            user,
            ok,
            second,
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
        assert_eq!(grant.amr, vec!["pwd"]);
        assert_eq!(issue.amr, vec!["pwd"]);
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
    fn rule28_no_token_on_the_password_alone_for_a_user_with_totp() {
        for second in [SecondFactor::Missing, SecondFactor::NotEnrolled] {
            let plan = run_with(Some(&alice(true)), true, second);
            assert!(plan.writes.is_empty());
            let err = plan.into_result().unwrap_err();
            assert_eq!(err.code.as_str(), "invalid_grant");
            assert_eq!(err.body()["mfa_required"], true);
        }
        let wrong = run_with(Some(&alice(true)), true, SecondFactor::Wrong);
        let err = wrong.into_result().unwrap_err();
        assert_eq!(err.code.as_str(), "invalid_grant");
        assert!(err.body().get("mfa_required").is_none());
        // The password is checked first: a second factor says nothing when it is wrong.
        let bad_password = run_with(Some(&alice(true)), false, SecondFactor::Missing);
        assert_eq!(bad_password, run(None, false));
    }

    #[test]
    fn rule52_a_totp_step_is_used_by_a_compare_and_swap_before_anything_else() {
        let plan = run_with(
            Some(&alice(true)),
            true,
            SecondFactor::Totp {
                step: 7,
                last_step: Some(6),
            },
        );
        assert_eq!(
            plan.writes[0],
            Write::AcceptTotpStep {
                user_id: "usr_alice".into(),
                step: 7
            }
        );
        assert!(plan.writes[0].is_conditional());
        let Outcome::Issue(issue) = &plan.outcome else {
            panic!("issued");
        };
        assert_eq!(issue.amr, vec!["pwd", "otp", "mfa"]);
        let replay = run_with(
            Some(&alice(true)),
            true,
            SecondFactor::Totp {
                step: 7,
                last_step: Some(7),
            },
        );
        assert!(replay.writes.is_empty());
        assert_eq!(
            replay.into_result().unwrap_err().code.as_str(),
            "invalid_grant"
        );
        let recovery = run_with(
            Some(&alice(true)),
            true,
            SecondFactor::Recovery {
                code_hash: "h".into(),
            },
        );
        assert!(matches!(&recovery.writes[0], Write::UseRecoveryCode { .. }));
        assert_eq!(recovery.into_result().unwrap().amr, vec!["pwd", "mfa"]);
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
