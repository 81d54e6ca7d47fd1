//! The admin API under `/admin/api/v1/`: JSON over the same service functions as the command
//! line and the admin console (`registry`, `flows::admin`, `flows::mfa::reset`).
//!
//! Every call needs one of Gatehouse's own access tokens for the admin API
//! (`flows::admin::as_admin`, decided by `oauth::admin_access`); the token is checked before the
//! body is read. Client objects use the RFC 7591 metadata names. Errors are JSON
//! `{error, error_description}`; a refused change adds `fields`, one entry per field at fault.
//! Nothing here is cached (`Cache-Control: no-store`): secrets are shown once, in the response
//! that created them.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::flows::admin::{self, ApiError, AuditQuery};
use crate::oauth::admin_access::{Denial, ADMIN_SCOPE};
use crate::oauth::metadata::paths::ADMIN_API;
use crate::oauth::model::{Client, GrantType};
use crate::registry::{
    self, ClientChanges, Fault, NewClient, Profile, ProfileChanges, RegistryError, User, UserRef,
};
use crate::state::AppState;

use super::forms;

/// Registers the admin API's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(ADMIN_API)
            .route("/clients", web::get().to(list_clients))
            .route("/clients", web::post().to(create_client))
            .route("/clients/{id}", web::get().to(show_client))
            .route("/clients/{id}", web::patch().to(update_client))
            .route("/clients/{id}", web::delete().to(delete_client))
            .route("/clients/{id}/rotate-secret", web::post().to(rotate_secret))
            .route("/users", web::get().to(list_users))
            .route("/users", web::post().to(create_user))
            .route("/users/{id}", web::get().to(show_user))
            .route("/users/{id}", web::patch().to(update_user))
            .route("/users/{id}", web::delete().to(delete_user))
            .route("/users/{id}/roles", web::put().to(set_roles))
            .route("/users/{id}/password", web::put().to(set_password))
            .route("/users/{id}/{action}", web::post().to(user_action))
            .route("/keys", web::get().to(list_keys))
            .route("/keys/rotate", web::post().to(rotate_key))
            .route("/audit", web::get().to(audit))
            .default_service(web::to(unknown)),
    );
}

// --- responses

/// A JSON answer that is never cached.
fn json(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

fn error_body(error: &str, description: &str, fields: &[Fault]) -> serde_json::Value {
    let mut body = serde_json::json!({"error": error, "error_description": description});
    if !fields.is_empty() {
        body["fields"] = serde_json::to_value(fields).unwrap_or_default();
    }
    body
}

/// The answer to a failed call. `invalid` is the error code of a refused change
/// (`invalid_client_metadata` for client objects, `invalid_request` otherwise).
fn failure(err: ApiError, invalid: &str) -> HttpResponse {
    match err {
        ApiError::Denied(denial) => denied(denial),
        ApiError::Registry(RegistryError::Invalid(faults)) => {
            let description = RegistryError::Invalid(faults.clone()).to_string();
            // A body that could not be read at all is not a metadata problem.
            let code = if faults.iter().all(|f| f.field.is_none()) {
                "invalid_request"
            } else {
                invalid
            };
            let fields: Vec<Fault> = faults.into_iter().filter(|f| f.field.is_some()).collect();
            json(
                StatusCode::BAD_REQUEST,
                &error_body(code, &description, &fields),
            )
        }
        ApiError::Registry(RegistryError::NotFound(msg)) => {
            json(StatusCode::NOT_FOUND, &error_body("not_found", &msg, &[]))
        }
        ApiError::Registry(RegistryError::Conflict(msg)) => {
            json(StatusCode::CONFLICT, &error_body("conflict", &msg, &[]))
        }
        ApiError::Registry(RegistryError::Database(e)) => {
            actix_web::ResponseError::error_response(&crate::error::AppError::from(e))
        }
        ApiError::Registry(RegistryError::Other(e)) => {
            actix_web::ResponseError::error_response(&crate::error::AppError(e))
        }
    }
}

/// 401 with a Bearer challenge (RFC 6750 §3), or 403.
fn denied(denial: Denial) -> HttpResponse {
    let realm = "Bearer realm=\"gatehouse-admin\"";
    let (status, code, challenge) = match denial {
        Denial::InvalidToken => (
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            Some(format!("{realm}, error=\"invalid_token\"")),
        ),
        Denial::InsufficientScope => (
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            Some(format!(
                "{realm}, error=\"insufficient_scope\", scope=\"{ADMIN_SCOPE}\""
            )),
        ),
        Denial::NotAdmin | Denial::NoSecondFactor | Denial::ClientNotGranted => {
            (StatusCode::FORBIDDEN, "access_denied", None)
        }
    };
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(challenge) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.insert_header((header::WWW_AUTHENTICATE, challenge));
    }
    resp.json(error_body(code, denial.message(), &[]))
}

