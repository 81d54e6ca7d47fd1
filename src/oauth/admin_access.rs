//! Who may call the admin API (checklist 64): a decision over one of Gatehouse's own access tokens,
//! already verified (signature, issuer, expiry), and what the service read about its holder.
//!
//! The token must be for the admin API's own audience (`<issuer>/admin/api`), carry the scope
//! `gatehouse:admin`, and come from a grant that is still live and a client an admin registered
//! with that scope and audience. Then either its user has the `admin` role now (read from the
//! database at each call) and signed in with a second factor, or it is a client_credentials token
//! of a confidential client (automation). Anything else changes nothing.

use crate::jwt_profile::AccessClaims;
use crate::mfa;

use super::model::{Account, Client};

/// The scope an admin API token carries.
pub const ADMIN_SCOPE: &str = "gatehouse:admin";

/// The admin API's audience: an access token for any other audience is refused there.
pub fn audience(issuer: &str) -> String {
    format!("{issuer}/admin/api")
}

/// Who is calling the admin API: the audit log's actor for every change it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An administrator (user id) who signed in with a second factor.
    User(String),
    /// A confidential client an admin granted the admin scope (client id).
    Client(String),
}

/// Why a call is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No token, or not one that is valid here: unknown, expired, revoked, for another audience,
    /// its user or client gone or disabled (401 `invalid_token`).
    InvalidToken,
    /// A valid token without the scope `gatehouse:admin` (403 `insufficient_scope`).
    InsufficientScope,
    /// The user does not have the `admin` role (403).
    NotAdmin,
    /// An admin who signed in with the password alone (403).
    NoSecondFactor,
    /// A client token whose client was not registered for the admin API, or is public (403).
    ClientNotGranted,
}

impl Denial {
    /// What the caller is told: enough to fix their setup, nothing about other accounts.
    pub fn message(self) -> &'static str {
        match self {
            Denial::InvalidToken => "the access token is missing or not valid for the admin API",
            Denial::InsufficientScope => "the access token lacks the scope gatehouse:admin",
            Denial::NotAdmin => "the admin API needs a user with the role admin",
            Denial::NoSecondFactor => {
                "the admin API needs an administrator who signed in with a second factor"
            }
            Denial::ClientNotGranted => {
                "this client is not registered for the admin API (a confidential client with the scope gatehouse:admin)"
            }
        }
    }
}

/// What the service read about a token's holder.
#[derive(Debug, Clone, Copy)]
pub struct Holder<'a> {
    /// The client the token was issued to, if it still exists.
    pub client: Option<&'a Client>,
    /// The user (`sub`) of a user's token, if they still exist.
    pub user: Option<&'a Account>,
    /// False when the grant the token came from (`sid`) was revoked or is gone.
    pub grant_live: bool,
}

