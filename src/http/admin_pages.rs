//! The admin console's pages (askama, auto-escaped, `templates/admin/`): what each shows, built
//! from the service's values. Every page extends `admin/layout.html` (navigation, the signed-in
//! administrator, a notice) and loads only the same-origin `static/admin.js`.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use askama::Template;

use super::pages::html;
use crate::audit::{format_utc, AuditEvent};
use crate::flows::admin::AuditPage;
use crate::flows::admin_console::{grant_type_field, Admin, AuditFilters, ClientForm};
use crate::keys::KeyInfo;
use crate::oauth::model::{Client, GrantType};
use crate::registry::Fault;
use crate::store::users::User;

pub const SCRIPT_PATH: &str = "/static/admin.js";
const SCRIPT: &str = include_str!("../../static/admin.js");

/// `GET /static/admin.js`: the console's script (same origin, as the CSP requires).
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(SCRIPT)
}

#[derive(Template)]
#[template(path = "admin/home.html")]
struct HomePage<'a> {
    username: &'a str,
    notice: Option<&'a str>,
}

pub fn home(admin: &Admin, notice: Option<&str>) -> HttpResponse {
    html(
        StatusCode::OK,
        HomePage {
            username: &admin.user.username,
            notice,
        }
        .render(),
    )
}

/// A client as a list row.
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub confidential: bool,
    pub grant_types: String,
}

#[derive(Template)]
#[template(path = "admin/clients.html")]
struct ClientsPage<'a> {
    username: &'a str,
    notice: Option<&'a str>,
    search: &'a str,
    clients: Vec<ClientRow>,
    full: bool,
}

pub fn clients(
    admin: &Admin,
    notice: Option<&str>,
    search: &str,
    list: &[Client],
    full: bool,
) -> HttpResponse {
    let clients = list
        .iter()
        .map(|c| ClientRow {
            id: c.id.to_string(),
            name: c.name.clone(),
            confidential: c.is_confidential(),
            grant_types: c
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    html(
        StatusCode::OK,
        ClientsPage {
            username: &admin.user.username,
            notice,
            search,
            clients,
            full,
        }
        .render(),
    )
}

/// A grant type's checkbox.
pub struct GrantOption {
    pub field: String,
    pub name: &'static str,
    pub checked: bool,
}

/// The fields the client form shows faults beside; others go above the form.
const CLIENT_FIELDS: [&str; 7] = [
    "client_name",
    "redirect_uris",
    "grant_types",
    "scope",
    "audiences",
    "allowed_origins",
    "post_logout_redirect_uris",
];

#[derive(Template)]
#[template(path = "admin/client_form.html")]
struct ClientFormPage<'a> {
    username: &'a str,
    notice: Option<&'a str>,
    csrf: &'a str,
    /// `None` when registering.
    client_id: Option<&'a str>,
    action: String,
    form: &'a ClientForm,
    grant_options: Vec<GrantOption>,
    faults: &'a [Fault],
    general_errors: Vec<&'a str>,
}

impl ClientFormPage<'_> {
    fn errors_for(&self, field: &str) -> Vec<&str> {
        self.faults
            .iter()
            .filter(|f| f.field == Some(field))
            .map(|f| f.message.as_str())
            .collect()
    }
}

/// The client form: registering (`client_id` `None`) or changing a client, with the faults of
/// the last attempt beside their fields (400) or none (200).
pub fn client_form(
    admin: &Admin,
    notice: Option<&str>,
    client_id: Option<&str>,
    form: &ClientForm,
    faults: &[Fault],
) -> HttpResponse {
    let grant_options = GrantType::ALL
        .into_iter()
        .map(|g| GrantOption {
            field: grant_type_field(g),
            name: g.as_str(),
            checked: form.grant_types.iter().any(|c| c == g.as_str()),
        })
        .collect();
    let general_errors = faults
        .iter()
        .filter(|f| !f.field.is_some_and(|name| CLIENT_FIELDS.contains(&name)))
        .map(|f| f.message.as_str())
        .collect();
    let status = if faults.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    html(
        status,
        ClientFormPage {
            username: &admin.user.username,
            notice,
            csrf: &admin.csrf,
            client_id,
            action: client_id.map_or_else(
                || "/admin/clients/new".to_owned(),
                |id| format!("/admin/clients/{id}"),
            ),
            form,
            grant_options,
            faults,
            general_errors,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "admin/secret.html")]
struct SecretPage<'a> {
    username: &'a str,
    notice: Option<&'a str>,
    heading: &'a str,
    client_id: &'a str,
    client_name: &'a str,
    secret: &'a str,
    grace: Option<String>,
}

