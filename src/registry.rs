//! Registering clients and users: the one implementation behind the CLI, the admin API and the
//! admin console.
//!
//! Every change is written to the audit log in its own transaction, naming who made it ([`By`]).
//! A refusal names the fields at fault ([`Fault`]), in words that fit every caller.

use crate::audit::{Actor, AuditEvent, Entry, Outcome};
pub use crate::oauth::model::Profile;
use crate::oauth::model::{Client, GrantType};
use crate::passwords::Passwords;
use crate::secret::{new_id, PlainToken};
use crate::store::grants;
use crate::store::sessions::Session;
pub use crate::store::users::User;
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
    /// A first-party client: its users are not asked for consent. Only an administrator sets it.
    pub skip_consent: bool,
    /// Where RP-initiated logout may send the browser back to: exact URIs, checked like
    /// redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
}

/// A registered client and, for confidential clients, its secret: shown this once, stored hashed.
#[derive(Debug)]
pub struct Registered {
    pub client: Client,
    pub secret: Option<PlainToken>,
}

/// Who makes a change, and when: what the audit log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct By {
    pub actor: Actor,
    pub now: i64,
}

impl By {
    /// An administrator at the command line.
    pub fn operator(now: i64) -> By {
        By {
            actor: Actor::Operator,
            now,
        }
    }

    fn entry(&self, event: AuditEvent) -> Entry {
        Entry::new(event, Outcome::Success, self.actor.clone(), self.now)
    }
}

/// One thing wrong with a request: the field at fault (its RFC 7591 name for client metadata),
/// if one is, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fault {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    pub message: String,
}

/// A readable reason a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request is wrong: every fault found.
    #[error("{}", join_faults(.0))]
    Invalid(Vec<Fault>),
    /// No client or user with this id or name.
    #[error("{0}")]
    NotFound(String),
    /// A user with this name already exists.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn join_faults(faults: &[Fault]) -> String {
    faults
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

impl RegistryError {
    /// The faults of an invalid request (empty for the other kinds).
    pub fn faults(&self) -> &[Fault] {
        match self {
            RegistryError::Invalid(f) => f,
            _ => &[],
        }
    }
}

fn fault(field: &'static str, msg: impl Into<String>) -> Fault {
    Fault {
        field: Some(field),
        message: msg.into(),
    }
}

fn invalid(field: &'static str, msg: impl Into<String>) -> RegistryError {
    RegistryError::Invalid(vec![fault(field, msg)])
}

/// A refusal that is about no one field.
fn refused(msg: impl Into<String>) -> RegistryError {
    RegistryError::Invalid(vec![Fault {
        field: None,
        message: msg.into(),
    }])
}

fn no_client(client_id: &str) -> RegistryError {
    RegistryError::NotFound(format!("no client with id {client_id:?}"))
}

/// Which redirect URIs a client may register.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RedirectRule {
    /// https, or http on a loopback address: every client an administrator registers.
    #[default]
    Web,
    /// Also private-use URI schemes in reverse domain-name form (`com.example.app:/cb`, RFC 8252
    /// §7.1): public clients registered dynamically (native apps).
    Native,
}

/// A redirect URI must be absolute, https (or http on a loopback address), with no fragment and
/// no wildcard (checklist 55; RFC 9700 §2.1, RFC 8252 §7.3).
pub fn check_redirect_uri(uri: &str) -> Result<(), RegistryError> {
    check_redirect_uri_for(uri, RedirectRule::Web)
}

/// [`check_redirect_uri`], where [`RedirectRule::Native`] also accepts private-use URI schemes.
pub fn check_redirect_uri_for(uri: &str, rule: RedirectRule) -> Result<(), RegistryError> {
    check_uri(uri, rule, "redirect_uris", "redirect URI")
}

/// A post-logout redirect URI (OpenID Connect RP-Initiated Logout §3.1) follows the redirect
/// URIs' rule; a fault names `post_logout_redirect_uris`.
pub fn check_post_logout_redirect_uri_for(
    uri: &str,
    rule: RedirectRule,
) -> Result<(), RegistryError> {
    check_uri(
        uri,
        rule,
        "post_logout_redirect_uris",
        "post-logout redirect URI",
    )
}

