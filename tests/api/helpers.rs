#![allow(dead_code)]
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]
//! `spawn_app()`: a Gatehouse on port 0 with a fresh database, and the words the tests are written
//! in: clients, users, a browser, token requests (`oauth_request`), readers for what comes back,
//! and the stored state the tests fake (`stored`, the one place that reaches into the store).
//!
//! Every storage test runs on SQLite; when `GATEHOUSE_TEST_POSTGRES_URL` is set it also runs on a
//! PostgreSQL database created for that test alone and dropped afterwards.

mod oauth_request;
mod second_factor;
mod stored;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::web;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use gatehouse::keys::MasterKey;
use gatehouse::state::AppState;
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use serde_json::{json, Value};

pub use gatehouse::config::Settings;
pub use gatehouse::registry::NewClient;
pub use oauth_request::OAuthRequest;
pub use second_factor::{code, enrol, secret_of, to_start_of_step, user_id};

pub const REDIRECT: &str = "http://127.0.0.1:5173/callback";
pub const ORIGIN: &str = "http://127.0.0.1:5173";
pub const AUDIENCE: &str = "https://api.example.com";
/// A second resource server a client may be registered for.
pub const SECOND_AUDIENCE: &str = "https://reports.example.com";
pub const PASSWORD: &str = "correct horse battery staple";
/// The `state` of every standard authorization request.
pub const STATE: &str = "state-123";
/// JWK members that only a private key has.
pub const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

// ---------------------------------------------------------------------------------------------
// A server per test
// ---------------------------------------------------------------------------------------------

