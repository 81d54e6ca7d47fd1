//! Crashes and several instances, at the level of processes: `gatehouse serve` started from the
//! built binary on one database, killed with SIGKILL under load and started again, or run three
//! at once on one PostgreSQL database, with clients speaking HTTP to them. What a client was given
//! stays given: after a crash every token a client received still works, and three instances
//! behind one load balancer redeem a code once, rotate a refresh token to one successor, sign with
//! a key rotated on any of them, and lose nothing when one of them dies.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{
    authz, basic, free_port, hidden, jwt_parts, login_form, pkce, query_of, s, KillOnDrop,
    PgDatabase, Pkce, AUDIENCE, PASSWORD, REDIRECT,
};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// Refresh-token chains each load runs side by side.
const CHAINS: usize = 16;

/// How long a load runs before (and, with three instances, after) the kill.
const LOAD: Duration = Duration::from_millis(1500);

/// A retry window long enough to outlast a restart. A rotation the server committed just before
/// it died leaves the client holding a rotated token whose successor it never saw; within the
/// window presenting that token again is the lost response the window exists for, and yields the
/// successor. Without it, presenting the token is (rightly) reuse, and a kill under load does
/// land between such a commit and its answer.
const RETRY_WINDOW: (&str, &str) = ("GATEHOUSE_TOKENS__REFRESH_RETRY_WINDOW_SECS", "60");

// ---------------------------------------------------------------------------------------------
// A database, and the processes that run on it
// ---------------------------------------------------------------------------------------------

/// One deployment: a database, its master key and issuer, and the settings every process of it
/// (servers and commands) runs with.
struct Deployment {
    dir: tempfile::TempDir,
    url: String,
    master_key: String,
    issuer: String,
    settings: Vec<(String, String)>,
    _pg: Option<PgDatabase>,
}

/// A registered client: its id and, when confidential, its secret.
#[derive(Clone)]
struct Client {
    id: String,
    secret: Option<String>,
}

impl Client {
    fn basic(&self) -> String {
        basic(
            &self.id,
            self.secret.as_deref().expect("a confidential client"),
        )
    }
}

impl Deployment {
    /// A fresh SQLite database, migrated.
    fn sqlite(settings: &[(&str, &str)]) -> Deployment {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
        gatehouse::store::create_sqlite_file(&url).expect("database file");
        Deployment::new(dir, url, None, settings)
    }

    /// A fresh PostgreSQL database, migrated; `None` without GATEHOUSE_TEST_POSTGRES_URL.
    fn postgres(settings: &[(&str, &str)]) -> Option<Deployment> {
        let pg = PgDatabase::create("gatehouse_instances")?;
        let dir = tempfile::tempdir().expect("temp dir");
        Some(Deployment::new(dir, pg.url.clone(), Some(pg), settings))
    }

    fn new(
        dir: tempfile::TempDir,
        url: String,
        pg: Option<PgDatabase>,
        settings: &[(&str, &str)],
    ) -> Deployment {
        let deployment = Deployment {
            dir,
            url,
            master_key: gatehouse::secret::hex(&gatehouse::secret::random_bytes::<32>()),
            // Every instance has the same issuer, as behind one load balancer.
            issuer: format!("http://127.0.0.1:{}", free_port()),
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            _pg: pg,
        };
        deployment.run(&["migrate"], None);
        deployment
    }