/// The redirect rule for a URI of the list `field`, each called a `what` in messages.
fn check_uri(
    uri: &str,
    rule: RedirectRule,
    field: &'static str,
    what: &str,
) -> Result<(), RegistryError> {
    let invalid = |msg: String| invalid(field, msg);
    let url = url::Url::parse(uri)
        .map_err(|_| invalid(format!("{what} {uri:?} is not an absolute URL")))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err(invalid(format!("{what} {uri:?} must not have a fragment")));
    }
    if uri.contains('*') {
        return Err(invalid(format!(
            "{what} {uri:?} must not contain a wildcard"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!(
            "{what} {uri:?} must not contain user information"
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
        _ if rule == RedirectRule::Native
            && crate::oauth::registration::is_private_use_redirect(uri) =>
        {
            Ok(())
        }
        "http" => Err(invalid(format!(
            "{what} {uri:?} must use https (http only on 127.0.0.1, [::1] or localhost)"
        ))),
        other => Err(invalid(format!("{what} scheme {other:?} is not allowed"))),
    }
}

fn check_origin(origin: &str) -> Result<(), RegistryError> {
    let invalid = |msg: String| invalid("allowed_origins", msg);
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
    let invalid = |msg: String| invalid("audiences", msg);
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

/// Checks a registration request and builds the client (not yet stored). Every fault is
/// reported, each naming its field.
pub fn prepare_client(req: &NewClient, now: i64) -> Result<Registered, RegistryError> {
    prepare_client_with(req, now, RedirectRule::Web)
}

/// [`prepare_client`] with the redirect URIs checked by `rule`.
pub fn prepare_client_with(
    req: &NewClient,
    now: i64,
    rule: RedirectRule,
) -> Result<Registered, RegistryError> {
    let mut faults = Vec::new();
    let mut check = |r: Result<(), RegistryError>| {
        if let Err(RegistryError::Invalid(f)) = r {
            faults.extend(f);
        }
    };
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        check(Err(invalid(
            "client_name",
            "the client name must be 1 to 100 printable characters",
        )));
    }
    let grant_types = if req.grant_types.is_empty() {
        GrantType::DEFAULT.to_vec()
    } else {
        dedup(&req.grant_types)
    };
    for g in &grant_types {
        // Public clients get the browser flow only (checklist 27, 28).
        if !req.confidential && !g.allowed_for_public_clients() {
            check(Err(invalid(
                "grant_types",
                format!("grant type {g} needs a confidential client"),
            )));
        }
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && req.redirect_uris.is_empty() {
        check(Err(invalid(
            "redirect_uris",
            "the authorization_code grant needs at least one redirect URI",
        )));
    }
    for uri in &req.redirect_uris {
        check(check_redirect_uri_for(uri, rule));
    }
    for uri in &req.post_logout_redirect_uris {
        check(check_post_logout_redirect_uri_for(uri, rule));
    }
    for scope in &req.scopes {
        if scope.contains(' ') {
            check(Err(invalid(
                "scope",
                format!("give each scope separately: {scope:?}"),
            )));
        } else if crate::oauth::scope::parse(scope).is_err() {
            check(Err(invalid(
                "scope",
                format!("scope {scope:?} is not a valid scope token"),
            )));
        }
    }
    if req.audiences.is_empty() {
        check(Err(invalid(
            "audiences",
            "a client needs at least one audience: the URI of the resource server its tokens are for",
        )));
    }
    for aud in &req.audiences {
        check(check_audience(aud));
    }
    for origin in &req.allowed_origins {
        check(check_origin(origin));
    }
    if !faults.is_empty() {
        return Err(RegistryError::Invalid(faults));
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
            skip_consent: req.skip_consent,
            post_logout_redirect_uris: dedup(&req.post_logout_redirect_uris),
        },
        secret,
    })
}

/// Registers a client.
pub fn create_client(
    conn: &mut AnyConnection,
    req: &NewClient,
    by: &By,
) -> Result<Registered, RegistryError> {
    let registered = prepare_client(req, by.now)?;
    write_tx(conn, |conn| create_client_in(conn, &registered, by))?;
    Ok(registered)
}

/// Stores a client [`prepare_client`] built, with its audit entry, inside the caller's
/// transaction.
pub fn create_client_in(
    conn: &mut AnyConnection,
    registered: &Registered,
    by: &By,
) -> Result<(), RegistryError> {
    let client = &registered.client;
    let entry = by
        .entry(AuditEvent::ClientCreated)
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
    client.insert(conn)?;
    crate::store::audit::record(conn, &entry)?;
    Ok(())
}

/// The client with this id.
pub fn find_client(conn: &mut AnyConnection, client_id: &str) -> Result<Client, RegistryError> {
    Client::find(conn, client_id)?.ok_or_else(|| no_client(client_id))
}

/// Most clients or users one page holds.
pub const MAX_PAGE: i64 = 500;

/// One page of a list, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The offset of the next page; `None` on the last one.
    pub next_offset: Option<i64>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows read at `offset` (the extra row says another follows).
    fn of(mut rows: Vec<T>, limit: i64, offset: i64) -> Page<T> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        Page {
            next_offset: more.then_some(offset + limit),
            items: rows,
        }
    }
}