fn respond<T>(
    result: Result<T, ApiError>,
    invalid: &str,
    ok: impl FnOnce(T) -> HttpResponse,
) -> HttpResponse {
    match result {
        Ok(v) => ok(v),
        Err(e) => failure(e, invalid),
    }
}

async fn unknown(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    // A caller without a valid admin token learns nothing about which paths exist.
    let checked = admin::as_admin(&state, forms::authorization(&req), |_, _| Ok(())).await;
    respond(checked, "invalid_request", |()| {
        json(
            StatusCode::NOT_FOUND,
            &error_body(
                "not_found",
                &format!("no admin API endpoint {} {}", req.method(), req.path()),
                &[],
            ),
        )
    })
}

// --- requests

fn refused(field: Option<&'static str>, message: impl Into<String>) -> RegistryError {
    RegistryError::Invalid(vec![Fault {
        field,
        message: message.into(),
    }])
}

/// A JSON body of type `T` (unknown fields refused), read after the caller was authorised.
fn body<T: DeserializeOwned>(content_type: Option<&str>, bytes: &[u8]) -> Result<T, RegistryError> {
    let is_json = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(refused(None, "send the body as application/json"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| refused(None, format!("the body is not valid for this request: {e}")))
}

fn content_type(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Query parameters of type `T` (unknown ones refused).
fn query<T: DeserializeOwned>(query_string: &str) -> Result<T, RegistryError> {
    web::Query::<T>::from_query(query_string)
        .map(web::Query::into_inner)
        .map_err(|e| refused(None, format!("the query is not valid: {e}")))
}

/// Paging parameters of the lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    search: Option<String>,
}

fn default_limit() -> i64 {
    50
}

// --- clients

/// A client as the admin API shows it: RFC 7591 metadata plus Gatehouse's own fields.
#[derive(Debug, Serialize)]
struct ClientView {
    client_id: String,
    client_name: String,
    redirect_uris: Vec<String>,
    grant_types: Vec<&'static str>,
    response_types: Vec<&'static str>,
    token_endpoint_auth_method: &'static str,
    scope: String,
    audiences: Vec<String>,
    allowed_origins: Vec<String>,
    require_mfa: bool,
    skip_consent: bool,
    post_logout_redirect_uris: Vec<String>,
    client_id_issued_at: i64,
    /// Only in the answer that created it: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    /// When a rotated-out secret stops working, while it still does.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_expires_at: Option<i64>,
}

impl ClientView {
    fn of(c: &Client) -> ClientView {
        let code = c.allows_grant(GrantType::AuthorizationCode);
        ClientView {
            client_id: c.id.to_string(),
            client_name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            grant_types: c.grant_types.iter().map(|g| g.as_str()).collect(),
            response_types: if code { vec!["code"] } else { vec![] },
            token_endpoint_auth_method: auth_method(c.is_confidential()),
            scope: c.scopes.join(" "),
            audiences: c.audiences.clone(),
            allowed_origins: c.allowed_origins.clone(),
            require_mfa: c.require_mfa,
            skip_consent: c.skip_consent,
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            client_id_issued_at: c.created_at,
            client_secret: None,
            previous_secret_expires_at: c.previous_secret.as_ref().map(|p| p.until),
        }
    }
}

fn auth_method(confidential: bool) -> &'static str {
    if confidential {
        "client_secret_basic"
    } else {
        "none"
    }
}

/// Client metadata sent to create or change a client.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientInput {
    client_name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    /// Space-separated, as in RFC 7591.
    scope: Option<String>,
    audiences: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
    require_mfa: Option<bool>,
    skip_consent: Option<bool>,
    post_logout_redirect_uris: Option<Vec<String>>,
}

