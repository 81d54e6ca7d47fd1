//! The admin console's service (`/admin`): who may enter, the CSRF token of its forms, and what
//! each page reads and changes.
//!
//! Entry: an active user whose roles (read from the database at every request, so a disabled or
//! demoted admin is out at once) include `admin` and whose session signed in with a second
//! factor (`mfa::admin_may_enter`). Every change goes through `registry`, `flows::admin` or
//! `flows::mfa`, the one implementation the command line and the admin API share, and is
//! audited as the administrator's.

use crate::audit::Actor;
use crate::error::AppError;
use crate::flows::admin::{self, AuditPage, AuditQuery};
use crate::keys::KeyInfo;
use crate::mfa;
use crate::oauth::model::{Client, GrantType};
use crate::oauth::params::Params;
use crate::registry::{
    self, By, ClientChanges, Fault, NewClient, ProfileChanges, RegistryError, UserRef,
};
use crate::secret::{constant_time_eq, hmac_b64, PlainToken, TokenHash};
use crate::state::AppState;
use crate::store::mfa::TotpFactor;
use crate::store::sessions::Session;
use crate::store::users::User;
use crate::store::AnyConnection;

/// The console's front page.
pub const HOME: &str = "/admin";
/// Clients or users one list page shows.
pub const PAGE_SIZE: i64 = 100;
/// Audit events one page shows.
pub const AUDIT_PAGE_SIZE: i64 = 50;

/// The console path `input` names, if it is one: the only place a sign-in started by the console
/// returns to (checklist 48: never another site, never another part of this one). Console paths
/// are `/admin` and below, without `//`, `..`, backslashes or anything but printable ASCII; the
/// admin API under `/admin/api/` is not a page and is refused.
pub fn return_path(input: &str) -> Option<String> {
    let console = input == HOME || input.starts_with("/admin/") || input.starts_with("/admin?");
    let ok = console
        && input.len() <= 512
        && !input.starts_with("/admin/api")
        && !input.contains("//")
        && !input.contains("..")
        && input.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    ok.then(|| input.to_owned())
}

/// An administrator allowed in at this request.
#[derive(Debug, Clone)]
pub struct Admin {
    pub user: User,
    /// The CSRF token of the console's forms, bound to the session.
    pub csrf: String,
}

impl Admin {
    /// Whether a form carries this session's CSRF token (checklist 42).
    pub fn csrf_ok(&self, form: &Params) -> bool {
        form.get("csrf")
            .is_some_and(|c| constant_time_eq(c, &self.csrf))
    }

    fn by(&self, now: i64) -> By {
        By {
            actor: Actor::User(self.user.id.clone()),
            now,
        }
    }
}

/// Who is at the console's door.
#[derive(Debug)]
pub enum Gate {
    Admin(Admin),
    /// No signed-in session, or an administrator whose session has no second factor: sign in
    /// (again) with one.
    SignIn,
    /// Signed in, but not an administrator.
    NotAdmin,
}

fn csrf(state: &AppState, session_hash: &str) -> String {
    hmac_b64(&state.csrf_key, &["admin-console", session_hash])
}

/// Who the session cookie belongs to, as the console lets them in.
pub async fn admit(state: &AppState, cookie: Option<&str>) -> Result<Gate, AppError> {
    let Some(cookie) = cookie else {
        return Ok(Gate::SignIn);
    };
    let session_hash = TokenHash::of(cookie).0;
    let now = state.clock.now();
    let lookup = session_hash.clone();
    let found = state
        .db(move |conn| {
            let Some(session) = Session::find_live(conn, &lookup, now)? else {
                return Ok::<_, AppError>(None);
            };
            let Some(user_id) = &session.user_id else {
                return Ok(None);
            };
            let user = User::find(conn, user_id)?.filter(User::is_active);
            Ok(user.map(|u| (u, session.amr_list())))
        })
        .await?;
    let Some((user, amr)) = found else {
        return Ok(Gate::SignIn);
    };
    if mfa::admin_may_enter(&user.roles, &amr) {
        return Ok(Gate::Admin(Admin {
            csrf: csrf(state, &session_hash),
            user,
        }));
    }
    Ok(if is_admin(&user) {
        Gate::SignIn
    } else {
        Gate::NotAdmin
    })
}