/// A client secret, shown this once (`no-store`, as every page).
pub fn secret(
    admin: &Admin,
    heading: &str,
    client: &Client,
    secret: &str,
    grace_until: Option<i64>,
) -> HttpResponse {
    html(
        StatusCode::OK,
        SecretPage {
            username: &admin.user.username,
            notice: None,
            heading,
            client_id: client.id.as_str(),
            client_name: &client.name,
            secret,
            grace: grace_until.map(|t| {
                format!(
                    "The previous secret keeps working until {} UTC.",
                    format_utc(t)
                )
            }),
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "admin/confirm.html")]
struct ConfirmPage<'a> {
    username: &'a str,
    notice: Option<&'a str>,
    csrf: &'a str,
    title: &'a str,
    message: &'a str,
    action: &'a str,
    fields: &'a [(&'a str, String)],
    button: &'a str,
    cancel: &'a str,
}

/// What a destructive action's confirmation page says and posts again.
pub struct Confirm<'a> {
    pub title: &'a str,
    pub message: String,
    /// The action's URL: the same form, posted again with `confirm=yes`.
    pub action: &'a str,
    /// The form's other fields, carried as they were.
    pub fields: Vec<(&'a str, String)>,
    pub button: &'a str,
    pub cancel: &'a str,
}

/// The confirmation step of a destructive action (works without JavaScript).
pub fn confirm(admin: &Admin, c: &Confirm<'_>) -> HttpResponse {
    html(
        StatusCode::OK,
        ConfirmPage {
            username: &admin.user.username,
            notice: None,
            csrf: &admin.csrf,
            title: c.title,
            message: &c.message,
            action: c.action,
            fields: &c.fields,
            button: c.button,
            cancel: c.cancel,
        }
        .render(),
    )
}

/// A user as a list row.
pub struct UserRow {
    pub id: String,
    pub username: String,
    /// The full name, or empty.
    pub name: String,
    /// The e-mail address, or empty.
    pub email: String,
    pub email_verified: bool,
    pub roles: String,
    pub disabled: bool,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage<'a> {
    username: &'a str,
    notice: Option<&'a str>,
    search: &'a str,
    users: Vec<UserRow>,
    full: bool,
}

pub fn users(
    admin: &Admin,
    notice: Option<&str>,
    search: &str,
    list: &[User],
    full: bool,
) -> HttpResponse {
    let users = list
        .iter()
        .map(|u| UserRow {
            id: u.id.clone(),
            username: u.username.clone(),
            name: u.profile.name.clone().unwrap_or_default(),
            email: u.profile.email.clone().unwrap_or_default(),
            email_verified: u.profile.email_verified,
            roles: u.roles.join(" "),
            disabled: u.disabled_at.is_some(),
        })
        .collect();
    html(
        StatusCode::OK,
        UsersPage {
            username: &admin.user.username,
            notice,
            search,
            users,
            full,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage<'a> {
    username: &'a str,
    notice: Option<&'a str>,
    csrf: &'a str,
    id: &'a str,
    name: &'a str,
    roles: String,
    disabled: bool,
    totp: bool,
    created: String,
    /// The profile form's values.
    full_name: &'a str,
    email: &'a str,
    email_verified: bool,
    faults: &'a [Fault],
    /// Faults about no field of the profile form, shown above the forms.
    errors: Vec<&'a str>,
}

/// The fields the profile form shows faults beside.
const PROFILE_FIELDS: [&str; 3] = ["name", "email", "email_verified"];

impl UserPage<'_> {
    fn errors_for(&self, field: &str) -> Vec<&str> {
        self.faults
            .iter()
            .filter(|f| f.field == Some(field))
            .map(|f| f.message.as_str())
            .collect()
    }
}

/// A user and the actions on them; `errors` (400) from the last one refused.
pub fn user(
    admin: &Admin,
    notice: Option<&str>,
    view: &crate::flows::admin_console::UserView,
    errors: &[Fault],
) -> HttpResponse {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    html(
        status,
        UserPage {
            username: &admin.user.username,
            notice,
            csrf: &admin.csrf,
            id: &view.user.id,
            name: &view.user.username,
            roles: view.user.roles.join(" "),
            disabled: view.user.disabled_at.is_some(),
            totp: view.totp,
            created: format_utc(view.user.created_at),
            full_name: view.user.profile.name.as_deref().unwrap_or(""),
            email: view.user.profile.email.as_deref().unwrap_or(""),
            email_verified: view.user.profile.email_verified,
            faults: errors,
            errors: errors
                .iter()
                .filter(|f| !f.field.is_some_and(|name| PROFILE_FIELDS.contains(&name)))
                .map(|f| f.message.as_str())
                .collect(),
        }
        .render(),
    )
}

/// A signing key as the schedule shows it.
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub state: &'static str,
    pub label: &'static str,
    pub created: String,
    pub activate: String,
    pub retire: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "admin/keys.html")]
