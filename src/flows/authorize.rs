//! The browser side of the authorization code flow: `/authorize`, login and consent.
//!
//! `/authorize` validates the request (oauth::authorize), stores it server-side as an
//! *interaction* bound to the browser's session, and sends the browser to the login or consent
//! page. Each form carries the interaction id and a CSRF token bound to session + interaction;
//! each step re-reads and re-checks the interaction. Consent issues the code.
//!
//! What comes next is the core's decision (`oauth::oidc::next_step`): a browser signed in recently
//! enough for the request (`max_age`, `prompt=login`) whose user allowed these scopes before (or
//! whose client skips consent) gets the code at once; `prompt=none` never shows a page.
//!
//! Sign-in is a small state machine on the session: password → second factor (or enrolment, when
//! one is required and the user has none) → consent → code. Until the last factor the session is
//! half-signed-in (`Session::pending`): it names no user, so consent and the code are out of its
//! reach (checklist 54), and it runs out after `mfa.pending_ttl_secs`.
//!
//! The same pages sign an administrator in to Gatehouse's own admin console (`/admin`): such a
//! sign-in carries the console path to return to instead of an interaction ([`Via::Console`]),
//! and ends back there instead of at consent.

use std::net::IpAddr;

use crate::audit::{self, Actor, AuditEvent, Entry};
use crate::error::AppError;
use crate::flows::lockout::{self, Attempt, Device, DeviceCookie, Factor};
use crate::flows::mfa::{self as mfa_service, Presented, Refusal};
use crate::mfa::{self, AfterPassword};
use crate::oauth::authorize::{self, BoundRedirect};
use crate::oauth::metadata::paths;
use crate::oauth::model::{Client, NewGrant};
use crate::oauth::oidc::{self, Consented, Freshness, Next, Prompt, SignedIn};
use crate::oauth::params::Params;
use crate::oauth::{ErrorCode, OAuthError};
use crate::passwords::PasswordError;
use crate::secret::{constant_time_eq, hmac_b64, PlainToken, TokenHash};
use crate::state::AppState;
use crate::store::codes::AuthCode;
use crate::store::consents;
use crate::store::grants;
use crate::store::interactions::Interaction;
use crate::store::mfa::TotpFactor;
use crate::store::sessions::{PendingStage, Session};
use crate::store::users::User;
use crate::store::write_tx;

/// What `/authorize` answers.
#[derive(Debug)]
pub enum Start {
    /// The client or redirect URI is bad: a 400 page, never a redirect.
    BadRequest(String),
    /// An error for the client, at its validated redirect URI.
    Redirect(String),
    /// Go on to login or consent; `new_session` is a cookie to set.
    Continue {
        location: String,
        new_session: Option<PlainToken>,
    },
    /// A browser without a session, from an address that holds its cap of sessions not yet
    /// signed in (`session.max_anonymous_per_address`): 429, retry after this many seconds.
    TooMany(u64),
}

/// What a sign-in is for, as its pages' links and forms carry it: an authorization request (its
/// interaction id) or the admin console (the console path to go back to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Interaction(String),
    Console(String),
}

impl Via {
    /// From a page's query or a form: its `interaction`, else its `return_to` when that is a
    /// console path (checklist 48: a sign-in returns nowhere else).
    pub fn from_params(params: &Params) -> Option<Via> {
        if let Some(i) = params.get("interaction") {
            return Some(Via::Interaction(i.to_owned()));
        }
        params
            .get("return_to")
            .and_then(crate::flows::admin_console::return_path)
            .map(Via::Console)
    }

    /// The form field that carries it.
    pub fn name(&self) -> &'static str {
        match self {
            Via::Interaction(_) => "interaction",
            Via::Console(_) => "return_to",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Via::Interaction(v) | Via::Console(v) => v,
        }
    }

    /// `page` with this sign-in's parameter.
    pub fn at(&self, page: &str) -> String {
        let mut url = String::from(page);
        url.push('?');
        url.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .append_pair(self.name(), self.value())
                .finish(),
        );
        url
    }

    /// Where the signed-in browser goes next: consent, or back to the console.
    pub fn done(&self) -> String {
        match self {
            Via::Interaction(_) => self.at(paths::CONSENT),
            Via::Console(path) => path.clone(),
        }
    }
}

/// What the login and code pages name as the sign-in's destination for the admin console.
pub const CONSOLE_NAME: &str = "the Gatehouse admin console";

/// What a login or consent page shows and its form carries.
#[derive(Debug, Clone)]
pub struct PageView {
    pub via: Via,
    pub csrf: String,
    pub client_name: String,
    pub scopes: Vec<ScopeView>,
    pub audience: String,
    pub username: Option<String>,
    /// The request's `login_hint`: the login name to fill in.
    pub login_hint: Option<String>,
}

/// A scope as the consent page shows it: its configured description (`consent.scope_descriptions`)
/// when there is one, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeView {
    pub name: String,
    pub description: Option<String>,
}