/// Runs `async fn name(app: TestApp)` of the module it stands in (written right below it) as
/// two tests, `name::sqlite` and `name::postgres`; the PostgreSQL one runs only when
/// GATEHOUSE_TEST_POSTGRES_URL is set. A second argument changes the server's settings first:
/// `both_backends!(name, |s: &mut Settings| s.tokens.refresh_retry_window_secs = 5);`.
///
/// The body may also come as a closure, after the optional tweak:
/// `both_backends!(name, |s: &mut Settings| .., |app: TestApp| async move { .. });`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, |$app:ident: TestApp| $body:expr) => {
        $crate::both_backends!(
            $name,
            |_: &mut $crate::helpers::Settings| {},
            |$app: TestApp| $body
        );
    };
    ($name:ident, $tweak:expr, |$app:ident: TestApp| $body:expr) => {
        async fn $name($app: $crate::helpers::TestApp) {
            $body.await
        }
        $crate::both_backends!($name, $tweak);
    };
    ($name:ident) => {
        $crate::both_backends!($name, |_: &mut $crate::helpers::Settings| {});
    };
    ($name:ident, $tweak:expr) => {
        mod $name {
            // The settings tweak names what the test module has in scope.
            #[allow(unused_imports)]
            use super::*;
            use $crate::helpers::{spawn_with, Db};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = spawn_with(Db::Sqlite, $tweak).await;
                super::$name(app.expect("SQLite needs no configuration")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = spawn_with(Db::Postgres, $tweak).await else {
                    eprintln!("GATEHOUSE_TEST_POSTGRES_URL not set: PostgreSQL variant skipped");
                    return;
                };
                super::$name(app).await;
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A running Gatehouse for one test.
pub struct TestApp {
    pub address: String,
    pub issuer: String,
    pub db: Db,
    pub database_url: String,
    pub settings: Settings,
    /// Follows no redirects, keeps cookies: a browser whose every step the test sees.
    pub browser: reqwest::Client,
    /// A client with no cookies.
    pub api: reqwest::Client,
    /// The running server's state (its key set, master key and pool).
    pub state: web::Data<AppState>,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

/// A PostgreSQL database made for one test, dropped with this guard.
pub struct PgDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// A fresh database on the server of GATEHOUSE_TEST_POSTGRES_URL; `None` when it is unset.
    pub fn create(prefix: &str) -> Option<PgDatabase> {
        let base = pg_base()?;
        let name = format!(
            "{prefix}_{}",
            gatehouse::secret::hex(&gatehouse::secret::random_bytes::<8>())
        );
        let mut admin = diesel::pg::PgConnection::establish(&base)
            .expect("connect to GATEHOUSE_TEST_POSTGRES_URL");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create test database");
        let mut url = url::Url::parse(&base).expect("postgres URL");
        url.set_path(&format!("/{name}"));
        Some(PgDatabase {
            url: url.to_string(),
            admin_url: base,
            name,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = diesel::pg::PgConnection::establish(&self.admin_url) {
            let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            let _ = conn.batch_execute(&drop);
        }
    }
}

/// GATEHOUSE_TEST_POSTGRES_URL, when it is set, with `sslmode=disable` unless it names a mode.
///
/// The test process ends while the servers it started still hold their connections, and OpenSSL's
/// exit handler (`OPENSSL_cleanup`, which libpq's TLS registers) then frees what a connection still
/// in use on another thread needs: the process crashed at exit after every test had passed, about
/// one run in three. Without TLS no such state exists. The tests check Gatehouse, not libpq's TLS.
pub fn pg_base() -> Option<String> {
    let url = std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    if url.contains("sslmode=") {
        return Some(url);
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}sslmode=disable"))
}

/// The settings a test server uses: cheap argon2 (test configuration only), the given database.
pub fn test_settings(database_url: &str, issuer: &str, keys_dir: &std::path::Path) -> Settings {
    let env = [
        ("GATEHOUSE_DATABASE_URL", database_url.to_owned()),
        ("GATEHOUSE_ISSUER", issuer.to_owned()),
        ("GATEHOUSE_KEYS_DIR", keys_dir.display().to_string()),
        ("GATEHOUSE_PASSWORDS__MEMORY_KIB", "256".to_owned()),
        ("GATEHOUSE_PASSWORDS__ITERATIONS", "1".to_owned()),
        ("GATEHOUSE_DATABASE__POOL_SIZE", "6".to_owned()),
        ("GATEHOUSE_SERVER__WORKERS", "2".to_owned()),
        // No demo client in the way of the tests' counts; tests/api/front_door.rs turns it on.
        ("GATEHOUSE_DEMO__ENABLED", "off".to_owned()),
    ];
    let env = env.into_iter().map(|(k, v)| (k.to_owned(), v));
    Settings::load_from(None, env).expect("test settings")
}

/// Argon2 at the cost config/default.toml gives it, for the tests that time password checks.
pub fn production_argon2(settings: &mut Settings) {
    let defaults = Settings::load_from(None, Vec::new()).expect("default settings");
    settings.passwords = defaults.passwords;
}

pub async fn spawn_app(db: Db) -> TestApp {
    spawn_with(db, |_| {})
        .await
        .expect("GATEHOUSE_TEST_POSTGRES_URL must be set")
}

/// A server on a fresh PostgreSQL database, or `None` when no PostgreSQL is configured.
pub async fn spawn_app_pg() -> Option<TestApp> {
    spawn_with(Db::Postgres, |_| {}).await
}

/// Spawns a server whose settings `tweak` may change first; `None` for PostgreSQL when no
/// GATEHOUSE_TEST_POSTGRES_URL is set.
pub async fn spawn_with(db: Db, tweak: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, pg) = match db {
        Db::Sqlite => {
            let path = dir.path().join("gatehouse.db");
            (format!("sqlite://{}", path.display()), None)
        }
        Db::Postgres => {
            let pg = PgDatabase::create("gatehouse_test")?;
            (pg.url.clone(), Some(pg))
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().expect("local addr").port();
    let address = format!("http://127.0.0.1:{port}");
    let mut settings = test_settings(&database_url, &address, &dir.path().join("keys"));
    tweak(&mut settings);
    let state = start_server(settings.clone(), MasterKey::generate(), listener).await;
    Some(TestApp {
        address,
        issuer: settings.server.issuer.clone(),
        db,
        database_url,
        settings,
        browser: new_browser(),
        api: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("api client"),
        state,
        _dir: dir,
        _pg: pg,
    })
}

impl TestApp {
    /// Another server like this one (same backend, its own database) with `tweak` applied.
    pub async fn sibling(&self, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let db = self.db;
        spawn_with(db, tweak)
            .await
            .expect("the backend of a running app is configured")
    }
}

/// Starts a Gatehouse on `listener`; returns its state.
pub async fn start_server(
    settings: Settings,
    master: MasterKey,
    listener: TcpListener,
) -> web::Data<AppState> {
    let state = tokio::task::spawn_blocking(move || AppState::init(settings, master))
        .await
        .expect("join")
        .expect("app state");
    let state = web::Data::new(state);
    let server = gatehouse::server::build(state.clone(), listener).expect("server");
    tokio::spawn(server);
    state
}

/// A browser of its own: a cookie jar, no redirects followed.
pub fn new_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("browser")
}

// ---------------------------------------------------------------------------------------------
// Clients and users
// ---------------------------------------------------------------------------------------------

/// A registered client as the tests see it.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

impl TestClient {
    /// The secret of a confidential client.
    pub fn secret(&self) -> &str {
        self.secret.as_deref().expect("a confidential client")
    }

    /// Its HTTP Basic credentials (client_secret_basic).
    pub fn basic(&self) -> String {
        basic(&self.id, self.secret())
    }
}

/// HTTP Basic credentials as RFC 6749 §2.3.1 writes them (these ids and secrets need no escaping).
pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Grant types by their RFC names.
pub fn parse_grant_types(items: &[&str]) -> Vec<gatehouse::oauth::model::GrantType> {
    items
        .iter()
        .map(|s| s.parse().expect("grant type"))
        .collect()
}

/// What [`TestApp::spa`] registers; tests change a field or two of it.
pub fn spa_registration() -> NewClient {
    NewClient {
        name: "Test SPA".into(),
        redirect_uris: vec![REDIRECT.into()],
        scopes: strings(&["api:read", "api:write"]),
        audiences: vec![AUDIENCE.into()],
        allowed_origins: vec![ORIGIN.into()],
        ..Default::default()
    }
}

/// What [`TestApp::confidential_with`] registers: a confidential client with `grant_types` and
/// no redirect URI, for two audiences.
pub fn first_party_registration(grant_types: &[&str]) -> NewClient {
    NewClient {
        name: "First-party app".into(),
        confidential: true,
        grant_types: parse_grant_types(grant_types),
        scopes: strings(&["api:read", "api:write"]),
        audiences: strings(&[AUDIENCE, SECOND_AUDIENCE]),
        ..Default::default()
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Registers a client through the same code as `gatehouse client create`.
    pub fn register(&self, req: NewClient) -> TestClient {
        self.try_register(&req).expect("register client")
    }

    /// A public SPA client: authorization_code + refresh_token, scopes api:read and api:write.
    pub fn spa(&self) -> TestClient {
        self.register(spa_registration())
    }

    /// The cast of most tests: a public SPA, and alice (no roles) who signs in to it.
    pub fn spa_and_alice(&self) -> TestClient {
        self.user("alice", &[]);
        self.spa()
    }

    /// A confidential client with the same grants.
    pub fn confidential(&self) -> TestClient {
        self.register(NewClient {
            name: "Test backend".into(),
            confidential: true,
            allowed_origins: Vec::new(),
            ..spa_registration()
        })
    }

    /// A confidential first-party client with the given grant types, for two audiences.
    pub fn confidential_with(&self, grant_types: &[&str]) -> TestClient {
        self.register(first_party_registration(grant_types))
    }

    /// A first-party client for the password grant with rotating refresh tokens.
    pub fn password_client(&self) -> TestClient {
        self.confidential_with(&["password", "refresh_token"])
    }

    /// A machine client for client_credentials.
    pub fn machine_client(&self) -> TestClient {
        self.confidential_with(&["client_credentials"])
    }
}

// ---------------------------------------------------------------------------------------------
// The browser: /authorize, login, consent
// ---------------------------------------------------------------------------------------------

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    pkce_for(&URL_SAFE_NO_PAD.encode(gatehouse::secret::random_bytes::<32>()))
}

/// A PKCE pair for an arbitrary (even malformed) verifier: challenge = BASE64URL(SHA256(v)).
pub fn pkce_for(verifier: &str) -> Pkce {
    Pkce {
        verifier: verifier.to_owned(),
        challenge: URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes())),
    }
}

/// The standard authorization request of `client_id` with `challenge`, with overrides: `Some(v)`
/// replaces (or adds) a parameter, `None` removes it.
pub fn authz(client_id: &str, challenge: &str, overrides: &[(&str, Option<&str>)]) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("state", STATE),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in overrides {
        let pos = pairs.iter().position(|(name, _)| name == k);
        match (pos, v) {
            (Some(i), Some(v)) => pairs[i].1 = v,
            (Some(i), None) => drop(pairs.remove(i)),
            (None, Some(v)) => pairs.push((k, v)),
            (None, None) => {}
        }
    }
    encode(&pairs)
}

/// Form-urlencodes pairs, in order (duplicates kept).
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k.as_ref(), v.as_ref());
    }
    s.finish()
}