fn check_page(limit: i64, offset: i64) -> Result<(), RegistryError> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(invalid(
            "limit",
            format!("the page size must be between 1 and {MAX_PAGE}"),
        ));
    }
    if offset < 0 {
        return Err(invalid("offset", "the offset must not be negative"));
    }
    Ok(())
}

/// One page of clients by creation time (`limit` at most [`MAX_PAGE`]), optionally those whose id
/// or name contains `search` (any case).
pub fn list_clients(
    conn: &mut AnyConnection,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Page<Client>, RegistryError> {
    check_page(limit, offset)?;
    Ok(Page::of(
        Client::page(conn, search, limit + 1, offset)?,
        limit,
        offset,
    ))
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
    pub skip_consent: Option<bool>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
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
            ("skip_consent", self.skip_consent.is_some()),
            (
                "post_logout_redirect_uris",
                self.post_logout_redirect_uris.is_some(),
            ),
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
    by: &By,
) -> Result<Client, RegistryError> {
    write_tx(conn, |conn| update_client_in(conn, client_id, changes, by))
}

/// [`update_client`] inside the caller's transaction. A public client registered dynamically
/// keeps its right to private-use URI scheme redirects ([`RedirectRule::Native`]).
pub fn update_client_in(
    conn: &mut AnyConnection,
    client_id: &str,
    changes: ClientChanges,
    by: &By,
) -> Result<Client, RegistryError> {
    let fields = changes.fields();
    if fields.is_empty() {
        return Err(refused("nothing to change: give at least one setting"));
    }
    let current = find_client(conn, client_id)?;
    let rule = if !current.is_confidential()
        && crate::store::registrations::Registration::exists(conn, client_id)?
    {
        RedirectRule::Native
    } else {
        RedirectRule::Web
    };
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
        skip_consent: changes.skip_consent.unwrap_or(current.skip_consent),
        post_logout_redirect_uris: changes
            .post_logout_redirect_uris
            .unwrap_or_else(|| current.post_logout_redirect_uris.clone()),
    };
    let checked = prepare_client_with(&req, by.now, rule)?.client;
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
        &by.entry(AuditEvent::ClientUpdated)
            .client(client_id)
            .detail(format!("changed {}", fields.join(", "))),
    )?;
    Ok(updated)
}

/// Longest grace period a rotated secret may have.
pub const MAX_SECRET_GRACE_SECS: i64 = 30 * 86_400;

