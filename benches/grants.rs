//! Gatehouse benchmark: each figure is a ratio against a baseline measured in the same run.
//!
//! Run with `cargo bench --bench grants` (optionally `-- --seconds 3`). It measures, on SQLite in
//! a temp directory:
//! - GET metadata and JWKS through Gatehouse vs a bare actix-web handler returning the same bytes
//!   (same HTTP client, same concurrency);
//! - authorization-code exchanges and refresh rotations per second through the token service vs
//!   the floor of the same work: the client read, one raw Diesel transaction of the same three
//!   statements, and one ES256 signature.

// A benchmark aborts on any failure: there is no caller to report an error to.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use diesel::prelude::*;
use gatehouse::config::Settings;
use gatehouse::keys::MasterKey;
use gatehouse::oauth::model::{Client, GrantType, NewGrant, NewRefresh};
use gatehouse::oauth::params::Params;
use gatehouse::registry::{self, NewClient};
use gatehouse::secret::{new_id, PlainToken};
use gatehouse::state::{now, AppState};
use gatehouse::store::codes::AuthCode;
use gatehouse::store::schema::refresh_tokens;
use gatehouse::store::{grants, refresh, write_tx, AnyConnection};

const REDIRECT: &str = "http://127.0.0.1:5173/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn seconds() -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0)
}