fn is_admin(user: &User) -> bool {
    user.roles.iter().any(|r| r == mfa::ADMIN_ROLE)
}

/// Why a console action changed nothing, in words for the page.
#[derive(Debug)]
pub enum Refused {
    /// The input is wrong: each fault names its field (or none).
    Invalid(Vec<Fault>),
    NotFound,
    /// A conflict, or a step the console does not take.
    Conflict(String),
}

/// An action's answer: done, refused, or an internal error.
pub type Done<T> = Result<Result<T, Refused>, AppError>;

fn refused<T>(e: RegistryError) -> Done<T> {
    match e {
        RegistryError::Invalid(f) => Ok(Err(Refused::Invalid(f))),
        RegistryError::NotFound(_) => Ok(Err(Refused::NotFound)),
        RegistryError::Conflict(m) => Ok(Err(Refused::Conflict(m))),
        RegistryError::Database(e) => Err(e.into()),
        RegistryError::Other(e) => Err(e.into()),
    }
}

/// Runs a registry step in the blocking pool.
async fn run<T, F>(state: &AppState, f: F) -> Done<T>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, RegistryError> + Send + 'static,
    T: Send + 'static,
{
    match state.db(move |conn| Ok::<_, AppError>(f(conn))).await? {
        Ok(v) => Ok(Ok(v)),
        Err(e) => refused(e),
    }
}

// --- clients

/// A client form as the administrator typed it, kept to show again with its faults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientForm {
    pub client_name: String,
    /// One per line.
    pub redirect_uris: String,
    /// The checked grant types' names.
    pub grant_types: Vec<String>,
    /// Space-separated.
    pub scope: String,
    /// One per line.
    pub audiences: String,
    /// One per line.
    pub allowed_origins: String,
    /// Only when registering: a client's kind does not change.
    pub confidential: bool,
    pub require_mfa: bool,
    /// A first-party client: its users are not asked for consent.
    pub skip_consent: bool,
    /// One per line.
    pub post_logout_redirect_uris: String,
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The form field of a grant type's checkbox.
pub fn grant_type_field(g: GrantType) -> String {
    format!("grant_type_{}", g.as_str())
}

impl ClientForm {
    pub fn from_params(p: &Params) -> ClientForm {
        let text = |name| p.get(name).unwrap_or("").to_owned();
        ClientForm {
            client_name: text("client_name"),
            redirect_uris: text("redirect_uris"),
            grant_types: GrantType::ALL
                .into_iter()
                .filter(|g| p.contains(&grant_type_field(*g)))
                .map(|g| g.as_str().to_owned())
                .collect(),
            scope: text("scope"),
            audiences: text("audiences"),
            allowed_origins: text("allowed_origins"),
            confidential: p.contains("confidential"),
            require_mfa: p.contains("require_mfa"),
            skip_consent: p.contains("skip_consent"),
            post_logout_redirect_uris: text("post_logout_redirect_uris"),
        }
    }

    pub fn of(client: &Client) -> ClientForm {
        ClientForm {
            client_name: client.name.clone(),
            redirect_uris: client.redirect_uris.join("\n"),
            grant_types: client
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            scope: client.scopes.join(" "),
            audiences: client.audiences.join("\n"),
            allowed_origins: client.allowed_origins.join("\n"),
            confidential: client.is_confidential(),
            require_mfa: client.require_mfa,
            skip_consent: client.skip_consent,
            post_logout_redirect_uris: client.post_logout_redirect_uris.join("\n"),
        }
    }

    fn grant_types(&self) -> Vec<GrantType> {
        self.grant_types
            .iter()
            .filter_map(|g| g.parse().ok())
            .collect()
    }

