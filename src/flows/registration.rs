//! Dynamic client registration's service (RFC 7591, RFC 7592), and the initial access tokens an
//! administrator creates for it.
//!
//! A registration reads the clock once, checks the request against the policy
//! (`oauth::registration::decide`) and the general client rules (`registry::prepare_client_with`),
//! then, in one write transaction, uses the initial access token once (a compare-and-swap: a
//! used-up or expired token changes nothing and the client is not stored), stores the client and
//! the hash of its registration access token, and writes the audit log.

use std::net::IpAddr;

use serde_json::Value;

use crate::audit::{Actor, AuditEvent, Entry, Outcome};
use crate::config::{RegistrationMode, Settings};
use crate::oauth::registration::{self, Access, AuthMethod, Decision, Policy};
use crate::oauth::OAuthError;
use crate::oauth::{model::Client, ErrorCode};
use crate::registry::{self, By, ClientChanges, NewClient, RedirectRule, RegistryError};
use crate::secret::{new_id, PlainToken, TokenHash};
use crate::state::AppState;
use crate::store::registrations::{InitialToken, Registration};
use crate::store::{write_tx, AnyConnection};

use super::EndpointError;

/// Whether `/register` is served (and advertised in the metadata).
pub fn enabled(settings: &Settings) -> bool {
    settings.registration.mode != RegistrationMode::Off
}

/// The registration policy of these settings.
pub fn policy(settings: &Settings) -> Policy {
    let r = &settings.registration;
    Policy {
        allowed_scopes: r.allowed_scopes.clone(),
        allowed_audiences: r.allowed_audiences.clone(),
        allow_confidential: r.allow_confidential,
        max_redirect_uris: r.max_redirect_uris,
        issuer: settings.server.issuer.clone(),
    }
}

/// Why a registration request was not answered with a client.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// Open registration reached `open_max_per_address` or `open_max_clients`.
    #[error("open registration is full")]
    OpenFull,
}

impl From<OAuthError> for RegisterError {
    fn from(e: OAuthError) -> Self {
        RegisterError::Endpoint(e.into())
    }
}

impl From<diesel::result::Error> for RegisterError {
    fn from(e: diesel::result::Error) -> Self {
        RegisterError::Endpoint(e.into())
    }
}

impl From<crate::error::AppError> for RegisterError {
    fn from(e: crate::error::AppError) -> Self {
        RegisterError::Endpoint(e.into())
    }
}

/// The one answer for a missing, malformed, unknown, expired or used-up bearer token, and for a
/// registration access token of another client (RFC 6750 §3.1): it says nothing more.
fn invalid_token() -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidToken,
        "the access token is missing or not valid",
    )
}

/// The bearer token of an `Authorization: Bearer …` header (RFC 6750 §2.1).
fn bearer(authorization: Option<&str>) -> Option<PlainToken> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then(|| PlainToken::from_presented(token))
}

/// A registry refusal as RFC 7591 §3.2.2 words it.
fn registry_error(e: RegistryError) -> EndpointError {
    match e {
        RegistryError::Invalid(faults) => {
            registration::error_of(faults.iter().map(|f| (f.field, f.message.as_str()))).into()
        }
        RegistryError::NotFound(_) => invalid_token().into(),
        RegistryError::Conflict(msg) => {
            OAuthError::new(ErrorCode::InvalidClientMetadata, msg).into()
        }
        RegistryError::Database(e) => e.into(),
        RegistryError::Other(e) => EndpointError::Internal(e.into()),
    }
}

fn new_client(d: &Decision) -> NewClient {
    NewClient {
        name: d.name.clone(),
        redirect_uris: d.redirect_uris.clone(),
        confidential: d.auth_method.is_confidential(),
        grant_types: d.grant_types.clone(),
        scopes: d.scopes.clone(),
        audiences: d.audiences.clone(),
        allowed_origins: Vec::new(),
        require_mfa: false,
        // Never through registration (`oauth::registration::parse` refuses it).
        skip_consent: false,
        post_logout_redirect_uris: d.post_logout_redirect_uris.clone(),
    }
}

