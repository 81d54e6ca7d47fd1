//! Load driver and in-run baselines of `bench/run`.
//!
//! `bench/run` builds and starts the servers and registers the clients and users; this program
//! does the measuring, one subcommand at a time:
//!
//! - `load`: a closed loop against running servers, `--conns` keep-alive connections with one
//!   request (or one sign-in) in flight each, for `--secs` seconds, at one `--endpoint`. With
//!   `--base` given several times, connection i talks to base i mod n. Appends one row (req/s,
//!   p50, p99, errors, and the baseline it stands next to) to `--out`. Endpoints:
//!   - `jwks`, `metadata` (`--jwks-path`, `--metadata-path` when the server is not Gatehouse),
//!     and `bare` (the bare server's handler): the same GET each time;
//!   - `cc`: client_credentials with a confidential client (HTTP Basic);
//!   - `refresh`: every connection rotates its own refresh-token chain, each answer's new
//!     refresh token being the next request's. Chains are seeded before the clock starts, by a
//!     password grant with a first-party confidential client (one at a time, as the lockout
//!     requires of one user's sign-ins), or with `--seed-path` by a POST to that path answering
//!     `{"refresh_token": ..}` (the peer's seeding route). A rotation that is not a 200 with a
//!     new refresh token is an error, and the chain is seeded again, outside the samples;
//!   - `signin`: one sample is a whole sign-in of a public client, as a browser does it:
//!     `GET /authorize` (PKCE S256, `--scope`, a state, `prompt=consent`), the login page, the
//!     login form (username and password, with the page's CSRF token and the cookies), the
//!     consent page, the consent form, the redirect with the code, and the code exchange at
//!     `/token`. Connection i signs in as `--user-prefix` followed by i (one user per
//!     connection, so that the lockout never sees one user's sign-ins overlap), in a browser
//!     that keeps its device cookie but starts each sign-in without a session;
//!   - `code`: the code exchange alone. Each connection signs in once before the clock starts,
//!     with a client that skips consent; then each iteration is a `GET /authorize` (answered at
//!     once with a code, not sampled) and the `POST /token` that redeems the code, whose time
//!     alone is sampled. Its req/s counts exchanges, each after its /authorize.
//! - `sign`, `argon2`, `sqlite`: the raw work under the token path, on this thread alone (one
//!   core): ES256 signatures, argon2id hashes at the configured parameters, SQLite write
//!   transactions of a refresh rotation's size. Each prints `<per second>\t<what>`. `argon2
//!   --threads N` hashes on N threads at once and prints their summed rate.
//! - `postgres --url URL --conns N`: refresh rotations as the server makes them on PostgreSQL
//!   (one statement each), from N connections at once, on a fresh database; prints the same way.
//! - `bare --bind ADDR`: a bare actix-web server with one small JSON handler, the ceiling of the
//!   HTTP stack alone under the same driver.
//! - `report --file FILE`: the rows as one Markdown table, with each row's ratio to the peer's
//!   same endpoint and connections and to its baseline (for `pg×2`, `pg×3`: to `pg×1`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;

#[path = "driver/mod.rs"]
mod driver;
#[path = "driver/signin.rs"]
mod signin;

use driver::{enc, post_token, Args, Conn};
use signin::{Browser, Flow, Pkce, Step};

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

fn basic(id: &str, secret: &str) -> String {
    STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
}

/// The refresh token of a token response, if it has one.
fn refresh_token_of(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["refresh_token"].as_str().map(str::to_owned)
}

/// How refresh-token chains begin.
enum Seed {
    /// A password grant of a first-party confidential client.
    Password {
        user: String,
        password: String,
        scope: String,
        /// Chains are seeded one at a time: parallel sign-ins of one user are what the lockout
        /// bounds (each is charged before its password is checked).
        one_at_a_time: tokio::sync::Mutex<()>,
    },
    /// A POST to this path of the server, answering `{"refresh_token": ..}`.
    Route(String),
}

struct Refresh {
    basic: String,
    seed: Seed,
}

