#![allow(dead_code)]
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]
//! `spawn_app()`: a Gatehouse on port 0 with a fresh database, and helpers to drive it.
//!
//! Every storage test runs on SQLite; when `GATEHOUSE_TEST_POSTGRES_URL` is set it also runs on a
//! PostgreSQL database created for that test alone and dropped afterwards.

use std::net::TcpListener;

use actix_web::web;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use gatehouse::config::Settings;
use gatehouse::keys::MasterKey;
use gatehouse::passwords::Passwords;
use gatehouse::registry::{self, NewClient};
use gatehouse::state::AppState;
use gatehouse::store::{AnyConnection, Backend, ConnectionManager};
use reqwest::redirect::Policy;
use serde_json::Value;

pub const REDIRECT: &str = "http://127.0.0.1:5173/callback";
pub const ORIGIN: &str = "http://127.0.0.1:5173";
pub const AUDIENCE: &str = "https://api.example.com";
pub const PASSWORD: &str = "correct horse battery staple";

/// Runs the test body on SQLite, and on PostgreSQL when GATEHOUSE_TEST_POSTGRES_URL is set.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Db::Sqlite).await;
                ($body)(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = $crate::helpers::spawn_app_pg().await else {
                    eprintln!("GATEHOUSE_TEST_POSTGRES_URL not set: PostgreSQL variant skipped");
                    return;
                };
                ($body)(app).await;
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
    pg_drop: Option<PgDrop>,
}

struct PgDrop {
    admin_url: String,
    name: String,
}

