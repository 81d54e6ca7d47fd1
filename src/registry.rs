//! Registering clients and users: the checks shared by the CLI (and later the admin API).
//!
//! Every change is written to the audit log in its own transaction, by the operator.

use crate::audit::{Actor, AuditEvent, Entry, Outcome};
use crate::oauth::model::{Client, GrantType};
use crate::passwords::{self, Passwords};
use crate::secret::{new_id, PlainToken};
use crate::store::grants;
use crate::store::sessions::Session;
use crate::store::users::User;
use crate::store::{write_tx, AnyConnection};

/// What an admin asks for when registering a client.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub confidential: bool,
    /// Empty: the browser flow ([`GrantType::DEFAULT`]).
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// Users signing in to this client need a second factor.
    pub require_mfa: bool,
}

/// A registered client and, for confidential clients, its secret: shown this once, stored hashed.
#[derive(Debug)]
pub struct Registered {
    pub client: Client,
    pub secret: Option<PlainToken>,
}

/// A readable reason a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn invalid(msg: impl Into<String>) -> RegistryError {
    RegistryError::Invalid(msg.into())
}

/// A redirect URI must be absolute, https (or http on a loopback address), with no fragment and
/// no wildcard (checklist 55; RFC 9700 §2.1, RFC 8252 §7.3).
pub fn check_redirect_uri(uri: &str) -> Result<(), RegistryError> {
    let url = url::Url::parse(uri)
        .map_err(|_| invalid(format!("redirect URI {uri:?} is not an absolute URL")))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err(invalid(format!(
            "redirect URI {uri:?} must not have a fragment"
        )));
    }
    if uri.contains('*') {
        return Err(invalid(format!(
            "redirect URI {uri:?} must not contain a wildcard"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!(
            "redirect URI {uri:?} must not contain user information"
        )));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(invalid(format!(
            "redirect URI {uri:?} must use https (http only on 127.0.0.1, [::1] or localhost)"
        ))),
        other => Err(invalid(format!(
            "redirect URI scheme {other:?} is not allowed"
        ))),
    }
}

fn check_origin(origin: &str) -> Result<(), RegistryError> {
    let url =
        url::Url::parse(origin).map_err(|_| invalid(format!("origin {origin:?} is not a URL")))?;
    if url.origin().ascii_serialization() != origin {
        return Err(invalid(format!(
            "origin {origin:?} must be scheme://host[:port] with no path or trailing slash"
        )));
    }
    Ok(())
}

fn check_audience(aud: &str) -> Result<(), RegistryError> {
    let url = url::Url::parse(aud)
        .map_err(|_| invalid(format!("audience {aud:?} must be an absolute URI")))?;
    if url.fragment().is_some() {
        return Err(invalid(format!(
            "audience {aud:?} must not have a fragment"
        )));
    }
    Ok(())
}

fn dedup<T: Clone + PartialEq>(items: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(i) {
            out.push(i.clone());
        }
    }
    out
}

/// Checks a registration request and builds the client (not yet stored).
pub fn prepare_client(req: &NewClient, now: i64) -> Result<Registered, RegistryError> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(invalid(
            "the client name must be 1 to 100 printable characters",
        ));
    }
    let grant_types = if req.grant_types.is_empty() {
        GrantType::DEFAULT.to_vec()
    } else {
        dedup(&req.grant_types)
    };
    for g in &grant_types {
        // Public clients get the browser flow only (checklist 27, 28).
        if !req.confidential && !g.allowed_for_public_clients() {
            return Err(invalid(format!(
                "grant type {g} needs a confidential client (--confidential)"
            )));
        }
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && req.redirect_uris.is_empty() {
        return Err(invalid(
            "the authorization_code grant needs at least one --redirect-uri",
        ));
    }
    for uri in &req.redirect_uris {
        check_redirect_uri(uri)?;
    }
    for scope in &req.scopes {
        crate::oauth::scope::parse(scope)
            .map_err(|_| invalid(format!("scope {scope:?} is not a valid scope token")))?;
        if scope.contains(' ') {
            return Err(invalid(format!("give each scope separately: {scope:?}")));
        }
    }
    if req.audiences.is_empty() {
        return Err(invalid(
            "a client needs at least one --audience: the URI of the resource server its tokens are for",
        ));
    }
    for aud in &req.audiences {
        check_audience(aud)?;
    }
    for origin in &req.allowed_origins {
        check_origin(origin)?;
    }
    let secret = req.confidential.then(PlainToken::generate);
    Ok(Registered {
        client: Client {
            id: new_id("cl").into(),
            name: name.to_owned(),
            secret_hash: secret.as_ref().map(|s| s.hash().0),
            redirect_uris: dedup(&req.redirect_uris),
            grant_types,
            scopes: dedup(&req.scopes),
            audiences: dedup(&req.audiences),
            allowed_origins: dedup(&req.allowed_origins),
            created_at: now,
            require_mfa: req.require_mfa,
            previous_secret: None,
        },
        secret,
    })
}