impl Refresh {
    /// A new refresh-token chain (an argon2 check on Gatehouse).
    async fn seed(&self, conn: &mut Conn, addr: SocketAddr) -> anyhow::Result<String> {
        let (request, _guard) = match &self.seed {
            Seed::Password {
                user,
                password,
                scope,
                one_at_a_time,
            } => {
                let body = format!(
                    "grant_type=password&username={}&password={}&scope={}",
                    enc(user),
                    enc(password),
                    enc(scope)
                );
                let turn = one_at_a_time.lock().await;
                // A connection that waited its turn idle may have been closed by the server.
                *conn = Conn::open(addr).await?;
                (post_token(&body, Some(&self.basic)), Some(turn))
            }
            Seed::Route(path) => (
                format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
                    .into_bytes(),
                None,
            ),
        };
        for _ in 0..50 {
            let r = conn.send(&request).await?;
            match r.status {
                200 => {
                    return refresh_token_of(&r.body)
                        .ok_or_else(|| anyhow!("the seeding answer had no refresh token"))
                }
                // The hash queue is full: wait as the answer asks.
                503 | 429 => tokio::time::sleep(Duration::from_millis(100)).await,
                s => bail!(
                    "seeding a chain was refused ({s} {})",
                    String::from_utf8_lossy(&r.body)
                ),
            }
        }
        bail!("seeding a chain stayed busy")
    }

    fn rotate(&self, refresh: &str) -> Vec<u8> {
        post_token(
            &format!("grant_type=refresh_token&refresh_token={}", enc(refresh)),
            Some(&self.basic),
        )
    }
}

/// What the connections ask, and how they know an answer is a success.
enum Workload {
    /// The same GET every time; a 200 is a success.
    Get(Vec<u8>),
    /// The same client_credentials POST every time; a 200 with an access token is a success.
    ClientCredentials(Vec<u8>),
    /// Refresh rotation along each connection's own chain.
    Refresh(Refresh),
    /// Whole sign-ins, code exchange included.
    SignIn { flow: Flow, user_prefix: String },
    /// Code exchanges after a remembered sign-in.
    Code { flow: Flow, user_prefix: String },
}

/// One connection's own state between two iterations.
enum Own {
    None,
    Chain(Option<String>),
    Browser(Browser),
}

/// One connection's results.
#[derive(Default)]
struct Tally {
    micros: Vec<u64>,
    errors: u64,
}

/// How one iteration ended, beside a broken connection.
enum Outcome {
    /// A success, in microseconds.
    Sample(u64),
    /// An answer that is not a success.
    Failed,
    /// Work outside the samples (seeding a chain again).
    Unsampled,
}

impl From<Option<u64>> for Outcome {
    fn from(micros: Option<u64>) -> Outcome {
        micros.map_or(Outcome::Failed, Outcome::Sample)
    }
}

/// One iteration; `Err` when the connection broke.
async fn iteration(
    work: &Workload,
    own: &mut Own,
    conn: &mut Conn,
    addr: SocketAddr,
) -> std::io::Result<Outcome> {
    match (work, own) {
        (Workload::Get(r), _) => {
            let began = Instant::now();
            let r = conn.send(r).await?;
            Ok((r.status == 200).then(|| micros_since(began)).into())
        }
        (Workload::ClientCredentials(r), _) => {
            let began = Instant::now();
            let r = conn.send(r).await?;
            let ok = r.status == 200 && r.body.windows(14).any(|w| w == b"\"access_token\"");
            Ok(ok.then(|| micros_since(began)).into())
        }
        (Workload::Refresh(refresh), Own::Chain(chain)) => {
            let Some(token) = chain.take() else {
                // The chain broke: a new one, outside the samples.
                *chain = refresh.seed(conn, addr).await.ok();
                if chain.is_none() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return Ok(Outcome::Failed);
                }
                return Ok(Outcome::Unsampled);
            };
            let began = Instant::now();
            let r = conn.send(&refresh.rotate(&token)).await?;
            let micros = micros_since(began);
            *chain = (r.status == 200)
                .then(|| refresh_token_of(&r.body))
                .flatten();
            Ok(chain.is_some().then_some(micros).into())
        }
        (Workload::SignIn { flow, .. }, Own::Browser(browser)) => {
            browser.sign_out();
            let pkce = Pkce::fresh();
            let began = Instant::now();
            let code = match browser.authorize(conn, flow, &pkce).await? {
                Step::Done(code) => code,
                Step::Refused(why) => return Ok(refused(&why)),
            };
            let exchanged = browser.exchange(conn, flow, &code, &pkce).await?;
            Ok(match exchanged {
                Step::Done(()) => Outcome::Sample(micros_since(began)),
                Step::Refused(why) => refused(&why),
            })
        }
        (Workload::Code { flow, .. }, Own::Browser(browser)) => {
            let pkce = Pkce::fresh();
            let code = match browser.authorize(conn, flow, &pkce).await? {
                Step::Done(code) => code,
                Step::Refused(why) => return Ok(refused(&why)),
            };
            let began = Instant::now();
            let exchanged = browser.exchange(conn, flow, &code, &pkce).await?;
            Ok(match exchanged {
                Step::Done(()) => Outcome::Sample(micros_since(began)),
                Step::Refused(why) => refused(&why),
            })
        }
        _ => Err(std::io::Error::other("a connection without its own state")),
    }
}