fn rule_for(d: &Decision) -> RedirectRule {
    if d.native_redirects() {
        RedirectRule::Native
    } else {
        RedirectRule::Web
    }
}

/// `POST /register`: registers a client; answers its client information (with the registration
/// access token and, for a confidential client, the secret: both shown this once).
#[tracing::instrument(skip_all)]
pub async fn register(
    state: &AppState,
    body: &[u8],
    authorization: Option<String>,
    ip: Option<IpAddr>,
) -> Result<Value, RegisterError> {
    let meta = registration::parse(body).map_err(OAuthError::from)?;
    let presented = match authorization.as_deref() {
        Some(h) => Some(bearer(Some(h)).ok_or_else(invalid_token)?),
        None => None,
    };
    let mode = state.settings.registration.mode;
    let access = match (&presented, mode) {
        (Some(_), _) => Access::Token,
        (None, RegistrationMode::Open) => Access::Open,
        (None, _) => return Err(invalid_token().into()),
    };
    let now = state.clock.now();
    let decision =
        registration::decide(&meta, &policy(&state.settings), access).map_err(OAuthError::from)?;
    let registered =
        registry::prepare_client_with(&new_client(&decision), now, rule_for(&decision))
            .map_err(registry_error)?;
    let access_token = PlainToken::generate();
    let host = ip.map(|ip| state.host_hash(ip));
    let address = state.anonymise(ip);
    let limits = state.settings.registration.clone();
    let issuer = state.issuer().to_owned();
    let client_id = registered.client.id.to_string();
    let row = Registration {
        client_id: client_id.clone(),
        access_token_hash: access_token.hash().0,
        auth_method: decision.auth_method.as_str().to_owned(),
        initial_token_id: None,
        address_hash: host.clone(),
        created_at: now,
    };
    state
        .db(move |conn| {
            write_tx(conn, |conn| {
                let mut row = row;
                let how = match &presented {
                    Some(token) => {
                        let Some(id) = InitialToken::consume(conn, token.hash().as_str(), now)?
                        else {
                            return Err(RegisterError::from(invalid_token()));
                        };
                        row.initial_token_id = Some(id.clone());
                        format!("initial access token {id}")
                    }
                    None => {
                        let from_host = match &host {
                            Some(h) => Registration::open_from_host(conn, h)?,
                            None => 0,
                        };
                        if from_host >= limits.open_max_per_address
                            || Registration::open_total(conn)? >= limits.open_max_clients
                        {
                            return Err(RegisterError::OpenFull);
                        }
                        "open registration".to_owned()
                    }
                };
                let by = By {
                    actor: Actor::Client(client_id.clone()),
                    now,
                };
                registry::create_client_in(conn, &registered, &by)
                    .map_err(|e| RegisterError::Endpoint(registry_error(e)))?;
                row.insert(conn)?;
                crate::store::audit::record(
                    conn,
                    &Entry::new(
                        AuditEvent::ClientRegistered,
                        Outcome::Success,
                        by.actor.clone(),
                        now,
                    )
                    .client(client_id.clone())
                    .address(address)
                    .detail(format!(
                        "{how}, token_endpoint_auth_method={}",
                        row.auth_method
                    )),
                )?;
                tracing::info!(client_id = %client_id, "client registered");
                Ok(registration::client_information(
                    &registered.client,
                    &row.auth_method,
                    &issuer,
                    access_token.expose(),
                    registered.secret.as_ref().map(PlainToken::expose),
                ))
            })
        })
        .await
}

/// The registration a registration access token stands for, when it is this client's.
fn registration_of(
    conn: &mut AnyConnection,
    client_id: &str,
    token: &PlainToken,
) -> diesel::QueryResult<Result<Registration, OAuthError>> {
    Ok(
        match Registration::find_by_token(conn, token.hash().as_str())? {
            Some(r) if r.client_id == client_id => Ok(r),
            _ => Err(invalid_token()),
        },
    )
}