/// One value, form-urlencoded.
pub fn encode_value(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

impl TestApp {
    /// GET a path with the cookie-less client.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        get_with(&self.api, &self.url(path)).await
    }

    /// The published JWKS, as JSON.
    pub async fn jwks(&self) -> Value {
        ok_json(self.get("/.well-known/jwks.json").await).await
    }

    /// GET /authorize with a raw query; the response is not followed.
    pub async fn get_authorize(&self, query: &str) -> reqwest::Response {
        self.browse(&format!("/authorize?{query}")).await
    }

    /// GET /authorize: the standard request of `client` with a fresh challenge and `overrides`
    /// (as [`authz`] takes them).
    pub async fn authorize(
        &self,
        client: &TestClient,
        overrides: &[(&str, Option<&str>)],
    ) -> reqwest::Response {
        let query = authz(&client.id, &pkce().challenge, overrides);
        self.get_authorize(&query).await
    }

    /// GET a path (or an absolute URL) with the browser (cookies kept).
    pub async fn browse(&self, path_or_url: &str) -> reqwest::Response {
        get_with(&self.browser, &self.url_of(path_or_url)).await
    }

    /// POST a form with the browser.
    pub async fn browser_post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        post_with(&self.browser, &self.url(path), form).await
    }

    fn url_of(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.url(path_or_url)
        }
    }

    /// The hidden interaction and csrf fields of the page at `location`, fetched with `browser`.
    pub async fn form_fields(&self, browser: &reqwest::Client, location: &str) -> (String, String) {
        let resp = get_with(browser, &self.url_of(location)).await;
        let status = resp.status().as_u16();
        let page = resp.text().await.expect("page");
        assert_eq!(status, 200, "{location}: {page}");
        (hidden(&page, "interaction"), hidden(&page, "csrf"))
    }

    /// Logs in on the login page at `login_location`; the answer is not followed.
    pub async fn login(
        &self,
        login_location: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let (interaction, csrf) = self.form_fields(&self.browser, login_location).await;
        let form = login_form(&interaction, &csrf, username, password);
        self.browser_post("/login", &form).await
    }

    /// Submits the consent form at `location` with `decision`.
    ///
    /// When the consent was given before, the page itself answers with the code (303 to the
    /// client); approving then returns that answer.
    pub async fn consent(&self, location: &str, decision: &str) -> reqwest::Response {
        if decision == "approve" {
            let page = get_with(&self.browser, &self.url_of(location)).await;
            if page.status().as_u16() == 303 {
                return page;
            }
        }
        let (interaction, csrf) = self.form_fields(&self.browser, location).await;
        let form = [
            ("interaction", &*interaction),
            ("csrf", &*csrf),
            ("decision", decision),
        ];
        self.browser_post("/consent", &form).await
    }

    /// Runs /authorize → login → consent (approve) and returns the redirect's query parameters.
    pub async fn authorize_code(
        &self,
        client: &TestClient,
        username: &str,
        pkce: &Pkce,
        extra: &[(&str, &str)],
    ) -> HashMap<String, String> {
        let extra: Vec<(&str, Option<&str>)> = extra.iter().map(|(k, v)| (*k, Some(*v))).collect();
        let resp = self
            .get_authorize(&authz(&client.id, &pkce.challenge, &extra))
            .await;
        if resp.status().as_u16() == 302 {
            // Signed in already, and the consent is remembered: the answer comes at once.
            return query_of(&self::location(&resp));
        }
        assert_eq!(
            resp.status().as_u16(),
            303,
            "authorize should continue to login or consent"
        );
        let mut location = location(&resp);
        if location.starts_with("/login") {
            let resp = self.login(&location, username, PASSWORD).await;
            assert_eq!(resp.status().as_u16(), 303, "login should answer 303");
            location = self::location(&resp);
        }
        assert!(
            location.starts_with("/consent"),
            "expected consent, got {location}"
        );
        let resp = self.consent(&location, "approve").await;
        assert_eq!(resp.status().as_u16(), 303);
        query_of(&self::location(&resp))
    }

    /// The code of a full authorization as `username` (with `extra` authorize parameters).
    pub async fn code_as(
        &self,
        client: &TestClient,
        username: &str,
        pkce: &Pkce,
        extra: &[(&str, &str)],
    ) -> String {
        let q = self.authorize_code(client, username, pkce, extra).await;
        q.get("code")
            .unwrap_or_else(|| panic!("no code in redirect: {q:?}"))
            .to_owned()
    }

    /// A full authorization as `username` and the token request that would redeem its code,
    /// with no client authentication yet.
    pub async fn redeem(&self, client: &TestClient, username: &str) -> OAuthRequest<'_> {
        let pkce = pkce();
        let code = self.code_as(client, username, &pkce, &[]).await;
        self.token().code(&code, &pkce.verifier)
    }

    /// Full login and code exchange for a confidential client (client_secret_basic).
    pub async fn confidential_tokens(&self, client: &TestClient, username: &str) -> Value {
        self.redeem(client, username).await.basic(client).ok().await
    }

    /// From a login page: signs in as `username` (303), approves (303), returns the code.
    pub async fn sign_in_and_approve(&self, login_page: &str, username: &str) -> String {
        let signed_in = self.login(login_page, username, PASSWORD).await;
        assert_eq!(signed_in.status().as_u16(), 303, "sign-in");
        let approved = self.consent(&location(&signed_in), "approve").await;
        assert_eq!(approved.status().as_u16(), 303, "consent");
        query_of(&location(&approved))["code"].clone()
    }

    /// A new user who signed in to a new SPA: the client and the token response.
    pub async fn signed_in(&self, username: &str, roles: &[&str]) -> (TestClient, Value) {
        let spa = self.spa();
        self.user(username, roles);
        let tokens = self.tokens_for(&spa, username).await;
        (spa, tokens)
    }

    /// Full login for a public client: returns the token response JSON.
    pub async fn tokens_for(&self, client: &TestClient, username: &str) -> Value {
        self.redeem(client, username)
            .await
            .client(client)
            .ok()
            .await
    }
}