/// An operator's change at `now`.
fn by_operator(event: AuditEvent, now: i64) -> Entry {
    Entry::new(event, Outcome::Success, Actor::Operator, now)
}

/// Registers a client.
pub fn create_client(
    conn: &mut AnyConnection,
    req: &NewClient,
    now: i64,
) -> Result<Registered, RegistryError> {
    let registered = prepare_client(req, now)?;
    let client = &registered.client;
    let entry = by_operator(AuditEvent::ClientCreated, now)
        .client(client.id.to_string())
        .detail(format!(
            "grant_types={}",
            client
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ));
    write_tx(conn, |conn| {
        client.insert(conn)?;
        crate::store::audit::record(conn, &entry)
    })?;
    Ok(registered)
}

/// The client id of the `/demo` page's client.
pub const DEMO_CLIENT_ID: &str = "cl_demo";

/// Registers the `/demo` page's public client for `issuer` (redirect URI `<issuer>/demo`, its own
/// origin, audience `<issuer>/demo-api`), or re-registers it when the issuer changed. Done by
/// `serve` at start when the demo is on; written to the audit log as Gatehouse's own change.
pub fn ensure_demo_client(
    conn: &mut AnyConnection,
    issuer: &str,
    now: i64,
) -> Result<(), RegistryError> {
    let redirect = format!("{issuer}/demo");
    let req = NewClient {
        name: "Gatehouse demo".into(),
        redirect_uris: vec![redirect.clone()],
        audiences: vec![format!("{issuer}/demo-api")],
        allowed_origins: vec![issuer.to_owned()],
        ..Default::default()
    };
    let mut client = prepare_client(&req, now)?.client;
    client.id = DEMO_CLIENT_ID.into();
    write_tx(conn, |conn| {
        if let Some(existing) = Client::find(conn, DEMO_CLIENT_ID)? {
            if existing.redirect_uris == client.redirect_uris {
                return Ok(());
            }
            Client::delete(conn, DEMO_CLIENT_ID)?;
        }
        client.insert(conn)?;
        crate::store::audit::record(
            conn,
            &Entry::new(
                AuditEvent::ClientCreated,
                Outcome::Success,
                Actor::System,
                now,
            )
            .client(DEMO_CLIENT_ID)
            .detail(format!("the /demo page's client, redirect URI {redirect}")),
        )
    })
    .map_err(RegistryError::from)
}

/// What an admin changes in a registered client; `None` keeps the current value, a list replaces
/// the current one.
#[derive(Debug, Clone, Default)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<GrantType>>,
    pub scopes: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    pub require_mfa: Option<bool>,
}

