//! The token endpoint's grants as pure decisions (sans-IO): what was read from the store, the
//! request and `now` in; a [`Plan`] out. The service applies the plan's writes in one
//! transaction, commits or rolls back as the plan says, and signs the access token afterwards.
//!
//! One function per grant type, one file each. The rules they share live here, once:
//! "a resource other than the one authorized" ([`check_resource`]) and "may this user still
//! receive tokens" ([`user_may_receive_tokens`]).

pub mod authorization_code;
pub mod client_credentials;
pub mod password;
pub mod refresh_token;

use super::errors::OAuthError;
use super::model::{ClientId, GrantId, NewGrant, NewRefresh, UserId};
use crate::secret::PlainToken;

/// A write the service makes, in order, inside the grant's one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Marks the code used. A compare-and-swap: when another request used it first, the service
    /// stops and asks [`authorization_code::lost_race`] what to do instead.
    ConsumeCode {
        code_hash: String,
    },
    /// Marks the refresh token rotated. A compare-and-swap: when another request rotated it
    /// first, the service stops and asks [`refresh_token::lost_race`] what to do instead.
    RotateRefresh {
        token_hash: String,
    },
    /// Revokes a grant: its refresh tokens, and (through introspection) its access tokens.
    RevokeGrant {
        grant_id: GrantId,
    },
    InsertGrant(NewGrant),
    InsertRefresh(NewRefresh),
    /// Records a TOTP time step as used. A compare-and-swap: it fails when this step (or a
    /// later one) was accepted before, on any instance (checklist 52).
    AcceptTotpStep {
        user_id: UserId,
        step: i64,
    },
    /// Marks a recovery code used. A compare-and-swap: it fails when the code was used before.
    UseRecoveryCode {
        user_id: UserId,
        code_hash: String,
    },
}

impl Write {
    /// True for the compare-and-swap writes whose loss changes the decision.
    pub fn is_conditional(&self) -> bool {
        matches!(
            self,
            Write::ConsumeCode { .. }
                | Write::RotateRefresh { .. }
                | Write::AcceptTotpStep { .. }
                | Write::UseRecoveryCode { .. }
        )
    }
}

/// Whether a refusal keeps the writes made before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Keep them: a revocation must outlive the error answer.
    Commit,
    /// Undo them.
    Rollback,
}

/// What the service answers once the writes are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Commit, then sign an access token for this.
    Issue(Issue),
    /// Answer this error, committing or rolling back as said.
    Refuse { error: OAuthError, finish: Finish },
}

/// Something worth a log line (never with a secret in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A used code was presented again: its grant is revoked.
    CodeReplayed,
    /// A rotated refresh token was presented again: its family is revoked.
    RefreshReused,
    /// A just-rotated refresh token was presented again within the retry window.
    RefreshResent,
}

/// A grant's decision: the writes, then the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub writes: Vec<Write>,
    pub outcome: Outcome,
    pub event: Option<Event>,
}

impl Plan {
    /// Issue with these writes.
    pub fn issue(writes: Vec<Write>, issue: Issue) -> Plan {
        Plan {
            writes,
            outcome: Outcome::Issue(issue),
            event: None,
        }
    }

    /// Refuse without writing anything.
    pub fn refuse(error: OAuthError) -> Plan {
        Plan {
            writes: Vec::new(),
            outcome: Outcome::Refuse {
                error,
                finish: Finish::Rollback,
            },
            event: None,
        }
    }

    /// Revoke the grant (committed) and refuse: a replayed code or a reused refresh token.
    pub fn revoke_and_refuse(grant_id: &GrantId, error: OAuthError, event: Event) -> Plan {
        Plan {
            writes: vec![Write::RevokeGrant {
                grant_id: grant_id.clone(),
            }],
            outcome: Outcome::Refuse {
                error,
                finish: Finish::Commit,
            },
            event: Some(event),
        }
    }

    /// The outcome alone, for a plan that has nothing to write.
    pub fn into_result(self) -> Result<Issue, OAuthError> {
        match self.outcome {
            Outcome::Issue(issue) => Ok(issue),
            Outcome::Refuse { error, .. } => Err(error),
        }
    }

    fn with_event(mut self, event: Event) -> Plan {
        self.event = Some(event);
        self
    }
}

/// The access token to sign (and the refresh token to return with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// `sub`: the user's id, or the client's own for client_credentials (checklist 34).
    pub subject: String,
    pub client_id: ClientId,
    pub audience: String,
    pub scope: String,
    pub roles: Vec<String>,
    /// The grant the token comes from; revoking it makes the access token inactive.
    pub grant_id: Option<GrantId>,
    pub refresh: Option<PlainToken>,
    /// How the user authenticated (RFC 8176), carried as the token's `amr`.
    pub amr: Vec<String>,
    /// The ID token to mint beside the access token (OpenID Connect), when `openid` was granted.
    pub id_token: Option<Box<super::oidc::IdTokenFacts>>,
}

/// How long what the grants write lives (settings, read once per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Absolute lifetime of a refresh-token family.
    pub refresh_family: i64,
    /// Idle lifetime of one refresh token.
    pub refresh_idle: i64,
    /// Seconds during which a just-rotated refresh token may be presented again (0 = off).
    pub retry_window: i64,
}

/// RFC 8707 §2: a token request may repeat the resource the grant was authorized for, and
/// nothing else.
pub fn check_resource(requested: Option<&str>, authorized: &str) -> Result<(), OAuthError> {
    match requested {
        Some(r) if r != authorized => Err(OAuthError::invalid_target(
            "resource differs from the one authorized",
        )),
        _ => Ok(()),
    }
}

/// A disabled user receives no tokens, whatever the grant (checklist 21). An unknown user
/// (deleted) receives none either.
pub fn user_may_receive_tokens(active: Option<bool>) -> bool {
    active == Some(true)
}

/// The refresh token a grant inserts: it lives until its idle timeout, never past its family.
#[expect(
    clippy::too_many_arguments,
    reason = "one row's columns, named at each call"
)]
fn new_refresh(
    token: &PlainToken,
    grant_id: &GrantId,
    client_id: &ClientId,
    user_id: Option<&UserId>,
    scope: &str,
    audience: &str,
    family_end: i64,
    lifetimes: &Lifetimes,
    now: i64,
) -> NewRefresh {
    NewRefresh {
        token_hash: token.hash().0,
        grant_id: grant_id.clone(),
        client_id: client_id.clone(),
        user_id: user_id.cloned(),
        scope: scope.to_owned(),
        audience: audience.to_owned(),
        created_at: now,
        expires_at: (now + lifetimes.refresh_idle).min(family_end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_must_repeat_the_authorized_one() {
        assert!(check_resource(None, "https://api.example").is_ok());
        assert!(check_resource(Some("https://api.example"), "https://api.example").is_ok());
        assert_eq!(
            check_resource(Some("https://other.example"), "https://api.example")
                .unwrap_err()
                .code
                .as_str(),
            "invalid_target"
        );
    }

    #[test]
    fn only_active_users_receive_tokens() {
        assert!(user_may_receive_tokens(Some(true)));
        assert!(!user_may_receive_tokens(Some(false)));
        assert!(!user_may_receive_tokens(None));
    }
}