/// The login form's fields.
pub fn login_form<'a>(
    interaction: &'a str,
    csrf: &'a str,
    username: &'a str,
    password: &'a str,
) -> [(&'static str, &'a str); 4] {
    [
        ("interaction", interaction),
        ("csrf", csrf),
        ("username", username),
        ("password", password),
    ]
}

pub async fn get_with(browser: &reqwest::Client, url: &str) -> reqwest::Response {
    browser.get(url).send().await.expect("GET")
}

pub async fn post_with(
    browser: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    browser.post(url).form(form).send().await.expect("POST")
}

// ---------------------------------------------------------------------------------------------
// Reading what comes back
// ---------------------------------------------------------------------------------------------

/// Status, headers and JSON body of a response.
pub async fn read(resp: reqwest::Response) -> (u16, HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, headers, body)
}

/// Asserts a 200 response and returns its JSON.
pub async fn ok_json(resp: reqwest::Response) -> Value {
    let (status, _, body) = read(resp).await;
    assert_eq!(status, 200, "expected success, got {body}");
    body
}

/// Asserts an OAuth error response: status and error code.
pub async fn assert_oauth_error(resp: reqwest::Response, status: u16, error: &str) -> Value {
    let (got, _, body) = read(resp).await;
    assert_eq!(got, status, "status for {body}");
    assert_eq!(body["error"], error, "error code in {body}");
    body
}