impl ClientChanges {
    /// The names of the fields this changes, for the audit log.
    fn fields(&self) -> Vec<&'static str> {
        [
            ("client_name", self.name.is_some()),
            ("redirect_uris", self.redirect_uris.is_some()),
            ("grant_types", self.grant_types.is_some()),
            ("scope", self.scopes.is_some()),
            ("audiences", self.audiences.is_some()),
            ("allowed_origins", self.allowed_origins.is_some()),
            ("require_mfa", self.require_mfa.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }
}

/// Changes a registered client, checked by the same rules as a registration; its id, secret and
/// creation time stay. Instances that remembered the client (`clients.cache_secs`) see the change
/// within that bound.
pub fn update_client(
    conn: &mut AnyConnection,
    client_id: &str,
    changes: ClientChanges,
    now: i64,
) -> Result<Client, RegistryError> {
    let fields = changes.fields();
    if fields.is_empty() {
        return Err(invalid("nothing to change: give at least one setting"));
    }
    write_tx(conn, |conn| {
        let current = Client::find(conn, client_id)?
            .ok_or_else(|| invalid(format!("no client with id {client_id:?}")))?;
        let req = NewClient {
            name: changes.name.unwrap_or_else(|| current.name.clone()),
            redirect_uris: changes
                .redirect_uris
                .unwrap_or_else(|| current.redirect_uris.clone()),
            confidential: current.is_confidential(),
            grant_types: changes
                .grant_types
                .unwrap_or_else(|| current.grant_types.clone()),
            scopes: changes.scopes.unwrap_or_else(|| current.scopes.clone()),
            audiences: changes
                .audiences
                .unwrap_or_else(|| current.audiences.clone()),
            allowed_origins: changes
                .allowed_origins
                .unwrap_or_else(|| current.allowed_origins.clone()),
            require_mfa: changes.require_mfa.unwrap_or(current.require_mfa),
        };
        let checked = prepare_client(&req, now)?.client;
        let updated = Client {
            id: current.id.clone(),
            secret_hash: current.secret_hash.clone(),
            previous_secret: current.previous_secret.clone(),
            created_at: current.created_at,
            ..checked
        };
        updated.update(conn)?;
        crate::store::audit::record(
            conn,
            &by_operator(AuditEvent::ClientUpdated, now)
                .client(client_id)
                .detail(format!("changed {}", fields.join(", "))),
        )?;
        Ok(updated)
    })
}

/// A new secret for a confidential client, shown this once. The old one keeps working for
/// `grace_secs` (0: it stops now), so the client's deployments can switch over; a secret replaced
/// earlier and still in its grace period stops now. Instances that remembered the client
/// (`clients.cache_secs`) may accept the old secret that much longer.
pub fn rotate_secret(
    conn: &mut AnyConnection,
    client_id: &str,
    grace_secs: i64,
    now: i64,
) -> Result<(Client, PlainToken), RegistryError> {
    if !(0..=30 * 86_400).contains(&grace_secs) {
        return Err(invalid("the grace period must be between 0 and 30 days"));
    }
    let secret = PlainToken::generate();
    write_tx(conn, |conn| {
        let mut client = Client::find(conn, client_id)?
            .ok_or_else(|| invalid(format!("no client with id {client_id:?}")))?;
        let Some(old) = client.secret_hash.clone() else {
            return Err(invalid(format!(
                "{client_id} is a public client: it has no secret to rotate"
            )));
        };
        client.secret_hash = Some(secret.hash().0);
        client.previous_secret = (grace_secs > 0).then(|| crate::oauth::model::PreviousSecret {
            hash: old,
            until: now + grace_secs,
        });
        client.update(conn)?;
        crate::store::audit::record(
            conn,
            &by_operator(AuditEvent::ClientSecretRotated, now)
                .client(client_id)
                .detail(format!("the old secret works {grace_secs} s more")),
        )?;
        Ok((client, secret))
    })
}

/// Deletes a client with its grants and tokens; false when there is none with this id.
pub fn delete_client(
    conn: &mut AnyConnection,
    client_id: &str,
    now: i64,
) -> Result<bool, RegistryError> {
    write_tx(conn, |conn| {
        if !Client::delete(conn, client_id)? {
            return Ok(false);
        }
        let entry = by_operator(AuditEvent::ClientDeleted, now).client(client_id);
        crate::store::audit::record(conn, &entry)?;
        Ok(true)
    })
}

/// Checks a username: 1–64 characters, no spaces or control characters.
pub fn check_username(name: &str) -> Result<(), RegistryError> {
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(
            "the username must be 1 to 64 characters without spaces",
        ));
    }
    Ok(())
}