/// A new secret for a confidential client, shown this once. The old one keeps working for
/// `grace_secs` (0: it stops now), so the client's deployments can switch over; a secret replaced
/// earlier and still in its grace period stops now. Instances that remembered the client
/// (`clients.cache_secs`) may accept the old secret that much longer.
pub fn rotate_secret(
    conn: &mut AnyConnection,
    client_id: &str,
    grace_secs: i64,
    by: &By,
) -> Result<(Client, PlainToken), RegistryError> {
    if !(0..=MAX_SECRET_GRACE_SECS).contains(&grace_secs) {
        return Err(invalid(
            "grace_secs",
            "the grace period must be between 0 and 30 days",
        ));
    }
    let secret = PlainToken::generate();
    let now = by.now;
    write_tx(conn, |conn| {
        let mut client = find_client(conn, client_id)?;
        let Some(old) = client.secret_hash.clone() else {
            return Err(refused(format!(
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
            &by.entry(AuditEvent::ClientSecretRotated)
                .client(client_id)
                .detail(format!("the old secret works {grace_secs} s more")),
        )?;
        Ok((client, secret))
    })
}

/// Deletes a client with its grants and tokens (their refresh tokens stop at once; their access
/// tokens fail introspection); false when there is none with this id.
pub fn delete_client(
    conn: &mut AnyConnection,
    client_id: &str,
    by: &By,
) -> Result<bool, RegistryError> {
    write_tx(conn, |conn| delete_client_in(conn, client_id, by))
}

/// [`delete_client`] inside the caller's transaction (its dynamic registration goes too).
pub fn delete_client_in(
    conn: &mut AnyConnection,
    client_id: &str,
    by: &By,
) -> Result<bool, RegistryError> {
    if !Client::delete(conn, client_id)? {
        return Ok(false);
    }
    let entry = by.entry(AuditEvent::ClientDeleted).client(client_id);
    crate::store::audit::record(conn, &entry)?;
    Ok(true)
}

/// Checks a username: 1–64 characters, no spaces or control characters.
pub fn check_username(name: &str) -> Result<(), RegistryError> {
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(
            "username",
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
        Err(invalid(
            "roles",
            format!("role {role:?} must be 1 to 64 of [A-Za-z0-9_-:.]"),
        ))
    }
}

/// A user, by id (the admin API and console) or by login name (the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRef<'a> {
    Id(&'a str),
    Name(&'a str),
}

impl<'a> From<&'a str> for UserRef<'a> {
    /// A bare string is a login name.
    fn from(name: &'a str) -> UserRef<'a> {
        UserRef::Name(name)
    }
}

impl<'a> From<&'a String> for UserRef<'a> {
    fn from(name: &'a String) -> UserRef<'a> {
        UserRef::Name(name)
    }
}

/// The longest full name a profile keeps, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest e-mail address, in characters (RFC 5321's longest forward path, less its
/// angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;

fn check_name(name: &str) -> Result<(), Fault> {
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(fault(
            "name",
            format!("the name must be at most {MAX_NAME_CHARS} printable characters"),
        ));
    }
    Ok(())
}

/// A plausible address: what a person could have typed, not a proof that it receives mail.
fn check_email(email: &str) -> Result<(), Fault> {
    let bad = |why: &str| Err(fault("email", format!("the e-mail address {why}")));
    if email.chars().count() > MAX_EMAIL_CHARS {
        return bad(&format!("must be at most {MAX_EMAIL_CHARS} characters"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => bad("must be one name, one @ and a domain, like someone@example.com"),
    }
}

/// Checks a user's profile and returns it tidied: the name and the address without surrounding
/// spaces, an empty one as none. `email_verified` needs an address. Every fault names its field
/// (`name`, `email`, `email_verified`, the OpenID Connect claims they are released as).
pub fn check_profile(profile: &Profile) -> Result<Profile, RegistryError> {
    let tidy = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let checked = Profile {
        name: tidy(&profile.name),
        email: tidy(&profile.email),
        email_verified: profile.email_verified,
    };
    let mut faults = Vec::new();
    if let Some(Err(f)) = checked.name.as_deref().map(check_name) {
        faults.push(f);
    }
    if let Some(Err(f)) = checked.email.as_deref().map(check_email) {
        faults.push(f);
    }
    if checked.email_verified && checked.email.is_none() {
        faults.push(fault(
            "email_verified",
            "an e-mail address can be marked verified only when there is one",
        ));
    }
    if faults.is_empty() {
        Ok(checked)
    } else {
        Err(RegistryError::Invalid(faults))
    }
}

/// What an administrator changes in a user's profile: `None` keeps the current value,
/// `Some(None)` clears it. A new or cleared address is unverified unless `email_verified` says
/// otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChanges {
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub email_verified: Option<bool>,
}

impl ProfileChanges {
    /// The names of the fields this changes, for the audit log (never their values).
    fn fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("email", self.email.is_some()),
            ("email_verified", self.email_verified.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }

    /// `current` with these changes, checked by [`check_profile`].
    pub fn apply(&self, current: &Profile) -> Result<Profile, RegistryError> {
        let name = self.name.clone().unwrap_or_else(|| current.name.clone());
        let email = match &self.email {
            Some(email) => email.as_deref().map(str::trim).map(str::to_owned),
            None => current.email.clone(),
        };
        let same_address = email.as_deref().filter(|e| !e.is_empty()) == current.email.as_deref();
        let email_verified = self
            .email_verified
            .unwrap_or(current.email_verified && same_address);
        check_profile(&Profile {
            name,
            email,
            email_verified,
        })
    }
}

/// Creates a user with an argon2id password hash and the given profile ([`check_profile`]).
pub fn create_user(
    conn: &mut AnyConnection,
    passwords: &Passwords,
    username: &str,
    password: &str,
    roles: &[String],
    profile: &Profile,
    by: &By,
) -> Result<User, RegistryError> {
    let mut faults = Vec::new();
    if let Err(RegistryError::Invalid(f)) = check_username(username) {
        faults.extend(f);
    }
    if let Err(msg) = passwords.check_new(password) {
        faults.push(fault("password", msg));
    }
    for r in roles {
        if let Err(RegistryError::Invalid(f)) = check_role(r) {
            faults.extend(f);
        }
    }
    let profile = match check_profile(profile) {
        Ok(p) => p,
        Err(e) => {
            faults.extend(e.faults().iter().cloned());
            Profile::default()
        }
    };
    if !faults.is_empty() {
        return Err(RegistryError::Invalid(faults));
    }
    if let Some(existing) = User::find_by_username(conn, username)? {
        return Err(name_taken(&existing));
    }
    let user = User {
        id: new_id("usr"),
        username: username.to_owned(),
        password_hash: passwords.hash(password)?,
        roles: dedup(roles),
        disabled_at: None,
        created_at: by.now,
        profile,
    };
    let given: Vec<&str> = [
        ("name", user.profile.name.is_some()),
        ("email", user.profile.email.is_some()),
        ("email_verified", user.profile.email_verified),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect();
    let entry = by
        .entry(AuditEvent::UserCreated)
        .user(user.id.clone())
        .detail(format!(
            "roles=[{}] profile=[{}]",
            user.roles.join(","),
            given.join(",")
        ));
    write_tx(conn, |conn| {
        if let Some(existing) = User::find_by_username(conn, username)? {
            return Err(name_taken(&existing));
        }
        user.insert(conn).map_err(|e| match e {
            // A concurrent creation of the same name (any case) lost to the unique index.
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => RegistryError::Conflict(format!(
                "a user named {username:?} already exists (login names ignore letter case)"
            )),
            other => RegistryError::Database(other),
        })?;
        crate::store::audit::record(conn, &entry)?;
        Ok(())
    })?;
    Ok(user)
}

/// The refusal of a login name that an existing user has, in any letter case.
fn name_taken(existing: &User) -> RegistryError {
    RegistryError::Conflict(format!(
        "a user named {:?} already exists (login names ignore letter case)",
        existing.username
    ))
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
    find(conn, UserRef::Name(username))
}

/// The user with this id or name, or a readable error naming it.
pub fn find<'a>(
    conn: &mut AnyConnection,
    user: impl Into<UserRef<'a>>,
) -> Result<User, RegistryError> {
    match user.into() {
        UserRef::Name(name) => User::find_by_username(conn, name)?
            .ok_or_else(|| RegistryError::NotFound(format!("no user named {name:?}"))),
        UserRef::Id(id) => User::find(conn, id)?
            .ok_or_else(|| RegistryError::NotFound(format!("no user with id {id:?}"))),
    }
}

/// Replaces a user's roles. Access tokens issued from now on, refreshes included, carry them.
pub fn set_roles<'a>(
    conn: &mut AnyConnection,
    user: impl Into<UserRef<'a>>,
    roles: &[String],
    by: &By,
) -> Result<User, RegistryError> {
    for r in roles {
        check_role(r)?;
    }
    let roles = dedup(roles);
    let user = user.into();
    write_tx(conn, |conn| {
        let mut user = find(conn, user)?;
        User::set_roles(conn, &user.id, &roles)?;
        let entry = by
            .entry(AuditEvent::RolesChanged)
            .user(user.id.clone())
            .detail(format!("roles=[{}]", roles.join(",")));
        crate::store::audit::record(conn, &entry)?;
        user.roles = roles;
        Ok(user)
    })
}

/// Changes a user's profile (name, e-mail address, whether it was verified), checked by
/// [`check_profile`]; ID tokens and userinfo answers from now on carry it. The audit log names
/// the fields changed, not their values.
pub fn set_profile<'a>(
    conn: &mut AnyConnection,
    user: impl Into<UserRef<'a>>,
    changes: &ProfileChanges,
    by: &By,
) -> Result<User, RegistryError> {
    let fields = changes.fields();
    if fields.is_empty() {
        return Err(refused(
            "nothing to change: give a name, an e-mail address or whether it is verified",
        ));
    }
    let user = user.into();
    write_tx(conn, |conn| {
        let mut user = find(conn, user)?;
        let profile = changes.apply(&user.profile)?;
        User::set_profile(conn, &user.id, &profile)?;
        let entry = by
            .entry(AuditEvent::ProfileChanged)
            .user(user.id.clone())
            .detail(format!("changed {}", fields.join(", ")));
        crate::store::audit::record(conn, &entry)?;
        user.profile = profile;
        Ok(user)
    })
}

/// One page of users by login name (`limit` at most [`MAX_PAGE`]), optionally those whose name
/// contains `search`.
pub fn list_users(
    conn: &mut AnyConnection,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Page<User>, RegistryError> {
    check_page(limit, offset)?;
    Ok(Page::of(
        User::list(conn, search, limit + 1, offset)?,
        limit,
        offset,
    ))
}

/// Whether a user has an active TOTP factor.
pub fn has_totp(conn: &mut AnyConnection, user_id: &str) -> Result<bool, RegistryError> {
    Ok(crate::store::mfa::TotpFactor::is_enrolled(conn, user_id)?)
}

/// Enables a disabled user: they may sign in again (their ended grants stay ended).
pub fn enable_user<'a>(
    conn: &mut AnyConnection,
    user: impl Into<UserRef<'a>>,
    by: &By,
) -> Result<User, RegistryError> {
    let user = user.into();
    write_tx(conn, |conn| {
        let mut user = find(conn, user)?;
        User::set_enabled(conn, &user.id)?;
        crate::store::audit::record(
            conn,
            &by.entry(AuditEvent::UserEnabled).user(user.id.clone()),
        )?;
        user.disabled_at = None;
        Ok(user)
    })
}

/// Deletes a user: every grant and session ends with them (foreign keys), their factors and
/// failure counts too. The audit log keeps the user's id.
pub fn delete_user<'a>(
    conn: &mut AnyConnection,
    user: impl Into<UserRef<'a>>,
    by: &By,
) -> Result<User, RegistryError> {
    let user = user.into();
    write_tx(conn, |conn| {
        let user = find(conn, user)?;
        end_user_grants(conn, &user.id, by.now)?;
        User::delete(conn, &user.id)?;
        crate::store::audit::record(
            conn,
            &by.entry(AuditEvent::UserDeleted)
                .user(user.id.clone())
                .detail(format!("username={}", user.username)),
        )?;
        Ok(user)
    })
}

/// Disables a user: no more logins or refreshes, every grant and session ended.
pub fn disable_user<'a>(
    conn: &mut AnyConnection,
    user: impl Into<UserRef<'a>>,
    by: &By,
) -> Result<User, RegistryError> {
    let user = user.into();
    write_tx(conn, |conn| {
        let mut user = find(conn, user)?;
        User::set_disabled(conn, &user.id, by.now)?;
        end_user_grants(conn, &user.id, by.now)?;
        crate::store::audit::record(
            conn,
            &by.entry(AuditEvent::UserDisabled).user(user.id.clone()),
        )?;
        user.disabled_at = Some(by.now);
        Ok(user)
    })
}