    /// `gatehouse` with a clean environment and this deployment's.
    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("GATEHOUSE_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(self.dir.path())
            .env("GATEHOUSE_DATABASE_URL", &self.url)
            .env("GATEHOUSE_KEYS_DIR", self.dir.path().join("keys"))
            .env("GATEHOUSE_MASTER_KEY", &self.master_key)
            .env("GATEHOUSE_ISSUER", &self.issuer)
            // Cheap argon2: the tests' configuration only.
            .env("GATEHOUSE_PASSWORDS__MEMORY_KIB", "256")
            .env("GATEHOUSE_PASSWORDS__ITERATIONS", "1")
            .env("GATEHOUSE_DEMO__ENABLED", "off")
            .env("GATEHOUSE_SERVER__WORKERS", "2")
            // Every request comes from 127.0.0.1: the per-address limit would measure the load.
            .env("GATEHOUSE_RATE_LIMITS__TOKEN_PER_MINUTE", "0")
            .envs(self.settings.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs `gatehouse ARGS` (with `stdin`), asserts success, returns standard output.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait for gatehouse");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "gatehouse {args:?}: {}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `gatehouse client create --json ARGS`.
    fn client(&self, args: &[&str]) -> Client {
        let mut all = vec!["client", "create", "--json", "--name", "Test client"];
        all.extend_from_slice(args);
        let out = self.run(&all, None);
        let json: Value = serde_json::from_str(out.trim()).expect("client create --json");
        Client {
            id: s(&json, "client_id"),
            secret: json["client_secret"].as_str().map(str::to_owned),
        }
    }

    /// A first-party confidential client for the password grant with rotating refresh tokens.
    fn password_client(&self) -> Client {
        self.client(&[
            "--confidential",
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--scope",
            "api:read",
            "--audience",
            AUDIENCE,
        ])
    }

    /// A machine client for client_credentials.
    fn machine_client(&self) -> Client {
        self.client(&[
            "--confidential",
            "--grant-type",
            "client_credentials",
            "--scope",
            "api:read",
            "--audience",
            AUDIENCE,
        ])
    }

    /// A public browser client: authorization_code with PKCE and refresh tokens.
    fn spa(&self) -> Client {
        self.client(&[
            "--redirect-uri",
            REDIRECT,
            "--scope",
            "api:read",
            "--audience",
            AUDIENCE,
        ])
    }

    /// `gatehouse user create` with the tests' password.
    fn user(&self, username: &str) {
        self.run(&["user", "create", "--username", username], Some(PASSWORD));
    }

    /// `gatehouse serve` on a port of its own, once it answers /readyz.
    async fn start(&self) -> Server {
        let server = self.spawn();
        server.ready().await;
        server
    }

    /// `n` servers started at once, each once it answers /readyz.
    async fn start_many(&self, n: usize) -> Vec<Server> {
        let servers: Vec<Server> = (0..n).map(|_| self.spawn()).collect();
        for server in &servers {
            server.ready().await;
        }
        servers
    }

    fn spawn(&self) -> Server {
        let port = free_port();
        let log = self.dir.path().join(format!("server-{port}.log"));
        let child = self
            .command()
            .arg("serve")
            .env("GATEHOUSE_BIND", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn gatehouse serve");
        Server {
            address: format!("http://127.0.0.1:{port}"),
            child: KillOnDrop(child),
            log,
        }
    }
}

/// A running `gatehouse serve`, killed when the test ends.
struct Server {
    address: String,
    child: KillOnDrop,
    log: PathBuf,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http.get(format!("{}/readyz", self.address)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within 30 s:\n{}",
                self.address,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush, whatever the server was doing.
    fn crash(&mut self) {
        self.child.0.kill().expect("SIGKILL the server");
        self.child.0.wait().expect("reap the server");
    }
}

// ---------------------------------------------------------------------------------------------
// Speaking to them
// ---------------------------------------------------------------------------------------------

/// A client of the servers: no redirects followed, no cookies, a bound on every request.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// A response received in full: status and JSON body. `Err` when the request failed on the way
/// (the server died before its answer was complete): nothing was received.
type Answer = Result<(u16, Value), reqwest::Error>;

async fn post(
    http: &reqwest::Client,
    url: String,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> Answer {
    let mut req = http.post(url).form(form);
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    Ok((status, body))
}

async fn refresh(http: &reqwest::Client, base: &str, client: &Client, rt: &str) -> Answer {
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    post(http, format!("{base}/token"), Some(&client.basic()), &form).await
}

async fn client_credentials(http: &reqwest::Client, base: &str, client: &Client) -> Answer {
    let form = [("grant_type", "client_credentials")];
    post(http, format!("{base}/token"), Some(&client.basic()), &form).await
}

/// A password grant as `username`: the token response.
async fn sign_in(http: &reqwest::Client, base: &str, client: &Client, username: &str) -> Value {
    let form = [
        ("grant_type", "password"),
        ("username", username),
        ("password", PASSWORD),
    ];
    let answer = post(http, format!("{base}/token"), Some(&client.basic()), &form).await;
    ok(answer.expect("password grant"), "password grant")
}

/// The body of a 200 answer.
fn ok((status, body): (u16, Value), what: &str) -> Value {
    assert_eq!(status, 200, "{what}: {body}");
    body
}

/// Whether introspection at `base`, by `caller`, says `token` is active.
async fn active(http: &reqwest::Client, base: &str, caller: &Client, token: &str) -> bool {
    let form = [("token", token)];
    let answer = post(
        http,
        format!("{base}/introspect"),
        Some(&caller.basic()),
        &form,
    )
    .await;
    ok(answer.expect("introspect"), "introspect")["active"] == true
}

/// The `kid` in a JWT's header.
fn kid_of(jwt: &str) -> String {
    s(&jwt_parts(jwt).0, "kid")
}

async fn jwks_kids(http: &reqwest::Client, base: &str) -> Vec<String> {
    let resp = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await;
    let jwks: Value = resp.expect("GET jwks").json().await.expect("JWKS JSON");
    let keys = jwks["keys"].as_array().expect("keys").iter();
    keys.map(|k| s(k, "kid")).collect()
}

/// What one refresh-token chain received: every access token, and its last refresh token.
struct Chain {
    access_tokens: Vec<String>,
    refresh_token: String,
    rotations: usize,
}

impl Chain {
    fn seeded(tokens: &Value) -> Chain {
        Chain {
            access_tokens: vec![s(tokens, "access_token")],
            refresh_token: s(tokens, "refresh_token"),
            rotations: 0,
        }
    }

    fn received(&mut self, body: &Value) {
        self.access_tokens.push(s(body, "access_token"));
        self.refresh_token = s(body, "refresh_token");
        self.rotations += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A crash loses nothing a client received
// ---------------------------------------------------------------------------------------------

/// Rotates `chain` at `base` until a request fails on the way (the server died). Any answer but
/// 200 ends the chain too, and is returned: nothing refuses a live chain's token.
async fn rotate_until_killed(
    http: reqwest::Client,
    base: String,
    client: Client,
    mut chain: Chain,
) -> (Chain, Option<String>) {
    loop {
        match refresh(&http, &base, &client, &chain.refresh_token).await {
            Ok((200, body)) => chain.received(&body),
            Ok((status, body)) => return (chain, Some(format!("{status} {body}"))),
            Err(_) => return (chain, None),
        }
    }
}

async fn crash_loses_nothing_a_client_received(deployment: Deployment) {
    let client = deployment.password_client();
    deployment.user("alice");
    let mut server = deployment.start().await;
    let http = http();
    let mut seeds = Vec::new();
    for _ in 0..CHAINS {
        seeds.push(Chain::seeded(
            &sign_in(&http, &server.address, &client, "alice").await,
        ));
    }
    let load: Vec<_> = seeds
        .into_iter()
        .map(|chain| {
            let run =
                rotate_until_killed(http.clone(), server.address.clone(), client.clone(), chain);
            tokio::spawn(run)
        })
        .collect();
    tokio::time::sleep(LOAD).await;
    // Requests are in flight: each chain has one out at every moment.
    server.crash();
    let mut chains = Vec::new();
    for task in load {
        let (chain, refused) = task.await.expect("load task");
        assert!(refused.is_none(), "a live chain was refused: {refused:?}");
        chains.push(chain);
    }
    let rotations: usize = chains.iter().map(|c| c.rotations).sum();
    assert!(
        chains.iter().all(|c| c.rotations > 0),
        "every chain rotated before the crash"
    );
    eprintln!("{rotations} rotations received over {CHAINS} chains before the crash");

    // Started again on the same database: every refresh token last received rotates …
    let server = deployment.start().await;
    for chain in &chains {
        let answer = refresh(&http, &server.address, &client, &chain.refresh_token).await;
        let body = ok(
            answer.expect("refresh after restart"),
            &format!(
                "the last refresh token of a chain after {} rotations ({rotations} in all)",
                chain.rotations
            ),
        );
        assert_ne!(s(&body, "refresh_token"), chain.refresh_token);
        // … to a successor that rotates in turn.
        let next = refresh(&http, &server.address, &client, &s(&body, "refresh_token")).await;
        ok(next.expect("refresh"), "the successor after restart");
    }
    // … and every access token received is active.
    let mut checked = 0;
    for chain in &chains {
        for token in &chain.access_tokens {
            assert!(
                active(&http, &server.address, &client, token).await,
                "an access token received before the crash is inactive after it"
            );
            checked += 1;
        }
    }
    assert!(checked > CHAINS, "{checked} access tokens checked");
}

mod crash_loses_nothing_a_client_received {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::crash_loses_nothing_a_client_received(Deployment::sqlite(&[RETRY_WINDOW])).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(deployment) = Deployment::postgres(&[RETRY_WINDOW]) else {
            eprintln!("GATEHOUSE_TEST_POSTGRES_URL not set: PostgreSQL variant skipped");
            return;
        };
        super::crash_loses_nothing_a_client_received(deployment).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Three instances on one PostgreSQL database
// ---------------------------------------------------------------------------------------------

/// A migrated PostgreSQL database for three instances, or `None` (and a note) without
/// GATEHOUSE_TEST_POSTGRES_URL.
fn three_instance_deployment(test: &str, settings: &[(&str, &str)]) -> Option<Deployment> {
    let deployment = Deployment::postgres(settings);
    if deployment.is_none() {
        eprintln!("GATEHOUSE_TEST_POSTGRES_URL not set: {test} skipped");
    }
    deployment
}

/// Three servers on the deployment's database. The first starts alone and makes the first
/// signing key, as a deployment's first instance does; the other two then start together.
async fn three_instances(deployment: &Deployment) -> Vec<Server> {
    let mut servers = vec![deployment.start().await];
    servers.extend(deployment.start_many(2).await);
    servers
}

/// Sends `n` copies of a token request at once, spread over `servers` in turn; returns each
/// answer (all received: every server stays up).
async fn race(
    http: &reqwest::Client,
    servers: &[Server],
    n: usize,
    authorization: Option<String>,
    form: Vec<(&'static str, String)>,
) -> Vec<(u16, Value)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let form = Arc::new(form);
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let url = format!("{}/token", servers[i % servers.len()].address);
            let (http, barrier, form) = (http.clone(), barrier.clone(), form.clone());
            let authorization = authorization.clone();
            tokio::spawn(async move {
                let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                barrier.wait().await;
                post(&http, url, authorization.as_deref(), &form).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task").expect("every instance answers"));
    }
    answers
}

/// A browser signing in as `username` at `base` and approving: the authorization code.
async fn authorization_code(base: &str, client: &Client, username: &str, pkce: &Pkce) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("browser");
    let location = |resp: &reqwest::Response| {
        let loc = resp.headers().get("location").expect("a redirect");
        loc.to_str().expect("ascii").to_owned()
    };
    let url = |loc: &str| format!("{base}{loc}");
    let query = authz(&client.id, &pkce.challenge, &[]);
    let resp = browser
        .get(url(&format!("/authorize?{query}")))
        .send()
        .await;
    let resp = resp.expect("GET /authorize");
    assert_eq!(resp.status().as_u16(), 303, "authorize continues to login");
    let mut loc = location(&resp);
    for _ in 0..4 {
        if loc.starts_with(REDIRECT) {
            return query_of(&loc)
                .remove("code")
                .unwrap_or_else(|| panic!("no code in {loc}"));
        }
        let page = browser.get(url(&loc)).send().await.expect("GET page");
        if page.status().is_redirection() {
            loc = location(&page);
            continue;
        }
        let page = page.text().await.expect("page");
        let (interaction, csrf) = (hidden(&page, "interaction"), hidden(&page, "csrf"));
        let resp = if loc.starts_with("/login") {
            let form = login_form(&interaction, &csrf, username, PASSWORD);
            browser.post(url("/login")).form(&form).send().await
        } else {
            let form = [
                ("interaction", interaction.as_str()),
                ("csrf", csrf.as_str()),
                ("decision", "approve"),
            ];
            browser.post(url("/consent")).form(&form).send().await
        };
        let resp = resp.expect("POST form");
        assert_eq!(resp.status().as_u16(), 303, "{loc} answers 303");
        loc = location(&resp);
    }
    panic!("no code after login and consent; last at {loc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_redeem_one_code_exactly_once() {
    let test = "three_instances_redeem_one_code_exactly_once";
    let Some(deployment) = three_instance_deployment(test, &[]) else {
        return;
    };
    let spa = deployment.spa();
    let introspector = deployment.machine_client();
    deployment.user("alice");
    let servers = three_instances(&deployment).await;
    let http = http();
    let pkce = pkce();
    let code = authorization_code(&servers[0].address, &spa, "alice", &pkce).await;

    let form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", REDIRECT.to_owned()),
        ("code_verifier", pkce.verifier.clone()),
        ("client_id", spa.id.clone()),
    ];
    let answers = race(&http, &servers, 24, None, form).await;
    let issued: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(issued.len(), 1, "one code, one token response: {answers:?}");
    for (status, body) in &answers {
        assert!(
            *status == 200 || (*status == 400 && body["error"] == "invalid_grant"),
            "a second redemption is invalid_grant: {status} {body}"
        );
    }
    // Every other redemption was a replay: what the code issued is revoked, on every instance.
    let tokens = issued[0];
    for server in &servers {
        assert!(
            !active(
                &http,
                &server.address,
                &introspector,
                &s(tokens, "access_token")
            )
            .await,
            "the access token of a replayed code is still active at {}",
            server.address
        );
    }
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", &*s(tokens, "refresh_token")),
        ("client_id", &*spa.id),
    ];
    let answer = post(&http, format!("{}/token", servers[2].address), None, &form).await;
    let (status, body) = answer.expect("refresh");
    assert_eq!(
        (status, &body["error"]),
        (400, &Value::from("invalid_grant"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_rotate_one_refresh_token_to_one_successor() {
    let test = "three_instances_rotate_one_refresh_token_to_one_successor";
    let window = ("GATEHOUSE_TOKENS__REFRESH_RETRY_WINDOW_SECS", "10");
    let Some(deployment) = three_instance_deployment(test, &[window]) else {
        return;
    };
    let client = deployment.password_client();
    deployment.user("alice");
    let servers = three_instances(&deployment).await;
    let http = http();
    let rt = s(
        &sign_in(&http, &servers[0].address, &client, "alice").await,
        "refresh_token",
    );

    // Within the retry window the same client asking again gets the same successor back: however
    // many ask at once, on whichever instance, exactly one successor exists.
    let form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", rt.clone()),
    ];
    let answers = race(&http, &servers, 24, Some(client.basic()), form).await;
    let mut successors: Vec<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "a resend within the window: {body}");
            s(body, "refresh_token")
        })
        .collect();
    successors.sort_unstable();
    successors.dedup();
    assert_eq!(successors.len(), 1, "one successor: {successors:?}");
    assert_ne!(successors[0], rt);
    // It is the family's one live token: it rotates, on any instance.
    let next = refresh(&http, &servers[1].address, &client, &successors[0]).await;
    ok(next.expect("refresh"), "the one successor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_rotate_one_refresh_token_once_without_retry_window() {
    let test = "three_instances_rotate_one_refresh_token_once_without_retry_window";
    let no_window = ("GATEHOUSE_TOKENS__REFRESH_RETRY_WINDOW_SECS", "0");
    let Some(deployment) = three_instance_deployment(test, &[no_window]) else {
        return;
    };
    let client = deployment.password_client();
    deployment.user("alice");
    let servers = three_instances(&deployment).await;
    let http = http();
    let rt = s(
        &sign_in(&http, &servers[0].address, &client, "alice").await,
        "refresh_token",
    );

    let form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", rt.clone()),
    ];
    let answers = race(&http, &servers, 24, Some(client.basic()), form).await;
    let rotated: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(rotated.len(), 1, "one rotation: {answers:?}");
    for (status, body) in &answers {
        assert!(
            *status == 200 || (*status == 400 && body["error"] == "invalid_grant"),
            "a second rotation is invalid_grant: {status} {body}"
        );
    }
    // The others were reuse: the family is revoked on every instance, the successor with it.
    let successor = s(rotated[0], "refresh_token");
    for server in &servers {
        let answer = refresh(&http, &server.address, &client, &successor).await;
        let (status, body) = answer.expect("refresh");
        assert_eq!(
            (status, &body["error"]),
            (400, &Value::from("invalid_grant")),
            "the successor after reuse, at {}",
            server.address
        );
        let access = s(rotated[0], "access_token");
        assert!(!active(&http, &server.address, &client, &access).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_sign_with_a_key_rotated_on_one_after_its_publish_delay() {
    let test = "three_instances_sign_with_a_key_rotated_on_one_after_its_publish_delay";
    // The shortest publish delay the settings allow: no JWKS caching, a reload every second.
    let keys = [
        ("GATEHOUSE_KEYS__PUBLISH_DELAY_SECS", "2"),
        ("GATEHOUSE_KEYS__RELOAD_SECS", "1"),
        ("GATEHOUSE_JWKS__MAX_AGE_SECS", "0"),
    ];
    let Some(deployment) = three_instance_deployment(test, &keys) else {
        return;
    };
    let machine = deployment.machine_client();
    let servers = three_instances(&deployment).await;
    let http = http();
    let token_from = |server: &Server| {
        let (http, base, machine) = (http.clone(), server.address.clone(), machine.clone());
        async move {
            let answer = client_credentials(&http, &base, &machine).await;
            s(
                &ok(answer.expect("client_credentials"), "client_credentials"),
                "access_token",
            )
        }
    };
    let old = kid_of(&token_from(&servers[0]).await);
    for server in &servers {
        assert_eq!(kid_of(&token_from(server).await), old, "one signing key");
    }

    // `gatehouse keys rotate` beside the running instances.
    let out = deployment.run(&["keys", "rotate", "--json"], None);
    let rotated: Value = serde_json::from_str(out.trim()).expect("keys rotate --json");
    let new = s(&rotated, "kid");
    let activate_at = rotated["activate_at"].as_i64().expect("activate_at");
    assert_ne!(new, old);

    // Every instance publishes the new key and, once it is active, signs with it.
    let mut tokens = Vec::new();
    for server in &servers {
        let token = crate::helpers::eventually(
            Duration::from_secs(30),
            "every instance signs with the rotated key",
            || async {
                let token = token_from(server).await;
                (kid_of(&token) == new).then_some(token)
            },
        )
        .await;
        let iat = jwt_parts(&token).1["iat"].as_i64().expect("iat");
        assert!(iat >= activate_at, "signed at {iat}, before {activate_at}");
        tokens.push(token);
    }
    for server in &servers {
        let kids = jwks_kids(&http, &server.address).await;
        assert!(
            kids.contains(&new) && kids.contains(&old),
            "{}: {kids:?}",
            server.address
        );
        // What any instance signed, every instance accepts.
        for token in &tokens {
            assert!(active(&http, &server.address, &machine, token).await);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One of three instances killed under load
// ---------------------------------------------------------------------------------------------

/// What a load task saw: failures that must not have happened, and how many answers it had
/// from the instance that was killed and from the others after the kill.
#[derive(Default)]
struct Seen {
    wrong: Vec<String>,
    from_killed: usize,
    from_survivors_after_kill: usize,
}

impl Seen {
    /// Notes the outcome of a request to server `target`. True when it was received.
    fn note(&mut self, target: usize, killed: &AtomicBool, answer: &Answer, what: &str) -> bool {
        match answer {
            Ok((200, _)) => {
                if target == 0 {
                    self.from_killed += 1;
                } else if killed.load(Ordering::SeqCst) {
                    self.from_survivors_after_kill += 1;
                }
                true
            }
            Ok((status, body)) => {
                self.wrong
                    .push(format!("{what} at instance {target}: {status} {body}"));
                false
            }
            // The killed instance fails requests from the kill on, and only it.
            Err(_) if target == 0 && killed.load(Ordering::SeqCst) => false,
            Err(e) => {
                self.wrong.push(format!("{what} at instance {target}: {e}"));
                false
            }
        }
    }
}

/// Everything one load run shares: the servers' addresses, the kill and stop signals.
#[derive(Clone)]
struct Load {
    http: reqwest::Client,
    addresses: Arc<Vec<String>>,
    killed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Load {
    /// The server for a task's `step`th request: all three in turn, the survivors once the
    /// first is dead.
    fn target(&self, step: usize) -> usize {
        if self.killed.load(Ordering::SeqCst) {
            1 + step % 2
        } else {
            step % 3
        }
    }

    /// Rotates `chain`, each request at the next instance. A request the killed instance failed
    /// goes again to a survivor with the same token: had the dead instance committed it, that is
    /// a resend within the retry window and yields the successor.
    async fn rotate(self, client: Client, mut chain: Chain, first: usize) -> (Chain, Seen) {
        let mut seen = Seen::default();
        let mut step = first;
        while !self.stop.load(Ordering::SeqCst) {
            let target = self.target(step);
            step += 1;
            let base = &self.addresses[target];
            let answer = refresh(&self.http, base, &client, &chain.refresh_token).await;
            if seen.note(target, &self.killed, &answer, "refresh") {
                chain.received(&answer.expect("received").1);
            } else if !seen.wrong.is_empty() {
                break;
            }
        }
        (chain, seen)
    }

    /// client_credentials at each instance in turn; every token received.
    async fn machine(self, client: Client, first: usize) -> (Vec<String>, Seen) {
        let mut seen = Seen::default();
        let mut tokens = Vec::new();
        let mut step = first;
        while !self.stop.load(Ordering::SeqCst) {
            let target = self.target(step);
            step += 1;
            let answer = client_credentials(&self.http, &self.addresses[target], &client).await;
            if seen.note(target, &self.killed, &answer, "client_credentials") {
                tokens.push(s(&answer.expect("received").1, "access_token"));
            } else if !seen.wrong.is_empty() {
                break;
            }
        }
        (tokens, seen)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_instances_loses_no_committed_grant() {
    let test = "killing_one_of_three_instances_loses_no_committed_grant";
    let Some(deployment) = three_instance_deployment(test, &[RETRY_WINDOW]) else {
        return;
    };
    let client = deployment.password_client();
    let machine = deployment.machine_client();
    deployment.user("alice");
    let mut servers = three_instances(&deployment).await;
    let http = http();
    let load = Load {
        http: http.clone(),
        addresses: Arc::new(servers.iter().map(|s| s.address.clone()).collect()),
        killed: Arc::new(AtomicBool::new(false)),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let mut chains = Vec::new();
    for i in 0..CHAINS - 4 {
        let base = &servers[i % 3].address;
        chains.push(Chain::seeded(&sign_in(&http, base, &client, "alice").await));
    }
    let rotating: Vec<_> = chains
        .into_iter()
        .enumerate()
        .map(|(i, chain)| tokio::spawn(load.clone().rotate(client.clone(), chain, i)))
        .collect();
    let minting: Vec<_> = (0..4)
        .map(|i| tokio::spawn(load.clone().machine(machine.clone(), i)))
        .collect();

    tokio::time::sleep(LOAD).await;
    load.killed.store(true, Ordering::SeqCst);
    servers[0].crash();
    tokio::time::sleep(LOAD).await;
    load.stop.store(true, Ordering::SeqCst);

    let (mut chains, mut minted, mut seen) = (Vec::new(), Vec::new(), Vec::new());
    for task in rotating {
        let (chain, s) = task.await.expect("refresh task");
        chains.push(chain);
        seen.push(s);
    }
    for task in minting {
        let (tokens, s) = task.await.expect("client_credentials task");
        minted.extend(tokens);
        seen.push(s);
    }
    let wrong: Vec<&String> = seen.iter().flat_map(|s| &s.wrong).collect();
    assert!(wrong.is_empty(), "the survivors failed requests: {wrong:?}");
    let from_killed: usize = seen.iter().map(|s| s.from_killed).sum();
    let after: usize = seen.iter().map(|s| s.from_survivors_after_kill).sum();
    assert!(
        from_killed > 0,
        "nothing was received from the killed instance"
    );
    assert!(after > 0, "the survivors served nothing after the kill");
    eprintln!(
        "{from_killed} answers from the killed instance, {after} from the survivors after the kill"
    );

    // Every refresh token last received, from whichever instance, rotates on a survivor; every
    // access token received is active there.
    let survivors = &servers[1..];
    for (i, chain) in chains.iter().enumerate() {
        let base = &survivors[i % 2].address;
        let answer = refresh(&http, base, &client, &chain.refresh_token).await;
        let body = ok(
            answer.expect("refresh on a survivor"),
            &format!(
                "a chain's last refresh token after {} rotations",
                chain.rotations
            ),
        );
        assert_ne!(s(&body, "refresh_token"), chain.refresh_token);
    }
    let received = chains.iter().flat_map(|c| &c.access_tokens);
    let received = received
        .map(|t| (t, &client))
        .chain(minted.iter().map(|t| (t, &machine)));
    let mut checked = 0;
    for (i, (token, caller)) in received.enumerate() {
        let base = &survivors[i % 2].address;
        assert!(
            active(&http, base, caller, token).await,
            "an access token received before or after the kill is inactive"
        );
        checked += 1;
    }
    assert!(checked > CHAINS, "{checked} access tokens checked");
}