fn check_role(role: &str) -> Result<(), RegistryError> {
    let ok = !role.is_empty()
        && role.len() <= 64
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "role {role:?} must be 1 to 64 of [A-Za-z0-9_-:.]"
        )))
    }
}

/// Creates a user with an argon2id password hash.
pub fn create_user(
    conn: &mut AnyConnection,
    passwords: &Passwords,
    username: &str,
    password: &str,
    roles: &[String],
    now: i64,
) -> Result<User, RegistryError> {
    check_username(username)?;
    passwords::check_new(password).map_err(RegistryError::Invalid)?;
    for r in roles {
        check_role(r)?;
    }
    if User::find_by_username(conn, username)?.is_some() {
        return Err(invalid(format!("a user named {username:?} already exists")));
    }
    let user = User {
        id: new_id("usr"),
        username: username.to_owned(),
        password_hash: passwords.hash(password)?,
        roles: dedup(roles),
        disabled_at: None,
        created_at: now,
    };
    let entry = by_operator(AuditEvent::UserCreated, now)
        .user(user.id.clone())
        .detail(format!("roles=[{}]", user.roles.join(",")));
    write_tx(conn, |conn| {
        user.insert(conn)?;
        crate::store::audit::record(conn, &entry)
    })?;
    Ok(user)
}

/// Ends everything a user holds: refresh-token families (and so, for introspection, their
/// access tokens) and browser sessions (checklist 21).
fn end_user_grants(conn: &mut AnyConnection, user_id: &str, now: i64) -> Result<(), RegistryError> {
    grants::revoke_all_for_user(conn, user_id, now)?;
    Session::delete_for_user(conn, user_id)?;
    Ok(())
}

/// The user with this login name, or a readable error naming it.
pub fn find_user(conn: &mut AnyConnection, username: &str) -> Result<User, RegistryError> {
    User::find_by_username(conn, username)?
        .ok_or_else(|| invalid(format!("no user named {username:?}")))
}

/// Replaces a user's roles. Access tokens issued from now on, refreshes included, carry them.
pub fn set_roles(
    conn: &mut AnyConnection,
    username: &str,
    roles: &[String],
    now: i64,
) -> Result<User, RegistryError> {
    for r in roles {
        check_role(r)?;
    }
    let roles = dedup(roles);
    write_tx(conn, |conn| {
        let mut user = find_user(conn, username)?;
        User::set_roles(conn, &user.id, &roles)?;
        let entry = by_operator(AuditEvent::RolesChanged, now)
            .user(user.id.clone())
            .detail(format!("roles=[{}]", roles.join(",")));
        crate::store::audit::record(conn, &entry)?;
        user.roles = roles;
        Ok(user)
    })
}

/// Most users one page of `list_users` holds.
pub const MAX_PAGE: i64 = 500;

/// One page of users by login name (`limit` at most [`MAX_PAGE`]), optionally those whose name
/// contains `search`.
pub fn list_users(
    conn: &mut AnyConnection,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<User>, RegistryError> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(invalid(format!(
            "the page size must be between 1 and {MAX_PAGE}"
        )));
    }
    if offset < 0 {
        return Err(invalid("the offset must not be negative"));
    }
    Ok(User::list(conn, search, limit, offset)?)
}

/// Enables a disabled user: they may sign in again (their ended grants stay ended).
pub fn enable_user(
    conn: &mut AnyConnection,
    username: &str,
    now: i64,
) -> Result<User, RegistryError> {
    write_tx(conn, |conn| {
        let mut user = find_user(conn, username)?;
        User::set_enabled(conn, &user.id)?;
        crate::store::audit::record(
            conn,
            &by_operator(AuditEvent::UserEnabled, now).user(user.id.clone()),
        )?;
        user.disabled_at = None;
        Ok(user)
    })
}