/// A failed sign-in step; the run's first one is told, to say why a row has errors.
fn refused(why: &str) -> Outcome {
    static TOLD: std::sync::Once = std::sync::Once::new();
    TOLD.call_once(|| eprintln!("   (first refusal: {why})"));
    Outcome::Failed
}

fn micros_since(began: Instant) -> u64 {
    began.elapsed().as_micros() as u64
}

/// What a connection sets up before the clock starts: its chain or its browser (signed in once
/// for `code`).
async fn set_up(
    work: &Workload,
    index: usize,
    conn: &mut Conn,
    addr: SocketAddr,
) -> anyhow::Result<Own> {
    Ok(match work {
        Workload::Get(_) | Workload::ClientCredentials(_) => Own::None,
        Workload::Refresh(refresh) => Own::Chain(Some(refresh.seed(conn, addr).await?)),
        Workload::SignIn { user_prefix, .. } => {
            Own::Browser(Browser::new(format!("{user_prefix}{index}")))
        }
        Workload::Code { flow, user_prefix } => {
            let mut browser = Browser::new(format!("{user_prefix}{index}"));
            match browser.authorize(conn, flow, &Pkce::fresh()).await? {
                Step::Done(_) => Own::Browser(browser),
                Step::Refused(why) => bail!("the first sign-in of {}: {why}", browser.user),
            }
        }
    })
}