/// `GET /register/{client_id}` (RFC 7592 §2.1).
#[tracing::instrument(skip_all)]
pub async fn read(
    state: &AppState,
    client_id: String,
    authorization: Option<String>,
) -> Result<Value, EndpointError> {
    let token = bearer(authorization.as_deref()).ok_or_else(invalid_token)?;
    let issuer = state.issuer().to_owned();
    state
        .db(move |conn| {
            let reg = registration_of(conn, &client_id, &token)??;
            let client = Client::find(conn, &client_id)?.ok_or_else(invalid_token)?;
            Ok(registration::client_information(
                &client,
                &reg.auth_method,
                &issuer,
                token.expose(),
                None,
            ))
        })
        .await
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the client's metadata, checked like a
/// registration (a client registered openly stays under the open rules). The client id, secret
/// and registration access token stay; a public client cannot become confidential or the
/// reverse.
#[tracing::instrument(skip_all)]
pub async fn update(
    state: &AppState,
    client_id: String,
    authorization: Option<String>,
    body: &[u8],
) -> Result<Value, EndpointError> {
    let token = bearer(authorization.as_deref()).ok_or_else(invalid_token)?;
    let meta = registration::parse(body).map_err(OAuthError::from)?;
    if meta.client_id.as_deref().is_some_and(|id| id != client_id) {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "client_id: must be the id of the client being updated",
        )
        .into());
    }
    let policy = policy(&state.settings);
    let now = state.clock.now();
    let issuer = state.issuer().to_owned();
    state
        .db(move |conn| {
            write_tx(conn, |conn| {
                let reg = registration_of(conn, &client_id, &token)??;
                let access = if reg.initial_token_id.is_some() {
                    Access::Token
                } else {
                    Access::Open
                };
                let decision =
                    registration::decide(&meta, &policy, access).map_err(OAuthError::from)?;
                let was = AuthMethod::parse(&reg.auth_method).unwrap_or(AuthMethod::None);
                if was.is_confidential() != decision.auth_method.is_confidential() {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidClientMetadata,
                        "token_endpoint_auth_method: a client cannot change between public (none) \
                         and confidential; register a new client instead",
                    )
                    .into());
                }
                let changes = ClientChanges {
                    name: Some(decision.name.clone()),
                    redirect_uris: Some(decision.redirect_uris.clone()),
                    grant_types: Some(decision.grant_types.clone()),
                    scopes: Some(decision.scopes.clone()),
                    audiences: Some(decision.audiences.clone()),
                    allowed_origins: None,
                    require_mfa: None,
                    skip_consent: None,
                    post_logout_redirect_uris: Some(decision.post_logout_redirect_uris.clone()),
                };
                let by = By {
                    actor: Actor::Client(client_id.clone()),
                    now,
                };
                let client = registry::update_client_in(conn, &client_id, changes, &by)
                    .map_err(registry_error)?;
                Registration::set_auth_method(conn, &client_id, decision.auth_method.as_str())?;
                Ok(registration::client_information(
                    &client,
                    decision.auth_method.as_str(),
                    &issuer,
                    token.expose(),
                    None,
                ))
            })
        })
        .await
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): the client goes, with its grants, tokens and
/// registration.
#[tracing::instrument(skip_all)]
pub async fn delete(
    state: &AppState,
    client_id: String,
    authorization: Option<String>,
) -> Result<(), EndpointError> {
    let token = bearer(authorization.as_deref()).ok_or_else(invalid_token)?;
    let now = state.clock.now();
    state
        .db(move |conn| {
            write_tx(conn, |conn| {
                registration_of(conn, &client_id, &token)??;
                let by = By {
                    actor: Actor::Client(client_id.clone()),
                    now,
                };
                registry::delete_client_in(conn, &client_id, &by).map_err(registry_error)?;
                Ok(())
            })
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// Initial access tokens (the command line)
// ---------------------------------------------------------------------------------------------

/// Longest lifetime of an initial access token.
pub const MAX_TOKEN_TTL_SECS: i64 = 365 * 86_400;
/// Most registrations one initial access token allows.
pub const MAX_TOKEN_USES: i64 = 10_000;

/// Reads a duration: seconds (digits only), or digits followed by `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let (digits, unit) = match text.chars().last()? {
        c if c.is_ascii_digit() => (text, 1),
        's' => (&text[..text.len() - 1], 1),
        'm' => (&text[..text.len() - 1], 60),
        'h' => (&text[..text.len() - 1], 3_600),
        'd' => (&text[..text.len() - 1], 86_400),
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()?.checked_mul(unit)
}

/// Creates an initial access token that registers at most `max_uses` clients within
/// `ttl_secs`; the token is shown this once, only its hash is stored.
pub fn create_initial_token(
    conn: &mut AnyConnection,
    ttl_secs: i64,
    max_uses: i64,
    by: &By,
) -> Result<(InitialToken, PlainToken), RegistryError> {
    let mut faults = Vec::new();
    if !(60..=MAX_TOKEN_TTL_SECS).contains(&ttl_secs) {
        faults.push(registry::Fault {
            field: Some("expires_in"),
            message: "the token must expire between 60 seconds and 365 days from now".into(),
        });
    }
    if !(1..=MAX_TOKEN_USES).contains(&max_uses) {
        faults.push(registry::Fault {
            field: Some("max_uses"),
            message: format!("a token registers between 1 and {MAX_TOKEN_USES} clients"),
        });
    }
    if !faults.is_empty() {
        return Err(RegistryError::Invalid(faults));
    }
    let token = PlainToken::generate();
    let row = InitialToken {
        id: new_id("iat"),
        token_hash: TokenHash::of(token.expose()).0,
        created_at: by.now,
        expires_at: by.now + ttl_secs,
        max_uses,
        uses: 0,
    };
    let entry = Entry::new(
        AuditEvent::RegistrationTokenCreated,
        Outcome::Success,
        by.actor.clone(),
        by.now,
    )
    .detail(format!(
        "{}: max_uses={max_uses}, expires_at={}",
        row.id, row.expires_at
    ));
    write_tx(conn, |conn| {
        row.insert(conn)?;
        crate::store::audit::record(conn, &entry)
    })?;
    Ok((row, token))
}

/// Every initial access token (without the tokens themselves).
pub fn list_initial_tokens(conn: &mut AnyConnection) -> Result<Vec<InitialToken>, RegistryError> {
    Ok(InitialToken::list(conn)?)
}

/// Revokes (deletes) an initial access token; the clients it registered stay.
pub fn revoke_initial_token(
    conn: &mut AnyConnection,
    id: &str,
    by: &By,
) -> Result<(), RegistryError> {
    write_tx(conn, |conn| {
        if !InitialToken::delete(conn, id)? {
            return Err(RegistryError::NotFound(format!(
                "no initial access token with id {id:?}"
            )));
        }
        crate::store::audit::record(
            conn,
            &Entry::new(
                AuditEvent::RegistrationTokenRevoked,
                Outcome::Success,
                by.actor.clone(),
                by.now,
            )
            .detail(id.to_owned()),
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_seconds() {
        assert_eq!(parse_duration("3600"), Some(3600));
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration("7d"), Some(604_800));
        for bad in ["", "h", "1w", "-1h", "1.5h", "abc"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(
            bearer(Some("Bearer abc")).map(|t| t.expose().to_owned()),
            Some("abc".into())
        );
        assert!(bearer(Some("bearer abc")).is_some());
        assert!(bearer(Some("Basic abc")).is_none());
        assert!(bearer(Some("Bearer")).is_none());
        assert!(bearer(Some("Bearer a b")).is_none());
        assert!(bearer(None).is_none());
    }
}