/// Decides whether `claims` (a verified token of ours) may call the admin API of `issuer`.
pub fn decide(claims: &AccessClaims, issuer: &str, holder: Holder<'_>) -> Result<Caller, Denial> {
    if claims.aud != audience(issuer) || !holder.grant_live {
        return Err(Denial::InvalidToken);
    }
    let Some(client) = holder.client else {
        return Err(Denial::InvalidToken);
    };
    if !claims.scopes().any(|s| s == ADMIN_SCOPE) {
        return Err(Denial::InsufficientScope);
    }
    let granted =
        client.scopes.iter().any(|s| s == ADMIN_SCOPE) && client.audiences.contains(&claims.aud);
    if !granted {
        return Err(Denial::ClientNotGranted);
    }
    if claims.sub == claims.client_id {
        // client_credentials: the client itself, which must hold a secret.
        return if client.is_confidential() {
            Ok(Caller::Client(client.id.to_string()))
        } else {
            Err(Denial::ClientNotGranted)
        };
    }
    let Some(user) = holder.user.filter(|u| u.active) else {
        return Err(Denial::InvalidToken);
    };
    if !user.roles.iter().any(|r| r == mfa::ADMIN_ROLE) {
        return Err(Denial::NotAdmin);
    }
    if !mfa::admin_may_enter(&user.roles, &claims.amr) {
        return Err(Denial::NoSecondFactor);
    }
    Ok(Caller::User(user.id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::model::GrantType;

    const ISS: &str = "https://auth.example";

    fn client(confidential: bool, scopes: &[&str]) -> Client {
        Client {
            id: "cl_admin".into(),
            name: "admin tool".into(),
            secret_hash: confidential.then(|| "00".repeat(32)),
            redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            audiences: vec![audience(ISS)],
            allowed_origins: vec![],
            created_at: 0,
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: Vec::new(),
        }
    }

    fn claims(sub: &str, aud: &str, scope: &str, amr: &[&str]) -> AccessClaims {
        AccessClaims {
            iss: ISS.into(),
            sub: sub.into(),
            aud: aud.into(),
            client_id: "cl_admin".into(),
            iat: 0,
            exp: 60,
            nbf: None,
            jti: "at_1".into(),
            scope: scope.into(),
            roles: vec![],
            sid: None,
            amr: amr.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn account(roles: &[&str], active: bool) -> Account {
        Account {
            id: "usr_1".into(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            active,
            username: "alice".into(),
            profile: Default::default(),
        }
    }

    fn live<'a>(client: &'a Client, user: Option<&'a Account>) -> Holder<'a> {
        Holder {
            client: Some(client),
            user,
            grant_live: true,
        }
    }

    #[test]
    fn admin_api_accepts_admin_with_second_factor() {
        let c = client(false, &[ADMIN_SCOPE]);
        let admin = account(&["admin"], true);
        let t = claims("usr_1", &audience(ISS), ADMIN_SCOPE, &["pwd", "otp", "mfa"]);
        assert_eq!(
            decide(&t, ISS, live(&c, Some(&admin))),
            Ok(Caller::User("usr_1".into()))
        );
    }

    #[test]
    fn admin_api_refuses_admin_who_skipped_second_factor() {
        let c = client(false, &[ADMIN_SCOPE]);
        let admin = account(&["admin"], true);
        let t = claims("usr_1", &audience(ISS), ADMIN_SCOPE, &["pwd"]);
        assert_eq!(
            decide(&t, ISS, live(&c, Some(&admin))),
            Err(Denial::NoSecondFactor)
        );
    }

    #[test]
    fn admin_api_refuses_non_admin_and_reads_roles_from_the_account() {
        let c = client(false, &[ADMIN_SCOPE]);
        let user = account(&["staff"], true);
        // The token still claims the role; the account no longer has it.
        let mut t = claims("usr_1", &audience(ISS), ADMIN_SCOPE, &["pwd", "otp", "mfa"]);
        t.roles = vec!["admin".into()];
        assert_eq!(
            decide(&t, ISS, live(&c, Some(&user))),
            Err(Denial::NotAdmin)
        );
    }

    #[test]
    fn admin_api_refuses_other_audience_revoked_grant_and_gone_holders() {
        let c = client(false, &[ADMIN_SCOPE]);
        let admin = account(&["admin"], true);
        let mfa = ["pwd", "otp", "mfa"];
        let other = claims("usr_1", "https://api.example", ADMIN_SCOPE, &mfa);
        assert_eq!(
            decide(&other, ISS, live(&c, Some(&admin))),
            Err(Denial::InvalidToken)
        );
        let t = claims("usr_1", &audience(ISS), ADMIN_SCOPE, &mfa);
        let revoked = Holder {
            grant_live: false,
            ..live(&c, Some(&admin))
        };
        assert_eq!(decide(&t, ISS, revoked), Err(Denial::InvalidToken));
        let no_client = Holder {
            client: None,
            ..live(&c, Some(&admin))
        };
        assert_eq!(decide(&t, ISS, no_client), Err(Denial::InvalidToken));
        assert_eq!(decide(&t, ISS, live(&c, None)), Err(Denial::InvalidToken));
        let disabled = account(&["admin"], false);
        assert_eq!(
            decide(&t, ISS, live(&c, Some(&disabled))),
            Err(Denial::InvalidToken)
        );
    }

    #[test]
    fn admin_api_needs_the_admin_scope() {
        let c = client(false, &[ADMIN_SCOPE, "read"]);
        let admin = account(&["admin"], true);
        let t = claims("usr_1", &audience(ISS), "read", &["pwd", "otp", "mfa"]);
        assert_eq!(
            decide(&t, ISS, live(&c, Some(&admin))),
            Err(Denial::InsufficientScope)
        );
    }

    #[test]
    fn admin_api_accepts_only_confidential_clients_an_admin_granted_the_scope() {
        let t = claims("cl_admin", &audience(ISS), ADMIN_SCOPE, &[]);
        let granted = client(true, &[ADMIN_SCOPE]);
        assert_eq!(
            decide(&t, ISS, live(&granted, None)),
            Ok(Caller::Client("cl_admin".into()))
        );
        // The scope was taken away from the client since the token was issued.
        let ungranted = client(true, &["read"]);
        assert_eq!(
            decide(&t, ISS, live(&ungranted, None)),
            Err(Denial::ClientNotGranted)
        );
        let public = client(false, &[ADMIN_SCOPE]);
        assert_eq!(
            decide(&t, ISS, live(&public, None)),
            Err(Denial::ClientNotGranted)
        );
    }
}