/// Deletes a user: every grant and session ends with them (foreign keys), their factors and
/// failure counts too. The audit log keeps the user's id.
pub fn delete_user(
    conn: &mut AnyConnection,
    username: &str,
    now: i64,
) -> Result<User, RegistryError> {
    write_tx(conn, |conn| {
        let user = find_user(conn, username)?;
        end_user_grants(conn, &user.id, now)?;
        User::delete(conn, &user.id)?;
        crate::store::audit::record(
            conn,
            &by_operator(AuditEvent::UserDeleted, now)
                .user(user.id.clone())
                .detail(format!("username={}", user.username)),
        )?;
        Ok(user)
    })
}

/// Disables a user: no more logins or refreshes, every grant and session ended.
pub fn disable_user(
    conn: &mut AnyConnection,
    username: &str,
    now: i64,
) -> Result<User, RegistryError> {
    write_tx(conn, |conn| {
        let user = find_user(conn, username)?;
        User::set_disabled(conn, &user.id, now)?;
        end_user_grants(conn, &user.id, now)?;
        crate::store::audit::record(
            conn,
            &by_operator(AuditEvent::UserDisabled, now).user(user.id.clone()),
        )?;
        Ok(user)
    })
}

/// Sets a new password (hashed before the transaction) and ends every grant and session.
pub fn set_password(
    conn: &mut AnyConnection,
    passwords: &Passwords,
    username: &str,
    password: &str,
    now: i64,
) -> Result<User, RegistryError> {
    passwords::check_new(password).map_err(RegistryError::Invalid)?;
    let hash = passwords.hash(password)?;
    write_tx(conn, |conn| {
        let user = find_user(conn, username)?;
        User::set_password_hash(conn, &user.id, &hash)?;
        end_user_grants(conn, &user.id, now)?;
        crate::store::audit::record(
            conn,
            &by_operator(AuditEvent::PasswordChanged, now).user(user.id.clone()),
        )?;
        Ok(user)
    })
}

/// Clears every failure counter and lock of a user (checklist 49): all devices, all factors.
/// Returns the user and how many counters there were.
pub fn unlock_user(
    conn: &mut AnyConnection,
    username: &str,
    now: i64,
) -> Result<(User, usize), RegistryError> {
    write_tx(conn, |conn| {
        let user = find_user(conn, username)?;
        let cleared = crate::store::lockout::delete_for_user(conn, &user.id)?;
        crate::store::audit::record(
            conn,
            &by_operator(AuditEvent::Unlocked, now)
                .user(user.id.clone())
                .detail(format!("cleared {cleared} failure counters")),
        )?;
        Ok((user, cleared))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_redirect_uris_validated() {
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:5173/cb").is_ok());
        assert!(check_redirect_uri("http://[::1]/cb").is_ok());
        assert!(check_redirect_uri("http://app.example/cb").is_err());
        assert!(check_redirect_uri("https://app.example/cb#x").is_err());
        assert!(check_redirect_uri("https://*.example/cb").is_err());
        assert!(check_redirect_uri("/cb").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        assert!(check_redirect_uri("https://user@app.example/cb").is_err());
        assert!(check_redirect_uri("com.example.app:/cb").is_err());
    }

    #[test]
    fn client_ids_are_server_generated_and_cannot_collide_with_users() {
        let req = NewClient {
            name: "SPA".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            audiences: vec!["https://api.example".into()],
            ..Default::default()
        };
        let a = prepare_client(&req, 0).unwrap();
        assert!(a.client.id.as_str().starts_with("cl_"));
        assert!(a.secret.is_none());
        assert!(!new_id("usr").starts_with("cl_"));
    }

    #[test]
    fn confidential_secret_stored_hashed() {
        let req = NewClient {
            name: "backend".into(),
            confidential: true,
            redirect_uris: vec!["https://app.example/cb".into()],
            audiences: vec!["https://api.example".into()],
            ..Default::default()
        };
        let r = prepare_client(&req, 0).unwrap();
        let secret = r.secret.unwrap();
        assert_eq!(
            r.client.secret_hash.as_deref(),
            Some(secret.hash().as_str())
        );
        assert_ne!(r.client.secret_hash.as_deref(), Some(secret.expose()));
    }
}