async fn connection(
    addr: SocketAddr,
    index: usize,
    work: Arc<Workload>,
    ready: tokio::sync::mpsc::Sender<anyhow::Result<()>>,
    mut start: tokio::sync::watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Tally> {
    let prepared = async {
        let mut conn = Conn::open(addr).await.context("connecting")?;
        let own = set_up(&work, index, &mut conn, addr).await?;
        anyhow::Ok((conn, own))
    };
    let (set_up_conn, mut own) = match prepared.await {
        Ok(c) => {
            let _ = ready.send(Ok(())).await;
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e)).await;
            return Ok(Tally::default());
        }
    };
    if start.wait_for(|go| *go).await.is_err() {
        return Ok(Tally::default());
    }
    // The server may have closed a connection that waited idle for the others' set-up longer
    // than its keep-alive: a fresh one, outside the samples.
    drop(set_up_conn);
    let mut conn = Conn::open(addr).await.context("connecting")?;
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        match iteration(&work, &mut own, &mut conn, addr).await {
            Ok(Outcome::Sample(micros)) => tally.micros.push(micros),
            Ok(Outcome::Failed) => tally.errors += 1,
            Ok(Outcome::Unsampled) => {}
            Err(_) => {
                tally.errors += 1;
                if let Own::Chain(chain) = &mut own {
                    *chain = None;
                }
                // A new connection; the server may be gone, so do not spin.
                match Conn::open(addr).await {
                    Ok(c) => conn = c,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
    }
    Ok(tally)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e3
}

fn workload(args: &Args, endpoint: &str) -> anyhow::Result<Workload> {
    let path = |key: &str, default: &str| args.get(key).unwrap_or_else(|| default.to_owned());
    let flow = |prompt_consent: bool| -> anyhow::Result<Flow> {
        Ok(Flow {
            client_id: args.str("spa-id")?,
            redirect_uri: args.str("redirect-uri")?,
            scope: args.str("scope")?,
            password: args.str("password")?,
            prompt_consent,
        })
    };
    Ok(match endpoint {
        "jwks" => Workload::Get(get(&path("jwks-path", "/.well-known/jwks.json"))),
        "metadata" => Workload::Get(get(&path(
            "metadata-path",
            "/.well-known/oauth-authorization-server",
        ))),
        "bare" => Workload::Get(get("/")),
        "cc" => Workload::ClientCredentials(post_token(
            &format!(
                "grant_type=client_credentials&scope={}",
                enc(&args.str("scope")?)
            ),
            Some(&basic(&args.str("cc-id")?, &args.str("cc-secret")?)),
        )),
        "refresh" => Workload::Refresh(Refresh {
            basic: basic(&args.str("pw-id")?, &args.str("pw-secret")?),
            seed: match args.get("seed-path") {
                Some(path) => Seed::Route(path),
                None => Seed::Password {
                    user: args.str("user")?,
                    password: args.str("password")?,
                    scope: args.str("scope")?,
                    one_at_a_time: tokio::sync::Mutex::new(()),
                },
            },
        }),
        "signin" => Workload::SignIn {
            flow: flow(true)?,
            user_prefix: args.str("user-prefix")?,
        },
        "code" => Workload::Code {
            flow: flow(false)?,
            user_prefix: args.str("user-prefix")?,
        },
        other => bail!("unknown endpoint {other}"),
    })
}

async fn load(args: &Args) -> anyhow::Result<()> {
    let addrs = args
        .all("base")
        .iter()
        .map(|base| {
            base.strip_prefix("http://")
                .ok_or_else(|| anyhow!("--base must be http://host:port"))?
                .parse::<SocketAddr>()
                .with_context(|| format!("--base {base}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if addrs.is_empty() {
        bail!("--base is required");
    }
    let endpoint = args.str("endpoint")?;
    let conns: usize = args.num("conns", 16)?;
    let secs: f64 = args.num("secs", 10.0)?;
    let work = Arc::new(workload(args, &endpoint)?);
    let (ready, mut readies) = tokio::sync::mpsc::channel(conns);
    let (start, go) = tokio::sync::watch::channel(false);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            tokio::spawn(connection(
                addrs[i % addrs.len()],
                i,
                work.clone(),
                ready.clone(),
                go.clone(),
                stop.clone(),
            ))
        })
        .collect();
    // Every connection is open (every chain seeded, every browser set up) before the clock
    // starts.
    for _ in 0..conns {
        match readies.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(e.context("setting up a connection")),
            None => bail!("a connection ended before it was set up"),
        }
    }
    start.send_replace(true);
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut micros = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let tally = t.await??;
        micros.extend(tally.micros);
        errors += tally.errors;
    }
    let elapsed = began.elapsed().as_secs_f64();
    micros.sort_unstable();
    let row = [
        args.str("backend")?,
        endpoint,
        conns.to_string(),
        format!("{:.1}", micros.len() as f64 / elapsed),
        format!("{:.2}", percentile(&micros, 50.0)),
        format!("{:.2}", percentile(&micros, 99.0)),
        errors.to_string(),
        args.get("baseline-name").unwrap_or_default(),
        args.get("baseline-rate").unwrap_or_default(),
    ];
    eprintln!("   {}", row[..7].join("  "));
    let out = PathBuf::from(args.str("out")?);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .with_context(|| format!("opening {}", out.display()))?;
    writeln!(f, "{}", row.join("\t"))?;
    Ok(())
}