/// Sets a new password (hashed before the transaction) and ends every grant and session.
pub fn set_password<'a>(
    conn: &mut AnyConnection,
    passwords: &Passwords,
    user: impl Into<UserRef<'a>>,
    password: &str,
    by: &By,
) -> Result<User, RegistryError> {
    passwords
        .check_new(password)
        .map_err(|msg| invalid("password", msg))?;
    let hash = passwords.hash(password)?;
    let user = user.into();
    write_tx(conn, |conn| {
        let user = find(conn, user)?;
        User::set_password_hash(conn, &user.id, &hash)?;
        end_user_grants(conn, &user.id, by.now)?;
        crate::store::audit::record(
            conn,
            &by.entry(AuditEvent::PasswordChanged).user(user.id.clone()),
        )?;
        Ok(user)
    })
}

/// Clears every failure counter and lock of a user (checklist 49): all devices, all factors.
/// Returns the user and how many counters there were.
pub fn unlock_user<'a>(
    conn: &mut AnyConnection,
    user: impl Into<UserRef<'a>>,
    by: &By,
) -> Result<(User, usize), RegistryError> {
    let user = user.into();
    write_tx(conn, |conn| {
        let user = find(conn, user)?;
        let cleared = crate::store::lockout::delete_for_user(conn, &user.id)?;
        crate::store::audit::record(
            conn,
            &by.entry(AuditEvent::Unlocked)
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
    fn native_rule_adds_private_use_schemes_only() {
        let native = |u| check_redirect_uri_for(u, RedirectRule::Native).is_ok();
        assert!(native("com.example.app:/cb"));
        assert!(native("https://app.example/cb"));
        assert!(!native("com.example.app:/cb#x"));
        assert!(!native("myapp:/cb"));
        assert!(!native("javascript:alert(1)"));
        assert!(!native("http://app.example/cb"));
    }

    #[test]
    fn post_logout_redirect_uris_follow_the_redirect_rule() {
        let req = NewClient {
            name: "SPA".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            audiences: vec!["https://api.example".into()],
            post_logout_redirect_uris: vec![
                "https://app.example/bye".into(),
                "http://127.0.0.1:5173/bye".into(),
                "https://app.example/bye".into(),
            ],
            skip_consent: true,
            ..Default::default()
        };
        let client = prepare_client(&req, 0).unwrap().client;
        assert!(client.skip_consent);
        assert_eq!(
            client.post_logout_redirect_uris,
            vec!["https://app.example/bye", "http://127.0.0.1:5173/bye"],
            "exact strings, deduplicated"
        );

        let bad = NewClient {
            post_logout_redirect_uris: vec![
                "http://app.example/bye".into(),
                "https://app.example/bye#x".into(),
                "https://*.example/bye".into(),
                "com.example.app:/bye".into(),
            ],
            ..req.clone()
        };
        let err = prepare_client(&bad, 0).unwrap_err();
        let faults = err.faults();
        assert_eq!(faults.len(), 4, "{faults:?}");
        assert!(faults
            .iter()
            .all(|f| f.field == Some("post_logout_redirect_uris")
                && f.message.starts_with("post-logout redirect URI")));
        // A public client registered dynamically may return to its native app's scheme.
        let native = prepare_client_with(
            &NewClient {
                post_logout_redirect_uris: vec!["com.example.app:/bye".into()],
                ..req
            },
            0,
            RedirectRule::Native,
        );
        assert!(native.is_ok());
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

    fn profile(name: Option<&str>, email: Option<&str>, verified: bool) -> Profile {
        Profile {
            name: name.map(str::to_owned),
            email: email.map(str::to_owned),
            email_verified: verified,
        }
    }

    fn fields_at_fault(r: Result<Profile, RegistryError>) -> Vec<&'static str> {
        r.unwrap_err()
            .faults()
            .iter()
            .filter_map(|f| f.field)
            .collect()
    }

    #[test]
    fn profile_name_is_trimmed_bounded_and_printable() {
        let ok = check_profile(&profile(Some("  Alice Liddell "), None, false)).unwrap();
        assert_eq!(ok.name.as_deref(), Some("Alice Liddell"));
        assert_eq!(
            check_profile(&profile(Some("   "), None, false))
                .unwrap()
                .name,
            None
        );
        let longest = "é".repeat(MAX_NAME_CHARS);
        assert!(check_profile(&profile(Some(&longest), None, false)).is_ok());
        let too_long = "a".repeat(MAX_NAME_CHARS + 1);
        for bad in [too_long.as_str(), "Alice\u{0}", "Al\nice", "Al\u{7f}ice"] {
            let r = check_profile(&profile(Some(bad), None, false));
            assert_eq!(fields_at_fault(r), ["name"], "{bad:?}");
        }
    }

    #[test]
    fn profile_email_is_one_plausible_address() {
        for good in ["alice@example.com", " a@b ", "a.b+c@d.example"] {
            assert!(
                check_profile(&profile(None, Some(good), true)).is_ok(),
                "{good}"
            );
        }
        let too_long = format!("{}@example.com", "a".repeat(MAX_EMAIL_CHARS));
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "al ice@example.com",
            "alice@exa\tmple.com",
            too_long.as_str(),
        ] {
            let r = check_profile(&profile(None, Some(bad), false));
            assert_eq!(fields_at_fault(r), ["email"], "{bad:?}");
        }
    }

    #[test]
    fn email_verified_needs_an_address() {
        let r = check_profile(&profile(None, None, true));
        assert_eq!(fields_at_fault(r), ["email_verified"]);
        let r = check_profile(&profile(Some("\u{1b}"), Some("x"), true));
        assert_eq!(fields_at_fault(r), ["name", "email"]);
    }

    #[test]
    fn clearing_or_changing_the_email_clears_verified() {
        let current = profile(Some("Alice"), Some("alice@example.com"), true);
        let cleared = ProfileChanges {
            email: Some(None),
            ..Default::default()
        }
        .apply(&current)
        .unwrap();
        assert_eq!((cleared.email, cleared.email_verified), (None, false));
        assert_eq!(cleared.name.as_deref(), Some("Alice"));
        let moved = ProfileChanges {
            email: Some(Some("alice@new.example".into())),
            ..Default::default()
        }
        .apply(&current)
        .unwrap();
        assert!(!moved.email_verified);
        let same = ProfileChanges {
            email: Some(Some(" alice@example.com ".into())),
            name: Some(None),
            ..Default::default()
        }
        .apply(&current)
        .unwrap();
        assert!(same.email_verified);
        assert_eq!(same.name, None);
        let contradiction = ProfileChanges {
            email: Some(None),
            email_verified: Some(true),
            ..Default::default()
        };
        assert_eq!(
            fields_at_fault(contradiction.apply(&current)),
            ["email_verified"]
        );
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