    fn registration(&self) -> NewClient {
        NewClient {
            name: self.client_name.clone(),
            redirect_uris: lines(&self.redirect_uris),
            confidential: self.confidential,
            grant_types: self.grant_types(),
            scopes: self.scope.split_whitespace().map(str::to_owned).collect(),
            audiences: lines(&self.audiences),
            allowed_origins: lines(&self.allowed_origins),
            require_mfa: self.require_mfa,
            skip_consent: self.skip_consent,
            post_logout_redirect_uris: lines(&self.post_logout_redirect_uris),
        }
    }

    /// What differs from `current`: only those fields change (and the audit log names them).
    fn changes(&self, current: &Client) -> ClientChanges {
        let new = self.registration();
        let differs = |a: &Vec<String>, b: &Vec<String>| (a != b).then(|| a.clone());
        ClientChanges {
            name: (new.name.trim() != current.name).then(|| new.name.clone()),
            redirect_uris: differs(&new.redirect_uris, &current.redirect_uris),
            grant_types: (new.grant_types != current.grant_types).then(|| new.grant_types.clone()),
            scopes: differs(&new.scopes, &current.scopes),
            audiences: differs(&new.audiences, &current.audiences),
            allowed_origins: differs(&new.allowed_origins, &current.allowed_origins),
            require_mfa: (new.require_mfa != current.require_mfa).then_some(new.require_mfa),
            skip_consent: (new.skip_consent != current.skip_consent).then_some(new.skip_consent),
            post_logout_redirect_uris: differs(
                &new.post_logout_redirect_uris,
                &current.post_logout_redirect_uris,
            ),
        }
    }
}

/// One page of clients, those whose id or name contains `search` when given.
pub async fn clients(state: &AppState, search: Option<String>) -> Done<registry::Page<Client>> {
    run(state, move |conn| {
        registry::list_clients(conn, search.as_deref(), PAGE_SIZE, 0)
    })
    .await
}

/// The client with this id.
pub async fn client(state: &AppState, client_id: String) -> Done<Client> {
    run(state, move |conn| registry::find_client(conn, &client_id)).await
}

/// Registers the client the form describes; a confidential client's secret comes back this once.
pub async fn create_client(
    state: &AppState,
    admin: &Admin,
    form: &ClientForm,
) -> Done<registry::Registered> {
    let req = form.registration();
    let by = admin.by(state.clock.now());
    run(state, move |conn| registry::create_client(conn, &req, &by)).await
}

/// Changes a client to what the form says.
pub async fn update_client(
    state: &AppState,
    admin: &Admin,
    client_id: String,
    form: &ClientForm,
) -> Done<Client> {
    let by = admin.by(state.clock.now());
    let form = form.clone();
    let changed = client_id.clone();
    let done = run(state, move |conn| {
        let current = registry::find_client(conn, &client_id)?;
        registry::update_client(conn, &client_id, form.changes(&current), &by)
    })
    .await;
    super::admin::client_changed(state, &changed);
    done
}

/// A new secret for a confidential client, shown this once; the old one works `grace_secs` more.
pub async fn rotate_secret(
    state: &AppState,
    admin: &Admin,
    client_id: String,
    grace_secs: i64,
) -> Done<(Client, PlainToken)> {
    let by = admin.by(state.clock.now());
    let done = run(state, {
        let client_id = client_id.clone();
        move |conn| registry::rotate_secret(conn, &client_id, grace_secs, &by)
    })
    .await;
    super::admin::client_changed(state, &client_id);
    done
}

/// Deletes a client; its grants and tokens go with it.
pub async fn delete_client(state: &AppState, admin: &Admin, client_id: String) -> Done<()> {
    let by = admin.by(state.clock.now());
    let changed = client_id.clone();
    let done = run(state, move |conn| {
        registry::delete_client(conn, &client_id, &by)
    })
    .await;
    super::admin::client_changed(state, &changed);
    match done? {
        Ok(true) => Ok(Ok(())),
        Ok(false) => Ok(Err(Refused::NotFound)),
        Err(r) => Ok(Err(r)),
    }
}

// --- users