/// Runs `one` for `secs` seconds on this thread; its count per second.
fn per_second(secs: f64, mut one: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let began = Instant::now();
    let mut n = 0u64;
    while began.elapsed().as_secs_f64() < secs {
        one()?;
        n += 1;
    }
    Ok(n as f64 / began.elapsed().as_secs_f64())
}

/// ES256 signatures of an access token's size, with a generated key, as the server signs them:
/// the key parsed once (`keys::Signer::encode`).
fn sign(secs: f64) -> anyhow::Result<()> {
    use gatehouse::keys::{generate, KeySet, MasterKey};
    let master = MasterKey::generate();
    let row = generate(&master, "ES256", 0, 0)?;
    let set = KeySet::from_rows(std::slice::from_ref(&row), &master, 0)?;
    let signer = set
        .signer()
        .ok_or_else(|| anyhow!("the generated key does not sign"))?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(signer.kid.clone());
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:8080", "sub": "usr_0123456789abcdef", "aud": "https://api.example.com",
        "client_id": "cl_0123456789abcdef", "iat": 1_800_000_000, "exp": 1_800_000_600,
        "jti": "at_0123456789abcdef0123456789", "scope": "api:read", "roles": [],
    });
    let rate = per_second(secs, || {
        signer.encode(&header, &claims)?;
        Ok(())
    })?;
    println!("{rate:.0}\tES256 signatures/s on one core");
    Ok(())
}

/// argon2id hashes at the parameters Gatehouse is configured with, on `threads` threads at once
/// (their rates summed: on a machine whose cores share memory bandwidth or a physical core, two
/// at once do less than twice one).
fn argon2(secs: f64, threads: usize) -> anyhow::Result<()> {
    let settings = gatehouse::config::Settings::load(None)?;
    let p = &settings.passwords;
    let passwords = gatehouse::passwords::Passwords::new(p)?;
    let threads = threads.max(1);
    let rate = std::thread::scope(|scope| {
        let running: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    per_second(secs, || {
                        passwords.hash("correct horse battery staple").map(drop)
                    })
                })
            })
            .collect();
        running.into_iter().try_fold(0.0, |sum, thread| {
            let rate = thread
                .join()
                .map_err(|_| anyhow!("an argon2 thread panicked"))??;
            anyhow::Ok(sum + rate)
        })
    })?;
    let on = if threads == 1 {
        "one core".to_owned()
    } else {
        format!("{threads} cores at once")
    };
    println!(
        "{rate:.1}\targon2id hashes/s on {on} (m={} KiB, t={}, p={})",
        p.memory_kib, p.iterations, p.parallelism
    );
    Ok(())
}

/// Write transactions of a refresh rotation's size on a fresh SQLite file, set up as the server
/// sets up its connections (WAL, synchronous NORMAL): mark the old token rotated and insert its
/// successor, in one transaction.
fn sqlite(secs: f64, dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("baseline.db");
    let mut conn = SqliteConnection::establish(&path.display().to_string())?;
    conn.batch_execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
         CREATE TABLE refresh_tokens (
             token_hash TEXT PRIMARY KEY NOT NULL, grant_id TEXT NOT NULL, client_id TEXT NOT NULL,
             user_id TEXT, scope TEXT NOT NULL, audience TEXT NOT NULL,
             created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, rotated_at BIGINT);
         CREATE INDEX refresh_tokens_grant_id ON refresh_tokens(grant_id);",
    )?;
    let insert = |conn: &mut SqliteConnection, hash: &str| {
        diesel::sql_query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, user_id, scope, audience,
             created_at, expires_at) VALUES (?, 'gr_0123456789abcdef', 'cl_0123456789abcdef',
             'usr_0123456789abcdef', 'api:read', 'https://api.example.com', 1800000000, 1802592000)",
        )
        .bind::<diesel::sql_types::Text, _>(hash)
        .execute(conn)
    };
    let mut previous = gatehouse::secret::TokenHash::of("0").as_str().to_owned();
    insert(&mut conn, &previous)?;
    let mut n = 0u64;
    let rate = per_second(secs, || {
        n += 1;
        let next = gatehouse::secret::TokenHash::of(&n.to_string())
            .as_str()
            .to_owned();
        conn.immediate_transaction(|c| {
            let rotated = diesel::sql_query(
                "UPDATE refresh_tokens SET rotated_at = 1800000001
                 WHERE token_hash = ? AND rotated_at IS NULL",
            )
            .bind::<diesel::sql_types::Text, _>(&previous)
            .execute(c)?;
            if rotated != 1 {
                return Err(diesel::result::Error::RollbackTransaction);
            }
            insert(c, &next)
        })?;
        previous = next;
        Ok(())
    })?;
    println!("{rate:.0}\tSQLite rotate+insert transactions/s (WAL, synchronous NORMAL)");
    Ok(())
}