struct KeysPage<'a> {
    username: &'a str,
    notice: Option<&'a str>,
    csrf: &'a str,
    keys: Vec<KeyRow>,
    errors: Vec<&'a str>,
}

fn key_label(state: &str) -> &'static str {
    match state {
        "published" => "pending: published, not signing yet",
        "signing" => "signing",
        "retired" => "retired: published until its tokens expire",
        "expired" => "expired",
        _ => "unknown",
    }
}

pub fn keys(
    admin: &Admin,
    notice: Option<&str>,
    list: &[KeyInfo],
    errors: &[&str],
) -> HttpResponse {
    let when = |t: Option<i64>| t.map_or_else(|| "—".to_owned(), format_utc);
    let keys = list
        .iter()
        .map(|k| KeyRow {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            state: k.state,
            label: key_label(k.state),
            created: format_utc(k.created_at),
            activate: format_utc(k.activate_at),
            retire: when(k.retire_at),
            expires: when(k.expires_at),
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    html(
        status,
        KeysPage {
            username: &admin.user.username,
            notice,
            csrf: &admin.csrf,
            keys,
            errors: errors.to_vec(),
        }
        .render(),
    )
}

/// An audit event as the log shows it.
pub struct AuditLine {
    pub at: String,
    pub event: String,
    pub outcome: String,
    pub actor: String,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub detail: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditLogPage<'a> {
    username: &'a str,
    notice: Option<&'a str>,
    events: Vec<(&'static str, bool)>,
    user_id: &'a str,
    client_id: &'a str,
    rows: Vec<AuditLine>,
    older: Option<String>,
    errors: Vec<&'a str>,
}

/// The audit log with its filters; `page` is `None` (and `errors` say why, 400) when the
/// filters were refused.
pub fn audit(
    admin: &Admin,
    filters: &AuditFilters,
    page: Option<&AuditPage>,
    errors: &[Fault],
) -> HttpResponse {
    let rows = page.map_or_else(Vec::new, |p| {
        p.events
            .iter()
            .map(|e| AuditLine {
                at: format_utc(e.at),
                event: e.event.clone(),
                outcome: e.outcome.clone(),
                actor: e.actor.clone(),
                user_id: e.user_id.clone(),
                client_id: e.client_id.clone(),
                detail: e.detail.clone(),
            })
            .collect()
    });
    let older = page.and_then(|p| p.next_cursor.as_ref()).map(|cursor| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("event", &filters.event),
            ("user_id", &filters.user_id),
            ("client_id", &filters.client_id),
        ] {
            if let Some(v) = value {
                query.append_pair(name, v);
            }
        }
        query.append_pair("cursor", cursor);
        format!("/admin/audit?{}", query.finish())
    });
    let events = AuditEvent::ALL
        .into_iter()
        .map(|e| (e.as_str(), filters.event.as_deref() == Some(e.as_str())))
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    html(
        status,
        AuditLogPage {
            username: &admin.user.username,
            notice: None,
            events,
            user_id: filters.user_id.as_deref().unwrap_or(""),
            client_id: filters.client_id.as_deref().unwrap_or(""),
            rows,
            older,
            errors: errors.iter().map(|f| f.message.as_str()).collect(),
        }
        .render(),
    )
}