/// A user as the console shows them.
#[derive(Debug, Clone)]
pub struct UserView {
    pub user: User,
    /// TOTP is set up (active).
    pub totp: bool,
}

/// One page of users by login name, those whose name contains `search` when given.
pub async fn users(state: &AppState, search: Option<String>) -> Done<registry::Page<User>> {
    run(state, move |conn| {
        registry::list_users(conn, search.as_deref(), PAGE_SIZE, 0)
    })
    .await
}

/// The user with this id.
pub async fn user(state: &AppState, user_id: String) -> Done<UserView> {
    run(state, move |conn| {
        let user = registry::find(conn, UserRef::Id(&user_id))?;
        let totp = TotpFactor::is_enrolled(conn, &user.id)?;
        Ok(UserView { user, totp })
    })
    .await
}

/// What the console does to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAction {
    /// Replace the roles.
    Roles(Vec<String>),
    /// Change the name, the e-mail address and whether it is verified.
    Profile(ProfileChanges),
    /// No more sign-ins or refreshes; sessions and grants end.
    Disable,
    Enable,
    /// Clear every failure count and lock.
    Unlock,
    /// Remove the TOTP factor and recovery codes (a lost device).
    ResetMfa,
    /// Delete the user with their sessions and grants.
    Delete,
}

impl UserAction {
    /// Whether it takes away something that cannot simply be given back (asked to confirm).
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            UserAction::Disable | UserAction::ResetMfa | UserAction::Delete
        )
    }
}

/// Whether `action` by the administrator `admin_id` on `user` would shut the administrator out
/// of the console: disabling or deleting themselves, or dropping their own `admin` role. The
/// console refuses it (the command line can still do it), so that it never locks out the last
/// person using it.
pub fn locks_self_out(admin_id: &str, user: &User, action: &UserAction) -> bool {
    if user.id != admin_id {
        return false;
    }
    match action {
        UserAction::Disable | UserAction::Delete => true,
        UserAction::Roles(roles) => !roles.iter().any(|r| r == mfa::ADMIN_ROLE),
        UserAction::Enable | UserAction::Unlock | UserAction::ResetMfa | UserAction::Profile(_) => {
            false
        }
    }
}

/// Applies `action` to the user with this id, as the administrator.
pub async fn user_action(
    state: &AppState,
    admin: &Admin,
    user_id: String,
    action: UserAction,
) -> Done<()> {
    let now = state.clock.now();
    let by = admin.by(now);
    let admin_id = admin.user.id.clone();
    run(state, move |conn| {
        let user = registry::find(conn, UserRef::Id(&user_id))?;
        if locks_self_out(&admin_id, &user, &action) {
            return Err(RegistryError::Conflict(
                "The console does not disable, delete or take the admin role from your own \
                 account: another administrator, or the command line, can."
                    .into(),
            ));
        }
        let id = UserRef::Id(&user.id);
        match action {
            UserAction::Roles(roles) => registry::set_roles(conn, id, &roles, &by).map(drop),
            UserAction::Profile(changes) => {
                registry::set_profile(conn, id, &changes, &by).map(drop)
            }
            UserAction::Disable => registry::disable_user(conn, id, &by).map(drop),
            UserAction::Enable => registry::enable_user(conn, id, &by).map(drop),
            UserAction::Unlock => registry::unlock_user(conn, id, &by).map(drop),
            UserAction::Delete => registry::delete_user(conn, id, &by).map(drop),
            UserAction::ResetMfa => crate::flows::mfa::reset(conn, &user.id, by.actor, now)
                .map(drop)
                .map_err(RegistryError::Other),
        }
    })
    .await
}

// --- keys and the audit log

/// Every signing key with its state now, in the order they sign.
pub async fn keys(state: &AppState) -> Done<Vec<KeyInfo>> {
    let now = state.clock.now();
    run(state, move |conn| admin::keys(conn, now)).await
}