/// A string member of a JSON object.
pub fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v}"))
        .to_owned()
}

/// The introspection answer for anything not active.
pub fn inactive() -> Value {
    json!({"active": false})
}

/// Something with response headers.
pub trait Headers {
    fn header_map(&self) -> &HeaderMap;
}

impl Headers for reqwest::Response {
    fn header_map(&self) -> &HeaderMap {
        self.headers()
    }
}

impl Headers for HeaderMap {
    fn header_map(&self) -> &HeaderMap {
        self
    }
}

/// A header's value, when present.
pub fn header(from: &impl Headers, name: &str) -> Option<String> {
    let value = from.header_map().get(name)?;
    Some(value.to_str().expect("ascii header").to_owned())
}

/// The Location header of a response.
pub fn location(resp: &reqwest::Response) -> String {
    header(resp, "location")
        .unwrap_or_else(|| panic!("no Location header (status {})", resp.status()))
}

/// The Set-Cookie header of a response, if any.
pub fn set_cookie(resp: &reqwest::Response) -> Option<String> {
    header(resp, "set-cookie")
}

/// (name, value) of a Set-Cookie header.
pub fn cookie_pair(set_cookie: &str) -> (String, String) {
    let first = set_cookie.split(';').next().expect("cookie pair").trim();
    let (name, value) = first.split_once('=').expect("name=value");
    (name.to_owned(), value.to_owned())
}