impl Drop for PgDrop {
    fn drop(&mut self) {
        if let Ok(mut conn) = diesel::pg::PgConnection::establish(&self.admin_url) {
            let _ = conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The settings a test server uses: cheap argon2 (test configuration only), the given database.
pub fn test_settings(database_url: &str, issuer: &str, keys_dir: &std::path::Path) -> Settings {
    let env = vec![
        ("GATEHOUSE_DATABASE_URL".to_owned(), database_url.to_owned()),
        ("GATEHOUSE_ISSUER".to_owned(), issuer.to_owned()),
        (
            "GATEHOUSE_KEYS_DIR".to_owned(),
            keys_dir.display().to_string(),
        ),
        (
            "GATEHOUSE_PASSWORDS__MEMORY_KIB".to_owned(),
            "256".to_owned(),
        ),
        ("GATEHOUSE_PASSWORDS__ITERATIONS".to_owned(), "1".to_owned()),
        ("GATEHOUSE_DATABASE__POOL_SIZE".to_owned(), "6".to_owned()),
        ("GATEHOUSE_SERVER__WORKERS".to_owned(), "2".to_owned()),
    ];
    Settings::load_from(None, env).expect("test settings")
}

pub async fn spawn_app(db: Db) -> TestApp {
    match db {
        Db::Sqlite => spawn_with(Db::Sqlite, None, |_| {}).await,
        Db::Postgres => spawn_app_pg()
            .await
            .expect("GATEHOUSE_TEST_POSTGRES_URL must be set"),
    }
}

/// A server on a fresh PostgreSQL database, or `None` when no PostgreSQL is configured.
pub async fn spawn_app_pg() -> Option<TestApp> {
    let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    Some(spawn_with(Db::Postgres, Some(base), |_| {}).await)
}

/// Creates a fresh PostgreSQL database; returns its URL and the guard that drops it.
fn fresh_pg_database(base: &str) -> (String, PgDrop) {
    let name = format!(
        "gatehouse_test_{}",
        gatehouse::secret::hex(&gatehouse::secret::random_bytes::<8>())
    );
    let mut admin =
        diesel::pg::PgConnection::establish(base).expect("connect to GATEHOUSE_TEST_POSTGRES_URL");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .expect("create test database");
    let mut url = url::Url::parse(base).expect("postgres URL");
    url.set_path(&format!("/{name}"));
    (
        url.to_string(),
        PgDrop {
            admin_url: base.to_owned(),
            name,
        },
    )
}

/// Spawns a server; `tweak` may change the settings first.
pub async fn spawn_with(
    db: Db,
    pg_base: Option<String>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, pg_drop) = match db {
        Db::Sqlite => (
            format!("sqlite://{}", dir.path().join("gatehouse.db").display()),
            None,
        ),
        Db::Postgres => {
            let (url, guard) = fresh_pg_database(&pg_base.expect("postgres base URL"));
            (url, Some(guard))
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().expect("local addr").port();
    let address = format!("http://127.0.0.1:{port}");
    let mut settings = test_settings(&database_url, &address, &dir.path().join("keys"));
    tweak(&mut settings);
    let issuer = settings.server.issuer.clone();
    let state = {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || AppState::init(settings, MasterKey::generate()))
            .await
            .expect("join")
            .expect("app state")
    };
    let state = web::Data::new(state);
    let server = gatehouse::server::build(state.clone(), listener).expect("server");
    tokio::spawn(server);
    TestApp {
        address,
        issuer,
        db,
        database_url,
        settings,
        browser: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .expect("browser client"),
        api: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("api client"),
        state,
        _dir: dir,
        pg_drop,
    }
}

/// A registered client as the tests see it.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = URL_SAFE_NO_PAD.encode(gatehouse::secret::random_bytes::<32>());
    let challenge = gatehouse::oauth::pkce::s256(&verifier);
    Pkce {
        verifier,
        challenge,
    }
}

/// The query parameters of a URL.
pub fn query_of(location: &str) -> std::collections::HashMap<String, String> {
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
    let mut parts = jwt.split('.');
    let header = URL_SAFE_NO_PAD
        .decode(parts.next().expect("header"))
        .expect("b64");
    let claims = URL_SAFE_NO_PAD
        .decode(parts.next().expect("claims"))
        .expect("b64");
    (
        serde_json::from_slice(&header).expect("header json"),
        serde_json::from_slice(&claims).expect("claims json"),
    )
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A direct database connection (what the CLI uses).
    pub fn conn(&self) -> AnyConnection {
        ConnectionManager::new(self.database_url.clone())
            .connect()
            .expect("connect")
    }

    pub fn backend(&self) -> Backend {
        Backend::of(&self.database_url)
    }

    /// Registers a client through the same code as `gatehouse client create`.
    pub fn register(&self, req: NewClient) -> TestClient {
        let mut conn = self.conn();
        let r = registry::create_client(&mut conn, &req, gatehouse::state::now())
            .expect("register client");
        TestClient {
            id: r.client.id.to_string(),
            secret: r.secret.map(|s| s.expose().to_owned()),
        }
    }

    /// A public SPA client: authorization_code + refresh_token, scopes api:read and api:write.
    pub fn spa(&self) -> TestClient {
        self.register(NewClient {
            name: "Test SPA".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: vec!["api:read".into(), "api:write".into()],
            audiences: vec![AUDIENCE.into()],
            allowed_origins: vec![ORIGIN.into()],
            ..Default::default()
        })
    }

    /// A confidential client with the same grants.
    pub fn confidential(&self) -> TestClient {
        self.register(NewClient {
            name: "Test backend".into(),
            confidential: true,
            redirect_uris: vec![REDIRECT.into()],
            scopes: vec!["api:read".into(), "api:write".into()],
            audiences: vec![AUDIENCE.into()],
            ..Default::default()
        })
    }

    /// Creates a user through the same code as `gatehouse user create`.
    pub fn user(&self, username: &str, roles: &[&str]) -> String {
        let mut conn = self.conn();
        let passwords = Passwords::new(&self.settings.passwords).expect("passwords");
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        registry::create_user(
            &mut conn,
            &passwords,
            username,
            PASSWORD,
            &roles,
            gatehouse::state::now(),
        )
        .expect("create user")
        .id
    }

    /// The standard authorize query for a client.
    pub fn authorize_query(
        &self,
        client: &TestClient,
        challenge: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", &client.id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("state", "state-123")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        q.finish()
    }

    /// GET /authorize with a raw query; the response is not followed.
    pub async fn get_authorize(&self, query: &str) -> reqwest::Response {
        self.browser
            .get(format!("{}/authorize?{query}", self.address))
            .send()
            .await
            .expect("GET /authorize")
    }

    /// GET a path on the server with the browser (cookies kept).
    pub async fn browse(&self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.url(path_or_url)
        };
        self.browser.get(url).send().await.expect("GET")
    }

    /// POST a form with the browser.
    pub async fn browser_post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.browser
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    /// Logs in on the login page reached from `/authorize`; returns the consent page location.
    pub async fn login(
        &self,
        login_location: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let page = self
            .browse(login_location)
            .await
            .text()
            .await
            .expect("login page");
        let interaction = hidden(&page, "interaction");
        let csrf = hidden(&page, "csrf");
        self.browser_post(
            "/login",
            &[
                ("interaction", &interaction),
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Runs /authorize → login → consent (approve) and returns the redirect's query parameters.
    pub async fn authorize_code(
        &self,
        client: &TestClient,
        username: &str,
        pkce: &Pkce,
        extra: &[(&str, &str)],
    ) -> std::collections::HashMap<String, String> {
        let resp = self
            .get_authorize(&self.authorize_query(client, &pkce.challenge, extra))
            .await;
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

    /// Submits the consent form at `location` with `decision`.
    pub async fn consent(&self, location: &str, decision: &str) -> reqwest::Response {
        let page = self
            .browse(location)
            .await
            .text()
            .await
            .expect("consent page");
        let interaction = hidden(&page, "interaction");
        let csrf = hidden(&page, "csrf");
        self.browser_post(
            "/consent",
            &[
                ("interaction", &interaction),
                ("csrf", &csrf),
                ("decision", decision),
            ],
        )
        .await
    }

    /// POST a form to an OAuth endpoint, optionally with an Authorization header.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        authorization: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.api.post(self.url(path)).form(form);
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        req.send().await.expect("POST")
    }

    /// Exchanges a code for tokens as a public client.
    pub async fn exchange(
        &self,
        client: &TestClient,
        code: &str,
        verifier: &str,
    ) -> reqwest::Response {
        self.post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("client_id", &client.id),
                ("code_verifier", verifier),
            ],
            None,
        )
        .await
    }

    /// Full login for a public client: returns the token response JSON.
    pub async fn tokens_for(&self, client: &TestClient, username: &str) -> Value {
        let pkce = pkce();
        let q = self.authorize_code(client, username, &pkce, &[]).await;
        let resp = self.exchange(client, &q["code"], &pkce.verifier).await;
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.expect("token json")
    }

    /// Refreshes as a public client.
    pub async fn refresh(&self, client: &TestClient, refresh_token: &str) -> reqwest::Response {
        self.post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", &client.id),
            ],
            None,
        )
        .await
    }

    /// Introspects with a confidential client's credentials.
    pub async fn introspect(&self, caller: &TestClient, token: &str) -> Value {
        let auth = basic(&caller.id, caller.secret.as_deref().expect("confidential"));
        let resp = self
            .post_form("/introspect", &[("token", token)], Some(&auth))
            .await;
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.expect("introspection json")
    }
}

/// The Location header of a response.
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location header (status {})", resp.status()))
        .to_str()
        .expect("ascii location")
        .to_owned()
}

/// Asserts an OAuth error response: status and error code.
pub async fn assert_oauth_error(resp: reqwest::Response, status: u16, error: &str) -> Value {
    let got = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error body is JSON");
    assert_eq!(got, status, "status for {body}");
    assert_eq!(body["error"], error, "error code in {body}");
    body
}