impl ClientInput {
    /// The typed parts, every fault found named by its field.
    fn parse(&self) -> Result<ParsedInput, RegistryError> {
        let mut faults = Vec::new();
        let mut grant_types = None;
        if let Some(names) = &self.grant_types {
            let mut parsed = Vec::new();
            for name in names {
                match name.parse::<GrantType>() {
                    Ok(g) => parsed.push(g),
                    Err(_) => faults.push(Fault {
                        field: Some("grant_types"),
                        message: format!(
                            "unknown grant type {name:?}: use {}",
                            GrantType::ALL.map(GrantType::as_str).join(", ")
                        ),
                    }),
                }
            }
            grant_types = Some(parsed);
        }
        if let Some(types) = &self.response_types {
            if types.iter().any(|t| t != "code") {
                faults.push(Fault {
                    field: Some("response_types"),
                    message: "the only response type is \"code\"".into(),
                });
            }
        }
        let confidential = match self.token_endpoint_auth_method.as_deref() {
            None => None,
            Some("none") => Some(false),
            Some("client_secret_basic" | "client_secret_post") => Some(true),
            Some(other) => {
                faults.push(Fault {
                    field: Some("token_endpoint_auth_method"),
                    message: format!(
                        "unknown token_endpoint_auth_method {other:?}: use none, \
                         client_secret_basic or client_secret_post"
                    ),
                });
                None
            }
        };
        if !faults.is_empty() {
            return Err(RegistryError::Invalid(faults));
        }
        Ok(ParsedInput {
            grant_types,
            confidential,
            scopes: self
                .scope
                .as_ref()
                .map(|s| s.split_whitespace().map(str::to_owned).collect()),
        })
    }
}

struct ParsedInput {
    grant_types: Option<Vec<GrantType>>,
    confidential: Option<bool>,
    scopes: Option<Vec<String>>,
}

async fn list_clients(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let qs = req.query_string().to_owned();
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, _| {
        let q: ListQuery = query(&qs)?;
        registry::list_clients(conn, q.search.as_deref(), q.limit, q.offset)
    })
    .await;
    respond(result, "invalid_request", |page| {
        let clients: Vec<ClientView> = page.items.iter().map(ClientView::of).collect();
        json(
            StatusCode::OK,
            &serde_json::json!({"clients": clients, "next_offset": page.next_offset}),
        )
    })
}

async fn create_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> HttpResponse {
    let ct = content_type(&req);
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, by| {
        let input: ClientInput = body(ct.as_deref(), &bytes)?;
        let parsed = input.parse()?;
        let new = NewClient {
            name: input.client_name.unwrap_or_default(),
            redirect_uris: input.redirect_uris.unwrap_or_default(),
            // Public unless asked, as the command line and `/register` do; the answer says which.
            confidential: parsed.confidential.unwrap_or(false),
            grant_types: parsed.grant_types.unwrap_or_default(),
            scopes: parsed.scopes.unwrap_or_default(),
            audiences: input.audiences.unwrap_or_default(),
            allowed_origins: input.allowed_origins.unwrap_or_default(),
            require_mfa: input.require_mfa.unwrap_or(false),
            skip_consent: input.skip_consent.unwrap_or(false),
            post_logout_redirect_uris: input.post_logout_redirect_uris.unwrap_or_default(),
        };
        registry::create_client(conn, &new, by)
    })
    .await;
    respond(result, "invalid_client_metadata", |registered| {
        let mut view = ClientView::of(&registered.client);
        view.client_secret = registered.secret.as_ref().map(|s| s.expose().to_owned());
        let mut resp = json(StatusCode::CREATED, &view);
        if let Ok(location) =
            HeaderValue::from_str(&format!("{ADMIN_API}/clients/{}", view.client_id))
        {
            resp.headers_mut().insert(header::LOCATION, location);
        }
        resp
    })
}

async fn show_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, _| {
        registry::find_client(conn, &id)
    })
    .await;
    respond(result, "invalid_request", |c| {
        json(StatusCode::OK, &ClientView::of(&c))
    })
}