/// Adds a signing key that signs after the publish delay.
pub async fn rotate_key(state: &AppState, admin: &Admin) -> Done<KeyInfo> {
    let now = state.clock.now();
    let actor = Actor::User(admin.user.id.clone());
    let master = state.master.clone();
    let settings = state.settings.clone();
    run(state, move |conn| {
        admin::rotate_key(conn, &master, &settings, actor, now)
    })
    .await
}

/// The audit log's filters as the console's form sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilters {
    pub event: Option<String>,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub cursor: Option<String>,
}

impl AuditFilters {
    pub fn from_params(p: &Params) -> AuditFilters {
        let get = |name| {
            p.get(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        AuditFilters {
            event: get("event"),
            user_id: get("user_id"),
            client_id: get("client_id"),
            cursor: get("cursor"),
        }
    }
}

/// A page of audit events matching the filters, newest first.
pub async fn audit(state: &AppState, filters: &AuditFilters) -> Done<AuditPage> {
    let query = AuditQuery {
        user_id: filters.user_id.clone(),
        client_id: filters.client_id.clone(),
        event: filters.event.clone(),
        cursor: filters.cursor.clone(),
        limit: AUDIT_PAGE_SIZE,
        ..Default::default()
    };
    run(state, move |conn| admin::audit_page(conn, &query)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule48_console_sign_in_returns_only_to_console_paths() {
        for ok in [
            "/admin",
            "/admin/clients",
            "/admin/audit?event=unlocked",
            "/admin?x=1",
        ] {
            assert_eq!(return_path(ok).as_deref(), Some(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/admin",
            "//evil.example/admin",
            "/admin//evil.example",
            "/administrator",
            "/admin/../login",
            "/admin\\@evil.example",
            "/admin/api/v1/clients",
            "/login",
            "",
            "/admin/\n",
            "javascript:alert(1)",
        ] {
            assert_eq!(return_path(bad), None, "{bad:?}");
        }
    }

    fn user(id: &str, roles: &[&str]) -> User {
        User {
            id: id.into(),
            username: id.into(),
            password_hash: String::new(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            disabled_at: None,
            created_at: 0,
            profile: Default::default(),
        }
    }

    #[test]
    fn console_admin_cannot_lock_themselves_out() {
        let me = user("usr_me", &["admin"]);
        let other = user("usr_other", &["admin"]);
        for action in [
            UserAction::Disable,
            UserAction::Delete,
            UserAction::Roles(vec![]),
        ] {
            assert!(locks_self_out("usr_me", &me, &action), "{action:?}");
            assert!(!locks_self_out("usr_me", &other, &action), "{action:?}");
        }
        assert!(!locks_self_out(
            "usr_me",
            &me,
            &UserAction::Roles(vec!["admin".into(), "ops".into()])
        ));
        assert!(!locks_self_out("usr_me", &me, &UserAction::Unlock));
        assert!(!locks_self_out("usr_me", &me, &UserAction::ResetMfa));
    }

    #[test]
    fn client_form_changes_only_what_differs() {
        let client = Client {
            id: "cl_a".into(),
            name: "App".into(),
            secret_hash: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: GrantType::DEFAULT.to_vec(),
            scopes: vec!["read".into()],
            audiences: vec!["https://api.example".into()],
            allowed_origins: vec![],
            created_at: 0,
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: Vec::new(),
        };
        let mut form = ClientForm::of(&client);
        let unchanged = form.changes(&client);
        assert!(unchanged.name.is_none() && unchanged.redirect_uris.is_none());
        assert!(unchanged.grant_types.is_none() && unchanged.scopes.is_none());
        assert!(unchanged.require_mfa.is_none() && unchanged.audiences.is_none());
        assert!(unchanged.skip_consent.is_none() && unchanged.post_logout_redirect_uris.is_none());
        form.redirect_uris = "https://app.example/cb\n  https://app.example/other \n".into();
        let changed = form.changes(&client);
        assert_eq!(
            changed.redirect_uris,
            Some(vec![
                "https://app.example/cb".to_owned(),
                "https://app.example/other".to_owned()
            ])
        );
        assert!(changed.name.is_none());
    }
}
