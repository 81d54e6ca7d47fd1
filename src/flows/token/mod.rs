//! The token endpoint's service (RFC 6749 §3.2): reads the clock once, authenticates the client
//! in the same hop as the grant's reads, applies the grant's plan (`oauth::grants`) in one write
//! transaction, and signs the access token after the commit. The code exchange and the refresh
//! make that hop in the SQLite writer (`store::writer`: one connection, group commit, answered
//! after the commit) or, on PostgreSQL, in the pool.

mod authorization_code;
mod client_credentials;
mod password;
mod refresh_token;

use std::net::IpAddr;
use std::sync::Arc;

use crate::audit::{self, Actor, Address, AuditEvent, Entry};
use crate::id_token::{self, IdGrant};
use crate::keys::KeySet;
use crate::oauth::client_auth::{self, ClientCredentials};
use crate::oauth::grants::{Event, Finish, Issue, Lifetimes, Outcome, Plan, Write};
use crate::oauth::model::{Client, GrantType};
use crate::oauth::params::Params;
use crate::oauth::token_request::TokenRequest;
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::store::{self, AnyConnection};
use crate::tokens::{self, AccessGrant};

use super::client_auth::authenticate_client;
use super::{Answer, EndpointError};

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    /// OpenID Connect: when the grant includes `openid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// Everything a grant needs, read once per request (the clock included).
#[derive(Clone)]
struct Ctx {
    now: i64,
    lifetimes: Lifetimes,
    /// Derives a refresh token's successor from it (HMAC), so a retry gets the same one back.
    successor_key: [u8; 32],
    /// The client's address, anonymised ([`Ctx::address`]) only for an audit event written.
    ip: Option<IpAddr>,
    audit_key: [u8; 32],
    /// Where detected replays and reuses are counted.
    metrics: crate::metrics::Metrics,
}

impl Ctx {
    /// The client's address as the audit log keeps it (a keyed hash and its network).
    fn address(&self) -> Option<Address> {
        self.ip.map(|ip| audit::anonymise(&self.audit_key, ip))
    }
}

/// What the blocking-pool hop found: the authenticated client (for CORS), and the grant's answer.
type Hop<T> = Result<(Client, Result<T, OAuthError>), OAuthError>;

/// `ip` is the client's address (`http::forms::client_ip`): the audit log keeps it anonymised.
#[tracing::instrument(skip_all, fields(grant_type))]
pub async fn token(
    state: &AppState,
    params: Params,
    authorization: Option<String>,
    ip: Option<IpAddr>,
) -> Answer<TokenResponse> {
    let creds = match client_auth::credentials(authorization.as_deref(), &params) {
        Ok(c) => c,
        Err(e) => return Answer::anonymous(e),
    };
    let request = match TokenRequest::from_params(&params) {
        Ok(r) => r,
        Err(e) => return Answer::anonymous(e),
    };
    let grant_type = request.grant_type();
    tracing::Span::current().record("grant_type", grant_type.as_str());
    let settings = &state.settings.tokens;
    let ctx = Ctx {
        now: state.clock.now(),
        lifetimes: Lifetimes {
            refresh_family: settings.refresh_token_ttl_secs,
            refresh_idle: settings.refresh_token_idle_secs,
            retry_window: settings.refresh_retry_window_secs,
        },
        successor_key: state.refresh_successor_key,
        ip,
        audit_key: state.audit_key,
        metrics: state.metrics.clone(),
    };
    let keys = state.keys.current();
    let now = ctx.now;
    let hop = match request {
        TokenRequest::Password(r) => password::grant(state, ctx, creds, r).await,
        TokenRequest::AuthorizationCode(r) => {
            in_hop(
                state,
                creds,
                now,
                GrantType::AuthorizationCode,
                true,
                move |conn, client| authorization_code::exchange(conn, &ctx, client, &r),
            )
            .await
        }
        TokenRequest::RefreshToken(r) => {
            in_hop(
                state,
                creds,
                now,
                GrantType::RefreshToken,
                true,
                move |conn, client| refresh_token::refresh(conn, &ctx, client, &r),
            )
            .await
        }
        TokenRequest::ClientCredentials(r) => client_credentials::grant(state, creds, r, now).await,
    };
    match hop {
        Err(e) => Answer::failed(e),
        Ok(Err(e)) => Answer::anonymous(e),
        Ok(Ok((client, result))) => {
            let result = result
                .map_err(EndpointError::from)
                .and_then(|issue| respond(state, &keys, &issue, now, grant_type, ip));
            Answer::of(&client, result).noted()
        }
    }
}

