//! The core's own model: clients, users, grant types and stored codes and refresh tokens as the
//! protocol rules see them. The store maps its rows into these types; nothing here knows Diesel.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Declares a string identifier newtype: compared, printed and serialised as its text.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// A client's id (`cl_…`, server-generated; never equal to a user id, checklist 34).
    ClientId
);
id_type!(
    /// A user's id (`usr_…`): the `sub` of the user's access tokens.
    UserId
);
id_type!(
    /// A grant's id (`gr_…`): one authorization, the family of its codes and refresh tokens.
    GrantId
);

/// A grant type of the token endpoint (RFC 6749 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    Password,
    ClientCredentials,
}

impl GrantType {
    /// Every grant type the token endpoint implements (the metadata lists exactly these).
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::Password,
        GrantType::ClientCredentials,
    ];

    /// What a client registered without grant types gets: the browser flow.
    pub const DEFAULT: [GrantType; 2] = [GrantType::AuthorizationCode, GrantType::RefreshToken];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    /// Whether a public client (no secret) may use it: the browser flow only (checklist 27, 28).
    pub fn allowed_for_public_clients(self) -> bool {
        matches!(self, GrantType::AuthorizationCode | GrantType::RefreshToken)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`GrantType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("grant type {0:?} is not supported; use one of: authorization_code, refresh_token, password, client_credentials")]
pub struct UnknownGrantType(pub String);

impl FromStr for GrantType {
    type Err = UnknownGrantType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| UnknownGrantType(s.to_owned()))
    }
}

/// A registered client with its allow-lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    /// Hex SHA-256 of the secret; `None` for public clients.
    #[serde(skip)]
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub created_at: i64,
    /// Users signing in to this client need a second factor (enrolling first if they have none).
    #[serde(default)]
    pub require_mfa: bool,
    /// The secret a rotation replaced, still accepted until its grace period ends.
    #[serde(skip)]
    pub previous_secret: Option<PreviousSecret>,
    /// A first-party client: its users are not asked for consent (OpenID Connect sign-ins
    /// included). Only an administrator sets it; dynamic registration never does.
    #[serde(default)]
    pub skip_consent: bool,
    /// Where RP-initiated logout may send the browser back to (OpenID Connect RP-Initiated
    /// Logout §2): exact matches only.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
}

/// A replaced client secret (its SHA-256) and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub hash: String,
    pub until: i64,
}

impl Client {
    pub fn is_confidential(&self) -> bool {
        self.secret_hash.is_some()
    }

    pub fn allows_grant(&self, grant_type: GrantType) -> bool {
        self.grant_types.contains(&grant_type)
    }

    /// The audience a token gets when the request names none: the client's first registered one.
    pub fn default_audience(&self) -> Option<&str> {
        self.audiences.first().map(String::as_str)
    }
}

/// What the rules need to know of a user when tokens are issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: UserId,
    pub roles: Vec<String>,
    /// False once an admin disabled the user.
    pub active: bool,
    /// The login name (OpenID Connect `preferred_username`).
    pub username: String,
    /// The OpenID Connect profile, for ID tokens and userinfo.
    pub profile: Profile,
}

/// A user's OpenID Connect profile as stored: the full name (scope `profile`), the e-mail
/// address and whether it was verified (scope `email`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
}

/// The state of a grant (refresh-token family) that its codes and tokens depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantState {
    /// Absolute end of the family: no refresh token from it lives longer.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// How the user authenticated for this grant (RFC 8176 `amr`), carried by its access tokens.
    pub amr: Vec<String>,
    /// When the user authenticated for this grant (OpenID Connect `auth_time`).
    pub auth_time: Option<i64>,
    /// The authorization request's `nonce`, echoed in the first ID token.
    pub nonce: Option<String>,
    /// The browser session that approved it (the ID token's `sid` is derived from it).
    pub session_hash: Option<String>,
}

impl GrantState {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// An authorization code as stored (its hash is the key), with its grant and user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub code_hash: String,
    pub grant_id: GrantId,
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub scope: String,
    pub audience: String,
    pub code_challenge: String,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
    pub grant: GrantState,
    pub user: Account,
}

/// A refresh token as stored (its hash is the key), with its grant and user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefresh {
    pub token_hash: String,
    pub grant_id: GrantId,
    pub client_id: ClientId,
    /// `None` for a token without a user (none are issued today; kept for the schema's sake).
    pub user_id: Option<UserId>,
    pub scope: String,
    pub audience: String,
    pub created_at: i64,
    /// min(created + idle timeout, the grant's absolute end).
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
    pub grant: GrantState,
    /// The token's user when it has one and it still exists.
    pub user: Option<Account>,
}

/// A refresh token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefresh {
    pub token_hash: String,
    pub grant_id: GrantId,
    pub client_id: ClientId,
    pub user_id: Option<UserId>,
    pub scope: String,
    pub audience: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A grant (refresh-token family) to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    pub id: GrantId,
    pub client_id: ClientId,
    pub user_id: Option<UserId>,
    /// The browser session whose login produced it; logging that session out revokes it.
    pub session_hash: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// How the user authenticated (RFC 8176 `amr`); empty for client_credentials.
    pub amr: Vec<String>,
    /// When the user authenticated (OpenID Connect `auth_time`); none without a browser sign-in.
    pub auth_time: Option<i64>,
    /// The authorization request's `nonce`, for its ID token.
    pub nonce: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_types_round_trip_their_names() {
        for g in GrantType::ALL {
            assert_eq!(g.as_str().parse::<GrantType>(), Ok(g));
            assert_eq!(
                serde_json::to_string(&g).unwrap(),
                format!("\"{}\"", g.as_str())
            );
        }
        assert!("implicit".parse::<GrantType>().is_err());
    }
}