async fn update_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    let id = id.into_inner();
    let ct = content_type(&req);
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, by| {
        let input: ClientInput = body(ct.as_deref(), &bytes)?;
        let parsed = input.parse()?;
        if let Some(confidential) = parsed.confidential {
            let current = registry::find_client(conn, &id)?;
            if confidential != current.is_confidential() {
                return Err(refused(
                    Some("token_endpoint_auth_method"),
                    "a client's authentication method cannot change: register a new client",
                ));
            }
        }
        let changes = ClientChanges {
            name: input.client_name,
            redirect_uris: input.redirect_uris,
            grant_types: parsed.grant_types,
            scopes: parsed.scopes,
            audiences: input.audiences,
            allowed_origins: input.allowed_origins,
            require_mfa: input.require_mfa,
            skip_consent: input.skip_consent,
            post_logout_redirect_uris: input.post_logout_redirect_uris,
        };
        registry::update_client(conn, &id, changes, by)
    })
    .await;
    respond(result, "invalid_client_metadata", |c| {
        admin::client_changed(&state, c.id.as_str());
        json(StatusCode::OK, &ClientView::of(&c))
    })
}

async fn delete_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    let deleted = id.clone();
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, by| {
        if registry::delete_client(conn, &id, by)? {
            Ok(())
        } else {
            Err(RegistryError::NotFound(format!("no client with id {id:?}")))
        }
    })
    .await;
    respond(result, "invalid_request", |()| {
        admin::client_changed(&state, &deleted);
        HttpResponse::NoContent()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateInput {
    /// Seconds the old secret keeps working; the server's default when absent.
    grace_secs: Option<i64>,
}

async fn rotate_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    let id = id.into_inner();
    let ct = content_type(&req);
    let default_grace = state.settings.clients.secret_rotation_grace_secs;
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, by| {
        let input: RotateInput = if bytes.is_empty() {
            RotateInput::default()
        } else {
            body(ct.as_deref(), &bytes)?
        };
        registry::rotate_secret(conn, &id, input.grace_secs.unwrap_or(default_grace), by)
    })
    .await;
    respond(result, "invalid_request", |(client, secret)| {
        admin::client_changed(&state, client.id.as_str());
        let mut view = ClientView::of(&client);
        view.client_secret = Some(secret.expose().to_owned());
        json(StatusCode::OK, &view)
    })
}

// --- users

/// A user as the admin API shows it (never the password hash). `name` and `email` are null
/// when the user has none.
#[derive(Debug, Serialize)]
struct UserView {
    user_id: String,
    username: String,
    name: Option<String>,
    email: Option<String>,
    email_verified: bool,
    roles: Vec<String>,
    disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_at: Option<i64>,
    created_at: i64,
    /// Whether the user has an active TOTP factor (shown by the single-user answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    totp: Option<bool>,
}

impl UserView {
    fn of(u: &User) -> UserView {
        UserView {
            user_id: u.id.clone(),
            username: u.username.clone(),
            name: u.profile.name.clone(),
            email: u.profile.email.clone(),
            email_verified: u.profile.email_verified,
            roles: u.roles.clone(),
            disabled: u.disabled_at.is_some(),
            disabled_at: u.disabled_at,
            created_at: u.created_at,
            totp: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserInput {
    username: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
    name: Option<String>,
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
}

/// A profile change: an absent field stays, `null` clears it (`email_verified: null` is false).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileInput {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    email_verified: Option<Option<bool>>,
}

/// A field that is present in the body, its value possibly `null` (serde's `default` stands
/// for an absent one).
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesInput {
    roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordInput {
    password: String,
}

async fn list_users(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let qs = req.query_string().to_owned();
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, _| {
        let q: ListQuery = query(&qs)?;
        registry::list_users(conn, q.search.as_deref(), q.limit, q.offset)
    })
    .await;
    respond(result, "invalid_request", |page| {
        let users: Vec<UserView> = page.items.iter().map(UserView::of).collect();
        json(
            StatusCode::OK,
            &serde_json::json!({"users": users, "next_offset": page.next_offset}),
        )
    })
}

async fn create_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> HttpResponse {
    let ct = content_type(&req);
    let passwords = state.passwords.clone();
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, by| {
        let input: NewUserInput = body(ct.as_deref(), &bytes)?;
        registry::create_user(
            conn,
            &passwords,
            &input.username,
            &input.password,
            &input.roles,
            &Profile {
                name: input.name,
                email: input.email,
                email_verified: input.email_verified,
            },
            by,
        )
    })
    .await;
    respond(result, "invalid_request", |user| {
        json(StatusCode::CREATED, &UserView::of(&user))
    })
}

async fn show_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, _| {
        let user = registry::find(conn, UserRef::Id(&id))?;
        let totp = registry::has_totp(conn, &user.id)?;
        Ok((user, totp))
    })
    .await;
    respond(result, "invalid_request", |(user, totp)| {
        let mut view = UserView::of(&user);
        view.totp = Some(totp);
        json(StatusCode::OK, &view)
    })
}