/// What a form POST answers.
#[derive(Debug)]
pub enum Outcome {
    /// Show the page again with a message.
    Retry(PageView, &'static str),
    /// Show the code page again with a message.
    RetryCode(PageView, &'static str),
    /// 303 to this location, setting the cookie if given.
    SeeOther {
        location: String,
        new_session: Option<PlainToken>,
    },
    /// The request is gone or forged: a 400 page with this text.
    BadRequest(&'static str),
    /// Too many password checks wait already: the page again, as 503 with `Retry-After`.
    Busy(PageView),
    /// Signed in: 303 to this location, setting the new session cookie and the device cookie
    /// (checklist 59).
    SignedIn {
        location: String,
        new_session: PlainToken,
        device: DeviceCookie,
    },
}

const EXPIRED: &str =
    "This sign-in request has expired or is not valid in this browser. Return to the application and start again.";

fn csrf_token(state: &AppState, session_hash: &str, interaction_hash: &str) -> String {
    hmac_b64(&state.csrf_key, &["csrf", session_hash, interaction_hash])
}

/// What a console sign-in's CSRF token is bound to beside the session.
const CONSOLE_SIGN_IN: &str = "admin console sign-in";

fn with_interaction(path: &str, interaction: &str) -> String {
    Via::Interaction(interaction.to_owned()).at(path)
}

/// Whether a new anonymous session from `host` would pass its address's cap of sessions not yet
/// signed in (checklist 58); `Some(seconds to wait)` when it would not.
fn over_session_cap(
    conn: &mut crate::store::AnyConnection,
    host: Option<&str>,
    now: i64,
    session_ttl: i64,
    max_from_host: i64,
) -> Result<Option<u64>, diesel::result::Error> {
    let (Some(host), true) = (host, max_from_host > 0) else {
        return Ok(None);
    };
    let from_host = Session::from_host(conn, host, now)?;
    if from_host.count < max_from_host {
        return Ok(None);
    }
    let wait = from_host.first_expiry.map_or(session_ttl, |at| at - now);
    tracing::debug!(retry_after = wait, "sessions per address at the cap");
    Ok(Some(u64::try_from(wait).unwrap_or(1).max(1)))
}

/// Starts a sign-in to the admin console that returns to `return_to` (already a console path):
/// the browser's live session, or a new anonymous one within its address's cap, then the login
/// page. Used when `/admin` finds no session that may enter.
#[tracing::instrument(skip_all)]
pub async fn console_sign_in(
    state: &AppState,
    return_to: String,
    session_cookie: Option<String>,
    ip: Option<IpAddr>,
) -> Result<Start, AppError> {
    let now = state.clock.now();
    let session_ttl = state.settings.session.interaction_ttl_secs;
    let max_from_host = i64::from(state.settings.session.max_anonymous_per_address);
    let host = ip.map(|ip| state.host_hash(ip));
    let location = Via::Console(return_to).at(paths::LOGIN);
    state
        .db(move |conn| {
            if let Some(c) = &session_cookie {
                if Session::find_live(conn, TokenHash::of(c).as_str(), now)?.is_some() {
                    return Ok(Start::Continue {
                        location,
                        new_session: None,
                    });
                }
            }
            if let Some(wait) =
                over_session_cap(conn, host.as_deref(), now, session_ttl, max_from_host)?
            {
                return Ok(Start::TooMany(wait));
            }
            let cookie = PlainToken::generate();
            let session = Session {
                address_hash: host,
                ..Session::anonymous(cookie.hash().0, now, session_ttl)
            };
            write_tx(conn, |conn| session.insert(conn))?;
            Ok::<_, AppError>(Start::Continue {
                location,
                new_session: Some(cookie),
            })
        })
        .await
}

/// `GET /authorize` from the client address `ip`.
///
/// A browser signed in recently enough (`max_age`, `prompt=login`) that gave consent for these
/// scopes before (or whose client skips consent) gets its code at once; otherwise the request is
/// stored and the browser goes to the login or consent page. With `prompt=none` no page is ever
/// shown: the answer is the code or an error at the redirect URI (checklist 63).
#[tracing::instrument(skip_all)]
pub async fn start(
    state: &AppState,
    query: &[u8],
    session_cookie: Option<String>,
    ip: Option<IpAddr>,
) -> Result<Start, AppError> {
    let params = match Params::parse(query) {
        Ok(p) => p,
        Err(e) => return Ok(Start::BadRequest(e.description.into_owned())),
    };
    let now = state.clock.now();
    let issuer = state.issuer().to_owned();
    let session_ttl = state.settings.session.interaction_ttl_secs;
    let max_pending = i64::from(state.settings.session.max_pending_per_session);
    let max_from_host = i64::from(state.settings.session.max_anonymous_per_address);
    let host = ip.map(|ip| state.host_hash(ip));
    let mfa_for_all = state.settings.mfa.required_for_all_clients;
    let lifetimes = CodeLifetimes::of(state);
    let issue_later = state.writer.is_some();
    let read_issuer = issuer.clone();
    let found = state
        .db(move |conn| {
            let issuer = read_issuer;
            let client = match authorize::client_id(&params) {
                Some(id) => Client::find(conn, id)?,
                None => None,
            };
            let bound = match authorize::bind(&params, client.as_ref()) {
                Ok(b) => b,
                Err(e) => return Ok(Found::Answer(Start::BadRequest(e.0.into_owned()))),
            };
            let Some(client) = client else {
                return Ok(Found::Answer(Start::BadRequest(
                    "The application is not registered here.".into(),
                )));
            };
            let validated = match authorize::validate(&params, &client, bound) {
                Ok(v) => v,
                Err((bound, e)) => {
                    return Ok(Found::Answer(Start::Redirect(authorize::error_redirect(
                        &bound, &issuer, &e,
                    ))))
                }
            };
            let refuse = |e: &OAuthError| {
                Ok(Found::Answer(Start::Redirect(authorize::error_redirect(
                    &validated.bound,
                    &issuer,
                    e,
                ))))
            };
            let existing = match session_cookie {
                Some(c) => Session::find_live(conn, TokenHash::of(&c).as_str(), now)?,
                None => None,
            };
            // OpenID Connect: a nonce is used once per browser session.
            if let (Some(session), Some(nonce)) = (&existing, &validated.oidc.nonce) {
                if grants::nonce_used(conn, &session.id_hash, nonce)? {
                    return refuse(&nonce_reused());
                }
            }
            let user = match existing.as_ref().and_then(|s| s.user_id.as_deref()) {
                Some(id) => User::find(conn, id)?.filter(User::is_active),
                None => None,
            };
            let consented = match &user {
                Some(user) => consents::find(conn, &user.id, client.id.as_str())?,
                None => None,
            };
            let signed_in = match (&existing, &user) {
                (Some(session), Some(_)) => sign_in_state(session, &client, mfa_for_all),
                _ => SignedIn::No,
            };
            let freshness = Freshness {
                prompt: validated.oidc.prompt,
                max_age: validated.oidc.max_age,
                requested_at: now,
            };
            let given = consented
                .as_ref()
                .is_some_and(|c| c.covers(&validated.scope, &validated.audience));
            let next = oidc::next_step(&freshness, signed_in, given, client.skip_consent, now);
            let page = match next {
                Next::Refuse(e) => return refuse(&e),
                Next::Issue => {
                    let (Some(session), Some(user)) = (&existing, &user) else {
                        return Ok(Found::Answer(Start::BadRequest(EXPIRED.into())));
                    };
                    let approved = Approved {
                        client_id: client.id.to_string(),
                        redirect_uri: validated.bound.redirect_uri.clone(),
                        scope: validated.scope.clone(),
                        audience: validated.audience.clone(),
                        code_challenge: validated.code_challenge.clone(),
                        nonce: validated.oidc.nonce.clone(),
                    };
                    let code = CodeToIssue {
                        approved,
                        bound: validated.bound.clone(),
                        user_id: user.id.clone(),
                        session: session.clone(),
                        new: NewCode::generate(now),
                    };
                    if issue_later {
                        return Ok(Found::Issue(Box::new(code)));
                    }
                    let outcome = code.write(conn, &lifetimes, now)?;
                    return Ok(Found::Answer(Start::Redirect(
                        code.redirect(&issuer, outcome),
                    )));
                }
                Next::Login => paths::LOGIN,
                Next::Consent => paths::CONSENT,
            };
            // A new session counts against its address's cap (checklist 58). Checked before the
            // write transaction, so a refused request writes nothing; requests in flight at once
            // may each pass, so the cap holds give or take `database.pool_size`.
            if existing.is_none() {
                if let Some(wait) =
                    over_session_cap(conn, host.as_deref(), now, session_ttl, max_from_host)?
                {
                    return Ok(Found::Answer(Start::TooMany(wait)));
                }
            }
            // Expired rows are pruned by the background task (`flows::prune`), never here. The
            // new session (if any), the request and the trim of the session's oldest requests
            // are one transaction, so a session never holds more than `max_pending` of them.
            let id = PlainToken::generate();
            let new_session = write_tx(conn, |conn| {
                let (session, new_session) = match existing {
                    Some(s) => (s, None),
                    None => {
                        let cookie = PlainToken::generate();
                        let s = Session {
                            address_hash: host,
                            ..Session::anonymous(cookie.hash().0, now, session_ttl)
                        };
                        s.insert(conn)?;
                        (s, Some(cookie))
                    }
                };
                let interaction = Interaction {
                    id_hash: id.hash().0,
                    session_hash: session.id_hash.clone(),
                    client_id: client.id.to_string(),
                    redirect_uri: validated.bound.redirect_uri,
                    scope: validated.scope,
                    state: validated.bound.state,
                    code_challenge: validated.code_challenge,
                    audience: validated.audience,
                    created_at: now,
                    expires_at: now + session_ttl,
                    nonce: validated.oidc.nonce,
                    max_age: validated.oidc.max_age,
                    prompt: validated.oidc.prompt.as_stored(),
                    login_hint: validated.oidc.login_hint,
                };
                interaction.insert(conn)?;
                if new_session.is_none() {
                    Interaction::trim_session(
                        conn,
                        &session.id_hash,
                        &interaction.id_hash,
                        max_pending,
                    )?;
                }
                Ok::<_, diesel::result::Error>(new_session)
            })?;
            Ok::<_, AppError>(Found::Answer(Start::Continue {
                location: with_interaction(page, id.expose()),
                new_session,
            }))
        })
        .await?;
    match found {
        Found::Answer(start) => Ok(start),
        // On SQLite the code is issued in the writer (`store::writer`): its commit is shared with
        // the token endpoint's writes instead of queueing before them.
        Found::Issue(code) => {
            let (code, outcome) = state
                .write(move |conn| {
                    let outcome = code.write(conn, &lifetimes, now)?;
                    Ok::<_, AppError>((code, outcome))
                })
                .await?;
            Ok(Start::Redirect(code.redirect(&issuer, outcome)))
        }
    }
}

/// What the read of `GET /authorize` found: its answer, or a code to issue.
enum Found {
    Answer(Start),
    Issue(Box<CodeToIssue>),
}

/// A code to issue to a signed-in session that needs no page.
struct CodeToIssue {
    approved: Approved,
    bound: BoundRedirect,
    user_id: String,
    session: Session,
    /// Made with the read, so that on SQLite the writer's turn holds only the statements.
    new: NewCode,
}

impl CodeToIssue {
    /// Writes the code in one write transaction; the redirect is made after it
    /// ([`CodeToIssue::redirect`]).
    fn write(
        &self,
        conn: &mut crate::store::AnyConnection,
        lifetimes: &CodeLifetimes,
        now: i64,
    ) -> Result<Result<(), OAuthError>, AppError> {
        Ok(write_tx(conn, |conn| {
            issue_code(
                conn,
                &self.approved,
                &self.user_id,
                &self.session,
                lifetimes,
                now,
                &self.new,
            )
        })?)
    }

    /// The redirect to the client once the code is written.
    fn redirect(self, issuer: &str, outcome: Result<(), OAuthError>) -> String {
        let CodeToIssue {
            approved,
            bound,
            user_id,
            new,
            ..
        } = self;
        new.redirect(&bound, issuer, &approved.client_id, &user_id, outcome)
    }
}

/// A code about to be issued: its value and its grant's id.
struct NewCode {
    code: PlainToken,
    grant_id: String,
}

impl NewCode {
    fn generate(now: i64) -> NewCode {
        let at = crate::state::in_millis(now);
        NewCode {
            code: PlainToken::generate_ordered(at),
            grant_id: crate::secret::new_ordered_id("gr", at),
        }
    }

    /// The redirect to the client that carries the code (logged as issued), or the error of
    /// `outcome`.
    fn redirect(
        self,
        bound: &BoundRedirect,
        issuer: &str,
        client_id: &str,
        user_id: &str,
        outcome: Result<(), OAuthError>,
    ) -> String {
        match outcome {
            Ok(()) => {
                tracing::info!(client_id = %client_id, user_id = %user_id, grant = %self.grant_id, "authorization code issued");
                authorize::redirect_url(bound, issuer, &[("code", self.code.expose())])
            }
            Err(e) => authorize::error_redirect(bound, issuer, &e),
        }
    }
}

/// The error for a nonce this browser session used before.
fn nonce_reused() -> OAuthError {
    OAuthError::invalid_request("this nonce was used before in this session; send a new one")
}

/// Where a signed-in session stands for `client`: a second factor missing that the client or
/// the policy needs, or signed in (at `auth_time`).
fn sign_in_state(session: &Session, client: &Client, mfa_for_all: bool) -> SignedIn {
    let needed = mfa::required(client.require_mfa, mfa_for_all);
    if needed && !mfa::amr::has_second_factor(&session.amr_list()) {
        return SignedIn::NeedsSecondFactor;
    }
    SignedIn::Yes {
        auth_time: session.auth_time.unwrap_or(session.created_at),
    }
}

/// What a pending request needs of the sign-in.
fn freshness_of(interaction: &Interaction) -> Freshness {
    Freshness {
        prompt: Prompt::from_stored(&interaction.prompt),
        max_age: interaction.max_age,
        requested_at: interaction.created_at,
    }
}

/// How long what a code issue writes lives (settings, read once per request).
#[derive(Debug, Clone, Copy)]
struct CodeLifetimes {
    code: i64,
    family: i64,
}

impl CodeLifetimes {
    fn of(state: &AppState) -> CodeLifetimes {
        CodeLifetimes {
            code: state.settings.tokens.code_ttl_secs,
            family: state.settings.tokens.refresh_token_ttl_secs,
        }
    }
}

/// An approved authorization request: what its code is for.
#[derive(Debug, Clone)]
struct Approved {
    client_id: String,
    redirect_uri: String,
    scope: String,
    audience: String,
    code_challenge: String,
    nonce: Option<String>,
}

impl Approved {
    fn of(interaction: &Interaction) -> Approved {
        Approved {
            client_id: interaction.client_id.clone(),
            redirect_uri: interaction.redirect_uri.clone(),
            scope: interaction.scope.clone(),
            audience: interaction.audience.clone(),
            code_challenge: interaction.code_challenge.clone(),
            nonce: interaction.nonce.clone(),
        }
    }
}

/// Issues the code of an approved request in the caller's transaction: a grant carrying the
/// session's sign-in (`amr`, `auth_time`) and the request's nonce, and the code (`new`, made
/// before the transaction). The error is `invalid_request` when the session used the nonce before
/// (a second check, in the transaction that records it); [`NewCode::redirect`] makes either the
/// redirect to the client.
fn issue_code(
    conn: &mut crate::store::AnyConnection,
    approved: &Approved,
    user_id: &str,
    session: &Session,
    lifetimes: &CodeLifetimes,
    now: i64,
    new: &NewCode,
) -> Result<Result<(), OAuthError>, diesel::result::Error> {
    if let Some(nonce) = &approved.nonce {
        if grants::nonce_used(conn, &session.id_hash, nonce)? {
            return Ok(Err(nonce_reused()));
        }
    }
    let grant = NewGrant {
        id: new.grant_id.as_str().into(),
        client_id: approved.client_id.as_str().into(),
        user_id: Some(user_id.into()),
        session_hash: Some(session.id_hash.clone()),
        created_at: now,
        expires_at: now + lifetimes.family,
        amr: session.amr_list(),
        auth_time: Some(session.auth_time.unwrap_or(session.created_at)),
        nonce: approved.nonce.clone(),
    };
    grants::insert(conn, &grant)?;
    AuthCode {
        code_hash: new.code.hash().0,
        grant_id: new.grant_id.clone(),
        client_id: approved.client_id.clone(),
        user_id: user_id.to_owned(),
        redirect_uri: approved.redirect_uri.clone(),
        scope: approved.scope.clone(),
        audience: approved.audience.clone(),
        code_challenge: approved.code_challenge.clone(),
        created_at: now,
        expires_at: now + lifetimes.code,
        consumed_at: None,
    }
    .insert(conn)?;
    Ok(Ok(()))
}

/// What a sign-in is for, as loaded: the authorization request and its client, or the console.
enum Target {
    Authorize {
        interaction: Box<Interaction>,
        client: Box<Client>,
    },
    Console,
}

/// The live session and sign-in target behind a page or form, with the user.
struct Context {
    session: Session,
    target: Target,
    /// The signed-in user (every factor done).
    user: Option<User>,
    /// A half-signed-in session's user and what it waits for.
    pending: Option<(User, PendingStage)>,
    /// What the signed-in user allowed the request's client before.
    consented: Option<Consented>,
}

impl Context {
    /// Whether `user` needs a second factor for this sign-in: the client's or the policy's
    /// requirement; an administrator signing in to the console always needs one
    /// (`mfa::admin_may_enter`), enrolling first if they have none.
    fn requires_mfa(&self, state: &AppState, user: &User) -> bool {
        let wanted = match &self.target {
            Target::Authorize { client, .. } => client.require_mfa,
            Target::Console => user.roles.iter().any(|r| r == mfa::ADMIN_ROLE),
        };
        mfa::required(wanted, state.settings.mfa.required_for_all_clients)
    }

    /// The next step of an authorization request (`oauth::oidc::next_step`); `None` for the
    /// console.
    fn next(&self, state: &AppState, now: i64) -> Option<Next> {
        let Target::Authorize {
            interaction,
            client,
        } = &self.target
        else {
            return None;
        };
        let signed_in = match &self.user {
            Some(_) => sign_in_state(
                &self.session,
                client,
                state.settings.mfa.required_for_all_clients,
            ),
            None => SignedIn::No,
        };
        let given = self
            .consented
            .as_ref()
            .is_some_and(|c| c.covers(&interaction.scope, &interaction.audience));
        Some(oidc::next_step(
            &freshness_of(interaction),
            signed_in,
            given,
            client.skip_consent,
            now,
        ))
    }

    /// The client the sign-in is for, when there is one (the audit log's client).
    fn client_id(&self) -> Option<String> {
        match &self.target {
            Target::Authorize { client, .. } => Some(client.id.to_string()),
            Target::Console => None,
        }
    }

    /// The CSRF token of this sign-in's forms: bound to the session and the interaction (or the
    /// console).
    fn csrf(&self, state: &AppState) -> String {
        let bound = match &self.target {
            Target::Authorize { interaction, .. } => interaction.id_hash.as_str(),
            Target::Console => CONSOLE_SIGN_IN,
        };
        csrf_token(state, &self.session.id_hash, bound)
    }
}

async fn load(
    state: &AppState,
    via: Option<Via>,
    session_cookie: Option<&str>,
) -> Result<Option<(Context, Via)>, AppError> {
    let (Some(via), Some(cookie)) = (via, session_cookie) else {
        return Ok(None);
    };
    let interaction_hash = match &via {
        Via::Interaction(i) => Some(TokenHash::of(i).0),
        Via::Console(_) => None,
    };
    let session_hash = TokenHash::of(cookie).0;
    let now = state.clock.now();
    let found = state
        .db(move |conn| {
            let Some(session) = Session::find_live(conn, &session_hash, now)? else {
                return Ok::<_, AppError>(None);
            };
            let target = match interaction_hash {
                None => Target::Console,
                Some(interaction_hash) => {
                    let Some(interaction) =
                        Interaction::find(conn, &interaction_hash, &session_hash, now)?
                    else {
                        return Ok(None);
                    };
                    let Some(client) = Client::find(conn, &interaction.client_id)? else {
                        return Ok(None);
                    };
                    Target::Authorize {
                        interaction: Box::new(interaction),
                        client: Box::new(client),
                    }
                }
            };
            let user = match &session.user_id {
                Some(id) => User::find(conn, id)?.filter(User::is_active),
                None => None,
            };
            let pending = match session.pending(now) {
                Some((id, stage)) => User::find(conn, id)?
                    .filter(User::is_active)
                    .map(|u| (u, stage)),
                None => None,
            };
            let consented = match (&user, &target) {
                (Some(user), Target::Authorize { client, .. }) => {
                    consents::find(conn, &user.id, client.id.as_str())?
                }
                _ => None,
            };
            Ok(Some(Context {
                session,
                target,
                user,
                pending,
                consented,
            }))
        })
        .await?;
    Ok(found.map(|c| (c, via)))
}

fn view(state: &AppState, ctx: &Context, via: &Via) -> PageView {
    let consent = &state.settings.consent;
    let (client_name, scopes, audience, login_hint) = match &ctx.target {
        Target::Authorize {
            interaction,
            client,
        } => (
            client.name.clone(),
            interaction
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|name| ScopeView {
                    name: name.to_owned(),
                    description: consent.describe(name).map(str::to_owned),
                })
                .collect(),
            interaction.audience.clone(),
            interaction.login_hint.clone(),
        ),
        Target::Console => (CONSOLE_NAME.to_owned(), Vec::new(), String::new(), None),
    };
    PageView {
        via: via.clone(),
        csrf: ctx.csrf(state),
        client_name,
        scopes,
        audience,
        username: ctx
            .user
            .as_ref()
            .or(ctx.pending.as_ref().map(|(u, _)| u))
            .map(|u| u.username.clone()),
        login_hint,
    }
}

/// The context of a form POST: its interaction and session live, its CSRF token right; else the
/// answer to give.
async fn load_form(
    state: &AppState,
    form: &Params,
    session_cookie: Option<&str>,
) -> Result<Result<(Context, Via), Outcome>, AppError> {
    let Some((ctx, id)) = load(state, Via::from_params(form), session_cookie).await? else {
        return Ok(Err(Outcome::BadRequest(EXPIRED)));
    };
    if !csrf_ok(state, &ctx, form) {
        return Ok(Err(Outcome::BadRequest(
            "The form has expired. Go back to the application and start again.",
        )));
    }
    Ok(Ok((ctx, id)))
}

fn csrf_ok(state: &AppState, ctx: &Context, form: &Params) -> bool {
    let expected = ctx.csrf(state);
    form.get("csrf")
        .is_some_and(|c| constant_time_eq(c, &expected))
}

/// `GET /login`: the page, or `None` when the interaction is gone.
pub async fn login_page(
    state: &AppState,
    via: Option<Via>,
    session_cookie: Option<&str>,
) -> Result<Result<PageView, &'static str>, AppError> {
    match load(state, via, session_cookie).await? {
        Some((ctx, id)) => Ok(Ok(view(state, &ctx, &id))),
        None => Ok(Err(EXPIRED)),
    }
}

/// `POST /login`: checks the password; on success a new session id, a device cookie and 303 to
/// consent. Both outcomes go to the audit log, with `ip` (the client's address) anonymised. Each
/// attempt on a real user counts against the lockout of the device `device_cookie` names
/// (`flows::lockout`); a locked one is answered as a wrong password.
#[tracing::instrument(skip_all)]
pub async fn login_submit(
    state: &AppState,
    form: Params,
    session_cookie: Option<&str>,
    device_cookie: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<Outcome, AppError> {
    let (ctx, id) = match load_form(state, &form, session_cookie).await? {
        Ok(found) => found,
        Err(refused) => return Ok(refused),
    };
    let username = form.get("username").unwrap_or("").to_owned();
    let password = form.get("password").unwrap_or("").to_owned();
    let lookup = username.clone();
    let found = state
        .db(move |conn| {
            let Some(user) = User::find_by_username(conn, &lookup)? else {
                return Ok::<_, AppError>(None);
            };
            let enrolled = TotpFactor::is_enrolled(conn, &user.id)?;
            Ok(Some((user, enrolled)))
        })
        .await?;
    let enrolled = found.as_ref().is_some_and(|(_, e)| *e);
    let found = found.map(|(u, _)| u);
    // Who a failure is about: the named user when one exists (disabled or not), never the name typed.
    let named = found.as_ref().map(|u| u.id.clone());
    let user = found.filter(User::is_active);
    let now = state.clock.now();
    // Lockout (checklist 49, 59): the attempt is charged before the password is checked.
    // A name that matches no user gets no counter.
    let (device, attempt) = match &named {
        Some(id) => {
            let device = lockout::recognise(state, device_cookie, id, now);
            let attempt = lockout::begin(state, id, Factor::Password, &device, now).await?;
            (device, Some(attempt))
        }
        None => (Device::Unknown, None),
    };
    let locked = attempt.as_ref().is_some_and(Attempt::is_locked);
    // One argon2 computation whether or not the user exists (checklist 50) or is locked out.
    let stored = user.as_ref().filter(|_| !locked);
    let ok = match state
        .passwords
        .verify(password, stored.map(|u| u.password_hash.clone()))
        .await
    {
        Ok(ok) => ok,
        Err(PasswordError::Busy) => {
            lockout::settle_unchecked(state, attempt).await?;
            return Ok(Outcome::Busy(view(state, &ctx, &id)));
        }
        Err(PasswordError::Internal(e)) => return Err(e.into()),
    };
    let sign_in = |outcome| {
        let mut entry = Entry::new(AuditEvent::SignIn, outcome, Actor::Anonymous, now)
            .address(state.anonymise(ip))
            .detail(match ctx.target {
                Target::Authorize { .. } => "browser",
                Target::Console => "browser, admin console",
            });
        entry.client_id = ctx.client_id();
        entry
    };
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!("login failed");
        let mut entry = sign_in(audit::Outcome::Failure);
        entry.user_id = named;
        lockout::settle_failure(state, attempt, now, entry).await?;
        return Ok(Outcome::Retry(
            view(state, &ctx, &id),
            "Invalid username or password.",
        ));
    };
    if let Some(Attempt::Open(ticket)) = attempt {
        lockout::succeeded(state, ticket).await?;
    }
    let required = ctx.requires_mfa(state, &user);
    let next = match mfa::after_password(enrolled, required) {
        AfterPassword::SignedIn => None,
        AfterPassword::SecondFactor => Some((PendingStage::SecondFactor, paths::LOGIN_OTP)),
        AfterPassword::Enrol => Some((PendingStage::Enrol, paths::ACCOUNT_MFA)),
    };
    let cookie = PlainToken::generate();
    if let Some((stage, page)) = next {
        // Half signed in: a new session id now (the password was right), the user only as
        // pending, until the second factor or the enrolment is done.
        let new = Session::half_signed_in(
            cookie.hash().0,
            &user.id,
            stage,
            now,
            now + state.settings.mfa.pending_ttl_secs,
        );
        let old = ctx.session.id_hash.clone();
        let replaced = state
            .db(move |conn| Session::replace(conn, &old, &new, |_| Ok(())).map_err(AppError::from))
            .await?;
        if !replaced {
            return Ok(Outcome::BadRequest(EXPIRED));
        }
        tracing::info!(user_id = %user.id, stage = stage.as_str(), "password accepted: second factor next");
        return Ok(Outcome::SeeOther {
            location: id.at(page),
            new_session: Some(cookie),
        });
    }
    let new = Session::signed_in(
        cookie.hash().0,
        &user.id,
        &mfa::amr::password(),
        now,
        state.settings.session.ttl_secs,
    );
    let old = ctx.session.id_hash.clone();
    let mut entry = sign_in(audit::Outcome::Success).user(user.id.clone());
    entry.actor = Actor::User(user.id.clone());
    let replaced = state
        .db(move |conn| {
            Session::replace(conn, &old, &new, |conn| {
                crate::store::audit::record(conn, &entry)
            })
            .map_err(AppError::from)
        })
        .await?;
    if !replaced {
        return Ok(Outcome::BadRequest(EXPIRED));
    }
    tracing::info!(user_id = %user.id, "login succeeded");
    Ok(Outcome::SignedIn {
        location: id.done(),
        new_session: cookie,
        device: lockout::device_cookie(state, &user.id, &device, now),
    })
}

/// `GET /consent`: the page; a browser not signed in (or not recently enough for the request)
/// is sent to the login page, and one that needs no consent gets its code at once.
pub async fn consent_page(
    state: &AppState,
    interaction: Option<&str>,
    session_cookie: Option<&str>,
) -> Result<Result<PageView, Outcome>, AppError> {
    let via = interaction.map(|i| Via::Interaction(i.to_owned()));
    let Some((ctx, id)) = load(state, via, session_cookie).await? else {
        return Ok(Err(Outcome::BadRequest(EXPIRED)));
    };
    let now = state.clock.now();
    match ctx.next(state, now) {
        Some(Next::Consent) => Ok(Ok(view(state, &ctx, &id))),
        Some(Next::Issue) => Ok(Err(finish(state, ctx, true).await?)),
        Some(Next::Refuse(e)) => Ok(Err(refuse(state, ctx, &e).await?)),
        Some(Next::Login) | None => Ok(Err(Outcome::SeeOther {
            location: id.at(paths::LOGIN),
            new_session: None,
        })),
    }
}

/// Ends a pending request with `error` at its redirect URI (the request is used up).
async fn refuse(state: &AppState, ctx: Context, error: &OAuthError) -> Result<Outcome, AppError> {
    let Target::Authorize { interaction, .. } = ctx.target else {
        return Ok(Outcome::BadRequest(EXPIRED));
    };
    let bound = bound_of(&interaction);
    let location = authorize::error_redirect(&bound, state.issuer(), error);
    let session_hash = ctx.session.id_hash;
    state
        .db(move |conn| {
            write_tx(conn, |conn| {
                if !Interaction::take(conn, &interaction.id_hash, &session_hash)? {
                    return Ok::<_, AppError>(Outcome::BadRequest(EXPIRED));
                }
                Ok(Outcome::SeeOther {
                    location,
                    new_session: None,
                })
            })
        })
        .await
}

fn bound_of(interaction: &Interaction) -> BoundRedirect {
    BoundRedirect {
        client_id: interaction.client_id.clone(),
        redirect_uri: interaction.redirect_uri.clone(),
        state: interaction.state.clone(),
    }
}

/// Issues the code of a pending request the user may be given (signed in recently enough,
/// consent given or not needed), and remembers the consent when `remember` (approved on the
/// consent page). The request is used up: a form sent twice issues one code.
async fn finish(state: &AppState, ctx: Context, remember: bool) -> Result<Outcome, AppError> {
    let (Some(user), Target::Authorize { interaction, .. }) = (ctx.user, ctx.target) else {
        return Ok(Outcome::BadRequest(EXPIRED));
    };
    let bound = bound_of(&interaction);
    let issuer = state.issuer().to_owned();
    let now = state.clock.now();
    let lifetimes = CodeLifetimes::of(state);
    let session = ctx.session;
    let consented = ctx.consented;
    state
        .db(move |conn| {
            write_tx(conn, |conn| {
                if !Interaction::take(conn, &interaction.id_hash, &session.id_hash)? {
                    return Ok(Outcome::BadRequest(EXPIRED));
                }
                if remember {
                    let before = consented.unwrap_or(Consented {
                        scopes: Vec::new(),
                        audiences: Vec::new(),
                    });
                    if !before.covers(&interaction.scope, &interaction.audience) {
                        let after = before.with(&interaction.scope, &interaction.audience);
                        consents::save(conn, &user.id, &interaction.client_id, &after, now)?;
                        let mut entry = Entry::new(
                            AuditEvent::ConsentGranted,
                            audit::Outcome::Success,
                            Actor::User(user.id.clone()),
                            now,
                        )
                        .user(user.id.clone())
                        .detail(format!("scope={}", interaction.scope));
                        entry.client_id = Some(interaction.client_id.clone());
                        crate::store::audit::record(conn, &entry)?;
                    }
                }
                let approved = Approved::of(&interaction);
                let code = NewCode::generate(now);
                let outcome =
                    issue_code(conn, &approved, &user.id, &session, &lifetimes, now, &code)?;
                let location =
                    code.redirect(&bound, &issuer, &approved.client_id, &user.id, outcome);
                Ok::<_, AppError>(Outcome::SeeOther {
                    location,
                    new_session: None,
                })
            })
        })
        .await
}

/// `POST /consent`: approve issues a code (and remembers the consent), deny answers
/// `access_denied`; both 303 to the client.
#[tracing::instrument(skip_all)]
pub async fn consent_submit(
    state: &AppState,
    form: Params,
    session_cookie: Option<&str>,
) -> Result<Outcome, AppError> {
    let (ctx, _) = match load_form(state, &form, session_cookie).await? {
        Ok(found) => found,
        Err(refused) => return Ok(refused),
    };
    let now = state.clock.now();
    // Consent is for a browser signed in (recently enough) only: anything else is refused, never
    // sent on (checklist 54).
    if !matches!(ctx.next(state, now), Some(Next::Consent | Next::Issue)) {
        return Ok(Outcome::BadRequest(EXPIRED));
    }
    match form.get("decision") {
        Some("approve") => finish(state, ctx, true).await,
        Some("deny") => {
            let denied = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            refuse(state, ctx, &denied).await
        }
        _ => Ok(Outcome::BadRequest("Choose Allow or Deny.")),
    }
}

/// `GET /login/otp`: the code page of a half-signed-in session; anything else goes back to the
/// password page.
pub async fn otp_page(
    state: &AppState,
    via: Option<Via>,
    session_cookie: Option<&str>,
) -> Result<Result<PageView, Outcome>, AppError> {
    match load(state, via, session_cookie).await? {
        Some((ctx, id)) if matches!(ctx.pending, Some((_, PendingStage::SecondFactor))) => {
            Ok(Ok(view(state, &ctx, &id)))
        }
        Some((_, id)) => Ok(Err(Outcome::SeeOther {
            location: id.at(paths::LOGIN),
            new_session: None,
        })),
        None => Ok(Err(Outcome::BadRequest(EXPIRED))),
    }
}

/// How the code step's transaction ends early.
enum OtpTx {
    /// The half-signed-in session is gone (a form sent twice): roll back.
    Gone,
    App(AppError),
}

impl From<diesel::result::Error> for OtpTx {
    fn from(e: diesel::result::Error) -> Self {
        OtpTx::App(e.into())
    }
}

/// What the code page says when a code is refused (one message whatever the reason).
pub const CODE_REFUSED: &str = "That code is not valid. Enter the current code from your authenticator app, or a recovery code.";
/// What the code page says when the input cannot be a code.
pub const CODE_MALFORMED: &str =
    "Enter the 6-digit code from your authenticator app, or a recovery code (xxxx-xxxx-xxxx-xxxx).";

/// `POST /login/otp`: a TOTP code (`code`) or a recovery code (`recovery_code`) finishes the
/// sign-in: a new session id, signed in with `amr` pwd + otp, then consent. The code is used up
/// by a compare-and-swap, so it is refused a second time on every instance.
#[tracing::instrument(skip_all)]
pub async fn otp_submit(
    state: &AppState,
    form: Params,
    session_cookie: Option<&str>,
    device_cookie: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<Outcome, AppError> {
    let (ctx, id) = match load_form(state, &form, session_cookie).await? {
        Ok(found) => found,
        Err(refused) => return Ok(refused),
    };
    let Some((user, PendingStage::SecondFactor)) = ctx.pending.clone() else {
        return Ok(Outcome::BadRequest(
            "This sign-in has no code to check: it has expired or was never started. Return to the application and sign in again.",
        ));
    };
    let page = view(state, &ctx, &id);
    let now = state.clock.now();
    let address = state.anonymise(ip);
    let client_id = ctx.client_id();
    // Second-factor failures have their own lockout count (checklist 49, 59), per device.
    let device = lockout::recognise(state, device_cookie, &user.id, now);
    let attempt = lockout::begin(state, &user.id, Factor::SecondFactor, &device, now).await?;
    let failure = |refusal, presented: Option<&Presented>| {
        let mut entry = mfa_service::audit_entry(&Err(refusal), presented, &user.id, now)
            .address(address.clone());
        entry.client_id = client_id.clone();
        entry
    };
    let presented = match mfa_service::presented(form.get("code"), form.get("recovery_code")) {
        Ok(Some(p)) => p,
        Ok(None) | Err(_) => {
            lockout::settle_failure(state, Some(attempt), now, failure(Refusal::Malformed, None))
                .await?;
            return Ok(Outcome::RetryCode(page, CODE_MALFORMED));
        }
    };
    let Attempt::Open(ticket) = attempt else {
        // Locked: answered as a wrong code, and nothing is checked.
        lockout::settle_failure(
            state,
            Some(Attempt::Locked),
            now,
            failure(Refusal::Wrong, Some(&presented)),
        )
        .await?;
        return Ok(Outcome::RetryCode(page, CODE_REFUSED));
    };
    let master = state.master.clone();
    let cookie = PlainToken::generate();
    let ttl = state.settings.session.ttl_secs;
    let old = ctx.session.id_hash.clone();
    let user_id = user.id.clone();
    let new_hash = cookie.hash().0;
    let (tx_client, tx_address, tx_presented) =
        (client_id.clone(), address.clone(), presented.clone());
    let done = state
        .db(move |conn| {
            write_tx(conn, |conn| {
                let checked = mfa_service::verify(conn, &master, &user_id, &tx_presented, now)
                    .map_err(|e| OtpTx::App(e.into()))?;
                let amr = match checked {
                    Ok(amr) => amr,
                    Err(refusal) => return Ok::<_, OtpTx>(Err(refusal)),
                };
                let mut used =
                    mfa_service::audit_entry(&Ok(Vec::new()), Some(&tx_presented), &user_id, now)
                        .address(tx_address.clone());
                used.client_id = tx_client.clone();
                crate::store::audit::record(conn, &used)?;
                let new = Session::signed_in(new_hash.clone(), &user_id, &amr, now, ttl);
                let mut sign_in = Entry::new(
                    AuditEvent::SignIn,
                    audit::Outcome::Success,
                    Actor::User(user_id.clone()),
                    now,
                )
                .user(user_id.clone())
                .address(tx_address.clone())
                .detail("browser, second factor");
                sign_in.client_id = tx_client.clone();
                if !Session::replace_in(conn, &old, &new)? {
                    return Err(OtpTx::Gone);
                }
                crate::store::audit::record(conn, &sign_in)?;
                Ok(Ok(()))
            })
            .map(Some)
            .or_else(|e| match e {
                OtpTx::Gone => Ok(None),
                OtpTx::App(e) => Err(e),
            })
        })
        .await?;
    match done {
        Some(Ok(())) => {
            lockout::succeeded(state, ticket).await?;
            tracing::info!(user_id = %user.id, "second factor accepted");
            Ok(Outcome::SignedIn {
                location: id.done(),
                new_session: cookie,
                device: lockout::device_cookie(state, &user.id, &device, now),
            })
        }
        Some(Err(refusal)) => {
            tracing::info!(user_id = %user.id, "second factor refused");
            lockout::failed(state, ticket, now, failure(refusal, Some(&presented))).await?;
            Ok(Outcome::RetryCode(page, CODE_REFUSED))
        }
        None => {
            lockout::unchecked(state, ticket).await?;
            Ok(Outcome::BadRequest(EXPIRED))
        }
    }
}
