//! Load driver and in-run baselines of `bench/run`.
//!
//! `bench/run` builds and starts the server and registers the clients; this program does the
//! measuring, one subcommand at a time:
//!
//! - `load`: a closed loop against a running server, `--conns` keep-alive connections with one
//!   request in flight each, for `--secs` seconds, at one `--endpoint` (`jwks`, `metadata`, `cc`
//!   for client_credentials, `refresh` for refresh-token rotation, `bare` for the bare server's
//!   handler). Appends one row (req/s, p50, p99, errors) to `--out`.
//! - `sign`, `argon2`, `sqlite`: the raw work under the token path, on this thread alone (one
//!   core): ES256 signatures, argon2id hashes at the configured parameters, SQLite write
//!   transactions of a refresh rotation's size. Each prints `<per second>\t<what>`.
//! - `bare --bind ADDR`: a bare actix-web server with one small JSON handler, the ceiling of the
//!   HTTP stack alone under the same driver.
//! - `report FILE`: the rows as one table.
//!
//! For `refresh`, every connection keeps its own refresh-token chain, seeded by a password grant
//! (before the clock starts) with a first-party confidential client: each answer's new refresh
//! token is the next request's. Chains are seeded one at a time, as the lockout requires of one
//! user's sign-ins. A rotation that is not a 200 with a new refresh token counts as
//! an error, and the chain is seeded again (by a password grant, whose time is not sampled but
//! does count against the connection's share of the run).

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

use driver::{enc, post_token, Args, Conn};

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

/// What a connection asks, and how it knows an answer is a success.
#[derive(Clone)]
enum Workload {
    /// The same GET every time; a 200 is a success.
    Get(Arc<Vec<u8>>),
    /// The same client_credentials POST every time; a 200 with an access token is a success.
    ClientCredentials(Arc<Vec<u8>>),
    /// Refresh rotation along the connection's own chain.
    Refresh(Arc<PasswordGrant>),
}

struct PasswordGrant {
    basic: String,
    user: String,
    password: String,
    scope: String,
    /// Chains are seeded one at a time: parallel sign-ins of one user are what the lockout
    /// bounds (each is charged before its password is checked).
    seeding: tokio::sync::Mutex<()>,
}

impl PasswordGrant {
    /// A new refresh-token chain (an argon2 check on the server).
    async fn seed(&self, conn: &mut Conn) -> anyhow::Result<String> {
        let body = format!(
            "grant_type=password&username={}&password={}&scope={}",
            enc(&self.user),
            enc(&self.password),
            enc(&self.scope)
        );
        let _one_at_a_time = self.seeding.lock().await;
        for _ in 0..50 {
            let r = conn.send(&post_token(&body, Some(&self.basic))).await?;
            match r.status {
                200 => {
                    return refresh_token_of(&r.body)
                        .ok_or_else(|| anyhow!("the password grant gave no refresh token"))
                }
                // The hash queue is full: wait as the answer asks.
                503 | 429 => tokio::time::sleep(Duration::from_millis(100)).await,
                s => bail!(
                    "the password grant was refused ({s} {})",
                    String::from_utf8_lossy(&r.body)
                ),
            }
        }
        bail!("the password grant stayed busy")
    }

    fn rotate(&self, refresh: &str) -> Vec<u8> {
        post_token(
            &format!("grant_type=refresh_token&refresh_token={}", enc(refresh)),
            Some(&self.basic),
        )
    }
}

/// One connection's results.
#[derive(Default)]
struct Tally {
    micros: Vec<u64>,
    errors: u64,
}