/// Refresh rotations on PostgreSQL as the server makes them: one statement that marks the old
/// token rotated and inserts its successor, committed on its own, from `conns` connections at
/// once (the server's pool size), each following its own chain, on a table made for the run in
/// the fresh database at `url`. Unlike the other baselines this one is not one core: PostgreSQL's
/// backends run on every core, as they do under the server.
#[cfg(feature = "postgres")]
fn postgres(secs: f64, url: &str, conns: usize) -> anyhow::Result<()> {
    use diesel::pg::PgConnection;
    use diesel::sql_types::{BigInt, Text};
    use std::sync::atomic::AtomicU64;

    let mut setup = PgConnection::establish(url)?;
    setup.batch_execute(
        "CREATE TABLE refresh_tokens (
             token_hash TEXT PRIMARY KEY NOT NULL, grant_id TEXT NOT NULL, client_id TEXT NOT NULL,
             user_id TEXT, scope TEXT NOT NULL, audience TEXT NOT NULL,
             created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, rotated_at BIGINT);
         CREATE INDEX refresh_tokens_grant_id ON refresh_tokens(grant_id);",
    )?;
    let hash_of = |chain: usize, n: u64| {
        gatehouse::secret::TokenHash::of(&format!("{chain}.{n}"))
            .as_str()
            .to_owned()
    };
    for chain in 0..conns {
        diesel::sql_query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, user_id, scope, audience,
             created_at, expires_at) VALUES ($1, 'gr_0123456789abcdef', 'cl_0123456789abcdef',
             'usr_0123456789abcdef', 'api:read', 'https://api.example.com', 1800000000, 1802592000)",
        )
        .bind::<Text, _>(hash_of(chain, 0))
        .execute(&mut setup)?;
    }
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let workers: Vec<_> = (0..conns)
        .map(|chain| {
            let (done, count, url) = (done.clone(), count.clone(), url.to_owned());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut conn = PgConnection::establish(&url)?;
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let rotated = diesel::sql_query(
                        "WITH rotated AS (
                             UPDATE refresh_tokens SET rotated_at = $1
                             WHERE token_hash = $2 AND rotated_at IS NULL RETURNING 1)
                         INSERT INTO refresh_tokens (token_hash, grant_id, client_id, user_id,
                             scope, audience, created_at, expires_at, rotated_at)
                         SELECT $3, 'gr_0123456789abcdef', 'cl_0123456789abcdef',
                             'usr_0123456789abcdef', 'api:read', 'https://api.example.com',
                             1800000000, 1802592000, NULL FROM rotated",
                    )
                    .bind::<BigInt, _>(1_800_000_001i64)
                    .bind::<Text, _>(hash_of(chain, n))
                    .bind::<Text, _>(hash_of(chain, n + 1))
                    .execute(&mut conn)?;
                    if rotated != 1 {
                        bail!("chain {chain}: rotation {n} found no unrotated token");
                    }
                    n += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    done.store(true, Ordering::Relaxed);
    let elapsed = began.elapsed().as_secs_f64();
    let rotations = count.load(Ordering::Relaxed);
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow!("a baseline connection's thread panicked"))??;
    }
    let rate = rotations as f64 / elapsed;
    println!(
        "{rate:.0}\tPostgreSQL rotate+insert statements/s from {conns} connections (one statement and commit each; PostgreSQL on every core)"
    );
    Ok(())
}