/// Keep-alive GET loop on one raw connection: a load generator far lighter than an HTTP client
/// library, so that the server, not the client, is what the two-core machine spends its time on.
async fn http_loop(
    addr: std::net::SocketAddr,
    path: String,
    deadline: Instant,
    done: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes();
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < deadline {
        stream.write_all(&request).await.expect("write");
        let mut filled = 0;
        loop {
            let n = stream.read(&mut buf[filled..]).await.expect("read");
            assert!(n > 0, "server closed the connection");
            filled += n;
            let Some(head_end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = std::str::from_utf8(&buf[..head_end])
                .expect("ascii head")
                .to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if filled >= head_end + 4 + len {
                break;
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Requests per second of `concurrency` connections GETting `path` for `secs`.
async fn http_rate(addr: std::net::SocketAddr, path: &str, concurrency: usize, secs: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(http_loop(addr, path.to_owned(), deadline, done.clone())))
        .collect();
    for t in tasks {
        t.await.expect("join");
    }
    done.load(Ordering::Relaxed) as f64 / secs
}

/// Alternates short rounds of the two targets so that background load hits both alike.
async fn compare(
    a: (std::net::SocketAddr, &str),
    b: (std::net::SocketAddr, &str),
    secs: f64,
) -> (f64, f64) {
    let rounds = 6;
    let (mut ra, mut rb) = (0.0, 0.0);
    for _ in 0..rounds {
        ra += http_rate(a.0, a.1, 8, secs / rounds as f64).await;
        rb += http_rate(b.0, b.1, 8, secs / rounds as f64).await;
    }
    (ra / rounds as f64, rb / rounds as f64)
}

fn settings(dir: &std::path::Path, issuer: &str) -> Settings {
    Settings::load_from(
        None,
        vec![
            (
                "GATEHOUSE_DATABASE_URL".to_owned(),
                format!("sqlite://{}", dir.join("bench.db").display()),
            ),
            ("GATEHOUSE_ISSUER".to_owned(), issuer.to_owned()),
            ("GATEHOUSE_SERVER__WORKERS".to_owned(), "1".to_owned()),
        ],
    )
    .expect("settings")
}

/// Stores a grant and a code for `client` as the consent page would; returns the code.
fn seed_code(conn: &mut AnyConnection, client: &str, user: &str, ts: i64) -> String {
    let code = PlainToken::generate();
    let grant = NewGrant {
        id: new_id("gr").into(),
        client_id: client.into(),
        user_id: Some(user.into()),
        session_hash: None,
        created_at: ts,
        expires_at: ts + 3600,
        amr: vec!["pwd".into()],
        auth_time: Some(ts),
        nonce: None,
    };
    write_tx(conn, |conn| {
        grants::insert(conn, &grant)?;
        AuthCode {
            code_hash: code.hash().0,
            grant_id: grant.id.to_string(),
            client_id: client.to_owned(),
            user_id: user.to_owned(),
            redirect_uri: REDIRECT.to_owned(),
            scope: "api:read".to_owned(),
            audience: "https://api.example.com".to_owned(),
            code_challenge: gatehouse::oauth::pkce::s256(VERIFIER),
            created_at: ts,
            expires_at: ts + 3600,
            consumed_at: None,
        }
        .insert(conn)
    })
    .expect("seed code");
    code.expose().to_owned()
}

fn params(pairs: &[(&str, &str)]) -> Params {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Params::parse(body.as_bytes()).expect("params")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs = seconds();
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let gh_addr = listener.local_addr().expect("addr");
    let issuer = format!("http://{gh_addr}");
    let state = web::Data::new(
        AppState::init(settings(dir.path(), &issuer), MasterKey::generate()).expect("state"),
    );
    tokio::spawn(gatehouse::server::build(state.clone(), listener).expect("server"));

    // The bare baseline: one actix-web worker returning the same bytes.
    let metadata = state.metadata.bytes.clone();
    let jwks = state.keys.current().jwks().bytes.clone();
    let bare = TcpListener::bind("127.0.0.1:0").expect("bind");
    let bare_addr = bare.local_addr().expect("addr");
    let bare_server = HttpServer::new(move || {
        let (m, j) = (metadata.clone(), jwks.clone());
        App::new()
            .route(
                "/m",
                web::get().to(move || {
                    let m = m.clone();
                    async move { HttpResponse::Ok().content_type("application/json").body(m) }
                }),
            )
            .route(
                "/j",
                web::get().to(move || {
                    let j = j.clone();
                    async move { HttpResponse::Ok().content_type("application/json").body(j) }
                }),
            )
    })
    .workers(1)
    .listen(bare)
    .expect("listen")
    .run();
    tokio::spawn(bare_server);
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!("Gatehouse benchmark ({secs} s per measurement, SQLite, 1 server worker each)");
    let (gh_m, bare_m) = compare(
        (gh_addr, "/.well-known/oauth-authorization-server"),
        (bare_addr, "/m"),
        secs,
    )
    .await;
    let (gh_j, bare_j) =
        compare((gh_addr, "/.well-known/jwks.json"), (bare_addr, "/j"), secs).await;
    println!(
        "metadata GET: {gh_m:>9.0}/s vs bare handler {bare_m:>9.0}/s  ratio {:.2}",
        gh_m / bare_m
    );
    println!(
        "JWKS GET:     {gh_j:>9.0}/s vs bare handler {bare_j:>9.0}/s  ratio {:.2}",
        gh_j / bare_j
    );

    // Grants, through the service layer (no HTTP), one request at a time.
    let mut conn = gatehouse::store::ConnectionManager::new(state.settings.database.url.clone())
        .connect()
        .expect("connect");
    let client = registry::create_client(
        &mut conn,
        &NewClient {
            name: "bench".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: vec!["api:read".into()],
            audiences: vec!["https://api.example.com".into()],
            ..Default::default()
        },
        &registry::By::operator(now()),
    )
    .expect("client")
    .client;
    let passwords =
        gatehouse::passwords::Passwords::new(&state.settings.passwords).expect("passwords");
    let user = registry::create_user(
        &mut conn,
        &passwords,
        "bench",
        "bench-password",
        &[],
        &Default::default(),
        &registry::By::operator(now()),
    )
    .expect("user")
    .id;

    let n = 2000usize;
    let codes: Vec<String> = (0..n)
        .map(|_| seed_code(&mut conn, client.id.as_str(), &user, now()))
        .collect();
    let start = Instant::now();
    let mut refresh_tokens_out = Vec::with_capacity(n);
    for code in &codes {
        let answer = gatehouse::flows::token::token(
            &state,
            params(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("client_id", client.id.as_str()),
                ("code_verifier", VERIFIER),
            ]),
            None,
            None,
        )
        .await;
        refresh_tokens_out.push(answer.result.expect("exchange").refresh_token.expect("rt"));
    }
    let exchange_rate = n as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    for rt in &refresh_tokens_out {
        let answer = gatehouse::flows::token::token(
            &state,
            params(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", client.id.as_str()),
            ]),
            None,
            None,
        )
        .await;
        answer.result.expect("refresh");
    }
    let refresh_rate = n as f64 / start.elapsed().as_secs_f64();

    // The floor: the same three statements in one raw transaction, plus one ES256 signature.
    let keys = state.keys.current();
    let signer = keys.signer().expect("signer");
    let start = Instant::now();
    let mut prev = refresh_tokens_out[0].clone();
    for _ in 0..n {
        let hash = PlainToken::from_presented(prev.clone()).hash().0;
        let next = PlainToken::generate();
        Client::find(&mut conn, client.id.as_str()).expect("client read");
        write_tx(&mut conn, |conn| {
            type Row = (String, String, Option<String>, String, String, i64, i64);
            let row: Row = refresh_tokens::table
                .find(&hash)
                .select((
                    refresh_tokens::grant_id,
                    refresh_tokens::client_id,
                    refresh_tokens::user_id,
                    refresh_tokens::scope,
                    refresh_tokens::audience,
                    refresh_tokens::created_at,
                    refresh_tokens::expires_at,
                ))
                .first(conn)?;
            diesel::update(refresh_tokens::table.find(&hash))
                .set(refresh_tokens::rotated_at.eq(Some(0i64)))
                .execute(conn)?;
            refresh::insert(
                conn,
                &NewRefresh {
                    token_hash: next.hash().0,
                    grant_id: row.0.into(),
                    client_id: row.1.into(),
                    user_id: row.2.map(Into::into),
                    scope: row.3,
                    audience: row.4,
                    created_at: row.5,
                    expires_at: row.6,
                },
            )
        })
        .expect("raw txn");
        let claims = serde_json::json!({"sub": user, "exp": now() + 900});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(signer.kid.clone());
        signer.encode(&header, &claims).expect("sign");
        prev = next.expose().to_owned();
    }
    let floor_rate = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "code exchange: {exchange_rate:>7.0}/s   refresh rotation: {refresh_rate:>7.0}/s   \
         floor (client read + raw 3-statement txn + ES256 sign): {floor_rate:>7.0}/s"
    );
    println!(
        "ratio to floor: code exchange {:.2}, refresh rotation {:.2}",
        exchange_rate / floor_rate,
        refresh_rate / floor_rate
    );

    // client_credentials through the token service vs one raw ES256 signature of the same claims.
    let machine = registry::create_client(
        &mut conn,
        &NewClient {
            name: "bench machine".into(),
            confidential: true,
            grant_types: vec![GrantType::ClientCredentials, GrantType::Password],
            scopes: vec!["api:read".into()],
            audiences: vec!["https://api.example.com".into()],
            ..Default::default()
        },
        &registry::By::operator(now()),
    )
    .expect("machine client");
    let machine_secret = machine.secret.expect("secret").expose().to_owned();
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", machine.client.id, machine_secret)
        )
    );
    let cc_params = params(&[("grant_type", "client_credentials"), ("scope", "api:read")]);
    let start = Instant::now();
    let mut last_token = String::new();
    for _ in 0..n {
        let answer =
            gatehouse::flows::token::token(&state, cc_params.clone(), Some(basic.clone()), None)
                .await;
        last_token = answer.result.expect("client_credentials").access_token;
    }
    let cc_rate = n as f64 / start.elapsed().as_secs_f64();
    let (_, sample_claims) = last_token.split_once('.').expect("jwt");
    let sample_claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            sample_claims.split('.').next().expect("claims"),
        )
        .expect("b64"),
    )
    .expect("claims json");
    let start = Instant::now();
    for _ in 0..n {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(signer.kid.clone());
        signer.encode(&header, &sample_claims).expect("sign");
    }
    let sign_rate = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "client_credentials: {cc_rate:>7.0}/s vs raw ES256 signing {sign_rate:>7.0}/s  ratio {:.2}",
        cc_rate / sign_rate
    );

    // The password grant (argon2id at the configured cost) vs raw argon2 verification.
    let m = 20usize;
    let pw_params = params(&[
        ("grant_type", "password"),
        ("username", "bench"),
        ("password", "bench-password"),
        ("scope", "api:read"),
    ]);
    let stored = {
        use gatehouse::store::users::User;
        User::find_by_username(&mut conn, "bench")
            .expect("query")
            .expect("user")
            .password_hash
    };
    let start = Instant::now();
    for _ in 0..m {
        let answer =
            gatehouse::flows::token::token(&state, pw_params.clone(), Some(basic.clone()), None)
                .await;
        answer.result.expect("password grant");
    }
    let pw_rate = m as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..m {
        assert!(passwords.verify_blocking("bench-password", Some(&stored)));
    }
    let argon_rate = m as f64 / start.elapsed().as_secs_f64();
    println!(
        "password grant: {pw_rate:>7.1}/s vs raw argon2 verification {argon_rate:>7.1}/s  ratio {:.2}",
        pw_rate / argon_rate
    );

    // gatehouse::verify vs raw jsonwebtoken verification of the same token.
    let verifier = gatehouse::verify::Verifier::new(gatehouse::verify::Config::new(
        issuer.clone(),
        "https://api.example.com",
    ))
    .expect("verifier");
    verifier
        .verify(&last_token)
        .await
        .expect("first verify fetches the JWKS");
    let start = Instant::now();
    for _ in 0..n {
        verifier.verify(&last_token).await.expect("verify");
    }
    let verify_rate = n as f64 / start.elapsed().as_secs_f64();
    let (_, decoding) = keys.verifier(&signer.kid).expect("published key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[&issuer]);
    validation.set_audience(&["https://api.example.com"]);
    let start = Instant::now();
    for _ in 0..n {
        jsonwebtoken::decode::<serde_json::Value>(&last_token, decoding, &validation)
            .expect("raw verify");
    }
    let raw_verify_rate = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "gatehouse::verify: {verify_rate:>7.0}/s vs raw jsonwebtoken {raw_verify_rate:>7.0}/s  ratio {:.2}",
        verify_rate / raw_verify_rate
    );
}