/// Asserts an error redirect to exactly the registered redirect URI, with `error`, `state` and
/// the issuer, and no code; returns its parameters.
pub fn assert_error_redirect(
    app: &TestApp,
    resp: &reqwest::Response,
    error: &str,
    state: Option<&str>,
    what: &str,
) -> HashMap<String, String> {
    let status = resp.status().as_u16();
    assert!(
        status == 302 || status == 303,
        "{what}: expected a redirect, got {status}"
    );
    let loc = location(resp);
    let url = url::Url::parse(&loc).expect("absolute redirect");
    let target = format!("{}{}", url.origin().ascii_serialization(), url.path());
    assert_eq!(target, REDIRECT, "{what}: redirect target");
    assert!(url.fragment().is_none(), "{what}: no fragment in {loc}");
    let q = query_of(&loc);
    let got = |name: &str| q.get(name).map(String::as_str);
    assert_eq!(got("error"), Some(error), "{what}: error in {loc}");
    assert_eq!(got("state"), state, "{what}: state in {loc}");
    assert_eq!(
        got("iss"),
        Some(app.issuer.as_str()),
        "{what}: iss in {loc}"
    );
    assert!(
        !q.contains_key("code"),
        "{what}: an error must carry no code: {loc}"
    );
    q
}

/// Asserts that /authorize accepted the request: it goes on to the login (or consent) page.
pub fn assert_continues(resp: &reqwest::Response, what: &str) {
    assert!(
        resp.status().is_redirection(),
        "{what}: status {}",
        resp.status()
    );
    let loc = location(resp);
    // Or, signed in with the consent remembered, the code at once.
    let code_at_once = loc.contains("code=") && !loc.contains("error=");
    assert!(
        loc.starts_with("/login") || loc.starts_with("/consent") || code_at_once,
        "{what}: expected to continue to login/consent, got {loc}"
    );
}

/// Asserts that /authorize accepted the request of a browser with no session: 303 to login.
pub fn assert_to_login(resp: &reqwest::Response, what: &str) {
    assert_eq!(resp.status().as_u16(), 303, "{what}");
    let loc = location(resp);
    assert!(loc.starts_with("/login?"), "{what}: {loc}");
}