/// A bare actix-web server: one handler answering a small JSON document, default workers.
async fn bare(bind: &str) -> anyhow::Result<()> {
    use actix_web::{web, App, HttpResponse, HttpServer};
    HttpServer::new(|| {
        App::new().route(
            "/",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(r#"{"keys":[]}"#)
            }),
        )
    })
    .bind(bind)?
    .run()
    .await?;
    Ok(())
}

/// One row of `--out`: what `load` measured.
struct Row<'a> {
    backend: &'a str,
    endpoint: &'a str,
    conns: &'a str,
    rate: f64,
    cells: Vec<&'a str>,
    baseline_name: &'a str,
    baseline_rate: Option<f64>,
}

/// `a / b` as a ratio cell: "1.85×".
fn ratio(a: f64, b: f64) -> String {
    if !(a.is_finite() && b.is_finite() && b > 0.0) {
        return "-".to_owned();
    }
    let r = a / b;
    match r {
        r if r >= 100.0 => format!("{r:.0}×"),
        r if r >= 10.0 => format!("{r:.1}×"),
        r => format!("{r:.2}×"),
    }
}

fn report(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let cell = |i: usize| c.get(i).copied().unwrap_or("");
            Row {
                backend: cell(0),
                endpoint: cell(1),
                conns: cell(2),
                rate: cell(3).parse().unwrap_or(f64::NAN),
                cells: (0..7).map(cell).collect(),
                baseline_name: cell(7),
                baseline_rate: cell(8).parse().ok(),
            }
        })
        .collect();
    let find = |backend: &str, r: &Row| {
        rows.iter()
            .find(|o| o.backend == backend && o.endpoint == r.endpoint && o.conns == r.conns)
            .map(|o| o.rate)
    };
    let header = [
        "backend",
        "endpoint",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "vs peer",
        "vs baseline",
    ];
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let vs_peer = match (r.backend, find("peer", r)) {
                ("peer", _) | (_, None) => "-".to_owned(),
                (_, Some(peer)) => ratio(r.rate, peer),
            };
            // Several instances stand next to one instance; the rest next to their baseline.
            let vs_base = match (r.backend, find("pg×1", r)) {
                ("pg×2" | "pg×3", Some(one)) => format!("{} pg×1", ratio(r.rate, one)),
                _ => match r.baseline_rate {
                    Some(b) => format!("{} {}", ratio(r.rate, b), r.baseline_name),
                    None => "-".to_owned(),
                },
            };
            let mut cells: Vec<String> = r.cells.iter().map(|c| (*c).to_owned()).collect();
            // Whole requests per second read better without the decimal.
            if r.rate >= 100.0 {
                cells[3] = format!("{:.0}", r.rate);
            }
            cells.push(vs_peer);
            cells.push(vs_base);
            cells
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Markdown: numbers to the right.
    let right = |i: usize| (2..8).contains(&i);
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(w - c.chars().count());
            if right(i) {
                s.push_str(&format!(" {pad}{c} |"));
            } else {
                s.push_str(&format!(" {c}{pad} |"));
            }
        }
        println!("{s}");
    };
    line(&header.map(str::to_owned));
    let rules: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if right(i) {
                format!("{}:", "-".repeat(w - 1))
            } else {
                "-".repeat(*w)
            }
        })
        .collect();
    line(&rules);
    for r in &table {
        line(r);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let args = Args::parse(argv)?;
    let secs: f64 = args.num("secs", 3.0)?;
    match command.as_str() {
        "sign" => sign(secs),
        "argon2" => argon2(secs, args.num("threads", 1)?),
        "sqlite" => sqlite(secs, Path::new(&args.str("dir")?)),
        #[cfg(feature = "postgres")]
        "postgres" => postgres(secs, &args.str("url")?, args.num("conns", 8)?),
        "report" => report(Path::new(&args.str("file")?)),
        "bare" => actix_web::rt::System::new().block_on(bare(&args.str("bind")?)),
        // One thread: the driver takes at most one core from the server it measures.
        "load" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(load(&args)),
        _ => bail!("usage: bench load|sign|argon2|sqlite|postgres|bare|report [--key value ...]"),
    }
}