async fn connection(
    addr: SocketAddr,
    work: Workload,
    ready: tokio::sync::mpsc::Sender<anyhow::Result<()>>,
    mut start: tokio::sync::watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Tally> {
    let set_up = async {
        let mut conn = Conn::open(addr).await.context("connecting")?;
        let chain = match &work {
            Workload::Refresh(pg) => Some(pg.seed(&mut conn).await?),
            _ => None,
        };
        anyhow::Ok((conn, chain))
    };
    let (mut conn, mut chain) = match set_up.await {
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
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let request = match (&work, &chain) {
            (Workload::Get(r) | Workload::ClientCredentials(r), _) => r.to_vec(),
            (Workload::Refresh(pg), Some(token)) => pg.rotate(token),
            (Workload::Refresh(pg), None) => {
                // The chain broke: a new one, outside the samples.
                chain = pg.seed(&mut conn).await.ok();
                if chain.is_none() {
                    tally.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        };
        let began = Instant::now();
        let answer = conn.send(&request).await;
        let micros = began.elapsed().as_micros() as u64;
        let ok = match (&answer, &work) {
            (Ok(r), Workload::Get(_)) => r.status == 200,
            (Ok(r), Workload::ClientCredentials(_)) => {
                r.status == 200 && r.body.windows(14).any(|w| w == b"\"access_token\"")
            }
            (Ok(r), Workload::Refresh(_)) => {
                let next = (r.status == 200)
                    .then(|| refresh_token_of(&r.body))
                    .flatten();
                let ok = next.is_some();
                chain = next;
                ok
            }
            (Err(_), _) => false,
        };
        if ok {
            tally.micros.push(micros);
        } else {
            tally.errors += 1;
            if answer.is_err() {
                chain = None;
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

async fn load(args: &Args) -> anyhow::Result<()> {
    let base = args.str("base")?;
    let addr: SocketAddr = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--base must be http://host:port"))?
        .parse()?;
    let endpoint = args.str("endpoint")?;
    let conns: usize = args.num("conns", 16)?;
    let secs: f64 = args.num("secs", 10.0)?;
    let work = match endpoint.as_str() {
        "jwks" => Workload::Get(Arc::new(get("/.well-known/jwks.json"))),
        "metadata" => Workload::Get(Arc::new(get("/.well-known/oauth-authorization-server"))),
        "bare" => Workload::Get(Arc::new(get("/"))),
        "cc" => Workload::ClientCredentials(Arc::new(post_token(
            &format!(
                "grant_type=client_credentials&scope={}",
                enc(&args.str("scope")?)
            ),
            Some(&basic(&args.str("cc-id")?, &args.str("cc-secret")?)),
        ))),
        "refresh" => Workload::Refresh(Arc::new(PasswordGrant {
            basic: basic(&args.str("pw-id")?, &args.str("pw-secret")?),
            user: args.str("user")?,
            password: args.str("password")?,
            scope: args.str("scope")?,
            seeding: tokio::sync::Mutex::new(()),
        })),
        other => bail!("unknown endpoint {other}"),
    };
    let (ready, mut readies) = tokio::sync::mpsc::channel(conns);
    let (start, go) = tokio::sync::watch::channel(false);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(connection(
                addr,
                work.clone(),
                ready.clone(),
                go.clone(),
                stop.clone(),
            ))
        })
        .collect();
    // Every connection is open (and every chain seeded) before the clock starts.
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
        endpoint,
        args.str("backend")?,
        conns.to_string(),
        format!("{:.0}", micros.len() as f64 / elapsed),
        format!("{:.2}", percentile(&micros, 50.0)),
        format!("{:.2}", percentile(&micros, 99.0)),
        errors.to_string(),
        args.get("baseline").unwrap_or_default(),
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

/// ES256 signatures of an access token's size, with a generated key, as the server signs them.
fn sign(secs: f64) -> anyhow::Result<()> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| anyhow!("generating a key failed"))?;
    let key = jsonwebtoken::EncodingKey::from_ec_der(der.as_ref());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some("bench".to_owned());
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:8080", "sub": "usr_0123456789abcdef", "aud": "https://api.example.com",
        "client_id": "cl_0123456789abcdef", "iat": 1_800_000_000, "exp": 1_800_000_600,
        "jti": "at_0123456789abcdef0123456789", "scope": "api:read", "roles": [],
    });
    let rate = per_second(secs, || {
        jsonwebtoken::encode(&header, &claims, &key)?;
        Ok(())
    })?;
    println!("{rate:.0}\tES256 signatures/s on one core");
    Ok(())
}

/// argon2id hashes at the parameters Gatehouse is configured with.
fn argon2(secs: f64) -> anyhow::Result<()> {
    let settings = gatehouse::config::Settings::load(None)?;
    let p = &settings.passwords;
    let passwords = gatehouse::passwords::Passwords::new(p)?;
    let rate = per_second(secs, || {
        passwords.hash("correct horse battery staple").map(drop)
    })?;
    println!(
        "{rate:.1}\targon2id hashes/s on one core (m={} KiB, t={}, p={})",
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

fn report(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let header = [
        "endpoint",
        "backend",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "baseline (same run)",
    ];
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(w - c.chars().count());
            if (2..7).contains(&i) {
                s.push_str(&pad);
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&pad);
            }
            s.push_str("  ");
        }
        println!("{}", s.trim_end());
    };
    line(&header);
    let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rules.iter().map(String::as_str).collect::<Vec<_>>());
    for r in &rows {
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
        "argon2" => argon2(secs),
        "sqlite" => sqlite(secs, Path::new(&args.str("dir")?)),
        "report" => report(Path::new(&args.str("file")?)),
        "bare" => actix_web::rt::System::new().block_on(bare(&args.str("bind")?)),
        // One thread: the driver takes at most one core from the server it measures.
        "load" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(load(&args)),
        _ => bail!("usage: bench load|sign|argon2|sqlite|bare|report [--key value ...]"),
    }
}