/// The query parameters of a URL.
pub fn query_of(location: &str) -> HashMap<String, String> {
    let url = url::Url::parse(location).expect("absolute URL");
    url.query_pairs().into_owned().collect()
}

/// A hidden form field's value in a page.
pub fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in page:\n{page}"))
        + marker.len();
    let end = page[start..].find('"').expect("closing quote") + start;
    page[start..end].to_owned()
}

/// Decodes a JWT's header and claims without checking anything.
pub fn jwt_parts(jwt: &str) -> (Value, Value) {
    let mut parts = jwt
        .split('.')
        .map(|p| URL_SAFE_NO_PAD.decode(p).expect("b64"));
    let header = parts.next().expect("header");
    let claims = parts.next().expect("claims");
    (
        serde_json::from_slice(&header).expect("header json"),
        serde_json::from_slice(&claims).expect("claims json"),
    )
}

/// The claims of a token response's access token.
pub fn claims_of(body: &Value) -> Value {
    jwt_parts(&s(body, "access_token")).1
}

/// A JSON value as a JWT part: BASE64URL of its bytes.
pub fn b64_json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The words of a space-separated list (a scope), sorted.
pub fn sorted_words(list: &str) -> Vec<String> {
    let mut words: Vec<String> = list.split(' ').map(str::to_owned).collect();
    words.sort_unstable();
    words
}

/// A space-separated scope as a set.
pub fn scope_set(scope: &str) -> BTreeSet<String> {
    scope.split(' ').map(str::to_owned).collect()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Lower-case hex SHA-256: how Gatehouse stores client secrets, and tokens made before codes and
/// refresh tokens carried their time (`stored_key`).
pub fn sha256_hex(value: &str) -> String {
    gatehouse::secret::hex(&sha256(value.as_bytes()))
}

/// The key Gatehouse stores a code or refresh token under: its SHA-256 (hex), behind the token's
/// time digits when it has them (`secret::TokenHash`).
pub fn stored_key(value: &str) -> String {
    gatehouse::secret::TokenHash::of(value).0
}

// ---------------------------------------------------------------------------------------------
// Time and processes
// ---------------------------------------------------------------------------------------------

/// One timing comparison at a time in this process: two argon2-bound measurements running side
/// by side on a small machine would mostly measure each other.
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Times `attempt(true)` against `attempt(false)` over `rounds` back-to-back pairs (alternating
/// which goes first, after one untimed warm-up each) and returns the median time of each and the
/// median of the pairs' ratios (false over true). A pair runs under the same load, so its ratio
/// stays steady while the machine's load comes and goes.
pub async fn compare_times<F, Fut>(rounds: usize, mut attempt: F) -> (Duration, Duration, f64)
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = ()>,
{
    let _alone = TIMING.lock().await;
    attempt(true).await;
    attempt(false).await;
    let (mut yes, mut no, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut pair = [Duration::ZERO; 2];
        for which in [round % 2 == 0, round % 2 != 0] {
            let started = Instant::now();
            attempt(which).await;
            pair[usize::from(which)] = started.elapsed();
        }
        ratios.push(pair[0].as_secs_f64() / pair[1].as_secs_f64());
        no.push(pair[0]);
        yes.push(pair[1]);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    ratios.sort_unstable_by(f64::total_cmp);
    (median(&mut yes), median(&mut no), ratios[rounds / 2])
}

/// Asserts that `attempt(true)` and `attempt(false)` cost alike: the median ratio of their times
/// within a factor of two. Generous enough for a loaded, shared machine, and still decisive
/// where one of them skips an argon2 hash that dominates the other (a ratio near 0.05).
pub async fn assert_same_cost<F, Fut>(what: &str, attempt: F)
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = ()>,
{
    let (yes, no, ratio) = compare_times(21, attempt).await;
    assert!(
        (0.5..=2.0).contains(&ratio),
        "{what}: medians {yes:?} and {no:?}, median ratio {ratio:.2}"
    );
}

/// Polls `probe` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// Kills a child process when the test ends, whatever happens.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