/// One database hop: [`with_client`], then the grant's work with the same connection. A grant
/// that `writes` (the code exchange, the refresh) goes through `AppState::write` (on SQLite the
/// writer, `store::writer`, with group commit), the others to the pool. A client that
/// authenticated a moment ago (a confidential one with the same secret, a public one by its id)
/// is taken from the client cache (`flows::client_cache`), so the hop does not read it again;
/// one that authenticates now is remembered.
async fn in_hop(
    state: &AppState,
    creds: ClientCredentials,
    now: i64,
    grant_type: GrantType,
    writes: bool,
    grant: impl FnOnce(&mut AnyConnection, &Client) -> Result<Result<Issue, OAuthError>, EndpointError>
        + Send
        + 'static,
) -> Result<Hop<Issue>, EndpointError> {
    let known = state.clients.authenticate(&creds, now);
    let cached = known.is_some();
    let work =
        move |conn: &mut AnyConnection| with_client(conn, &creds, known, now, grant_type, grant);
    let hop = if writes {
        state.write(work).await?
    } else {
        state.db(work).await?
    };
    if let (Ok((client, _)), false) = (&hop, cached) {
        state.clients.remember(client, now);
    }
    Ok(hop)
}

/// Authenticates the client (unless `known` is the client the cache authenticated), checks it
/// may use the grant type, and runs `grant` with it; all in the caller's hop.
fn with_client<T>(
    conn: &mut AnyConnection,
    creds: &ClientCredentials,
    known: Option<Client>,
    now: i64,
    grant_type: GrantType,
    grant: impl FnOnce(&mut AnyConnection, &Client) -> Result<Result<T, OAuthError>, EndpointError>,
) -> Result<Hop<T>, EndpointError> {
    let client = match known {
        Some(c) => c,
        None => match authenticate_client(conn, creds, now)? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        },
    };
    if let Err(e) = may_use(&client, grant_type) {
        return Ok(Ok((client, Err(e))));
    }
    let result = grant(conn, &client)?;
    Ok(Ok((client, result)))
}

/// Grant types are allow-listed per client (checklist 27).
fn may_use(client: &Client, grant_type: GrantType) -> Result<(), OAuthError> {
    if client.allows_grant(grant_type) {
        Ok(())
    } else {
        Err(OAuthError::unauthorized_client(
            "this client may not use this grant type",
        ))
    }
}