/// `PATCH /users/{id}`: the profile (`name`, `email`, `email_verified`).
async fn update_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    let id = id.into_inner();
    let ct = content_type(&req);
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, by| {
        let input: ProfileInput = body(ct.as_deref(), &bytes)?;
        let changes = ProfileChanges {
            name: input.name,
            email: input.email,
            email_verified: input.email_verified.map(|v| v.unwrap_or(false)),
        };
        registry::set_profile(conn, UserRef::Id(&id), &changes, by)
    })
    .await;
    respond(result, "invalid_request", |user| {
        json(StatusCode::OK, &UserView::of(&user))
    })
}

async fn set_roles(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    let id = id.into_inner();
    let ct = content_type(&req);
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, by| {
        let input: RolesInput = body(ct.as_deref(), &bytes)?;
        registry::set_roles(conn, UserRef::Id(&id), &input.roles, by)
    })
    .await;
    respond(result, "invalid_request", |user| {
        json(StatusCode::OK, &UserView::of(&user))
    })
}

async fn set_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    let id = id.into_inner();
    let ct = content_type(&req);
    let passwords = state.passwords.clone();
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, by| {
        let input: PasswordInput = body(ct.as_deref(), &bytes)?;
        registry::set_password(conn, &passwords, UserRef::Id(&id), &input.password, by)
    })
    .await;
    respond(result, "invalid_request", |user| {
        json(StatusCode::OK, &UserView::of(&user))
    })
}

async fn delete_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, by| {
        registry::delete_user(conn, UserRef::Id(&id), by)
    })
    .await;
    respond(result, "invalid_request", |_| {
        HttpResponse::NoContent()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()
    })
}

/// `POST /users/{id}/disable | enable | unlock | reset-mfa`.
async fn user_action(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, action) = path.into_inner();
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, by| {
        let user = UserRef::Id(&id);
        let answer = match action.as_str() {
            "disable" => {
                serde_json::to_value(UserView::of(&registry::disable_user(conn, user, by)?))
            }
            "enable" => serde_json::to_value(UserView::of(&registry::enable_user(conn, user, by)?)),
            "unlock" => {
                let (user, cleared) = registry::unlock_user(conn, user, by)?;
                Ok(serde_json::json!({"user": UserView::of(&user), "cleared": cleared}))
            }
            "reset-mfa" => {
                let user = registry::find(conn, user)?;
                let removed = crate::flows::mfa::reset(conn, &user.id, by.actor.clone(), by.now)?;
                Ok(serde_json::json!({"user": UserView::of(&user), "removed": removed}))
            }
            other => {
                return Err(RegistryError::NotFound(format!(
                    "no user action {other:?}: use disable, enable, unlock or reset-mfa"
                )))
            }
        };
        answer.map_err(|e| RegistryError::Other(e.into()))
    })
    .await;
    respond(result, "invalid_request", |v| json(StatusCode::OK, &v))
}

// --- keys and the audit log

async fn list_keys(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = admin::as_admin(&state, forms::authorization(&req), |conn, by| {
        admin::keys(conn, by.now)
    })
    .await;
    respond(result, "invalid_request", |keys| {
        json(StatusCode::OK, &serde_json::json!({"keys": keys}))
    })
}

async fn rotate_key(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let st = state.clone();
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, by| {
        admin::rotate_key(conn, &st.master, &st.settings, by.actor.clone(), by.now)
    })
    .await;
    respond(result, "invalid_request", |key| {
        json(StatusCode::CREATED, &key)
    })
}

/// Filters of the audit log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    user_id: Option<String>,
    client_id: Option<String>,
    event: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    cursor: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
}

async fn audit(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let qs = req.query_string().to_owned();
    let result = admin::as_admin(&state, forms::authorization(&req), move |conn, _| {
        let p: AuditParams = query(&qs)?;
        admin::audit_page(
            conn,
            &AuditQuery {
                user_id: p.user_id,
                client_id: p.client_id,
                event: p.event,
                since: p.since,
                until: p.until,
                cursor: p.cursor,
                limit: p.limit,
            },
        )
    })
    .await;
    respond(result, "invalid_request", |page| {
        json(StatusCode::OK, &page)
    })
}