/// How a grant's write transaction ended when it did not commit an issue.
#[derive(Debug)]
enum TxEnd {
    /// The plan refused and said to roll back.
    Rollback(OAuthError),
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for TxEnd {
    fn from(e: diesel::result::Error) -> Self {
        TxEnd::Database(e)
    }
}

/// Whether a plan's writes all went through, or a compare-and-swap among them was lost (the
/// writes before it are undone with the transaction, or superseded by the core's next plan).
#[derive(Debug, PartialEq, Eq)]
enum Applied {
    Done,
    LostRace,
}

fn apply_writes(
    conn: &mut AnyConnection,
    writes: &[Write],
    now: i64,
) -> diesel::QueryResult<Applied> {
    for write in writes {
        if !store::apply(conn, write, now)? && write.is_conditional() {
            return Ok(Applied::LostRace);
        }
    }
    Ok(Applied::Done)
}

/// The transaction's end as the plan says: an issue or a refusal to commit returns `Ok`, a
/// refusal to roll back returns `Err` (so `write_tx` rolls back). A detected replay or reuse, and
/// a password grant's issue, are written to the audit log in the same transaction; `token` is the
/// presented code's or refresh token's hash prefix. The code exchange and the refresh keep their
/// three statements (DESIGN.md): their issue goes to the JSON log only ([`respond`]).
fn finish(
    conn: &mut AnyConnection,
    ctx: &Ctx,
    grant_type: GrantType,
    plan: Plan,
    client: &Client,
    token: &str,
) -> Result<Result<Issue, OAuthError>, TxEnd> {
    let by_client = |event, outcome| {
        Entry::new(
            event,
            outcome,
            Actor::Client(client.id.to_string()),
            ctx.now,
        )
        .client(client.id.to_string())
        .address(ctx.address())
    };
    let revoked = plan.writes.iter().find_map(|w| match w {
        Write::RevokeGrant { grant_id } => Some(grant_id.to_string()),
        _ => None,
    });
    let revoked = revoked.as_deref().unwrap_or("-");
    if let Some(event) = plan.event {
        match event {
            Event::CodeReplayed => {
                tracing::warn!(client_id = %client.id, code = %token, "authorization code replayed: grant revoked");
                ctx.metrics.code_replay_detected();
                let entry = by_client(AuditEvent::CodeReplayDetected, audit::Outcome::Failure)
                    .detail(format!("code {token}: grant {revoked} revoked"));
                crate::store::audit::record(conn, &entry)?;
            }
            Event::RefreshReused => {
                tracing::warn!(client_id = %client.id, token = %token, "refresh token reuse: family revoked");
                ctx.metrics.refresh_reuse_detected();
                let entry = by_client(AuditEvent::RefreshReuseDetected, audit::Outcome::Failure)
                    .detail(format!("refresh token {token}: family {revoked} revoked"));
                crate::store::audit::record(conn, &entry)?;
            }
            Event::RefreshResent => {
                tracing::info!(client_id = %client.id, token = %token, "refresh retried within the window: same successor");
            }
        }
    }
    match plan.outcome {
        Outcome::Issue(issue) => {
            if grant_type == GrantType::Password {
                let grant = issue.grant_id.as_ref().map_or("-", |g| g.as_str());
                let entry = by_client(AuditEvent::TokenIssued, audit::Outcome::Success)
                    .user(issue.subject.clone())
                    .detail(format!("grant_type={grant_type} grant={grant}"));
                crate::store::audit::record(conn, &entry)?;
            }
            Ok(Ok(issue))
        }
        Outcome::Refuse {
            error,
            finish: Finish::Commit,
        } => Ok(Err(error)),
        Outcome::Refuse {
            error,
            finish: Finish::Rollback,
        } => Err(TxEnd::Rollback(error)),
    }
}

/// Runs a grant's transaction body under `write_tx` and folds its ending into one result.
fn transaction(
    conn: &mut AnyConnection,
    body: impl FnOnce(&mut AnyConnection) -> Result<Result<Issue, OAuthError>, TxEnd>,
) -> Result<Result<Issue, OAuthError>, EndpointError> {
    match store::write_tx(conn, body) {
        Ok(result) => Ok(result),
        Err(TxEnd::Rollback(e)) => Ok(Err(e)),
        Err(TxEnd::Database(e)) => Err(e.into()),
    }
}

/// Signs the access token (after the commit) and builds the response.
///
/// The password grant writes its issue's audit event in its transaction. The others log theirs
/// only: client_credentials has no transaction (and is often answered without a database hop),
/// and the code exchange and the refresh keep to their three statements.
fn respond(
    state: &AppState,
    keys: &Arc<KeySet>,
    issue: &Issue,
    now: i64,
    grant_type: GrantType,
    ip: Option<IpAddr>,
) -> Result<TokenResponse, EndpointError> {
    let signer = keys.signer().ok_or_else(|| {
        EndpointError::Internal(anyhow::anyhow!("no signing key is active").into())
    })?;
    let ttl = state.settings.tokens.access_token_ttl_secs;
    let (jwt, claims) = tokens::mint(
        signer,
        state.issuer(),
        &AccessGrant {
            subject: &issue.subject,
            client_id: issue.client_id.as_str(),
            audience: &issue.audience,
            scope: &issue.scope,
            roles: &issue.roles,
            grant_id: issue.grant_id.as_ref().map(|g| g.as_str()),
            amr: &issue.amr,
        },
        now,
        ttl,
    )
    .map_err(|e| EndpointError::Internal(anyhow::anyhow!("signing an access token: {e}").into()))?;
    let id_token = match &issue.id_token {
        Some(facts) => Some(
            id_token::mint(
                signer,
                state.issuer(),
                &IdGrant {
                    subject: &issue.subject,
                    client_id: issue.client_id.as_str(),
                    amr: &issue.amr,
                    facts,
                    access_token: &jwt,
                    sid_key: &state.sid_key,
                },
                now,
                state.settings.tokens.id_token_ttl_secs,
            )
            .map_err(|e| {
                EndpointError::Internal(anyhow::anyhow!("signing an ID token: {e}").into())
            })?
            .0,
        ),
        None => None,
    };
    tracing::info!(client_id = %issue.client_id, jti = %claims.jti, id_token = id_token.is_some(), "access token issued");
    state.metrics.token_issued(grant_type.as_str());
    // Its audit event is a log line only, so it is made only when the `audit` lines are on.
    if grant_type != GrantType::Password && audit::logged() {
        let client = issue.client_id.to_string();
        let event = if grant_type == GrantType::RefreshToken {
            AuditEvent::TokenRefreshed
        } else {
            AuditEvent::TokenIssued
        };
        let mut entry = Entry::new(
            event,
            audit::Outcome::Success,
            Actor::Client(client.clone()),
            now,
        )
        .client(client)
        .address(state.anonymise(ip))
        .detail(format!("grant_type={grant_type} jti={}", claims.jti));
        if grant_type != GrantType::ClientCredentials {
            entry = entry.user(issue.subject.clone());
        }
        entry.log();
    }
    Ok(TokenResponse {
        access_token: jwt,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token: issue.refresh.as_ref().map(|t| t.expose().to_owned()),
        scope: issue.scope.clone(),
        id_token,
    })
}
